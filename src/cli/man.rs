//! `netloom man`: the man page, generated from the same clap definition
//! as `--help`, so the two never disagree. Packagers write it to a file
//! (`netloom man > netloom.1`), or every command's page to a directory
//! (`netloom man --dir DIR`: netloom.1, netloom-apply.1, ...).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, exit};

pub fn run(dir: Option<&Path>) -> ExitCode {
    let Some(dir) = dir else {
        return print_main_page();
    };
    let mut written = Vec::new();
    match write_pages(dir, &mut written) {
        Ok(()) => {
            for page in written {
                println!("{}", page.display());
            }
            exit::success()
        }
        Err(err) => {
            eprintln!(
                "error: cannot write the man pages to {}: {err}",
                dir.display()
            );
            exit::failure()
        }
    }
}

fn print_main_page() -> ExitCode {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .expect("rendering into memory cannot fail");
    match std::io::stdout().write_all(&page) {
        Ok(()) => exit::success(),
        Err(err) => {
            eprintln!("error: cannot write the man page: {err}");
            exit::failure()
        }
    }
}

/// The main page and one per command, as `clap_mangen::generate_to`
/// writes them, collecting the files written.
fn write_pages(dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    fn write(
        command: clap::Command,
        dir: &Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        written.push(clap_mangen::Man::new(command.clone()).generate_to(dir)?);
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), dir, written)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // Built, the subcommands carry their page names (`netloom-apply`);
    // `help` is clap's own and gets no page.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    write(command, dir, written)
}

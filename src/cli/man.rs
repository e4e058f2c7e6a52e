//! `netloom man`: the man page, generated from the same clap definition
//! as `--help`, so the two never disagree. Packagers write it to a file:
//! `netloom man > netloom.1`.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, exit};

pub fn run() -> ExitCode {
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

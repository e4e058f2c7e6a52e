//! `netloom completions SHELL`: shell completions.

use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, exit};

pub fn run(shell: clap_complete::Shell) -> ExitCode {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "netloom",
        &mut std::io::stdout(),
    );
    exit::success()
}

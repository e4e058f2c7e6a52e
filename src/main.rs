//! The `netloom` binary: parse the command line, run, exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match netloom::cli::parse() {
        Ok(cli) => {
            netloom::logging::init(cli.verbose, cli.quiet);
            netloom::cli::run(cli)
        }
        Err(code) => code,
    }
}

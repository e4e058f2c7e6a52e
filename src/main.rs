//! The `netloom` binary: parse the command line, run, exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output
    // goes away (`netloom schema | head`), instead of panicking on EPIPE.
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match netloom::cli::parse() {
        Ok(cli) => {
            netloom::logging::init(cli.verbose, cli.quiet, cli.log_style());
            netloom::cli::run(cli)
        }
        Err(code) => code,
    }
}

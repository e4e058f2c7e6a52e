//! Every exit code netloom chooses (docs/CLI.md). A command returns one of
//! these; nothing else picks a number.

use std::process::{ExitCode, ExitStatus};

/// Done, and nothing is wrong.
pub fn success() -> ExitCode {
    ExitCode::SUCCESS
}

/// Something failed or is in the way: an error, a conflict, an invalid file.
pub fn failure() -> ExitCode {
    ExitCode::FAILURE
}

/// Changes are pending (`plan --detailed-exitcode`, `status` out of sync).
pub fn pending() -> ExitCode {
    ExitCode::from(EXIT_PENDING)
}

/// A usage error: never to be read as "changes pending".
pub fn usage() -> ExitCode {
    ExitCode::from(EXIT_USAGE)
}

/// `exec`: the exit code of the command run in the pod.
pub fn of_command(status: ExitStatus) -> ExitCode {
    ExitCode::from(status.code().map_or(1, |code| code.clamp(0, 255) as u8))
}

/// 0 when `ok`, else 1.
pub fn success_if(ok: bool) -> ExitCode {
    if ok { success() } else { failure() }
}

const EXIT_PENDING: u8 = 2;
pub const EXIT_USAGE: u8 = 64;

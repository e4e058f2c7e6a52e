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

/// `exec`: the exit code of the command run in the pod, as shells give
/// it: its own, or 128+N when signal N killed it.
pub fn of_command(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => EXIT_EXEC_FAILURE.into(),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `exec`: a command that could not be started, as shells report it: 127
/// not found, 126 found but not executable; anything else (the namespace
/// could not be entered) is netloom's own failure.
pub fn of_unstartable_command(err: &std::io::Error) -> ExitCode {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => ExitCode::from(EXIT_COMMAND_NOT_FOUND),
        Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ETXTBSY) => {
            ExitCode::from(EXIT_COMMAND_NOT_EXECUTABLE)
        }
        _ => exec_failure(),
    }
}

/// `exec`: netloom itself failed (no such pod, no kernel access), so that
/// it is never mistaken for the command's own code (like `docker run`).
pub fn exec_failure() -> ExitCode {
    ExitCode::from(EXIT_EXEC_FAILURE)
}

/// 0 when `ok`, else 1.
pub fn success_if(ok: bool) -> ExitCode {
    if ok { success() } else { failure() }
}

const EXIT_PENDING: u8 = 2;
pub const EXIT_USAGE: u8 = 64;
const EXIT_EXEC_FAILURE: u8 = 125;
const EXIT_COMMAND_NOT_EXECUTABLE: u8 = 126;
const EXIT_COMMAND_NOT_FOUND: u8 = 127;

//! The state dir (`--state-dir`, default /run/netloom): one lock that
//! serialises runs, and per topology a state record and a journal.
//!
//! The record says what a topology created where the kernel has no room
//! for a mark (or before the mark was written), and which values it
//! replaced (sysctls of namespaces it did not create, restored on destroy).
//! The journal is appended before every change; a run killed half way
//! leaves it behind, and the next run folds it into the record first.

mod dir;
mod journal;
mod record;
mod start;

pub use dir::{Lock, StateDir};
pub use journal::{Journal, Moment};
pub use record::RECORD_VERSION;
pub use record::{Record, Records};
pub use start::{Region, START_VERSION, StartSnapshot};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// When a named namespace appeared (`None`: it is not there), as the
/// kernel tells it: what proves that a namespace whose create a killed run
/// had in flight was made by that run. The caller asks the kernel; the
/// state layer never does.
pub type NamespaceBirths<'a> = &'a dyn Fn(&str) -> Option<SystemTime>;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state dir {path}: {source}{hint}", hint = open_file_limit_hint(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another netloom run holds the lock on {path}{holder}; waited {waited:?} (raise --lock-timeout to wait longer)"
    )]
    Locked {
        path: PathBuf,
        holder: String,
        waited: Duration,
    },
    #[error(
        "state record {path} is damaged: {reason}; to recover, put the previous record back (`mv {path}.bak {path}`, if there is one) or move the damaged one aside (`mv {path} {path}.damaged`): netloom then finds the topology's namespaces and links by their marks, but forgets its routes outside them and the sysctl values to restore"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "state record {path} has version {version}, and this netloom reads version {known} only: use the netloom release that wrote it, or move it aside (`mv {path} {path}.v{version}`)",
        known = record::RECORD_VERSION
    )]
    UnknownVersion { path: PathBuf, version: u64 },
    #[error(
        "{path} is a symbolic link, and netloom never follows one in its state dir (it makes none): remove it (`rm {path}`) and run again"
    )]
    Symlink { path: PathBuf },
    #[error("{path} is {what}, not a file netloom made: remove it (`rm {path}`) and run again")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "state dir {path} {reason}, so whoever can write there could turn netloom against this machine: `chown root: {path} && chmod 0700 {path}`, or choose another --state-dir"
    )]
    Unsafe { path: PathBuf, reason: String },
}

/// Names the open-file limit when that is what ran out.
fn open_file_limit_hint(source: &std::io::Error) -> String {
    use nix::sys::resource::{Resource, getrlimit};
    if source.raw_os_error() != Some(libc::EMFILE) {
        return String::new();
    }
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => format!(
            ": the open-file limit (RLIMIT_NOFILE = {soft}) was hit: raise it (`ulimit -n`)"
        ),
        Err(_) => ": the open-file limit (RLIMIT_NOFILE) was hit: raise it (`ulimit -n`)".into(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

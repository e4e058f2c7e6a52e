//! Namespaced sysctls (`net.*`), read and written from inside a namespace.
//!
//! /proc/sys/net resolves by the network namespace of the task that opens
//! it: these run on the namespace's worker thread.
//!
//! Every namespace has its own `/proc/sys/net/ipv4` (`ipv6`, `core`...)
//! entry, all with the same name under one `net` directory, so the kernel
//! looks such a path up among one entry per namespace: with a thousand
//! pods, each open of a full path compares a thousand entries. A worker
//! opens each of those directories once and every key relative to it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// Held while a worker opens a `/proc/sys/net/<section>` directory.
static SECTION_LOOKUP: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// This worker's `/proc/sys/net/<section>` directories (a worker never
    /// changes namespace).
    static SECTIONS: RefCell<HashMap<String, OwnedFd>> = RefCell::new(HashMap::new());
}

/// The path of a `net.*` key below /proc/sys/net; other keys are not
/// namespaced and are refused. Dots separate levels (an interface name
/// with a dot, e.g. a VLAN `eth0.10`, would need the slash notation: not
/// supported here).
fn relative_path(key: &str) -> io::Result<String> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a namespaced sysctl: {key}"),
        )
    };
    let rest = key.strip_prefix("net.").ok_or_else(invalid)?;
    if rest.contains('/') || rest.split('.').any(|part| part.is_empty() || part == "..") {
        return Err(invalid());
    }
    Ok(rest.replace('.', "/"))
}

/// Opens a key of the calling thread's namespace.
fn open(key: &str, flags: OFlag) -> io::Result<File> {
    let path = relative_path(key)?;
    let (section, rest) = path.split_once('/').unwrap_or((path.as_str(), "."));
    SECTIONS.with(|sections| {
        let mut sections = sections.borrow_mut();
        if !sections.contains_key(section) {
            // One such lookup at a time: each compares the name under a
            // kernel-wide spinlock, and thirty-two workers looking up at
            // once spent more time spinning on it than comparing.
            let _one_at_a_time = SECTION_LOOKUP.lock().unwrap_or_else(|e| e.into_inner());
            let dir = openat(
                nix::fcntl::AT_FDCWD,
                format!("/proc/sys/net/{section}").as_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            sections.insert(section.to_string(), dir);
        }
        let dir = &sections[section];
        let fd = openat(dir, rest, flags | OFlag::O_CLOEXEC, Mode::empty()).map_err(|errno| {
            // Out of descriptors: keep the errno, so the error names the limit.
            if matches!(errno, nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE) {
                return io::Error::from(errno);
            }
            io::Error::new(
                io::Error::from(errno).kind(),
                format!("/proc/sys/net/{path}: {errno}"),
            )
        })?;
        Ok(File::from(fd))
    })
}

/// Reads `keys` in the calling thread's namespace; a key the kernel does
/// not have reads as `None`.
pub fn read_here(keys: &[String]) -> io::Result<Vec<(String, Option<String>)>> {
    keys.iter()
        .map(|key| {
            let mut text = String::new();
            let value = open(key, OFlag::O_RDONLY)
                .and_then(|mut file| file.read_to_string(&mut text))
                .ok()
                .map(|_| text.trim().to_owned());
            Ok((key.clone(), value))
        })
        .collect()
}

/// Runs `job` in a network namespace made for the purpose (on a thread of
/// its own, gone with it): one like every namespace netloom creates, as
/// the kernel starts it.
pub fn in_fresh_namespace<T: Send + 'static>(
    job: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        job()
    })
    .join()
    .map_err(|_| io::Error::other("the thread in a fresh namespace panicked"))?
}

/// What stops each of `keys` from being written in the calling thread's
/// namespace: `None` when nothing does, else why (no such key, read-only).
/// Nothing is written: a key is opened for writing and closed.
pub fn unwritable_here(keys: &[String]) -> io::Result<Vec<(String, Option<String>)>> {
    Ok(keys
        .iter()
        .map(|key| {
            let problem = match open(key, OFlag::O_WRONLY) {
                Ok(_) => None,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    Some("this kernel has no such sysctl".to_string())
                }
                Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                    Some("it is read-only".to_string())
                }
                Err(err) => Some(err.to_string()),
            };
            (key.clone(), problem)
        })
        .collect())
}

/// Writes `value` to `key` in the calling thread's namespace.
pub fn write_here(key: &str, value: &str) -> io::Result<()> {
    let mut file = open(key, OFlag::O_WRONLY)?;
    file.write_all(value.as_bytes()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("/proc/sys/{}: {e}", key.replace('.', "/")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_net_keys_map_to_paths() {
        assert_eq!(
            relative_path("net.ipv4.ip_forward").unwrap(),
            "ipv4/ip_forward"
        );
        for bad in [
            "kernel.hostname",
            "net.",
            "net..x",
            "net.ipv4/../../x",
            "net.a..b",
        ] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
    }
}

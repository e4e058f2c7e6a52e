//! Namespaced sysctls (`net.*`), read and written from inside a namespace.
//!
//! /proc/sys/net resolves by the network namespace of the task that opens
//! it: these run on the namespace's worker thread.
//!
//! Every namespace has its own `sys/net/ipv4` (`ipv6`, `core`...) entry,
//! all with the same name under one `net` directory of a procfs instance,
//! so the kernel looks such a name up among one cached entry per
//! namespace that was ever looked up through that instance, each compared
//! under a kernel-wide lock: through the machine's `/proc`, reading a
//! thousand pods' baseline compares pods squared entries (45% of a no-op's
//! CPU at 1000 pods, and seconds at 4000). So each worker mounts a procfs
//! instance of its own, detached (`fsopen`/`fsmount`: attached nowhere,
//! seen by no one, gone with its descriptor), where its namespace's
//! entries are the only ones; and opens each section once, every key
//! relative to it. A kernel that cannot (before 5.8, or without the
//! privilege) is read through `/proc`, one section lookup at a time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// Held while a worker without a procfs of its own opens a
/// `/proc/sys/net/<section>` directory: workers looking up at once spent
/// more time spinning on the kernel's lock than comparing.
static SHARED_LOOKUP: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// This worker's procfs instance (`None`: the machine's `/proc`), made
    /// on first use.
    static PROC: RefCell<Option<Option<OwnedFd>>> = const { RefCell::new(None) };
    /// This worker's `sys/net/<section>` directories (a worker never
    /// changes namespace).
    static SECTIONS: RefCell<HashMap<String, OwnedFd>> = RefCell::new(HashMap::new());
}

/// A new procfs instance, mounted nowhere: its descriptor is its root.
fn private_procfs() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let check = |ret: libc::c_long| {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    };
    // SAFETY: plain syscalls on a NUL-terminated name and descriptors this
    // function owns; each returned descriptor is wrapped once.
    unsafe {
        let context = check(libc::syscall(
            libc::SYS_fsopen,
            c"proc".as_ptr(),
            FSOPEN_CLOEXEC,
        ))?;
        let context = OwnedFd::from_raw_fd(context as i32);
        check(libc::syscall(
            libc::SYS_fsconfig,
            context.as_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        ))?;
        let root = check(libc::syscall(
            libc::SYS_fsmount,
            context.as_fd(),
            FSMOUNT_CLOEXEC,
            0,
        ))?;
        Ok(OwnedFd::from_raw_fd(root as i32))
    }
}

/// Opens `/proc/sys/net/<section>` for the calling thread's namespace.
fn open_section(section: &str) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    PROC.with(|proc| {
        let mut proc = proc.borrow_mut();
        let root = proc.get_or_insert_with(|| {
            private_procfs()
                .inspect_err(|err| {
                    tracing::debug!("no procfs of its own ({err}): sysctls through /proc")
                })
                .ok()
        });
        let opened = match root {
            Some(root) => openat(
                root,
                format!("sys/net/{section}").as_str(),
                flags,
                Mode::empty(),
            ),
            None => {
                let _one_at_a_time = SHARED_LOOKUP.lock().unwrap_or_else(|e| e.into_inner());
                let cwd = nix::fcntl::AT_FDCWD;
                openat(
                    cwd,
                    format!("/proc/sys/net/{section}").as_str(),
                    flags,
                    Mode::empty(),
                )
            }
        };
        Ok(opened?)
    })
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
            sections.insert(section.to_string(), open_section(section)?);
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

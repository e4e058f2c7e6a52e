//! Named network namespaces under /run/netns, as `ip netns` keeps them.
//!
//! `setns`/`unshare(CLONE_NEWNET)` change the namespace of the calling
//! *thread* only: they run on a namespace's own worker thread (see
//! `worker`), which never goes back and ends when the namespace is
//! forgotten.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
};

use nix::{
    errno::Errno,
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
};

/// Where named namespaces live (the directory `ip netns` uses).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The network namespace of the calling thread. Always `thread-self`:
/// `/proc/self` names the main thread's.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// The network namespace the process runs in: that of its main thread,
/// which never changes namespace.
const PROCESS_NETNS: &str = "/proc/self/ns/net";

/// Path of the file that pins namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Whether `/run/netns/NAME` pins a namespace. A run killed between
/// creating the file and bind-mounting the namespace onto it leaves an
/// empty file behind: that is no namespace (it cannot be entered), and
/// creating the namespace replaces it.
pub fn netns_exists(name: &str) -> bool {
    nix::sys::statfs::statfs(&netns_path(name))
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// When namespace `name`'s file under /run/netns was made (not followed:
/// the bind mount's own time, or a leftover empty file's).
pub fn netns_made_at(name: &str) -> io::Result<std::time::SystemTime> {
    fs::symlink_metadata(netns_path(name))?.modified()
}

/// The identity of namespace `name` (the inode of its nsfs file): a
/// namespace deleted and made again under the same name is another one.
pub fn netns_inode(name: &str) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(netns_path(name))?.ino())
}

/// The identity of the namespace the calling thread is in.
pub fn current_netns_inode() -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// Opens a namespace by name; `""` is the namespace the process runs in.
pub fn open_netns(name: &str) -> io::Result<File> {
    if name.is_empty() {
        File::open(PROCESS_NETNS)
    } else {
        File::open(netns_path(name))
    }
}

/// Names of the namespaces in /run/netns, sorted.
pub fn list_netns() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(NETNS_RUN_DIR)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Moves the calling thread into namespace `name` for good (`""`: stays
/// in the process's namespace).
pub fn enter_here(name: &str) -> io::Result<()> {
    if !name.is_empty() {
        setns(open_netns(name)?, CloneFlags::CLONE_NEWNET)?;
    }
    Ok(())
}

/// Makes `dir` a mount point with shared propagation, as iproute2 does for
/// /run/netns, so that a namespace unmounted here is unmounted in every mount
/// namespace that sees it: `mount --make-shared dir`, and on EINVAL (`dir` is
/// not a mount point) bind-mount `dir` on itself first.
pub fn ensure_shared_mount(dir: &Path) -> io::Result<()> {
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            Ok(make_shared()?)
        }
        other => Ok(other?),
    }
}

/// Prepares /run/netns once per process (concurrent creators would otherwise
/// race to stack bind mounts on it).
fn prepare_run_dir() -> io::Result<()> {
    static PREPARED: Mutex<bool> = Mutex::new(false);
    let mut prepared = PREPARED.lock().unwrap_or_else(|e| e.into_inner());
    if !*prepared {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(NETNS_RUN_DIR)?;
        ensure_shared_mount(Path::new(NETNS_RUN_DIR))?;
        *prepared = true;
    }
    Ok(())
}

/// Rejects names that are empty or could leave /run/netns.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid namespace name {name:?}"),
        ));
    }
    Ok(())
}

/// Creates the named namespace `name` and moves the calling thread into
/// it for good, like `ip netns add NAME` without forking: create the empty
/// file /run/netns/NAME, `unshare(CLONE_NEWNET)`, bind-mount the thread's
/// new namespace onto the file. EEXIST if the name is taken.
pub fn create_here(name: &str) -> io::Result<()> {
    check_name(name)?;
    let path = netns_path(name);
    prepare_run_dir()?;
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
    };
    match create() {
        // The empty file of a creation that was killed half way.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && !netns_exists(name) => {
            fs::remove_file(&path)?;
            create()?;
        }
        other => {
            other?;
        }
    }
    let pinned = unshare(CloneFlags::CLONE_NEWNET).and_then(|()| {
        mount(
            Some(THREAD_NETNS),
            &path,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
    });
    if pinned.is_err() {
        let _ = fs::remove_file(&path);
    }
    Ok(pinned?)
}

/// Deletes the named namespace, like `ip netns delete NAME`: lazy unmount,
/// then unlink. The kernel frees the namespace (and destroys its interfaces,
/// veth peers included) once nothing else holds it: close every netlink
/// socket opened in it first. ENOENT if there is no such namespace.
pub fn delete_netns(name: &str) -> io::Result<()> {
    check_name(name)?;
    let path = netns_path(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a half-created namespace); unlink anyway.
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(e.into()),
    }
    fs::remove_file(&path)
}

/// Removes what a deletion killed between its unmount and its unlink left
/// behind: a plain file, not a namespace, under /run/netns. Returns
/// whether there was one.
///
/// A deletion running right now (`ip netns delete` by hand) also leaves
/// such a file, for the moment between its two steps: a file is taken
/// for a leftover only if it is still there a little later, and one its
/// deleter unlinked meanwhile is gone either way.
pub fn remove_leftover(name: &str) -> io::Result<bool> {
    check_name(name)?;
    let path = netns_path(name);
    let leftover = || path.exists() && !netns_exists(name);
    if !leftover() {
        return Ok(false);
    }
    std::thread::sleep(LEFTOVER_GRACE);
    if !leftover() {
        return Ok(false);
    }
    match fs::remove_file(&path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        removed => removed.map(|()| true),
    }
}

/// How long a deletion in progress may take between its unmount and its
/// unlink before its file counts as left behind.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs a command inside namespace `name` and waits for it, like
/// `ip netns exec` (without its private /sys: only the network namespace
/// changes).
pub fn run_in(name: &str, command: &[String]) -> io::Result<std::process::ExitStatus> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command"))?;
    // Not the command's failure: kept apart from a command not found.
    let target = open_netns(name)
        .map_err(|err| io::Error::other(format!("cannot open namespace `{name}`: {err}")))?;
    let fd = target.as_raw_fd();
    let mut child = std::process::Command::new(program);
    child.args(args);
    // SAFETY: between fork and exec only the async-signal-safe setns(2)
    // runs; `target` outlives the spawn, so the fd is valid in the child.
    unsafe {
        child.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let status = child.status();
    drop(target);
    status
}

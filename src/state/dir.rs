//! The state dir itself: the lock that serialises runs, and the files
//! of every topology (`NAME.json` records, their `NAME.json.bak`
//! backups, `NAME.journal` journals).
//!
//! netloom runs as root, so the state dir must not be a way to make it
//! write or read elsewhere: the dir is opened once per operation and every
//! file is reached by name relative to it, never through a symlink (none
//! is netloom's), and only if it is a regular file (a FIFO would hang the
//! run). The dir must belong to root or to the user running netloom and be
//! writable by its owner only. netloom makes the dir 0700 and its files
//! 0600 whatever the umask.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};

use super::journal::{Journal, fold_journal};
use super::record::RECORD_VERSION;
use super::start::{START_VERSION, StartSnapshot};
use super::{NamespaceBirths, Record, Records, StateError, io_error};

/// Held while a run changes the kernel (exclusive), or while `plan` and
/// `status` read it (shared); released on drop.
pub struct Lock {
    _file: Flock<File>,
}

pub struct StateDir {
    path: PathBuf,
}

/// The mode of every file netloom makes in the state dir.
const FILE_MODE: u32 = 0o600;
/// The mode of the state dir when netloom makes it.
const DIR_MODE: u32 = 0o700;

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the state dir, making it (0700) if it is missing.
    fn open_or_create(&self) -> Result<OpenDir, StateError> {
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let created = match fs::DirBuilder::new().mode(DIR_MODE).create(&self.path) {
            Ok(()) => true,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(err) => return Err(io_error(&self.path)(err)),
        };
        let dir = self.open()?.ok_or_else(|| {
            io_error(&self.path)(std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        if created {
            // The umask may have taken bits off (or, for a parent made
            // above, left group and others in): set the mode outright.
            dir.file
                .set_permissions(fs::Permissions::from_mode(DIR_MODE))
                .map_err(io_error(&self.path))?;
        }
        Ok(dir)
    }

    /// Opens the state dir if it exists, once it is known to be safe.
    fn open(&self) -> Result<Option<OpenDir>, StateError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(&self.path)(err)),
        };
        let dir = OpenDir {
            file,
            path: self.path.clone(),
        };
        dir.check_safe()?;
        Ok(Some(dir))
    }

    /// Takes the lock of this state dir for a run that changes the
    /// kernel, waiting up to `timeout` for other runs (and readers).
    pub fn lock(&self, timeout: Duration) -> Result<Lock, StateError> {
        let dir = self.open_or_create()?;
        let file = dir.open_file(LOCK, Access::Lock)?;
        let file = file.expect("a lock file opened to write exists");
        let mut locked = self.wait_for(&dir, file, FlockArg::LockExclusiveNonblock, timeout)?;
        // Say who holds it, for whoever waits next.
        let _ = locked.set_len(0);
        let _ = writeln!(*locked, "{}", std::process::id());
        Ok(Lock { _file: locked })
    }

    /// Takes the lock shared, for a command that only reads (`plan`,
    /// `status`): it waits up to `timeout` for a running apply to finish
    /// rather than see its half-made objects as conflicts. A state dir
    /// that does not exist has nothing to wait for (`None`).
    pub fn lock_shared(&self, timeout: Duration) -> Result<Option<Lock>, StateError> {
        let Some(dir) = self.open()? else {
            return Ok(None);
        };
        // A read-only state dir can still be read: lock what is there.
        let file = match dir.open_file(LOCK, Access::Lock) {
            Ok(file) => file,
            Err(StateError::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EROFS | libc::EACCES)) =>
            {
                dir.open_file(LOCK, Access::Read)?
            }
            Err(err) => return Err(err),
        };
        let Some(file) = file else {
            return Ok(None);
        };
        let locked = self.wait_for(&dir, file, FlockArg::LockSharedNonblock, timeout)?;
        Ok(Some(Lock { _file: locked }))
    }

    fn wait_for(
        &self,
        dir: &OpenDir,
        mut file: File,
        how: FlockArg,
        timeout: Duration,
    ) -> Result<Flock<File>, StateError> {
        let started = Instant::now();
        loop {
            match Flock::lock(file, how) {
                Ok(locked) => return Ok(locked),
                Err((unlocked, Errno::EWOULDBLOCK)) if started.elapsed() < timeout => {
                    file = unlocked;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((mut unlocked, Errno::EWOULDBLOCK)) => {
                    let mut pid = String::new();
                    let _ = unlocked.read_to_string(&mut pid);
                    let holder = match pid.trim() {
                        "" => String::new(),
                        pid => format!(" (pid {pid})"),
                    };
                    return Err(StateError::Locked {
                        path: self.path.clone(),
                        holder,
                        waited: started.elapsed(),
                    });
                }
                Err((_, errno)) => return Err(io_error(&dir.join(LOCK))(errno.into())),
            }
        }
    }

    /// Every topology's record, with any journal a killed run left behind
    /// folded in (in memory: `recover` makes it stick), `births` telling
    /// when the namespaces it names appeared. A missing state dir has
    /// none. The record of `topology` must be readable; a damaged record
    /// of another topology blocks nothing: it is left out (its objects then
    /// look like nobody's, so nothing of them is touched) with a warning.
    pub fn records(&self, topology: &str, births: NamespaceBirths) -> Result<Records, StateError> {
        let mut records = Records::default();
        let Some(dir) = self.open()? else {
            return Ok(records);
        };
        let mut journals = Vec::new();
        for name in dir.names()? {
            if let Some(owner) = name.strip_suffix(".json") {
                match dir.read_record(&name, owner) {
                    Ok(record) => {
                        records.by_topology.insert(owner.to_string(), record);
                    }
                    Err(err) if owner == topology => return Err(err),
                    Err(err) => tracing::warn!(
                        "topology {owner} is left out: {err} (until then, its unmarked objects look like nobody's and are not touched)"
                    ),
                }
            } else if let Some(owner) = name.strip_suffix(".journal") {
                journals.push(owner.to_string());
            }
        }
        for owner in journals {
            let readable = records.by_topology.contains_key(&owner)
                || !dir.exists(&format!("{owner}.json"))?;
            if !readable {
                continue;
            }
            let mut record = records
                .by_topology
                .remove(&owner)
                .unwrap_or_else(|| Record::new(&owner));
            let path = dir.join(&journal_name(&owner));
            let folded = dir
                .open_file(&journal_name(&owner), Access::Read)
                .and_then(|file| match file {
                    Some(file) => fold_journal(file, &path, &mut record, births),
                    None => Ok(()),
                });
            match folded {
                Ok(()) => {
                    records.by_topology.insert(owner, record);
                }
                Err(err) if owner == topology => return Err(err),
                Err(err) => tracing::warn!("topology {owner} is left out: {err}"),
            }
        }
        Ok(records)
    }

    /// Saves a topology's record (atomically, the previous one kept as
    /// `NAME.json.bak`); an empty record is removed, with its backup:
    /// nothing is left to restore.
    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        let name = record_name(&record.topology);
        let backup = format!("{name}.bak");
        if record.is_empty() {
            let Some(dir) = self.open()? else {
                return Ok(());
            };
            return dir.remove(&name).and_then(|()| dir.remove(&backup));
        }
        let text = serde_json::to_string_pretty(record).expect("a record serializes");
        self.open_or_create()?
            .replace(&name, text.as_bytes(), Some(&backup))
    }

    /// Writes a file of the state dir, safely: made 0600 whatever the
    /// umask, never through a symlink, and replaced atomically (written
    /// aside, synced, renamed over the old one, the dir synced), so that a
    /// crash or a full disk leaves the old content or the new, whole.
    /// `name` is a plain file name in the state dir.
    pub fn write_file(&self, name: &str, content: &[u8]) -> Result<(), StateError> {
        self.open_or_create()?.replace(name, content, None)
    }

    /// Reads a file of the state dir (never through a symlink); `None`
    /// when it does not exist.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let Some(dir) = self.open()? else {
            return Ok(None);
        };
        let Some(mut file) = dir.open_file(name, Access::Read)? else {
            return Ok(None);
        };
        let mut content = Vec::new();
        file.read_to_end(&mut content)
            .map_err(io_error(&dir.join(name)))?;
        Ok(Some(content))
    }

    /// Removes a file of the state dir (a symlink itself, never its
    /// target); nothing to do if it is missing.
    pub fn remove_file(&self, name: &str) -> Result<(), StateError> {
        match self.open()? {
            Some(dir) => dir.remove(name),
            None => Ok(()),
        }
    }

    /// Opens a file of the state dir to append to (made 0600 if missing),
    /// never through a symlink.
    pub fn append_file(&self, name: &str) -> Result<File, StateError> {
        let dir = self.open_or_create()?;
        let file = dir.open_file(name, Access::Append)?;
        Ok(file.expect("a file opened to append exists"))
    }

    /// Makes a killed run's journal part of the record (already folded
    /// into `records` by `records()`), so that what it may have created is
    /// known to be this topology's for good; then drops the journal.
    pub fn recover(&self, records: &Records, topology: &str) -> Result<(), StateError> {
        let Some(dir) = self.open()? else {
            return Ok(());
        };
        let name = journal_name(topology);
        if !dir.exists(&name)? {
            return Ok(());
        }
        if let Some(record) = records.get(topology) {
            self.save(record)?;
        }
        dir.remove(&name)
    }

    /// Opens the journal of a run.
    pub fn journal(&self, topology: &str) -> Result<Journal, StateError> {
        let name = journal_name(topology);
        let file = self.append_file(&name)?;
        Ok(Journal::new(file, self.path.join(name), topology))
    }

    /// The run is over and its record saved: its journal is no longer
    /// needed.
    pub fn finish_journal(&self, journal: Journal) -> Result<(), StateError> {
        let name = journal_name(journal.topology());
        drop(journal);
        self.remove_file(&name)
    }

    /// Persists a run's start snapshot before its first change, replacing
    /// the previous run's atomically (`write_file`), so that a crash (even
    /// of the machine) leaves the old snapshot or the new one, whole.
    pub fn save_start(&self, start: &StartSnapshot) -> Result<(), StateError> {
        let text = serde_json::to_vec(start).expect("a start snapshot serializes");
        self.write_file(&start_name(&start.topology), &text)
    }

    /// Drops the topology's start snapshot: a destroy that finished leaves
    /// nothing of the topology behind, this included.
    pub fn remove_start(&self, topology: &str) -> Result<(), StateError> {
        self.remove_file(&start_name(topology))
    }

    /// The start snapshot of the topology's last changing run, if any.
    pub fn start(&self, topology: &str) -> Result<Option<StartSnapshot>, StateError> {
        let name = start_name(topology);
        let Some(text) = self.read_file(&name)? else {
            return Ok(None);
        };
        let damaged = |reason: String| StateError::Damaged {
            path: self.path.join(&name),
            reason,
        };
        let start: StartSnapshot =
            serde_json::from_slice(&text).map_err(|err| damaged(err.to_string()))?;
        if start.version != START_VERSION {
            return Err(damaged(format!(
                "version {} is not the {START_VERSION} this netloom reads",
                start.version
            )));
        }
        Ok(Some(start))
    }

    /// An `apply --confirm` starts waiting: `confirm` may now answer.
    pub fn await_confirmation(&self, topology: &str) -> Result<(), StateError> {
        self.end_confirmation(topology)?;
        let pid = format!("{}\n", std::process::id());
        self.write_file(&awaiting_name(topology), pid.as_bytes())
    }

    /// Whether `confirm` answered the wait.
    pub fn is_confirmed(&self, topology: &str) -> bool {
        matches!(self.read_file(&confirmed_name(topology)), Ok(Some(_)))
    }

    /// The wait is over (confirmed or not): nothing is left to answer.
    pub fn end_confirmation(&self, topology: &str) -> Result<(), StateError> {
        self.remove_file(&awaiting_name(topology))?;
        self.remove_file(&confirmed_name(topology))
    }

    /// Answers an `apply --confirm` waiting on this topology; whether one was.
    pub fn confirm(&self, topology: &str) -> Result<bool, StateError> {
        if self.read_file(&awaiting_name(topology))?.is_none() {
            return Ok(false);
        }
        self.write_file(&confirmed_name(topology), b"")?;
        Ok(true)
    }
}

const LOCK: &str = "lock";

fn start_name(topology: &str) -> String {
    format!("{topology}.start")
}

fn awaiting_name(topology: &str) -> String {
    format!("{topology}.awaiting-confirmation")
}

fn confirmed_name(topology: &str) -> String {
    format!("{topology}.confirmed")
}

fn record_name(topology: &str) -> String {
    format!("{topology}.json")
}

fn journal_name(topology: &str) -> String {
    format!("{topology}.journal")
}

/// What a file of the state dir is opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Append,
    /// Read and write, made if missing (the lock).
    Lock,
}

/// The state dir, open: files are reached by name relative to it.
struct OpenDir {
    file: File,
    path: PathBuf,
}

impl OpenDir {
    fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Refuses a dir that someone other than its owner could write to, or
    /// whose owner is neither root nor the user running netloom.
    fn check_safe(&self) -> Result<(), StateError> {
        let meta = self.file.metadata().map_err(io_error(&self.path))?;
        let unsafe_because = |reason: String| StateError::Unsafe {
            path: self.path.clone(),
            reason,
        };
        if !meta.is_dir() {
            return Err(unsafe_because("is not a directory".into()));
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != me {
            return Err(unsafe_because(format!(
                "belongs to uid {}, neither root nor this user (uid {me})",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_because(format!(
                "is writable by its group or others (mode {:04o})",
                meta.mode() & 0o7777
            )));
        }
        Ok(())
    }

    /// The names of the files in the dir.
    fn names(&self) -> Result<Vec<String>, StateError> {
        let mut listing = nix::dir::Dir::openat(
            self.file.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| io_error(&self.path)(errno.into()))?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|errno| io_error(&self.path)(errno.into()))?;
            if let Ok(name) = entry.file_name().to_str()
                && name != "."
                && name != ".."
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// Opens a file by name, never through a symlink, and only if it is a
    /// regular file. `None` when reading a file that does not exist.
    fn open_file(&self, name: &str, access: Access) -> Result<Option<File>, StateError> {
        let path = self.join(name);
        let plain = name_in_dir(name, &path)?;
        // O_NONBLOCK: opening a FIFO planted here must not hang the run.
        let flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let flags = flags
            | match access {
                Access::Read => OFlag::O_RDONLY,
                Access::Append => OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
                Access::Lock => OFlag::O_RDWR | OFlag::O_CREAT,
            };
        let fd = match openat(
            self.file.as_fd(),
            plain,
            flags,
            Mode::from_bits_truncate(FILE_MODE),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if access == Access::Read => return Ok(None),
            Err(Errno::ELOOP) => return Err(StateError::Symlink { path }),
            Err(errno) => return Err(io_error(&path)(errno.into())),
        };
        let file = regular_file(fd, &path)?;
        if access != Access::Read {
            // Whatever the umask, and whatever an older netloom left.
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
                .map_err(io_error(&path))?;
        }
        Ok(Some(file))
    }

    fn exists(&self, name: &str) -> Result<bool, StateError> {
        let path = self.join(name);
        let plain = name_in_dir(name, &path)?;
        match nix::sys::stat::fstatat(self.file.as_fd(), plain, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(io_error(&path)(errno.into())),
        }
    }

    fn read_record(&self, name: &str, topology: &str) -> Result<Record, StateError> {
        let path = self.join(name);
        let damaged = |reason: String| StateError::Damaged {
            path: path.clone(),
            reason,
        };
        let Some(mut file) = self.open_file(name, Access::Read)? else {
            // Removed since the listing: as if never there.
            return Ok(Record::new(topology));
        };
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io_error(&path))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| damaged(err.to_string()))?;
        // A record of another version is refused, never guessed at.
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(version) if version == u64::from(RECORD_VERSION) => {}
            Some(version) => return Err(StateError::UnknownVersion { path, version }),
            None => return Err(damaged("it has no `version`".into())),
        }
        let record: Record =
            serde_json::from_value(value).map_err(|err| damaged(err.to_string()))?;
        if record.topology != topology {
            return Err(damaged(format!(
                "it is the record of topology `{}`, not of `{topology}`",
                record.topology
            )));
        }
        Ok(record)
    }

    /// Replaces a file atomically: the content is written to a new file
    /// aside (0600, made exclusively, never through a symlink), synced,
    /// then renamed over `name`, and the dir synced so the rename lasts.
    /// With `backup`, the file replaced is kept under that name.
    fn replace(&self, name: &str, content: &[u8], backup: Option<&str>) -> Result<(), StateError> {
        let path = self.join(name);
        let plain = name_in_dir(name, &path)?;
        let partial = format!("{name}.partial");
        let partial_path = self.join(&partial);
        // Left by a crash half way through a write: never ours to reuse.
        self.remove(&partial)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            self.file.as_fd(),
            partial.as_str(),
            flags,
            Mode::from_bits_truncate(FILE_MODE),
        )
        .map_err(|errno| io_error(&partial_path)(errno.into()))?;
        let mut file = File::from(fd);
        let written = file
            .set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .and_then(|()| file.write_all(content))
            .and_then(|()| file.sync_all());
        if let Err(err) = written {
            // A full disk: the old file stays as it was.
            let _ = self.remove(&partial);
            return Err(io_error(&partial_path)(err));
        }
        if let Some(backup) = backup {
            let backup_path = self.join(backup);
            self.remove(backup)?;
            // A hard link: the old file stays in place until the rename.
            match linkat(
                self.file.as_fd(),
                plain,
                self.file.as_fd(),
                backup,
                AtFlags::empty(),
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(errno) => return Err(io_error(&backup_path)(errno.into())),
            }
        }
        renameat(
            self.file.as_fd(),
            partial.as_str(),
            self.file.as_fd(),
            plain,
        )
        .map_err(|errno| io_error(&path)(errno.into()))?;
        self.file.sync_all().map_err(io_error(&self.path))
    }

    /// Removes a file (a symlink itself, never what it points to).
    fn remove(&self, name: &str) -> Result<(), StateError> {
        let path = self.join(name);
        let plain = name_in_dir(name, &path)?;
        match unlinkat(self.file.as_fd(), plain, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(errno) => Err(io_error(&path)(errno.into())),
        }
    }
}

/// `name` as a file right in the state dir: no `/`, no `..`.
fn name_in_dir<'a>(name: &'a str, path: &Path) -> Result<&'a str, StateError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io_error(path)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name in the state dir",
        )));
    }
    Ok(name)
}

/// The file an fd opened, if it is a regular file.
fn regular_file(fd: OwnedFd, path: &Path) -> Result<File, StateError> {
    let file = File::from(fd);
    let file_type = file.metadata().map_err(io_error(path))?.file_type();
    if file_type.is_file() {
        return Ok(file);
    }
    Err(StateError::NotAFile {
        path: path.to_path_buf(),
        what: crate::load::describe_file_type(file_type),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::model::{Action, Change, Kind, Resource, ResourceId};
    use crate::state::Moment;

    /// A kernel without any named namespace.
    fn no_namespaces(_: &str) -> Option<std::time::SystemTime> {
        None
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netloom-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn create(id: ResourceId, to: Resource) -> Change {
        Change {
            action: Action::Create,
            id,
            from: None,
            to: Some(to),
            takes_along: Vec::new(),
        }
    }

    #[test]
    fn a_killed_runs_sysctls_in_its_own_namespaces_are_not_restored() {
        let dir = temp_dir("own-sysctls");
        let state = StateDir::new(&dir);
        let made = ResourceId::namespace("web");
        let sysctl = |ns: &str| ResourceId::new(ns, Kind::Sysctl, "net.ipv4.ip_forward");
        let update = |ns: &str| Change {
            action: Action::Update,
            id: sysctl(ns),
            from: Some(Resource::Sysctl { value: "0".into() }),
            to: Some(Resource::Sysctl { value: "1".into() }),
            takes_along: Vec::new(),
        };
        {
            // One killed run made `web`; the next changed its sysctl and
            // one of the machine's own namespace, and was killed too.
            let mut journal = state.journal("lab").unwrap();
            let create_web = create(made.clone(), Resource::Namespace);
            journal.log(&create_web, Moment::Starting).unwrap();
            journal.log(&create_web, Moment::Done).unwrap();
        }
        let records = state.records("lab", &no_namespaces).unwrap();
        state.recover(&records, "lab").unwrap();
        {
            let mut journal = state.journal("lab").unwrap();
            journal.log(&update("web"), Moment::Starting).unwrap();
            journal.log(&update(""), Moment::Starting).unwrap();
        }
        let records = state.records("lab", &no_namespaces).unwrap();
        let record = records.get("lab").unwrap();
        assert!(record.created.contains(&made));
        assert_eq!(
            record.replaced.keys().collect::<Vec<_>>(),
            [&sysctl("")],
            "only the machine's own sysctl is restored on destroy"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_killed_run_leaves_a_journal_the_next_run_recovers() {
        let dir = temp_dir("recover");
        let state = StateDir::new(&dir);
        let bridge = ResourceId::link("", "br0");
        let never_made = ResourceId::namespace("pod-b");
        let create_pod_b = create(never_made.clone(), Resource::Namespace);
        {
            let mut journal = state.journal("lab").unwrap();
            let create_bridge = create(
                bridge.clone(),
                Resource::Link(crate::model::LinkKind::Bridge),
            );
            let create_web = create(ResourceId::namespace("web"), Resource::Namespace);
            for change in [&create_bridge, &create_web] {
                journal.log(change, Moment::Starting).unwrap();
                journal.log(change, Moment::Done).unwrap();
            }
            // Started, then killed before the kernel made it.
            journal.log(&create_pod_b, Moment::Starting).unwrap();
            // A line cut short by kill -9.
            journal.file.write_all(b"{\"action\":\"cre").unwrap();
        }
        // Read-only commands (plan, status) already see the claim.
        let records = state.records("lab", &no_namespaces).unwrap();
        assert_eq!(records.creator_of(&bridge), Some("lab"));
        assert!(dir.join("lab.journal").exists());
        state.recover(&records, "lab").unwrap();
        assert_eq!(
            records.creator_of(&ResourceId::namespace("web")),
            Some("lab")
        );
        // A journal entry alone proves nothing: a namespace someone else
        // makes later under that name must not look netloom's.
        assert_eq!(records.creator_of(&never_made), None);
        // Saved, and the journal is gone.
        assert_eq!(
            state
                .records("lab", &no_namespaces)
                .unwrap()
                .creator_of(&bridge),
            Some("lab")
        );
        assert!(!dir.join("lab.journal").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_lock_serialises_runs() {
        let dir = temp_dir("lock");
        let state = StateDir::new(&dir);
        let held = state.lock(Duration::from_secs(1)).unwrap();
        let err = match state.lock(Duration::from_millis(120)) {
            Err(err) => err.to_string(),
            Ok(_) => panic!("a second lock was granted"),
        };
        assert!(
            err.contains("holds the lock") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(state.lock(Duration::from_millis(100)).is_ok());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn records_survive_a_round_trip() {
        let dir = temp_dir("round-trip");
        let state = StateDir::new(&dir);
        let mut record = Record::new("lab");
        record.created.insert(ResourceId::link("", "br0"));
        record.replaced.insert(
            ResourceId::new("", Kind::Sysctl, "net.ipv4.ip_forward"),
            "0".into(),
        );
        state.save(&record).unwrap();
        assert_eq!(
            state.records("lab", &no_namespaces).unwrap().get("lab"),
            Some(&record)
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_records_are_removed() {
        let dir = temp_dir("empty");
        let state = StateDir::new(&dir);
        let mut record = Record::new("lab");
        record.created.insert(ResourceId::namespace("web"));
        state.save(&record).unwrap();
        assert!(dir.join("lab.json").exists());
        record.created.clear();
        state.save(&record).unwrap();
        assert!(!dir.join("lab.json").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_unchanged() {
        let dir = temp_dir("symlink");
        let state = StateDir::new(&dir);
        state.lock(Duration::from_secs(1)).unwrap();
        let target = dir.with_extension("target");
        fs::write(&target, "precious").unwrap();
        for planted in ["lab.json", "lock", "lab.journal"] {
            let _ = fs::remove_file(dir.join(planted));
            std::os::unix::fs::symlink(&target, dir.join(planted)).unwrap();
            let err = match planted {
                "lock" => state.lock(Duration::from_secs(1)).err().unwrap(),
                "lab.journal" => state.journal("lab").err().unwrap(),
                _ => state.records("lab", &no_namespaces).err().unwrap(),
            };
            assert!(
                matches!(err, StateError::Symlink { .. }),
                "{planted}: {err}"
            );
            assert!(err.to_string().contains("rm "), "{err}");
            fs::remove_file(dir.join(planted)).unwrap();
        }
        // Saving replaces a planted record link; it never writes through it.
        std::os::unix::fs::symlink(&target, dir.join("lab.json")).unwrap();
        let mut record = Record::new("lab");
        record.created.insert(ResourceId::namespace("web"));
        state.save(&record).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        fs::remove_file(target).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn modes_are_owner_only_whatever_the_umask() {
        let dir = temp_dir("umask");
        let old = nix::sys::stat::umask(Mode::empty());
        let state = StateDir::new(&dir);
        let lock = state.lock(Duration::from_secs(1));
        let mut record = Record::new("lab");
        record.created.insert(ResourceId::namespace("web"));
        let saved = state.save(&record).and_then(|()| state.save(&record));
        let journal = state.journal("lab");
        nix::sys::stat::umask(old);
        lock.unwrap();
        saved.unwrap();
        journal.unwrap();
        let mode = |name: &str| fs::metadata(dir.join(name)).unwrap().mode() & 0o777;
        assert_eq!(mode(""), 0o700);
        for name in ["lock", "lab.json", "lab.json.bak", "lab.journal"] {
            assert_eq!(mode(name), 0o600, "{name}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_dir_others_can_write_or_someone_else_owns_is_refused() {
        let dir = temp_dir("unsafe");
        let state = StateDir::new(&dir);
        state.lock(Duration::from_secs(1)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = state.records("lab", &no_namespaces).err().unwrap();
        assert!(matches!(err, StateError::Unsafe { .. }), "{err}");
        assert!(state.lock(Duration::from_secs(1)).is_err());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let err = state.records("lab", &no_namespaces).err().unwrap();
            assert!(err.to_string().contains("uid 65534"), "{err}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_foreign_record_blocks_nothing_an_unknown_version_is_refused() {
        let dir = temp_dir("damaged");
        let state = StateDir::new(&dir);
        let mut record = Record::new("lab");
        record.created.insert(ResourceId::namespace("web"));
        state.save(&record).unwrap();
        fs::write(dir.join("other.json"), "{\"version\": 1, \"topo").unwrap();
        fs::write(
            dir.join("future.json"),
            "{\"version\": 2, \"topology\": \"future\", \"created\": [], \"replaced\": []}",
        )
        .unwrap();
        let records = state.records("lab", &no_namespaces).unwrap();
        assert_eq!(records.get("lab"), Some(&record));
        assert!(records.get("other").is_none());
        let err = state.records("other", &no_namespaces).err().unwrap();
        assert!(matches!(err, StateError::Damaged { .. }), "{err}");
        assert!(
            err.to_string().contains("other.json.bak"),
            "says how: {err}"
        );
        let err = state.records("future", &no_namespaces).err().unwrap();
        assert!(
            matches!(err, StateError::UnknownVersion { version: 2, .. }),
            "{err}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_planted_as_a_record_is_refused_without_hanging() {
        let dir = temp_dir("fifo");
        let state = StateDir::new(&dir);
        state.lock(Duration::from_secs(1)).unwrap();
        nix::unistd::mkfifo(&dir.join("lab.json"), Mode::from_bits_truncate(0o600)).unwrap();
        let err = state.records("lab", &no_namespaces).err().unwrap();
        assert!(matches!(err, StateError::NotAFile { .. }), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_shared_lock_waits_for_a_run_and_readers_share_it() {
        let dir = temp_dir("shared");
        let state = StateDir::new(&dir);
        let run = state.lock(Duration::from_secs(1)).unwrap();
        assert!(matches!(
            state.lock_shared(Duration::from_millis(120)),
            Err(StateError::Locked { .. })
        ));
        drop(run);
        let first = state.lock_shared(Duration::from_secs(1)).unwrap();
        let second = state.lock_shared(Duration::from_secs(1)).unwrap();
        assert!(first.is_some() && second.is_some());
        assert!(state.lock(Duration::from_millis(120)).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}

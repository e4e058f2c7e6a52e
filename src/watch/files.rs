//! The topology file under watch: told when what its path names has new
//! content, however the change was made.
//!
//! Editors save by writing a temporary file and renaming it over the old one,
//! `git checkout` unlinks and re-creates, a Kubernetes ConfigMap volume swaps
//! a `..data` symlink to a new directory (the file itself being a symlink
//! through `..data`), people re-point symlinks. A watch on the file's inode
//! loses all of these. So this watches *directories*: the one of every
//! symlink met while resolving the path and the one of the file it ends at,
//! re-resolves the path on every event (re-aiming the watches when the chain
//! moved), and compares a hash of the content, so that only a real change
//! wakes the caller. A path that names nothing (deleted, half way through a
//! swap) is reported as unavailable, never as an empty topology: the caller
//! keeps what it has and the watch waits for the file to come back.
//!
//! Events pass through `notify-debouncer-mini`, not `-full`: every event
//! here only means "look again", so the full debouncer's rename stitching and
//! file-id cache buy nothing, and its thread wakes every quarter timeout even
//! when nothing happens, while the mini one sleeps until an event arrives: an
//! idle watch costs no CPU.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::load::MAX_FILE_BYTES;

/// How long events settle before the file is looked at again: long enough
/// to see a save's several steps as one, short against a person's wait.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// Symlinks followed before giving up, as the kernel's own limit (ELOOP).
const MAX_SYMLINK_HOPS: usize = 40;

/// What changed about the watched file.
#[derive(Debug)]
pub enum FileEvent {
    /// The path names a file again, or the file it names has new content.
    Changed(FileContent),
    /// The path names nothing readable now (deleted, a dangling symlink, no
    /// permission). Not an empty topology: keep what is applied and wait.
    Unavailable { resolved: PathBuf, error: io::Error },
}

/// A reading of the watched file.
#[derive(Debug)]
pub struct FileContent {
    /// The file the path named after every symlink, for messages.
    pub resolved: PathBuf,
    /// At most `MAX_FILE_BYTES + 1` bytes, so that the loader can tell a
    /// file that is too large.
    pub bytes: Vec<u8>,
}

/// What was last seen at the path; a new reading is an event only when it
/// differs from this.
#[derive(Debug, PartialEq)]
enum Seen {
    Nothing,
    Content([u8; 32]),
    Unavailable(io::ErrorKind),
}

/// A watch on one topology file; dropping it stops its threads.
pub struct FileWatch {
    path: PathBuf,
    debouncer: Debouncer<RecommendedWatcher>,
    /// Raised by the debouncer's thread after events settled; a permit
    /// stored while nobody waits makes any number of batches one look.
    wakeup: Arc<Notify>,
    watched: BTreeSet<PathBuf>,
    seen: Seen,
}

impl FileWatch {
    /// Starts watching `path` (relative to the current directory if it is
    /// relative). Nothing is read yet: the first `next` reports the file as
    /// it is now.
    pub fn start(path: &Path, debounce: Duration) -> io::Result<FileWatch> {
        let path = std::path::absolute(path)?;
        let wakeup = Arc::new(Notify::new());
        let raised = wakeup.clone();
        // A watcher error (the inotify queue overflowed, a watch was lost)
        // also means "look again": the content hash decides what changed.
        let debouncer = new_debouncer(debounce, move |_: DebounceEventResult| {
            raised.notify_one();
        })
        .map_err(io::Error::other)?;
        Ok(FileWatch {
            path,
            debouncer,
            wakeup,
            watched: BTreeSet::new(),
            seen: Seen::Nothing,
        })
    }

    /// The next change: at once the first time (the file as it is now),
    /// then when what the path names has changed since the last answer.
    pub async fn next(&mut self) -> FileEvent {
        loop {
            if let Some(event) = self.look() {
                return event;
            }
            self.wakeup.notified().await;
        }
    }

    /// Resolves the path, aims the watches at what it crosses now, reads the
    /// file, and returns an event if that differs from what was last seen.
    fn look(&mut self) -> Option<FileEvent> {
        // The watches are in place before the read, so a change racing the
        // read raises another look. If the chain moved meanwhile, resolve
        // again with watches on the new directories too.
        let mut resolution = resolve(&self.path);
        for _ in 0..MAX_SYMLINK_HOPS {
            self.aim_watches(&resolution.dirs);
            let again = resolve(&self.path);
            if again == resolution {
                break;
            }
            resolution = again;
        }
        let reading = read_bounded(&resolution.target);
        let seen = match &reading {
            Ok(bytes) => Seen::Content(Sha256::digest(bytes).into()),
            Err(error) => Seen::Unavailable(error.kind()),
        };
        if seen == self.seen {
            return None;
        }
        self.seen = seen;
        let resolved = resolution.target;
        Some(match reading {
            Ok(bytes) => FileEvent::Changed(FileContent { resolved, bytes }),
            Err(error) => FileEvent::Unavailable { resolved, error },
        })
    }

    /// Watches exactly `dirs` (each without its subdirectories). A directory
    /// that cannot be watched (it vanished since it was resolved) is left
    /// out; the event that removed it already asked for another look.
    fn aim_watches(&mut self, dirs: &BTreeSet<PathBuf>) {
        let watcher = self.debouncer.watcher();
        for stale in self.watched.difference(dirs) {
            // The kernel drops the watch of a deleted directory by itself.
            let _ = watcher.unwatch(stale);
        }
        let mut watched = BTreeSet::new();
        for dir in dirs {
            if self.watched.contains(dir) || watcher.watch(dir, RecursiveMode::NonRecursive).is_ok()
            {
                watched.insert(dir.clone());
            }
        }
        self.watched = watched;
    }
}

/// Where a path leads now.
#[derive(Debug, PartialEq)]
struct Resolution {
    /// The file the path names after every symlink (or would name: the
    /// path of the first missing component, and what follows it).
    target: PathBuf,
    /// The directories whose entries decide that: the one holding each
    /// symlink on the way, and the target's own (or the deepest one that
    /// exists when part of the path is missing).
    dirs: BTreeSet<PathBuf>,
}

/// Resolves an absolute path component by component, like the kernel does,
/// noting the directory of every symlink it follows.
fn resolve(path: &Path) -> Resolution {
    let mut dirs = BTreeSet::new();
    let mut pending: VecDeque<OsString> = components(path).collect();
    let mut current = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            current.pop();
            continue;
        }
        let candidate = current.join(&name);
        let link = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if !meta.file_type().is_symlink() => {
                current = candidate;
                continue;
            }
            Ok(_) if hops < MAX_SYMLINK_HOPS => std::fs::read_link(&candidate).ok(),
            _ => None,
        };
        dirs.insert(current.clone());
        let Some(link) = link else {
            // Missing (or unreadable, or a symlink loop): this is as far as
            // the path leads now; a change here is what to wait for.
            let mut target = candidate;
            target.extend(pending);
            return Resolution { target, dirs };
        };
        hops += 1;
        if link.is_absolute() {
            current = PathBuf::from("/");
        }
        for (at, part) in components(&link).enumerate() {
            pending.insert(at, part);
        }
    }
    if let Some(parent) = current.parent() {
        dirs.insert(parent.to_path_buf());
    }
    Resolution {
        target: current,
        dirs,
    }
}

/// The names a path walks through (`.` dropped, `..` kept for the walk).
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|component| match component {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// Reads at most one byte more than a topology may have; what is not a
/// regular file (a FIFO would block the watch) is an error at once.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    crate::load::open_regular(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    /// Long enough for inotify and the debouncer on a loaded machine.
    const PATIENCE: Duration = Duration::from_secs(10);
    const DEBOUNCE: Duration = Duration::from_millis(20);

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "netloom-files-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A watch whose first answer (the file as it is) has been taken.
    async fn watch(path: &Path) -> FileWatch {
        let mut watch = FileWatch::start(path, DEBOUNCE).unwrap();
        let _ = watch.next().await;
        watch
    }

    async fn next(watch: &mut FileWatch) -> FileEvent {
        tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("the watch saw the change")
    }

    async fn expect_content(watch: &mut FileWatch, expected: &str) {
        match next(watch).await {
            FileEvent::Changed(content) => {
                assert_eq!(String::from_utf8(content.bytes).unwrap(), expected)
            }
            other => panic!("expected new content {expected:?}, got {other:?}"),
        }
    }

    /// Nothing is reported for a while (events may come, but no change).
    async fn expect_quiet(watch: &mut FileWatch) {
        let waited = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
        assert!(waited.is_err(), "unexpected event {waited:?}");
    }

    #[tokio::test]
    async fn first_answer_is_the_file_as_it_is() {
        let dir = temp_dir();
        let file = dir.join("topology.yaml");
        fs::write(&file, "name: a\n").unwrap();
        let mut watch = FileWatch::start(&file, DEBOUNCE).unwrap();
        expect_content(&mut watch, "name: a\n").await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn in_place_write() {
        let dir = temp_dir();
        let file = dir.join("topology.yaml");
        fs::write(&file, "name: a\n").unwrap();
        let mut watch = watch(&file).await;
        fs::write(&file, "name: b\n").unwrap();
        expect_content(&mut watch, "name: b\n").await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn editor_rename_save() {
        let dir = temp_dir();
        let file = dir.join("topology.yaml");
        fs::write(&file, "name: a\n").unwrap();
        let mut watch = watch(&file).await;
        let swap = dir.join(".topology.yaml.swp");
        fs::write(&swap, "name: b\n").unwrap();
        fs::rename(&swap, &file).unwrap();
        expect_content(&mut watch, "name: b\n").await;
        // A second save still lands: the watch is on the directory, not on
        // the inode the first rename replaced.
        fs::write(&swap, "name: c\n").unwrap();
        fs::rename(&swap, &file).unwrap();
        expect_content(&mut watch, "name: c\n").await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn git_checkout_unlinks_and_recreates() {
        let dir = temp_dir();
        let file = dir.join("topology.yaml");
        fs::write(&file, "name: a\n").unwrap();
        let mut watch = watch(&file).await;
        // What git does when it checks out another version of a file.
        fs::remove_file(&file).unwrap();
        fs::write(&file, "name: b\n").unwrap();
        expect_content(&mut watch, "name: b\n").await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn configmap_data_symlink_swap() {
        // The layout kubelet gives a ConfigMap volume: the file is a
        // symlink through `..data`, which points at a timestamped directory;
        // an update writes a new directory and renames a new `..data` over
        // the old one, then removes the old directory.
        let dir = temp_dir();
        let first = dir.join("..2026_12_01_00_00_00.1");
        fs::create_dir(&first).unwrap();
        fs::write(first.join("topology.yaml"), "name: a\n").unwrap();
        symlink("..2026_12_01_00_00_00.1", dir.join("..data")).unwrap();
        symlink("..data/topology.yaml", dir.join("topology.yaml")).unwrap();
        let mut watch = watch(&dir.join("topology.yaml")).await;

        for (round, content) in ["name: b\n", "name: c\n"].into_iter().enumerate() {
            let old = fs::read_link(dir.join("..data")).unwrap();
            let new_name = format!("..2026_12_01_00_00_0{round}.2");
            fs::create_dir(dir.join(&new_name)).unwrap();
            fs::write(dir.join(&new_name).join("topology.yaml"), content).unwrap();
            symlink(&new_name, dir.join("..data_tmp")).unwrap();
            fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
            fs::remove_dir_all(dir.join(old)).unwrap();
            expect_content(&mut watch, content).await;
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn symlink_repointed_elsewhere_then_edited_there() {
        let dir = temp_dir();
        for version in ["v1", "v2"] {
            fs::create_dir(dir.join(version)).unwrap();
        }
        fs::write(dir.join("v1/topology.yaml"), "name: a\n").unwrap();
        fs::write(dir.join("v2/topology.yaml"), "name: b\n").unwrap();
        let link = dir.join("current.yaml");
        symlink(dir.join("v1/topology.yaml"), &link).unwrap();
        let mut watch = watch(&link).await;

        symlink(dir.join("v2/topology.yaml"), dir.join("next.yaml")).unwrap();
        fs::rename(dir.join("next.yaml"), &link).unwrap();
        expect_content(&mut watch, "name: b\n").await;
        // The watch moved to the new target's directory: an edit there is seen,
        // one to the old target is not.
        fs::write(dir.join("v1/topology.yaml"), "name: old\n").unwrap();
        expect_quiet(&mut watch).await;
        fs::write(dir.join("v2/topology.yaml"), "name: c\n").unwrap();
        expect_content(&mut watch, "name: c\n").await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn deleted_file_is_unavailable_until_it_comes_back() {
        let dir = temp_dir();
        let file = dir.join("topology.yaml");
        fs::write(&file, "name: a\n").unwrap();
        let mut watch = watch(&file).await;
        fs::remove_file(&file).unwrap();
        match next(&mut watch).await {
            FileEvent::Unavailable { resolved, error } => {
                assert_eq!(resolved, file);
                assert_eq!(error.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected the file to be unavailable, got {other:?}"),
        }
        // Coming back, even with the same content, is news to the caller.
        fs::write(&file, "name: a\n").unwrap();
        expect_content(&mut watch, "name: a\n").await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn whole_directory_replaced() {
        let root = temp_dir();
        let dir = root.join("config");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("topology.yaml"), "name: a\n").unwrap();
        let mut watch = watch(&dir.join("topology.yaml")).await;
        fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            next(&mut watch).await,
            FileEvent::Unavailable { .. }
        ));
        // The watch fell back to the parent, so the new directory is seen,
        // and then the file created in it.
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("topology.yaml"), "name: b\n").unwrap();
        expect_content(&mut watch, "name: b\n").await;
        fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn same_content_or_a_neighbour_changing_is_no_event() {
        let dir = temp_dir();
        let file = dir.join("topology.yaml");
        fs::write(&file, "name: a\n").unwrap();
        let mut watch = watch(&file).await;
        fs::write(&file, "name: a\n").unwrap();
        fs::write(dir.join("notes.txt"), "unrelated\n").unwrap();
        expect_quiet(&mut watch).await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn resolve_notes_the_directory_of_every_symlink() {
        let dir = temp_dir();
        fs::create_dir(dir.join("real")).unwrap();
        fs::write(dir.join("real/topology.yaml"), "").unwrap();
        symlink("real", dir.join("..data")).unwrap();
        symlink("..data/topology.yaml", dir.join("topology.yaml")).unwrap();
        let resolution = resolve(&dir.join("topology.yaml"));
        assert_eq!(resolution.target, dir.join("real/topology.yaml"));
        assert_eq!(
            resolution.dirs,
            BTreeSet::from([dir.clone(), dir.join("real")])
        );

        let missing = resolve(&dir.join("gone/topology.yaml"));
        assert_eq!(missing.target, dir.join("gone/topology.yaml"));
        assert_eq!(missing.dirs, BTreeSet::from([dir.clone()]));

        symlink("loop", dir.join("loop")).unwrap();
        assert_eq!(resolve(&dir.join("loop")).target, dir.join("loop"));
        fs::remove_dir_all(dir).unwrap();
    }
}

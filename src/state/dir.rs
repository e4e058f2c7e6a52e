//! The state dir itself: the lock that serialises runs, and the files
//! of every topology (`NAME.json` records, `NAME.journal` journals).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::journal::{Journal, fold_journal};
use super::{NamespaceBirths, Record, Records, StateError, io_error};

/// Held while a run changes the kernel; released on drop.
pub struct Lock {
    _file: Flock<File>,
}

pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create(&self) -> Result<(), StateError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(io_error(&self.path))
    }

    /// Takes the lock of this state dir, waiting up to `timeout`.
    pub fn lock(&self, timeout: Duration) -> Result<Lock, StateError> {
        self.create()?;
        let path = self.path.join("lock");
        let started = Instant::now();
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_error(&path))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut locked) => {
                    // Say who holds it, for whoever waits next.
                    let _ = locked.set_len(0);
                    let _ = writeln!(*locked, "{}", std::process::id());
                    return Ok(Lock { _file: locked });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = fs::read_to_string(&path)
                        .ok()
                        .map(|pid| pid.trim().to_string())
                        .filter(|pid| !pid.is_empty())
                        .map(|pid| format!(" (pid {pid})"))
                        .unwrap_or_default();
                    return Err(StateError::Locked {
                        path: self.path.clone(),
                        holder,
                        waited: started.elapsed(),
                    });
                }
                Err((_, errno)) => return Err(io_error(&path)(errno.into())),
            }
        }
    }

    fn record_path(&self, topology: &str) -> PathBuf {
        self.path.join(format!("{topology}.json"))
    }

    fn journal_path(&self, topology: &str) -> PathBuf {
        self.path.join(format!("{topology}.journal"))
    }

    /// Every topology's record, with any journal a killed run left behind
    /// folded in (in memory: `recover` makes it stick), `births` telling
    /// when the namespaces it names appeared. A missing state dir has none.
    pub fn records(&self, births: NamespaceBirths) -> Result<Records, StateError> {
        let mut records = Records::default();
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(records),
            Err(err) => return Err(io_error(&self.path)(err)),
        };
        let mut journals = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_error(&self.path))?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {
                    let record = read_record(&path)?;
                    records.by_topology.insert(record.topology.clone(), record);
                }
                Some("journal") => journals.push(path),
                _ => {}
            }
        }
        for path in journals {
            let Some(topology) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let record = records
                .by_topology
                .entry(topology.to_string())
                .or_insert_with(|| Record::new(topology));
            fold_journal(&path, record, births)?;
        }
        Ok(records)
    }

    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        self.create()?;
        let path = self.record_path(&record.topology);
        if record.is_empty() {
            return match fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path)(err)),
                _ => Ok(()),
            };
        }
        // Write aside and rename: a crash leaves the old record or the new.
        let partial = path.with_extension("json.partial");
        let text = serde_json::to_string_pretty(record).expect("a record serializes");
        fs::write(&partial, text).map_err(io_error(&partial))?;
        fs::rename(&partial, &path).map_err(io_error(&path))
    }

    /// Makes a killed run's journal part of the record (already folded
    /// into `records` by `records()`), so that what it may have created is
    /// known to be this topology's for good; then drops the journal.
    pub fn recover(&self, records: &Records, topology: &str) -> Result<(), StateError> {
        let path = self.journal_path(topology);
        if !path.exists() {
            return Ok(());
        }
        if let Some(record) = records.get(topology) {
            self.save(record)?;
        }
        fs::remove_file(&path).map_err(io_error(&path))
    }

    /// Opens the journal of a run.
    pub fn journal(&self, topology: &str) -> Result<Journal, StateError> {
        self.create()?;
        Journal::open(self.journal_path(topology))
    }
}

fn read_record(path: &Path) -> Result<Record, StateError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|err| StateError::Damaged {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
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
        let records = state.records(&no_namespaces).unwrap();
        state.recover(&records, "lab").unwrap();
        {
            let mut journal = state.journal("lab").unwrap();
            journal.log(&update("web"), Moment::Starting).unwrap();
            journal.log(&update(""), Moment::Starting).unwrap();
        }
        let records = state.records(&no_namespaces).unwrap();
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
        let records = state.records(&no_namespaces).unwrap();
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
            state.records(&no_namespaces).unwrap().creator_of(&bridge),
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
            state.records(&no_namespaces).unwrap().get("lab"),
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
}

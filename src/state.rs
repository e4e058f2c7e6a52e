//! The state dir (`--state-dir`, default /run/netloom): one lock that
//! serialises runs, and per topology a state record and a journal.
//!
//! The record says what a topology created where the kernel has no room
//! for a mark (or before the mark was written), and which values it
//! replaced (sysctls of namespaces it did not create, restored on destroy).
//! The journal is appended before every change; a run killed half way
//! leaves it behind, and the next run folds it into the record first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::model::{Action, Change, Claims, Desired, Kind, Resource, ResourceId};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state dir {path}: {source}")]
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
    #[error("state record {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one topology created and replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub topology: String,
    /// Namespaces this topology made: where to look for what it left
    /// behind (a pod removed from the file). They are not claims: whether
    /// a namespace is the topology's is its loopback's mark (a namespace
    /// someone made anew under the same name is not netloom's).
    #[serde(default)]
    pub namespaces: BTreeSet<String>,
    /// Objects that are this topology's without a mark to say so: routes
    /// outside its namespaces (their protocol says netloom, not which
    /// topology), and whatever a killed run may have created before it
    /// could mark it.
    pub created: BTreeSet<ResourceId>,
    /// Sysctls of namespaces netloom did not create, with the value they
    /// had before netloom first set them.
    #[serde(with = "as_pairs")]
    pub replaced: BTreeMap<ResourceId, String>,
}

/// JSON object keys are strings: a map keyed by id is kept as a list of
/// `[id, value]` pairs.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::ResourceId;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<ResourceId, String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<ResourceId, String>, D::Error> {
        Ok(Vec::<(ResourceId, String)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

impl Record {
    pub fn new(topology: &str) -> Record {
        Record {
            version: 1,
            topology: topology.to_string(),
            ..Record::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.created.is_empty() && self.replaced.is_empty()
    }

    /// Takes note of a change that was (or, when replaying a journal,
    /// may have been) carried out.
    pub fn note(&mut self, change: &Change, owned_namespaces: &BTreeSet<String>) {
        let id = &change.id;
        match (change.action, id.kind) {
            (Action::Create, Kind::Namespace) => {
                self.namespaces.insert(id.ns.clone());
                self.created.insert(id.clone());
            }
            (Action::Create, Kind::Link | Kind::Route) if !owned_namespaces.contains(&id.ns) => {
                self.created.insert(id.clone());
            }
            (Action::Update, Kind::Sysctl) if !owned_namespaces.contains(&id.ns) => {
                if let Some(Resource::Sysctl { value }) = &change.from {
                    self.replaced
                        .entry(id.clone())
                        .or_insert_with(|| value.clone());
                }
            }
            (Action::Delete, kind) => {
                self.created.remove(id);
                if kind == Kind::Namespace {
                    self.namespaces.remove(&id.ns);
                }
            }
            _ => {}
        }
    }

    /// What is left to record once the kernel is verified to hold exactly
    /// `desired`, every object marked: its namespaces, and the routes
    /// outside them. Claims a killed run left, and objects long gone, are
    /// dropped, so a stale claim can never make a newcomer look netloom's.
    pub fn settle(&mut self, desired: &Desired) {
        self.namespaces = desired.namespaces().map(String::from).collect();
        // Only values of namespaces netloom did not make are worth restoring.
        self.replaced
            .retain(|id, _| !self.namespaces.contains(&id.ns));
        self.created = desired
            .resources
            .keys()
            .filter(|id| id.kind == Kind::Route && !self.namespaces.contains(&id.ns))
            .cloned()
            .collect();
    }

    /// Every namespace this topology made or may have made.
    pub fn all_namespaces(&self) -> BTreeSet<String> {
        let claimed = self.created.iter().filter(|id| id.kind == Kind::Namespace);
        let mut all = self.namespaces.clone();
        all.extend(claimed.map(|id| id.ns.clone()));
        all
    }
}

/// The records of every topology in a state dir.
#[derive(Clone, Debug, Default)]
pub struct Records {
    pub by_topology: BTreeMap<String, Record>,
}

impl Records {
    /// The topology whose record says it created `id`.
    pub fn creator_of(&self, id: &ResourceId) -> Option<&str> {
        self.by_topology
            .values()
            .find(|record| record.created.contains(id))
            .map(|record| record.topology.as_str())
    }

    pub fn get(&self, topology: &str) -> Option<&Record> {
        self.by_topology.get(topology)
    }
}

impl Claims for Records {
    fn creator_of(&self, id: &ResourceId) -> Option<&str> {
        Records::creator_of(self, id)
    }
}

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
    /// folded in (in memory: `recover` makes it stick). A missing state
    /// dir has none.
    pub fn records(&self) -> Result<Records, StateError> {
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
            fold_journal(&path, record)?;
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
        let path = self.journal_path(topology);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(Journal { file, path })
    }
}

/// Takes note of every change a journal logged. Each may or may not have
/// happened: a create is claimed (the object may exist, unmarked), a
/// delete is not trusted (the object may still be there).
fn fold_journal(path: &Path, record: &mut Record) -> Result<(), StateError> {
    let file = File::open(path).map_err(io_error(path))?;
    // A sysctl changed in a namespace the topology made (by an earlier run
    // or by this journal's) replaced nothing worth restoring on destroy.
    let mut made = record.all_namespaces();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io_error(path))?;
        // The last line may be cut short by the kill: skip it.
        if let Ok(entry) = serde_json::from_str::<JournalEntry>(&line) {
            let change = entry.into_change();
            if change.action != Action::Delete {
                if change.action == Action::Create && change.id.kind == Kind::Namespace {
                    made.insert(change.id.ns.clone());
                }
                record.note(&change, &made);
            }
        }
    }
    Ok(())
}

fn read_record(path: &Path) -> Result<Record, StateError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|err| StateError::Damaged {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// One journal line: a change, with the value it replaces.
#[derive(Serialize, Deserialize)]
struct JournalEntry {
    action: Action,
    id: ResourceId,
    from: Option<Resource>,
    to: Option<Resource>,
}

impl JournalEntry {
    fn into_change(self) -> Change {
        Change {
            action: self.action,
            id: self.id,
            from: self.from,
            to: self.to,
            takes_along: Vec::new(),
        }
    }
}

/// Append-only log of the changes of one run, written before each change.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Logs a change before it is made. One write per line: a kill leaves
    /// whole lines (and at worst one cut short).
    pub fn log(&mut self, change: &Change) -> Result<(), StateError> {
        let entry = JournalEntry {
            action: change.action,
            id: change.id.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
        };
        let mut line = serde_json::to_string(&entry).expect("a change serializes");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io_error(&self.path))
    }

    /// The run is over and its record saved: the journal is no longer needed.
    pub fn finish(self) -> Result<(), StateError> {
        drop(self.file);
        fs::remove_file(&self.path).map_err(io_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            journal
                .log(&create(made.clone(), Resource::Namespace))
                .unwrap();
        }
        let records = state.records().unwrap();
        state.recover(&records, "lab").unwrap();
        {
            let mut journal = state.journal("lab").unwrap();
            journal.log(&update("web")).unwrap();
            journal.log(&update("")).unwrap();
        }
        let records = state.records().unwrap();
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
        {
            let mut journal = state.journal("lab").unwrap();
            journal
                .log(&create(
                    bridge.clone(),
                    Resource::Link(crate::model::LinkKind::Bridge),
                ))
                .unwrap();
            journal
                .log(&create(ResourceId::namespace("web"), Resource::Namespace))
                .unwrap();
            // A line cut short by kill -9.
            journal.file.write_all(b"{\"action\":\"cre").unwrap();
        }
        // Read-only commands (plan, status) already see the claim.
        let records = state.records().unwrap();
        assert_eq!(records.creator_of(&bridge), Some("lab"));
        assert!(dir.join("lab.journal").exists());
        state.recover(&records, "lab").unwrap();
        assert_eq!(
            records.creator_of(&ResourceId::namespace("web")),
            Some("lab")
        );
        // Saved, and the journal is gone.
        assert_eq!(state.records().unwrap().creator_of(&bridge), Some("lab"));
        assert!(!dir.join("lab.journal").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn replaced_values_keep_the_first_original() {
        let mut record = Record::new("lab");
        let id = ResourceId::new("", Kind::Sysctl, "net.ipv4.ip_forward");
        let update = |from: &str, to: &str| Change {
            action: Action::Update,
            id: id.clone(),
            from: Some(Resource::Sysctl { value: from.into() }),
            to: Some(Resource::Sysctl { value: to.into() }),
            takes_along: Vec::new(),
        };
        record.note(&update("0", "1"), &BTreeSet::new());
        record.note(&update("1", "0"), &BTreeSet::new());
        assert_eq!(record.replaced[&id], "0");
        // In a namespace netloom created, nothing is replaced.
        let mut owned = Record::new("lab");
        let ns_id = ResourceId::new("web", Kind::Sysctl, "net.ipv4.ip_forward");
        owned.note(
            &Change {
                id: ns_id,
                ..update("0", "1")
            },
            &BTreeSet::from(["web".to_string()]),
        );
        assert!(owned.replaced.is_empty());
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
        assert_eq!(state.records().unwrap().get("lab"), Some(&record));
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

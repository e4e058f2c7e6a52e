//! The journal of a run: every change logged before it is made, so that
//! a run killed half way leaves a trace the next run folds into the record.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{NamespaceBirths, Record, StateError, io_error};
use crate::model::{Action, Change, Kind, Resource, ResourceId};

/// Takes note of every change a journal logged. Each may or may not have
/// happened: a namespace's create is claimed only if the journal says it
/// was done (a namespace someone else made later under that name is not
/// netloom's); a delete is not trusted (the object may still be there).
/// `births` says when a namespace appeared (the kernel's answer, asked by
/// the caller).
pub(super) fn fold_journal(
    file: File,
    path: &Path,
    record: &mut Record,
    births: NamespaceBirths,
) -> Result<(), StateError> {
    let last_written = file.metadata().and_then(|m| m.modified()).ok();
    let mut entries = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io_error(path))?;
        // The last line may be cut short by the kill: skip it.
        if let Ok(entry) = serde_json::from_str::<JournalEntry>(&line) {
            entries.push(entry);
        }
    }
    let done: HashSet<(Action, ResourceId)> = entries
        .iter()
        .filter(|entry| entry.done)
        .map(|entry| (entry.action, entry.id.clone()))
        .collect();
    // A sysctl changed in a namespace the topology made (by an earlier run
    // or by this journal's) replaced nothing worth restoring on destroy.
    let mut made = record.all_namespaces();
    for entry in entries.into_iter().filter(|entry| !entry.done) {
        let change = entry.into_change();
        // A namespace's name is anyone's to take after a kill: only a done
        // line proves netloom made it. A link or route started and not seen
        // done has a name netloom derived, in a namespace it works in: a
        // kill among many creates in flight must not orphan it.
        let proven = change.action != Action::Create
            || change.id.kind != Kind::Namespace
            || done.contains(&(change.action, change.id.clone()))
            || made_while_journalling(births(&change.id.ns), last_written);
        if change.action == Action::Delete || !proven {
            continue;
        }
        if change.action == Action::Create && change.id.kind == Kind::Namespace {
            made.insert(change.id.ns.clone());
        }
        record.note(&change, &made);
    }
    Ok(())
}

/// How long after the journal's last line a namespace made by the killed
/// run may still have appeared: the creates it had in flight.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// Whether a namespace whose create was started but not seen done was made
/// by that run: it appeared (`made`; `None`: it is not there) before the
/// run's journal went quiet (plus what was in flight), not later, as one
/// someone else made after the kill.
fn made_while_journalling(made: Option<SystemTime>, last_written: Option<SystemTime>) -> bool {
    match (made, last_written) {
        (Some(made), Some(last_written)) => made <= last_written + IN_FLIGHT,
        _ => false,
    }
}

/// When a change is told to the journal: before it starts, and once the
/// kernel has made it (the proof a later run needs to claim an unmarked
/// object as netloom's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    Starting,
    Done,
}

/// One journal line: a change, with the value it replaces.
#[derive(Serialize, Deserialize)]
struct JournalEntry {
    action: Action,
    id: ResourceId,
    from: Option<Resource>,
    to: Option<Resource>,
    /// A second line for the same change, once the kernel has made it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
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
    pub(super) file: File,
    path: PathBuf,
    topology: String,
}

impl Journal {
    /// The journal in `file`, opened (to append) by the state dir.
    pub(super) fn new(file: File, path: PathBuf, topology: &str) -> Journal {
        Journal {
            file,
            path,
            topology: topology.to_string(),
        }
    }

    /// Logs a change before it is made, and again once it is done. One
    /// write per line: a kill leaves whole lines (and at worst one cut short).
    pub fn log(&mut self, change: &Change, moment: Moment) -> Result<(), StateError> {
        let entry = JournalEntry {
            action: change.action,
            id: change.id.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
            done: moment == Moment::Done,
        };
        let mut line = serde_json::to_string(&entry).expect("a change serializes");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io_error(&self.path))
    }

    pub(super) fn topology(&self) -> &str {
        &self.topology
    }
}

//! Saved plans (`plan --out PLANFILE`, `apply PLANFILE`; docs/CLI.md,
//! "Saved plans"): a plan together with everything it was computed from
//! (its basis), so that applying it later carries out exactly what was
//! shown, or nothing at all when the kernel or the state records are no
//! longer what the plan was computed from.
//!
//! A plan file is JSON whose first key is `"netloom-plan"`, the format
//! version. Its `fingerprint` is the SHA-256 of its basis; `apply` takes
//! the same snapshot under the lock, and only when the two fingerprints
//! are equal does it execute the saved changes (never a fresh diff).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EngineError, Options, Snapshot};
use crate::diagnostics::SourceFile;
use crate::model::{Change, Mode, OWN_NAMESPACE, Resource, ResourceId, Resources};
use crate::plan::Plan;
use crate::state::Record;

/// The plan file format this netloom writes, and the only one it reads.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// The key a plan file starts with (its value is the format version): how
/// `apply` tells a plan file from a topology file, whatever its name.
const HEADER: &str = "netloom-plan";

/// At most this many differences are named when a plan is refused.
const NAMED_DIFFERENCES: usize = 10;

/// Whether a file's content is a saved plan: a JSON object whose first key
/// is `"netloom-plan"` (no topology file has that key).
pub fn is_plan_file(text: &str) -> bool {
    text.trim_start()
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim_start().starts_with(&format!("\"{HEADER}\"")))
}

/// A plan, what it was computed from, and the file it was made from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    #[serde(rename = "netloom-plan")]
    pub version: u32,
    pub topology: String,
    /// `sha256:<hex>` of `basis` as serialized.
    pub fingerprint: String,
    pub changes: Vec<SavedChange>,
    /// Per change, the changes it waits for (indices into `changes`).
    pub prerequisites: Vec<Vec<usize>>,
    /// The topology file as it was read (for the views of `apply`, and the
    /// file's objects `apply` verifies).
    pub source: SavedSource,
    pub basis: Basis,
}

/// One planned change, with what it takes along (a namespace's veths).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedChange {
    #[serde(flatten)]
    pub change: Change,
    pub takes_along: Vec<ResourceId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedSource {
    pub name: String,
    pub text: String,
}

/// Everything a plan is computed from: the mode, the file's objects as
/// expanded on this machine (with the values to restore), every object
/// observed in scope, and the claims of every state record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// `--host`: which host's part of the file (none: lab mode).
    pub host: Option<String>,
    pub adopt: bool,
    #[serde(with = "as_pairs")]
    pub desired: Resources,
    pub restored: BTreeSet<ResourceId>,
    #[serde(with = "as_pairs")]
    pub observed: Resources,
    #[serde(with = "as_pairs")]
    pub route_protocols: BTreeMap<ResourceId, u8>,
    #[serde(with = "as_pairs")]
    pub alt_names: BTreeMap<(String, String), String>,
    pub records: BTreeMap<String, Record>,
}

/// Why a plan file cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("it is not a netloom plan file: {0}")]
    Malformed(serde_json::Error),
    #[error(
        "it is a plan of format version {found}, and this netloom reads only version {PLAN_FORMAT_VERSION}: make the plan again with this netloom (`netloom plan FILE --out PLANFILE`)"
    )]
    UnknownVersion { found: u64 },
    #[error(
        "its fingerprint does not match what it says it was computed from: the file was edited or damaged; make the plan again"
    )]
    Altered,
}

impl Basis {
    /// The basis of a snapshot taken with these options.
    pub fn of(snapshot: &Snapshot, options: &Options) -> Basis {
        let host = match &options.mode {
            Mode::Lab => None,
            Mode::Host { name, .. } => Some(name.clone()),
        };
        Basis {
            host,
            adopt: options.adopt,
            desired: snapshot.desired.resources.clone(),
            restored: snapshot.restored.clone(),
            observed: snapshot.observed.resources.clone(),
            route_protocols: snapshot.observed.route_protocols.clone(),
            alt_names: snapshot.observed.alt_names.clone(),
            records: snapshot.records.by_topology.clone(),
        }
    }

    /// `sha256:<hex>` of the basis as serialized (maps are ordered, so the
    /// same basis always gives the same text).
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a basis serializes");
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("sha256:{hex}")
    }
}

impl SavedPlan {
    /// The plan of a snapshot, to be saved. A plan with conflicts cannot
    /// be applied and is not saved (the caller says so).
    pub fn new(snapshot: &Snapshot, options: &Options, source: &SourceFile) -> SavedPlan {
        let basis = Basis::of(snapshot, options);
        let changes = snapshot.plan.changes.iter().map(|change| SavedChange {
            takes_along: change.takes_along.clone(),
            change: change.clone(),
        });
        SavedPlan {
            version: PLAN_FORMAT_VERSION,
            topology: snapshot.desired.topology.clone(),
            fingerprint: basis.fingerprint(),
            changes: changes.collect(),
            prerequisites: snapshot.plan.prerequisites.clone(),
            source: SavedSource {
                name: source.name.clone(),
                text: source.text.clone(),
            },
            basis,
        }
    }

    /// Reads a plan file: its version first (an unknown one is refused,
    /// not guessed at), then the rest, whose basis must still have the
    /// fingerprint it was saved with.
    pub fn from_json(text: &str) -> Result<SavedPlan, PlanFileError> {
        #[derive(Deserialize)]
        struct Header {
            #[serde(rename = "netloom-plan")]
            version: u64,
        }
        let header: Header = serde_json::from_str(text).map_err(PlanFileError::Malformed)?;
        if header.version != u64::from(PLAN_FORMAT_VERSION) {
            return Err(PlanFileError::UnknownVersion {
                found: header.version,
            });
        }
        let saved: SavedPlan = serde_json::from_str(text).map_err(PlanFileError::Malformed)?;
        if saved.basis.fingerprint() != saved.fingerprint {
            return Err(PlanFileError::Altered);
        }
        Ok(saved)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a plan serializes");
        text.push('\n');
        text
    }

    /// The mode and `--adopt` the plan was made with.
    pub fn mode(&self) -> Mode {
        Mode::from_host_flag(self.basis.host.clone())
    }

    /// The saved plan, if `snapshot` (taken now, under the lock, with
    /// `options`) is what it was computed from; else what changed since.
    pub fn plan_if_current(
        &self,
        snapshot: &Snapshot,
        options: &Options,
    ) -> Result<Plan, EngineError> {
        let now = Basis::of(snapshot, options);
        if now.fingerprint() != self.fingerprint {
            return Err(EngineError::StalePlan(differences(&self.basis, &now)));
        }
        let changes = self.changes.iter().map(|saved| Change {
            takes_along: saved.takes_along.clone(),
            ..saved.change.clone()
        });
        Ok(Plan {
            changes: changes.collect(),
            prerequisites: self.prerequisites.clone(),
            conflicts: Vec::new(),
        })
    }
}

/// What differs between the basis a plan was computed from and now, for
/// people: the first few differences, and how many more there are. (The
/// mode and `--adopt` are the plan's own: `apply` runs with them.)
fn differences(then: &Basis, now: &Basis) -> Vec<String> {
    let mut found = Vec::new();
    objects(
        "the file now asks for",
        &then.desired,
        &now.desired,
        &mut found,
    );
    objects("the kernel", &then.observed, &now.observed, &mut found);
    for id in changed_keys(&then.route_protocols, &now.route_protocols) {
        found.push(format!("the kernel: the protocol of {id} changed"));
    }
    for (ns, name) in changed_keys(&then.alt_names, &now.alt_names) {
        let place = match ns.as_str() {
            "" => format!("{name} in {OWN_NAMESPACE}"),
            ns => format!("{ns}/{name}"),
        };
        found.push(format!("the kernel: alternative name {place} changed"));
    }
    for topology in changed_keys(&then.records, &now.records) {
        found.push(format!("the state record of topology {topology} changed"));
    }
    if then.restored != now.restored {
        found.push("the values to restore changed".to_string());
    }
    if found.len() > NAMED_DIFFERENCES {
        let more = found.len() - NAMED_DIFFERENCES;
        found.truncate(NAMED_DIFFERENCES);
        found.push(format!("and {more} more"));
    }
    found
}

/// Objects that appeared, are gone or have another value.
fn objects(what: &str, then: &Resources, now: &Resources, found: &mut Vec<String>) {
    for id in changed_keys(then, now) {
        let value = |resource: Option<&Resource>| resource.map(Resource::describe);
        found.push(match (value(then.get(id)), value(now.get(id))) {
            (None, Some(now)) => format!("{what}: {id} appeared ({now})"),
            (Some(_), None) => format!("{what}: {id} is gone"),
            (Some(then), Some(now)) => format!("{what}: {id} changed from {then} to {now}"),
            (None, None) => unreachable!("a changed key is on one side at least"),
        });
    }
}

/// The keys whose values differ between two maps (or that only one has).
fn changed_keys<'a, K: Ord, V: PartialEq>(
    then: &'a BTreeMap<K, V>,
    now: &'a BTreeMap<K, V>,
) -> BTreeSet<&'a K> {
    let gone_or_changed = then.iter().filter(|(k, v)| now.get(*k) != Some(*v));
    let appeared = now.keys().filter(|k| !then.contains_key(*k));
    gone_or_changed.map(|(k, _)| k).chain(appeared).collect()
}

/// JSON object keys are strings: a map keyed by ids is kept as a list of
/// `[key, value]` pairs.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map)
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

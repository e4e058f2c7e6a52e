//! The start snapshot of a changing run (`NAME.start`): what the kernel
//! held, in the part the run's plan touches, before its first change, and
//! the record then. Written durably before that change; kept until a newer
//! changing run of the topology replaces it, so that `apply --atomic`,
//! `--confirm` and `netloom rollback` can put that state back.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Record;
use crate::model::{Resource, ResourceId};

/// The version written; another one is refused, not guessed at.
pub const START_VERSION: u32 = 1;

/// What a run found at its start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartSnapshot {
    pub version: u32,
    pub topology: String,
    /// The namespaces the run observed, each with the sysctl keys read there.
    pub scope: BTreeMap<String, BTreeSet<String>>,
    /// What the plan may change, and all that goes or comes with it.
    pub region: Region,
    /// Every object of the region as observed at the start.
    #[serde(with = "as_pairs")]
    pub objects: BTreeMap<ResourceId, Resource>,
    /// The `protocol` of every route among them.
    #[serde(with = "as_pairs")]
    pub route_protocols: BTreeMap<ResourceId, u8>,
    /// The topology's record at the start.
    pub record: Record,
}

/// The part of the kernel a plan reaches: whole namespaces it creates or
/// deletes, interfaces (namespace, name) it creates or deletes with all
/// that hangs on them, interfaces whose addresses change (with the routes
/// through them), and single objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub namespaces: BTreeSet<String>,
    pub interfaces: BTreeSet<(String, String)>,
    pub route_devices: BTreeSet<(String, String)>,
    pub objects: BTreeSet<ResourceId>,
}

/// JSON object keys are strings: a map keyed by id is kept as a list of
/// `[id, value]` pairs.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::model::ResourceId;

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<ResourceId, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<ResourceId, V>, D::Error> {
        Ok(Vec::<(ResourceId, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

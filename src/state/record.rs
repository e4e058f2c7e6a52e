//! The state record of a topology (pure): what it created where the
//! kernel carries no mark, and the values it replaced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{Action, Change, Claims, Desired, Kind, Resource, ResourceId};

/// The version of the record format this netloom reads and writes; a
/// record of any other is refused (docs/DESIGN.md, "The state dir").
pub const RECORD_VERSION: u32 = 1;

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
    /// topology), whatever a killed run may have created before it could
    /// mark it, and the sysctls it set in its own namespaces (reset to the
    /// kernel's default when the file drops them).
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
            version: RECORD_VERSION,
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
            // A sysctl set in a namespace netloom made: reset to the
            // kernel's default once the file stops declaring it.
            (Action::Create | Action::Update, Kind::Sysctl)
                if owned_namespaces.contains(&id.ns) =>
            {
                self.created.insert(id.clone());
            }
            // An MTU set on a link netloom made (it sets none on others):
            // back to the kernel's default once the file stops declaring it.
            (Action::Create | Action::Update, Kind::Mtu) => {
                self.created.insert(id.clone());
            }
            (Action::Update, Kind::Sysctl) => {
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
        let in_own_namespace = |id: &ResourceId| self.namespaces.contains(&id.ns);
        self.created = desired
            .resources
            .keys()
            .filter(|id| match id.kind {
                Kind::Route => !in_own_namespace(id),
                Kind::Sysctl => in_own_namespace(id),
                Kind::Mtu => true,
                _ => false,
            })
            .cloned()
            .collect();
    }

    /// Values put back as they were before this topology set them
    /// (`engine::restore`): nothing of them is left to restore.
    pub fn restored<'a>(&mut self, ids: impl IntoIterator<Item = &'a ResourceId>) {
        for id in ids {
            self.replaced.remove(id);
            self.created.remove(id);
        }
    }

    /// Every namespace this topology made or may have made.
    /// What the record says of these namespaces only (a repair's part).
    pub fn within(&self, namespaces: &BTreeSet<String>) -> Record {
        Record {
            version: self.version,
            topology: self.topology.clone(),
            namespaces: self.namespaces.intersection(namespaces).cloned().collect(),
            created: (self.created.iter())
                .filter(|id| namespaces.contains(&id.ns))
                .cloned()
                .collect(),
            replaced: (self.replaced.iter())
                .filter(|(id, _)| namespaces.contains(&id.ns))
                .map(|(id, value)| (id.clone(), value.clone()))
                .collect(),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

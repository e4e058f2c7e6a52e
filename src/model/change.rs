//! What the kernel has (`Observed`) and one change to it (`Change`): the
//! vocabulary the planner writes, the kernel layer carries out and the
//! state journal logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KERNEL_ROUTE_PROTOCOLS, Resource, ResourceId, Resources};

/// What the kernel has, in the model's shape, plus the facts ownership
/// needs that are not part of a resource's value.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub resources: Resources,
    /// The `protocol` of every observed route.
    pub route_protocols: BTreeMap<ResourceId, u8>,
    /// (namespace, alternative name) -> the interface's name.
    pub alt_names: BTreeMap<(String, String), String>,
}

impl Observed {
    /// A route the kernel made by itself: for an address's subnet, or
    /// from a router advertisement. It follows its cause; it is not an
    /// object anyone manages.
    pub fn is_kernel_route(&self, id: &ResourceId) -> bool {
        self.route_protocols
            .get(id)
            .is_some_and(|protocol| KERNEL_ROUTE_PROTOCOLS.contains(protocol))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One change to the kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub action: Action,
    pub id: ResourceId,
    /// The live value (update, delete).
    pub from: Option<Resource>,
    /// The wanted value (create, update).
    pub to: Option<Resource>,
    /// Links in other namespaces that vanish with this deletion (a
    /// namespace takes its veths' peers with it, a little later).
    #[serde(skip)]
    pub takes_along: Vec<ResourceId>,
}

/// Who created what where the kernel carries no mark to say so: the
/// claims of the state records, as the planner needs them.
pub trait Claims {
    /// The topology that claims to have created `id`.
    fn creator_of(&self, id: &ResourceId) -> Option<&str>;
}

/// A plain claim map: id -> the topology that created it.
impl Claims for BTreeMap<ResourceId, String> {
    fn creator_of(&self, id: &ResourceId) -> Option<&str> {
        self.get(id).map(String::as_str)
    }
}

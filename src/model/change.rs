//! What the kernel has (`Observed`) and one change to it (`Change`): the
//! vocabulary the planner writes, the kernel layer carries out and the
//! state journal logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ipnet::IpNet;

use super::{KERNEL_ROUTE_PROTOCOLS, Kind, MAIN_TABLE, Resource, ResourceId, Resources, Route};

/// The route protocols the kernel writes itself (KERNEL_ROUTE_PROTOCOLS).
const KERNEL_PROTOCOL: u8 = KERNEL_ROUTE_PROTOCOLS[0];
const RA_PROTOCOL: u8 = KERNEL_ROUTE_PROTOCOLS[1];

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
        match self.route_protocols.get(id) {
            Some(&RA_PROTOCOL) => true,
            // `proto kernel` is only a claim: anyone can write it. The
            // kernel's own are an address's subnet route (metric 0, or 256
            // for IPv6) and the IPv6 link-local fe80::/64 of an interface.
            Some(&KERNEL_PROTOCOL) => match self.resources.get(id) {
                Some(Resource::Route(route)) => self.made_for_an_address(&id.ns, route),
                _ => false,
            },
            _ => false,
        }
    }

    fn made_for_an_address(&self, ns: &str, route: &Route) -> bool {
        let (Some(dev), None) = (&route.dev, route.via) else {
            return false;
        };
        let kernel_metric = if route.to.addr().is_ipv4() { 0 } else { 256 };
        if route.metric != kernel_metric || route.table != MAIN_TABLE {
            return false;
        }
        let link_local: IpNet = "fe80::/64".parse().expect("a network");
        if route.to == link_local {
            return true;
        }
        // The addresses of `dev`: ids `dev ip` (and `dev ip/prefix`).
        let from = ResourceId::new(ns, Kind::Address, format!("{dev} "));
        self.resources
            .range(from..)
            .take_while(|(other, _)| {
                other.ns == ns && other.kind == Kind::Address && other.name.starts_with(&format!("{dev} "))
            })
            .any(|(_, address)| {
                matches!(address, Resource::Address { address, .. } if address.trunc() == route.to)
            })
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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

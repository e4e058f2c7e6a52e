//! Who each observed object belongs to: this topology, another one,
//! nobody, or the kernel itself. From the marks the kernel carries (a
//! link's alias, a namespace's loopback alias, a route's protocol) and,
//! where there is no room for a mark, the state records' claims.

use std::collections::HashMap;

use serde::Serialize;

use super::Context;
use crate::model::{Kind, LinkKind, Observed, ROUTE_PROTOCOL, Resource, ResourceId, mark_owner};

/// Who an observed object belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "owner", content = "topology")]
pub enum Owner {
    /// This topology: netloom may change and delete it.
    This,
    /// Another topology: never touched.
    Other(String),
    /// Nobody: never touched, unless adopted with `--adopt`.
    Unowned,
    /// The kernel made it by itself (the route of an address's subnet, a
    /// route from a router advertisement): never touched, not adoptable.
    Kernel,
}

/// Ownership of every observed object.
pub fn owners<'a>(observed: &'a Observed, ctx: &Context) -> HashMap<&'a ResourceId, Owner> {
    let resources = &observed.resources;
    // A mark (a link's alias, a namespace's loopback alias) says who owns
    // it; an alias that is not a netloom mark says it is somebody else's.
    let by_alias = |alias: Option<&Resource>| match alias {
        Some(Resource::Alias { alias }) => Some(match mark_owner(alias) {
            Some(t) if t == ctx.topology => Owner::This,
            Some(t) => Owner::Other(t.to_string()),
            None => Owner::Unowned,
        }),
        _ => None,
    };
    let recorded = |id: &ResourceId| match ctx.claims.creator_of(id) {
        Some(t) if t == ctx.topology => Some(Owner::This),
        Some(t) => Some(Owner::Other(t.to_string())),
        None => None,
    };
    // A namespace netloom created carries a mark on its loopback.
    let mut namespace_owner: HashMap<&str, Owner> = HashMap::new();
    for id in resources.keys().filter(|id| id.kind == Kind::Namespace) {
        let alias = resources.get(&ResourceId::new(&id.ns, Kind::Alias, "lo"));
        let owner = by_alias(alias)
            .or_else(|| recorded(id))
            .unwrap_or(Owner::Unowned);
        namespace_owner.insert(&id.ns, owner);
    }
    // Everything in a namespace netloom created is its creator's.
    let wholly_owned = |ns: &str| {
        namespace_owner
            .get(ns)
            .filter(|owner| **owner != Owner::Unowned)
            .cloned()
    };
    // Links: their namespace's, else their own mark, else the record.
    let mut link_owner: HashMap<(&str, &str), Owner> = HashMap::new();
    let mut owners = HashMap::with_capacity(resources.len());
    for (id, resource) in resources {
        if let Resource::Link(kind) = resource {
            let alias = resources.get(&ResourceId::new(&id.ns, Kind::Alias, id.name.clone()));
            let owner = wholly_owned(&id.ns)
                .or_else(|| by_alias(alias))
                .or_else(|| recorded(id))
                .unwrap_or(Owner::Unowned);
            link_owner.insert((&id.ns, &id.name), owner.clone());
            if let LinkKind::Veth { peer_ns, peer } = kind {
                link_owner.insert((peer_ns, peer), owner.clone());
            }
            owners.insert(id, owner);
        }
    }
    for id in resources.keys() {
        let owner = match id.kind {
            Kind::Link => continue,
            Kind::Namespace => namespace_owner[id.ns.as_str()].clone(),
            Kind::Route if observed.is_kernel_route(id) => Owner::Kernel,
            // A declared sysctl of a namespace netloom did not create is
            // managed by value (the replaced value is recorded), not owned.
            Kind::Sysctl if wholly_owned(&id.ns).is_none() => Owner::This,
            Kind::Route if wholly_owned(&id.ns).is_none() => {
                let ours = observed.route_protocols.get(id) == Some(&ROUTE_PROTOCOL);
                recorded(id).filter(|_| ours).unwrap_or(Owner::Unowned)
            }
            // An interface's attributes and addresses are its link's
            // (even where the namespace is netloom's: a foreign veth may
            // reach into it).
            _ => id
                .ifname()
                .and_then(|ifname| link_owner.get(&(id.ns.as_str(), ifname)).cloned())
                .or_else(|| wholly_owned(&id.ns))
                .unwrap_or(Owner::Unowned),
        };
        owners.insert(id, owner);
    }
    owners
}

//! The order of a plan's changes and each one's prerequisites.

use std::collections::{BTreeSet, HashMap};

use super::link_ends;
use crate::graph::{Cycle, Graph, topological_sort};
use crate::model::{Action, Change, Kind, LinkKind, Resource, ResourceId, Resources};

/// Orders changes: creates and updates after what they depend on (in the
/// desired graph), deletes before what they depend on (in the live graph),
/// a replaced object's create after its delete, a delete that frees an
/// interface name (by itself, or by the namespace it takes along) or a
/// VXLAN device's VNI before the create that needs it, and add before
/// delete: an address goes only once the new addresses of its interface
/// are there, a route once the new routes of its namespace are.
pub(super) fn order(
    changes: Vec<Change>,
    desired: &Resources,
    live: &Resources,
) -> Result<(Vec<Change>, Vec<Vec<usize>>), Cycle> {
    // Only what is needed: a no-op plan builds no graph at all.
    let has = |action| changes.iter().any(|c| c.action == action);
    let desired_graph = (has(Action::Create) || has(Action::Update)).then(|| Graph::new(desired));
    let live_graph = has(Action::Delete).then(|| Graph::new(live));
    let index: HashMap<(Action, &ResourceId), usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.action, &c.id), i))
        .collect();
    let mut prerequisites: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); changes.len()];
    // New addresses by interface, new routes by namespace.
    let mut new_addresses: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut new_routes: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        match (c.action, &c.to) {
            (Action::Create, Some(Resource::Address { ifname, .. })) => new_addresses
                .entry((c.id.ns.as_str(), ifname.as_str()))
                .or_default()
                .push(i),
            (Action::Create | Action::Update, Some(Resource::Route(_))) => {
                new_routes.entry(c.id.ns.as_str()).or_default().push(i)
            }
            _ => {}
        }
    }
    let mut freed_names: HashMap<(&str, &str), usize> = HashMap::new();
    // The kernel takes a (VNI, port) once per namespace: a VXLAN device
    // made again under another name waits for the old one to go.
    let mut freed_vnis: HashMap<(&str, u32, u16), Vec<usize>> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if let (Action::Delete, Some(Resource::Link(LinkKind::Vxlan(vxlan)))) = (c.action, &c.from)
        {
            freed_vnis
                .entry((c.id.ns.as_str(), vxlan.vni, vxlan.port))
                .or_default()
                .push(i);
        }
        match (c.action, &c.from) {
            (Action::Delete, Some(from)) if c.id.kind == Kind::Link => {
                freed_names.extend(link_ends(&c.id, from).into_iter().map(|end| (end, i)));
            }
            (Action::Delete, _) if c.id.kind == Kind::Namespace => {
                let along = c.takes_along.iter();
                freed_names.extend(along.map(|end| ((end.ns.as_str(), end.name.as_str()), i)));
            }
            _ => {}
        }
    }
    for (i, c) in changes.iter().enumerate() {
        let pre = &mut prerequisites[i];
        match c.action {
            Action::Create | Action::Update => {
                for dep in desired_graph.iter().flat_map(|g| g.dependencies(&c.id)) {
                    for action in [Action::Create, Action::Update] {
                        pre.extend(index.get(&(action, dep)));
                    }
                }
                pre.extend(index.get(&(Action::Delete, &c.id)));
                if c.id.kind == Kind::Mtu {
                    // A bridge's MTU is set once its leaving ports are gone.
                    pre.extend(leaving_port_deletions(&changes, live, &c.id));
                }
                if let Some(to) = &c.to
                    && c.id.kind == Kind::Link
                {
                    for end in link_ends(&c.id, to) {
                        pre.extend(freed_names.get(&end));
                    }
                    if let Resource::Link(LinkKind::Vxlan(vxlan)) = to {
                        let key = (c.id.ns.as_str(), vxlan.vni, vxlan.port);
                        pre.extend(freed_vnis.get(&key).into_iter().flatten());
                    }
                }
            }
            Action::Delete => {
                for dependent in live_graph.iter().flat_map(|g| g.dependents(&c.id)) {
                    pre.extend(index.get(&(Action::Delete, dependent)));
                }
                let newer = match &c.from {
                    Some(Resource::Address { ifname, .. }) => {
                        new_addresses.get(&(c.id.ns.as_str(), ifname.as_str()))
                    }
                    Some(Resource::Route(_)) => new_routes.get(c.id.ns.as_str()),
                    _ => None,
                };
                let own_create = index.get(&(Action::Create, &c.id));
                pre.extend(
                    newer
                        .into_iter()
                        .flatten()
                        .filter(|&j| Some(j) != own_create),
                );
            }
        }
        pre.remove(&i);
    }
    // Linearize deterministically: deletes last among the ready ones,
    // then by id. Both graphs are acyclic and deletes only wait for
    // creates, so a cycle is a bug in netloom: reported, never run.
    let key = |i: usize| {
        (
            changes[i].action == Action::Delete,
            &changes[i].id,
            changes[i].action,
        )
    };
    let sequence = topological_sort(changes.len(), |i| prerequisites[i].iter().copied(), key)
        .map_err(|stuck| Cycle(stuck.iter().map(|&i| changes[i].id.clone()).collect()))?;
    let position: HashMap<usize, usize> =
        sequence.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let ordered_prerequisites = sequence
        .iter()
        .map(|&i| {
            let mut pre: Vec<usize> = prerequisites[i].iter().map(|j| position[j]).collect();
            pre.sort_unstable();
            pre
        })
        .collect();
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    let ordered = sequence
        .iter()
        .map(|&i| slots[i].take().expect("each once"))
        .collect();
    Ok((ordered, ordered_prerequisites))
}

/// The deletions (of a link, or of a namespace that takes one along) that
/// remove a port of the bridge whose MTU `mtu` is.
fn leaving_port_deletions<'a>(
    changes: &'a [Change],
    live: &'a Resources,
    mtu: &'a ResourceId,
) -> impl Iterator<Item = usize> + 'a {
    let is_port = move |ns: &str, ifname: &str| {
        ns == mtu.ns
            && matches!(
                live.get(&ResourceId::new(ns, Kind::Master, ifname)),
                Some(Resource::Master { master }) if *master == mtu.name
            )
    };
    changes.iter().enumerate().filter_map(move |(i, c)| {
        let removes_port = match (c.action, c.id.kind, &c.from) {
            (Action::Delete, Kind::Link, Some(from)) => link_ends(&c.id, from)
                .into_iter()
                .any(|(ns, ifname)| is_port(ns, ifname)),
            (Action::Delete, Kind::Namespace, _) => {
                c.takes_along.iter().any(|end| is_port(&end.ns, &end.name))
            }
            _ => false,
        };
        removes_port.then_some(i)
    })
}

//! Diff: desired vs observed -> an ordered plan of changes, and the
//! conflicts that stop it. Pure: no kernel, no state dir, no I/O.
//!
//! - `owners`: who each observed object belongs to
//! - `conflict`: what is in the way of the file, and how to fix it
//! - `order`: the order and prerequisites of a plan's changes
//!
//! Ownership (docs/FORMAT.md, "What netloom owns") is decided here, from the
//! marks the kernel carries and the state records' claims: netloom changes
//! or deletes only what this topology owns.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;

use crate::graph::{Cycle, Graph};
use crate::model::{
    Action, Change, Claims, Kind, LinkKind, Observed, ROUTE_PROTOCOL, Resource, ResourceId,
    Resources,
};

mod conflict;
mod order;
mod owners;

pub use conflict::{Cause, Conflict};
pub use owners::{Owner, owners};

/// The changes that make the kernel match, in an order that respects
/// every dependency, with each change's prerequisites (indices into
/// `changes`) so independent changes can run concurrently.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub prerequisites: Vec<Vec<usize>>,
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// (create, update, delete) counts.
    pub fn summary(&self) -> (usize, usize, usize) {
        let count = |action| self.changes.iter().filter(|c| c.action == action).count();
        (
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
        )
    }
}

/// Everything `diff` needs besides the two sides.
pub struct Context<'a> {
    pub topology: &'a str,
    /// Who created what where marks cannot say it: the state records of
    /// every topology.
    pub claims: &'a dyn Claims,
    /// Take over unowned objects in the way instead of stopping.
    pub adopt: bool,
}

/// The plan that turns `observed` into `desired`.
pub fn diff(desired: &Resources, observed: &Observed, ctx: &Context) -> Result<Plan, Cycle> {
    let aligned = align_addresses(desired, observed);
    let observed = aligned.as_ref();
    let owners = owners(observed, ctx);
    let live = &observed.resources;
    let owner_of = |id: &ResourceId| owners.get(id).cloned().unwrap_or(Owner::Unowned);
    let is_ours = |id: &ResourceId| match owners.get(id) {
        Some(Owner::This) => true,
        Some(Owner::Unowned) => ctx.adopt,
        _ => false,
    };
    let live_holders: HashMap<(&str, &str), &ResourceId> = interfaces(live).collect();

    // Declared namespaces, links and routes that something netloom may
    // not touch holds; nothing in or on them is planned.
    let mut blocked: BTreeMap<&ResourceId, Cause> = BTreeMap::new();
    for id in desired.keys() {
        if matches!(id.kind, Kind::Namespace | Kind::Link | Kind::Route)
            && live.contains_key(id)
            && !is_ours(id)
        {
            blocked.insert(id, Cause::SameName);
        }
    }
    // An interface name held by a foreign link (also the peer end of a
    // declared veth, which has no id of its own), by its name or by an
    // alternative name.
    for (end, _) in interfaces(desired) {
        let alt_holder = observed
            .alt_names
            .get(&(end.0.to_string(), end.1.to_string()))
            .and_then(|name| live_holders.get(&(end.0, name.as_str())));
        let direct = live_holders.get(&end).copied();
        if let Some(holder) = direct.or(alt_holder.copied())
            && !is_ours(holder)
        {
            let cause = match direct {
                Some(_) => Cause::SameName,
                None => Cause::AltName(end.1.to_string()),
            };
            blocked.entry(holder).or_insert(cause);
        }
    }
    // With --adopt, an unowned object of another kind (a bridge where a
    // veth is declared) is still in the way: adopting must not delete it.
    for (id, want) in desired {
        if let Some(have) = live.get(id)
            && owner_of(id) == Owner::Unowned
            && !want.updates_in_place()
            && !want.is_satisfied_by(have)
            && id.kind == Kind::Link
        {
            blocked.insert(id, Cause::OtherKind(want.describe()));
        }
    }
    // A veth moved by hand into a namespace this topology wholly owns,
    // whose other end is elsewhere (in a namespace netloom did not make, or
    // one it does not look into): not the topology's to delete, since the
    // peer would go with it.
    let own_namespaces: BTreeSet<&str> = desired
        .keys()
        .filter(|id| id.kind == Kind::Namespace)
        .map(|id| id.ns.as_str())
        .collect();
    for (id, have) in live {
        let Resource::Link(kind) = have else { continue };
        let reaches_out = match kind {
            // Its peer is in no namespace in scope.
            LinkKind::Other { name } => name == "veth" && own_namespaces.contains(id.ns.as_str()),
            LinkKind::Veth { peer_ns, .. } => {
                own_namespaces.contains(id.ns.as_str()) != own_namespaces.contains(peer_ns.as_str())
                    && owner_of(id) == Owner::Unowned
            }
            _ => false,
        };
        if reaches_out && !desired.contains_key(id) {
            blocked.entry(id).or_insert(Cause::ForeignPeer);
        }
    }
    let conflicts: Vec<Conflict> = blocked
        .iter()
        .map(|(id, cause)| Conflict {
            id: (*id).clone(),
            owner: owner_of(id),
            live: live[*id].clone(),
            cause: cause.clone(),
        })
        .collect();
    let blocked_namespaces: BTreeSet<&str> = blocked
        .keys()
        .filter(|id| id.kind == Kind::Namespace)
        .map(|id| id.ns.as_str())
        .collect();
    // Both the live link's ends and the declared one's (a blocked veth's
    // peer would otherwise still get its settings planned).
    let blocked_interfaces: BTreeSet<(&str, &str)> = blocked
        .keys()
        .filter(|id| id.kind == Kind::Link)
        .flat_map(|id| {
            let declared = desired.get(*id).map(|want| link_ends(id, want));
            link_ends(id, &live[*id])
                .into_iter()
                .chain(declared.into_iter().flatten())
        })
        .collect();
    let is_blocked = |id: &ResourceId| {
        blocked.contains_key(id)
            || blocked_namespaces.contains(id.ns.as_str())
            || id
                .ifname()
                .is_some_and(|ifname| blocked_interfaces.contains(&(id.ns.as_str(), ifname)))
    };

    let mut changes: Vec<Change> = Vec::new();
    let mut replaced: Vec<&ResourceId> = Vec::new();
    let mut readdressed: Vec<&ResourceId> = Vec::new();
    for (id, want) in desired {
        if is_blocked(id) {
            continue;
        }
        match live.get(id) {
            None => changes.push(change(Action::Create, id, None, Some(want))),
            Some(_) if !is_ours(id) => {}
            // An adopted route outside netloom's namespaces is taken over by
            // replacing it with netloom's protocol, its only mark.
            Some(have)
                if id.kind == Kind::Route
                    && observed.route_protocols.get(id) != Some(&ROUTE_PROTOCOL)
                    && owners.get(id) == Some(&Owner::Unowned) =>
            {
                changes.push(change(Action::Update, id, Some(have), Some(want)))
            }
            Some(have) if want.is_satisfied_by(have) => {}
            Some(have) if want.updates_in_place() => {
                changes.push(change(Action::Update, id, Some(have), Some(want)));
                // A new prefix length: the routes through the address
                // are planned again, as for a replaced object.
                if id.kind == Kind::Address {
                    readdressed.push(id);
                }
            }
            Some(have) => {
                // The kernel cannot change it in place: delete, then create.
                changes.push(change(Action::Delete, id, Some(have), None));
                changes.push(change(Action::Create, id, None, Some(want)));
                replaced.push(id);
            }
        }
    }
    // What an undeclared object may be deleted as: this topology's own,
    // or (with --adopt) what hangs on an adopted declared object, i.e. the
    // contents of an adopted namespace and the addresses and attributes of
    // an adopted link. --adopt never makes any other unowned object ours:
    // the rest of the machine's own namespace stays untouched.
    let adopted = |id: &ResourceId| {
        ctx.adopt && live.contains_key(id) && owners.get(id) == Some(&Owner::Unowned)
    };
    let adopted_namespaces: BTreeSet<&str> = desired
        .keys()
        .filter(|id| id.kind == Kind::Namespace && adopted(id))
        .map(|id| id.ns.as_str())
        .collect();
    let adopted_interfaces: BTreeSet<(&str, &str)> = desired
        .keys()
        .filter(|id| id.kind == Kind::Link && adopted(id))
        .flat_map(|id| link_ends(id, &live[id]))
        .collect();
    let may_delete = |id: &ResourceId| match owners.get(id) {
        Some(Owner::This) => true,
        Some(Owner::Unowned) => {
            adopted_namespaces.contains(id.ns.as_str())
                || (id.kind != Kind::Link
                    && id.ifname().is_some_and(|ifname| {
                        adopted_interfaces.contains(&(id.ns.as_str(), ifname))
                    }))
        }
        _ => false,
    };

    // Owned objects the file no longer declares, unless they vanish with
    // something else that goes (a namespace, a link).
    let deleted_namespaces: BTreeSet<&str> = live
        .keys()
        .filter(|id| id.kind == Kind::Namespace && !desired.contains_key(*id) && may_delete(id))
        .map(|id| id.ns.as_str())
        .collect();
    // Every interface that goes: the ends of links deleted or replaced, or
    // gone with a deleted namespace (a veth in it takes its peer along).
    let vanishing_interfaces: BTreeSet<(&str, &str)> = live
        .iter()
        .filter(|(id, resource)| {
            id.kind == Kind::Link
                && ((!desired.contains_key(*id) && may_delete(id))
                    || replaced.contains(id)
                    || deleted_namespaces.contains(id.ns.as_str())
                    || matches!(resource, Resource::Link(LinkKind::Veth { peer_ns, .. })
                        if deleted_namespaces.contains(peer_ns.as_str())))
        })
        .flat_map(|(id, r)| link_ends(id, r))
        .collect();
    // A declared link made anew where an interface of the same (namespace,
    // name) goes (a veth whose other end changed: renamed, re-cabled,
    // moved to another host): that interface is born again, bare. What
    // the file sets on it is planned again, like on a replaced link.
    let reborn = changes
        .iter()
        .filter(|c| c.action == Action::Create && c.id.kind == Kind::Link)
        .filter_map(|c| desired.get_key_value(&c.id))
        .filter(|(id, want)| {
            link_ends(id, want)
                .iter()
                .any(|end| vanishing_interfaces.contains(end))
        })
        .map(|(id, _)| id);
    let roots: Vec<&ResourceId> = replaced
        .iter()
        .copied()
        .chain(readdressed)
        .chain(reborn)
        .collect();
    recreate_dependents(&mut changes, &roots, desired, live);

    // Built once: looking the leaving veths up per deleted namespace by a
    // scan of everything live made a destroy quadratic in the pods.
    let leaving = if deleted_namespaces.is_empty() {
        HashMap::new()
    } else {
        veths_leaving_with(live)
    };
    for (id, have) in live {
        if desired.contains_key(id) || !may_delete(id) || is_blocked(id) || is_the_kernels(id, have)
        {
            continue;
        }
        let vanishes = match have {
            _ if id.kind != Kind::Namespace && deleted_namespaces.contains(id.ns.as_str()) => true,
            Resource::Link(LinkKind::Veth { peer_ns, .. }) => {
                deleted_namespaces.contains(peer_ns.as_str())
            }
            _ => {
                id.kind != Kind::Link
                    && id.ifname().is_some_and(|ifname| {
                        vanishing_interfaces.contains(&(id.ns.as_str(), ifname))
                    })
            }
        };
        if vanishes {
            continue;
        }
        let mut delete = change(Action::Delete, id, Some(have), None);
        if id.kind == Kind::Namespace {
            delete.takes_along = leaving
                .get(id.ns.as_str())
                .into_iter()
                .flatten()
                .filter(|end| !deleted_namespaces.contains(end.ns.as_str()))
                .cloned()
                .collect();
        }
        changes.push(delete);
    }

    // A bridge whose MTU no one set follows its ports, and goes back to the
    // kernel's default when the last one leaves: a declared MTU that only
    // matches because of a leaving port is set explicitly (after it left).
    let leaving_ports: BTreeSet<(String, String)> = changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .flat_map(|c| match (&c.from, c.id.kind) {
            (Some(from), Kind::Link) => link_ends(&c.id, from)
                .into_iter()
                .map(|(ns, ifname)| (ns.to_string(), ifname.to_string()))
                .collect(),
            (_, Kind::Namespace) => c
                .takes_along
                .iter()
                .map(|end| (end.ns.clone(), end.name.clone()))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    for (id, want) in desired {
        let Some(have) = live.get(id) else { continue };
        let is_bridge = matches!(
            desired.get(&ResourceId::link(&id.ns, &id.name)),
            Some(Resource::Link(LinkKind::Bridge))
        );
        let a_port_leaves = || {
            live.iter().any(|(port, master)| {
                matches!(master, Resource::Master { master } if *master == id.name)
                    && port.ns == id.ns
                    && leaving_ports.contains(&(port.ns.clone(), port.name.clone()))
            })
        };
        if id.kind == Kind::Mtu
            && is_bridge
            && !is_blocked(id)
            && is_ours(id)
            && !changes.iter().any(|c| &c.id == id)
            && a_port_leaves()
        {
            changes.push(change(Action::Update, id, Some(have), Some(want)));
        }
    }

    let (changes, prerequisites) = order::order(changes, desired, live)?;
    Ok(Plan {
        changes,
        prerequisites,
        conflicts,
    })
}

/// IPv4 allows one IP with several prefix lengths on an interface; observe
/// keys the first it sees by interface and IP, the others by `ip/prefix`.
/// Where the file declares one of the others, swap them, so the declared
/// variant is compared with the file and the rest are extras.
fn align_addresses<'a>(desired: &Resources, observed: &'a Observed) -> Cow<'a, Observed> {
    let mut aligned = Cow::Borrowed(observed);
    for (id, want) in desired {
        let (
            Some(Resource::Address {
                ifname,
                address: wanted,
            }),
            Some(Resource::Address { address: seen, .. }),
        ) = (Some(want), observed.resources.get(id))
        else {
            continue;
        };
        let variant = ResourceId::new(&id.ns, Kind::Address, format!("{ifname} {wanted}"));
        if seen == wanted || !observed.resources.contains_key(&variant) {
            continue;
        }
        let resources = &mut aligned.to_mut().resources;
        let declared = resources.remove(&variant).expect("checked above");
        let other = resources
            .insert(id.clone(), declared)
            .expect("checked above");
        resources.insert(
            ResourceId::new(&id.ns, Kind::Address, format!("{ifname} {seen}")),
            other,
        );
    }
    aligned
}

/// Undeclared things that are the kernel's to decide, never deleted: an
/// interface's MTU, MAC, state and IPv6 address generation (the kernel's
/// defaults), sysctls (they
/// cannot be deleted; an undeclared one stays as it is), and IPv6
/// link-local addresses (the kernel gives every interface one).
fn is_the_kernels(id: &ResourceId, live: &Resource) -> bool {
    match live {
        Resource::Address {
            address: IpNet::V6(net),
            ..
        } => net.addr().is_unicast_link_local(),
        _ => matches!(
            id.kind,
            Kind::Mtu | Kind::Mac | Kind::LinkLocal | Kind::Up | Kind::Sysctl
        ),
    }
}

/// A replaced (or reborn) object takes what hangs on it along: a link its
/// attributes, addresses, per-interface sysctls, routes and ports'
/// membership; an address the routes through it. Plan them again.
fn recreate_dependents<'a>(
    changes: &mut Vec<Change>,
    replaced: &[&'a ResourceId],
    desired: &'a Resources,
    live: &Resources,
) {
    if replaced.is_empty() {
        return;
    }
    let graph = Graph::new(desired);
    let mut stack: Vec<&ResourceId> = replaced.to_vec();
    let mut seen: BTreeSet<&ResourceId> = BTreeSet::new();
    let mut again: Vec<(&ResourceId, &Resource)> = Vec::new();
    while let Some(id) = stack.pop() {
        for dependent in graph.dependents(id) {
            let Some((dependent, want)) = desired.get_key_value(dependent) else {
                continue;
            };
            let stays = match dependent.kind {
                Kind::Namespace | Kind::Link => true,
                Kind::Sysctl => crate::graph::sysctl_interface(&dependent.name).is_none(),
                _ => false,
            };
            if stays || !seen.insert(dependent) {
                continue;
            }
            stack.push(dependent);
            if live.contains_key(dependent) {
                again.push((dependent, want));
            }
        }
    }
    let again_ids: BTreeSet<&ResourceId> = again.iter().map(|(id, _)| *id).collect();
    changes.retain(|c| !again_ids.contains(&c.id) || replaced.contains(&&c.id));
    for (id, want) in again {
        if replaced.contains(&id) {
            continue;
        }
        // A route may survive (another address still reaches its
        // gateway): replacing it works either way.
        let action = match id.kind {
            Kind::Route => change(Action::Update, id, live.get(id), Some(want)),
            _ => change(Action::Create, id, None, Some(want)),
        };
        changes.push(action);
    }
}

fn change(
    action: Action,
    id: &ResourceId,
    from: Option<&Resource>,
    to: Option<&Resource>,
) -> Change {
    Change {
        action,
        id: id.clone(),
        from: from.cloned(),
        to: to.cloned(),
        takes_along: Vec::new(),
    }
}

/// Both (namespace, name) ends of a link resource.
fn link_ends<'a>(id: &'a ResourceId, resource: &'a Resource) -> Vec<(&'a str, &'a str)> {
    let mut ends = vec![(id.ns.as_str(), id.name.as_str())];
    if let Resource::Link(LinkKind::Veth { peer_ns, peer }) = resource {
        ends.push((peer_ns.as_str(), peer.as_str()));
    }
    ends
}

/// Every interface a set of resources creates, with the link that does
/// (a veth's canonical end creates its peer too).
fn interfaces(resources: &Resources) -> impl Iterator<Item = ((&str, &str), &ResourceId)> {
    resources
        .iter()
        .filter(|(id, _)| id.kind == Kind::Link)
        .flat_map(|(id, r)| link_ends(id, r).into_iter().map(move |end| (end, id)))
}

/// For each namespace, the veth ends outside it whose peer is inside it
/// (in the order of `live`): the kernel deletes them when the namespace
/// goes. One pass over `live`.
fn veths_leaving_with(live: &Resources) -> HashMap<&str, Vec<ResourceId>> {
    let mut leaving: HashMap<&str, Vec<ResourceId>> = HashMap::new();
    for (id, resource) in live {
        if let Resource::Link(LinkKind::Veth { peer_ns, peer }) = resource
            && id.ns != *peer_ns
        {
            let (near, far) = (
                ResourceId::link(&id.ns, &id.name),
                ResourceId::link(peer_ns, peer),
            );
            leaving.entry(peer_ns.as_str()).or_default().push(near);
            leaving.entry(id.ns.as_str()).or_default().push(far);
        }
    }
    leaving
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::SourceFile;
    use crate::model::{Mode, expand};

    /// Claims as the state records make them: id -> creating topology.
    type Records = BTreeMap<ResourceId, String>;

    fn desired(text: &str) -> Resources {
        let spec = crate::load::parse(&SourceFile::new("t.yaml", text)).unwrap();
        expand(&spec, &Mode::Lab).resources
    }

    fn seed() -> Resources {
        desired(&std::fs::read_to_string("examples/seed.yaml").unwrap())
    }

    /// What the kernel shows once a topology is applied: the same objects,
    /// with netloom's route protocol.
    fn applied(resources: &Resources) -> Observed {
        let route_protocols = resources
            .keys()
            .filter(|id| id.kind == Kind::Route)
            .map(|id| (id.clone(), ROUTE_PROTOCOL))
            .collect();
        Observed {
            resources: resources.clone(),
            route_protocols,
            ..Observed::default()
        }
    }

    fn records_with(created: &[ResourceId]) -> Records {
        created
            .iter()
            .map(|id| (id.clone(), "seed".to_string()))
            .collect()
    }

    fn plan(desired: &Resources, observed: &Observed, records: &Records, adopt: bool) -> Plan {
        let ctx = Context {
            topology: "seed",
            claims: records,
            adopt,
        };
        diff(desired, observed, &ctx).expect("no dependency cycle")
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .map(|c| format!("{:?} {}", c.action, c.id))
            .collect()
    }

    /// Where the change shown as `line` is in the plan.
    fn position(plan: &Plan, line: &str) -> usize {
        let lines = lines(plan);
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no {line}: {lines:#?}"))
    }

    #[test]
    fn nothing_to_do_when_the_kernel_matches() {
        let want = seed();
        let plan = plan(&want, &applied(&want), &Records::default(), false);
        assert!(plan.is_empty(), "{:#?}", lines(&plan));
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn everything_is_created_in_dependency_order() {
        let want = seed();
        let plan = plan(&want, &Observed::default(), &Records::default(), false);
        assert_eq!(plan.summary(), (want.len(), 0, 0));
        for (i, pre) in plan.prerequisites.iter().enumerate() {
            assert!(pre.iter().all(|&j| j < i));
        }
        let at = |text: &str| position(&plan, text);
        assert!(
            at("Create namespace test") < at("Create link testveth0 in this machine's namespace")
        );
        assert!(
            at("Create link testveth0 in this machine's namespace")
                < at("Create address test/eth0 10.0.0.2")
        );
        assert!(
            at("Create address test/eth0 10.0.0.2") < at("Create route test/0.0.0.0/0 metric 0")
        );
    }

    #[test]
    fn a_changed_mtu_is_one_update_in_place() {
        let mut want = seed();
        let live = applied(&want);
        want.insert(
            ResourceId::new("test", Kind::Mtu, "eth0"),
            Resource::Mtu { mtu: 9000 },
        );
        let plan = plan(&want, &live, &Records::default(), false);
        assert_eq!(lines(&plan), ["Create mtu test/eth0"]);
        let mut live_with_mtu = live.clone();
        live_with_mtu.resources.insert(
            ResourceId::new("test", Kind::Mtu, "eth0"),
            Resource::Mtu { mtu: 1500 },
        );
        let plan = super::tests::plan(&want, &live_with_mtu, &Records::default(), false);
        assert_eq!(lines(&plan), ["Update mtu test/eth0"]);
    }

    #[test]
    fn undeclared_mtus_and_macs_are_not_compared() {
        let want = seed();
        let mut live = applied(&want);
        live.resources.insert(
            ResourceId::new("test", Kind::Mtu, "eth0"),
            Resource::Mtu { mtu: 1500 },
        );
        assert!(plan(&want, &live, &Records::default(), false).is_empty());
    }

    #[test]
    fn a_new_address_is_added_before_the_old_one_goes() {
        let old = seed();
        let new = desired(
            &std::fs::read_to_string("examples/seed.yaml")
                .unwrap()
                .replace("10.0.0.2/24", "10.0.0.3/24"),
        );
        let plan = plan(&new, &applied(&old), &Records::default(), false);
        assert_eq!(
            lines(&plan),
            [
                "Create address test/eth0 10.0.0.3",
                "Delete address test/eth0 10.0.0.2"
            ]
        );
        assert_eq!(plan.prerequisites[1], vec![0]);
    }

    #[test]
    fn a_changed_gateway_replaces_the_route_in_place() {
        let old = seed();
        let text = std::fs::read_to_string("examples/seed.yaml").unwrap();
        let new = desired(&text.replace("via: 10.0.0.1", "via: 10.0.0.254"));
        let plan = plan(&new, &applied(&old), &Records::default(), false);
        assert_eq!(lines(&plan), ["Update route test/0.0.0.0/0 metric 0"]);
    }

    #[test]
    fn removing_a_pod_deletes_its_namespace_and_nothing_else() {
        let old = seed();
        let text = std::fs::read_to_string("examples/seed.yaml").unwrap();
        let without_pod = text.split("pods:").next().unwrap().to_string();
        let new = desired(&without_pod);
        let plan = plan(&new, &applied(&old), &Records::default(), false);
        assert_eq!(lines(&plan), ["Delete namespace test"]);
        assert_eq!(
            plan.changes[0].takes_along,
            vec![ResourceId::link("", "testveth0")]
        );
    }

    #[test]
    fn hand_made_objects_in_a_pod_are_drift_and_removed() {
        let want = seed();
        let mut live = applied(&want);
        let extra_route = ResourceId::new("test", Kind::Route, "10.9.0.0/16 metric 0");
        live.resources.insert(
            extra_route.clone(),
            route("10.9.0.0/16", Some("10.0.0.1"), Some("eth0")),
        );
        live.route_protocols.insert(extra_route, 3);
        let (name, address) = Resource::address("eth0", "10.0.0.9/24".parse().unwrap());
        live.resources
            .insert(ResourceId::new("test", Kind::Address, name), address);
        let plan = plan(&want, &live, &Records::default(), false);
        assert_eq!(
            lines(&plan),
            // The route may use the address: it goes first.
            [
                "Delete route test/10.9.0.0/16 metric 0",
                "Delete address test/eth0 10.0.0.9"
            ]
        );
    }

    #[test]
    fn foreign_objects_outside_owned_namespaces_are_left_alone() {
        let want = seed();
        let mut live = applied(&want);
        let foreign_route = ResourceId::new("", Kind::Route, "10.9.0.0/16 metric 0");
        live.resources.insert(
            foreign_route.clone(),
            route("10.9.0.0/16", None, Some("test0")),
        );
        live.route_protocols.insert(foreign_route, 3);
        live.resources.insert(
            ResourceId::link("", "docker0"),
            Resource::Link(LinkKind::Bridge),
        );
        assert!(plan(&want, &live, &Records::default(), false).is_empty());
    }

    #[test]
    fn an_unowned_object_in_the_way_is_a_conflict_unless_adopted() {
        let want = seed();
        let mut live = Observed::default();
        live.resources.insert(
            ResourceId::link("", "test0"),
            Resource::Link(LinkKind::Bridge),
        );
        let plan_without = plan(&want, &live, &Records::default(), false);
        assert_eq!(plan_without.conflicts.len(), 1);
        assert_eq!(plan_without.conflicts[0].id, ResourceId::link("", "test0"));
        let on_the_bridge = |c: &Change| c.id.ns.is_empty() && c.id.ifname() == Some("test0");
        assert!(
            !plan_without.changes.iter().any(on_the_bridge),
            "nothing planned on it"
        );
        let adopted = plan(&want, &live, &Records::default(), true);
        assert!(adopted.conflicts.is_empty());
        assert!(
            lines(&adopted).contains(&"Create alias test0 in this machine's namespace".to_string())
        );
        assert!(
            !lines(&adopted).contains(&"Create link test0 in this machine's namespace".to_string())
        );
    }

    #[test]
    fn adopting_takes_over_only_what_is_in_the_way() {
        let want = seed();
        let mut live = Observed::default();
        let address =
            |ifname: &str, address: &str| Resource::address(ifname, address.parse().unwrap()).1;
        // In the way: test0, with an address the file does not declare.
        live.resources.insert(
            ResourceId::link("", "test0"),
            Resource::Link(LinkKind::Bridge),
        );
        live.resources.insert(
            ResourceId::new("", Kind::Address, "test0 10.9.9.1"),
            address("test0", "10.9.9.1/24"),
        );
        // Not in the way: the machine's own loopback and an unrelated veth.
        live.resources.insert(
            ResourceId::link("", "lo"),
            Resource::Link(LinkKind::Other {
                name: "loopback".into(),
            }),
        );
        live.resources.insert(
            ResourceId::new("", Kind::Up, "lo"),
            Resource::Up { up: true },
        );
        live.resources.insert(
            ResourceId::link("", "fa"),
            Resource::Link(LinkKind::Veth {
                peer_ns: String::new(),
                peer: "fb".into(),
            }),
        );
        live.resources.insert(
            ResourceId::new("", Kind::Address, "fa 10.8.0.1"),
            address("fa", "10.8.0.1/24"),
        );
        let plan = plan(&want, &live, &Records::default(), true);
        let deletes: Vec<String> = lines(&plan)
            .into_iter()
            .filter(|l| l.starts_with("Delete"))
            .collect();
        assert_eq!(
            deletes,
            ["Delete address test0 10.9.9.1 in this machine's namespace"]
        );
    }

    fn route(to: &str, via: Option<&str>, dev: Option<&str>) -> Resource {
        Resource::Route(crate::model::Route {
            to: to.parse().unwrap(),
            metric: 0,
            via: via.map(|v| v.parse().unwrap()),
            dev: dev.map(String::from),
            table: crate::model::MAIN_TABLE,
        })
    }

    #[test]
    fn a_kernel_route_in_the_way_is_a_conflict_and_never_deleted() {
        let want = seed();
        let mut live = applied(&want);
        // The kernel's route for the pod's address, and one the file
        // happens to declare too.
        let connected = ResourceId::new("test", Kind::Route, "10.0.0.0/24 metric 0");
        live.resources
            .insert(connected.clone(), route("10.0.0.0/24", None, Some("eth0")));
        live.route_protocols.insert(connected.clone(), 2);
        assert!(plan(&want, &live, &Records::default(), false).is_empty());
        let mut declaring = want.clone();
        declaring.insert(
            connected.clone(),
            route("10.0.0.0/24", Some("10.0.0.1"), None),
        );
        let plan = plan(&declaring, &live, &Records::default(), true);
        assert_eq!(
            plan.conflicts.len(),
            1,
            "not even --adopt takes the kernel's route"
        );
        assert_eq!(plan.conflicts[0].owner, Owner::Kernel);
        assert!(plan.is_empty());
    }

    /// The kernel takes a VNI once per namespace: a VXLAN device renamed
    /// by hand goes before the declared one is made again.
    #[test]
    fn a_renamed_vxlan_goes_before_its_vni_is_taken_again() {
        let want = desired(&std::fs::read_to_string("examples/vxlan.yaml").unwrap());
        let renamed = |id: &ResourceId| match id.ifname() {
            Some("vx70") if id.ns == "vx1" => {
                ResourceId::new("vx1", id.kind, id.name.replacen("vx70", "hand0", 1))
            }
            _ => id.clone(),
        };
        let mut live = applied(&want);
        live.resources = want
            .iter()
            .map(|(id, resource)| match resource {
                Resource::Fdb { dst, .. } if id.ns == "vx1" => {
                    let ifname = "hand0".to_string();
                    (renamed(id), Resource::Fdb { ifname, dst: *dst })
                }
                _ => (renamed(id), resource.clone()),
            })
            .collect();
        let ctx = Context {
            topology: "vxlan",
            claims: &Records::default(),
            adopt: false,
        };
        let plan = diff(&want, &live, &ctx).expect("no dependency cycle");
        let at = |line: &str| position(&plan, line);
        let (gone, made) = (at("Delete link vx1/hand0"), at("Create link vx1/vx70"));
        assert!(
            plan.prerequisites[made].contains(&gone),
            "{:#?}",
            lines(&plan)
        );
    }

    /// In place, not deleted and made again: removing an interface's last
    /// IPv4 address makes the kernel flush every route out of it.
    #[test]
    fn a_new_prefix_length_changes_the_address_in_place() {
        let old = seed();
        let text = std::fs::read_to_string("examples/seed.yaml").unwrap();
        let new = desired(&text.replace("10.0.0.2/24", "10.0.0.2/16"));
        let plan = plan(&new, &applied(&old), &Records::default(), false);
        let lines = lines(&plan);
        assert_eq!(lines[0], "Update address test/eth0 10.0.0.2");
        // The default route through it is made again, after.
        assert_eq!(lines[1], "Update route test/0.0.0.0/0 metric 0");
        assert!(plan.prerequisites[1].contains(&0));
        assert_eq!(lines.len(), 2, "{lines:#?}");
    }

    #[test]
    fn adopting_never_replaces_an_object_of_another_kind() {
        let want = seed();
        let mut live = Observed::default();
        live.resources.insert(
            ResourceId::link("", "testveth0"),
            Resource::Link(LinkKind::Veth {
                peer_ns: "other".into(),
                peer: "x".into(),
            }),
        );
        let plan = plan(&want, &live, &Records::default(), true);
        assert_eq!(plan.conflicts.len(), 1);
        assert!(
            !lines(&plan).iter().any(|l| l.contains("testveth0")),
            "{:#?}",
            lines(&plan)
        );
    }

    #[test]
    fn one_ipv4_address_with_two_prefixes_keeps_the_declared_one() {
        let want = seed();
        let mut live = applied(&want);
        // The kernel listed a hand-added 10.0.0.2/16 first.
        let (name, wrong) = Resource::address("eth0", "10.0.0.2/16".parse().unwrap());
        let (_, right) = Resource::address("eth0", "10.0.0.2/24".parse().unwrap());
        live.resources
            .insert(ResourceId::new("test", Kind::Address, name), wrong);
        live.resources.insert(
            ResourceId::new("test", Kind::Address, "eth0 10.0.0.2/24"),
            right,
        );
        let plan = plan(&want, &live, &Records::default(), false);
        assert_eq!(lines(&plan), ["Delete address test/eth0 10.0.0.2/16"]);
        assert!(matches!(
            plan.changes[0].from,
            Some(Resource::Address { address, .. }) if address.prefix_len() == 16
        ));
    }

    #[test]
    fn link_local_addresses_are_the_kernels() {
        let want = seed();
        let mut live = applied(&want);
        let (name, address) = Resource::address("eth0", "fe80::1/64".parse().unwrap());
        live.resources
            .insert(ResourceId::new("test", Kind::Address, name), address);
        assert!(plan(&want, &live, &Records::default(), false).is_empty());
    }

    #[test]
    fn a_foreign_veth_reaching_into_a_pod_is_left_alone() {
        let want = seed();
        let mut live = applied(&want);
        live.resources.insert(
            ResourceId::link("", "foo"),
            Resource::Link(LinkKind::Veth {
                peer_ns: "test".into(),
                peer: "bar".into(),
            }),
        );
        for (ns, ifname) in [("", "foo"), ("test", "bar")] {
            live.resources.insert(
                ResourceId::new(ns, Kind::Up, ifname),
                Resource::Up { up: true },
            );
        }
        assert!(plan(&want, &live, &Records::default(), false).is_empty());
    }

    #[test]
    fn an_altname_in_the_way_is_a_conflict() {
        let want = seed();
        let mut live = Observed::default();
        live.resources.insert(
            ResourceId::link("", "foreign0"),
            Resource::Link(LinkKind::Bridge),
        );
        live.alt_names
            .insert((String::new(), "test0".into()), "foreign0".into());
        let plan = plan(&want, &live, &Records::default(), false);
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0].id, ResourceId::link("", "foreign0"));
        assert!(
            plan.conflicts[0]
                .message()
                .contains("holds the name test0 as an altname")
        );
    }

    #[test]
    fn another_topologys_objects_are_never_touched() {
        let want = seed();
        let mut live = Observed::default();
        live.resources.insert(
            ResourceId::link("", "test0"),
            Resource::Link(LinkKind::Bridge),
        );
        live.resources.insert(
            ResourceId::new("", Kind::Alias, "test0"),
            Resource::Alias {
                alias: "netloom:other/bridge:test0".into(),
            },
        );
        let adopted = plan(&want, &live, &Records::default(), true);
        assert_eq!(adopted.conflicts[0].owner, Owner::Other("other".into()));
    }

    #[test]
    fn the_record_claims_objects_whose_mark_a_crash_lost() {
        let want = seed();
        let mut live = Observed::default();
        live.resources.insert(
            ResourceId::link("", "test0"),
            Resource::Link(LinkKind::Bridge),
        );
        let plan = plan(
            &want,
            &live,
            &records_with(&[ResourceId::link("", "test0")]),
            false,
        );
        assert!(plan.conflicts.is_empty());
        assert!(
            lines(&plan).contains(&"Create alias test0 in this machine's namespace".to_string())
        );
    }

    #[test]
    fn a_veth_with_a_new_peer_is_replaced_with_its_settings() {
        let old = desired(
            "name: seed\npods:\n  a: { interfaces: { eth0: {} } }\n  b: { interfaces: { eth0: {addresses: [10.0.0.2/24]} } }\n  c: { interfaces: { eth0: {addresses: [10.0.0.3/24]} } }\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n",
        );
        let new = desired(
            "name: seed\npods:\n  a: { interfaces: { eth0: {} } }\n  b: { interfaces: { eth0: {addresses: [10.0.0.2/24]} } }\n  c: { interfaces: { eth0: {addresses: [10.0.0.3/24]} } }\nlinks:\n  - endpoints: [a:eth0, c:eth0]\n",
        );
        let plan = plan(&new, &applied(&old), &Records::default(), false);
        let lines = lines(&plan);
        let at = |text: &str| position(&plan, text);
        assert!(at("Delete link a/eth0") < at("Create link a/eth0"));
        assert!(at("Create link a/eth0") < at("Create address c/eth0 10.0.0.3"));
        assert!(at("Create link a/eth0") < at("Create up a/eth0"));
        // b's end went with the old pair.
        assert!(!lines.iter().any(|l| l.contains(" b/")), "{lines:#?}");
    }
}

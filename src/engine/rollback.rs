//! Backward recovery: putting back the state a changing run found at its
//! start (`apply --atomic`, `--confirm`, `netloom rollback`).
//!
//! Before its first change a run persists a start snapshot (state::start):
//! the region of the kernel its plan reaches (namespaces and interfaces it
//! creates or deletes, with all that hangs on them, and single objects)
//! and every object observed there. A restore is a run of its own: it
//! observes the region now, plans the snapshot as the desired state (only
//! the region is looked at, so nothing outside it is touched), executes
//! with a journal, reads back and verifies. It is idempotent, so a restore
//! that is itself killed is finished by the next.

use std::collections::{BTreeSet, HashMap};
use tokio_util::sync::CancellationToken;

use ipnet::IpNet;

use super::{Engine, EngineError, Execution, KernelPort, Progress, Snapshot, scheduler};
use crate::graph::sysctl_interface;
use crate::kernel::Scope;
use crate::model::{Action, Change, Claims, Kind, LinkKind, Observed, Resource, ResourceId};
use crate::plan::{self, Context, Owner, Plan};
use crate::state::{Record, Records, Region, START_VERSION, StartSnapshot};

/// The part of the kernel a plan reaches.
pub(super) fn region_of(plan: &Plan) -> Region {
    let mut region = Region::default();
    for change in &plan.changes {
        let id = &change.id;
        match id.kind {
            Kind::Namespace => {
                region.namespaces.insert(id.ns.clone());
                // Veths of other namespaces that go with it.
                for end in &change.takes_along {
                    region.interfaces.insert((end.ns.clone(), end.name.clone()));
                }
            }
            Kind::Link => {
                region.interfaces.insert((id.ns.clone(), id.name.clone()));
                let values = change.from.iter().chain(&change.to);
                for value in values {
                    if let Resource::Link(LinkKind::Veth { peer_ns, peer }) = value {
                        region.interfaces.insert((peer_ns.clone(), peer.clone()));
                    }
                }
            }
            // An address going takes the routes through it along.
            Kind::Address => {
                region.objects.insert(id.clone());
                if let Some(ifname) = id.ifname() {
                    region
                        .route_devices
                        .insert((id.ns.clone(), ifname.to_string()));
                }
            }
            _ => {
                region.objects.insert(id.clone());
            }
        }
    }
    region
}

/// Whether an object lies in the region.
fn in_region(region: &Region, id: &ResourceId, resource: &Resource) -> bool {
    let on = |set: &BTreeSet<(String, String)>, ifname: &str| {
        set.contains(&(id.ns.clone(), ifname.to_string()))
    };
    let hangs_on =
        |ifname: Option<&str>| ifname.is_some_and(|ifname| on(&region.interfaces, ifname));
    let route_dev = match resource {
        Resource::Route(route) => route.dev.as_deref(),
        _ => None,
    };
    region.namespaces.contains(&id.ns)
        || region.objects.contains(id)
        || hangs_on(id.ifname())
        || (id.kind == Kind::Sysctl && hangs_on(sysctl_interface(&id.name)))
        || hangs_on(route_dev)
        || route_dev.is_some_and(|dev| on(&region.route_devices, dev))
        || matches!(resource, Resource::Master { master } if hangs_on(Some(master)))
}

/// The part of `observed` in the region, with what tells who owns it:
/// the namespace it lives in and its loopback's mark, the link of an
/// interface (the veth holding it, for a peer end) and that link's mark.
fn part_in(region: &Region, observed: &Observed) -> Observed {
    let live = &observed.resources;
    let mut ids: BTreeSet<&ResourceId> = live
        .iter()
        .filter(|(id, resource)| in_region(region, id, resource))
        .map(|(id, _)| id)
        .collect();
    // From the region itself, not from what is there: one side may lack
    // the object that pulls the context in (an address deleted).
    let interfaces = region
        .objects
        .iter()
        .filter_map(|id| Some((id.ns.clone(), id.ifname()?.to_string())))
        .chain(region.interfaces.iter().cloned())
        .chain(region.route_devices.iter().cloned());
    // The veth holding each peer end, indexed once: a destroy's region
    // names every interface of every pod, and scanning all that is there
    // for each of them costs pods squared.
    let mut holders_of: HashMap<(&str, &str), Vec<&ResourceId>> = HashMap::new();
    for (holder, resource) in live {
        if let Resource::Link(LinkKind::Veth { peer_ns, peer }) = resource {
            holders_of.entry((peer_ns, peer)).or_default().push(holder);
        }
    }
    let interfaces: BTreeSet<(String, String)> = interfaces.collect();
    let mut context = Vec::new();
    for (ns, ifname) in &interfaces {
        context.push(ResourceId::link(ns, ifname));
        context.push(ResourceId::new(ns, Kind::Alias, ifname.clone()));
        let holders = holders_of.get(&(ns.as_str(), ifname.as_str()));
        for holder in holders.into_iter().flatten() {
            context.push((*holder).clone());
            context.push(ResourceId::new(
                &holder.ns,
                Kind::Alias,
                holder.name.clone(),
            ));
        }
    }
    let namespaces = (region.objects.iter().map(|id| &id.ns))
        .chain(region.interfaces.iter().map(|(ns, _)| ns))
        .chain(region.route_devices.iter().map(|(ns, _)| ns));
    for ns in namespaces {
        context.push(ResourceId::namespace(ns));
        context.push(ResourceId::new(ns, Kind::Alias, "lo"));
    }
    ids.extend(
        context
            .iter()
            .filter_map(|id| live.get_key_value(id).map(|(id, _)| id)),
    );
    let resources: crate::model::Resources = ids
        .into_iter()
        .map(|id| (id.clone(), live[id].clone()))
        .collect();
    let route_protocols = observed
        .route_protocols
        .iter()
        .filter(|(id, _)| resources.contains_key(*id))
        .map(|(id, protocol)| (id.clone(), *protocol))
        .collect();
    Observed {
        resources,
        route_protocols,
        alt_names: observed.alt_names.clone(),
    }
}

/// What a run about to make `plan` (computed from `snapshot`) must keep
/// to be undone.
pub(super) fn start_snapshot(
    topology: &str,
    snapshot: &Snapshot,
    plan: &Plan,
    record: &Record,
) -> StartSnapshot {
    let region = region_of(plan);
    let part = part_in(&region, &snapshot.observed);
    StartSnapshot {
        version: START_VERSION,
        topology: topology.to_string(),
        scope: snapshot.scope.namespaces.clone(),
        region,
        objects: part.resources,
        route_protocols: part.route_protocols,
        record: record.clone(),
    }
}

/// Claims for a restore: what appeared in the region since the start was
/// made by the run being undone (the lock kept every other netloom out),
/// marked or not yet.
struct Appeared<'a> {
    topology: &'a str,
    ids: BTreeSet<ResourceId>,
    records: &'a Records,
}

impl Claims for Appeared<'_> {
    fn creator_of(&self, id: &ResourceId) -> Option<&str> {
        if self.ids.contains(id) {
            return Some(self.topology);
        }
        self.records.creator_of(id)
    }
}

/// Made by the kernel itself: it comes back with its cause (a subnet
/// route with its address, a link-local address with its interface).
fn kernel_made(start: &Observed, id: &ResourceId, resource: &Resource) -> bool {
    start.is_kernel_route(id)
        || matches!(resource, Resource::Address { address: IpNet::V6(net), .. }
            if net.addr().is_unicast_link_local())
}

/// The plan that turns the region as it is `now` back into the start.
/// What is foreign and unchanged is left out of both sides: it is not the
/// restore's to touch (and not in the way).
pub(super) fn restore_plan(
    start: &StartSnapshot,
    now: &Observed,
    records: &Records,
) -> Result<Plan, crate::graph::Cycle> {
    let mut now = part_in(&start.region, now);
    let at_start = Observed {
        resources: start.objects.clone(),
        route_protocols: start.route_protocols.clone(),
        alt_names: Default::default(),
    };
    let appeared = Appeared {
        topology: &start.topology,
        ids: now
            .resources
            .keys()
            .filter(|id| !start.objects.contains_key(*id))
            .cloned()
            .collect(),
        records,
    };
    let ctx = Context {
        topology: &start.topology,
        claims: &appeared,
        adopt: false,
    };
    let foreign_unchanged: BTreeSet<ResourceId> = {
        let owners = plan::owners(&now, &ctx);
        now.resources
            .iter()
            .filter(|(id, resource)| start.objects.get(*id) == Some(*resource))
            .filter(|(id, _)| owners.get(id) != Some(&Owner::This))
            .map(|(id, _)| id.clone())
            .collect()
    };
    now.resources
        .retain(|id, _| !foreign_unchanged.contains(id));
    now.route_protocols
        .retain(|id, _| !foreign_unchanged.contains(id));
    let desired = start
        .objects
        .iter()
        .filter(|(id, resource)| !kernel_made(&at_start, id, resource))
        .filter(|(id, _)| !foreign_unchanged.contains(*id))
        .map(|(id, resource)| (id.clone(), resource.clone()))
        .collect();
    plan::diff(&desired, &now, &ctx)
}

impl<K: KernelPort> Engine<K> {
    /// Puts back what a run found at its start, then reads back. The
    /// caller holds the lock. The record becomes the start's once the
    /// kernel verifiably matches the start again.
    pub(super) async fn restore(
        &self,
        start: &StartSnapshot,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let topology = start.topology.as_str();
        // A restore killed half way left its journal: claim what it made.
        let records = self.records(topology)?;
        self.state.recover(&records, topology)?;
        // A namespace creation or deletion killed half way left a file.
        for ns in &start.region.namespaces {
            if self.kernel.remove_leftover_namespace(ns).unwrap_or(false) {
                tracing::info!("removed the leftover file of namespace {ns}");
            }
        }
        let scope = Scope {
            namespaces: start.scope.clone(),
            ..Scope::default()
        };
        let now = self.kernel.observe(&scope).await?;
        let plan = restore_plan(start, &now, &records)?;
        let mut execution = Execution::of(plan);
        if !execution.plan.conflicts.is_empty() {
            return Ok(execution);
        }
        let mut record = records
            .get(topology)
            .cloned()
            .unwrap_or_else(|| Record::new(topology));
        if !execution.plan.is_empty() {
            let mut journal = self.state.journal(topology)?;
            progress.start(execution.plan.changes.len());
            // Not stopped by the signal that may have stopped the run it
            // undoes: a second signal ends the process, and the next
            // `rollback` finishes the job.
            let outcome = scheduler::run(
                &self.kernel,
                &execution.plan,
                &CancellationToken::new(),
                |change, moment| journal.log(change, moment),
                progress,
            )
            .await?;
            progress.finish();
            let owned: BTreeSet<String> = record
                .all_namespaces()
                .into_iter()
                .chain(start.record.all_namespaces())
                .collect();
            let done = execution.plan.changes.iter().zip(&outcome.done);
            for (change, _) in done.filter(|(_, done)| **done) {
                record.note(change, &owned);
            }
            execution.done = outcome.done;
            execution.failure = outcome.failure;
            execution.unrecorded = outcome.journal_failure;
            self.state.save(&record)?;
            self.state.finish_journal(journal)?;
        }
        if execution.failure.is_none() && execution.unrecorded.is_none() {
            let records = self.records(topology)?;
            let again = self.kernel.observe(&scope).await?;
            let check = restore_plan(start, &again, &records)?;
            if check.is_empty() && check.conflicts.is_empty() && record != start.record {
                self.state.save(&start.record)?;
            }
            execution.unverified = check.changes;
            execution.unverified_conflicts = check.conflicts;
        }
        Ok(execution)
    }
}

impl Execution {
    /// A plan about to run: nothing done yet.
    pub(super) fn of(plan: Plan) -> Execution {
        Execution {
            done: vec![false; plan.changes.len()],
            plan,
            failure: None,
            interrupted: false,
            unverified: Vec::new(),
            unverified_conflicts: Vec::new(),
            rollback: None,
            unrecorded: None,
        }
    }
}

/// Why an apply was undone, and how the undoing went.
#[derive(Debug)]
pub struct Rollback {
    /// What failed: the kernel's refusal, the read-back, a failed check,
    /// no confirmation in time.
    pub why: String,
    /// The restore: its own plan, what it did and what it read back; or
    /// why it could not run.
    pub restore: Result<Box<Execution>, EngineError>,
}

impl Rollback {
    /// Whether the start state is back, read back and verified.
    pub fn restored(&self) -> bool {
        self.restore.as_ref().is_ok_and(|run| run.succeeded())
    }
}

/// Why a finished run is to be undone, if it is: the change the kernel
/// refused, or what did not read back as planned.
pub(super) fn failure_of(execution: &Execution) -> Option<String> {
    if let Some((i, err)) = &execution.failure {
        let change: &Change = &execution.plan.changes[*i];
        let verb = match change.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        };
        return Some(format!("the kernel refused to {verb} {}: {err}", change.id));
    }
    if execution.interrupted {
        return Some("stopped by a signal".to_string());
    }
    if let Some(change) = execution.unverified.first() {
        return Some(format!("{} did not read back as planned", change.id));
    }
    if let Some(conflict) = execution.unverified_conflicts.first() {
        return Some(format!("{} is in the way after the apply", conflict.id));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_bridge_takes_its_ports_membership_and_routes_into_the_region() {
        let bridge = ResourceId::link("", "br0");
        let delete = Change {
            action: Action::Delete,
            id: bridge.clone(),
            from: Some(Resource::Link(LinkKind::Bridge)),
            to: None,
            takes_along: Vec::new(),
        };
        let plan = Plan {
            changes: vec![delete],
            ..Plan::default()
        };
        let region = region_of(&plan);
        let port = Resource::Master {
            master: "br0".into(),
        };
        let elsewhere = Resource::Master {
            master: "br1".into(),
        };
        let port_id = ResourceId::new("", Kind::Master, "veth-a");
        assert!(in_region(
            &region,
            &bridge,
            &Resource::Link(LinkKind::Bridge)
        ));
        assert!(in_region(&region, &port_id, &port));
        assert!(!in_region(&region, &port_id, &elsewhere));
        let rp_filter = ResourceId::new("", Kind::Sysctl, "net.ipv4.conf.br0.rp_filter");
        let value = Resource::Sysctl { value: "1".into() };
        assert!(in_region(&region, &rp_filter, &value));
        let eth0 = ResourceId::new("", Kind::Sysctl, "net.ipv4.conf.eth0.rp_filter");
        assert!(!in_region(&region, &eth0, &value));
    }
}

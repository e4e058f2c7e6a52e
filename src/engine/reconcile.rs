//! The reconcile transaction: under the state dir's lock, recover what a
//! killed run left, observe, plan, then journal and execute each change,
//! record what was done, read back, and settle the record only once the
//! kernel verifiably matches.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::destroy::{DestroyTarget, restore_set};
use super::rollback::{self, Rollback};
use super::{
    Engine, EngineError, Execution, Expansion, KernelPort, Progress, SavedPlan, Snapshot, host,
    restore, scheduler, sysctls,
};
use crate::kernel::{KernelError, Scope};
use crate::model::{Action, Change, Desired, Kind, LinkKind, Resource, ResourceId};
use crate::plan::{self, Context};
use crate::spec::Topology;
use crate::state::{Moment, Record, Records, StartSnapshot};

/// How long the far ends of a namespace deleted by hand get to go with it.
const HAND_DELETION_GRACE: Duration = Duration::from_secs(5);

/// What a reconcile run is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Apply,
    /// Apply within some namespaces only (`watch` repairing drift there).
    Repair,
    Destroy,
}

#[derive(Clone, Copy)]
struct Run<'a> {
    goal: Goal,
    dry_run: bool,
    /// Undo a run that fails half way: restore its start snapshot.
    atomic: bool,
    /// `apply PLANFILE`: carry out this plan instead of a fresh one.
    saved: Option<&'a SavedPlan>,
}

impl Run<'_> {
    /// The record once the kernel verifiably holds what this run wanted.
    fn settle(&self, record: &mut Record, desired: &Desired, restored: &BTreeSet<ResourceId>) {
        match self.goal {
            Goal::Apply => {
                record.settle(desired);
                record.restored(restored);
            }
            // Only part of the file was looked at: what the record says of
            // the rest stays, and the part repaired is what it was.
            Goal::Repair => {}
            // Everything is gone and every replaced value restored.
            Goal::Destroy => *record = Record::new(&record.topology),
        }
    }
}

impl<K: KernelPort> Engine<K> {
    pub(super) async fn reconcile_apply(
        &self,
        topology: &Topology,
        saved: Option<&SavedPlan>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let _lock = self.state.lock(self.options.lock_timeout)?;
        let desired = self.desired(topology).await?;
        let run = Run {
            goal: Goal::Apply,
            dry_run,
            atomic: false,
            saved,
        };
        self.reconcile(desired, Scope::default(), None, run, progress)
            .await
    }

    /// Applies the file; if the kernel refuses a change or the read-back
    /// differs, restores the start state. Once the apply has succeeded,
    /// awaits `keep` (a check, a confirmation) still under the lock, and
    /// restores the start state too if it says why not.
    pub(super) async fn reconcile_atomic(
        &self,
        topology: &Topology,
        progress: &dyn Progress,
        keep: impl Future<Output = Result<(), String>>,
    ) -> Result<Execution, EngineError> {
        let _lock = self.state.lock(self.options.lock_timeout)?;
        let desired = self.desired(topology).await?;
        let run = Run {
            goal: Goal::Apply,
            dry_run: false,
            atomic: true,
            saved: None,
        };
        let (mut execution, start) = self
            .reconcile_run(desired, Scope::default(), None, run, progress)
            .await?;
        // Nothing changed (nothing to undo), or already undone.
        let Some(start) = start.filter(|_| execution.succeeded()) else {
            return Ok(execution);
        };
        if let Err(why) = keep.await {
            let restore = self.restore(&start, progress).await.map(Box::new);
            execution.rollback = Some(Rollback { why, restore });
        }
        Ok(execution)
    }

    /// Applies the file within the `touched` namespaces only: observes just
    /// them (and the far ends of the veths touched) and plans just what in
    /// them differs, so that repairing drift costs what the drift touches,
    /// not what the topology holds.
    pub(super) async fn reconcile_repair(
        &self,
        topology: &Topology,
        expansion: &Expansion,
        touched: &Touched,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let _lock = self.state.lock(self.options.lock_timeout)?;
        let mode = host::resolve_mode(&self.kernel, topology, &self.options.mode).await?;
        let (expanded_now, anywhere);
        let (whole, touched) = if mode == expansion.mode {
            (&expansion.desired, touched)
        } else {
            // The underlay's MTU changed since: overlay MTUs follow it,
            // on interfaces no event named.
            expanded_now = crate::model::expand(topology, &mode);
            anywhere = Touched::anywhere_in(touched.namespaces.keys().cloned());
            (&expanded_now, &anywhere)
        };
        let part = Part::of(whole, touched);
        let desired = Desired {
            topology: whole.topology.clone(),
            resources: whole
                .resources
                .iter()
                .filter(|(id, _)| part.namespaces.contains(&id.ns) && !part.outside.contains(id))
                .map(|(id, resource)| (id.clone(), resource.clone()))
                .collect(),
        };
        // A repair is atomic: `watch` never leaves drift half repaired.
        let run = Run {
            goal: Goal::Repair,
            dry_run: false,
            atomic: true,
            saved: None,
        };
        self.reconcile(desired, Scope::default(), Some(&part), run, progress)
            .await
    }

    pub(super) async fn reconcile_destroy(
        &self,
        target: DestroyTarget<'_>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let _lock = self.state.lock(self.options.lock_timeout)?;
        let by_name = matches!(target, DestroyTarget::Name(_));
        let (name, scope) = match target {
            DestroyTarget::File(topology) => {
                let desired = self.desired(topology).await?;
                (desired.topology.clone(), scope_of(&desired, None))
            }
            DestroyTarget::Name(name) => {
                // This machine's namespace too: links there carry marks.
                let marked = self.kernel.namespaces_marked_by(name).await?;
                let scope = Scope::namespaces(marked.into_iter().chain([String::new()]));
                (name.to_string(), scope)
            }
        };
        let records = self.records(&name)?;
        let recorded = records.get(&name).is_some();
        let resources = restore_set(&records, &name, |ns| self.kernel.namespace_exists(ns));
        let desired = Desired {
            topology: name.clone(),
            resources,
        };
        let run = Run {
            goal: Goal::Destroy,
            dry_run,
            atomic: false,
            saved: None,
        };
        let execution = self.reconcile(desired, scope, None, run, progress).await?;
        // Gone for good: nothing of it stays in the state dir either.
        if !dry_run && execution.succeeded() {
            self.state.remove_start(&name)?;
        }
        // No record and nothing marked: likely a misspelt name. An empty
        // plan wrote nothing, so saying so now changes nothing.
        let nothing_marked = execution.plan.is_empty() && execution.plan.conflicts.is_empty();
        if by_name && !recorded && nothing_marked {
            return Err(EngineError::UnknownTopology(name));
        }
        Ok(execution)
    }

    /// Observes what a topology's plan needs (only `part` of it, if given)
    /// and diffs.
    pub(super) async fn snapshot(
        &self,
        mut desired: Desired,
        records: Records,
        extra: Scope,
        part: Option<&Part>,
    ) -> Result<Snapshot, EngineError> {
        // A repair needs what the record says of its part only: a
        // thousand pods' record is read once, not walked three times.
        let record_in_part = part.and_then(|part| {
            let record = records.get(&desired.topology)?;
            Some(record.within(&part.namespaces))
        });
        let record = record_in_part
            .as_ref()
            .or_else(|| records.get(&desired.topology));
        let restores = restore::restores(
            &desired,
            record,
            |ns| self.kernel.namespace_exists(ns),
            |keys| self.kernel.fresh_namespace_sysctls(keys),
        )
        .map_err(|err| {
            KernelError::new(
                "read the kernel's default sysctls in a new namespace".to_string(),
                err,
            )
        })?;
        let restored: BTreeSet<ResourceId> = restores.keys().cloned().collect();
        desired.resources.extend(restores);
        let mut scope = scope_of(&desired, record).merge(extra);
        if let Some(part) = part {
            scope
                .namespaces
                .retain(|ns, _| part.namespaces.contains(ns));
            scope.only_interfaces = part.only_interfaces.clone();
            // A value to restore outside the part waits for a full apply.
            desired
                .resources
                .retain(|id, _| part.namespaces.contains(&id.ns) && !part.outside.contains(id));
        }
        tracing::debug!("phase: observe {} namespaces", scope.namespaces.len());
        let started = Instant::now();
        let mut observed = self.kernel.observe(&scope).await?;
        if let Some(part) = part {
            // Seen from one side only, such a veth looks like a stranger.
            observed
                .resources
                .retain(|id, _| !part.outside.contains(id));
            observed
                .route_protocols
                .retain(|id, _| !part.outside.contains(id));
            // Where only some interfaces were read, what the file has on
            // the others was not looked at: it is neither missing nor
            // checked. What was read is, even if the file puts it on
            // another interface (a route moved by hand is moved back).
            desired.resources.retain(|id, resource| {
                part.in_view(id, resource) || observed.resources.contains_key(id)
            });
        }
        tracing::info!(
            namespaces = scope.namespaces.len(),
            objects = observed.resources.len(),
            "observed in {:?}",
            started.elapsed()
        );
        tracing::debug!("phase: plan");
        let started = Instant::now();
        let ctx = Context {
            topology: &desired.topology,
            claims: &records,
            adopt: self.options.adopt,
        };
        let plan = plan::diff(&desired.resources, &observed, &ctx)?;
        sysctls::check(&self.kernel, &plan).await?;
        tracing::info!(
            changes = plan.changes.len(),
            "planned in {:?}",
            started.elapsed()
        );
        Ok(Snapshot {
            scope,
            desired,
            restored,
            observed,
            records,
            plan,
        })
    }

    /// Reads back each slice and diffs it against the file: what still
    /// differs, each object once (a veth end read by name in a later
    /// slice is looked at again there). A slice's reading is let go once
    /// diffed: verifying a thousand pods holds one slice's views and
    /// objects at a time, not all of them.
    async fn verify(
        &self,
        desired: &Desired,
        records: &Records,
        extra_scope: &Scope,
        slices: &[Part],
    ) -> Result<(Vec<Change>, Vec<plan::Conflict>), EngineError> {
        let (mut changes, mut conflicts) = (Vec::new(), Vec::new());
        let (mut seen, mut seen_conflicts) = (BTreeSet::new(), BTreeSet::new());
        for slice in slices {
            let again = self
                .snapshot(
                    slice.desired_of(desired),
                    records.clone(),
                    extra_scope.clone(),
                    Some(slice),
                )
                .await?;
            let plan = again.plan;
            changes.extend(
                plan.changes
                    .into_iter()
                    .filter(|c| seen.insert(c.id.clone())),
            );
            conflicts.extend(
                (plan.conflicts.into_iter()).filter(|c| seen_conflicts.insert(c.id.clone())),
            );
        }
        Ok((changes, conflicts))
    }

    /// Observes, plans, executes, records and verifies. The caller holds
    /// the lock.
    async fn reconcile(
        &self,
        desired: Desired,
        extra_scope: Scope,
        part: Option<&Part>,
        run: Run<'_>,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let (execution, _) = self
            .reconcile_run(desired, extra_scope, part, run, progress)
            .await?;
        Ok(execution)
    }

    /// `reconcile`, and the start snapshot saved if it changed anything.
    async fn reconcile_run(
        &self,
        desired: Desired,
        extra_scope: Scope,
        part: Option<&Part>,
        run: Run<'_>,
        progress: &dyn Progress,
    ) -> Result<(Execution, Option<StartSnapshot>), EngineError> {
        let topology = desired.topology.clone();
        let records = self.records(&topology)?;
        let mut record = records
            .get(&topology)
            .cloned()
            .unwrap_or_else(|| Record::new(&topology));
        let owned_namespaces: BTreeSet<String> = desired
            .namespaces()
            .map(String::from)
            .chain(record.all_namespaces())
            .collect();
        if !run.dry_run {
            self.state.recover(&records, &topology)?;
            // A deletion killed between unmount and unlink left a file
            // (one outside a repair's part waits for the next full run).
            let made = record.all_namespaces();
            let in_part = |ns: &String| part.is_none_or(|part| part.namespaces.contains(ns));
            for ns in made.iter().filter(|ns| in_part(ns)) {
                if self.kernel.remove_leftover_namespace(ns).unwrap_or(false) {
                    tracing::info!("removed the leftover file of deleted namespace {ns}");
                }
            }
        }
        self.let_hand_deleted_namespaces_go(&desired, &record, part)
            .await;
        let mut snapshot = self
            .snapshot(desired, records, extra_scope.clone(), part)
            .await?;
        let plan = match run.saved {
            // Exactly the plan shown, and only if it was computed from
            // what is there now (its fingerprint says).
            Some(saved) => saved.plan_if_current(&snapshot, &self.options)?,
            None => std::mem::take(&mut snapshot.plan),
        };
        let mut execution = Execution::of(plan);
        if run.dry_run || !execution.plan.conflicts.is_empty() {
            return Ok((execution, None));
        }
        if execution.plan.is_empty() {
            // An empty plan is its own verification: the kernel was just
            // read and matches. The record is brought up to date only if
            // it is not (a no-op writes nothing).
            let before = record.clone();
            run.settle(&mut record, &snapshot.desired, &snapshot.restored);
            if record != before {
                self.state.save(&record)?;
            }
            return Ok((execution, None));
        }

        if self.stop.is_cancelled() {
            // Stopped while observing: nothing was started.
            execution.interrupted = true;
            return Ok((execution, None));
        }
        // What it takes to undo this run, on disk before its first change.
        let start = rollback::start_snapshot(&topology, &snapshot, &execution.plan, &record);
        self.state.save_start(&start)?;
        // What was read is planned, and what undoing needs of it saved: let
        // it go (at a thousand pods the largest thing held) before verify.
        snapshot.observed = Default::default();
        let plan = &execution.plan;
        let mut journal = self.state.journal(&topology)?;
        tracing::debug!("phase: execute {} changes", plan.changes.len());
        progress.start(plan.changes.len());
        let started = Instant::now();
        let outcome = scheduler::run(
            &self.kernel,
            plan,
            &self.stop,
            |change, moment| journal.log(change, moment),
            progress,
        )
        .await?;
        tracing::info!("executed in {:?}", started.elapsed());
        progress.finish();
        for (change, _) in plan
            .changes
            .iter()
            .zip(&outcome.done)
            .filter(|(_, done)| **done)
        {
            record.note(change, &owned_namespaces);
        }
        // A change that failed may still have taken effect (a namespace
        // made, then EMFILE on opening it). It was absent when planned and
        // the lock kept every other netloom out: what is there now is this
        // run's, and said so in the journal too, so that the next run can
        // claim it like a killed run's.
        let mut unrecorded = outcome.journal_failure;
        for (i, change) in plan.changes.iter().enumerate() {
            if outcome.started[i]
                && !outcome.done[i]
                && change.action == Action::Create
                && self.exists_after_failure(&change.id).await
            {
                if let Err(err) = journal.log(change, Moment::Done) {
                    unrecorded.get_or_insert(err);
                }
                record.note(change, &owned_namespaces);
            }
        }
        execution.done = outcome.done;
        execution.failure = outcome.failure;
        execution.interrupted = outcome.interrupted;

        // Read back: the kernel must now match the file. (An interrupted
        // run is known not to: the next run reads it anew.)
        if execution.failure.is_none() && unrecorded.is_none() && !execution.interrupted {
            tracing::debug!("phase: verify");
            let mut records = snapshot.records.clone();
            records.by_topology.insert(topology.clone(), record.clone());
            // Only the namespaces the plan touched: the others were read
            // just before and matched (or the plan would have touched
            // them), and re-reading a thousand pods to verify one route
            // would cost what the first read did.
            let sliced;
            let slices = match part {
                Some(part) => std::slice::from_ref(part),
                None => {
                    let touched = Part::touched_by(&snapshot.desired, plan);
                    sliced = touched.slices(&snapshot.desired, VERIFY_SLICE);
                    &sliced[..]
                }
            };
            // (What this run restored is declared now: read back as such.)
            let (changes, conflicts) = self
                .verify(&snapshot.desired, &records, &extra_scope, slices)
                .await?;
            if changes.is_empty() && conflicts.is_empty() {
                run.settle(&mut record, &snapshot.desired, &snapshot.restored);
            }
            execution.unverified = changes;
            execution.unverified_conflicts = conflicts;
        }
        // Even after the journal failed, the record may still fit; if it
        // does not, the journal stays for the next run to fold in. A
        // repair puts back what the record already says (as on disk:
        // `recover` saved what a killed run's journal added): nothing to
        // write, where a thousand pods' record costs what the repair does.
        let saved = if record == start.record {
            Ok(())
        } else {
            self.state.save(&record)
        };
        let recorded = saved.and_then(|()| self.state.finish_journal(journal));
        if let Err(err) = recorded {
            unrecorded.get_or_insert(err);
        }
        execution.unrecorded = unrecorded;
        if run.atomic
            && let Some(why) = rollback::failure_of(&execution)
        {
            let restore = self.restore(&start, progress).await.map(Box::new);
            execution.rollback = Some(Rollback { why, restore });
        }
        Ok((execution, Some(start)))
    }
}

/// What a repair is asked to look at: namespaces, each with the interfaces
/// kernel events named there (`None`: anything in it may have changed).
#[derive(Clone, Debug, Default)]
pub struct Touched {
    pub namespaces: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl Touched {
    /// Anything in these namespaces.
    pub fn anywhere_in(namespaces: impl IntoIterator<Item = String>) -> Touched {
        Touched {
            namespaces: namespaces.into_iter().map(|ns| (ns, None)).collect(),
        }
    }

    fn touches(&self, ns: &str, ifname: &str) -> bool {
        self.namespaces
            .get(ns)
            .is_some_and(|names| names.as_ref().is_none_or(|n| n.contains(ifname)))
    }
}

/// The part of a topology a repair looks at: the namespaces touched, and
/// the far sides of the veths touched there (a veth is one object with an
/// end on each side). Veths that leave the part are `outside`: from one
/// end, their other end cannot be seen.
pub(super) struct Part {
    namespaces: BTreeSet<String>,
    outside: BTreeSet<ResourceId>,
    /// Namespaces of the part looked at for some interfaces only (read by
    /// name, not dumped): those kernel events named there, the far ends of
    /// the veths touched, and the loopback. Work proportional to the drift:
    /// one port of a bridge namespace holding a thousand.
    only_interfaces: BTreeMap<String, BTreeSet<String>>,
}

impl Part {
    /// The namespaces a plan's changes act in (a veth's both ends, and
    /// what a deleted namespace takes along); veths reaching out of them
    /// are `outside`, as in a repair.
    fn touched_by(desired: &Desired, plan: &plan::Plan) -> Part {
        let mut namespaces = BTreeSet::new();
        for change in &plan.changes {
            namespaces.insert(change.id.ns.clone());
            for value in change.from.iter().chain(&change.to) {
                if let Resource::Link(LinkKind::Veth { peer_ns, .. }) = value {
                    namespaces.insert(peer_ns.clone());
                }
            }
            namespaces.extend(change.takes_along.iter().map(|id| id.ns.clone()));
        }
        // Both ends: the one seen, its peer unseen, is a stranger veth
        // under its own name.
        let outside = desired
            .resources
            .iter()
            .filter_map(|(id, resource)| match resource {
                Resource::Link(LinkKind::Veth { peer_ns, peer })
                    if !(namespaces.contains(&id.ns) && namespaces.contains(peer_ns)) =>
                {
                    Some([id.clone(), ResourceId::link(peer_ns, peer)])
                }
                _ => None,
            })
            .flatten()
            .collect();
        Part {
            namespaces,
            outside,
            only_interfaces: BTreeMap::new(),
        }
    }

    /// This part (whole namespaces, as `touched_by` makes) cut in slices
    /// of at most `size` of its namespaces, each read whole, with the far
    /// ends in earlier slices of its veths read by name. Every object is
    /// so verified in the slice reading its namespace whole, and a veth
    /// between two slices in the later one: a bridge namespace's slice
    /// does not pull in every pod, each pod's slice takes its own port.
    fn slices(&self, desired: &Desired, size: usize) -> Vec<Part> {
        let names: Vec<&String> = self.namespaces.iter().collect();
        let slice_of: BTreeMap<&str, usize> = (names.iter().enumerate())
            .map(|(at, ns)| (ns.as_str(), at / size))
            .collect();
        let veths: Vec<(&ResourceId, &String, &String)> = (desired.resources.iter())
            .filter_map(|(id, resource)| match resource {
                Resource::Link(LinkKind::Veth { peer_ns, peer }) => Some((id, peer_ns, peer)),
                _ => None,
            })
            .collect();
        let mut slices = Vec::new();
        for (at, chunk) in names.chunks(size).enumerate() {
            let mut only_interfaces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for &(id, peer_ns, peer) in &veths {
                let (end, far) = (slice_of.get(id.ns.as_str()), slice_of.get(peer_ns.as_str()));
                let (Some(&end), Some(&far)) = (end, far) else {
                    continue;
                };
                if end == at && far < at {
                    only_interfaces
                        .entry(peer_ns.clone())
                        .or_default()
                        .insert(peer.clone());
                } else if far == at && end < at {
                    only_interfaces
                        .entry(id.ns.clone())
                        .or_default()
                        .insert(id.name.clone());
                }
            }
            for names in only_interfaces.values_mut() {
                // What marks the namespace netloom's.
                names.insert(LOOPBACK.to_string());
            }
            let mut slice = Part {
                namespaces: chunk.iter().map(|ns| ns.to_string()).collect(),
                outside: BTreeSet::new(),
                only_interfaces,
            };
            slice
                .namespaces
                .extend(slice.only_interfaces.keys().cloned());
            // Both ends: the one seen, its peer unseen, is a stranger veth
            // under its own name.
            // (Only veths with an end read whole can be: the ends read by
            // name are the far ends of this slice's veths.)
            let whole = |ns: &str| slice_of.get(ns) == Some(&at);
            slice.outside = (veths.iter())
                .filter(|(id, peer_ns, _)| whole(&id.ns) || whole(peer_ns))
                .filter(|(id, peer_ns, peer)| {
                    !(slice.sees_interface(&id.ns, &id.name) && slice.sees_interface(peer_ns, peer))
                })
                .flat_map(|(id, peer_ns, peer)| [(*id).clone(), ResourceId::link(peer_ns, peer)])
                .collect();
            slices.push(slice);
        }
        slices
    }

    /// The file's objects that `snapshot` can look at in this part (the
    /// veths reaching out of it left out): ids begin with their namespace,
    /// so each namespace is one range of the map, not a walk of all of it.
    /// Of a namespace read in part, what is on the interfaces read, and
    /// the routes and sysctls (read whatever interface they are on).
    fn desired_of(&self, desired: &Desired) -> Desired {
        let resources = self.namespaces.iter().flat_map(|ns| {
            let first = ResourceId::new(ns, Kind::Namespace, "");
            (desired.resources.range(first..)).take_while(move |(id, _)| id.ns == *ns)
        });
        let wanted = |id: &ResourceId, resource: &Resource| {
            matches!(id.kind, Kind::Route | Kind::Sysctl) || self.in_view(id, resource)
        };
        Desired {
            topology: desired.topology.clone(),
            resources: resources
                .filter(|(id, resource)| wanted(id, resource) && !self.outside.contains(id))
                .map(|(id, resource)| (id.clone(), resource.clone()))
                .collect(),
        }
    }

    fn of(desired: &Desired, touched: &Touched) -> Part {
        let veths = || {
            desired
                .resources
                .iter()
                .filter_map(|(id, resource)| match resource {
                    Resource::Link(LinkKind::Veth { peer_ns, peer }) => Some((id, peer_ns, peer)),
                    _ => None,
                })
        };
        // Neighbours only, not theirs, and only through the veths touched:
        // an event on one port of a shared bridge namespace would otherwise
        // pull in every pod.
        let mut namespaces: BTreeSet<String> = touched.namespaces.keys().cloned().collect();
        // The far ends of the veths touched, by namespace.
        let mut reached: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (id, peer_ns, peer) in veths() {
            if touched.touches(&id.ns, &id.name) {
                namespaces.insert(peer_ns.clone());
                reached.entry(peer_ns).or_default().insert(peer.clone());
            }
            if touched.touches(peer_ns, peer) {
                namespaces.insert(id.ns.clone());
                reached.entry(&id.ns).or_default().insert(id.name.clone());
            }
        }
        let only_interfaces = namespaces
            .iter()
            .filter_map(|ns| {
                let mut names = match touched.namespaces.get(ns) {
                    // Anything in it may have changed: all of it.
                    Some(None) => return None,
                    Some(Some(named)) => named.clone(),
                    None => BTreeSet::new(),
                };
                // A route without a device can leave by any interface:
                // only a whole read finds it.
                if routes_without_device(desired, ns) {
                    return None;
                }
                names.extend(reached.get(ns.as_str()).into_iter().flatten().cloned());
                // What marks the namespace netloom's.
                names.insert(LOOPBACK.to_string());
                Some((ns.clone(), names))
            })
            .collect();
        let mut part = Part {
            namespaces,
            outside: BTreeSet::new(),
            only_interfaces,
        };
        // Both ends: the one seen, its peer unseen, is a stranger veth
        // under its own name.
        part.outside = veths()
            .filter(|(id, peer_ns, peer)| {
                !(part.sees_interface(&id.ns, &id.name) && part.sees_interface(peer_ns, peer))
            })
            .flat_map(|(id, peer_ns, peer)| [id.clone(), ResourceId::link(peer_ns, peer)])
            .collect();
        part
    }

    /// Whether the part reads this interface.
    fn sees_interface(&self, ns: &str, ifname: &str) -> bool {
        self.namespaces.contains(ns)
            && self
                .only_interfaces
                .get(ns)
                .is_none_or(|names| names.contains(ifname))
    }

    /// Whether the part reads where this object lives: its namespace, and
    /// where that is read in part, its interface.
    fn in_view(&self, id: &ResourceId, resource: &Resource) -> bool {
        let Some(names) = self.only_interfaces.get(&id.ns) else {
            return self.namespaces.contains(&id.ns);
        };
        let ifname = match (id.kind, resource) {
            (Kind::Namespace, _) => return true,
            (Kind::Route, Resource::Route(route)) => route.dev.as_deref(),
            (Kind::Sysctl, _) => crate::graph::sysctl_interface(&id.name),
            _ => id.ifname(),
        };
        ifname.is_some_and(|ifname| names.contains(ifname))
    }
}

/// The loopback every namespace has.
const LOOPBACK: &str = "lo";

/// Namespaces read back at once when verifying an apply: each slice's
/// views and objects are let go once diffed (a thousand pods' at once
/// were the peak of an apply), and a slice is still large enough to keep
/// observe's concurrency busy.
pub(super) const VERIFY_SLICE: usize = 64;

/// Whether the file routes something in `ns` without naming the device.
fn routes_without_device(desired: &Desired, ns: &str) -> bool {
    desired.resources.iter().any(|(id, resource)| {
        id.ns == ns && matches!(resource, Resource::Route(route) if route.dev.is_none())
    })
}

impl<K: KernelPort> Engine<K> {
    /// `ip netns delete` returns before the kernel has torn the namespace
    /// down: for a moment its veths' far ends are still there, alone, and
    /// would read as foreign veths in the way. Before reading, the far
    /// ends of the declared veths into a namespace this topology made and
    /// someone deleted are given a few seconds to go; one that stays is
    /// then seen as what it is.
    async fn let_hand_deleted_namespaces_go(
        &self,
        desired: &Desired,
        record: &Record,
        part: Option<&Part>,
    ) {
        let made = record.all_namespaces();
        let deleted: BTreeSet<&str> = (made.iter())
            .filter(|ns| !self.kernel.namespace_exists(ns))
            .map(String::as_str)
            .collect();
        if deleted.is_empty() {
            return;
        }
        let deleted = |ns: &str| deleted.contains(ns);
        let in_part = |ns: &str| part.is_none_or(|part| part.namespaces.contains(ns));
        let far_ends: Vec<ResourceId> = desired
            .resources
            .iter()
            .filter_map(|(id, resource)| match resource {
                Resource::Link(LinkKind::Veth { peer_ns, peer }) => Some([
                    (id.ns.as_str(), id.name.as_str(), peer_ns.as_str()),
                    (peer_ns.as_str(), peer.as_str(), id.ns.as_str()),
                ]),
                _ => None,
            })
            .flatten()
            .filter(|(ns, _, other)| deleted(other) && !deleted(ns) && in_part(ns))
            .map(|(ns, name, _)| ResourceId::link(ns, name))
            .collect();
        if far_ends.is_empty() {
            return;
        }
        if let Err(err) = self.kernel.await_gone(&far_ends, HAND_DELETION_GRACE).await {
            tracing::debug!("not all gone with their deleted namespaces: {err}");
        }
    }

    /// Whether a create that failed left its object behind. When even the
    /// look fails (the limit that failed the create may fail it too), it
    /// may have: claimed, so that it cannot become nobody's.
    async fn exists_after_failure(&self, id: &ResourceId) -> bool {
        if id.kind == Kind::Namespace {
            return self.kernel.namespace_exists(&id.ns);
        }
        if !self.kernel.namespace_exists(&id.ns) {
            return false;
        }
        let scope = Scope::namespaces([id.ns.clone()]);
        match self.kernel.observe(&scope).await {
            Ok(observed) => observed.resources.contains_key(id),
            Err(_) => true,
        }
    }
}

/// The namespaces and sysctls a topology's plan must read: everything the
/// file declares, and everything its record says it made or replaced.
fn scope_of(desired: &Desired, record: Option<&Record>) -> Scope {
    let mut scope = Scope::default();
    // This machine's namespace always: an earlier version of the file may
    // have put marked objects there (an implicit host) that are now gone
    // from it.
    scope.namespaces.entry(String::new()).or_default();
    for id in desired.resources.keys() {
        let sysctls = scope.namespaces.entry(id.ns.clone()).or_default();
        if id.kind == Kind::Sysctl {
            sysctls.insert(id.name.clone());
        }
    }
    if let Some(record) = record {
        let made = record.namespaces.iter().cloned();
        let claimed = record.created.iter().map(|id| id.ns.clone());
        for ns in made.chain(claimed) {
            scope.namespaces.entry(ns).or_default();
        }
        // The sysctls it set, in its namespaces too: a namespace about to
        // be deleted takes them along, and its start snapshot must say
        // what they were.
        let set = record.created.iter().filter(|id| id.kind == Kind::Sysctl);
        for id in record.replaced.keys().chain(set) {
            scope
                .namespaces
                .entry(id.ns.clone())
                .or_default()
                .insert(id.name.clone());
        }
    }
    scope
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth(ns: &str, name: &str, peer_ns: &str) -> (ResourceId, Resource) {
        let kind = LinkKind::Veth {
            peer_ns: peer_ns.to_string(),
            peer: "eth0".to_string(),
        };
        (ResourceId::new(ns, Kind::Link, name), Resource::Link(kind))
    }

    #[test]
    fn a_part_takes_direct_veth_neighbours_only() {
        // Pods a and b hang off this machine's namespace; c off a.
        let desired = Desired {
            topology: "t".to_string(),
            resources: [
                veth("", "veth-a", "a"),
                veth("", "veth-b", "b"),
                veth("a", "to-c", "c"),
            ]
            .into_iter()
            .collect(),
        };
        let part = Part::of(&desired, &Touched::anywhere_in(["a".to_string()]));
        let names: Vec<&str> = part.namespaces.iter().map(String::as_str).collect();
        assert_eq!(names, ["", "a", "c"]);
        // b's veth has an end outside: looked at from "" alone it would
        // seem a stranger, so the repair leaves it be (either end: from b
        // alone, the end there would seem one too).
        let outside: Vec<(&str, &str)> = (part.outside.iter())
            .map(|id| (id.ns.as_str(), id.name.as_str()))
            .collect();
        assert_eq!(outside, [("", "veth-b"), ("b", "eth0")]);
    }

    #[test]
    fn an_event_on_one_port_of_a_shared_namespace_takes_that_pod_only() {
        let desired = Desired {
            topology: "t".to_string(),
            resources: [veth("", "veth-a", "a"), veth("", "veth-b", "b")]
                .into_iter()
                .collect(),
        };
        let touched = Touched {
            namespaces: BTreeMap::from([(
                String::new(),
                Some(BTreeSet::from(["veth-b".to_string()])),
            )]),
        };
        let part = Part::of(&desired, &touched);
        let names: Vec<&str> = part.namespaces.iter().map(String::as_str).collect();
        assert_eq!(names, ["", "b"]);
        // Both ends of the veth to a: the port unread, the pod not looked at.
        let outside: Vec<(&str, &str)> = (part.outside.iter())
            .map(|id| (id.ns.as_str(), id.name.as_str()))
            .collect();
        assert_eq!(outside, [("", "veth-a"), ("a", "eth0")]);
        // The port named, and the pod's end it reaches: read by name.
        let read = |ns: &str| part.only_interfaces[ns].iter().cloned().collect::<Vec<_>>();
        assert_eq!(read(""), ["lo", "veth-b"]);
        assert_eq!(read("b"), ["eth0", "lo"]);
        // Anything in it: every pod of it, and all of it read.
        let part = Part::of(&desired, &Touched::anywhere_in([String::new()]));
        assert_eq!(part.namespaces.len(), 3);
        assert!(part.outside.is_empty());
        assert_eq!(part.only_interfaces.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_namespace_with_a_route_by_any_device_is_read_whole() {
        let route = |to: &str, dev: Option<&str>| {
            let to: ipnet::IpNet = to.parse().unwrap();
            let route = crate::model::Route {
                to,
                metric: 0,
                via: None,
                dev: dev.map(String::from),
                table: crate::model::MAIN_TABLE,
            };
            let id = ResourceId::new("", Kind::Route, crate::model::Route::id_name(&to, 0, 254));
            (id, Resource::Route(route))
        };
        let with = |extra: (ResourceId, Resource)| Desired {
            topology: "t".to_string(),
            resources: [veth("", "veth-a", "a"), veth("", "veth-b", "b"), extra]
                .into_iter()
                .collect(),
        };
        let touched = Touched {
            namespaces: BTreeMap::from([("a".to_string(), None)]),
        };
        // A route out of a named device: the part reads what is on veth-a.
        let desired = with(route("10.1.0.0/16", Some("veth-a")));
        let part = Part::of(&desired, &touched);
        assert!(part.only_interfaces.contains_key(""));
        let (id, resource) = desired
            .resources
            .iter()
            .find(|(id, _)| id.kind == Kind::Route)
            .unwrap();
        assert!(part.in_view(id, resource));
        // One by whatever device the kernel picks: only a whole read finds it.
        let desired = with(route("10.2.0.0/16", None));
        let part = Part::of(&desired, &touched);
        assert!(!part.only_interfaces.contains_key(""));
    }
}

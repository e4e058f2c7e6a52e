//! The reconcile driver: observe the kernel, diff, execute the plan in
//! dependency order, read back and verify. `plan`, `apply`, `destroy` and
//! `status` are slices of this one pipeline (DESIGN.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::kernel::{Kernel, KernelError, Scope};
use crate::model::{
    self, Action, Change, Desired, Kind, Mode, Observed, Resource, ResourceId, Resources,
};
use crate::plan::{self, Conflict, Context, Plan};
use crate::spec::Topology;
use crate::state::{Record, Records, StateDir, StateError};

/// How many changes run at once. The kernel serialises most of them
/// (rtnl_lock); this only hides the round trips.
const CONCURRENCY: usize = 32;
/// How long to wait for the kernel to finish tearing down a deleted
/// namespace's veths.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("netloom cannot order its changes: {0} (a bug: please report it)")]
    Cycle(#[from] crate::graph::Cycle),
    #[error("host `{0}` is not in the file")]
    UnknownHost(String),
    #[error(
        "this machine is not host `{host}` of the file: its underlay should be {wanted}, but {found} (the underlay is never changed; check --host)"
    )]
    WrongHost {
        host: String,
        wanted: String,
        found: String,
    },
}

impl EngineError {
    /// Whether it failed for lack of privilege: netloom needs root.
    pub fn needs_root(&self) -> bool {
        let errno = match self {
            EngineError::Kernel(err) => err.errno(),
            EngineError::State(StateError::Io { source, .. }) => source.raw_os_error(),
            _ => None,
        };
        errno == Some(libc::EPERM)
            || matches!(self, EngineError::State(_)) && errno == Some(libc::EACCES)
    }
}

/// What a run is about, besides the file.
pub struct Options {
    pub mode: Mode,
    pub adopt: bool,
    pub state_dir: PathBuf,
    pub lock_timeout: Duration,
}

/// The outcome of executing a plan.
#[derive(Debug)]
pub struct Execution {
    pub plan: Plan,
    /// Per change: was it carried out.
    pub done: Vec<bool>,
    /// The change that failed and why.
    pub failure: Option<(usize, KernelError)>,
    /// After a complete run: what still differs when read back, and what
    /// is in the way of the file then.
    pub unverified: Vec<Change>,
    pub unverified_conflicts: Vec<Conflict>,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
            && self.unverified.is_empty()
            && self.unverified_conflicts.is_empty()
            && self.plan.conflicts.is_empty()
    }
}

/// Everything observed for one run.
pub struct Snapshot {
    pub desired: Desired,
    pub observed: Observed,
    pub records: Records,
    pub plan: Plan,
}

/// The kernel side of a topology, for the commands that read or change it.
pub struct Engine {
    kernel: Kernel,
    state: StateDir,
    options: Options,
}

impl Engine {
    pub fn new(options: Options) -> Result<Engine, EngineError> {
        Ok(Engine {
            kernel: Kernel::new()?,
            state: StateDir::new(&options.state_dir),
            options,
        })
    }

    /// Desired state of a topology in this run's mode. In host mode the
    /// underlay is read first: it must be there with the file's address
    /// (else this is not the machine the file calls `--host`), and overlay
    /// MTUs follow its MTU.
    async fn desired(&self, topology: &Topology) -> Result<Desired, EngineError> {
        let Mode::Host { name, .. } = &self.options.mode else {
            return Ok(model::expand(topology, &self.options.mode));
        };
        let host = topology
            .hosts
            .get(name.as_str())
            .ok_or_else(|| EngineError::UnknownHost(name.clone()))?;
        let ifname = model::expand::underlay_interface(host);
        let underlay = self.kernel.interface("", ifname).await?;
        let wanted = host.underlay.as_ref().and_then(|u| u.ok()).map(|u| u.0);
        if let Some(wanted) = wanted {
            let found = match &underlay {
                None => format!("there is no interface {ifname}"),
                Some(interface) if !interface.addresses.contains(&wanted) => format!(
                    "{ifname} has {}",
                    if interface.addresses.is_empty() {
                        "no address".to_string()
                    } else {
                        interface
                            .addresses
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                Some(_) => String::new(),
            };
            if !found.is_empty() {
                return Err(EngineError::WrongHost {
                    host: name.clone(),
                    wanted: format!("{wanted} on {ifname}"),
                    found,
                });
            }
        }
        let underlay_mtu = underlay.map(|interface| interface.mtu);
        let mode = Mode::Host {
            name: name.clone(),
            underlay_mtu,
        };
        Ok(model::expand(topology, &mode))
    }

    /// Observes what a topology's plan needs and diffs.
    async fn snapshot(
        &self,
        desired: Desired,
        records: Records,
        extra: Scope,
    ) -> Result<Snapshot, EngineError> {
        let scope = scope_of(&desired, records.get(&desired.topology)).merge(extra);
        let started = Instant::now();
        let observed = self.kernel.observe(&scope).await?;
        tracing::info!(
            namespaces = scope.namespaces.len(),
            objects = observed.resources.len(),
            "observed in {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let ctx = Context {
            topology: &desired.topology,
            claims: &records,
            adopt: self.options.adopt,
        };
        let plan = plan::diff(&desired.resources, &observed, &ctx)?;
        tracing::info!(
            changes = plan.changes.len(),
            "planned in {:?}",
            started.elapsed()
        );
        Ok(Snapshot {
            desired,
            observed,
            records,
            plan,
        })
    }

    /// The plan for a topology; changes nothing.
    pub async fn plan(&self, topology: &Topology) -> Result<Snapshot, EngineError> {
        let desired = self.desired(topology).await?;
        let records = self.state.records()?;
        self.snapshot(desired, records, Scope::default()).await
    }

    /// Makes the kernel match the topology, then verifies it does.
    /// `dry_run` stops after planning.
    pub async fn apply(
        &self,
        topology: &Topology,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let _lock = self.state.lock(self.options.lock_timeout)?;
        let desired = self.desired(topology).await?;
        let run = Run {
            goal: Goal::Apply,
            dry_run,
        };
        self.reconcile(desired, Scope::default(), run, progress)
            .await
    }

    /// Removes everything a topology owns and restores the values it
    /// replaced. With only a name, works from the state record, and finds
    /// namespaces by their marks.
    pub async fn destroy(
        &self,
        topology: DestroyTarget<'_>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let _lock = self.state.lock(self.options.lock_timeout)?;
        // From the file: what it places on this machine, and what the
        // record says was made. From a name alone: also every namespace
        // carrying the topology's mark (the record may be gone).
        let (name, scope) = match topology {
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
        // Restore the values replaced in namespaces that stay (those this
        // topology made go away with their sysctls).
        let records = self.state.records()?;
        let made = records
            .get(&name)
            .map(Record::all_namespaces)
            .unwrap_or_default();
        let restore: Resources = records
            .get(&name)
            .into_iter()
            .flat_map(|record| &record.replaced)
            .filter(|(id, _)| !made.contains(&id.ns))
            .filter(|(id, _)| id.ns.is_empty() || crate::kernel::netns::netns_exists(&id.ns))
            .map(|(id, value)| {
                let value = value.clone();
                (id.clone(), Resource::Sysctl { value })
            })
            .collect();
        let desired = Desired {
            topology: name,
            resources: restore,
        };
        let run = Run {
            goal: Goal::Destroy,
            dry_run,
        };
        self.reconcile(desired, scope, run, progress).await
    }

    /// Desired vs live, object by object.
    pub async fn status(
        &self,
        topology: &Topology,
    ) -> Result<(Snapshot, Vec<ObjectStatus>), EngineError> {
        let snapshot = self.plan(topology).await?;
        let statuses = object_statuses(&snapshot);
        Ok((snapshot, statuses))
    }

    /// The namespace of one of the topology's pods, if it exists and is
    /// this topology's.
    pub async fn pod_namespace(
        &self,
        topology: &Topology,
        pod: &str,
    ) -> Result<Option<String>, EngineError> {
        let Some((name, spec)) = topology.pods.get_key_value(pod) else {
            return Ok(None);
        };
        let ns = model::expand::pod_namespace(name, spec).to_string();
        let marked = self.kernel.namespaces_marked_by(&topology.name).await?;
        Ok(marked.contains(&ns).then_some(ns))
    }

    /// Observes, plans, executes, records and verifies. The caller holds
    /// the lock.
    async fn reconcile(
        &self,
        desired: Desired,
        extra_scope: Scope,
        run: Run,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        let topology = desired.topology.clone();
        let records = self.state.records()?;
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
            // A deletion killed between unmount and unlink left a file.
            for ns in record.all_namespaces() {
                if crate::kernel::netns::remove_leftover(&ns).unwrap_or(false) {
                    tracing::info!("removed the leftover file of deleted namespace {ns}");
                }
            }
        }
        let snapshot = self.snapshot(desired, records, extra_scope.clone()).await?;
        let plan = snapshot.plan.clone();
        let mut execution = Execution {
            done: vec![false; plan.changes.len()],
            plan,
            failure: None,
            unverified: Vec::new(),
            unverified_conflicts: Vec::new(),
        };
        if run.dry_run || !execution.plan.conflicts.is_empty() {
            return Ok(execution);
        }
        if execution.plan.is_empty() {
            // An empty plan is its own verification: the kernel was just
            // read and matches. The record is brought up to date only if
            // it is not (a no-op writes nothing).
            let before = record.clone();
            run.settle(&mut record, &snapshot.desired);
            if record != before {
                self.state.save(&record)?;
            }
            return Ok(execution);
        }

        let plan = &execution.plan;
        let mut journal = self.state.journal(&topology)?;
        progress.start(plan.changes.len());
        let started = Instant::now();
        let (done, failure) = self.execute(plan, &mut journal, progress).await?;
        tracing::info!("executed in {:?}", started.elapsed());
        progress.finish();
        for (change, _) in plan.changes.iter().zip(&done).filter(|(_, done)| **done) {
            record.note(change, &owned_namespaces);
        }
        execution.done = done;
        execution.failure = failure;

        // Read back: the kernel must now match the file.
        if execution.failure.is_none() {
            let mut records = snapshot.records.clone();
            records.by_topology.insert(topology.clone(), record.clone());
            let again = self
                .snapshot(snapshot.desired, records, extra_scope)
                .await?;
            if again.plan.is_empty() && again.plan.conflicts.is_empty() {
                run.settle(&mut record, &again.desired);
            }
            execution.unverified = again.plan.changes;
            execution.unverified_conflicts = again.plan.conflicts;
        }
        self.state.save(&record)?;
        journal.finish()?;
        Ok(execution)
    }

    /// Runs the changes, each once all its prerequisites are done, up to
    /// CONCURRENCY at a time. Stops starting new ones at the first failure.
    async fn execute(
        &self,
        plan: &Plan,
        journal: &mut crate::state::Journal,
        progress: &dyn Progress,
    ) -> Result<(Vec<bool>, Option<(usize, KernelError)>), EngineError> {
        let count = plan.changes.len();
        let mut waiting_on: Vec<usize> = plan.prerequisites.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (i, prerequisites) in plan.prerequisites.iter().enumerate() {
            for &j in prerequisites {
                dependents[j].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..count).filter(|&i| waiting_on[i] == 0).collect();
        let mut done = vec![false; count];
        let mut failure = None;
        let mut running = FuturesUnordered::new();
        // A deleted namespace's veths vanish from other namespaces a little
        // later. A deletion that other changes wait for (one reuses a name
        // it frees) waits for that itself; the rest are waited for once, at
        // the end, so that the kernel tears many namespaces down in a batch.
        let mut teardowns: Vec<ResourceId> = Vec::new();
        loop {
            while failure.is_none() && running.len() < CONCURRENCY {
                let Some(i) = ready.pop_first() else { break };
                let change = &plan.changes[i];
                journal.log(change)?;
                let wait = !dependents[i].is_empty();
                if !wait {
                    teardowns.extend(change.takes_along.iter().cloned());
                }
                running.push(async move { (i, self.carry_out(change, wait).await) });
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            match result {
                Ok(()) => {
                    done[i] = true;
                    progress.advance(&plan.changes[i]);
                    for &d in &dependents[i] {
                        waiting_on[d] -= 1;
                        if waiting_on[d] == 0 {
                            ready.insert(d);
                        }
                    }
                }
                Err(err) => {
                    failure.get_or_insert((i, err));
                }
            }
        }
        if failure.is_none()
            && let Err(err) = self.kernel.await_gone(&teardowns, TEARDOWN_TIMEOUT).await
        {
            // Charged to the last namespace deletion: not finished after all.
            let last = (0..count)
                .rev()
                .find(|&i| !plan.changes[i].takes_along.is_empty());
            if let Some(i) = last {
                done[i] = false;
                failure = Some((i, err));
            }
        }
        Ok((done, failure))
    }

    /// Makes one change; with `wait`, also waits for what a deleted
    /// namespace takes along to be gone.
    async fn carry_out(&self, change: &Change, wait: bool) -> Result<(), KernelError> {
        self.kernel.execute(change).await?;
        if wait && !change.takes_along.is_empty() {
            self.kernel
                .await_gone(&change.takes_along, TEARDOWN_TIMEOUT)
                .await?;
        }
        Ok(())
    }
}

/// What a reconcile run is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Apply,
    Destroy,
}

#[derive(Clone, Copy)]
struct Run {
    goal: Goal,
    dry_run: bool,
}

impl Run {
    /// The record once the kernel verifiably holds what this run wanted.
    fn settle(&self, record: &mut Record, desired: &Desired) {
        match self.goal {
            Goal::Apply => record.settle(desired),
            // Everything is gone and every replaced value restored.
            Goal::Destroy => *record = Record::new(&record.topology),
        }
    }
}

/// What `destroy` works from.
pub enum DestroyTarget<'a> {
    File(&'a Topology),
    Name(&'a str),
}

/// Shown while a plan runs.
pub trait Progress {
    fn start(&self, total: usize);
    fn advance(&self, change: &Change);
    fn finish(&self);
}

/// The namespaces and sysctls a topology's plan must read: everything the
/// file declares, and everything its record says it made or replaced.
fn scope_of(desired: &Desired, record: Option<&Record>) -> Scope {
    let mut scope = Scope::default();
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
        for id in record.replaced.keys() {
            scope
                .namespaces
                .entry(id.ns.clone())
                .or_default()
                .insert(id.name.clone());
        }
    }
    scope
}

/// How one object compares (`status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    InSync,
    Drifted,
    Missing,
    Extra,
}

#[derive(Debug, serde::Serialize)]
pub struct ObjectStatus {
    pub id: ResourceId,
    pub state: State,
    pub desired: Option<Resource>,
    pub live: Option<Resource>,
}

/// Every declared object and every extra owned one, with how it compares.
pub fn object_statuses(snapshot: &Snapshot) -> Vec<ObjectStatus> {
    let mut planned: BTreeMap<&ResourceId, Vec<Action>> = BTreeMap::new();
    for change in &snapshot.plan.changes {
        planned.entry(&change.id).or_default().push(change.action);
    }
    let conflicted: BTreeSet<&ResourceId> = snapshot.plan.conflicts.iter().map(|c| &c.id).collect();
    let live = &snapshot.observed.resources;
    let mut statuses = Vec::new();
    for (id, want) in &snapshot.desired.resources {
        let have = live.get(id).filter(|_| !conflicted.contains(id));
        let state = match (have, planned.get(id)) {
            (None, _) => State::Missing,
            (Some(_), Some(_)) => State::Drifted,
            (Some(_), None) => State::InSync,
        };
        statuses.push(ObjectStatus {
            id: id.clone(),
            state,
            desired: Some(want.clone()),
            live: have.cloned(),
        });
    }
    for change in &snapshot.plan.changes {
        if change.action == Action::Delete && !snapshot.desired.resources.contains_key(&change.id) {
            statuses.push(ObjectStatus {
                id: change.id.clone(),
                state: State::Extra,
                desired: None,
                live: change.from.clone(),
            });
        }
    }
    statuses
}

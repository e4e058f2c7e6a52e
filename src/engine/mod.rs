//! The engine: what `plan`, `apply`, `destroy` and `status` do, as slices
//! of one pipeline (observe, diff, execute in dependency order, read back,
//! verify), over the narrow `KernelPort`. Generic over the port, so that
//! all of it runs against the in-memory `fake::FakeKernel` in tests.
//!
//! - `reconcile`: the transaction (lock, recover, observe, plan, journal,
//!   execute, record, read back, settle)
//! - `scheduler`: a plan's DAG, run concurrently
//! - `host`: host-mode checks
//! - `destroy`: the destroy goal and its restore set
//! - `status`: object-by-object classification
//! - `check`: the file's expectations, with real traffic
//! - `path`: a packet's walk through the live kernel

mod check;
mod destroy;
pub mod fake;
mod host;
mod path;
mod port;
mod reconcile;
mod restore;
mod rollback;
pub(crate) mod saved;
mod scheduler;
mod status;
mod sysctls;

pub use destroy::DestroyTarget;
pub use path::{PathProbe, PathRun};
pub use port::KernelPort;
pub use reconcile::Touched;
pub use rollback::Rollback;
pub use saved::{PLAN_FORMAT_VERSION, PlanFileError, SavedPlan, is_plan_file};
pub use scheduler::{Outcome, Progress};
pub use status::{ObjectStatus, State, object_statuses};

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::diagnostics::SourceFile;
use tokio_util::sync::CancellationToken;

use crate::graph::Cycle;
use crate::kernel::{Kernel, KernelError};
use crate::model::{self, Change, Desired, Mode, Observed};
use crate::plan::{Conflict, Plan};
use crate::spec::Topology;
use crate::state::{Records, StateDir, StateError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Met before the kernel was changed (the state dir is read first).
    #[error("{0}; nothing was changed")]
    State(#[from] StateError),
    #[error("netloom cannot order its changes: {0} (a bug: please report it)")]
    Cycle(#[from] Cycle),
    #[error("host `{0}` is not in the file")]
    UnknownHost(String),
    #[error(transparent)]
    Path(#[from] crate::path::WalkError),
    /// A temporary listener of `check` could not be stopped.
    #[error("{0}")]
    Listener(std::io::Error),
    #[error(
        "no topology {0} on this machine: it has no state record and no object carries its mark"
    )]
    UnknownTopology(String),
    #[error(
        "this machine is not host `{host}` of the file: its underlay should be {wanted}, but {found} (the underlay is never changed; check --host)"
    )]
    WrongHost {
        host: String,
        wanted: String,
        found: String,
    },
    #[error(
        "topology {0} has no changing run to roll back: the state dir holds no start snapshot of it"
    )]
    NothingToRollBack(String),
    #[error(
        "the kernel cannot set {}: nothing was changed (fix the key in the file, or drop it)",
        .0.join("; ")
    )]
    Sysctls(Vec<String>),
    /// `path` from a pod whose namespace is not there.
    #[error(
        "pod `{pod}` is not applied on this machine (no namespace `{ns}`): apply the file first (`netloom apply FILE`)"
    )]
    NotApplied { pod: String, ns: String },
    /// `apply PLANFILE` when the kernel or the records moved on.
    #[error(
        "the saved plan is stale: since it was made, {}; nothing was changed (make a new plan: `netloom plan FILE --out PLANFILE`)",
        .0.join("; ")
    )]
    StalePlan(Vec<String>),
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

/// How often a wait for confirmation looks for one.
const CONFIRMATION_POLL: Duration = Duration::from_millis(100);

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
    /// Stopped by the engine's stop token (a signal) before every change
    /// had started: what was done is recorded, the rest is left for the
    /// next run.
    pub interrupted: bool,
    /// After a complete run: what still differs when read back, and what
    /// is in the way of the file then.
    pub unverified: Vec<Change>,
    pub unverified_conflicts: Vec<Conflict>,
    /// `--atomic`: the run was undone, and why.
    pub rollback: Option<Rollback>,
    /// The state dir failed (full, read-only) once changes had begun: what
    /// was done is in `done`, and the journal or the record keeps it for
    /// the next run.
    pub unrecorded: Option<StateError>,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        self.rollback.is_none()
            && self.failure.is_none()
            && self.unrecorded.is_none()
            && !self.interrupted
            && self.unverified.is_empty()
            && self.unverified_conflicts.is_empty()
            && self.plan.conflicts.is_empty()
    }
}

/// Everything observed for one run.
pub struct Snapshot {
    /// What was observed: namespaces, and the sysctls read in each.
    pub scope: crate::kernel::Scope,
    /// The file's objects, and the values to put back that it no longer
    /// declares (`restored`).
    pub desired: Desired,
    pub restored: std::collections::BTreeSet<crate::model::ResourceId>,
    pub observed: Observed,
    pub records: Records,
    pub plan: Plan,
}

/// A topology expanded: a thousand pods take a while, and a repair of one
/// need not pay that again while the file stays the same.
pub struct Expansion {
    /// The mode it was expanded in (in host mode, with the underlay's MTU
    /// as it was then: a repair that finds it changed expands again).
    mode: Mode,
    pub desired: Desired,
}

/// The kernel side of a topology, for the commands that read or change it.
pub struct Engine<K: KernelPort = Kernel> {
    kernel: K,
    state: StateDir,
    options: Options,
    /// Cancelled (by a signal) to stop a run: no new change starts, those
    /// under way finish and are recorded.
    stop: CancellationToken,
}

impl Engine<Kernel> {
    /// The engine over the real kernel.
    pub fn new(options: Options) -> Result<Engine, EngineError> {
        Ok(Engine::with_kernel(Kernel::new()?, options))
    }
}

impl<K: KernelPort> Engine<K> {
    pub fn with_kernel(kernel: K, options: Options) -> Engine<K> {
        Engine {
            kernel,
            state: StateDir::new(&options.state_dir),
            options,
            stop: CancellationToken::new(),
        }
    }

    /// Runs from now on stop when `stop` is cancelled.
    pub fn stop_on(&mut self, stop: CancellationToken) {
        self.stop = stop;
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Runs one operation, then lets go of every namespace it attached:
    /// nothing outlives its use, nothing later acts on a stale handle.
    async fn releasing<T>(&self, operation: impl Future<Output = T>) -> T {
        let result = operation.await;
        self.kernel.release();
        result
    }

    /// The state records, with killed runs' journals folded in; the
    /// kernel says when the namespaces they name appeared.
    fn records(&self, topology: &str) -> Result<Records, StateError> {
        self.state
            .records(topology, &|ns| self.kernel.namespace_made_at(ns))
    }

    async fn desired(&self, topology: &Topology) -> Result<Desired, EngineError> {
        let desired = host::desired(&self.kernel, topology, &self.options.mode).await?;
        if let Some(warning) =
            host::forwarding_warning(&self.kernel, topology, &self.options.mode).await?
        {
            tracing::warn!("{warning}");
        }
        Ok(desired)
    }

    /// The plan for a topology; changes nothing.
    pub async fn plan(&self, topology: &Topology) -> Result<Snapshot, EngineError> {
        self.releasing(async {
            let desired = self.desired(topology).await?;
            // Beside a running apply, wait for it to finish: its half-made
            // objects would look like conflicts.
            let _reading = self.state.lock_shared(self.options.lock_timeout)?;
            let records = self.records(&desired.topology)?;
            self.snapshot(desired, records, Default::default(), None)
                .await
        })
        .await
    }

    /// Makes the kernel match the topology, then verifies it does.
    /// `dry_run` stops after planning.
    pub async fn apply(
        &self,
        topology: &Topology,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        self.releasing(self.reconcile_apply(topology, None, dry_run, progress))
            .await
    }

    /// `apply --atomic`: applies like `apply`; a change the kernel refuses
    /// or a read-back that differs puts back the state found at the start
    /// (`Execution::rollback` says so). Once it has succeeded, `keep` (a
    /// check, a confirmation) decides, still under the lock: a reason not
    /// to keep it puts back the start state too.
    pub async fn apply_atomic(
        &self,
        topology: &Topology,
        progress: &dyn Progress,
        keep: impl Future<Output = Result<(), String>>,
    ) -> Result<Execution, EngineError> {
        self.releasing(self.reconcile_atomic(topology, progress, keep))
            .await
    }

    /// Puts back the state found at the start of the topology's last
    /// changing run, then reads back: a run of its own (plan, journal,
    /// execute, verify), so that one killed half way is finished by the next.
    pub async fn rollback(
        &self,
        topology: &Topology,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        self.releasing(async {
            let _lock = self.state.lock(self.options.lock_timeout)?;
            let start = self.state.start(&topology.name)?;
            let start =
                start.ok_or_else(|| EngineError::NothingToRollBack(topology.name.to_string()))?;
            self.restore(&start, progress).await
        })
        .await
    }

    /// Waits up to `timeout` for `netloom confirm` (or `confirmed()`, a
    /// keypress) to keep the apply just made; whether one came in time.
    pub async fn await_confirmation(
        &self,
        topology: &str,
        timeout: Duration,
        confirmed: impl Fn() -> bool,
    ) -> Result<bool, EngineError> {
        self.state.await_confirmation(topology)?;
        let deadline = std::time::Instant::now() + timeout;
        let answered = loop {
            if self.state.is_confirmed(topology) || confirmed() {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(CONFIRMATION_POLL).await;
        };
        self.state.end_confirmation(topology)?;
        Ok(answered)
    }

    /// Answers an `apply --confirm` waiting on the topology: its changes
    /// stay. Whether one was waiting.
    pub fn confirm(&self, topology: &str) -> Result<bool, EngineError> {
        Ok(self.state.confirm(topology)?)
    }

    /// Carries out a saved plan of the topology, exactly, if the kernel
    /// and the state records are still what it was computed from (else
    /// `StalePlan`, nothing changed); then verifies and records as `apply`.
    pub async fn apply_saved(
        &self,
        topology: &Topology,
        saved: &SavedPlan,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        self.releasing(self.reconcile_apply(topology, Some(saved), dry_run, progress))
            .await
    }

    /// A plan to save (`plan --out`): `snapshot` is what `plan` returned.
    pub fn saved_plan(&self, snapshot: &Snapshot, source: &SourceFile) -> SavedPlan {
        SavedPlan::new(snapshot, &self.options, source)
    }

    /// Makes the kernel match the topology where it was `touched` only,
    /// then verifies that: `watch` repairing drift where kernel events came
    /// from. `expansion` is the topology's, kept since the file last
    /// changed (`expand`).
    pub async fn repair(
        &self,
        topology: &Topology,
        expansion: &Expansion,
        touched: &Touched,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        self.releasing(self.reconcile_repair(topology, expansion, touched, progress))
            .await
    }

    /// What the topology expands to on this machine (in host mode, this
    /// host's part), without looking at the kernel beyond the host checks;
    /// kept by `watch` for its repairs.
    pub async fn expand(&self, topology: &Topology) -> Result<Expansion, EngineError> {
        self.releasing(async {
            let mode = host::resolve_mode(&self.kernel, topology, &self.options.mode).await?;
            let desired = model::expand(topology, &mode);
            Ok(Expansion { mode, desired })
        })
        .await
    }

    /// Removes everything a topology owns and restores the values it
    /// replaced. With only a name, works from the state record, and finds
    /// namespaces by their marks.
    pub async fn destroy(
        &self,
        target: DestroyTarget<'_>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<Execution, EngineError> {
        self.releasing(self.reconcile_destroy(target, dry_run, progress))
            .await
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

    /// The namespace of one of the topology's pods, or in lab mode of one
    /// of its hosts, if it exists and is this topology's.
    pub async fn place_namespace(
        &self,
        topology: &Topology,
        place: &str,
    ) -> Result<Option<String>, EngineError> {
        let ns = if let Some((name, spec)) = topology.pods.get_key_value(place) {
            model::expand::pod_namespace(name, spec).to_string()
        } else if self.options.mode == Mode::Lab && topology.hosts.contains_key(place) {
            // A lab host is the namespace of its name.
            place.to_string()
        } else {
            return Ok(None);
        };
        let marked = self
            .releasing(self.kernel.namespaces_marked_by(&topology.name))
            .await?;
        Ok(marked.contains(&ns).then_some(ns))
    }

    /// Runs a command inside a namespace and waits for it.
    pub fn run_command(&self, ns: &str, command: &[String]) -> std::io::Result<ExitStatus> {
        self.kernel.run_command(ns, command)
    }
}

#[cfg(test)]
mod tests;

//! `netloom watch FILE`: apply, then keep the kernel matching the file until
//! SIGINT/SIGTERM (docs/CLI.md).
//!
//! The event path: three sources wake one loop, and nothing polls.
//! - the file (`watch::files`): a debounced inotify watch on the directories
//!   its path crosses; only a changed content hash counts. A valid edit is a
//!   full reconcile; an invalid one is reported as `validate` reports it and
//!   changes nothing; a vanished file changes nothing either.
//! - the kernel (`kernel::events`): one multicast netlink socket per
//!   namespace in scope; events merge per namespace with the interfaces
//!   they name, and only those namespaces (and the far ends of the veths
//!   named) are observed and repaired (`Engine::repair`).
//! - a timer: the full resync (`--resync`), the safety net for what sends no
//!   event (fdb entries, a sysctl outside netconf), and the retry of a
//!   failed reconcile, with exponential backoff.
//!
//! Reconciles run one at a time, inline in the loop; whatever arrives
//! meanwhile merges into one follow-up (`watch::schedule::Work`). netloom's
//! own writes come back as events too, but every reading of a namespace is
//! preceded by a barrier on its event socket (`KernelEvents::cover_readings`):
//! what came before it, the writes the read-back saw among it, is dropped
//! once the reconcile settles, and the loop goes idle. The state dir's lock
//! is taken inside each reconcile only.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::topology::{TopologyError, report_topology_error, topology_from_source};
use super::{KernelArgs, block_on, exit, report};
use crate::engine::{DestroyTarget, Engine, Execution, Expansion, Progress, Touched};
use crate::kernel::events::KernelEvents;
use crate::logging::WATCH_TARGET;
use crate::model::{Action, Change};
use crate::spec::Topology;
use crate::watch::files::{DEFAULT_DEBOUNCE, FileEvent, FileWatch};
use crate::watch::metrics::{Metrics, MetricsServer, ObjectCounts, ReconcileReport};
use crate::watch::schedule::{Backoff, Work};

/// What `watch` was asked to do, besides the kernel flags.
pub struct WatchArgs {
    pub file: String,
    pub resync: Duration,
    pub metrics: Option<String>,
    pub destroy_on_exit: bool,
}

/// The first retry of a failed reconcile comes this soon; each failure in
/// a row doubles the wait, up to `RETRY_AT_MOST`.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_AT_MOST: Duration = Duration::from_secs(60);

/// A burst of kernel events (one `ip` command sends several) is let settle
/// this long, so that it makes one repair.
const EVENT_SETTLE: Duration = Duration::from_millis(10);

pub fn run(args: WatchArgs, kernel: &KernelArgs) -> ExitCode {
    if args.file == "-" {
        eprintln!("error: watch needs a file to watch, not standard input");
        return exit::failure();
    }
    block_on(async {
        let watch = match Watch::start(&args, kernel).await {
            Ok(watch) => watch,
            Err(StartError::Reported) => return exit::failure(),
            Err(StartError::Other(message)) => {
                eprintln!("error: {message}");
                return exit::failure();
            }
        };
        watch.run(args.resync, args.destroy_on_exit).await
    })
}

enum StartError {
    /// Already said (the file's diagnostics).
    Reported,
    Other(String),
}

/// Nothing to draw: watch reports each reconcile on one log line.
struct Silent;

impl Progress for Silent {
    fn start(&self, _: usize) {}
    fn advance(&self, _: &Change) {}
    fn finish(&self) {}
}

struct Watch {
    engine: Engine,
    file: FileWatch,
    /// The path as given, which diagnostics name.
    path: String,
    topology: Topology,
    events: KernelEvents,
    metrics: Arc<Metrics>,
    _server: Option<MetricsServer>,
    /// The namespaces the file puts objects in, and how many objects.
    scope: BTreeSet<String>,
    objects: usize,
    /// The file expanded, kept for repairs until it changes (`None`: it
    /// could not be, and every reconcile is a full one, which says why).
    expansion: Option<Expansion>,
    /// The scope is to be worked out again (the file changed).
    scope_stale: bool,
    backoff: Backoff,
    ready: bool,
}

impl Watch {
    async fn start(args: &WatchArgs, kernel: &KernelArgs) -> Result<Watch, StartError> {
        let engine = kernel
            .engine(false)
            .map_err(|e| StartError::Other(e.to_string()))?;
        let mut file = FileWatch::start(Path::new(&args.file), DEFAULT_DEBOUNCE)
            .map_err(|e| StartError::Other(format!("cannot watch {}: {e}", args.file)))?;
        // No topology to keep yet: a file that cannot be used now is an
        // error, not something to wait for.
        let topology = match file.next().await {
            FileEvent::Changed(content) => parse(&args.file, content.bytes).map_err(|err| {
                report_topology_error(&err);
                StartError::Reported
            })?,
            FileEvent::Unavailable { error, .. } => {
                return Err(StartError::Other(format!(
                    "cannot read {}: {error}",
                    args.file
                )));
            }
        };
        let metrics = Arc::new(Metrics::new());
        metrics.file_valid(true);
        let server =
            match &args.metrics {
                Some(addr) => Some(MetricsServer::start(addr, metrics.clone()).map_err(|e| {
                    StartError::Other(format!("cannot serve metrics on {addr}: {e}"))
                })?),
                None => None,
            };
        let events = KernelEvents::new();
        events.cover_readings(engine.kernel());
        Ok(Watch {
            engine,
            file,
            path: args.file.clone(),
            topology,
            events,
            metrics,
            _server: server,
            scope: BTreeSet::new(),
            objects: 0,
            expansion: None,
            scope_stale: true,
            backoff: Backoff::new(RETRY_FIRST, RETRY_AT_MOST),
            ready: false,
        })
    }

    async fn run(mut self, resync: Duration, destroy_on_exit: bool) -> ExitCode {
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("error: cannot handle SIGTERM/SIGINT");
            return exit::failure();
        };
        let stop = CancellationToken::new();
        self.engine.stop_on(stop.clone());
        let mut work = Work {
            start: true,
            ..Work::default()
        };
        let mut next_resync = Instant::now() + resync;
        let mut retry_at: Option<Instant> = None;
        let signal = loop {
            if !work.is_empty() && retry_at.is_none() {
                let full = work.is_full();
                // A signal mid-reconcile stops it as it stops an apply:
                // what runs finishes and is recorded, then watch exits.
                let reconciling = self.reconcile(std::mem::take(&mut work));
                tokio::pin!(reconciling);
                let mut stopped_by = None;
                let reconciled = tokio::select! {
                    reconciled = &mut reconciling => reconciled,
                    _ = terminate.recv() => { stopped_by = Some("SIGTERM"); stop.cancel(); reconciling.await }
                    _ = interrupt.recv() => { stopped_by = Some("SIGINT"); stop.cancel(); reconciling.await }
                };
                if let Some(signal) = stopped_by {
                    break signal;
                }
                if let Err(delay) = reconciled {
                    retry_at = Some(Instant::now() + delay);
                }
                if full {
                    next_resync = Instant::now() + resync;
                }
            }
            // Far enough never to fire: `select!` evaluates every branch.
            let retry = retry_at.unwrap_or_else(|| Instant::now() + RETRY_AT_MOST * 60);
            tokio::select! {
                biased;
                _ = terminate.recv() => break "SIGTERM",
                _ = interrupt.recv() => break "SIGINT",
                event = self.file.next() => {
                    if self.file_changed(event) {
                        work.file = true;
                        // The edit may be the fix: try it now.
                        retry_at = None;
                    }
                }
                changes = self.events.next() => {
                    tokio::time::sleep(EVENT_SETTLE).await;
                    work.kernel_events(changes);
                }
                _ = sleep_until(next_resync.into()) => {
                    work.resync = true;
                    next_resync = Instant::now() + resync;
                }
                _ = sleep_until(retry.into()), if retry_at.is_some() => {
                    retry_at = None;
                    work.retry = true;
                }
            }
            // Whatever else is pending joins this one reconcile.
            work.kernel_events(self.events.take());
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!(target: WATCH_TARGET, signal, "stopping on {signal}");
        if !destroy_on_exit {
            return exit::success();
        }
        // The signal stopped reconciles; this destroy is to run through.
        self.engine.stop_on(CancellationToken::new());
        let destroyed = self
            .engine
            .destroy(DestroyTarget::File(&self.topology), false, &Silent)
            .await;
        match destroyed {
            Ok(run) if run.succeeded() => {
                tracing::info!(target: WATCH_TARGET, "destroyed {}", self.topology.name);
                exit::success()
            }
            Ok(run) => {
                tracing::error!(target: WATCH_TARGET, "destroy on exit failed: {}", failure(&run));
                exit::failure()
            }
            Err(err) => {
                tracing::error!(target: WATCH_TARGET, "destroy on exit failed: {err}");
                exit::failure()
            }
        }
    }

    /// Takes a file event; whether the topology changed.
    fn file_changed(&mut self, event: FileEvent) -> bool {
        match event {
            FileEvent::Changed(content) => match parse(&self.path, content.bytes) {
                Ok(topology) => {
                    if topology.name != self.topology.name {
                        tracing::warn!(
                            target: WATCH_TARGET,
                            "the file now describes topology {} instead of {}: {} stays as it is",
                            topology.name,
                            self.topology.name,
                            self.topology.name
                        );
                    }
                    self.topology = topology;
                    self.scope_stale = true;
                    self.metrics.file_valid(true);
                    true
                }
                Err(err) => {
                    report_topology_error(&err);
                    tracing::warn!(
                        target: WATCH_TARGET,
                        "{} is not valid: the network stays as last applied, until an edit fixes it",
                        self.path
                    );
                    self.metrics.file_valid(false);
                    false
                }
            },
            FileEvent::Unavailable { resolved, error } => {
                tracing::warn!(
                    target: WATCH_TARGET,
                    "{} is unavailable ({}: {error}): the network stays as it is until the file is back",
                    self.path,
                    resolved.display()
                );
                false
            }
        }
    }

    /// Runs one reconcile for `work` and says how it went; on failure, how
    /// long to wait before the retry.
    async fn reconcile(&mut self, work: Work) -> Result<(), Duration> {
        let started = Instant::now();
        for (ns, change) in &work.namespaces {
            if change.gone {
                // Let go, so that the kernel frees it; the repair makes it anew.
                self.events.unsubscribe(ns);
            }
        }
        if self.scope_stale {
            self.refresh_scope().await;
            // A namespace the file no longer has must be free to go: the
            // socket listening there would keep it (and its veths) alive.
            for ns in self.events.subscribed() {
                if !self.scope.contains(&ns) {
                    self.events.unsubscribe(&ns);
                }
            }
            tokio::task::yield_now().await;
        }
        // Atomic, like every repair: a reconcile that fails half way puts
        // back what it found, instead of leaving a half-made network.
        let result = match &self.expansion {
            Some(expansion) if !work.is_full() => {
                let touched = Touched {
                    namespaces: work
                        .namespaces
                        .iter()
                        .map(|(ns, change)| (ns.clone(), change.touched().cloned()))
                        .collect(),
                };
                self.engine
                    .repair(&self.topology, expansion, &touched, &Silent)
                    .await
            }
            _ => {
                let keep = std::future::ready(Ok(()));
                self.engine
                    .apply_atomic(&self.topology, &Silent, keep)
                    .await
            }
        };
        // What the reconcile's readings saw (its own writes among it) needs
        // no follow-up: drop it before anything else is looked at.
        self.events.settle().await;
        let duration = started.elapsed();
        self.listen().await;

        let why = work.describe();
        let reason = work.reason();
        let (converged, done, objects, error) = match &result {
            Ok(run) => {
                let error = (!run.succeeded()).then(|| failure(run));
                (run.succeeded(), done(run), self.counts(run), error)
            }
            Err(err) => (false, 0, ObjectCounts::default(), Some(err.to_string())),
        };
        let follows_file = work.start || work.file;
        self.metrics.reconciled(
            &ReconcileReport {
                reason,
                converged,
                repairs: if follows_file { 0 } else { done as u64 },
                duration,
                objects,
            },
            error.clone(),
        );
        let millis = duration.as_secs_f64() * 1000.0;
        if let Some(error) = error {
            let delay = self.backoff.failed();
            tracing::warn!(
                target: WATCH_TARGET,
                reason,
                changes = done,
                duration_ms = millis,
                result = "failed",
                attempt = self.backoff.failures(),
                retry_in_ms = delay.as_millis() as u64,
                "reconcile failed ({why}): {error}; retrying in {delay:?} (failure {} in a row)",
                self.backoff.failures()
            );
            let _ =
                sd_notify::notify(&[sd_notify::NotifyState::Status(&format!("failing: {error}"))]);
            return Err(delay);
        }
        self.backoff.succeeded();
        tracing::info!(
            target: WATCH_TARGET,
            reason,
            changes = done,
            duration_ms = millis,
            result = "converged",
            "reconciled ({why}): {done} changes in {millis:.1} ms"
        );
        let status = format!("converged ({why}): {done} changes");
        if self.ready {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
        } else {
            self.ready = true;
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&status),
            ]);
        }
        Ok(())
    }

    /// Expands the file anew, and works out which namespaces it puts
    /// objects in.
    async fn refresh_scope(&mut self) {
        self.expansion = None;
        match self.engine.expand(&self.topology).await {
            Ok(expansion) => {
                let desired = &expansion.desired;
                self.scope = desired.resources.keys().map(|id| id.ns.clone()).collect();
                self.objects = desired.resources.len();
                self.scope_stale = false;
                self.expansion = Some(expansion);
            }
            // The reconcile about to run says why, with the same error.
            Err(err) => tracing::debug!("cannot expand the topology yet: {err}"),
        }
    }

    /// Listens to the events of every namespace in scope that exists, and
    /// to no other.
    async fn listen(&mut self) {
        for ns in self.events.subscribed() {
            if !self.scope.contains(&ns) {
                self.events.unsubscribe(&ns);
            }
        }
        let kernel = self.engine.kernel();
        for ns in &self.scope {
            if !ns.is_empty() && !crate::kernel::netns::netns_exists(ns) {
                continue;
            }
            if let Err(err) = self.events.subscribe(kernel, ns).await {
                tracing::warn!(target: WATCH_TARGET, "{err}; the periodic resync covers it");
            }
        }
        // Subscribing entered the namespaces: let go of them, so that one
        // deleted behind netloom's back can really go.
        kernel.release();
        self.metrics
            .watched_namespaces(self.events.subscribed().len());
    }

    /// How the objects stood before the reconcile acted.
    fn counts(&self, run: &Execution) -> ObjectCounts {
        let count = |action| {
            run.plan
                .changes
                .iter()
                .filter(|c| c.action == action)
                .count() as u64
        };
        let (missing, drifted, extra) = (
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
        );
        ObjectCounts {
            in_sync: (self.objects as u64).saturating_sub(missing + drifted),
            drifted,
            missing,
            extra,
        }
    }
}

fn parse(path: &str, bytes: Vec<u8>) -> Result<Topology, TopologyError> {
    topology_from_source(crate::load::source_from_bytes(path, bytes)?)
}

fn done(run: &Execution) -> usize {
    run.done.iter().filter(|done| **done).count()
}

/// Why a run did not converge, in one line.
fn failure(run: &Execution) -> String {
    let rolled_back = match &run.rollback {
        Some(rollback) if rollback.restored() => "; rolled back to the state found at its start",
        Some(_) => "; rolling back did not finish (run `netloom rollback`)",
        None => "",
    };
    if run.interrupted {
        return format!(
            "stopped by a signal after {} of {} changes; the next apply finishes it",
            done(run),
            run.plan.changes.len()
        );
    }
    if let Some((index, err)) = &run.failure {
        return format!(
            "{} failed: {err}{rolled_back}",
            report::change_line(&run.plan.changes[*index])
        );
    }
    if let Some(state_error) = &run.unrecorded {
        return format!("the state dir failed: {state_error}");
    }
    if let Some(conflict) = run
        .plan
        .conflicts
        .first()
        .or(run.unverified_conflicts.first())
    {
        let more = run.plan.conflicts.len() + run.unverified_conflicts.len() - 1;
        return format!(
            "conflict: {} ({}){}",
            conflict.message(),
            conflict.help(),
            if more > 0 {
                format!(", and {more} more conflicts")
            } else {
                String::new()
            }
        );
    }
    match run.unverified.first() {
        Some(change) => format!(
            "read back, still differs: {} ({} in all)",
            report::change_line(change),
            run.unverified.len()
        ),
        None => "did not converge".to_string(),
    }
}

//! Runs a plan's changes as the DAG its prerequisites make: each change
//! once all it waits for are done, many at a time; the first failure, or
//! the stop token (a signal), stops new work (what runs already finishes).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{EngineError, KernelPort};
use crate::graph::Cycle;
use crate::kernel::KernelError;
use crate::model::{Action, Change, Kind, ResourceId};
use crate::plan::Plan;
use crate::state::{Moment, StateError};

/// How many changes run at once. The kernel serialises most of them
/// (rtnl_lock); this only hides the round trips.
const CONCURRENCY: usize = 32;
/// How long to wait for the kernel to finish tearing down a deleted
/// namespace's veths.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Shown while a plan runs.
pub trait Progress {
    fn start(&self, total: usize);
    fn advance(&self, change: &Change);
    fn finish(&self);
}

/// What became of a plan's changes.
#[derive(Debug)]
pub struct Outcome {
    /// Per change: was it carried out.
    pub done: Vec<bool>,
    /// Per change: was it started (it may have taken effect in part
    /// even if it failed).
    pub started: Vec<bool>,
    /// The change that failed and why.
    pub failure: Option<(usize, KernelError)>,
    /// The journal could not be written (a full or read-only state dir):
    /// no change was started after that.
    pub journal_failure: Option<StateError>,
    /// The stop token was cancelled before every change had started: the
    /// rest were never started.
    pub interrupted: bool,
}

/// Runs the changes, each once all its prerequisites are done, up to
/// CONCURRENCY at a time; `journal` is told of each change before it starts
/// and once it is done. Stops starting new ones at the first failure, of
/// the kernel or of the journal (a change the journal was not told of is
/// not started: a kill then could orphan it), or once `stop` is cancelled.
pub async fn run<K: KernelPort>(
    kernel: &K,
    plan: &Plan,
    stop: &CancellationToken,
    mut journal: impl FnMut(&Change, Moment) -> Result<(), StateError>,
    progress: &dyn Progress,
) -> Result<Outcome, EngineError> {
    let count = plan.changes.len();
    let mut waiting_on: Vec<usize> = plan.prerequisites.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, prerequisites) in plan.prerequisites.iter().enumerate() {
        for &j in prerequisites {
            dependents[j].push(i);
        }
    }
    let mut ready = Ready::default();
    for i in (0..count).filter(|&i| waiting_on[i] == 0) {
        ready.insert(i, &plan.changes[i]);
    }
    let mut done = vec![false; count];
    let mut started = vec![false; count];
    let mut failure = None;
    let mut journal_failure = None;
    let mut running = FuturesUnordered::new();
    // A deleted namespace's veths vanish from other namespaces a little
    // later. A deletion that other changes wait for (one reuses a name
    // it frees) waits for that itself; the rest are waited for once, at
    // the end, so that the kernel tears many namespaces down in a batch.
    let mut teardowns: Vec<ResourceId> = Vec::new();
    loop {
        while failure.is_none()
            && journal_failure.is_none()
            && !stop.is_cancelled()
            && running.len() < CONCURRENCY
        {
            let Some(i) = ready.first() else { break };
            let change = &plan.changes[i];
            let target = link_setting(change);
            let batch = ready.take(i, target);
            let unjournalled = batch
                .iter()
                .find_map(|&j| journal(&plan.changes[j], Moment::Starting).err());
            if let Some(err) = unjournalled {
                journal_failure = Some(err);
                break;
            }
            for &j in &batch {
                started[j] = true;
            }
            let wait = !dependents[i].is_empty();
            if !wait {
                teardowns.extend(change.takes_along.iter().cloned());
            }
            let changes: Vec<&Change> = batch.iter().map(|&j| &plan.changes[j]).collect();
            running.push(async move {
                let result = if target.is_some() {
                    kernel.execute_settings(&changes).await
                } else {
                    carry_out(kernel, change, wait).await
                };
                (batch, result)
            });
        }
        let Some((batch, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(()) => {
                for i in batch {
                    done[i] = true;
                    if let Err(err) = journal(&plan.changes[i], Moment::Done) {
                        journal_failure.get_or_insert(err);
                    }
                    progress.advance(&plan.changes[i]);
                    for &d in &dependents[i] {
                        waiting_on[d] -= 1;
                        if waiting_on[d] == 0 {
                            ready.insert(d, &plan.changes[d]);
                        }
                    }
                }
            }
            // Charged to the first of a batch: its request names them all.
            Err(err) => {
                failure.get_or_insert((batch[0], err));
            }
        }
    }
    let interrupted = failure.is_none() && stop.is_cancelled() && started.contains(&false);
    if journal_failure.is_some() {
        return Ok(Outcome {
            done,
            started,
            failure,
            journal_failure,
            interrupted,
        });
    }
    if failure.is_none() && !interrupted && done.contains(&false) {
        // Changes left waiting on each other: never run, never guessed at.
        let stuck = (0..count).filter(|&i| !done[i]);
        let ids = stuck.map(|i| plan.changes[i].id.clone()).collect();
        return Err(EngineError::Cycle(Cycle(ids)));
    }
    // Interrupted: what was deleted is gone; its teardown is not waited for.
    if failure.is_none()
        && !interrupted
        && let Err(err) = kernel.await_gone(&teardowns, TEARDOWN_TIMEOUT).await
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
    Ok(Outcome {
        done,
        started,
        failure,
        journal_failure,
        interrupted,
    })
}

/// The changes ready to start, in plan order, and those of them that are
/// settings of an interface by interface: the other settings of the same
/// interface that are ready too go in the same request, found without a
/// scan of everything ready (thousands, on a cold apply).
#[derive(Default)]
struct Ready<'a> {
    all: BTreeSet<usize>,
    settings: HashMap<(&'a str, &'a str), BTreeSet<usize>>,
}

impl<'a> Ready<'a> {
    fn insert(&mut self, i: usize, change: &'a Change) {
        self.all.insert(i);
        if let Some(target) = link_setting(change) {
            self.settings.entry(target).or_default().insert(i);
        }
    }

    fn first(&self) -> Option<usize> {
        self.all.first().copied()
    }

    /// Takes `i`, and with it the other ready settings of its `target`.
    fn take(&mut self, i: usize, target: Option<(&'a str, &'a str)>) -> Vec<usize> {
        let mut batch = vec![i];
        if let Some(same) = target.and_then(|target| self.settings.remove(&target)) {
            batch.extend(same.into_iter().filter(|&j| j != i));
        }
        for j in &batch {
            self.all.remove(j);
        }
        batch
    }
}

/// The interface (namespace, name) whose settings a change makes, if it
/// is one that can share a request with the interface's other settings:
/// alias, MAC, master, IPv6 address generation and state, created or
/// updated. (An MTU is not: a token bucket may have to follow it.) Those
/// that must come before the link goes up wait for it in the plan's
/// prerequisites, so they are never ready together with `Up`.
fn link_setting(change: &Change) -> Option<(&str, &str)> {
    let setting = matches!(
        change.id.kind,
        Kind::Alias | Kind::Mac | Kind::Master | Kind::LinkLocal | Kind::Up
    );
    (setting && change.action != Action::Delete)
        .then_some((change.id.ns.as_str(), change.id.name.as_str()))
}

/// Makes one change; with `wait`, also waits for what a deleted
/// namespace takes along to be gone.
async fn carry_out<K: KernelPort>(
    kernel: &K,
    change: &Change,
    wait: bool,
) -> Result<(), KernelError> {
    kernel.execute(change).await?;
    if wait && !change.takes_along.is_empty() {
        kernel
            .await_gone(&change.takes_along, TEARDOWN_TIMEOUT)
            .await?;
    }
    Ok(())
}

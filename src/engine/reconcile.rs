//! The reconcile transaction: under the state dir's lock, recover what a
//! killed run left, observe, plan, then journal and execute each change,
//! record what was done, read back, and settle the record only once the
//! kernel verifiably matches.

use std::collections::BTreeSet;
use std::time::Instant;

use super::destroy::{DestroyTarget, restore_set};
use super::{Engine, EngineError, Execution, KernelPort, Progress, Snapshot, scheduler};
use crate::kernel::Scope;
use crate::model::{Desired, Kind};
use crate::plan::{self, Context};
use crate::spec::Topology;
use crate::state::{Record, Records};

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

impl<K: KernelPort> Engine<K> {
    pub(super) async fn reconcile_apply(
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
        let records = self.state.records()?;
        let recorded = records.get(&name).is_some();
        let resources = restore_set(&records, &name, |ns| self.kernel.namespace_exists(ns));
        let desired = Desired {
            topology: name.clone(),
            resources,
        };
        let run = Run {
            goal: Goal::Destroy,
            dry_run,
        };
        let execution = self.reconcile(desired, scope, run, progress).await?;
        // No record and nothing marked: likely a misspelt name. An empty
        // plan wrote nothing, so saying so now changes nothing.
        let nothing_marked = execution.plan.is_empty() && execution.plan.conflicts.is_empty();
        if by_name && !recorded && nothing_marked {
            return Err(EngineError::UnknownTopology(name));
        }
        Ok(execution)
    }

    /// Observes what a topology's plan needs and diffs.
    pub(super) async fn snapshot(
        &self,
        desired: Desired,
        records: Records,
        extra: Scope,
    ) -> Result<Snapshot, EngineError> {
        let scope = scope_of(&desired, records.get(&desired.topology)).merge(extra);
        tracing::debug!("phase: observe {} namespaces", scope.namespaces.len());
        let started = Instant::now();
        let observed = self.kernel.observe(&scope).await?;
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
                if self.kernel.remove_leftover_namespace(&ns).unwrap_or(false) {
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
        tracing::debug!("phase: execute {} changes", plan.changes.len());
        progress.start(plan.changes.len());
        let started = Instant::now();
        let outcome =
            scheduler::run(&self.kernel, plan, |change| journal.log(change), progress).await?;
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
        execution.done = outcome.done;
        execution.failure = outcome.failure;

        // Read back: the kernel must now match the file.
        if execution.failure.is_none() {
            tracing::debug!("phase: verify");
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

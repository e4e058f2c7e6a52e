//! Generated rollbacks over the in-memory kernel (no root): for pairs of
//! valid topologies (A, B) drawn from a small vocabulary, with A applied,
//! `apply --atomic` of B whose k-th write the kernel refuses leaves the
//! kernel exactly as A left it (every object, MTUs and MACs included), and
//! `rollback` after a B that succeeded does too.

use std::future::ready;

use netloom::engine::Execution;
use netloom::model::Observed;
use netloom::spec::Topology;
use proptest::prelude::*;
use proptest::sample::Index;

mod fake_engine;
mod pairs;

use fake_engine::{Quiet, TempState, block_on, lab_engine};
use pairs::{topology_choice, valid};

/// Where two kernels differ, object by object (empty: nowhere).
fn differences(now: &Observed, before: &Observed) -> Vec<String> {
    let mut differences = Vec::new();
    let ids: std::collections::BTreeSet<_> = now
        .resources
        .keys()
        .chain(before.resources.keys())
        .collect();
    for id in ids {
        let (was, is) = (before.resources.get(id), now.resources.get(id));
        let protocols = (before.route_protocols.get(id), now.route_protocols.get(id));
        if was != is || protocols.0 != protocols.1 {
            differences.push(format!(
                "{id}: was {was:?} {:?}, is {is:?} {:?}",
                protocols.0, protocols.1
            ));
        }
    }
    differences
}

fn explain(run: &Execution) -> String {
    let plan: Vec<String> = run
        .plan
        .changes
        .iter()
        .zip(&run.done)
        .map(|(change, done)| format!("{done} {:?} {}", change.action, change.id))
        .collect();
    let restore = run
        .rollback
        .as_ref()
        .map(|rollback| match &rollback.restore {
            Ok(restore) => format!(
                "restore: {}\nconflicts: {:#?}",
                explain(restore),
                restore.plan.conflicts
            ),
            Err(err) => format!("restore error: {err}"),
        });
    format!(
        "plan: {plan:#?}\nfailure: {:?}\nunverified: {:#?}\n{}",
        run.failure.as_ref().map(|(_, e)| e.to_string()),
        run.unverified,
        restore.unwrap_or_default()
    )
}

/// With A applied, B atomically with its `step`-th change refused: A's
/// state exactly, and A's record (planning A again finds nothing).
fn a_failure_half_way_restores_a(
    a: &Topology,
    b: &Topology,
    step: Index,
) -> Result<(), TestCaseError> {
    let state = TempState::new("rollbacks");
    let engine = lab_engine(&state);
    let first = block_on(engine.apply(a, false, &Quiet)).expect("apply runs");
    prop_assert!(first.succeeded(), "apply A: {}", explain(&first));
    let before = engine.kernel().live();
    let plan = block_on(engine.plan(b)).expect("plan runs").plan;
    if plan.is_empty() || !plan.conflicts.is_empty() {
        return Ok(());
    }
    let writes_so_far = engine.kernel().writes().len();
    let k = step.index(plan.changes.len()) + 1;
    engine.kernel().fail_write(writes_so_far + k);

    let run = block_on(engine.apply_atomic(b, &Quiet, ready(Ok(())))).expect("apply runs");
    prop_assert!(run.failure.is_some(), "write {k} of B was refused");
    let rollback = run.rollback.as_ref();
    prop_assert!(
        rollback.is_some_and(|rollback| rollback.restored()),
        "rolled back at step {k}: {}",
        explain(&run)
    );
    let differences = differences(&engine.kernel().live(), &before);
    prop_assert!(
        differences.is_empty(),
        "not A's state after a failure at step {}: {:#?}\n{}",
        k,
        differences,
        explain(&run)
    );
    let again = block_on(engine.plan(a)).expect("plan runs");
    prop_assert!(
        again.plan.is_empty() && again.plan.conflicts.is_empty(),
        "A again after the rollback: {:#?} {:#?}",
        again.plan.changes,
        again.plan.conflicts
    );
    Ok(())
}

/// With A applied, then B (it succeeds): `rollback` gives A's state.
fn rollback_after_b_restores_a(a: &Topology, b: &Topology) -> Result<(), TestCaseError> {
    let state = TempState::new("rollbacks");
    let engine = lab_engine(&state);
    let first = block_on(engine.apply(a, false, &Quiet)).expect("apply runs");
    prop_assert!(first.succeeded(), "apply A: {}", explain(&first));
    let before = engine.kernel().live();
    let second = block_on(engine.apply(b, false, &Quiet)).expect("apply runs");
    prop_assert!(second.succeeded(), "apply B: {}", explain(&second));
    if second.plan.is_empty() {
        return Ok(());
    }
    let restore = block_on(engine.rollback(b, &Quiet)).expect("rollback runs");
    prop_assert!(restore.succeeded(), "rollback: {}", explain(&restore));
    let differences = differences(&engine.kernel().live(), &before);
    prop_assert!(differences.is_empty(), "not A's state: {:#?}", differences);
    // Idempotent: a second rollback finds the start state already there.
    let writes = engine.kernel().writes().len();
    let twice = block_on(engine.rollback(b, &Quiet)).expect("rollback runs");
    prop_assert!(
        twice.succeeded() && twice.plan.is_empty(),
        "{}",
        explain(&twice)
    );
    prop_assert_eq!(engine.kernel().writes().len(), writes);
    Ok(())
}

fn pairs() -> impl Strategy<Value = (String, String)> {
    (topology_choice(), topology_choice()).prop_map(|(a, b)| (a.render(), b.render()))
}

fn cases() -> u32 {
    std::env::var("NETLOOM_TRANSITION_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(700)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn an_atomic_apply_refused_at_any_step_leaves_exactly_the_state_before((a, b) in pairs(), step in any::<Index>()) {
        let (Some(ta), Some(tb)) = (valid(&a), valid(&b)) else {
            return Err(TestCaseError::reject("invalid"));
        };
        a_failure_half_way_restores_a(&ta, &tb, step)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- A\n{a}--- B\n{b}")))?;
    }

    #[test]
    fn rollback_after_a_change_gives_back_exactly_the_state_before((a, b) in pairs()) {
        let (Some(ta), Some(tb)) = (valid(&a), valid(&b)) else {
            return Err(TestCaseError::reject("invalid"));
        };
        rollback_after_b_restores_a(&ta, &tb)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- A\n{a}--- B\n{b}")))?;
    }
}

//! Generated transitions over the in-memory kernel (no root): for pairs of
//! valid topologies (A, B) drawn from a small vocabulary, applying A and
//! then B converges in one run to exactly what applying B on an empty
//! kernel gives, and planning once more finds nothing to do.

use netloom::engine::fake::FakeKernel;
use netloom::engine::{Engine, Execution};
use netloom::model::{Kind, Observed, ResourceId, Resources};
use netloom::spec::Topology;
use proptest::prelude::*;

mod fake_engine;
mod pairs;

use fake_engine::{Quiet, TempState, block_on, lab_engine};
use pairs::{topology_choice, valid};

fn apply(engine: &Engine<FakeKernel>, topology: &Topology) -> Execution {
    block_on(engine.apply(topology, false, &Quiet)).expect("apply runs")
}

fn explain(run: &Execution) -> String {
    format!(
        "failure: {:?}\nconflicts: {:#?}\nunverified: {:#?}",
        run.failure
            .as_ref()
            .map(|(i, e)| (&run.plan.changes[*i].id, e.to_string())),
        run.plan.conflicts,
        run.unverified
    )
}

/// What the kernel holds, for comparing two kernels: an MTU or MAC the
/// file leaves out is the kernel's business and not compared (docs/FORMAT.md).
fn picture(observed: &Observed, desired: &Resources) -> String {
    let compared =
        |id: &&ResourceId| !matches!(id.kind, Kind::Mtu | Kind::Mac) || desired.contains_key(*id);
    let resources: Vec<_> = observed
        .resources
        .iter()
        .filter(|(id, _)| compared(id))
        .collect();
    format!("{resources:#?}\n{:#?}", observed.route_protocols)
}

fn converges(a: &Topology, b: &Topology) -> Result<(), TestCaseError> {
    let state = TempState::new("transitions");
    let engine = lab_engine(&state);
    let first = apply(&engine, a);
    prop_assert!(first.succeeded(), "apply A: {}", explain(&first));

    let second = apply(&engine, b);
    prop_assert!(second.succeeded(), "apply B after A: {}", explain(&second));
    let again = block_on(engine.plan(b)).expect("plan runs");
    prop_assert!(
        again.plan.is_empty() && again.plan.conflicts.is_empty(),
        "planning B again: {:#?} {:#?}",
        again.plan.changes,
        again.plan.conflicts
    );

    let fresh_state = TempState::new("transitions");
    let fresh = lab_engine(&fresh_state);
    let only_b = apply(&fresh, b);
    prop_assert!(only_b.succeeded(), "apply B alone: {}", explain(&only_b));
    let (after_a, alone) = (engine.kernel().live(), fresh.kernel().live());
    let desired = &again.desired.resources;
    prop_assert_eq!(
        picture(&after_a, desired),
        picture(&alone, desired),
        "A then B differs from B alone"
    );
    Ok(())
}

/// Valid (A, B) pairs; few draws are rejected, since the renderer keeps
/// to the rules (a pod lives beside its bridge, addresses in its host's
/// `pod_cidr`).
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
    fn applying_a_then_b_converges_to_exactly_b((a, b) in pairs()) {
        let (Some(ta), Some(tb)) = (valid(&a), valid(&b)) else {
            return Err(TestCaseError::reject("invalid"));
        };
        converges(&ta, &tb).map_err(|e| TestCaseError::fail(format!("{e}\n--- A\n{a}--- B\n{b}")))?;
    }
}

#[test]
fn most_generated_topologies_are_valid() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = topology_choice();
    let mut invalid = Vec::new();
    for _ in 0..500 {
        let text = strategy.new_tree(&mut runner).unwrap().current().render();
        if valid(&text).is_none() {
            invalid.push(text);
        }
    }
    assert!(
        invalid.len() < 50,
        "{} of 500 invalid, e.g.:\n{}",
        invalid.len(),
        invalid.first().map(String::as_str).unwrap_or("")
    );
}

//! Generated transitions on the real kernel, in sandboxes: for a few dozen
//! pairs of valid topologies (A, B) drawn with a fixed seed (reproducible),
//! `apply A; apply B` exits 0 on the first try and leaves the same kernel
//! picture as `apply B` in a fresh sandbox (`common::picture`: `ip -j` of
//! every namespace, without what the kernel picks anew each time).

mod common;
mod pairs;

use common::picture::picture;
use common::{Sandbox, assert_exit, assert_ok};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn pair_count() -> usize {
    std::env::var("NETLOOM_KERNEL_PAIRS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24)
}

/// `count` pairs of valid topology texts, the same on every run.
fn generated_pairs(count: usize) -> Vec<(String, String)> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = pairs::topology_choice();
    let mut draw = || loop {
        let text = strategy.new_tree(&mut runner).unwrap().current().render();
        if pairs::valid(&text).is_some() {
            return text;
        }
    };
    (0..count).map(|_| (draw(), draw())).collect()
}

#[test]
fn applying_a_then_b_leaves_what_applying_b_alone_leaves() {
    for (n, (a, b)) in generated_pairs(pair_count()).into_iter().enumerate() {
        let Some(edited) = Sandbox::new() else {
            return;
        };
        assert_ok(&edited.netloom_stdin(&["apply", "-"], &a));
        let second = edited.netloom_stdin(&["apply", "-"], &b);
        assert!(
            second.status.success(),
            "pair {n}: apply B after A failed:\n{}\n--- A\n{a}--- B\n{b}",
            String::from_utf8_lossy(&second.stderr)
        );
        assert_exit(
            &edited.netloom_stdin(&["plan", "--detailed-exitcode", "-"], &b),
            0,
        );
        let Some(fresh) = Sandbox::new() else {
            return;
        };
        assert_ok(&fresh.netloom_stdin(&["apply", "-"], &b));
        let (after_a, alone) = (picture(&edited), picture(&fresh));
        assert!(
            after_a == alone,
            "pair {n}: A then B differs from B alone\n--- A\n{a}--- B\n{b}--- A then B\n{after_a}--- B alone\n{alone}"
        );
    }
}

//! Human output (docs/CLI.md): plans, runs and statuses under the file's
//! objects, the pods table, the picture of the network, and no ANSI
//! escapes when stdout is not a terminal. Snapshots hold the real text;
//! the kernel ones run in sandboxes (tests/common).

mod common;

use std::process::Command;

use common::{Sandbox, assert_exit, assert_ok, netloom_bin, root};

const SEED: &str = "examples/seed.yaml";
/// Three pods on one bridge, two links, pod sysctls.
const THREE_PODS: &str = "examples/sysctls.yaml";
const LAB3: &str = "topologies/lab3.yaml";

fn stdout_of(args: &[&str]) -> String {
    let output = Command::new(netloom_bin())
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .expect("netloom runs");
    assert_ok(&output)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_no_ansi(what: &str, output: &str) {
    assert!(
        !output.contains('\x1b'),
        "{what} has ANSI escapes though stdout is no terminal:\n{output:?}"
    );
}

// ---- graph: no kernel needed ---------------------------------------------------

#[test]
fn graph_pictures_of_seed_three_pods_and_lab() {
    for (name, file) in [("seed", SEED), ("three_pods", THREE_PODS), ("lab3", LAB3)] {
        for format in ["dot", "mermaid"] {
            let picture = stdout_of(&["graph", "--format", format, file]);
            assert_no_ansi(file, &picture);
            insta::assert_snapshot!(format!("graph_{format}_{name}"), picture);
        }
    }
}

#[test]
fn graph_svg_of_the_lab_names_every_host_bridge_and_pod() {
    let svg = stdout_of(&["graph", "--format", "svg", LAB3]);
    let document = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(document.root_element().tag_name().name(), "svg");
    let words: String = document
        .descendants()
        .filter(|node| node.is_text())
        .filter_map(|node| node.text())
        .collect::<Vec<_>>()
        .join("\n");
    for name in [
        "red",
        "green",
        "blue",
        "red-br",
        "green-br",
        "blue-br",
        "red-pod",
        "green-pod",
        "blue-pod",
        "underlay",
    ] {
        assert!(
            words.contains(name),
            "the SVG does not name {name}:\n{words}"
        );
    }
}

#[test]
fn graph_objects_keeps_the_dependency_graph_and_refuses_svg() {
    let objects = stdout_of(&["graph", "--objects", SEED]);
    assert!(objects.starts_with("digraph netloom {"), "{objects}");
    assert!(objects.contains("\"alias testveth0\""), "{objects}");
    let picture = stdout_of(&["graph", SEED]);
    assert!(!picture.contains("alias"), "{picture}");
    let refused = Command::new(netloom_bin())
        .args(["graph", "--objects", "--format", "svg", SEED])
        .current_dir(root())
        .output()
        .expect("netloom runs");
    assert_exit(&refused, 64);
}

// ---- plan, apply, status, destroy: in a sandbox --------------------------------

/// Every human output of one file's life, snapshot by snapshot.
fn life_of(name: &str, file: &str) {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let run = |args: &[&str]| sandbox.netloom(args);
    let mut seen = Vec::new();
    let mut snapshot = |step: &str, output: std::process::Output| {
        let stdout = text(&output.stdout);
        assert_no_ansi(step, &stdout);
        assert_no_ansi(step, &text(&output.stderr));
        insta::assert_snapshot!(format!("{name}_{step}"), stdout);
        seen.push(step.to_string());
    };
    let plan = run(&["plan", file]);
    assert_exit(&plan, 0);
    snapshot("plan", plan);
    let dry = run(&["apply", "--dry-run", "--detailed-exitcode", file]);
    assert_exit(&dry, 2);
    snapshot("apply_dry_run", dry);
    let apply = run(&["apply", file]);
    assert_exit(&apply, 0);
    snapshot("apply", apply);
    let status = run(&["status", file]);
    assert_exit(&status, 0);
    snapshot("status", status);
    let destroy = run(&["destroy", file]);
    assert_exit(&destroy, 0);
    snapshot("destroy", destroy);
    assert_eq!(seen.len(), 5);
}

#[test]
fn life_of_the_seed() {
    life_of("seed", SEED);
}

#[test]
fn life_of_three_pods() {
    life_of("three_pods", THREE_PODS);
}

#[test]
fn life_of_the_lab() {
    life_of("lab3", LAB3);
}

#[test]
fn drift_is_shown_under_its_pod_and_the_table_says_drifted() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    assert_ok(&sandbox.netloom(&["apply", SEED]));
    sandbox.sh("ip -n test address del 10.0.0.2/24 dev eth0 && ip link set test0 down");
    let status = sandbox.netloom(&["status", SEED]);
    assert_exit(&status, 2);
    insta::assert_snapshot!("seed_status_drifted", text(&status.stdout));
    let all = text(&sandbox.netloom(&["status", "--all", SEED]).stdout);
    assert!(all.contains("in sync  interface"), "{all}");
    let plan = sandbox.netloom(&["plan", SEED]);
    insta::assert_snapshot!("seed_plan_drifted", text(&plan.stdout));
    let objects = text(&sandbox.netloom(&["plan", "--objects", SEED]).stdout);
    assert!(
        objects.contains("+ address test/eth0 10.0.0.2"),
        "{objects}"
    );
}

/// Every human output of seed and lab, stdout and stderr: the machine's
/// own namespace is named in words, never as the kernel's `""` shown `-`.
#[test]
fn the_machines_own_namespace_is_named_in_words() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let output = sandbox.netloom(args);
        let both = format!("{}{}", text(&output.stdout), text(&output.stderr));
        outputs.push((args.join(" "), both));
    };
    for file in [SEED, LAB3] {
        for graph in [
            &["--format", "dot"][..],
            &["--format", "svg"],
            &["--objects"],
        ] {
            run(&[&["graph"], graph, &[file]].concat());
        }
        run(&["validate", file]);
        run(&["plan", file]);
        run(&["plan", "--objects", file]);
        run(&["-vvv", "apply", "--objects", file]);
        run(&["status", "--all", file]);
        run(&["-vvv", "destroy", "--objects", file]);
    }
    // A bridge of the machine's namespace in the way: a conflict.
    sandbox.sh("ip link add test0 type bridge");
    run(&["plan", SEED]);
    run(&["apply", SEED]);
    for (command, output) in &outputs {
        assert!(
            !output.contains("-/"),
            "`netloom {command}` shows `-/`:\n{output}"
        );
    }
    let conflict = &outputs.last().expect("the conflicting apply").1;
    assert!(
        conflict.contains("link test0 in this machine's namespace already exists"),
        "{conflict}"
    );
    let objects = &outputs
        .iter()
        .find(|(command, _)| command == &format!("plan --objects {SEED}"))
        .expect("the seed's plan --objects")
        .1;
    assert!(
        objects.contains("+ address test0 10.0.0.1 in this machine's namespace: 10.0.0.1/24"),
        "{objects}"
    );
}

#[test]
fn readme_pictures_are_the_real_output() {
    for (file, svg) in [(SEED, "docs/seed.svg"), (LAB3, "docs/lab3.svg")] {
        let committed =
            std::fs::read_to_string(root().join(svg)).expect("the picture is committed");
        assert!(
            committed == stdout_of(&["graph", "--format", "svg", file]),
            "{svg} is stale; regenerate it with `cargo run -q -- graph --format svg {file} > {svg}`"
        );
    }
}

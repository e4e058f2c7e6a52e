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

/// A rectangle of an SVG: x, y, width, height.
#[derive(Clone, Copy, Debug)]
struct Area(f64, f64, f64, f64);

impl Area {
    fn holds(self, (x, y): (f64, f64)) -> bool {
        self.0 <= x && x <= self.0 + self.2 && self.1 <= y && y <= self.1 + self.3
    }

    /// Whether a point is on the border (within a pixel).
    fn borders(self, (x, y): (f64, f64)) -> bool {
        let near = |a: f64, b: f64| (a - b).abs() <= 1.0;
        let inside_x = self.0 - 1.0 <= x && x <= self.0 + self.2 + 1.0;
        let inside_y = self.1 - 1.0 <= y && y <= self.1 + self.3 + 1.0;
        (inside_x && (near(y, self.1) || near(y, self.1 + self.3)))
            || (inside_y && (near(x, self.0) || near(x, self.0 + self.2)))
    }

    fn overlaps(self, other: Area) -> bool {
        self.0 < other.0 + other.2
            && other.0 < self.0 + self.2
            && self.1 < other.1 + other.3
            && other.1 < self.1 + self.3
    }
}

fn number(node: roxmltree::Node, attribute: &str) -> f64 {
    node.attribute(attribute)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {attribute} on {node:?}"))
}

fn areas(document: &roxmltree::Document, class: &str) -> Vec<Area> {
    document
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some(class))
        .map(|n| {
            Area(
                number(n, "x"),
                number(n, "y"),
                number(n, "width"),
                number(n, "height"),
            )
        })
        .collect()
}

/// The two ends of each drawn edge.
fn edge_ends(document: &roxmltree::Document) -> Vec<(f64, f64)> {
    let mut ends = Vec::new();
    for path in document.descendants().filter(|n| n.has_tag_name("path")) {
        let numbers: Vec<f64> = path
            .attribute("d")
            .expect("a path has d")
            .split([' ', ','])
            .filter_map(|t| t.parse().ok())
            .collect();
        let n = numbers.len();
        assert!(n >= 4, "{numbers:?}");
        ends.extend([(numbers[0], numbers[1]), (numbers[n - 2], numbers[n - 1])]);
    }
    ends
}

/// What makes the picture readable, checked on the drawing itself: every
/// line of text inside its shape, no two shapes on each other, each
/// label on its edge (the edge stops at the label's border on both sides)
/// and the canvas no bigger than the drawing and its margin.
#[test]
fn the_svg_keeps_text_in_its_shapes_and_labels_on_their_edges() {
    for file in [SEED, LAB3, "topologies/k8s-vxlan.yaml", THREE_PODS] {
        let svg = stdout_of(&["graph", "--format", "svg", file]);
        let document = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        let (nodes, labels) = (areas(&document, "node"), areas(&document, "label"));
        let shapes: Vec<Area> = nodes.iter().chain(&labels).copied().collect();
        for line in document.descendants().filter(|n| n.has_tag_name("tspan")) {
            let at = (number(line, "x"), number(line, "y"));
            assert!(
                shapes.iter().any(|s| s.holds(at)),
                "{file}: `{}` is outside every shape",
                line.text().unwrap_or_default()
            );
        }
        for (i, a) in shapes.iter().enumerate() {
            for b in &shapes[i + 1..] {
                assert!(!a.overlaps(*b), "{file}: {a:?} and {b:?} overlap");
            }
        }
        let ends = edge_ends(&document);
        assert!(!labels.is_empty(), "{file} has labelled edges");
        for label in &labels {
            let touching = ends.iter().filter(|end| label.borders(**end)).count();
            assert_eq!(touching, 2, "{file}: label {label:?} is not on its edge");
        }
        let root = document.root_element();
        let view: Vec<f64> = root
            .attribute("viewBox")
            .expect("a viewBox")
            .split(' ')
            .map(|v| v.parse().expect("a number"))
            .collect();
        let drawn = shapes.iter().chain(&areas(&document, "cluster")).fold(
            (f64::MAX, f64::MAX, f64::MIN, f64::MIN),
            |(x, y, r, b), a| (x.min(a.0), y.min(a.1), r.max(a.0 + a.2), b.max(a.1 + a.3)),
        );
        let margin = [
            drawn.0 - view[0],
            drawn.1 - view[1],
            view[0] + view[2] - drawn.2,
            view[1] + view[3] - drawn.3,
        ];
        assert!(
            margin.iter().all(|m| (0.0..=20.0).contains(m)),
            "{file}: the canvas {view:?} is not cut to the drawing {drawn:?}"
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

/// README's first run shows the seed's plan as the snapshot holds it.
#[test]
fn readme_shows_the_real_plan() {
    let snapshot = std::fs::read_to_string(root().join("tests/snapshots/output__seed_plan.snap"))
        .expect("the seed's plan snapshot");
    let (_, plan) = snapshot
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .expect("an insta snapshot: header between --- lines, then the text");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(
        readme.contains(&format!("$ netloom plan topologies/seed.yaml\n{plan}")),
        "README's first run does not show the seed's plan as it is:\n{plan}"
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

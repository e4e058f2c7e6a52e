//! Every shipped topology file (examples/, topologies/) is valid and can be
//! drawn, checked with the real binary as a user would run it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One example per feature of docs/FORMAT.md, and the complete labs. A file
/// that disappears (or is renamed) must be noticed: README and the kernel
/// tests refer to them.
const EXPECTED: [&str; 14] = [
    "examples/seed.yaml",
    "examples/bridge-shorthand.yaml",
    "examples/pod-to-pod.yaml",
    "examples/dual-stack.yaml",
    "examples/mac-mtu.yaml",
    "examples/sysctls.yaml",
    "examples/host-gw.yaml",
    "examples/vxlan.yaml",
    "examples/expectations.yaml",
    "examples/rate.yaml",
    "examples/route-tables.yaml",
    "topologies/seed.yaml",
    "topologies/k8s-host-gw.yaml",
    "topologies/k8s-vxlan.yaml",
];

/// Every `.yaml` file of `examples/` and `topologies/`, relative to the root.
fn topology_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["examples", "topologies"] {
        for entry in fs::read_dir(root().join(dir)).expect("directory exists") {
            let path = entry.expect("readable entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let name = path.file_name().unwrap().to_string_lossy();
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

fn netloom() -> Command {
    let mut cmd = Command::cargo_bin("netloom").expect("binary is built");
    cmd.current_dir(root()).env("NO_COLOR", "1");
    cmd
}

/// Runs netloom, returning stdout; panics with both streams when it does
/// not exit 0.
fn run_ok(args: &[&str]) -> String {
    let output = netloom().args(args).output().expect("netloom runs");
    assert!(
        output.status.success(),
        "`netloom {}` exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// The host names of a topology file, read with the library's own loader.
fn hosts(file: &str) -> Vec<String> {
    let source = netloom::load::read_source(&root().join(file).to_string_lossy())
        .unwrap_or_else(|err| panic!("{file}: {err}"));
    let topology =
        netloom::load::parse(&source).unwrap_or_else(|err| panic!("{file} does not parse: {err}"));
    topology.hosts.keys().map(|h| h.value.clone()).collect()
}

#[test]
fn the_expected_files_exist() {
    let files = topology_files();
    let missing: Vec<_> = EXPECTED
        .iter()
        .filter(|f| !files.iter().any(|g| g == *f))
        .collect();
    assert!(missing.is_empty(), "missing topology files: {missing:?}");
}

#[test]
fn every_file_validates() {
    for file in topology_files() {
        let out = run_ok(&["validate", &file]);
        assert!(out.contains("valid"), "{file}: {out}");
        let json: serde_json::Value =
            serde_json::from_str(&run_ok(&["validate", "--output", "json", &file]))
                .expect("validate --output json prints JSON");
        assert_eq!(json["valid"], true, "{file}: {json:#}");
        assert_eq!(json["diagnostics"], serde_json::json!([]), "{file}");
    }
}

#[test]
fn every_file_graphs_in_both_formats() {
    for file in topology_files() {
        let dot = run_ok(&["graph", "--objects", "--format", "dot", &file]);
        assert!(
            dot.starts_with("digraph") && dot.contains("->"),
            "{file}: not a DOT graph with edges:\n{dot}"
        );
        let mermaid = run_ok(&["graph", "--objects", "--format", "mermaid", &file]);
        assert!(
            mermaid.starts_with("flowchart") && mermaid.contains("-->"),
            "{file}: not a Mermaid flowchart with edges:\n{mermaid}"
        );
    }
}

#[test]
fn every_host_of_a_multi_node_file_graphs_alone() {
    let mut seen = 0;
    for file in topology_files() {
        for host in hosts(&file) {
            seen += 1;
            let dot = run_ok(&["graph", "--objects", "--host", &host, &file]);
            assert!(dot.starts_with("digraph"), "{file} --host {host}:\n{dot}");
            assert!(
                dot.contains("this machine's namespace"),
                "{file} --host {host}: nothing placed on the host itself:\n{dot}"
            );
        }
    }
    assert!(seen >= 4, "expected the multi-node files to declare hosts");
}

#[test]
fn every_file_reads_from_stdin_too() {
    for file in topology_files() {
        let text = fs::read_to_string(root().join(&file)).unwrap();
        netloom()
            .args(["validate", "-"])
            .write_stdin(text)
            .assert()
            .success();
    }
}

#[test]
fn examples_can_be_applied_side_by_side() {
    // Each file is its own topology (`name` = file stem), and no two of
    // them want the same namespace, or the same interface or address in the
    // machine's own namespace: a user can apply every example on one
    // machine at once. The two seed files are the same topology on purpose.
    use netloom::model::{Kind, Mode, Resource};
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for file in topology_files() {
        let source = netloom::load::read_source(&root().join(&file).to_string_lossy()).unwrap();
        let topology = netloom::load::parse(&source).unwrap();
        let stem = Path::new(&file).file_stem().unwrap().to_string_lossy();
        assert_eq!(
            topology.name.value, stem,
            "{file}: topology name is not the file name"
        );
        let desired = netloom::model::expand(&topology, &Mode::Lab);
        let mut claims: Vec<String> = desired
            .namespaces()
            .map(|ns| format!("namespace {ns}"))
            .collect();
        for (id, resource) in &desired.resources {
            if !id.ns.is_empty() {
                continue;
            }
            match (id.kind, resource) {
                (Kind::Link, _) => claims.push(format!("interface {}", id.name)),
                (Kind::Address, Resource::Address { address, .. }) => {
                    claims.push(format!("network {}", address.trunc()))
                }
                _ => {}
            }
        }
        for claim in claims {
            let owner = format!("{} ({file})", topology.name.value);
            if let Some(previous) = owners.get(&claim) {
                assert!(
                    previous.starts_with("seed ") && owner.starts_with("seed "),
                    "{claim} is wanted by both {previous} and {owner}"
                );
            }
            owners.insert(claim, owner);
        }
    }
}

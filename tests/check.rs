//! `netloom check` and `apply --check` in sandboxes (issue 9): every
//! topology's expectations hold after apply; a route deleted by hand fails
//! the right one with its reason; `reach: false` is honoured; a listener
//! netloom started is gone afterwards; the JSON shape.

mod common;
mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Sandbox, apply_converged, assert_exit, assert_ok};
use serde_json::Value;
use support::{in_netns, json, netns_handle, topology_file};

/// Every complete lab of `topologies/`, as a path from the repository root.
fn topologies() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(common::root().join("topologies"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("topologies/{name}"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// The number of `expect` entries of a file, counted in its text.
fn expectations(file: &str) -> usize {
    let text = std::fs::read_to_string(common::root().join(file)).unwrap();
    text.split("\nexpect:\n").nth(1).map_or(0, |list| {
        list.lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .count()
    })
}

#[test]
fn every_topology_holds_its_expectations_after_apply() {
    for file in &topologies() {
        let file = file.as_str();
        let Some(sandbox) = Sandbox::new() else {
            return;
        };
        apply_converged(&sandbox, file);
        let out = assert_ok(&sandbox.netloom(&["check", file]));
        assert!(out.contains("expectations hold"), "{file}:\n{out}");
        let doc = json(&sandbox.netloom(&["check", "--output", "json", file]));
        let results = doc["results"].as_array().expect("results");
        assert!(!results.is_empty(), "{file} has expectations");
        assert_eq!(results.len(), expectations(file), "{file}: {doc:#}");
        for result in results {
            assert_eq!(result["ok"], true, "{file}: {result:#}");
            assert!(result["latency_ms"].as_f64().unwrap() >= 0.0, "{result:#}");
        }
    }
}

#[test]
fn a_route_deleted_by_hand_fails_the_expectation_that_needs_it() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "topologies/k8s-host-gw.yaml";
    apply_converged(&sandbox, file);
    sandbox.sh("ip -n node1 route del 10.244.2.0/24");
    let output = sandbox.netloom(&["check", "--output", "json", file]);
    assert_exit(&output, 1);
    let doc = json(&output);
    let results = doc["results"].as_array().unwrap();
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{doc:#}");
    assert_eq!(failed[0]["from"], "pod1a");
    assert_eq!(failed[0]["to"], "pod2a");
    // node1 answers with "net unreachable".
    assert_eq!(failed[0]["reason"], "no-route", "{doc:#}");
    assert_eq!(failed[0]["latency_ms"], Value::Null);
    assert_eq!(doc["summary"]["failed"], 1);
    // The human table says it too.
    let output = sandbox.netloom(&["check", file]);
    assert_exit(&output, 1);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("FAILED: no route"), "{table}");
}

#[test]
fn reach_false_must_not_be_reachable() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let base = std::fs::read_to_string(common::root().join("topologies/k8s-vxlan.yaml")).unwrap();
    // An address nobody has on the segment, and a port nothing serves on
    // the bridge (not a pod: no listener).
    let holds = format!(
        "{base}  - {{ from: web1, to: 10.250.0.99, reach: false }}\n  - {{ from: web1, to: 10.250.0.1, port: 9, reach: false }}\n"
    );
    let file = topology_file("check-reach-false.yaml", &holds);
    apply_converged(&sandbox, &file);
    let doc = json(&sandbox.netloom(&["check", "--output", "json", &file]));
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(|r| r["ok"] == true), "{doc:#}");
    assert_eq!(results[5]["reason"], "refused");
    // Reachable but must not be: fails.
    let broken = format!("{base}  - {{ from: web1, to: web2, reach: false }}\n");
    let file = topology_file("check-reach-false-broken.yaml", &broken);
    let output = sandbox.netloom(&["check", "--output", "json", &file]);
    assert_exit(&output, 1);
    let doc = json(&output);
    assert_eq!(doc["results"][4]["ok"], false, "{doc:#}");
    assert_eq!(doc["results"][4]["reached"], true);
}

#[test]
fn the_listener_netloom_started_is_gone_afterwards() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "topologies/k8s-host-gw.yaml";
    apply_converged(&sandbox, file);
    let doc = json(&sandbox.netloom(&["check", "--output", "json", file]));
    let tcp = &doc["results"][3];
    assert_eq!(tcp["method"], "tcp");
    assert_eq!(tcp["listener"], true, "{tcp:#}");
    assert_eq!(tcp["ok"], true);
    // Nothing listens in pod1b any more, and a connection is refused.
    assert_eq!(sandbox.sh("ip netns exec pod1b ss -Htln").trim(), "");
    let refused = in_netns(netns_handle(&sandbox, "pod3b"), || {
        TcpStream::connect_timeout(
            &"10.244.1.11:80".parse::<SocketAddr>().unwrap(),
            Duration::from_secs(2),
        )
    });
    let err = refused.expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn apply_check_applies_then_checks() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "topologies/k8s-vxlan.yaml";
    let doc = json(&sandbox.netloom(&["apply", "--check", "--output", "json", file]));
    assert!(doc["changes"].as_array().unwrap().len() > 10, "{doc:#}");
    let results = doc["check"].as_array().expect("check results");
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r["ok"] == true), "{doc:#}");
    // A failing expectation makes the apply exit 1 (the kernel stays applied).
    let base = std::fs::read_to_string(common::root().join(file)).unwrap();
    let failing = format!("{base}  - {{ from: web1, to: 10.250.0.99 }}\n");
    let failing = topology_file("apply-check-failing.yaml", &failing);
    let output = sandbox.netloom(&["apply", "--check", &failing]);
    assert_exit(&output, 1);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("1 of 5 expectations FAILED"), "{out}");
}

#[test]
fn check_before_apply_fails_with_a_reason() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let output = sandbox.netloom(&[
        "check",
        "--timeout",
        "0.5",
        "--output",
        "json",
        "topologies/seed.yaml",
    ]);
    assert_exit(&output, 1);
    let doc = json(&output);
    assert_eq!(doc["results"][0]["ok"], false, "{doc:#}");
    assert!(doc["results"][0]["message"].is_string());
    // Nothing was sent, so nothing holds, not even a `reach: false`.
    let output = sandbox.netloom(&["check", "--output", "json", "examples/expectations.yaml"]);
    assert_exit(&output, 1);
    let results = json(&output)["results"].as_array().unwrap().clone();
    assert!(results.iter().any(|r| r["reach"] == false), "{results:#?}");
    for result in results {
        assert_eq!(result["ok"], false, "{result:#}");
        assert_eq!(result["reason"], "not-applied", "{result:#}");
    }
}

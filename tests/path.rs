//! `netloom path` in sandboxes (issue 9): host-gw across nodes and on one
//! node, VXLAN, a route deleted by hand, an unknown pod, the JSON shape.

mod common;
mod support;

use common::{Sandbox, apply_converged, assert_exit, assert_ok};
use serde_json::Value;
use support::json;

const HOST_GW: &str = "topologies/k8s-host-gw.yaml";

/// The nodes the hops go through, each once in a row.
fn nodes(doc: &Value) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for hop in doc["hops"].as_array().expect("hops") {
        let node = hop["node"].as_str().unwrap().to_string();
        if seen.last() != Some(&node) {
            seen.push(node);
        }
    }
    seen
}

#[test]
fn across_host_gw_nodes_the_walk_goes_pod_node_underlay_node_pod() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, HOST_GW);
    let doc = json(&sandbox.netloom(&["path", "--output", "json", HOST_GW, "pod1a", "pod2a"]));
    assert_eq!(doc["delivered"], true, "{doc:#}");
    assert_eq!(doc["address"], "10.244.2.10");
    assert_eq!(
        nodes(&doc),
        ["pod1a", "node1", "underlay switch", "node2", "pod2a"],
        "{doc:#}"
    );
    // node1 sends it to node2 by node2's underlay address.
    let hops = doc["hops"].as_array().unwrap();
    let out_of_node1 = hops
        .iter()
        .find(|h| h["node"] == "node1" && h["out"] == "eth0")
        .expect("node1 routes it out of its underlay");
    let decision = out_of_node1["decision"].as_str().unwrap();
    assert!(
        decision.contains("10.244.2.0/24 via 192.168.100.12"),
        "{decision}"
    );
    assert_eq!(doc["drift"], serde_json::json!([]));
    // Human output: one line per hop, then the ending.
    let text = assert_ok(&sandbox.netloom(&["path", HOST_GW, "pod1a", "pod2a"]));
    assert!(
        text.ends_with("delivered to pod2a (10.244.2.10)\n"),
        "{text}"
    );
}

#[test]
fn on_one_node_the_walk_never_leaves_it() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, HOST_GW);
    let doc = json(&sandbox.netloom(&["path", "--output", "json", HOST_GW, "pod1a", "pod1b"]));
    assert_eq!(doc["delivered"], true, "{doc:#}");
    assert_eq!(nodes(&doc), ["pod1a", "node1", "pod1b"], "{doc:#}");
}

#[test]
fn over_vxlan_the_walk_names_the_device_and_the_remote_underlay_address() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "topologies/k8s-vxlan.yaml";
    apply_converged(&sandbox, file);
    let doc = json(&sandbox.netloom(&["path", "--output", "json", file, "web1", "web2"]));
    assert_eq!(doc["delivered"], true, "{doc:#}");
    assert_eq!(
        nodes(&doc),
        ["web1", "worker1", "worker2", "web2"],
        "{doc:#}"
    );
    let tunnel = doc["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["decision"].as_str().unwrap().starts_with("vxlan"))
        .expect("a hop through the VXLAN device");
    assert_eq!(tunnel["out"], "vxlan100");
    assert_eq!(tunnel["node"], "worker1");
    let decision = tunnel["decision"].as_str().unwrap();
    assert!(
        decision.contains("dst 192.168.200.12, worker2"),
        "{decision}"
    );
}

#[test]
fn after_a_hand_deleted_route_the_walk_ends_where_the_packet_dies() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, HOST_GW);
    sandbox.sh("ip -n node1 route del 10.244.2.0/24");
    let output = sandbox.netloom(&[
        "path", "--probe", "--output", "json", HOST_GW, "pod1a", "pod2a",
    ]);
    assert_exit(&output, 1);
    let doc = json(&output);
    assert_eq!(doc["delivered"], false);
    assert_eq!(doc["end"]["state"], "dies");
    assert_eq!(doc["end"]["node"], "node1");
    assert_eq!(doc["end"]["reason"], "no-route");
    assert_eq!(nodes(&doc), ["pod1a", "node1"]);
    // The walk names the object that drifted from the file.
    let drift = doc["drift"].as_array().unwrap();
    assert!(
        drift
            .iter()
            .any(|d| d["state"] == "missing" && d["kind"] == "route" && d["namespace"] == "node1"),
        "{doc:#}"
    );
    // And the real packet agrees.
    assert_eq!(doc["probe"]["reached"], false, "{doc:#}");
    assert_eq!(doc["probe"]["agrees"], true);
    let output = sandbox.netloom(&["path", HOST_GW, "pod1a", "pod2a"]);
    assert_exit(&output, 1);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("dies in node1: no route to 10.244.2.10"),
        "{text}"
    );
}

#[test]
fn a_probe_agrees_with_a_walk_that_arrives() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, HOST_GW);
    let args = [
        "path", "--probe", "--port", "8080", "--output", "json", HOST_GW, "pod3b", "pod1a",
    ];
    let doc = json(&sandbox.netloom(&args));
    assert_eq!(doc["delivered"], true, "{doc:#}");
    assert_eq!(doc["probe"]["reached"], true, "{doc:#}");
    assert_eq!(doc["probe"]["agrees"], true);
}

/// On every lab of `topologies/`, each expectation that must be reached
/// is walked to its target (the expectations listed by `check`, which
/// first sends real traffic, so neighbours and fdbs are learnt).
#[test]
fn every_topologys_expectations_are_walked_to_their_target() {
    let mut files: Vec<_> = std::fs::read_dir(common::root().join("topologies"))
        .unwrap()
        .map(|entry| {
            format!(
                "topologies/{}",
                entry.unwrap().file_name().to_str().unwrap()
            )
        })
        .filter(|file| file.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in &files {
        let Some(sandbox) = Sandbox::new() else {
            return;
        };
        apply_converged(&sandbox, file);
        let checked = json(&sandbox.netloom(&["check", "--output", "json", file]));
        let walked: Vec<&Value> = checked["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["reach"] == true)
            .collect();
        assert!(!walked.is_empty(), "{file}: {checked:#}");
        for result in walked {
            let (from, to) = (
                result["from"].as_str().unwrap(),
                result["to"].as_str().unwrap(),
            );
            let output = sandbox.netloom(&["path", "--output", "json", file, from, to]);
            let doc = json(&output);
            assert_eq!(doc["delivered"], true, "{file}: {from} -> {to}: {doc:#}");
            assert_exit(&output, 0);
            let last = doc["hops"].as_array().unwrap().last().unwrap();
            assert_eq!(
                last["address"], result["address"],
                "{file}: {from} -> {to}: {doc:#}"
            );
        }
    }
}

#[test]
fn a_pod_not_applied_here_is_an_error() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let output = sandbox.netloom(&["path", HOST_GW, "pod1a", "pod2a"]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pod `pod1a` is not applied on this machine"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_pod_is_an_error() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, HOST_GW);
    let output = sandbox.netloom(&["path", HOST_GW, "nope", "pod2a"]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no pod `nope`"), "{stderr}");
    let output = sandbox.netloom(&["path", "--output", "json", HOST_GW, "pod1a", "nowhere"]);
    assert_exit(&output, 1);
    assert!(
        json(&output)["error"]
            .as_str()
            .unwrap()
            .contains("`nowhere`")
    );
}

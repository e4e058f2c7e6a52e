//! What netloom owns (docs/FORMAT.md): objects it did not make stay byte for
//! byte through apply, change and destroy; an unowned object in the way
//! of a declared one is a conflict that stops `apply` before it changes
//! anything, unless adopted; two topologies never touch each other; and
//! `destroy --name` finds everything of a topology without its file.

mod common;
mod support;

use std::collections::BTreeMap;

use common::{Sandbox, apply_converged, assert_exit, assert_ok, link};
use serde_json::Value;
use support::{
    assert_nothing_left, assert_same, ifindexes, json, namespaces, settle, snapshot, stderr,
    topology_file,
};

/// Objects made by hand, as a person (or another tool) would have them
/// on the machine before netloom comes: a bridge with an address and a
/// route, a veth pair, and a namespace of their own with a veth and an
/// address inside.
fn make_foreign_objects(sandbox: &Sandbox) {
    sandbox.sh("ip link add foreign0 type bridge \
         && ip addr add 10.98.0.1/24 dev foreign0 \
         && ip link set foreign0 up \
         && ip route add 10.99.0.0/16 dev foreign0 \
         && ip link add fa type veth peer name fb \
         && ip addr add 10.97.0.1/24 dev fa \
         && ip link set fa up && ip link set fb up \
         && ip netns add other \
         && ip -n other link add oa type veth peer name ob \
         && ip -n other addr add 10.96.0.1/24 dev oa \
         && ip -n other link set oa up && ip -n other link set ob up");
    // Later snapshots of them need no waiting: nothing should touch them.
    settle(sandbox);
}

const FOREIGN_LINKS: [&str; 3] = ["foreign0", "fa", "fb"];

/// The hand-made objects as the kernel shows them: their links, addresses
/// and routes in the sandbox's own namespace, and all of `other`.
fn foreign_objects(sandbox: &Sandbox) -> Value {
    let mut all = snapshot(sandbox);
    let root = all.remove("").unwrap();
    let mine = |item: &Value| {
        FOREIGN_LINKS
            .iter()
            .any(|name| item["ifname"] == *name || item["dev"] == *name)
    };
    let pick = |part: &str| -> Vec<Value> {
        root[part]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| mine(item))
            .cloned()
            .collect()
    };
    let picked = serde_json::json!({
        "links": pick("links"),
        "addresses": pick("addresses"),
        "routes4": pick("routes4"),
        "routes6": pick("routes6"),
        "other": all.remove("other").expect("namespace other is there"),
    });
    assert_eq!(picked["links"].as_array().unwrap().len(), 3);
    assert!(
        picked["routes4"]
            .to_string()
            .contains("\"dst\":\"10.99.0.0/16\"")
    );
    picked
}

#[test]
fn foreign_objects_stay_byte_for_byte() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    make_foreign_objects(&sandbox);
    let before = foreign_objects(&sandbox);
    let indexes: BTreeMap<_, _> = ifindexes(&sandbox);

    apply_converged(&sandbox, "examples/dual-stack.yaml");
    assert_eq!(foreign_objects(&sandbox), before, "after apply");

    let changed = std::fs::read_to_string(common::root().join("examples/dual-stack.yaml"))
        .unwrap()
        .replace("10.3.0.2/24", "10.3.0.3/24")
        .replace("metric: 100", "metric: 200");
    let changed = topology_file("foreign-changed.yaml", &changed);
    apply_converged(&sandbox, &changed);
    assert_eq!(foreign_objects(&sandbox), before, "after a change");

    assert_ok(&sandbox.netloom(&["destroy", &changed]));
    assert_eq!(foreign_objects(&sandbox), before, "after destroy");
    assert_eq!(namespaces(&sandbox), ["other"]);
    let mut left = support::link_names(&sandbox, "");
    left.sort();
    assert_eq!(left, ["fa", "fb", "foreign0", "lo"]);
    for (key, index) in ifindexes(&sandbox) {
        assert_eq!(indexes.get(&key), Some(&index), "{key:?}");
    }
}

/// The unowned bridge `test0` is in the way of examples/seed.yaml's.
#[test]
fn an_unowned_bridge_in_the_way_stops_apply_until_adopted() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    sandbox.sh("ip link add test0 type bridge");
    make_foreign_objects(&sandbox);
    let before = snapshot(&sandbox);
    let file = "examples/seed.yaml";

    let plan = sandbox.netloom(&["plan", file]);
    assert_exit(&plan, 1);
    assert!(stderr(&plan).contains("test0"), "{}", stderr(&plan));
    let plan = sandbox.netloom(&["plan", "--output", "json", file]);
    assert_exit(&plan, 1);
    let doc = json(&plan);
    let conflicts = doc["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{doc:#}");
    assert_eq!(conflicts[0]["kind"], "link");
    assert_eq!(conflicts[0]["namespace"], "");
    assert_eq!(conflicts[0]["name"], "test0");

    let apply = sandbox.netloom(&["apply", file]);
    assert_exit(&apply, 1);
    assert!(stderr(&apply).contains("test0"), "{}", stderr(&apply));
    let apply = sandbox.netloom(&["apply", "--output", "json", file]);
    assert_exit(&apply, 1);
    assert!(json(&apply)["error"].is_string());
    assert_same(&before, &snapshot(&sandbox), "after the refused applies");
    assert_eq!(support::state_files(&sandbox), "", "nothing recorded");

    // --adopt takes it over: the same interface, now marked.
    let index = link(&sandbox, "", "test0")["ifindex"].clone();
    assert_ok(&sandbox.netloom(&["apply", "--adopt", file]));
    let bridge = link(&sandbox, "", "test0");
    assert_eq!(bridge["ifindex"], index);
    assert_eq!(bridge["ifalias"], "netloom:seed/bridge:test0");
    apply_converged(&sandbox, file);
    assert_exit(&sandbox.netloom(&["status", file]), 0);
    // Adopting took nothing else: the hand-made objects are as they were.
    let after = snapshot(&sandbox);
    for ifname in FOREIGN_LINKS {
        let find = |snap: &BTreeMap<String, Value>| {
            snap[""]["links"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["ifname"] == ifname)
                .cloned()
        };
        assert_eq!(find(&before), find(&after), "{ifname}");
    }
    assert_eq!(before["other"], after["other"]);

    // Adopted means owned: destroy removes it.
    assert_ok(&sandbox.netloom(&["destroy", file]));
    assert!(!support::link_names(&sandbox, "").contains(&"test0".to_string()));
}

/// `ip netns add test` made the namespace of examples/seed.yaml's pod.
#[test]
fn an_unowned_namespace_named_like_a_pod_is_a_conflict() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    sandbox.sh("ip netns add test && ip -n test link set lo up");
    settle(&sandbox);
    let before = snapshot(&sandbox);
    let file = "examples/seed.yaml";

    let plan = sandbox.netloom(&["plan", "--output", "json", file]);
    assert_exit(&plan, 1);
    let doc = json(&plan);
    let conflicts = doc["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{doc:#}");
    assert_eq!(conflicts[0]["kind"], "namespace");
    assert_eq!(conflicts[0]["namespace"], "test");
    let apply = sandbox.netloom(&["apply", file]);
    assert_exit(&apply, 1);
    assert!(
        stderr(&apply).contains("namespace test"),
        "{}",
        stderr(&apply)
    );
    settle(&sandbox);
    assert_same(&before, &snapshot(&sandbox), "after the refused apply");
    assert_eq!(support::state_files(&sandbox), "", "nothing recorded");
}

/// A bridge another topology declares is never taken, not even with --adopt.
#[test]
fn another_topologys_bridge_is_never_taken() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "examples/seed.yaml");
    settle(&sandbox);
    let before = snapshot(&sandbox);
    let rival = topology_file(
        "rival.yaml",
        "name: rival\nbridges:\n  test0:\n    addresses: [10.0.9.1/24]\n",
    );
    for adopt in [false, true] {
        let mut args = vec!["apply", "--output", "json"];
        if adopt {
            args.push("--adopt");
        }
        args.push(&rival);
        let apply = sandbox.netloom(&args);
        assert_exit(&apply, 1);
        let doc = json(&apply);
        assert_eq!(doc["conflicts"][0]["name"], "test0", "{doc:#}");
        assert!(
            doc["conflicts"][0]["message"]
                .as_str()
                .unwrap()
                .contains("seed"),
            "{doc:#}"
        );
    }
    assert_same(&before, &snapshot(&sandbox), "after the rival's applies");
    assert_exit(
        &sandbox.netloom(&["plan", "--detailed-exitcode", "examples/seed.yaml"]),
        0,
    );
}

/// Two topologies with different names side by side: destroying one
/// leaves the other exactly as it was.
#[test]
fn two_topologies_side_by_side_never_touch_each_other() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let a = "examples/seed.yaml";
    let b = "examples/bridge-shorthand.yaml";
    apply_converged(&sandbox, a);
    apply_converged(&sandbox, b);
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", a]), 0);
    assert_exit(&sandbox.netloom(&["status", a]), 0);
    assert_exit(&sandbox.netloom(&["status", b]), 0);
    settle(&sandbox);
    let both = snapshot(&sandbox);

    assert_ok(&sandbox.netloom(&["destroy", a]));
    let after = snapshot(&sandbox);
    assert_eq!(namespaces(&sandbox), ["sh-a", "sh-b"]);
    for ns in ["sh-a", "sh-b"] {
        assert_eq!(both[ns], after[ns], "namespace {ns}");
    }
    // In the sandbox's own namespace, B's bridge and ports are unchanged.
    let b_only = |snap: &BTreeMap<String, Value>, part: &str| -> Vec<Value> {
        snap[""][part]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| {
                let name = item["ifname"].as_str().or(item["dev"].as_str());
                name.is_some_and(|n| n == "sh0" || n.starts_with("veth"))
            })
            .cloned()
            .collect()
    };
    for part in ["links", "addresses", "routes4", "routes6"] {
        assert_eq!(b_only(&both, part), b_only(&after, part), "{part}");
    }
    assert!(!support::link_names(&sandbox, "").contains(&"test0".to_string()));
    apply_converged(&sandbox, b);
    assert_exit(&sandbox.netloom(&["status", b]), 0);

    assert_ok(&sandbox.netloom(&["destroy", b]));
    assert_nothing_left(&sandbox);
}

/// `destroy --name` works from the state record and the marks alone.
#[test]
fn destroy_by_name_needs_no_file() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    make_foreign_objects(&sandbox);
    let foreign = foreign_objects(&sandbox);
    // A lab with hosts (namespaces of their own, an underlay switch) and a
    // topology next to it.
    apply_converged(&sandbox, "examples/host-gw.yaml");
    apply_converged(&sandbox, "examples/pod-to-pod.yaml");
    settle(&sandbox);
    let p2p = snapshot(&sandbox);

    assert_ok(&sandbox.netloom(&["destroy", "--name", "host-gw"]));
    assert_eq!(namespaces(&sandbox), ["other", "p2p-left", "p2p-right"]);
    let after = snapshot(&sandbox);
    for ns in ["p2p-left", "p2p-right"] {
        assert_eq!(p2p[ns], after[ns]);
    }
    assert_eq!(foreign_objects(&sandbox), foreign);
    assert_exit(
        &sandbox.netloom(&["plan", "--detailed-exitcode", "examples/host-gw.yaml"]),
        2,
    );

    assert_ok(&sandbox.netloom(&["destroy", "--name", "pod-to-pod"]));
    assert_eq!(namespaces(&sandbox), ["other"]);
    assert_eq!(foreign_objects(&sandbox), foreign);
    assert_eq!(support::state_files(&sandbox), "");
}

/// A veth moved by hand into the pod's namespace, its peer left outside
/// the topology's namespaces (in the machine's own, or in a namespace of
/// someone else's): deleting it would delete the peer too. It is a
/// conflict that stops apply, and both ends stay.
#[test]
fn a_moved_in_veth_whose_peer_is_outside_is_a_conflict_not_a_delete() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "examples/seed.yaml";
    apply_converged(&sandbox, file);
    sandbox.sh(
        "ip link add mv0 type veth peer name mv1 && ip link set mv0 netns test \
         && ip netns add elsewhere \
         && ip link add mv2 type veth peer name mv3 && ip link set mv3 netns elsewhere \
         && ip link set mv2 netns test",
    );
    settle(&sandbox);
    let before = snapshot(&sandbox);

    let plan = sandbox.netloom(&["plan", "--output", "json", file]);
    assert_exit(&plan, 1);
    let doc = json(&plan);
    let mut moved_in: Vec<String> = doc["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["namespace"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    moved_in.sort();
    // The pair whose peer is in the machine's namespace is held by its
    // canonical end there; the other is seen from the pod only.
    assert_eq!(moved_in, ["/mv1", "test/mv2"], "{doc:#}");
    let apply = sandbox.netloom(&["apply", file]);
    assert_exit(&apply, 1);
    assert!(
        stderr(&apply).contains("its peer is outside"),
        "{}",
        stderr(&apply)
    );
    settle(&sandbox);
    assert_same(&before, &snapshot(&sandbox), "after the refused apply");
    assert_exit(&sandbox.netloom(&["status", file]), 2);
}

//! The kernel-facing commands as docs/CLI.md promises them: `exec` runs in the
//! pod with the command's exit code, `--dry-run` changes nothing, and
//! `--output json` of plan, apply, status and destroy has the documented
//! shape (checked against the kernel where it states facts).

mod common;
mod support;

use std::collections::BTreeSet;

use common::{Sandbox, apply_converged, assert_exit, assert_ok, link};
use serde_json::Value;
use support::{assert_same, json, namespaces, settle, snapshot, topology_file};

#[test]
fn exec_runs_in_the_pod_with_the_commands_exit_code() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "examples/seed.yaml";
    apply_converged(&sandbox, file);

    let run = sandbox.netloom(&["exec", file, "test", "--", "ip", "-j", "addr", "show"]);
    let shown: Value = serde_json::from_str(&assert_ok(&run)).unwrap();
    let names: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["lo", "eth0"],
        "the pod's interfaces, not the host's"
    );
    assert!(shown.to_string().contains("\"local\":\"10.0.0.2\""));
    // The same namespace `ip netns exec` enters.
    let inode = |cmd: &str| sandbox.sh(cmd).trim().to_string();
    let via_netloom = String::from_utf8(
        sandbox
            .netloom(&[
                "exec",
                file,
                "test",
                "--",
                "stat",
                "-Lc",
                "%i",
                "/proc/self/ns/net",
            ])
            .stdout,
    )
    .unwrap();
    assert_eq!(
        via_netloom.trim(),
        inode("ip netns exec test stat -Lc %i /proc/self/ns/net")
    );

    // The command's exit code, whatever it is.
    for code in [0, 3, 42] {
        let run = sandbox.netloom(&[
            "exec",
            file,
            "test",
            "--",
            "sh",
            "-c",
            &format!("exit {code}"),
        ]);
        assert_exit(&run, code);
    }
    // A pod the file does not have, and one that is not there (yet):
    // netloom's own failure, 125 (docs/CLI.md).
    assert_exit(
        &sandbox.netloom(&["exec", file, "nosuch", "--", "true"]),
        125,
    );
    assert_exit(
        &sandbox.netloom(&["exec", "examples/pod-to-pod.yaml", "p2p-left", "--", "true"]),
        125,
    );
    // A namespace of the pod's name that is not the topology's.
    assert_ok(&sandbox.netloom(&["destroy", file]));
    sandbox.sh("ip netns add test");
    assert_exit(&sandbox.netloom(&["exec", file, "test", "--", "true"]), 125);
}

#[test]
fn dry_runs_change_nothing() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "examples/dual-stack.yaml";
    let empty = snapshot(&sandbox);
    let run = assert_ok(&sandbox.netloom(&["apply", "--dry-run", "--output", "json", file]));
    let doc: Value = serde_json::from_str(&run).unwrap();
    assert!(doc["summary"]["create"].as_u64().unwrap() > 0, "{doc:#}");
    assert_same(&empty, &snapshot(&sandbox), "after apply --dry-run");

    apply_converged(&sandbox, file);
    settle(&sandbox);
    let applied = snapshot(&sandbox);
    let run = assert_ok(&sandbox.netloom(&["destroy", "--dry-run", "--output", "json", file]));
    let doc: Value = serde_json::from_str(&run).unwrap();
    assert!(doc["summary"]["delete"].as_u64().unwrap() > 0, "{doc:#}");
    assert_same(&applied, &snapshot(&sandbox), "after destroy --dry-run");
}

/// Every change of a plan-like document has the documented fields.
#[track_caller]
fn check_changes(doc: &Value, with_done: bool) {
    assert_eq!(doc["version"], 1, "{doc:#}");
    assert!(doc["conflicts"].is_array(), "{doc:#}");
    let changes = doc["changes"].as_array().expect("changes");
    let mut counts = [0u64; 3];
    for change in changes {
        let action = change["action"].as_str().expect("action");
        let slot = ["create", "update", "delete"]
            .iter()
            .position(|a| *a == action)
            .unwrap_or_else(|| panic!("unknown action {action}"));
        counts[slot] += 1;
        assert!(change["kind"].is_string(), "{change}");
        assert!(change["namespace"].is_string(), "{change}");
        assert!(change["name"].is_string(), "{change}");
        // from: the live value (update, delete); to: the wanted one (create, update).
        assert_eq!(change.get("from").is_some(), action != "create", "{change}");
        assert_eq!(change.get("to").is_some(), action != "delete", "{change}");
        assert_eq!(change.get("done").is_some(), with_done, "{change}");
    }
    assert_eq!(
        doc["summary"],
        serde_json::json!({"create": counts[0], "update": counts[1], "delete": counts[2]})
    );
}

fn find<'a>(doc: &'a Value, kind: &str, ns: &str, name: &str) -> &'a Value {
    doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind && c["namespace"] == ns && c["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {ns:?} {name} in {doc:#}"))
}

#[test]
fn json_output_has_the_documented_shape() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "examples/seed.yaml";

    // plan of a fresh machine: creates only, the bridge in namespace "".
    let plan = sandbox.netloom(&["plan", "--output", "json", "--detailed-exitcode", file]);
    assert_exit(&plan, 2);
    let plan = json(&plan);
    check_changes(&plan, false);
    assert_eq!(plan["topology"], "seed");
    assert_eq!(plan["conflicts"], serde_json::json!([]));
    assert_eq!(find(&plan, "link", "", "test0")["to"], "bridge");
    assert_eq!(find(&plan, "namespace", "test", "test")["action"], "create");
    assert_eq!(
        find(&plan, "address", "test", "eth0 10.0.0.2")["to"],
        "10.0.0.2/24"
    );

    // apply: the same changes, each done, verified.
    let apply = json(&sandbox.netloom(&["apply", "--output", "json", file]));
    check_changes(&apply, true);
    assert_eq!(apply["verified"], true);
    assert_eq!(apply["summary"], plan["summary"]);
    assert!(
        apply["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["done"] == true)
    );
    assert!(apply.get("error").is_none());
    // What it says it made is there.
    assert_eq!(
        link(&sandbox, "", "test0")["linkinfo"]["info_kind"],
        "bridge"
    );

    // status: every object in sync.
    let status = sandbox.netloom(&["status", "--output", "json", file]);
    assert_exit(&status, 0);
    let status = json(&status);
    assert_eq!(status["version"], 1);
    assert_eq!(status["conflicts"], serde_json::json!([]));
    let objects = status["objects"].as_array().unwrap();
    assert_eq!(
        objects.len() as u64,
        plan["summary"]["create"].as_u64().unwrap()
    );
    for object in objects {
        assert_eq!(object["state"], "in-sync", "{object}");
        for field in ["kind", "namespace", "name"] {
            assert!(object[field].is_string(), "{object}");
        }
    }

    // An update: from and to.
    let changed = std::fs::read_to_string(common::root().join(file))
        .unwrap()
        .replace("via: 10.0.0.1", "via: 10.0.0.254");
    let changed = topology_file("json-changed.yaml", &changed);
    let plan = json(&sandbox.netloom(&["plan", "--output", "json", &changed]));
    check_changes(&plan, false);
    let route = find(&plan, "route", "test", "0.0.0.0/0 metric 0");
    assert_eq!(route["action"], "update");
    assert!(route["from"].as_str().unwrap().contains("via 10.0.0.1 "));
    assert!(route["to"].as_str().unwrap().contains("via 10.0.0.254 "));
    let status = sandbox.netloom(&["status", "--output", "json", &changed]);
    assert_exit(&status, 2);
    let status = json(&status);
    let drifted: Vec<&Value> = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] != "in-sync")
        .collect();
    assert_eq!(drifted.len(), 1, "{drifted:#?}");
    assert_eq!(drifted[0]["state"], "drifted");
    assert_eq!(drifted[0]["kind"], "route");

    // destroy: deletes only, from the live values.
    let destroy = json(&sandbox.netloom(&["destroy", "--output", "json", file]));
    check_changes(&destroy, true);
    assert_eq!(destroy["summary"]["create"], 0);
    assert_eq!(destroy["summary"]["update"], 0);
    assert!(destroy["summary"]["delete"].as_u64().unwrap() > 0);
    assert_eq!(destroy["verified"], true);
    assert_eq!(namespaces(&sandbox), Vec::<String>::new());

    // status of nothing: everything missing.
    let status = sandbox.netloom(&["status", "--output", "json", file]);
    assert_exit(&status, 2);
    let states: BTreeSet<String> = json(&status)["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, BTreeSet::from(["missing".to_string()]));
}

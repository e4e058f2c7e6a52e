//! Saved plans against the real kernel (docs/CLI.md, "Saved plans"): a
//! stale plan is refused with the kernel untouched, a fresh one does what
//! `apply FILE` would have done.

mod common;

use common::{Sandbox, addresses, assert_exit, assert_ok, everything, settled_everything};
use serde_json::Value;

/// pod-to-pod.yaml with the right pod's address moved: a plan that
/// replaces one address.
const MOVED: &str = "name: pod-to-pod
pods:
  p2p-left:
    interfaces:
      eth0: { addresses: [10.2.0.1/24] }
  p2p-right:
    interfaces:
      eth0: { addresses: [10.2.0.3/24] }
links:
  - endpoints: [p2p-left:eth0, p2p-right:eth0]
";

const PLANFILE: &str = "/run/moved.plan";

/// A sandbox holding pod-to-pod.yaml, and a saved plan to move the address.
fn planned() -> Option<Sandbox> {
    let sandbox = Sandbox::new()?;
    assert_ok(&sandbox.netloom(&["apply", "examples/pod-to-pod.yaml"]));
    let planned = sandbox.netloom_stdin(&["plan", "--out", PLANFILE, "-"], MOVED);
    assert_ok(&planned);
    assert!(
        sandbox
            .sh(&format!("head -c 40 {PLANFILE}"))
            .contains("\"netloom-plan\": 1")
    );
    Some(sandbox)
}

#[test]
fn a_stale_saved_plan_is_refused_and_the_kernel_left_as_it_is() {
    let Some(sandbox) = planned() else {
        return;
    };
    // One object changed by hand after the plan was made.
    sandbox.sh("ip -n p2p-left link set eth0 mtu 1400");
    let before = settled_everything(&sandbox);
    let refused = sandbox.netloom(&["apply", PLANFILE]);
    assert_exit(&refused, 1);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the saved plan is stale")
            && stderr.contains("mtu p2p-left/eth0 changed from 1500 to 1400"),
        "{stderr}"
    );
    assert_eq!(
        everything(&sandbox),
        before,
        "a stale plan changed the kernel"
    );
    assert_eq!(addresses(&sandbox, "p2p-right", "eth0"), ["10.2.0.2/24"]);
}

#[test]
fn a_fresh_saved_plan_applies_exactly_what_apply_file_would() {
    let Some(sandbox) = planned() else {
        return;
    };
    // A saved plan is carried out as shown: --atomic is refused, not ignored.
    let before = settled_everything(&sandbox);
    assert_exit(&sandbox.netloom(&["apply", "--atomic", PLANFILE]), 64);
    assert_eq!(
        everything(&sandbox),
        before,
        "a refused plan changed the kernel"
    );
    let shown = assert_ok(&sandbox.netloom_stdin(&["plan", "--output", "json", "-"], MOVED));
    let applied = assert_ok(&sandbox.netloom(&["apply", "--output", "json", PLANFILE]));
    let (shown, applied): (Value, Value) = (
        serde_json::from_str(&shown).unwrap(),
        serde_json::from_str(&applied).unwrap(),
    );
    assert_eq!(applied["summary"], shown["summary"], "{applied:#}");
    assert_ne!(
        applied["summary"],
        serde_json::json!({"create": 0, "update": 0, "delete": 0})
    );
    assert_eq!(addresses(&sandbox, "p2p-right", "eth0"), ["10.2.0.3/24"]);
    // `apply FILE` finds nothing left to do: the same kernel and record.
    let again = assert_ok(&sandbox.netloom_stdin(&["apply", "--output", "json", "-"], MOVED));
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        again["summary"],
        serde_json::json!({"create": 0, "update": 0, "delete": 0})
    );
    // A plan is used once: the kernel it was computed from is gone.
    assert_exit(&sandbox.netloom(&["apply", PLANFILE]), 1);
}

#[test]
fn a_plan_file_that_cannot_be_used_is_refused_with_the_error_document() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    for (plan, says) in [
        (r#"{"netloom-plan": 9}"#, "plan of format version 9"),
        (r#"{"netloom-plan": 1, "plan": "#, "not a netloom plan file"),
    ] {
        sandbox.sh(&format!("printf '%s' '{plan}' > {PLANFILE}"));
        let refused = sandbox.netloom(&["apply", "--output", "json", PLANFILE]);
        assert_exit(&refused, 1);
        let doc: Value = serde_json::from_slice(&refused.stdout).expect("the error document");
        assert_eq!(doc["version"], 1, "{doc:#}");
        assert!(doc["error"].as_str().unwrap().contains(says), "{doc:#}");
        let usage = sandbox.netloom(&["apply", "--atomic", "--output", "json", PLANFILE]);
        assert_exit(&usage, 64);
        let doc: Value = serde_json::from_slice(&usage.stdout).expect("the error document");
        assert!(
            doc["error"].as_str().unwrap().contains("--atomic"),
            "{doc:#}"
        );
    }
}

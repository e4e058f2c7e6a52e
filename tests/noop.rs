//! No-op is free (docs/DESIGN.md): once applied, applying the unchanged file
//! again makes no netlink write, proved by `ip monitor` in every namespace
//! of the sandbox, not by asking netloom.

mod common;
mod support;

use common::{Sandbox, assert_exit, assert_ok};
use support::{Monitor, everywhere, json, settle};

fn second_apply_writes_nothing(file: &str) {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    assert_ok(&sandbox.netloom(&["apply", file]));
    // What the kernel itself still does after a run is not netloom's.
    settle(&sandbox);

    let everywhere = everywhere(&sandbox);
    let monitor = Monitor::start(&sandbox, &everywhere);
    let again = sandbox.netloom(&["apply", "--output", "json", file]);
    let events = monitor.events(&sandbox);
    assert_ok(&again);
    assert_eq!(
        json(&again)["summary"],
        serde_json::json!({"create": 0, "update": 0, "delete": 0})
    );
    assert!(
        events.is_empty(),
        "{file}: the second apply changed the kernel:\n{}",
        events.join("\n")
    );

    // Reading is free too.
    let monitor = Monitor::start(&sandbox, &everywhere);
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", file]), 0);
    assert_exit(&sandbox.netloom(&["status", file]), 0);
    let events = monitor.events(&sandbox);
    assert!(
        events.is_empty(),
        "{file}: plan or status changed the kernel:\n{}",
        events.join("\n")
    );
}

#[test]
fn seed() {
    second_apply_writes_nothing("examples/seed.yaml");
}

#[test]
fn dual_stack() {
    second_apply_writes_nothing("examples/dual-stack.yaml");
}

#[test]
fn explicit_macs_and_mtus() {
    second_apply_writes_nothing("examples/mac-mtu.yaml");
}

#[test]
fn rate() {
    second_apply_writes_nothing("examples/rate.yaml");
}

#[test]
fn sysctls() {
    second_apply_writes_nothing("examples/sysctls.yaml");
}

#[test]
fn vxlan_lab() {
    second_apply_writes_nothing("topologies/k8s-vxlan.yaml");
}

#[test]
fn host_gw_lab() {
    second_apply_writes_nothing("topologies/k8s-host-gw.yaml");
}

/// The watch itself sees what it should: one changed MTU.
#[test]
fn the_monitor_sees_a_change() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    assert_ok(&sandbox.netloom(&["apply", "examples/seed.yaml"]));
    let everywhere = vec![String::new(), "test".to_string()];
    let monitor = Monitor::start(&sandbox, &everywhere);
    sandbox.sh("ip -n test link set eth0 mtu 1400");
    let events = monitor.events(&sandbox);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("test: ") && e.contains("eth0") && e.contains("mtu 1400")),
        "{events:#?}"
    );
}

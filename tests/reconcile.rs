//! Changing the file changes the kernel in place, and only where the file
//! changed: no interface is re-created (same ifindex), no link bounces,
//! the other addresses and routes stay as they were. Removing a pod
//! removes its namespace and veth and nothing else. Hand-made drift is
//! reported by `status` and repaired by `apply`. All read back with `ip -j`.

mod common;
mod support;

use std::collections::BTreeMap;

use common::{Sandbox, addresses, apply_converged, assert_exit, assert_ok, link};
use serde_json::Value;
use support::{
    Monitor, assert_same, everywhere, ifindexes, json, namespaces, settle, snapshot, topology_file,
};

const BASE: &str = r#"
name: inplace
bridges:
  ip0:
    addresses: [10.30.0.1/24, "fd00:30::1/64"]
pods:
  ip-a:
    interfaces:
      eth0:
        addresses: [10.30.0.2/24, 10.30.0.3/24, "fd00:30::2/64"]
        mac: "02:00:00:00:30:02"
        mtu: 1500
    routes:
      - { to: default, via: 10.30.0.1 }
      - { to: 10.31.0.0/16, via: 10.30.0.254 }
      - { to: "fd00:31::/48", via: "fd00:30::1" }
  ip-b:
    interfaces:
      eth0: { bridge: ip0, addresses: [10.30.0.10/24] }
    routes:
      - { to: default, via: 10.30.0.1 }
links:
  - endpoints: [ip-a:eth0, ip0:ip-a-port]
"#;

/// Applies BASE, then `variant` (BASE with one edit), checking both
/// converge, that no interface was re-created and that no link went down
/// on the way. Returns the snapshots before and after, and the events
/// the change caused.
fn change(
    sandbox: &Sandbox,
    test: &str,
    from: &str,
    to: &str,
) -> (
    BTreeMap<String, Value>,
    BTreeMap<String, Value>,
    Vec<String>,
) {
    assert!(BASE.contains(from), "{from}");
    let base = topology_file(&format!("{test}-base.yaml"), BASE);
    let variant = topology_file(&format!("{test}-variant.yaml"), &BASE.replace(from, to));
    apply_converged(sandbox, &base);
    settle(sandbox);
    let before = snapshot(sandbox);
    let indexes = ifindexes(sandbox);

    let monitor = Monitor::start(sandbox, &everywhere(sandbox));
    let run = assert_ok(&sandbox.netloom(&["apply", "--output", "json", &variant]));
    let events = monitor.events(sandbox);
    let doc: Value = serde_json::from_str(&run).unwrap();
    assert_eq!(doc["verified"], true, "{doc:#}");
    apply_converged(sandbox, &variant);
    assert_exit(&sandbox.netloom(&["status", &variant]), 0);

    settle(sandbox);
    let after = snapshot(sandbox);
    assert_eq!(ifindexes(sandbox), indexes, "an interface was re-created");
    for event in &events {
        assert!(
            !event.contains("state DOWN") && !event.contains("Deleted")
                || !event.contains(" link/"),
            "a link went down or away: {event}\nall events:\n{}",
            events.join("\n")
        );
    }
    (before, after, events)
}

/// Sets `field` of interface `ifname` of namespace `ns` in a snapshot,
/// where both `ip link` and `ip addr` show it.
fn set_on_interface(
    snap: &mut BTreeMap<String, Value>,
    ns: &str,
    ifname: &str,
    field: &str,
    value: Value,
) {
    for part in ["links", "addresses"] {
        let entry = snap.get_mut(ns).unwrap()[part]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|l| l["ifname"] == ifname)
            .unwrap_or_else(|| panic!("no interface {ns}/{ifname}"));
        entry[field] = value.clone();
    }
}

/// Routes of a snapshot part that a person or netloom made (not the
/// kernel's connected and local routes, which follow the addresses).
fn made_routes(snap: &Value, part: &str) -> Vec<Value> {
    snap[part]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["protocol"] != "kernel" && r["table"] != "local")
        .cloned()
        .collect()
}

#[test]
fn a_changed_mtu_changes_only_the_mtu() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let (mut before, after, _) = change(&sandbox, "mtu", "mtu: 1500", "mtu: 1400");
    // Both ends of the veth get it; the bridge, whose MTU the file leaves
    // to the kernel, follows its smallest port.
    for (ns, ifname) in [("ip-a", "eth0"), ("", "ip-a-port"), ("", "ip0")] {
        set_on_interface(&mut before, ns, ifname, "mtu", 1400.into());
    }
    assert_same(&before, &after, "after the MTU change");
}

#[test]
fn a_changed_mac_changes_only_the_mac() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let (mut before, after, _) = change(
        &sandbox,
        "mac",
        "mac: \"02:00:00:00:30:02\"",
        "mac: \"02:00:00:00:30:99\"",
    );
    set_on_interface(
        &mut before,
        "ip-a",
        "eth0",
        "address",
        "02:00:00:00:30:99".into(),
    );
    assert_same(&before, &after, "after the MAC change");
    assert!(
        link(&sandbox, "ip-a", "eth0")["flags"]
            .as_array()
            .unwrap()
            .contains(&"UP".into())
    );
}

#[test]
fn a_replaced_address_keeps_the_others_and_the_routes() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    // 10.30.0.2 is the primary address of its subnet: replacing it must
    // not flush the secondary 10.30.0.3 nor the routes via the subnet.
    let (before, after, events) = change(
        &sandbox,
        "address",
        "[10.30.0.2/24, 10.30.0.3/24,",
        "[10.30.0.4/24, 10.30.0.3/24,",
    );
    let mut now = addresses(&sandbox, "ip-a", "eth0");
    now.sort();
    assert_eq!(now, ["10.30.0.3/24", "10.30.0.4/24", "fd00:30::2/64"]);
    for part in ["routes4", "routes6"] {
        assert_eq!(
            made_routes(&before["ip-a"], part),
            made_routes(&after["ip-a"], part),
            "{part} of ip-a"
        );
    }
    // Not deleted and re-added either.
    let route_deletions: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("ip-a: Deleted") && e.contains(" via "))
        .collect();
    assert!(route_deletions.is_empty(), "{route_deletions:#?}");
    // Everything else is as it was.
    for part in ["links", "routes4", "routes6", "addresses"] {
        for ns in ["", "ip-b"] {
            assert_eq!(before[ns][part], after[ns][part], "{part} of {ns:?}");
        }
    }
    assert_eq!(before["ip-a"]["links"], after["ip-a"]["links"]);
}

#[test]
fn a_changed_gateway_replaces_only_that_route() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let (mut before, after, events) =
        change(&sandbox, "via", "via: 10.30.0.254 }", "via: 10.30.0.253 }");
    let routes = before
        .get_mut("ip-a")
        .unwrap()
        .get_mut("routes4")
        .unwrap()
        .as_array_mut()
        .unwrap();
    let route = routes
        .iter_mut()
        .find(|r| r["dst"] == "10.31.0.0/16")
        .expect("the route was there");
    route["gateway"] = "10.30.0.253".into();
    assert_same(&before, &after, "after the gateway change");
    // Replaced, not deleted and added again.
    assert!(!events.iter().any(|e| e.contains("Deleted")), "{events:#?}");
}

const THREE_PODS: &str = r#"
name: removal
bridges:
  rm0:
    addresses: [10.40.0.1/24]
pods:
  rm-a:
    interfaces:
      eth0: { bridge: rm0, addresses: [10.40.0.2/24] }
      eth1: { addresses: [10.41.0.1/24] }
    routes:
      - { to: default, via: 10.40.0.1 }
  rm-b:
    interfaces:
      eth0: { bridge: rm0, addresses: [10.40.0.3/24] }
      eth1: { addresses: [10.41.0.2/24] }
    routes:
      - { to: default, via: 10.40.0.1 }
  rm-c:
    interfaces:
      eth0: { addresses: [10.40.0.4/24] }
    routes:
      - { to: default, via: 10.40.0.1 }
links:
  - endpoints: [rm-a:eth1, rm-b:eth1]
  - endpoints: [rm-c:eth0, rm0:rm-c-port]
"#;

/// Drops every entry about interface `ifname` from a namespace snapshot.
fn without_interface(snap: &Value, ifname: &str) -> Value {
    let mut snap = snap.clone();
    for part in ["links", "addresses", "routes4", "routes6"] {
        snap[part]
            .as_array_mut()
            .unwrap()
            .retain(|item| item["ifname"] != ifname && item["dev"] != ifname);
    }
    snap
}

#[test]
fn removing_a_pod_removes_its_namespace_and_veth_only() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let all = topology_file("removal-all.yaml", THREE_PODS);
    let cut = THREE_PODS
        .replace(
            "  rm-c:\n    interfaces:\n      eth0: { addresses: [10.40.0.4/24] }\n    routes:\n      - { to: default, via: 10.40.0.1 }\n",
            "",
        )
        .replace("  - endpoints: [rm-c:eth0, rm0:rm-c-port]\n", "");
    assert!(!cut.contains("rm-c"));
    let two = topology_file("removal-two.yaml", &cut);
    apply_converged(&sandbox, &all);
    settle(&sandbox);
    let before = snapshot(&sandbox);
    let indexes = ifindexes(&sandbox);

    apply_converged(&sandbox, &two);
    settle(&sandbox);
    let after = snapshot(&sandbox);
    assert_eq!(namespaces(&sandbox), ["rm-a", "rm-b"]);
    assert!(
        !support::link_names(&sandbox, "").contains(&"rm-c-port".to_string()),
        "the host end of its veth is gone"
    );
    assert_eq!(
        without_interface(&before[""], "rm-c-port"),
        after[""],
        "the sandbox's own namespace, but for rm-c's veth"
    );
    for ns in ["rm-a", "rm-b"] {
        assert_eq!(before[ns], after[ns], "namespace {ns}");
    }
    let mut kept = indexes;
    kept.retain(|(ns, ifname), _| ns != "rm-c" && ifname != "rm-c-port");
    assert_eq!(ifindexes(&sandbox), kept);
    assert_exit(&sandbox.netloom(&["status", &two]), 0);
}

const DRIFT: &str = r#"
name: drift
pods:
  dr-a:
    interfaces:
      eth0: { addresses: [10.50.0.1/24] }
    routes:
      - { to: default, via: 10.50.0.2 }
  dr-b:
    interfaces:
      eth0: { addresses: [10.50.0.2/24] }
links:
  - endpoints: [dr-a:eth0, dr-b:eth0]
    mtu: 1400
"#;

/// The status object of (kind, namespace, name).
fn object<'a>(status: &'a Value, kind: &str, ns: &str, name: &str) -> &'a Value {
    status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == kind && o["namespace"] == ns && o["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {ns}/{name} in {status:#}"))
}

#[test]
fn drift_is_reported_and_repaired() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = topology_file("drift.yaml", DRIFT);
    apply_converged(&sandbox, &file);
    settle(&sandbox);
    let clean = snapshot(&sandbox);

    sandbox.sh("ip -n dr-a addr add 10.50.0.99/24 dev eth0 \
         && ip -n dr-a link set eth0 mtu 1300 \
         && ip -n dr-a route del default");
    let status = sandbox.netloom(&["status", "--output", "json", &file]);
    assert_exit(&status, 2);
    let status = json(&status);
    assert_eq!(status["version"], 1);
    let extra = object(&status, "address", "dr-a", "eth0 10.50.0.99");
    assert_eq!(extra["state"], "extra");
    let mtu = object(&status, "mtu", "dr-a", "eth0");
    assert_eq!(mtu["state"], "drifted");
    assert_eq!(mtu["desired"], "1400");
    assert_eq!(mtu["live"], "1300");
    let route = object(&status, "route", "dr-a", "0.0.0.0/0 metric 0");
    assert_eq!(route["state"], "missing");
    // The rest is in sync.
    let others: Vec<&Value> = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] != "in-sync")
        .collect();
    assert_eq!(others.len(), 3, "{others:#?}");
    // Human status says so too, with exit 2.
    assert_exit(&sandbox.netloom(&["status", &file]), 2);

    apply_converged(&sandbox, &file);
    settle(&sandbox);
    assert_eq!(addresses(&sandbox, "dr-a", "eth0"), ["10.50.0.1/24"]);
    assert_eq!(link(&sandbox, "dr-a", "eth0")["mtu"], 1400);
    let default = sandbox.ip_json("-n dr-a route show default");
    assert_eq!(default[0]["gateway"], "10.50.0.2");
    assert_same(&clean, &snapshot(&sandbox), "after the repair");
    assert_exit(&sandbox.netloom(&["status", &file]), 0);
}

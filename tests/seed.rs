//! The seed walkthrough (docs/SEED.md), applied for real in a sandbox and read
//! back with `ip -j`, not with netloom.

mod common;

use common::{Sandbox, addresses, apply_converged, assert_exit, assert_ok, link, links};

#[test]
fn seed_builds_exactly_the_walkthrough() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "examples/seed.yaml");

    // `ip netns add test`
    assert_eq!(sandbox.sh("ls /run/netns").trim(), "test");
    // `ip link add name test0 type bridge`, with its address, up.
    let bridge = link(&sandbox, "", "test0");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
    assert!(bridge["flags"].as_array().unwrap().contains(&"UP".into()));
    assert_eq!(addresses(&sandbox, "", "test0"), ["10.0.0.1/24"]);
    // `ip link add testveth0 type veth peer name eth0`, `set eth0 netns test`,
    // `set testveth0 master test0`, both ends up.
    let host_end = link(&sandbox, "", "testveth0");
    assert_eq!(host_end["linkinfo"]["info_kind"], "veth");
    assert_eq!(host_end["master"], "test0");
    assert!(host_end["flags"].as_array().unwrap().contains(&"UP".into()));
    let pod_end = link(&sandbox, "test", "eth0");
    assert_eq!(pod_end["linkinfo"]["info_kind"], "veth");
    assert!(pod_end["flags"].as_array().unwrap().contains(&"UP".into()));
    assert_eq!(
        pod_end["link_index"], host_end["ifindex"],
        "the two ends are one pair"
    );
    assert_eq!(addresses(&sandbox, "test", "eth0"), ["10.0.0.2/24"]);
    // Nothing else in the pod but lo, which is up.
    let pod_links: Vec<String> = links(&sandbox, "test")
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pod_links, ["lo", "eth0"]);
    assert!(
        link(&sandbox, "test", "lo")["flags"]
            .as_array()
            .unwrap()
            .contains(&"UP".into())
    );
    // The default route through the bridge.
    let routes = sandbox.ip_json("-n test route show default");
    assert_eq!(routes[0]["gateway"], "10.0.0.1");
    assert_eq!(routes[0]["dev"], "eth0");

    // Real traffic: the pod reaches the bridge.
    sandbox.sh("ip netns exec test ping -c 1 -W 2 10.0.0.1");

    assert_exit(&sandbox.netloom(&["status", "examples/seed.yaml"]), 0);

    assert_ok(&sandbox.netloom(&["destroy", "examples/seed.yaml"]));
    assert_eq!(sandbox.sh("ls /run/netns").trim(), "");
    let left: Vec<String> = links(&sandbox, "")
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["lo"]);
    assert_eq!(
        sandbox
            .sh("ls /run/netloom | grep -v '^lock$' || true")
            .trim(),
        ""
    );
}

#[test]
fn destroy_by_name_also_removes_what_is_in_this_machines_namespace() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    assert_ok(&sandbox.netloom(&["apply", "examples/seed.yaml"]));
    assert_ok(&sandbox.netloom(&["destroy", "--name", "seed"]));
    let left: Vec<String> = links(&sandbox, "")
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["lo"], "the bridge and its port go too");
    assert_eq!(sandbox.sh("ls /run/netns").trim(), "");
}

#[test]
fn a_deletion_killed_before_its_unlink_is_finished_by_the_next_destroy() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    assert_ok(&sandbox.netloom(&["apply", "examples/seed.yaml"]));
    // What a kill -9 between the unmount and the unlink leaves.
    sandbox.sh("umount -l /run/netns/test");
    assert_ok(&sandbox.netloom(&["destroy", "examples/seed.yaml"]));
    assert_eq!(sandbox.sh("ls /run/netns").trim(), "");
    assert_eq!(links(&sandbox, "").len(), 1);
}

//! Host mode (`--host NAME`): the machine netloom runs on is one host of
//! the file. Emulated here by two namespaces joined by a veth, each the
//! "real machine" of one host, with netloom run inside it via nsenter.

mod common;

use common::{Sandbox, netloom_bin};

const CLUSTER: &str = "name: hm
routing: host-gw
hosts:
  node1: { underlay: 192.168.50.11/24, pod_cidr: 10.60.1.0/24, forwarding: true }
  node2: { underlay: 192.168.50.12/24, pod_cidr: 10.60.2.0/24, forwarding: true }
bridges:
  b1: { host: node1, ifname: cbr0, addresses: [10.60.1.1/24] }
  b2: { host: node2, ifname: cbr0, addresses: [10.60.2.1/24] }
pods:
  a:
    host: node1
    interfaces: { eth0: { bridge: b1, addresses: [10.60.1.10/24] } }
    routes: [{ to: default, via: 10.60.1.1 }]
  b:
    host: node2
    interfaces: { eth0: { bridge: b2, addresses: [10.60.2.10/24] } }
    routes: [{ to: default, via: 10.60.2.1 }]
";

/// Two "machines" m1 and m2 on one wire, forwarding off as on a fresh host.
fn machines(sandbox: &Sandbox) -> String {
    let file = std::env::temp_dir().join(format!("netloom-host-mode-{}.yaml", std::process::id()));
    std::fs::write(&file, CLUSTER).unwrap();
    sandbox.sh(
        "ip netns add m1 && ip netns add m2 \
         && ip netns exec m1 sysctl -qw net.ipv6.conf.default.disable_ipv6=1 \
         && ip netns exec m2 sysctl -qw net.ipv6.conf.default.disable_ipv6=1 \
         && ip link add eth0 netns m1 type veth peer name eth0 netns m2 \
         && ip -n m1 addr add 192.168.50.11/24 dev eth0 && ip -n m2 addr add 192.168.50.12/24 dev eth0 \
         && ip -n m1 link set eth0 up && ip -n m2 link set eth0 up \
         && ip netns exec m1 sysctl -qw net.ipv4.ip_forward=0 && ip netns exec m2 sysctl -qw net.ipv4.ip_forward=0 \
         && until ip -n m2 link show eth0 | grep -q 'state UP'; do sleep 0.01; done",
    );
    file.to_string_lossy().into_owned()
}

/// netloom run on machine `m` as host `host`, with that machine's own state dir.
fn on(sandbox: &Sandbox, machine: &str, args: &str) -> bool {
    let bin = netloom_bin();
    sandbox.try_sh(&format!(
        "nsenter --net=/run/netns/{machine} {} {args} --state-dir /run/netloom/{machine}",
        bin.display()
    ))
}

#[test]
fn each_machine_gets_its_part_and_pods_reach_across() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = machines(&sandbox);
    let underlay_before = sandbox.sh("ip -n m1 -j -d link show eth0; ip -n m1 -j addr show eth0");
    assert!(on(&sandbox, "m1", &format!("apply --host node1 {file}")));
    assert!(on(&sandbox, "m2", &format!("apply --host node2 {file}")));
    assert!(on(
        &sandbox,
        "m1",
        &format!("plan --detailed-exitcode --host node1 {file}")
    ));

    // node1's bridge is on m1, node2's pod is not on m1's side.
    assert!(sandbox.try_sh("ip -n m1 link show cbr0"));
    let route = sandbox.ip_json("-n m1 route show 10.60.2.0/24");
    assert_eq!(route[0]["gateway"], "192.168.50.12");
    assert_eq!(route[0]["protocol"], "211");
    // The file asked for forwarding on the real host.
    assert_eq!(
        sandbox
            .sh("ip netns exec m1 sysctl -n net.ipv4.ip_forward")
            .trim(),
        "1"
    );
    // Pod to pod across the two machines: pod -> cbr0 -> eth0 -> eth0 -> cbr0 -> pod.
    sandbox.sh("ip netns exec a ping -c 1 -W 2 10.60.2.10");

    // Destroy takes only node1's part away, restores forwarding, and never
    // touched the underlay.
    assert!(on(&sandbox, "m1", &format!("destroy --host node1 {file}")));
    assert!(!sandbox.try_sh("ip -n m1 link show cbr0"));
    assert!(!sandbox.try_sh("test -e /run/netns/a"));
    assert!(sandbox.try_sh("test -e /run/netns/b"), "node2's pod stays");
    assert_eq!(
        sandbox
            .sh("ip netns exec m1 sysctl -n net.ipv4.ip_forward")
            .trim(),
        "0"
    );
    let underlay_after = sandbox.sh("ip -n m1 -j -d link show eth0; ip -n m1 -j addr show eth0");
    assert_eq!(underlay_before, underlay_after);
}

#[test]
fn the_wrong_machine_is_refused_before_anything_changes() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = machines(&sandbox);
    let before = common::everything(&sandbox);
    // m2's underlay has node2's address, not node1's.
    assert!(!on(&sandbox, "m2", &format!("apply --host node1 {file}")));
    assert!(!on(&sandbox, "m2", &format!("apply --host node7 {file}")));
    assert_eq!(before, common::everything(&sandbox));
}

#[test]
fn an_adopted_route_becomes_netlooms_and_goes_with_destroy() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = machines(&sandbox);
    // The machine already routes node2's pods, by hand, exactly as declared.
    sandbox.sh("ip -n m1 route add 10.60.2.0/24 via 192.168.50.12");
    assert!(
        !on(&sandbox, "m1", &format!("apply --host node1 {file}")),
        "a conflict first"
    );
    assert!(on(
        &sandbox,
        "m1",
        &format!("apply --adopt --host node1 {file}")
    ));
    let route = sandbox.ip_json("-n m1 route show 10.60.2.0/24");
    assert_eq!(route[0]["protocol"], "211", "marked as netloom's");
    // Adopted for good: a plain apply and plan agree.
    assert!(on(
        &sandbox,
        "m1",
        &format!("plan --detailed-exitcode --host node1 {file}")
    ));
    assert!(on(&sandbox, "m1", &format!("destroy --host node1 {file}")));
    assert!(
        sandbox
            .sh("ip -n m1 route show 10.60.2.0/24")
            .trim()
            .is_empty()
    );
}

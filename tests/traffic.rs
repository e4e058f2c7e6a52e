//! Real traffic between the pods netloom built: TCP connections opened from
//! threads inside the pods' namespaces (no tool needed), and ping. Only
//! to addresses of the sandbox's own pods.

mod common;
mod support;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{Sandbox, apply_converged};
use support::{in_netns, netns_handle, tcp_roundtrip};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ping(sandbox: &Sandbox, from: &str, to: &str) {
    sandbox.sh(&format!("ip netns exec {from} ping -c 1 -W 2 {to}"));
}

#[test]
fn pods_on_a_bridge_talk_tcp_over_ipv4_and_ipv6() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "examples/expectations.yaml");
    let seen = tcp_roundtrip(&sandbox, "exp-server", "exp-client", ip("10.9.0.3"));
    assert_eq!(
        seen,
        ip("10.9.0.2"),
        "the connection came from the client pod"
    );
    let seen = tcp_roundtrip(&sandbox, "exp-server", "exp-client", ip("fd00:9::3"));
    assert_eq!(seen, ip("fd00:9::2"));
    // And back the other way.
    let seen = tcp_roundtrip(&sandbox, "exp-client", "exp-server", ip("10.9.0.2"));
    assert_eq!(seen, ip("10.9.0.3"));
    ping(&sandbox, "exp-client", "10.9.0.3");
    ping(&sandbox, "exp-client", "fd00:9::3");
    ping(&sandbox, "exp-client", "10.9.0.1");

    // The pod on the same switch in another subnet, with no route to it,
    // is out of reach.
    let refused = in_netns(netns_handle(&sandbox, "exp-client"), || {
        TcpStream::connect_timeout(
            &SocketAddr::new(ip("10.9.1.3"), 80),
            Duration::from_millis(500),
        )
    });
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn pods_on_a_direct_link_talk_tcp() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "examples/pod-to-pod.yaml");
    let seen = tcp_roundtrip(&sandbox, "p2p-right", "p2p-left", ip("10.2.0.2"));
    assert_eq!(seen, ip("10.2.0.1"));
    let seen = tcp_roundtrip(&sandbox, "p2p-left", "p2p-right", ip("10.2.0.1"));
    assert_eq!(seen, ip("10.2.0.2"));
    ping(&sandbox, "p2p-left", "10.2.0.2");
}

#[test]
fn a_router_pod_forwards_between_subnets() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "examples/sysctls.yaml");
    let seen = tcp_roundtrip(&sandbox, "sc-right", "sc-left", ip("10.5.2.2"));
    assert_eq!(seen, ip("10.5.1.2"));
    ping(&sandbox, "sc-left", "10.5.2.2");
}

#[test]
fn pods_on_different_lab_hosts_talk_through_host_gw_routes() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "topologies/k8s-host-gw.yaml");
    // pod -> cbr0 -> node1 -> underlay -> node2 -> cbr0 -> pod: routed,
    // so the source address arrives as it left.
    let seen = tcp_roundtrip(&sandbox, "pod2a", "pod1a", ip("10.244.2.10"));
    assert_eq!(seen, ip("10.244.1.10"));
    let seen = tcp_roundtrip(&sandbox, "pod1b", "pod3b", ip("10.244.1.11"));
    assert_eq!(seen, ip("10.244.3.11"));
    ping(&sandbox, "pod2b", "10.244.3.10");
}

#[test]
fn pods_on_different_lab_hosts_share_a_vxlan_segment() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, "topologies/k8s-vxlan.yaml");
    let seen = tcp_roundtrip(&sandbox, "web2", "web1", ip("10.250.0.21"));
    assert_eq!(seen, ip("10.250.0.11"));
    let seen = tcp_roundtrip(&sandbox, "db1", "db2", ip("10.250.0.12"));
    assert_eq!(seen, ip("10.250.0.22"));
    // The other node's bridge, over the overlay.
    ping(&sandbox, "db2", "10.250.0.1");
}

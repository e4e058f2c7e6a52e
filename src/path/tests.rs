//! The walker over a fake kernel: two host-gw nodes on an underlay switch,
//! and two VXLAN workers, built interface by interface.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::model::live::{InterfaceKind, NeighbourState};

/// One namespace of the fake kernel.
#[derive(Default)]
struct FakeNs {
    interfaces: Vec<LiveInterface>,
    /// (destination, gateway, oif): longest prefix wins.
    routes: Vec<(IpNet, Option<IpAddr>, u32)>,
    forwarding: bool,
    /// What every lookup for an arriving packet answers instead, if set.
    refuse_arriving: Option<RouteRefusal>,
    neighbours: Vec<(u32, IpAddr, Neighbour)>,
    /// (bridge, mac, port)
    fdb: Vec<(u32, Mac, u32)>,
    /// (vxlan, mac, remote)
    vxlan_fdb: Vec<(u32, Mac, IpAddr)>,
    /// netnsid -> namespace
    peers: HashMap<i32, String>,
}

#[derive(Default)]
struct FakeKernel {
    namespaces: HashMap<String, FakeNs>,
    /// The last netnsid handed out (each veth end gets its own).
    last_netnsid: i32,
}

impl FakeKernel {
    fn ns(&mut self, ns: &str) -> &mut FakeNs {
        self.namespaces.entry(ns.to_string()).or_default()
    }

    fn get(&self, ns: &str) -> Result<&FakeNs, String> {
        self.namespaces
            .get(ns)
            .ok_or_else(|| format!("no namespace {ns}"))
    }
}

impl PathKernel for FakeKernel {
    type Error = String;

    async fn interfaces(&self, ns: &str) -> Result<Vec<LiveInterface>, String> {
        Ok(self.get(ns)?.interfaces.clone())
    }

    async fn route(
        &self,
        ns: &str,
        query: RouteQuery,
    ) -> Result<Result<RouteAnswer, RouteRefusal>, String> {
        let fake = self.get(ns)?;
        if query.iif.is_some()
            && let Some(refusal) = &fake.refuse_arriving
        {
            return Ok(Err(refusal.clone()));
        }
        let local = fake
            .interfaces
            .iter()
            .any(|i| i.addresses.iter().any(|a| a.addr() == query.dst));
        let best = fake
            .routes
            .iter()
            .filter(|(net, _, _)| net.contains(&query.dst))
            .max_by_key(|(net, _, _)| net.prefix_len());
        Ok(match (local, best) {
            (true, _) => Ok(RouteAnswer {
                kind: RouteKind::Local,
                oif: None,
                gateway: None,
                source: None,
                matched: None,
                protocol: None,
            }),
            (false, Some((net, gateway, oif))) => Ok(RouteAnswer {
                kind: RouteKind::Unicast,
                oif: Some(*oif),
                gateway: *gateway,
                source: fake
                    .interfaces
                    .iter()
                    .find(|i| i.index == *oif)
                    .and_then(|i| i.addresses.first())
                    .map(|a| a.addr()),
                matched: Some(*net),
                protocol: None,
            }),
            (false, None) => Err(RouteRefusal::NoRoute),
        })
    }

    async fn neighbour(
        &self,
        ns: &str,
        index: u32,
        ip: IpAddr,
    ) -> Result<Option<Neighbour>, String> {
        Ok(self
            .get(ns)?
            .neighbours
            .iter()
            .find(|(i, a, _)| *i == index && *a == ip)
            .map(|(_, _, n)| n.clone()))
    }

    async fn bridge_port(&self, ns: &str, bridge: u32, mac: Mac) -> Result<Option<u32>, String> {
        Ok(self
            .get(ns)?
            .fdb
            .iter()
            .find(|(b, m, _)| *b == bridge && *m == mac)
            .map(|(_, _, port)| *port))
    }

    async fn vxlan_remotes(
        &self,
        ns: &str,
        vxlan: u32,
        mac: Option<Mac>,
    ) -> Result<(bool, Vec<IpAddr>), String> {
        let fake = self.get(ns)?;
        let remotes = |wanted: Mac| -> Vec<IpAddr> {
            fake.vxlan_fdb
                .iter()
                .filter(|(v, m, _)| *v == vxlan && *m == wanted)
                .map(|(_, _, remote)| *remote)
                .collect()
        };
        if let Some(mac) = mac {
            let learnt = remotes(mac);
            if !learnt.is_empty() {
                return Ok((true, learnt));
            }
        }
        Ok((false, remotes(Mac([0; 6]))))
    }

    async fn sysctl(&self, ns: &str, key: &str) -> Result<Option<String>, String> {
        let fake = self.get(ns)?;
        Ok(key
            .contains("forward")
            .then(|| if fake.forwarding { "1" } else { "0" }.to_string()))
    }

    async fn peer_namespace(
        &self,
        ns: &str,
        netnsid: Option<i32>,
        candidates: &[String],
    ) -> Result<Option<String>, String> {
        let Some(netnsid) = netnsid else {
            return Ok(Some(ns.to_string()));
        };
        Ok(self
            .get(ns)?
            .peers
            .get(&netnsid)
            .filter(|peer| candidates.contains(peer))
            .cloned())
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn mac(last: u8) -> Mac {
    Mac([2, 0, 0, 0, 0, last])
}

fn interface(index: u32, name: &str, kind: InterfaceKind, addresses: &[&str]) -> LiveInterface {
    LiveInterface {
        index,
        name: name.to_string(),
        kind,
        up: true,
        carrier: true,
        mac: Some(mac(index as u8 + 100)),
        master: None,
        addresses: addresses.iter().map(|a| net(a)).collect(),
    }
}

/// Joins `a_ns`/`a_index` and `b_ns`/`b_index` as a veth pair; each side
/// knows the other by the netnsid given.
fn veth(
    kernel: &mut FakeKernel,
    (a_ns, a_index, a_name): (&str, u32, &str),
    (b_ns, b_index, b_name): (&str, u32, &str),
    addresses: (&[&str], &[&str]),
) {
    kernel.last_netnsid += 2;
    let (a_id, b_id) = (kernel.last_netnsid - 1, kernel.last_netnsid);
    let kind = |peer_index, peer_netnsid| InterfaceKind::Veth {
        peer_index,
        peer_netnsid: Some(peer_netnsid),
    };
    kernel
        .ns(a_ns)
        .interfaces
        .push(interface(a_index, a_name, kind(b_index, a_id), addresses.0));
    kernel.ns(a_ns).peers.insert(a_id, b_ns.to_string());
    kernel
        .ns(b_ns)
        .interfaces
        .push(interface(b_index, b_name, kind(a_index, b_id), addresses.1));
    kernel.ns(b_ns).peers.insert(b_id, a_ns.to_string());
}

fn enslave(kernel: &mut FakeKernel, ns: &str, index: u32, bridge: u32) {
    let port = kernel
        .ns(ns)
        .interfaces
        .iter_mut()
        .find(|i| i.index == index)
        .unwrap();
    port.master = Some(bridge);
}

fn bridge(kernel: &mut FakeKernel, ns: &str, index: u32, name: &str, addresses: &[&str]) {
    kernel
        .ns(ns)
        .interfaces
        .push(interface(index, name, InterfaceKind::Bridge, addresses));
}

fn route(kernel: &mut FakeKernel, ns: &str, to: &str, via: Option<&str>, oif: u32) {
    kernel.ns(ns).routes.push((net(to), via.map(ip), oif));
}

/// Two host-gw nodes: pod1 and pod1b on node1's cbr0 (10.1.0.0/24), pod2 on
/// node2's (10.2.0.0/24), nodes on an underlay switch (192.168.0.0/24).
fn host_gw() -> FakeKernel {
    let mut k = FakeKernel::default();
    for (node, n, underlay) in [
        ("node1", 1, "192.168.0.1/24"),
        ("node2", 2, "192.168.0.2/24"),
    ] {
        let cbr = format!("10.{n}.0.1/24");
        bridge(&mut k, node, 3, "cbr0", &[&cbr]);
        veth(
            &mut k,
            (node, 2, "eth0"),
            ("underlay", 10 + n, &format!("port{n}")),
            (&[underlay], &[]),
        );
        enslave(&mut k, "underlay", 10 + n, 1);
        route(&mut k, node, &format!("10.{n}.0.0/24"), None, 3);
        route(&mut k, node, "192.168.0.0/24", None, 2);
        k.ns(node).forwarding = true;
    }
    bridge(&mut k, "underlay", 1, "underlay", &[]);
    route(&mut k, "node1", "10.2.0.0/24", Some("192.168.0.2"), 2);
    route(&mut k, "node2", "10.1.0.0/24", Some("192.168.0.1"), 2);
    for (pod, node, port, address, gateway) in [
        ("pod1", "node1", 4, "10.1.0.10/24", "10.1.0.1"),
        ("pod1b", "node1", 5, "10.1.0.11/24", "10.1.0.1"),
        ("pod2", "node2", 4, "10.2.0.10/24", "10.2.0.1"),
    ] {
        veth(
            &mut k,
            (pod, 2, "eth0"),
            (node, port, &format!("veth-{pod}")),
            (&[address], &[]),
        );
        enslave(&mut k, node, port, 3);
        let subnet = net(address).trunc().to_string();
        route(&mut k, pod, &subnet, None, 2);
        route(&mut k, pod, "0.0.0.0/0", Some(gateway), 2);
    }
    k
}

fn places(names: &[(&str, &str)]) -> Vec<Place> {
    names
        .iter()
        .map(|(ns, node)| Place {
            ns: ns.to_string(),
            node: node.to_string(),
        })
        .collect()
}

fn lab_walk(from: &str, to: &str) -> Walk {
    Walk {
        from: from.to_string(),
        to: ip(to),
        places: places(&[
            ("pod1", "pod1"),
            ("pod1b", "pod1b"),
            ("pod2", "pod2"),
            ("node1", "node1"),
            ("node2", "node2"),
            ("underlay", "underlay switch"),
        ]),
        remote_hosts: Vec::new(),
    }
}

fn run(kernel: &FakeKernel, walk: &Walk) -> PathReport {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(super::walk(kernel, walk))
        .expect("the fake never fails")
}

/// The namespaces the hops go through, each once in a row.
fn namespaces(report: &PathReport) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for hop in &report.hops {
        if seen.last() != Some(&hop.namespace) {
            seen.push(hop.namespace.clone());
        }
    }
    seen
}

#[test]
fn across_nodes_the_packet_goes_pod_node_underlay_node_pod() {
    let kernel = host_gw();
    let report = run(&kernel, &lab_walk("pod1", "10.2.0.10"));
    assert_eq!(
        report.end,
        End::Delivered {
            namespace: "pod2".to_string(),
            node: "pod2".to_string()
        },
        "{report:#?}"
    );
    assert_eq!(
        namespaces(&report),
        ["pod1", "node1", "underlay", "node2", "pod2"],
        "{report:#?}"
    );
    let first = &report.hops[0];
    assert_eq!(
        first.address,
        Some(ip("10.1.0.10")),
        "the source the packet has"
    );
    assert!(
        first
            .decision
            .starts_with("route default via 10.1.0.1 dev eth0"),
        "{first:?}"
    );
    // node1 routes to node2 by its underlay address.
    let node1 = report
        .hops
        .iter()
        .find(|h| h.namespace == "node1" && h.out_interface.as_deref() == Some("eth0"))
        .expect("node1 sends it out of its underlay");
    assert_eq!(node1.in_interface.as_deref(), Some("cbr0"));
    assert!(
        node1.decision.contains("10.2.0.0/24 via 192.168.0.2"),
        "{node1:?}"
    );
    assert!(report.arrives());
}

#[test]
fn on_the_same_node_the_packet_never_leaves_it() {
    let kernel = host_gw();
    let report = run(&kernel, &lab_walk("pod1", "10.1.0.11"));
    assert_eq!(
        namespaces(&report),
        ["pod1", "node1", "pod1b"],
        "{report:#?}"
    );
    assert!(matches!(&report.end, End::Delivered { namespace, .. } if namespace == "pod1b"));
}

#[test]
fn a_learnt_mac_is_forwarded_by_the_fdb_not_flooded() {
    let mut kernel = host_gw();
    let pod1b_mac = mac(102);
    let neighbour = Neighbour {
        mac: Some(pod1b_mac),
        state: NeighbourState::Usable,
    };
    kernel
        .ns("pod1")
        .neighbours
        .push((2, ip("10.1.0.11"), neighbour));
    // pod1b's eth0 (index 2) has MAC 02:..:66 (index + 100); the fdb knows it.
    kernel.ns("node1").fdb.push((3, pod1b_mac, 5));
    let report = run(&kernel, &lab_walk("pod1", "10.1.0.11"));
    let bridge_hop = report.hops.iter().find(|h| h.namespace == "node1").unwrap();
    assert!(
        bridge_hop.decision.contains("fdb has 02:00:00:00:00:66"),
        "{bridge_hop:?}"
    );
    assert_eq!(bridge_hop.out_interface.as_deref(), Some("veth-pod1b"));
    assert!(report.arrives());
}

#[test]
fn a_deleted_route_ends_the_walk_where_the_packet_dies() {
    let mut kernel = host_gw();
    kernel
        .ns("node1")
        .routes
        .retain(|(to, _, _)| *to != net("10.2.0.0/24"));
    let report = run(&kernel, &lab_walk("pod1", "10.2.0.10"));
    assert_eq!(
        report.end,
        End::Dies {
            namespace: "node1".to_string(),
            node: "node1".to_string(),
            reason: Death::NoRoute {
                to: ip("10.2.0.10")
            },
        },
        "{report:#?}"
    );
    assert!(!report.arrives());
    assert_eq!(namespaces(&report), ["pod1", "node1"]);
}

#[test]
fn a_node_that_does_not_forward_drops_the_packet() {
    let mut kernel = host_gw();
    kernel.ns("node2").forwarding = false;
    let report = run(&kernel, &lab_walk("pod1", "10.2.0.10"));
    assert!(
        matches!(&report.end, End::Dies { namespace, reason: Death::ForwardingOff { .. }, .. } if namespace == "node2"),
        "{report:#?}"
    );
}

#[test]
fn reverse_path_filtering_is_named_with_the_interface() {
    let mut kernel = host_gw();
    kernel.ns("node2").refuse_arriving = Some(RouteRefusal::ReversePathFiltered);
    let report = run(&kernel, &lab_walk("pod1", "10.2.0.10"));
    let End::Dies { reason, .. } = &report.end else {
        panic!("{report:#?}");
    };
    assert_eq!(
        *reason,
        Death::ReversePathFiltered {
            interface: "eth0".to_string()
        }
    );
}

#[test]
fn an_interface_down_on_the_way_is_where_it_dies() {
    let mut kernel = host_gw();
    let pod2_eth0 = kernel
        .ns("pod2")
        .interfaces
        .iter_mut()
        .find(|i| i.index == 2)
        .unwrap();
    pod2_eth0.up = false;
    let report = run(&kernel, &lab_walk("pod1", "10.2.0.10"));
    // node2's bridge floods; the interface with the address is down.
    assert_eq!(
        report.end,
        End::Dies {
            namespace: "pod2".to_string(),
            node: "pod2".to_string(),
            reason: Death::InterfaceDown {
                interface: "eth0".to_string()
            },
        },
        "{report:#?}"
    );

    // A down interface the route itself uses is named.
    let mut kernel = host_gw();
    kernel
        .ns("pod1")
        .interfaces
        .iter_mut()
        .for_each(|i| i.up = false);
    let report = run(&kernel, &lab_walk("pod1", "10.2.0.10"));
    assert_eq!(
        report.end,
        End::Dies {
            namespace: "pod1".to_string(),
            node: "pod1".to_string(),
            reason: Death::InterfaceDown {
                interface: "eth0".to_string()
            },
        }
    );
}

#[test]
fn an_address_nobody_has_dies_for_want_of_a_neighbour() {
    let kernel = host_gw();
    let report = run(&kernel, &lab_walk("pod1", "10.1.0.99"));
    assert!(
        matches!(&report.end, End::Dies { reason: Death::NoNeighbour { ip: target, .. }, .. } if *target == ip("10.1.0.99")),
        "{report:#?}"
    );
}

#[test]
fn in_host_mode_the_packet_leaves_towards_the_next_host() {
    // node1 is this machine (""): its eth0 is a real interface.
    let mut kernel = FakeKernel::default();
    kernel.ns("").interfaces.push(interface(
        2,
        "eth0",
        InterfaceKind::Device,
        &["192.168.0.1/24"],
    ));
    bridge(&mut kernel, "", 3, "cbr0", &["10.1.0.1/24"]);
    kernel.ns("").forwarding = true;
    route(&mut kernel, "", "10.2.0.0/24", Some("192.168.0.2"), 2);
    route(&mut kernel, "", "10.1.0.0/24", None, 3);
    veth(
        &mut kernel,
        ("pod1", 2, "eth0"),
        ("", 4, "veth-pod1"),
        (&["10.1.0.10/24"], &[]),
    );
    enslave(&mut kernel, "", 4, 3);
    route(&mut kernel, "pod1", "0.0.0.0/0", Some("10.1.0.1"), 2);
    let walk = Walk {
        from: "pod1".to_string(),
        to: ip("10.2.0.10"),
        places: places(&[("pod1", "pod1"), ("", "node1")]),
        remote_hosts: vec![RemoteHost {
            underlay: ip("192.168.0.2"),
            name: "node2".to_string(),
        }],
    };
    let report = run(&kernel, &walk);
    assert_eq!(
        report.end,
        End::Leaves {
            interface: "eth0".to_string(),
            towards: ip("192.168.0.2"),
            host: Some("node2".to_string()),
        },
        "{report:#?}"
    );
    assert!(report.arrives());
}

/// Two workers whose cbr0 bridges a VXLAN device (vni 100) joins into one
/// segment, 10.250.0.0/24; web1 on worker1, web2 on worker2.
fn vxlan() -> FakeKernel {
    let mut k = FakeKernel::default();
    for (worker, n, remote) in [
        ("worker1", 1u8, "192.168.200.12"),
        ("worker2", 2, "192.168.200.11"),
    ] {
        let underlay = format!("192.168.200.1{n}/24");
        k.ns(worker)
            .interfaces
            .push(interface(2, "eth0", InterfaceKind::Device, &[&underlay]));
        bridge(&mut k, worker, 3, "cbr0", &[&format!("10.250.0.{n}/24")]);
        let local = Some(ip(&format!("192.168.200.1{n}")));
        let device = InterfaceKind::Vxlan {
            vni: 100,
            port: 4789,
            local,
        };
        k.ns(worker)
            .interfaces
            .push(interface(4, "vxlan100", device, &[]));
        enslave(&mut k, worker, 4, 3);
        k.ns(worker).vxlan_fdb.push((4, Mac([0; 6]), ip(remote)));
        route(&mut k, worker, "192.168.200.0/24", None, 2);
        route(&mut k, worker, "10.250.0.0/24", None, 3);
        let pod = format!("web{n}");
        veth(
            &mut k,
            (&pod, 2, "eth0"),
            (worker, 5, "veth-web"),
            (&[&format!("10.250.0.{n}1/24")], &[]),
        );
        enslave(&mut k, worker, 5, 3);
        route(&mut k, &pod, "10.250.0.0/24", None, 2);
    }
    k
}

fn vxlan_walk(to: &str) -> Walk {
    Walk {
        from: "web1".to_string(),
        to: ip(to),
        places: places(&[
            ("web1", "web1"),
            ("web2", "web2"),
            ("worker1", "worker1"),
            ("worker2", "worker2"),
        ]),
        remote_hosts: Vec::new(),
    }
}

#[test]
fn over_vxlan_the_walk_names_the_device_and_the_remote_underlay_address() {
    let kernel = vxlan();
    let report = run(&kernel, &vxlan_walk("10.250.0.21"));
    assert_eq!(
        namespaces(&report),
        ["web1", "worker1", "worker2", "web2"],
        "{report:#?}"
    );
    let tunnel = report
        .hops
        .iter()
        .find(|h| h.decision.starts_with("vxlan"))
        .expect("a hop through the VXLAN device");
    assert_eq!(tunnel.out_interface.as_deref(), Some("vxlan100"));
    assert_eq!(tunnel.namespace, "worker1");
    assert!(
        tunnel.decision.contains("dst 192.168.200.12, worker2"),
        "{tunnel:?}"
    );
    assert!(matches!(&report.end, End::Delivered { namespace, .. } if namespace == "web2"));
}

#[test]
fn a_vxlan_without_an_underlay_route_to_the_remote_drops_the_frame() {
    let mut kernel = vxlan();
    kernel
        .ns("worker1")
        .routes
        .retain(|(to, _, _)| *to != net("192.168.200.0/24"));
    let report = run(&kernel, &vxlan_walk("10.250.0.21"));
    assert!(!report.arrives(), "{report:#?}");
}

#[test]
fn an_address_of_the_pod_itself_is_delivered_at_once() {
    let kernel = host_gw();
    let report = run(&kernel, &lab_walk("pod1", "10.1.0.10"));
    assert_eq!(report.hops.len(), 1);
    assert!(matches!(&report.end, End::Delivered { namespace, .. } if namespace == "pod1"));
}

#[test]
fn deaths_have_short_reasons_and_readable_messages() {
    let death = Death::NoRoute {
        to: ip("10.2.0.10"),
    };
    assert_eq!(death.reason(), "no-route");
    assert_eq!(death.to_string(), "no route to 10.2.0.10");
    let death = Death::ForwardingOff {
        key: "net.ipv4.ip_forward".to_string(),
    };
    assert_eq!(
        death.to_string(),
        "forwarding is off (net.ipv4.ip_forward is not 1)"
    );
}

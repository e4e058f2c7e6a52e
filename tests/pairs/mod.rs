//! A generator of valid topologies from a small vocabulary (pods, bridges,
//! shorthand and explicit links, pod-to-pod links, IPv4/IPv6 addresses,
//! routes with via/dev/metric in the main or another table, MTU, MAC, sysctls, rate, lab hosts, host-gw,
//! an overlay), rendered as YAML text, for the generated transition tests.

use std::fmt::Write as _;

use netloom::diagnostics::SourceFile;
use netloom::spec::Topology;
use proptest::prelude::*;

/// How a pod's `eth0` is cabled to a bridge.
#[derive(Clone, Debug)]
enum Cable {
    None,
    /// `bridge:` shorthand on the interface.
    Shorthand(usize),
    /// A `links` entry to a bridge port with this name variant.
    Link(usize, u8),
}

#[derive(Clone, Debug)]
struct PodChoice {
    /// Keyed `kN` (with `netns: pN`) rather than `pN`: a renamed key whose
    /// namespace stays.
    renamed_key: bool,
    cable: Cable,
    ipv6: bool,
    mac: Option<u8>,
    mtu: Option<u32>,
    /// 0 none, 1 default via the gateway, 2 a prefix via it with a metric,
    /// 3 a prefix out of eth0 without via.
    route: u8,
    /// The route's table: main (unset), 100 or 1000 (a table id only
    /// RTA_TABLE holds).
    route_table: Option<u32>,
    forwarding: bool,
    /// Which lab host the pod lives on (when there are hosts).
    host: usize,
}

#[derive(Clone, Debug)]
struct BridgeChoice {
    ifname: bool,
    address: bool,
    ipv6: bool,
    mtu: Option<u32>,
    mac: Option<u8>,
}

#[derive(Clone, Debug)]
pub struct TopologyChoice {
    hosts: bool,
    host_gw: bool,
    overlay: bool,
    bridges: [Option<BridgeChoice>; 2],
    pods: [Option<PodChoice>; 3],
    /// A pod-to-pod link between two pods on `eth1`: (a, b, mtu, rate).
    pod_link: Option<(usize, usize, Option<u32>, bool)>,
    /// A link from lab host 0's `lab0` to a pod's `eth2`.
    host_link: Option<usize>,
}

fn bridge_choice() -> impl Strategy<Value = BridgeChoice> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.3, prop_oneof![Just(1400u32), Just(9000)]),
        prop::option::weighted(0.3, 1u8..3),
    )
        .prop_map(|(ifname, address, ipv6, mtu, mac)| BridgeChoice {
            ifname,
            address,
            ipv6,
            mtu,
            mac,
        })
}

fn pod_choice() -> impl Strategy<Value = PodChoice> {
    let cable = prop_oneof![
        1 => Just(Cable::None),
        2 => (0usize..2).prop_map(Cable::Shorthand),
        2 => ((0usize..2), (0u8..2)).prop_map(|(b, v)| Cable::Link(b, v)),
    ];
    (
        prop::bool::weighted(0.2),
        cable,
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, 1u8..3),
        prop::option::weighted(0.2, prop_oneof![Just(1400u32), Just(1450)]),
        0u8..4,
        prop::option::weighted(0.4, prop_oneof![Just(100u32), Just(1000)]),
        prop::bool::weighted(0.3),
        0usize..2,
    )
        .prop_map(
            |(renamed_key, cable, ipv6, mac, mtu, route, route_table, forwarding, host)| {
                PodChoice {
                    renamed_key,
                    cable,
                    ipv6,
                    mac,
                    mtu,
                    route,
                    route_table,
                    forwarding,
                    host,
                }
            },
        )
}

pub fn topology_choice() -> impl Strategy<Value = TopologyChoice> {
    (
        prop::bool::weighted(0.4),
        any::<bool>(),
        prop::bool::weighted(0.3),
        [
            prop::option::weighted(0.8, bridge_choice()),
            prop::option::weighted(0.6, bridge_choice()),
        ],
        [
            prop::option::weighted(0.8, pod_choice()),
            prop::option::weighted(0.7, pod_choice()),
            prop::option::weighted(0.5, pod_choice()),
        ],
        prop::option::weighted(
            0.4,
            (
                0usize..3,
                0usize..3,
                prop::option::weighted(0.3, Just(9000u32)),
                any::<bool>(),
            ),
        ),
        prop::option::weighted(0.2, 0usize..3),
    )
        .prop_map(
            |(hosts, host_gw, overlay, bridges, pods, pod_link, host_link)| TopologyChoice {
                hosts,
                host_gw,
                overlay,
                bridges,
                pods,
                pod_link,
                host_link,
            },
        )
}

impl TopologyChoice {
    /// The host a bridge lives on: bridge 0 on host 0, bridge 1 on host 1.
    fn subnet_of_bridge(&self, bridge: usize) -> usize {
        bridge + 1
    }

    /// The pod's host, which is its bridge's host when it has one.
    fn pod_host(&self, pod: &PodChoice) -> usize {
        match pod.cable {
            Cable::Shorthand(b) | Cable::Link(b, _) => b,
            Cable::None => pod.host,
        }
    }

    fn pod_key(i: usize, pod: &PodChoice) -> String {
        if pod.renamed_key {
            format!("k{i}")
        } else {
            format!("p{i}")
        }
    }

    /// The YAML text of this topology.
    pub fn render(&self) -> String {
        // A host link needs its pod on host 0.
        let host_link = self.host_link.filter(|&i| {
            self.hosts && self.pods[i].as_ref().is_some_and(|p| self.pod_host(p) == 0)
        });
        let mut y = String::from("name: gen\n");
        if self.hosts {
            if self.host_gw {
                y.push_str("routing: host-gw\n");
            }
            y.push_str("hosts:\n");
            for h in 0..2 {
                let _ = writeln!(y, "  n{h}:");
                let _ = writeln!(y, "    underlay: 192.168.100.{}/24", 11 + h);
                let _ = writeln!(y, "    pod_cidr: 10.{}.0.0/16", h + 1);
                if h == 0 && host_link.is_some() {
                    y.push_str("    interfaces:\n      lab0: { addresses: [10.1.8.1/30] }\n");
                }
            }
        }

        let mut links = Vec::new();
        if self.bridges.iter().any(Option::is_some) {
            y.push_str("bridges:\n");
        }
        for (b, bridge) in self.bridges.iter().enumerate() {
            let Some(bridge) = bridge else { continue };
            let mut fields = Vec::new();
            if self.hosts {
                fields.push(format!("host: n{b}"));
            }
            if bridge.ifname {
                fields.push("ifname: cbr0".into());
            }
            let s = self.subnet_of_bridge(b);
            let mut addresses = Vec::new();
            if bridge.address {
                addresses.push(format!("10.{s}.0.1/24"));
            }
            if bridge.ipv6 {
                addresses.push(format!("fd00:{s}::1/64"));
            }
            if !addresses.is_empty() {
                fields.push(format!("addresses: [{}]", addresses.join(", ")));
            }
            if let Some(mtu) = bridge.mtu {
                fields.push(format!("mtu: {mtu}"));
            }
            if let Some(mac) = bridge.mac {
                fields.push(format!("mac: 02:00:00:00:b{b}:0{mac}"));
            }
            let _ = writeln!(y, "  b{b}: {{ {} }}", fields.join(", "));
        }

        if self.pods.iter().any(Option::is_some) {
            y.push_str("pods:\n");
        }
        for (i, pod) in self.pods.iter().enumerate() {
            let Some(pod) = pod else { continue };
            let key = Self::pod_key(i, pod);
            let _ = writeln!(y, "  {key}:");
            if pod.renamed_key {
                let _ = writeln!(y, "    netns: p{i}");
            }
            let host = self.pod_host(pod);
            if self.hosts {
                let _ = writeln!(y, "    host: n{host}");
            }
            y.push_str("    interfaces:\n");
            let bridge = match pod.cable {
                Cable::Shorthand(b) | Cable::Link(b, _) => self.bridges[b].as_ref().map(|_| b),
                Cable::None => None,
            };
            let s = bridge.map_or(host + 1, |b| self.subnet_of_bridge(b));
            let mut eth0 = vec![format!("addresses: [10.{s}.0.{}/24{}]", 10 + i, {
                if pod.ipv6 {
                    format!(", fd00:{s}::{}/64", 10 + i)
                } else {
                    String::new()
                }
            })];
            if let Some(mac) = pod.mac {
                eth0.push(format!("mac: 02:00:00:00:0{i}:0{mac}"));
            }
            if let Some(mtu) = pod.mtu {
                eth0.push(format!("mtu: {mtu}"));
            }
            match (pod.cable.clone(), bridge) {
                (Cable::Shorthand(b), Some(_)) => eth0.push(format!("bridge: b{b}")),
                (Cable::Link(b, variant), Some(_)) => {
                    links.push(format!(
                        "  - endpoints: [{key}:eth0, b{b}:port{i}v{variant}]"
                    ));
                }
                // Without a bridge the interface needs a creator: loop it
                // to nothing, so drop the interface altogether.
                _ => eth0.clear(),
            }
            if !eth0.is_empty() {
                let _ = writeln!(y, "      eth0: {{ {} }}", eth0.join(", "));
            }
            if let Some((a, b, _, _)) = self.pod_link_between()
                && (a == i || b == i)
            {
                let end = if a == i { 1 } else { 2 };
                let _ = writeln!(
                    y,
                    "      eth1: {{ addresses: [10.{}.9.{end}/30] }}",
                    host + 1
                );
            }
            if host_link == Some(i) {
                y.push_str("      eth2: { addresses: [10.1.8.2/30] }\n");
            }
            let gateway_bridge = bridge.filter(|&b| self.bridges[b].as_ref().unwrap().address);
            let table = pod
                .route_table
                .map_or(String::new(), |table| format!(", table: {table}"));
            let route = match (pod.route, gateway_bridge) {
                (1, Some(b)) => Some(format!(
                    "{{ to: default, via: 10.{}.0.1{table} }}",
                    self.subnet_of_bridge(b)
                )),
                (2, Some(b)) => Some(format!(
                    "{{ to: 10.99.0.0/16, via: 10.{}.0.1, metric: 100{table} }}",
                    self.subnet_of_bridge(b)
                )),
                (3, _) if !eth0.is_empty() => {
                    Some(format!("{{ to: 10.98.0.0/16, dev: eth0{table} }}"))
                }
                _ => None,
            };
            if let Some(route) = route {
                let _ = writeln!(y, "    routes:\n      - {route}");
            }
            if pod.forwarding {
                y.push_str("    sysctls:\n      net.ipv4.ip_forward: \"1\"\n");
            }
            if eth0.is_empty()
                && self
                    .pod_link_between()
                    .is_none_or(|(a, b, _, _)| a != i && b != i)
                && host_link != Some(i)
            {
                // A pod with no interface at all: an empty map.
                y = y.replace(
                    &format!("  {key}:\n{}    interfaces:\n", ns_and_host(pod, i, self)),
                    &format!(
                        "  {key}:\n{}    interfaces: {{}}\n",
                        ns_and_host(pod, i, self)
                    ),
                );
            }
        }

        if let Some((a, b, mtu, rate)) = self.pod_link_between() {
            let key = |i: usize| Self::pod_key(i, self.pods[i].as_ref().unwrap());
            let mut link = format!("  - endpoints: [{}:eth1, {}:eth1]", key(a), key(b));
            if let Some(mtu) = mtu {
                let _ = write!(link, "\n    mtu: {mtu}");
            }
            if rate {
                link.push_str("\n    rate: 10mbit");
            }
            links.push(link);
        }
        if let Some(i) = host_link {
            let key = Self::pod_key(i, self.pods[i].as_ref().unwrap());
            links.push(format!("  - endpoints: [n0:lab0, {key}:eth2]"));
        }
        if !links.is_empty() {
            y.push_str("links:\n");
            for link in links {
                y.push_str(&link);
                y.push('\n');
            }
        }
        if self.hosts && self.overlay && self.bridges.iter().all(Option::is_some) {
            y.push_str("overlays:\n  vx0: { vni: 42, bridges: [b0, b1] }\n");
        }
        y
    }

    /// The pod-to-pod link, when both its pods exist on one host.
    fn pod_link_between(&self) -> Option<(usize, usize, Option<u32>, bool)> {
        let (a, b, mtu, rate) = self.pod_link?;
        let (pa, pb) = (self.pods[a].as_ref()?, self.pods[b].as_ref()?);
        (a != b && (!self.hosts || self.pod_host(pa) == self.pod_host(pb))).then_some((
            a.min(b),
            a.max(b),
            mtu,
            rate,
        ))
    }
}

/// The lines between a pod's key and its `interfaces:`.
fn ns_and_host(pod: &PodChoice, i: usize, t: &TopologyChoice) -> String {
    let mut lines = String::new();
    if pod.renamed_key {
        let _ = writeln!(lines, "    netns: p{i}");
    }
    if t.hosts {
        let _ = writeln!(lines, "    host: n{}", t.pod_host(pod));
    }
    lines
}

/// A topology if the text is valid.
pub fn valid(text: &str) -> Option<Topology> {
    let source = SourceFile::new("gen.yaml", text.to_string());
    let topology = netloom::load::parse(&source).ok()?;
    netloom::validate::validate(&topology)
        .is_empty()
        .then_some(topology)
}

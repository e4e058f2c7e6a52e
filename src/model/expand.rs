//! Spec -> Desired: every kernel object the file implies, derived ones
//! included (namespace baselines, `bridge:` shorthand links, lab hosts and
//! their underlay switch, host-gw routes, VXLAN devices and flood entries).
//!
//! Expects a validated topology: a value validation would have rejected is
//! skipped here, never trusted.

use std::net::IpAddr;

use ipnet::IpNet;

use super::names::{derived_bridge_mac, derived_ifname, mark};
use super::{Desired, Kind, LinkKind, MAIN_TABLE, Resource, ResourceId, Resources, Route, Vxlan};
use crate::spec::{self, Endpoint, Interface, OwnerKind, RouteDest, Routing, Sp, Topology};

/// Where the hosts of the file live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every host is emulated as a namespace on this machine.
    Lab,
    /// This machine is host `name`; only its objects are in scope. The
    /// underlay's MTU is read from the kernel (VXLAN MTUs follow it).
    Host {
        name: String,
        underlay_mtu: Option<u32>,
    },
}

impl Mode {
    /// The mode `--host` asks for: without it, lab mode; with it, that
    /// host, its underlay MTU to be read from the kernel.
    pub fn from_host_flag(host: Option<String>) -> Mode {
        match host {
            Some(name) => Mode::Host {
                name,
                underlay_mtu: None,
            },
            None => Mode::Lab,
        }
    }
}

/// Every namespace netloom creates starts from this (docs/FORMAT.md): secondary
/// addresses survive the removal of a primary; IPv6 addresses are usable
/// at once.
pub const NAMESPACE_BASELINE: [(&str, &str); 4] = [
    ("net.ipv4.conf.all.promote_secondaries", "1"),
    ("net.ipv4.conf.default.promote_secondaries", "1"),
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
];

/// The sysctls `forwarding` stands for.
pub const FORWARDING_SYSCTLS: [&str; 2] = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"];

/// The lab underlay switch: a bridge of this name in `<topology>-underlay`.
pub const UNDERLAY_BRIDGE: &str = "underlay";
pub const DEFAULT_UNDERLAY_INTERFACE: &str = "eth0";
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// A lab host's underlay is a veth, whose MTU is the kernel's default.
const LAB_UNDERLAY_MTU: u32 = 1500;

/// The namespace of a lab's underlay switch.
pub fn underlay_namespace(topology: &str) -> String {
    format!("{topology}-underlay")
}

/// Expands a validated topology into the kernel objects it implies.
pub fn expand(spec: &Topology, mode: &Mode) -> Desired {
    let mut expander = Expander {
        spec,
        mode,
        topology: &spec.name,
        out: Resources::new(),
    };
    expander.hosts();
    expander.bridges();
    expander.pods();
    expander.links();
    expander.overlays();
    Desired {
        topology: spec.name.value.clone(),
        resources: expander.out,
    }
}

/// Where one end of a veth lives and what it is.
struct End<'a> {
    ns: String,
    ifname: String,
    /// The bridge it is a port of.
    master: Option<String>,
    /// Addresses, MAC and MTU, from its owner's `interfaces` map.
    settings: Option<&'a Interface>,
    /// What the end is, for its ownership mark.
    object: String,
    /// The MTU its bridge gives it when nothing else does.
    bridge_mtu: Option<u32>,
}

struct Expander<'a> {
    spec: &'a Topology,
    mode: &'a Mode,
    topology: &'a str,
    out: Resources,
}

impl<'a> Expander<'a> {
    fn add(&mut self, ns: &str, kind: Kind, name: impl Into<String>, resource: Resource) {
        self.out.insert(ResourceId::new(ns, kind, name), resource);
    }

    fn placement(&self, explicit: Option<&'a Sp<String>>) -> Option<&'a str> {
        placement(self.spec, explicit)
    }

    fn host_ns(&self, host: Option<&str>) -> Option<String> {
        host_namespace(self.spec, self.mode, host)
    }

    fn is_lab(&self) -> bool {
        *self.mode == Mode::Lab
    }

    /// A namespace netloom creates, with its mark and baseline.
    fn namespace(&mut self, ns: &str, object: &str, sysctls: &[(&str, &str)]) {
        self.add(ns, Kind::Namespace, "", Resource::Namespace);
        self.add(ns, Kind::Up, "lo", Resource::Up { up: true });
        let alias = mark(self.topology, object);
        self.add(ns, Kind::Alias, "lo", Resource::Alias { alias });
        for (key, value) in NAMESPACE_BASELINE.iter().chain(sysctls) {
            let value = value.to_string();
            self.add(ns, Kind::Sysctl, *key, Resource::Sysctl { value });
        }
    }

    /// The marks and state every link netloom creates has.
    fn link_basics(&mut self, ns: &str, ifname: &str, object: &str) {
        let alias = mark(self.topology, object);
        self.add(ns, Kind::Alias, ifname, Resource::Alias { alias });
        self.add(ns, Kind::Up, ifname, Resource::Up { up: true });
    }

    fn addresses(&mut self, ns: &str, ifname: &str, addresses: &[spec::Parsed<spec::IfaceAddr>]) {
        for address in addresses.iter().filter_map(|a| a.ok()) {
            let (name, resource) = Resource::address(ifname, address.0);
            self.add(ns, Kind::Address, name, resource);
        }
    }

    fn routes(&mut self, ns: &str, routes: &[Sp<spec::Route>]) {
        for route in routes {
            let via = route.via.as_ref().and_then(|v| v.ok()).map(|ip| ip.0);
            let to = match route.to.ok() {
                Some(RouteDest::Net(net)) => *net,
                Some(RouteDest::Default) => match via {
                    Some(IpAddr::V4(_)) => IpNet::V4(Default::default()),
                    Some(IpAddr::V6(_)) => IpNet::V6(Default::default()),
                    None => continue,
                },
                None => continue,
            };
            let dev = route.dev.as_ref().map(|d| d.value.clone());
            let metric = route.metric.as_ref().map(|m| m.value);
            let table = route.table.as_ref().map_or(MAIN_TABLE, |t| t.value);
            self.route(ns, to, metric, via, dev, table);
        }
    }

    fn route(
        &mut self,
        ns: &str,
        to: IpNet,
        metric: Option<u32>,
        via: Option<IpAddr>,
        dev: Option<String>,
        table: u32,
    ) {
        // The kernel's defaults, so the id matches what it reports.
        let metric = metric.unwrap_or(match to {
            IpNet::V4(_) => 0,
            IpNet::V6(_) => 1024,
        });
        let route = Route {
            to,
            metric,
            via,
            dev,
            table,
        };
        self.add(
            ns,
            Kind::Route,
            Route::id_name(&to, metric, table),
            Resource::Route(route),
        );
    }

    fn hosts(&mut self) {
        let lab = self.is_lab();
        let underlay_ns = underlay_namespace(self.topology);
        if lab && self.spec.hosts.values().any(|h| h.underlay.is_some()) {
            self.namespace(&underlay_ns, "underlay", &[]);
            self.add(
                &underlay_ns,
                Kind::Link,
                UNDERLAY_BRIDGE,
                Resource::Link(LinkKind::Bridge),
            );
            self.link_basics(&underlay_ns, UNDERLAY_BRIDGE, "underlay");
        }
        for (name, host) in &self.spec.hosts {
            let Some(ns) = self.host_ns(Some(name)) else {
                continue;
            };
            // Forwarding: on by default for an emulated host; on a real
            // host only what the file says.
            let forwarding = host.forwarding.as_ref().map(|f| f.value);
            let forwarding = if lab {
                Some(forwarding.unwrap_or(true))
            } else {
                forwarding
            };
            let value = match forwarding {
                Some(true) => Some("1"),
                Some(false) => Some("0"),
                None => None,
            };
            let sysctls: Vec<(&str, &str)> = value
                .map(|v| FORWARDING_SYSCTLS.iter().map(|key| (*key, v)).collect())
                .unwrap_or_default();
            if lab {
                self.namespace(&ns, &format!("host:{name}"), &sysctls);
            } else {
                for (key, value) in sysctls {
                    let value = value.to_string();
                    self.add(&ns, Kind::Sysctl, key, Resource::Sysctl { value });
                }
            }
            if lab && let Some(underlay) = host.underlay.as_ref().and_then(|u| u.ok()) {
                let ifname = underlay_interface(host);
                let port = derived_ifname(self.topology, name, ifname);
                let host_end = End {
                    ns: ns.clone(),
                    ifname: ifname.to_string(),
                    master: None,
                    settings: None,
                    object: format!("host:{name}:{ifname}"),
                    bridge_mtu: None,
                };
                let switch_end = End {
                    ns: underlay_ns.clone(),
                    ifname: port,
                    master: Some(UNDERLAY_BRIDGE.to_string()),
                    settings: None,
                    object: format!("underlay:{name}"),
                    bridge_mtu: None,
                };
                self.veth(host_end, switch_end, None, None);
                // An IPv6 underlay address is the interface's IPv6 address.
                let enabled = underlay.0.addr().is_ipv6();
                self.add(
                    &ns,
                    Kind::LinkLocal,
                    ifname,
                    Resource::LinkLocal { enabled },
                );
                let (name, address) = Resource::address(ifname, underlay.0);
                self.add(&ns, Kind::Address, name, address);
            }
            self.routes(&ns, &host.routes);
            if self.spec.routing.as_ref().map(|r| r.value) == Some(Routing::HostGw) {
                self.host_gw_routes(&ns, name);
            }
        }
    }

    /// A route on `host` to every other host's pod network, via that
    /// host's underlay address.
    fn host_gw_routes(&mut self, ns: &str, host: &str) {
        let others: Vec<(IpNet, IpAddr)> = self
            .spec
            .hosts
            .iter()
            .filter(|(name, _)| name.as_str() != host)
            .filter_map(|(_, other)| {
                let cidr = other.pod_cidr.as_ref()?.ok()?.0;
                let via = other.underlay.as_ref()?.ok()?.0.addr();
                Some((cidr, via))
            })
            .collect();
        for (cidr, via) in others {
            self.route(ns, cidr, None, Some(via), None, MAIN_TABLE);
        }
    }

    fn bridges(&mut self) {
        for (key, bridge) in &self.spec.bridges {
            let host = self.placement(bridge.host.as_ref());
            let Some(ns) = self.host_ns(host) else {
                continue;
            };
            let ifname = bridge_ifname(key.as_str(), bridge);
            self.add(&ns, Kind::Link, ifname, Resource::Link(LinkKind::Bridge));
            self.link_basics(&ns, ifname, &format!("bridge:{key}"));
            let mac = match bridge.mac.as_ref().and_then(|m| m.ok()) {
                Some(mac) => (*mac).into(),
                None => derived_bridge_mac(self.topology, key),
            };
            self.add(&ns, Kind::Mac, ifname, Resource::Mac { mac });
            if let Some(mtu) = self.bridge_mtu(key) {
                self.add(&ns, Kind::Mtu, ifname, Resource::Mtu { mtu });
            }
            self.addresses(&ns, ifname, &bridge.addresses);
        }
    }

    /// A bridge's MTU: the file's, else the one its overlay needs.
    fn bridge_mtu(&self, key: &str) -> Option<u32> {
        let bridge = self.spec.bridges.get(key)?;
        match &bridge.mtu {
            Some(mtu) => Some(mtu.value),
            None => self.overlay_mtu(key),
        }
    }

    /// For a bridge stretched by an overlay: the underlay MTU minus the
    /// VXLAN overhead, so full-size frames cross without fragmentation.
    fn overlay_mtu(&self, bridge_key: &str) -> Option<u32> {
        self.spec
            .overlays
            .values()
            .any(|o| o.bridges.iter().any(|b| b.as_str() == bridge_key))
            .then_some(())?;
        let bridge = self.spec.bridges.get(bridge_key)?;
        let host = self.spec.hosts.get(self.placement(bridge.host.as_ref())?)?;
        let underlay = host.underlay.as_ref()?.ok()?.0;
        let underlay_mtu = match self.mode {
            Mode::Lab => LAB_UNDERLAY_MTU,
            Mode::Host { underlay_mtu, .. } => (*underlay_mtu)?,
        };
        let overhead = if underlay.addr().is_ipv4() { 50 } else { 70 };
        Some(underlay_mtu.saturating_sub(overhead))
    }

    fn pods(&mut self) {
        for (name, pod) in &self.spec.pods {
            let host = self.placement(pod.host.as_ref());
            let Some(host_ns) = self.host_ns(host) else {
                continue;
            };
            let ns = pod_namespace(name, pod);
            let sysctls: Vec<(&str, &str)> = pod
                .sysctls
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.namespace(ns, &format!("pod:{name}"), &sysctls);
            self.routes(ns, &pod.routes);
            for (ifname, settings) in &pod.interfaces {
                let Some(bridge_key) = &settings.bridge else {
                    continue;
                };
                let Some(bridge) = self.spec.bridges.get(bridge_key.as_str()) else {
                    continue;
                };
                let pod_end = End {
                    ns: ns.to_string(),
                    ifname: ifname.value.clone(),
                    master: None,
                    settings: Some(settings),
                    object: format!("{name}:{ifname}"),
                    bridge_mtu: None,
                };
                let port = derived_ifname(self.topology, name, ifname);
                let bridge_end = End {
                    ns: host_ns.clone(),
                    object: format!("{bridge_key}:{port}"),
                    ifname: port,
                    master: Some(bridge_ifname(bridge_key.as_str(), bridge).to_string()),
                    settings: None,
                    bridge_mtu: self.bridge_mtu(bridge_key),
                };
                self.veth(pod_end, bridge_end, None, None);
            }
        }
    }

    /// Where an endpoint lives, or `None` when it is out of scope.
    fn end(&self, endpoint: &Endpoint) -> Option<End<'a>> {
        let spec = self.spec;
        let object = endpoint.to_string();
        match spec.owner_kind(&endpoint.owner)? {
            OwnerKind::Pod => {
                let (name, pod) = spec.pods.get_key_value(endpoint.owner.as_str())?;
                self.host_ns(self.placement(pod.host.as_ref()))?;
                Some(End {
                    ns: pod_namespace(name, pod).to_string(),
                    ifname: endpoint.ifname.clone(),
                    master: None,
                    settings: pod.interfaces.get(endpoint.ifname.as_str()),
                    object,
                    bridge_mtu: None,
                })
            }
            OwnerKind::Bridge => {
                let (key, bridge) = spec.bridges.get_key_value(endpoint.owner.as_str())?;
                Some(End {
                    ns: self.host_ns(self.placement(bridge.host.as_ref()))?,
                    ifname: endpoint.ifname.clone(),
                    master: Some(bridge_ifname(key.as_str(), bridge).to_string()),
                    settings: None,
                    object,
                    bridge_mtu: self.bridge_mtu(key),
                })
            }
            OwnerKind::Host => {
                let host = spec.hosts.get(endpoint.owner.as_str())?;
                Some(End {
                    ns: self.host_ns(Some(&endpoint.owner))?,
                    ifname: endpoint.ifname.clone(),
                    master: None,
                    settings: host.interfaces.get(endpoint.ifname.as_str()),
                    object,
                    bridge_mtu: None,
                })
            }
        }
    }

    fn links(&mut self) {
        for link in &self.spec.links {
            let ends: Vec<End> = link
                .endpoints
                .iter()
                .filter_map(|e| e.ok())
                .filter_map(|e| self.end(e))
                .collect();
            let Ok([a, b]) = <[End; 2]>::try_from(ends) else {
                continue;
            };
            let mtu = link.mtu.as_ref().map(|m| m.value);
            let rate = link
                .rate
                .as_ref()
                .and_then(|r| r.ok())
                .map(|r| r.bits_per_second);
            self.veth(a, b, mtu, rate);
        }
    }

    /// A veth pair, held by its canonical end, and each end's settings.
    fn veth(&mut self, a: End, b: End, link_mtu: Option<u32>, rate: Option<u64>) {
        let (first, second) = if (&a.ns, &a.ifname) <= (&b.ns, &b.ifname) {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let kind = LinkKind::Veth {
            peer_ns: second.ns.clone(),
            peer: second.ifname.clone(),
        };
        self.add(
            &first.ns,
            Kind::Link,
            first.ifname.clone(),
            Resource::Link(kind),
        );
        // Both ends of a veth get the same MTU (validation rejects two
        // different ones).
        let end_mtu = |end: &End| end.settings.and_then(|s| s.mtu.as_ref()).map(|m| m.value);
        let mtu = link_mtu
            .or_else(|| end_mtu(&a))
            .or_else(|| end_mtu(&b))
            .or(a.bridge_mtu)
            .or(b.bridge_mtu);
        for end in [&a, &b] {
            let (ns, ifname) = (end.ns.as_str(), end.ifname.as_str());
            self.link_basics(ns, ifname, &end.object);
            if let Some(mtu) = mtu {
                self.add(ns, Kind::Mtu, ifname, Resource::Mtu { mtu });
            }
            if let Some(master) = &end.master {
                let master = master.clone();
                self.add(ns, Kind::Master, ifname, Resource::Master { master });
            }
            if let Some(rate_bits_per_second) = rate {
                self.add(
                    ns,
                    Kind::Qdisc,
                    ifname,
                    Resource::Qdisc {
                        rate_bits_per_second,
                    },
                );
            }
            if end.master.is_none() {
                let enabled = end.settings.is_some_and(wants_link_local);
                self.add(ns, Kind::LinkLocal, ifname, Resource::LinkLocal { enabled });
            }
            if let Some(settings) = end.settings {
                if let Some(mac) = settings.mac.as_ref().and_then(|m| m.ok()) {
                    self.add(ns, Kind::Mac, ifname, Resource::Mac { mac: (*mac).into() });
                }
                self.addresses(ns, ifname, &settings.addresses);
            }
        }
    }

    fn overlays(&mut self) {
        for (name, overlay) in &self.spec.overlays {
            // Every member's host and underlay address.
            let members: Vec<(&str, &str, IpAddr)> = overlay
                .bridges
                .iter()
                .filter_map(|key| {
                    let bridge = self.spec.bridges.get(key.as_str())?;
                    let host_name = self.placement(bridge.host.as_ref())?;
                    let host = self.spec.hosts.get(host_name)?;
                    let local = host.underlay.as_ref()?.ok()?.0.addr();
                    Some((key.as_str(), host_name, local))
                })
                .collect();
            let port = overlay
                .port
                .as_ref()
                .map_or(DEFAULT_VXLAN_PORT, |p| p.value);
            for &(bridge_key, host_name, local) in &members {
                let Some(ns) = self.host_ns(Some(host_name)) else {
                    continue;
                };
                let host = &self.spec.hosts[host_name];
                let bridge = &self.spec.bridges[bridge_key];
                let vxlan = Vxlan {
                    vni: overlay.vni.value,
                    port,
                    local,
                    underlay: underlay_interface(host).to_string(),
                };
                let ifname = name.as_str();
                self.add(
                    &ns,
                    Kind::Link,
                    ifname,
                    Resource::Link(LinkKind::Vxlan(vxlan)),
                );
                self.link_basics(&ns, ifname, &format!("overlay:{name}@{host_name}"));
                let master = bridge_ifname(bridge_key, bridge).to_string();
                self.add(&ns, Kind::Master, ifname, Resource::Master { master });
                if let Some(mtu) = self.overlay_mtu(bridge_key) {
                    self.add(&ns, Kind::Mtu, ifname, Resource::Mtu { mtu });
                }
                for &(_, other_host, dst) in &members {
                    if other_host != host_name {
                        let fdb = Resource::Fdb {
                            ifname: ifname.to_string(),
                            dst,
                        };
                        self.add(&ns, Kind::Fdb, format!("{ifname} {dst}"), fdb);
                    }
                }
            }
        }
    }
}

/// Whether an interface gets an IPv6 link-local address: as the file
/// says, else only if it has an IPv6 address (a bridge port never does:
/// see `kernel::link::LinkChange::Port`).
fn wants_link_local(settings: &Interface) -> bool {
    settings.ipv6_link_local.as_ref().map_or_else(
        || {
            settings
                .addresses
                .iter()
                .filter_map(|a| a.ok())
                .any(|a| a.0.addr().is_ipv6())
        },
        |explicit| explicit.value,
    )
}

/// A bridge's interface name: its `ifname`, else its key.
/// The host an object is placed on: its `host:`, or the only host.
pub fn placement<'s>(spec: &'s Topology, explicit: Option<&'s Sp<String>>) -> Option<&'s str> {
    match explicit {
        Some(host) => Some(host.as_str()),
        None if spec.hosts.len() == 1 => spec.hosts.keys().next().map(|h| h.as_str()),
        None => None,
    }
}

/// The namespace that stands for a host in a mode, or `None` when the host
/// is out of scope (host mode, another machine). No host: this machine.
pub fn host_namespace(spec: &Topology, mode: &Mode, host: Option<&str>) -> Option<String> {
    match (host, mode) {
        // Without hosts, the machine itself; with hosts, an object that
        // names none is nowhere (validation rejects it).
        (None, _) if spec.hosts.is_empty() => Some(String::new()),
        (None, _) => None,
        (Some(host), Mode::Lab) => Some(host.to_string()),
        (Some(host), Mode::Host { name, .. }) => (host == name).then(String::new),
    }
}

pub fn bridge_ifname<'s>(key: &'s str, bridge: &'s spec::Bridge) -> &'s str {
    bridge.ifname.as_ref().map_or(key, |i| i.as_str())
}

/// A pod's namespace name: its `netns`, else its name.
pub fn pod_namespace<'s>(name: &'s Sp<String>, pod: &'s spec::Pod) -> &'s str {
    pod.netns.as_ref().map_or(name.as_str(), |n| n.as_str())
}

/// A host's underlay interface name.
pub fn underlay_interface(host: &spec::Host) -> &str {
    host.underlay_interface
        .as_ref()
        .map_or(DEFAULT_UNDERLAY_INTERFACE, |i| i.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::SourceFile;

    fn desired(text: &str, mode: &Mode) -> Vec<String> {
        let spec = crate::load::parse(&SourceFile::new("t.yaml", text)).expect("parses");
        expand(&spec, mode)
            .resources
            .iter()
            .map(|(id, r)| format!("{id} = {}", r.describe()))
            .collect()
    }

    #[test]
    fn seed_expands_to_the_walkthrough() {
        let text = std::fs::read_to_string("examples/seed.yaml").unwrap();
        insta::assert_snapshot!(desired(&text, &Mode::Lab).join("\n"));
    }

    #[test]
    fn bridge_shorthand_derives_the_port_name() {
        let text = "name: t\nbridges:\n  br0: {}\npods:\n  web:\n    interfaces:\n      eth0: { bridge: br0, mtu: 9000 }\n";
        let lines = desired(text, &Mode::Lab);
        let port = derived_ifname("t", "web", "eth0");
        assert!(
            lines.contains(&format!(
                "link {port} in this machine's namespace = veth, peer web/eth0"
            )),
            "{lines:#?}"
        );
        assert!(lines.contains(&format!("master {port} in this machine's namespace = br0")));
        assert!(lines.contains(&format!("mtu {port} in this machine's namespace = 9000")));
        assert!(lines.contains(&"mtu web/eth0 = 9000".to_string()));
    }

    #[test]
    fn lab_hosts_are_namespaces_on_an_underlay_switch() {
        let text = "name: k\nrouting: host-gw\nhosts:\n  n1: { underlay: 192.168.100.11/24, pod_cidr: 10.244.1.0/24 }\n  n2: { underlay: 192.168.100.12/24, pod_cidr: 10.244.2.0/24 }\n";
        let lines = desired(text, &Mode::Lab);
        for expected in [
            "namespace k-underlay = namespace",
            "link k-underlay/underlay = bridge",
            "namespace n1 = namespace",
            "sysctl n1/net.ipv4.ip_forward = 1",
            "address n1/eth0 192.168.100.11 = 192.168.100.11/24",
            "route n1/10.244.2.0/24 metric 0 = 10.244.2.0/24 via 192.168.100.12 metric 0",
            "route n2/10.244.1.0/24 metric 0 = 10.244.1.0/24 via 192.168.100.11 metric 0",
        ] {
            assert!(
                lines.contains(&expected.to_string()),
                "missing {expected}: {lines:#?}"
            );
        }
    }

    #[test]
    fn host_mode_keeps_only_this_host_and_sets_no_sysctl_unasked() {
        let text = "name: k\nrouting: host-gw\nhosts:\n  n1: { underlay: 192.168.100.11/24, pod_cidr: 10.244.1.0/24 }\n  n2: { underlay: 192.168.100.12/24, pod_cidr: 10.244.2.0/24 }\nbridges:\n  b1: { host: n1, ifname: cbr0 }\n  b2: { host: n2, ifname: cbr0 }\n";
        let mode = Mode::Host {
            name: "n1".to_string(),
            underlay_mtu: Some(1500),
        };
        let lines = desired(text, &mode);
        assert!(
            lines.contains(&"link cbr0 in this machine's namespace = bridge".to_string()),
            "{lines:#?}"
        );
        assert!(
            lines.contains(
                &"route 10.244.2.0/24 metric 0 in this machine's namespace = 10.244.2.0/24 via 192.168.100.12 metric 0"
                    .to_string()
            )
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("namespace") || l.contains("sysctl") || l.contains("eth0")),
            "{lines:#?}"
        );
    }

    #[test]
    fn overlays_get_vxlan_flood_entries_and_a_smaller_mtu() {
        let text = "name: v\nhosts:\n  n1: { underlay: 192.168.100.11/24 }\n  n2: { underlay: 192.168.100.12/24 }\nbridges:\n  b1: { host: n1, ifname: br0 }\n  b2: { host: n2, ifname: br0 }\npods:\n  a: { host: n1, interfaces: { eth0: { bridge: b1 } } }\noverlays:\n  vx42: { vni: 42, bridges: [b1, b2] }\n";
        let lines = desired(text, &Mode::Lab);
        for expected in [
            "link n1/vx42 = vxlan vni 42 port 4789 local 192.168.100.11 dev eth0",
            "master n1/vx42 = br0",
            "mtu n1/vx42 = 1450",
            "mtu n1/br0 = 1450",
            "mtu a/eth0 = 1450",
            "fdb n1/vx42 192.168.100.12 = 00:00:00:00:00:00 dst 192.168.100.12",
            "fdb n2/vx42 192.168.100.11 = 00:00:00:00:00:00 dst 192.168.100.11",
        ] {
            assert!(
                lines.contains(&expected.to_string()),
                "missing {expected}: {lines:#?}"
            );
        }
    }

    /// A VXLAN device's MTU is always declared (its underlay's minus the
    /// overhead, 50 over IPv4 and 70 over IPv6), whatever the file sets:
    /// it is never left to the kernel, so it never needs putting back
    /// (engine::restore).
    #[test]
    fn every_vxlan_device_has_its_mtu_declared() {
        let text = "name: v\nhosts:\n  n1: { underlay: U1 }\n  n2: { underlay: U2 }\nbridges:\n  b1: { host: n1, ifname: br0, mtu: 9000 }\n  b2: { host: n2, ifname: br0 }\noverlays:\n  vx42: { vni: 42, bridges: [b1, b2] }\n";
        let host = |underlay_mtu| Mode::Host {
            name: "n1".to_string(),
            underlay_mtu: Some(underlay_mtu),
        };
        for (underlays, mode, mtu) in [
            (("192.168.100.11/24", "192.168.100.12/24"), Mode::Lab, 1450),
            (("fd00::11/64", "fd00::12/64"), Mode::Lab, 1430),
            (("192.168.100.11/24", "192.168.100.12/24"), host(9000), 8950),
            (("fd00::11/64", "fd00::12/64"), host(1500), 1430),
        ] {
            let text = text.replace("U1", underlays.0).replace("U2", underlays.1);
            let lines = desired(&text, &mode);
            let expected = match mode {
                Mode::Lab => format!("mtu n1/vx42 = {mtu}"),
                Mode::Host { .. } => format!("mtu vx42 in this machine's namespace = {mtu}"),
            };
            assert!(lines.contains(&expected), "{mode:?}: {lines:#?}");
        }
    }
}

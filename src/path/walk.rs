//! The walk itself: routed hops (one route lookup per namespace) joined by
//! segment crossings (veth, bridge, VXLAN) to the interface that owns the
//! next hop.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{Death, End, Hop, PathKernel, PathReport, Walk};
use crate::model::Mac;
use crate::model::live::{
    InterfaceKind, LiveInterface, Neighbour, NeighbourState, RouteAnswer, RouteKind, RouteQuery,
    RouteRefusal,
};

/// More routed hops than any topology has: the packet loops.
const MAX_ROUTED_HOPS: usize = 32;

/// Walks a packet from `walk.from` to `walk.to` through what `kernel` reads.
pub async fn walk<K: PathKernel>(kernel: &K, walk: &Walk) -> Result<PathReport, K::Error> {
    let mut walker = Walker {
        kernel,
        walk,
        interfaces: HashMap::new(),
        hops: Vec::new(),
    };
    let end = walker.routed().await?;
    Ok(PathReport {
        hops: walker.hops,
        end,
    })
}

struct Walker<'a, K> {
    kernel: &'a K,
    walk: &'a Walk,
    /// Each namespace's interfaces, read once.
    interfaces: HashMap<String, Vec<LiveInterface>>,
    hops: Vec<Hop>,
}

/// Where a frame goes on a segment: the next hop's address and, when the
/// sender's neighbour table has it, its MAC.
#[derive(Clone, Copy, Debug)]
struct Frame {
    ip: IpAddr,
    mac: Option<Mac>,
}

/// Where a frame is while it crosses a segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Position {
    /// Sent out of an interface.
    Out { ns: String, index: u32 },
    /// Received by an interface.
    In { ns: String, index: u32 },
    /// In a bridge, having come in by port `ingress` (`None`: sent by the
    /// bridge's own namespace).
    Bridge {
        ns: String,
        bridge: u32,
        ingress: Option<u32>,
    },
}

/// How a segment crossing ends.
enum Crossing {
    /// The interface that owns the next hop.
    Reached {
        ns: String,
        index: u32,
    },
    Leaves(End),
    Dead {
        ns: String,
        death: Death,
    },
}

fn owns_ip(interface: &LiveInterface, ip: IpAddr) -> bool {
    interface.addresses.iter().any(|a| a.addr() == ip)
}

fn owns(interface: &LiveInterface, frame: Frame) -> bool {
    match frame.mac {
        Some(mac) => interface.mac == Some(mac),
        None => owns_ip(interface, frame.ip),
    }
}

fn forwarding_key(dst: IpAddr) -> &'static str {
    if dst.is_ipv4() {
        "net.ipv4.ip_forward"
    } else {
        "net.ipv6.conf.all.forwarding"
    }
}

/// `route default via 10.244.1.1 dev eth0`, as the kernel matched it.
fn describe_route(answer: &RouteAnswer, out: &LiveInterface, dst: IpAddr) -> String {
    let matched = match answer.matched {
        Some(net) if net.prefix_len() == 0 => "default".to_string(),
        Some(net) => net.to_string(),
        None => dst.to_string(),
    };
    let mut text = format!("route {matched}");
    if let Some(gateway) = answer.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    text.push_str(&format!(" dev {}", out.name));
    text
}

/// What a frame is looked for by, in messages.
fn frame_label(frame: Frame) -> String {
    match frame.mac {
        Some(mac) => format!("{mac} ({})", frame.ip),
        None => frame.ip.to_string(),
    }
}

impl<K: PathKernel> Walker<'_, K> {
    fn node(&self, ns: &str) -> String {
        match self.walk.places.iter().find(|p| p.ns == ns) {
            Some(place) => place.node.clone(),
            None if ns.is_empty() => "this machine".to_string(),
            None => ns.to_string(),
        }
    }

    fn hop(
        &self,
        ns: &str,
        in_interface: Option<String>,
        out_interface: Option<String>,
        address: Option<IpAddr>,
        decision: String,
    ) -> Hop {
        Hop {
            namespace: ns.to_string(),
            node: self.node(ns),
            in_interface,
            out_interface,
            address,
            decision,
        }
    }

    fn delivered(&self, ns: &str) -> End {
        End::Delivered {
            namespace: ns.to_string(),
            node: self.node(ns),
        }
    }

    /// Ends the walk in `ns`: a last hop that says so, and the end.
    fn dies(&mut self, ns: &str, in_interface: Option<String>, death: Death) -> End {
        let hop = self.hop(ns, in_interface, None, None, format!("dropped: {death}"));
        self.hops.push(hop);
        End::Dies {
            namespace: ns.to_string(),
            node: self.node(ns),
            reason: death,
        }
    }

    async fn interfaces(&mut self, ns: &str) -> Result<Vec<LiveInterface>, K::Error> {
        if let Some(known) = self.interfaces.get(ns) {
            return Ok(known.clone());
        }
        let read = self.kernel.interfaces(ns).await?;
        self.interfaces.insert(ns.to_string(), read.clone());
        Ok(read)
    }

    async fn interface(&mut self, ns: &str, index: u32) -> Result<Option<LiveInterface>, K::Error> {
        Ok(self
            .interfaces(ns)
            .await?
            .into_iter()
            .find(|i| i.index == index))
    }

    /// Routed hops until the packet is delivered, leaves or dies.
    async fn routed(&mut self) -> Result<End, K::Error> {
        let dst = self.walk.to;
        let mut ns = self.walk.from.clone();
        let mut arrived: Option<u32> = None;
        let mut src: Option<IpAddr> = None;
        for _ in 0..MAX_ROUTED_HOPS {
            let interfaces = self.interfaces(&ns).await?;
            let name_of = |index: u32| {
                interfaces
                    .iter()
                    .find(|i| i.index == index)
                    .map(|i| i.name.clone())
            };
            let in_name = arrived.and_then(name_of);
            if arrived.is_some() {
                if interfaces.iter().any(|i| owns_ip(i, dst)) {
                    let hop = self.hop(
                        &ns,
                        in_name,
                        None,
                        Some(dst),
                        format!("{dst} is an address here: delivered"),
                    );
                    self.hops.push(hop);
                    return Ok(self.delivered(&ns));
                }
                let key = forwarding_key(dst);
                let forwarding = self.kernel.sysctl(&ns, key).await?;
                if forwarding.as_deref().map(str::trim) != Some("1") {
                    let key = key.to_string();
                    return Ok(self.dies(&ns, in_name, Death::ForwardingOff { key }));
                }
            }
            let query = RouteQuery {
                dst,
                src,
                iif: arrived,
            };
            let answer = match self.kernel.route(&ns, query).await? {
                Ok(answer) => answer,
                Err(refusal) => {
                    let death = match refusal {
                        RouteRefusal::NoRoute => Death::NoRoute { to: dst },
                        RouteRefusal::NotForwarded => Death::ForwardingOff {
                            key: forwarding_key(dst).to_string(),
                        },
                        RouteRefusal::ReversePathFiltered => Death::ReversePathFiltered {
                            interface: in_name.clone().unwrap_or_default(),
                        },
                        RouteRefusal::Invalid => Death::Refused {
                            detail: "invalid source or destination".to_string(),
                        },
                        RouteRefusal::Other(detail) => Death::Refused { detail },
                    };
                    return Ok(self.dies(&ns, in_name, death));
                }
            };
            match answer.kind {
                RouteKind::Unicast => {}
                RouteKind::Local => {
                    let hop = self.hop(
                        &ns,
                        in_name,
                        None,
                        Some(dst),
                        "local route: delivered".to_string(),
                    );
                    self.hops.push(hop);
                    return Ok(self.delivered(&ns));
                }
                kind => return Ok(self.dies(&ns, in_name, Death::DroppingRoute { kind })),
            }
            let out = answer
                .oif
                .and_then(|oif| interfaces.iter().find(|i| i.index == oif))
                .cloned();
            let Some(out) = out else {
                let detail = "the route names no interface of this namespace".to_string();
                return Ok(self.dies(&ns, in_name, Death::Refused { detail }));
            };
            if src.is_none() {
                src = answer.source.or_else(|| {
                    out.addresses
                        .iter()
                        .map(|a| a.addr())
                        .find(|a| a.is_ipv4() == dst.is_ipv4())
                });
            }
            if !out.up {
                let interface = out.name.clone();
                return Ok(self.dies(&ns, in_name, Death::InterfaceDown { interface }));
            }
            if !out.carrier {
                let interface = out.name.clone();
                return Ok(self.dies(&ns, in_name, Death::NoCarrier { interface }));
            }
            let next = answer.gateway.unwrap_or(dst);
            let route = describe_route(&answer, &out, dst);
            let neighbour = self.kernel.neighbour(&ns, out.index, next).await?;
            let (mac, neighbour_text) = match neighbour {
                Some(Neighbour {
                    state: NeighbourState::Usable,
                    mac: Some(mac),
                }) => (Some(mac), format!("neighbour {next} is {mac}")),
                Some(Neighbour {
                    state: NeighbourState::Failed,
                    ..
                }) => {
                    let interface = out.name.clone();
                    return Ok(self.dies(
                        &ns,
                        in_name,
                        Death::NoNeighbour {
                            ip: next,
                            interface,
                        },
                    ));
                }
                _ => (None, format!("{next} not in the neighbour table yet")),
            };
            let address = if arrived.is_none() { src } else { None };
            let hop = self.hop(
                &ns,
                in_name,
                Some(out.name.clone()),
                address,
                format!("{route}; {neighbour_text}"),
            );
            self.hops.push(hop);
            match self.cross(&ns, &out, Frame { ip: next, mac }).await? {
                Crossing::Reached { ns: next_ns, index } => {
                    ns = next_ns;
                    arrived = Some(index);
                }
                Crossing::Leaves(end) => return Ok(end),
                Crossing::Dead { ns: dead_ns, death } => {
                    return Ok(End::Dies {
                        node: self.node(&dead_ns),
                        namespace: dead_ns,
                        reason: death,
                    });
                }
            }
        }
        Ok(self.dies(&ns, None, Death::Loop))
    }

    /// Carries a frame sent out of `out` across its segment to the
    /// interface that owns the next hop: a search, since a bridge that has
    /// not learnt the MAC floods (as the ARP request for it would be). The
    /// hops of the way that reached it are added to the walk.
    async fn cross(
        &mut self,
        origin: &str,
        out: &LiveInterface,
        frame: Frame,
    ) -> Result<Crossing, K::Error> {
        let start = Position::Out {
            ns: origin.to_string(),
            index: out.index,
        };
        let mut pending: Vec<(Position, Vec<Hop>)> = vec![(start, Vec::new())];
        let mut seen = HashSet::new();
        let mut dead_ends: Vec<(String, Death, Vec<Hop>)> = Vec::new();
        let mut leaving: Option<(End, Vec<Hop>)> = None;
        let candidates: Vec<String> = self.walk.places.iter().map(|p| p.ns.clone()).collect();
        while let Some((position, trail)) = pending.pop() {
            if !seen.insert(position.clone()) {
                continue;
            }
            match position {
                Position::Out { ns, index } => {
                    let Some(interface) = self.interface(&ns, index).await? else {
                        continue;
                    };
                    if !interface.up {
                        let death = Death::InterfaceDown {
                            interface: interface.name.clone(),
                        };
                        dead_ends.push((ns, death, trail));
                        continue;
                    }
                    match &interface.kind {
                        InterfaceKind::Veth {
                            peer_index,
                            peer_netnsid,
                        } => {
                            let peer_ns = self
                                .kernel
                                .peer_namespace(&ns, *peer_netnsid, &candidates)
                                .await?;
                            match peer_ns {
                                Some(peer_ns) => pending.push((
                                    Position::In {
                                        ns: peer_ns,
                                        index: *peer_index,
                                    },
                                    trail,
                                )),
                                None => {
                                    let interface = interface.name.clone();
                                    dead_ends.push((ns, Death::UnknownPeer { interface }, trail));
                                }
                            }
                        }
                        InterfaceKind::Bridge => pending.push((
                            Position::Bridge {
                                ns,
                                bridge: index,
                                ingress: None,
                            },
                            trail,
                        )),
                        InterfaceKind::Vxlan { vni, port, local } => {
                            let (vni, port, local) = (*vni, *port, *local);
                            self.tunnel(
                                &ns,
                                &interface,
                                vni,
                                port,
                                local,
                                frame,
                                trail,
                                &mut pending,
                                &mut dead_ends,
                                &mut leaving,
                            )
                            .await?;
                        }
                        InterfaceKind::Device if interface.name != "lo" => {
                            // A real interface: the packet leaves this machine.
                            let end = End::Leaves {
                                interface: interface.name.clone(),
                                towards: frame.ip,
                                host: self.remote_host(frame.ip),
                            };
                            leaving.get_or_insert((end, trail));
                        }
                        InterfaceKind::Device => {}
                        InterfaceKind::Other(kind) => {
                            let death = Death::Unsupported {
                                interface: interface.name.clone(),
                                kind: kind.clone(),
                            };
                            dead_ends.push((ns, death, trail));
                        }
                    }
                }
                Position::In { ns, index } => {
                    let Some(interface) = self.interface(&ns, index).await? else {
                        continue;
                    };
                    if owns(&interface, frame) {
                        if !interface.up {
                            let death = Death::InterfaceDown {
                                interface: interface.name.clone(),
                            };
                            dead_ends.push((ns, death, trail));
                            continue;
                        }
                        self.hops.extend(trail);
                        return Ok(Crossing::Reached { ns, index });
                    }
                    if let (true, Some(bridge)) = (interface.up, interface.master) {
                        let ingress = Some(index);
                        pending.push((
                            Position::Bridge {
                                ns,
                                bridge,
                                ingress,
                            },
                            trail,
                        ));
                    }
                }
                Position::Bridge {
                    ns,
                    bridge,
                    ingress,
                } => {
                    let interfaces = self.interfaces(&ns).await?;
                    let Some(bridge_interface) = interfaces.iter().find(|i| i.index == bridge)
                    else {
                        continue;
                    };
                    let name = bridge_interface.name.clone();
                    let in_name = ingress.and_then(|ingress| {
                        interfaces
                            .iter()
                            .find(|i| i.index == ingress)
                            .map(|i| i.name.clone())
                    });
                    let step = |out: &str, decision: String| {
                        let mut trail = trail.clone();
                        trail.push(self.hop(
                            &ns,
                            in_name.clone(),
                            Some(out.to_string()),
                            None,
                            decision,
                        ));
                        trail
                    };
                    if !bridge_interface.up {
                        dead_ends.push((
                            ns.clone(),
                            Death::InterfaceDown { interface: name },
                            trail,
                        ));
                        continue;
                    }
                    let port = match frame.mac {
                        Some(mac) => self.kernel.bridge_port(&ns, bridge, mac).await?,
                        None => None,
                    };
                    if owns(bridge_interface, frame) || port == Some(bridge) {
                        let decision =
                            format!("bridge {name}: {} is the bridge's own", frame_label(frame));
                        self.hops.extend(step(&name, decision));
                        return Ok(Crossing::Reached { ns, index: bridge });
                    }
                    let on_port = |index: u32| interfaces.iter().find(|i| i.index == index);
                    match port.and_then(on_port) {
                        Some(port) => {
                            let decision = format!(
                                "bridge {name}: fdb has {} on port {}",
                                frame_label(frame),
                                port.name
                            );
                            let trail = step(&port.name, decision);
                            let index = port.index;
                            pending.push((
                                Position::Out {
                                    ns: ns.clone(),
                                    index,
                                },
                                trail,
                            ));
                        }
                        None => {
                            // A bridge floods to every port but the one the
                            // frame came in by (a port that is down takes none).
                            let ports = interfaces.iter().filter(|i| {
                                i.master == Some(bridge) && i.up && Some(i.index) != ingress
                            });
                            for port in ports {
                                let decision = format!(
                                    "bridge {name}: {} not in the fdb, flooded: on port {}",
                                    frame_label(frame),
                                    port.name
                                );
                                let trail = step(&port.name, decision);
                                let index = port.index;
                                pending.push((
                                    Position::Out {
                                        ns: ns.clone(),
                                        index,
                                    },
                                    trail,
                                ));
                            }
                        }
                    }
                }
            }
        }
        if let Some((end, trail)) = leaving {
            self.hops.extend(trail);
            return Ok(Crossing::Leaves(end));
        }
        // Where the frame could only go one way, or the interface that has
        // the address is down: say so.
        if !dead_ends.is_empty() {
            let (ns, death, trail) = dead_ends.remove(0);
            self.hops.extend(trail);
            return Ok(Crossing::Dead { ns, death });
        }
        Ok(Crossing::Dead {
            ns: origin.to_string(),
            death: Death::NoNeighbour {
                ip: frame.ip,
                interface: out.name.clone(),
            },
        })
    }

    /// A frame sent out of a VXLAN device: to the remote VTEPs its fdb
    /// names, each the VXLAN device (same VNI and port) of the host that
    /// owns that underlay address; a VTEP on no namespace here is the
    /// packet leaving the machine.
    #[allow(clippy::too_many_arguments)]
    async fn tunnel(
        &mut self,
        ns: &str,
        vxlan: &LiveInterface,
        vni: u32,
        port: u16,
        local: Option<IpAddr>,
        frame: Frame,
        trail: Vec<Hop>,
        pending: &mut Vec<(Position, Vec<Hop>)>,
        dead_ends: &mut Vec<(String, Death, Vec<Hop>)>,
        leaving: &mut Option<(End, Vec<Hop>)>,
    ) -> Result<(), K::Error> {
        let (by_mac, remotes) = self
            .kernel
            .vxlan_remotes(ns, vxlan.index, frame.mac)
            .await?;
        if remotes.is_empty() {
            let death = Death::NoNeighbour {
                ip: frame.ip,
                interface: vxlan.name.clone(),
            };
            dead_ends.push((ns.to_string(), death, trail));
            return Ok(());
        }
        let entry = match (by_mac, frame.mac) {
            (true, Some(mac)) => format!("fdb entry {mac}"),
            _ => "flood entry 00:00:00:00:00:00".to_string(),
        };
        let places: Vec<String> = self.walk.places.iter().map(|p| p.ns.clone()).collect();
        for remote in remotes {
            // The encapsulated packet needs an underlay route to the VTEP.
            let query = RouteQuery {
                dst: remote,
                src: local,
                iif: None,
            };
            if self.kernel.route(ns, query).await?.is_err() {
                dead_ends.push((ns.to_string(), Death::NoRoute { to: remote }, trail.clone()));
                continue;
            }
            let mut found = None;
            for place in places.iter().filter(|p| p.as_str() != ns) {
                let interfaces = self.interfaces(place).await?;
                if !interfaces.iter().any(|i| owns_ip(i, remote)) {
                    continue;
                }
                let device = interfaces.iter().find(|i| {
                    matches!(i.kind, InterfaceKind::Vxlan { vni: v, port: p, .. } if v == vni && p == port)
                });
                found = device.map(|d| (place.clone(), d.index));
                break;
            }
            let mut trail = trail.clone();
            match found {
                Some((remote_ns, index)) => {
                    let decision = format!(
                        "vxlan {} (vni {vni}): {entry} dst {remote}, {}",
                        vxlan.name,
                        self.node(&remote_ns)
                    );
                    trail.push(self.hop(ns, None, Some(vxlan.name.clone()), None, decision));
                    pending.push((
                        Position::In {
                            ns: remote_ns,
                            index,
                        },
                        trail,
                    ));
                }
                None => {
                    let end = End::Leaves {
                        interface: vxlan.name.clone(),
                        towards: remote,
                        host: self.remote_host(remote),
                    };
                    leaving.get_or_insert((end, trail));
                }
            }
        }
        Ok(())
    }

    fn remote_host(&self, ip: IpAddr) -> Option<String> {
        self.walk
            .remote_hosts
            .iter()
            .find(|h| h.underlay == ip)
            .map(|h| h.name.clone())
    }
}

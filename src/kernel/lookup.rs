//! Reads for `netloom path`: the kernel's own route lookup for one packet,
//! interfaces with their state, neighbours, bridge and VXLAN forwarding
//! databases, sysctls, and which namespace a veth's peer is in. Read only.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_core::NLM_F_REQUEST;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkFlags, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState as Nud},
    route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteType},
};
use rtnetlink::Handle;

use super::error::{Context, Result};
use super::fdb::{self, FLOOD_MAC};
use super::link::{self, LinkKind};
use super::{Kernel, addr, namespace_label, netlink::request, nsid, sysctl};
use crate::model::Mac;
use crate::model::live::{
    InterfaceKind, LiveInterface, Neighbour, NeighbourState, RouteAnswer, RouteKind, RouteQuery,
    RouteRefusal,
};

impl Kernel {
    /// The kernel's route lookup for one packet in namespace `ns`, like `ip
    /// route get`: RTM_GETROUTE (not a dump) for the destination, with the
    /// source the packet has and, for an arriving packet, the interface it
    /// came in by (the kernel then applies forwarding and rp_filter). A
    /// second lookup with RTM_F_FIB_MATCH names the table entry that matched.
    pub async fn route_get(
        &self,
        ns: &str,
        query: RouteQuery,
    ) -> Result<std::result::Result<RouteAnswer, RouteRefusal>> {
        let handle = self.handle(ns).await?;
        let describe = || {
            format!(
                "look up the route to {} in {}",
                query.dst,
                namespace_label(ns)
            )
        };
        let answer = match lookup(&handle, query, RouteFlags::empty()).await {
            Ok(Some(message)) => message,
            Ok(None) => return Err(no_answer()).op(describe),
            Err(rtnetlink::Error::NetlinkError(err)) => {
                return Ok(Err(refusal(-err.raw_code(), query)));
            }
            Err(err) => return Err(err).op(describe),
        };
        let mut answer = decode_answer(&answer);
        if let Ok(Some(entry)) = lookup(&handle, query, RouteFlags::FibMatch).await {
            let entry = decode_answer(&entry);
            answer.matched = entry.matched;
            answer.protocol = entry.protocol;
        }
        Ok(Ok(answer))
    }

    /// Every interface of `ns` with its state and addresses.
    pub async fn live_interfaces(&self, ns: &str) -> Result<Vec<LiveInterface>> {
        let handle = self.handle(ns).await?;
        let messages: Vec<LinkMessage> = handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .op(|| format!("dump links in {}", namespace_label(ns)))?;
        let addresses = addr::dump_addresses(&handle).await?;
        Ok(messages
            .iter()
            .map(|message| {
                let link = link::decode_link(message);
                LiveInterface {
                    index: link.index,
                    kind: interface_kind(&link),
                    up: link.up,
                    carrier: message.header.flags.contains(LinkFlags::LowerUp),
                    mac: link.mac,
                    master: link.master,
                    addresses: addresses
                        .iter()
                        .filter(|a| a.index == link.index)
                        .filter_map(|a| ipnet::IpNet::new(a.ip, a.prefix_len).ok())
                        .collect(),
                    name: link.name,
                }
            })
            .collect())
    }

    /// The neighbour entry for `ip` on interface `index` of `ns`, if any.
    pub async fn neighbour(&self, ns: &str, index: u32, ip: IpAddr) -> Result<Option<Neighbour>> {
        let handle = self.handle(ns).await?;
        let family = if ip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let messages: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .op(|| format!("dump neighbours in {}", namespace_label(ns)))?;
        Ok(messages
            .iter()
            .filter(|m| m.header.ifindex == index && destination(m) == Some(ip))
            .map(|m| Neighbour {
                mac: link_layer_address(m),
                state: match m.header.state {
                    Nud::Incomplete => NeighbourState::Incomplete,
                    Nud::Failed => NeighbourState::Failed,
                    _ => NeighbourState::Usable,
                },
            })
            .next())
    }

    /// The port (ifindex) of bridge `bridge` in `ns` whose forwarding
    /// database has `mac`: the bridge's own index for one of its own MACs,
    /// `None` when it has not learnt it (the frame is flooded).
    pub async fn bridge_port(&self, ns: &str, bridge: u32, mac: Mac) -> Result<Option<u32>> {
        let handle = self.handle(ns).await?;
        let mut dump = handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge);
        // NDA_MASTER: the entries of this bridge only (filtered by the
        // kernel under strict checking, like `bridge fdb show br DEV`).
        dump.message_mut()
            .attributes
            .push(NeighbourAttribute::Controller(bridge));
        let messages: Vec<NeighbourMessage> = dump
            .execute()
            .try_collect()
            .await
            .op(|| format!("dump the fdb of bridge ifindex {bridge}"))?;
        Ok(messages
            .iter()
            .find(|m| link_layer_address(m) == Some(mac))
            .map(|m| m.header.ifindex))
    }

    /// The remote VTEPs VXLAN device `vxlan` of `ns` sends a frame for
    /// `mac` to: the entry for that MAC (learnt or configured), else the
    /// flood entries (all-zero MAC). The flag says whether a MAC entry was found.
    pub async fn vxlan_remotes(
        &self,
        ns: &str,
        vxlan: u32,
        mac: Option<Mac>,
    ) -> Result<(bool, Vec<IpAddr>)> {
        let handle = self.handle(ns).await?;
        let entries = fdb::dump_fdb(&handle, vxlan).await?;
        let remotes_of = |wanted: Mac| -> Vec<IpAddr> {
            entries
                .iter()
                .filter(|e| e.mac == wanted)
                .filter_map(|e| e.dst)
                .collect()
        };
        if let Some(mac) = mac {
            let learnt = remotes_of(mac);
            if !learnt.is_empty() {
                return Ok((true, learnt));
            }
        }
        Ok((false, remotes_of(FLOOD_MAC)))
    }

    /// A `net.*` sysctl of `ns` (`None`: the kernel has no such key).
    pub async fn read_sysctl(&self, ns: &str, key: &str) -> Result<Option<String>> {
        let keys = vec![key.to_string()];
        let values = self
            .run_in(ns, move || sysctl::read_here(&keys))
            .await
            .op(|| format!("read {key} in {}", namespace_label(ns)))?;
        Ok(values.into_iter().next().and_then(|(_, value)| value))
    }

    /// The namespace, among `candidates`, that `ns` calls `netnsid` (a veth
    /// peer's IFLA_LINK_NETNSID); `None` for no netnsid is `ns` itself.
    pub async fn peer_namespace(
        &self,
        ns: &str,
        netnsid: Option<i32>,
        candidates: &[String],
    ) -> Result<Option<String>> {
        let Some(netnsid) = netnsid else {
            return Ok(Some(ns.to_string()));
        };
        let handle = self.handle(ns).await?;
        for candidate in candidates.iter().filter(|c| c.as_str() != ns) {
            if nsid::nsid_of(&handle, candidate).await? == Some(netnsid) {
                return Ok(Some(candidate.clone()));
            }
        }
        Ok(None)
    }
}

/// The single-lookup RTM_GETROUTE request and its one answer.
async fn lookup(
    handle: &Handle,
    query: RouteQuery,
    flags: RouteFlags,
) -> std::result::Result<Option<RouteMessage>, rtnetlink::Error> {
    let full_length = |ip: IpAddr| if ip.is_ipv4() { 32 } else { 128 };
    let mut message = RouteMessage::default();
    message.header.address_family = if query.dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    message.header.destination_prefix_length = full_length(query.dst);
    message.header.flags = flags;
    message
        .attributes
        .push(RouteAttribute::Destination(query.dst.into()));
    if let Some(src) = query.src {
        message.header.source_prefix_length = full_length(src);
        message.attributes.push(RouteAttribute::Source(src.into()));
    }
    if let Some(iif) = query.iif {
        message.attributes.push(RouteAttribute::Iif(iif));
    }
    let answers = request(
        handle,
        RouteNetlinkMessage::GetRoute(message),
        NLM_F_REQUEST,
    )
    .await?;
    Ok(answers.into_iter().find_map(|answer| match answer {
        RouteNetlinkMessage::NewRoute(route) => Some(route),
        _ => None,
    }))
}

fn no_answer() -> std::io::Error {
    std::io::Error::other("the kernel sent no route")
}

/// What an error of a route lookup means for the packet.
fn refusal(errno: i32, query: RouteQuery) -> RouteRefusal {
    match errno {
        libc::ENETUNREACH => RouteRefusal::NoRoute,
        libc::EHOSTUNREACH if query.iif.is_some() => RouteRefusal::NotForwarded,
        libc::EXDEV => RouteRefusal::ReversePathFiltered,
        libc::EINVAL if query.iif.is_some() => RouteRefusal::Invalid,
        errno => RouteRefusal::Other(std::io::Error::from_raw_os_error(errno).to_string()),
    }
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn decode_answer(message: &RouteMessage) -> RouteAnswer {
    let mut answer = RouteAnswer {
        kind: match message.header.kind {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast => RouteKind::Broadcast,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            _ => RouteKind::Other,
        },
        oif: None,
        gateway: None,
        source: None,
        matched: None,
        protocol: Some(u8::from(message.header.protocol)),
    };
    let mut destination = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Oif(oif) => answer.oif = Some(*oif),
            RouteAttribute::Gateway(via) => answer.gateway = route_ip(via),
            RouteAttribute::PrefSource(src) => answer.source = route_ip(src),
            RouteAttribute::Destination(dst) => destination = route_ip(dst),
            _ => {}
        }
    }
    // A default route carries no RTA_DST.
    let unspecified = match message.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    answer.matched = ipnet::IpNet::new(
        destination.unwrap_or(unspecified),
        message.header.destination_prefix_length,
    )
    .ok();
    answer
}

fn interface_kind(link: &link::Link) -> InterfaceKind {
    match &link.kind {
        LinkKind::Device => InterfaceKind::Device,
        LinkKind::Bridge => InterfaceKind::Bridge,
        LinkKind::Veth => match link.peer {
            Some(peer) => InterfaceKind::Veth {
                peer_index: peer.index,
                peer_netnsid: peer.netnsid,
            },
            None => InterfaceKind::Other("veth".to_string()),
        },
        LinkKind::Vxlan(vxlan) => InterfaceKind::Vxlan {
            vni: vxlan.vni.unwrap_or_default(),
            port: vxlan.port.unwrap_or_default(),
            local: vxlan.local,
        },
        LinkKind::Other(name) => InterfaceKind::Other(name.clone()),
    }
}

fn destination(message: &NeighbourMessage) -> Option<IpAddr> {
    message.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    })
}

fn link_layer_address(message: &NeighbourMessage) -> Option<Mac> {
    message.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(bytes) => {
            Some(Mac(bytes.as_slice().try_into().ok()?))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(iif: Option<u32>) -> RouteQuery {
        RouteQuery {
            dst: "10.0.0.1".parse().unwrap(),
            src: None,
            iif,
        }
    }

    #[test]
    fn lookup_errors_say_what_happens_to_the_packet() {
        assert_eq!(
            refusal(libc::ENETUNREACH, query(None)),
            RouteRefusal::NoRoute
        );
        assert_eq!(
            refusal(libc::EHOSTUNREACH, query(Some(3))),
            RouteRefusal::NotForwarded
        );
        assert_eq!(
            refusal(libc::EXDEV, query(Some(3))),
            RouteRefusal::ReversePathFiltered
        );
        assert!(matches!(
            refusal(libc::EHOSTUNREACH, query(None)),
            RouteRefusal::Other(_)
        ));
    }

    #[test]
    fn an_answer_names_the_default_route_it_matched() {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.kind = RouteType::Unicast;
        message.attributes.push(RouteAttribute::Oif(2));
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "10.0.0.1".parse().unwrap(),
            )));
        let answer = decode_answer(&message);
        assert_eq!(answer.kind, RouteKind::Unicast);
        assert_eq!(answer.oif, Some(2));
        assert_eq!(answer.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(answer.matched, Some("0.0.0.0/0".parse().unwrap()));
    }
}

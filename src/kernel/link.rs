//! Links: bridges, veth pairs, VXLAN devices; their attributes; dumps.

use std::{net::IpAddr, os::fd::AsRawFd};

use crate::model::Mac;

use futures::TryStreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{
        AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InetDevConf, InfoData, InfoKind,
        InfoVeth, InfoVxlan, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, Prop,
    },
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use super::{
    error::{Context, KernelError, Result},
    netlink::{dump_here, request},
    netns::open_netns,
};

fn mac_from_bytes(bytes: &[u8]) -> Option<Mac> {
    Some(Mac(bytes.try_into().ok()?))
}

/// A link just made, as the kernel echoed it.
struct Created {
    index: u32,
    /// IFLA_LINK: for a veth, its peer's ifindex (in the peer's namespace).
    link: Option<u32>,
}

/// Creates a link: an RTM_NEWLINK create request (EEXIST if the name is
/// taken) with NLM_F_ECHO, so the kernel sends the new link back and its
/// ifindex (and a veth's peer's) needs no lookup. The link is created
/// bare: netloom sets its alias (the kernel ignores IFLA_IFALIAS in a
/// create request), MTU, MAC, master and state afterwards.
async fn create_link(
    handle: &Handle,
    name: &str,
    message: LinkMessage,
) -> std::result::Result<Created, rtnetlink::Error> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
    let echoed = request(handle, RouteNetlinkMessage::NewLink(message), flags).await?;
    let echoed = echoed.into_iter().find_map(|msg| match msg {
        RouteNetlinkMessage::NewLink(link) => Some(Created {
            index: link.header.index,
            link: link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Link(index) => Some(*index),
                _ => None,
            }),
        }),
        _ => None,
    });
    // Some link types (vxlan) are not echoed: ask.
    match echoed {
        Some(created) => Ok(created),
        None => handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await?
            .map(|link| Created {
                index: link.header.index,
                link: None,
            })
            .ok_or(rtnetlink::Error::RequestFailed),
    }
}

/// Creates a bridge, like `ip link add NAME type bridge`. Returns its
/// ifindex.
pub async fn create_bridge(handle: &Handle, name: &str) -> Result<u32> {
    create_link(handle, name, LinkBridge::new(name).build())
        .await
        .map(|created| created.index)
        .op(|| format!("create bridge {name}"))
}

/// A veth pair. The near end is created in the namespace of the handle the
/// request goes through; the peer is born directly in `peer_netns`.
#[derive(Clone, Debug)]
pub struct VethConfig {
    pub name: String,
    pub peer_name: String,
    /// Namespace of the peer: `None` = the near end's; `Some("")` = the
    /// process's own; `Some(name)` = /run/netns/name.
    pub peer_netns: Option<String>,
}

/// Creates a veth pair, like `ip link add NAME type veth peer name PEER netns
/// NS`, with the peer born in its target namespace (IFLA_NET_NS_FD inside
/// VETH_INFO_PEER). The peer can't be created up (ENOTCONN): bring it up
/// afterwards through a handle in the peer's namespace. Returns the near
/// end's ifindex and, if the kernel echoed it, the peer's.
pub async fn create_veth(handle: &Handle, veth: &VethConfig) -> Result<(u32, Option<u32>)> {
    let describe = || format!("create veth {} with peer {}", veth.name, veth.peer_name);
    // IFLA_NET_NS_FD is a raw fd number: it must stay open until the kernel
    // has acknowledged the request. `peer_ns` lives to the end of this function.
    let peer_ns = veth
        .peer_netns
        .as_deref()
        .map(open_netns)
        .transpose()
        .op(describe)?;

    let mut peer = LinkUnspec::new_with_name(&veth.peer_name);
    if let Some(ns) = &peer_ns {
        peer = peer.setns_by_fd(ns.as_raw_fd());
    }

    let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(veth.name.clone())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    create_link(handle, &veth.name, message)
        .await
        .map(|created| (created.index, created.link))
        .op(describe)
}

/// A VXLAN device for head-end replication: no group, remotes come from
/// all-zero-MAC fdb entries (see `fdb`); remote MACs are learnt (the
/// kernel's default).
#[derive(Clone, Debug)]
pub struct VxlanConfig {
    pub name: String,
    pub vni: u32,
    /// Local tunnel address (the host's underlay address).
    pub local: IpAddr,
    /// Ifindex of the underlay interface.
    pub underlay: u32,
    /// UDP destination port (4789 is the IANA one; the kernel's default is 8472).
    pub port: u16,
}

/// Creates a VXLAN device, like `ip link add NAME type vxlan id VNI local IP
/// dev DEV dstport PORT`. Returns its ifindex.
pub async fn create_vxlan(handle: &Handle, vxlan: &VxlanConfig) -> Result<u32> {
    let builder = LinkVxlan::new(&vxlan.name, vxlan.vni)
        .dev(vxlan.underlay)
        .port(vxlan.port);
    let builder = match vxlan.local {
        IpAddr::V4(local) => builder.local(local),
        IpAddr::V6(local) => builder.local6(local),
    };
    create_link(handle, &vxlan.name, builder.build())
        .await
        .map(|created| created.index)
        .op(|| format!("create vxlan {} (vni {})", vxlan.name, vxlan.vni))
}

/// One attribute of an existing link, changed in place (the ifindex stays).
#[derive(Clone, Debug)]
pub enum LinkChange {
    Mtu(u32),
    Mac(Mac),
    Up(bool),
    /// `Some(bridge ifindex)`: enslave; `None`: `nomaster`.
    Master(Option<u32>),
    /// Marks a link as netloom's: its alias (IFLA_IFALIAS) becomes the
    /// mark, and IPv4 `promote_secondaries` is turned on for the link
    /// itself, so that replacing its primary address (new one added, old
    /// one deleted) promotes the new one instead of flushing it, whatever
    /// `conf.all` says in a namespace netloom did not create.
    Mark(String),
    /// Removes the alias.
    Unmark,
    /// Enslave to a bridge as a port that carries no address: also
    /// IFLA_INET6_ADDR_GEN_MODE "none", so the port gets no IPv6 link-local
    /// address and sends no MLD reports, router solicitations or DAD probes
    /// (which a bridge floods to every other port: with hundreds of ports,
    /// the cost of each new one grows with their number). Only effective
    /// before the link is first brought up; refused (EAFNOSUPPORT) when
    /// the kernel has no IPv6.
    Port(u32),
    /// IFLA_INET6_ADDR_GEN_MODE: `false` = "none", no IPv6 link-local
    /// address (nor the MLD reports and router solicitations it sends);
    /// `true` = the kernel's default, EUI-64. Like `Port`, effective when
    /// the link next goes up.
    LinkLocal(bool),
}

fn addr_gen_mode(mode: In6AddrGenMode) -> AfSpecUnspec {
    AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(mode)])
}

/// As `ip link set` words it: `mtu 9000`, `master ifindex 4`.
impl std::fmt::Display for LinkChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkChange::Mtu(mtu) => write!(f, "mtu {mtu}"),
            LinkChange::Mac(mac) => write!(f, "address {mac}"),
            LinkChange::Up(true) => write!(f, "up"),
            LinkChange::Up(false) => write!(f, "down"),
            LinkChange::Master(Some(master)) => write!(f, "master ifindex {master}"),
            LinkChange::Master(None) => write!(f, "nomaster"),
            LinkChange::Mark(mark) => write!(f, "alias {mark}"),
            LinkChange::Unmark => write!(f, "no alias"),
            LinkChange::Port(master) => write!(f, "master ifindex {master} (as a port)"),
            LinkChange::LinkLocal(true) => write!(f, "addrgenmode eui64"),
            LinkChange::LinkLocal(false) => write!(f, "addrgenmode none"),
        }
    }
}

/// Changes one attribute of the link called `name`, like `ip link set`.
pub async fn change_link(handle: &Handle, name: &str, change: LinkChange) -> Result<()> {
    change_link_settings(handle, name, &[change]).await
}

/// Changes several attributes of the link called `name` in one request,
/// like `ip link set NAME alias A master B`: RTM_NEWLINK without
/// NLM_F_CREATE (the kernel finds the link by IFLA_IFNAME, the header's
/// ifindex being 0). The kernel applies them in its own order (MAC, MTU,
/// alias, up/down, master, then IFLA_AF_SPEC), not the slice's: a change
/// that must come before the link goes up (a master, the IPv6 address
/// generation) is not sent with `Up(true)`. The per-family settings of
/// all of them travel in one IFLA_AF_SPEC (the kernel reads only one).
pub async fn change_link_settings(
    handle: &Handle,
    name: &str,
    changes: &[LinkChange],
) -> Result<()> {
    let mut builder = LinkUnspec::new_with_name(name);
    let mut families = Vec::new();
    for change in changes {
        builder = match change {
            LinkChange::Mtu(mtu) => builder.mtu(*mtu),
            LinkChange::Mac(mac) => builder.address(mac.0.to_vec()),
            LinkChange::Up(true) => builder.up(),
            LinkChange::Up(false) => builder.down(),
            LinkChange::Master(Some(master)) => builder.controller(*master),
            LinkChange::Master(None) => builder.nocontroller(),
            LinkChange::Mark(mark) => {
                let mut conf = InetDevConf::default();
                conf.promote_secondaries = 1;
                // Sent as nested IPV4_DEVCONF_* attributes, only the
                // non-zero ones: the other settings are left as they are.
                families.push(AfSpecUnspec::Inet(vec![AfSpecInet::DevConfRequest(conf)]));
                builder.alias(mark.clone())
            }
            LinkChange::Unmark => builder.alias(String::new()),
            LinkChange::Port(master) => {
                families.push(addr_gen_mode(In6AddrGenMode::None));
                builder.controller(*master)
            }
            LinkChange::LinkLocal(enabled) => {
                families.push(addr_gen_mode(if *enabled {
                    In6AddrGenMode::Eui64
                } else {
                    In6AddrGenMode::None
                }));
                builder
            }
        };
    }
    if !families.is_empty() {
        builder = builder.append_extra_attribute(LinkAttribute::AfSpecUnspec(families));
    }
    let words: Vec<String> = changes.iter().map(ToString::to_string).collect();
    handle
        .link()
        .change(builder.build())
        .execute()
        .await
        .op(|| format!("set {} on {name}", words.join(", ")))
}

/// Deletes the link called `name` (for a veth, both ends).
pub async fn delete_link(handle: &Handle, name: &str) -> Result<()> {
    handle
        .link()
        .del_with_message(LinkUnspec::new_with_name(name).build())
        .execute()
        .await
        .op(|| format!("delete {name}"))
}

/// The ifindex of the link called `name`, if there is one.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>> {
    Ok(link_message_named(handle, name)
        .await?
        .map(|link| link.header.index))
}

/// The link of this name, if there is one (RTM_GETLINK, not a dump).
pub async fn link_named(handle: &Handle, name: &str) -> Result<Option<Link>> {
    Ok(link_message_named(handle, name)
        .await?
        .as_ref()
        .map(decode_link))
}

/// The kernel's message for the link of this name (ENODEV: none).
async fn link_message_named(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let found = handle
        .link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await;
    match found {
        Ok(link) => Ok(link),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).op(|| format!("look up link {name}")),
    }
}

/// The name of link `index`, if there is one.
pub async fn link_name(handle: &Handle, index: u32) -> Result<Option<String>> {
    let found = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await;
    match found {
        Ok(link) => Ok(link.as_ref().map(|link| decode_link(link).name)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).op(|| format!("look up link {index}")),
    }
}

/// The MTU of link `index`.
pub async fn link_mtu(handle: &Handle, index: u32) -> Result<u32> {
    let link = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .op(|| format!("look up link {index}"))?;
    link.as_ref()
        .map(decode_link)
        .map(|link| link.mtu)
        .ok_or_else(|| {
            KernelError::new(
                format!("look up link {index}"),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
}

/// What kind of link, from IFLA_INFO_KIND.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// No IFLA_LINKINFO: loopback, physical devices.
    Device,
    Bridge,
    Veth,
    Vxlan(VxlanInfo),
    Other(String),
}

/// The VXLAN settings read back from IFLA_INFO_DATA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: Option<u32>,
    pub local: Option<IpAddr>,
    pub underlay: Option<u32>,
    pub port: Option<u16>,
}

/// The other end of a veth: its ifindex in its own namespace (IFLA_LINK),
/// and that namespace's id as seen from this one (IFLA_LINK_NETNSID; absent
/// when both ends are in the same namespace). Every pod's eth0 tends to have
/// the same ifindex, so the pair is the key, not the ifindex alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VethPeer {
    pub index: u32,
    pub netnsid: Option<i32>,
}

/// A link as observed in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub mtu: u32,
    pub mac: Option<Mac>,
    /// IFF_UP (administratively up), not the operational state.
    pub up: bool,
    pub master: Option<u32>,
    pub alias: Option<String>,
    /// Alternative names (`ip link property add ... altname`): they take a
    /// name like the main one does.
    pub alt_names: Vec<String>,
    /// For veths only.
    pub peer: Option<VethPeer>,
    /// Whether it gets an IPv6 link-local address: IFLA_INET6_ADDR_GEN_MODE
    /// is not "none" (no IPv6 in the kernel: false).
    pub link_local: bool,
}

/// Every link of the calling thread's namespace (run on its worker).
pub fn dump_links_here() -> std::io::Result<Vec<Link>> {
    // Without the counters (IFLA_STATS, IFLA_STATS64, the IPv6 ones),
    // which netloom never reads: a good part of each message.
    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    dump_here(
        RouteNetlinkMessage::GetLink(request),
        |answer| match answer {
            RouteNetlinkMessage::NewLink(message) => Some(decode_link(&message)),
            _ => None,
        },
    )
}

pub(super) fn decode_link(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: LinkKind::Device,
        mtu: 0,
        mac: None,
        up: message.header.flags.contains(LinkFlags::Up),
        master: None,
        alias: None,
        alt_names: Vec::new(),
        peer: None,
        link_local: false,
    };
    let mut peer_index = None;
    let mut peer_netnsid = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) => link.mac = mac_from_bytes(bytes),
            LinkAttribute::Controller(master) => link.master = Some(*master),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::PropList(props) => {
                link.alt_names.extend(props.iter().filter_map(|p| match p {
                    Prop::AltIfName(name) => Some(name.clone()),
                    _ => None,
                }))
            }
            LinkAttribute::Link(index) => peer_index = Some(*index),
            LinkAttribute::LinkNetNsId(id) => peer_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => link.kind = decode_kind(infos),
            LinkAttribute::AfSpecUnspec(families) => {
                link.link_local = families.iter().any(|family| match family {
                    AfSpecUnspec::Inet6(settings) => settings.iter().any(|setting| {
                        matches!(setting, AfSpecInet6::AddrGenMode(mode) if *mode != In6AddrGenMode::None)
                    }),
                    _ => false,
                })
            }
            _ => {}
        }
    }
    if link.kind == LinkKind::Veth {
        link.peer = peer_index.map(|index| VethPeer {
            index,
            netnsid: peer_netnsid,
        });
    }
    link
}

fn decode_kind(infos: &[LinkInfo]) -> LinkKind {
    let kind = infos.iter().find_map(|info| match info {
        LinkInfo::Kind(kind) => Some(kind),
        _ => None,
    });
    let data = infos.iter().find_map(|info| match info {
        LinkInfo::Data(data) => Some(data),
        _ => None,
    });
    match (kind, data) {
        (None, _) => LinkKind::Device,
        (Some(InfoKind::Bridge), _) => LinkKind::Bridge,
        (Some(InfoKind::Veth), _) => LinkKind::Veth,
        (Some(InfoKind::Vxlan), Some(InfoData::Vxlan(data))) => LinkKind::Vxlan(decode_vxlan(data)),
        (Some(InfoKind::Vxlan), _) => LinkKind::Vxlan(VxlanInfo::default()),
        (Some(other), _) => LinkKind::Other(other.to_string()),
    }
}

fn decode_vxlan(data: &[InfoVxlan]) -> VxlanInfo {
    let mut vxlan = VxlanInfo::default();
    for item in data {
        match item {
            InfoVxlan::Id(vni) => vxlan.vni = Some(*vni),
            InfoVxlan::Local(ip) => vxlan.local = Some(IpAddr::V4(*ip)),
            InfoVxlan::Local6(ip) => vxlan.local = Some(IpAddr::V6(*ip)),
            InfoVxlan::Link(index) => vxlan.underlay = Some(*index),
            InfoVxlan::Port(port) => vxlan.port = Some(*port),
            _ => {}
        }
    }
    vxlan
}

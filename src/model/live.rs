//! What `netloom path` reads of the live kernel, hop by hop: the kernel's
//! own route lookup, interfaces with their state, neighbours, and
//! forwarding-database entries. The kernel layer produces these; the path
//! walker consumes them (and its tests fake them).

use std::net::IpAddr;

use ipnet::IpNet;

use super::Mac;

/// One route lookup, as `ip route get DST [from SRC iif DEV]` asks it: an
/// outgoing packet (no `iif`) or one arriving on interface `iif`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteQuery {
    pub dst: IpAddr,
    pub src: Option<IpAddr>,
    pub iif: Option<u32>,
}

/// What kind of route the lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Forwarded or sent out of an interface.
    Unicast,
    /// An address of this namespace: delivered here.
    Local,
    Broadcast,
    Blackhole,
    Unreachable,
    Prohibit,
    Other,
}

/// The kernel's answer to a route lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAnswer {
    pub kind: RouteKind,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// The source address an outgoing packet gets (RTA_PREFSRC).
    pub source: Option<IpAddr>,
    /// The routing-table entry that matched (RTM_F_FIB_MATCH), e.g.
    /// `0.0.0.0/0` for the default route.
    pub matched: Option<IpNet>,
    pub protocol: Option<u8>,
}

/// Why the kernel found no route for a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteRefusal {
    /// ENETUNREACH: no route matches.
    NoRoute,
    /// EHOSTUNREACH on an arriving packet: forwarding is off on the
    /// interface it came in by.
    NotForwarded,
    /// EXDEV: the source address fails reverse-path filtering (rp_filter)
    /// on the interface the packet came in by.
    ReversePathFiltered,
    /// EINVAL on an arriving packet: a source the kernel never accepts
    /// (martian), or a lookup it cannot make.
    Invalid,
    /// Another error, as the kernel said it.
    Other(String),
}

/// What kind of interface a live link is, as far as the walk goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceKind {
    /// Loopback, physical devices: no IFLA_LINKINFO.
    Device,
    Bridge,
    /// A veth, with its peer's ifindex and, when the peer is in another
    /// namespace, that namespace's id as this one knows it.
    Veth {
        peer_index: u32,
        peer_netnsid: Option<i32>,
    },
    Vxlan {
        vni: u32,
        port: u16,
        local: Option<IpAddr>,
    },
    /// Another type (`dummy`, `macvlan`...), by name.
    Other(String),
}

/// A live interface and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveInterface {
    pub index: u32,
    pub name: String,
    pub kind: InterfaceKind,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The lower layer is up (IFF_LOWER_UP): a veth whose peer is down has none.
    pub carrier: bool,
    pub mac: Option<Mac>,
    /// The bridge it is a port of.
    pub master: Option<u32>,
    pub addresses: Vec<IpNet>,
}

/// A neighbour (ARP/NDP) entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: Option<Mac>,
    pub state: NeighbourState,
}

/// The state of a neighbour entry, as far as a walk cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighbourState {
    /// Reachable, stale, delay, probe, permanent, noarp: its MAC is used.
    Usable,
    /// Being resolved: no MAC yet.
    Incomplete,
    /// Resolution failed: nobody answered.
    Failed,
}

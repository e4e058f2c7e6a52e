//! `netloom path`: walks a packet from a pod to a target through the live
//! kernel, hop by hop, and says where it is delivered or where and why it
//! dies. Pure: every read of the kernel goes through `PathKernel`, so the
//! walk is tested with a fake (see `tests`).
//!
//! In each namespace the kernel's own route lookup decides (for the source
//! address the packet has, and the interface it came in by); the frame
//! then crosses the segment of the outgoing interface: a veth to its peer's
//! namespace, a bridge through its forwarding database (or a flood when it
//! has not learnt the MAC), a VXLAN device through its fdb to the remote
//! host's VXLAN device, until the interface that owns the next hop.

mod places;
pub mod report;
mod walk;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::Mac;
use crate::model::live::{
    LiveInterface, Neighbour, RouteAnswer, RouteKind, RouteQuery, RouteRefusal,
};

pub use places::{WalkError, walk_for};
pub use walk::walk;

/// The kernel reads a walk needs, in namespace `ns` (`""`: the one netloom
/// runs in).
// Used generically (never as `dyn`, never spawned), so no `Send` bounds are needed.
#[allow(async_fn_in_trait)]
pub trait PathKernel {
    type Error: fmt::Display;

    async fn interfaces(&self, ns: &str) -> Result<Vec<LiveInterface>, Self::Error>;

    async fn route(
        &self,
        ns: &str,
        query: RouteQuery,
    ) -> Result<Result<RouteAnswer, RouteRefusal>, Self::Error>;

    async fn neighbour(
        &self,
        ns: &str,
        index: u32,
        ip: IpAddr,
    ) -> Result<Option<Neighbour>, Self::Error>;

    /// The port of bridge `bridge` that has `mac` in its fdb (the bridge
    /// itself for its own MAC), `None` if not learnt.
    async fn bridge_port(
        &self,
        ns: &str,
        bridge: u32,
        mac: Mac,
    ) -> Result<Option<u32>, Self::Error>;

    /// The VTEPs VXLAN device `vxlan` sends a frame for `mac` to, and
    /// whether an entry for that MAC decided (else: the flood entries).
    async fn vxlan_remotes(
        &self,
        ns: &str,
        vxlan: u32,
        mac: Option<Mac>,
    ) -> Result<(bool, Vec<IpAddr>), Self::Error>;

    async fn sysctl(&self, ns: &str, key: &str) -> Result<Option<String>, Self::Error>;

    /// Which of `candidates` namespace `ns` calls `netnsid` (`None`: `ns`).
    async fn peer_namespace(
        &self,
        ns: &str,
        netnsid: Option<i32>,
        candidates: &[String],
    ) -> Result<Option<String>, Self::Error>;
}

/// A namespace the walk may visit, and what the file calls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub ns: String,
    /// The pod or host name of the file ("underlay switch" for a lab's).
    pub node: String,
}

/// A host of the file on another machine (host mode), by underlay address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHost {
    pub underlay: IpAddr,
    pub name: String,
}

/// What to walk: from the namespace of a pod to an address.
#[derive(Clone, Debug)]
pub struct Walk {
    pub from: String,
    pub to: IpAddr,
    /// Every namespace of this machine the file knows.
    pub places: Vec<Place>,
    /// Hosts of the file elsewhere, to name where a packet leaving goes.
    pub remote_hosts: Vec<RemoteHost>,
}

/// One hop: a namespace, the interfaces the packet came in and went out
/// by, and the decision taken there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub namespace: String,
    pub node: String,
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_interface: Option<String>,
    #[serde(rename = "out", skip_serializing_if = "Option::is_none")]
    pub out_interface: Option<String>,
    /// The packet's source where it starts, its destination where it arrives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    pub decision: String,
}

/// How a walk ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The target's namespace has the address.
    Delivered { namespace: String, node: String },
    /// The packet leaves this machine (host mode): through which
    /// interface, towards which address and host of the file.
    Leaves {
        interface: String,
        towards: IpAddr,
        host: Option<String>,
    },
    /// Dropped in `namespace`, for `reason`.
    Dies {
        namespace: String,
        node: String,
        reason: Death,
    },
}

/// Why a packet dies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Death {
    NoRoute {
        to: IpAddr,
    },
    /// A route of a type that drops: blackhole, unreachable, prohibit.
    DroppingRoute {
        kind: RouteKind,
    },
    InterfaceDown {
        interface: String,
    },
    NoCarrier {
        interface: String,
    },
    /// Nothing on the segment has the next hop's address (or its neighbour
    /// entry says resolution failed).
    NoNeighbour {
        ip: IpAddr,
        interface: String,
    },
    /// The namespace must forward the packet and does not.
    ForwardingOff {
        key: String,
    },
    ReversePathFiltered {
        interface: String,
    },
    /// The kernel refused the packet for another reason.
    Refused {
        detail: String,
    },
    /// A veth whose peer is in no namespace of the file.
    UnknownPeer {
        interface: String,
    },
    /// An interface type the walk does not follow.
    Unsupported {
        interface: String,
        kind: String,
    },
    /// More hops than any path of the file has.
    Loop,
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Death::NoRoute { to } => write!(f, "no route to {to}"),
            Death::DroppingRoute { kind } => write!(f, "the route is of type {kind:?}"),
            Death::InterfaceDown { interface } => write!(f, "interface {interface} is down"),
            Death::NoCarrier { interface } => {
                write!(f, "interface {interface} has no carrier (its peer is down)")
            }
            Death::NoNeighbour { ip, interface } => {
                write!(
                    f,
                    "no neighbour: nothing on the segment of {interface} has {ip}"
                )
            }
            Death::ForwardingOff { key } => write!(f, "forwarding is off ({key} is not 1)"),
            Death::ReversePathFiltered { interface } => write!(
                f,
                "filtered by rp_filter: the source is not routed back through {interface}"
            ),
            Death::Refused { detail } => write!(f, "refused by the kernel: {detail}"),
            Death::UnknownPeer { interface } => write!(
                f,
                "the peer of {interface} is in a namespace the file does not know"
            ),
            Death::Unsupported { interface, kind } => {
                write!(
                    f,
                    "{interface} is a {kind} device, which path does not follow"
                )
            }
            Death::Loop => f.write_str("the packet loops"),
        }
    }
}

impl Death {
    /// A short name for JSON (`no-route`, `interface-down`...).
    pub fn reason(&self) -> &'static str {
        match self {
            Death::NoRoute { .. } => "no-route",
            Death::DroppingRoute { .. } => "dropping-route",
            Death::InterfaceDown { .. } => "interface-down",
            Death::NoCarrier { .. } => "no-carrier",
            Death::NoNeighbour { .. } => "no-neighbour",
            Death::ForwardingOff { .. } => "forwarding-off",
            Death::ReversePathFiltered { .. } => "rp-filter",
            Death::Refused { .. } => "refused",
            Death::UnknownPeer { .. } => "unknown-peer",
            Death::Unsupported { .. } => "unsupported",
            Death::Loop => "loop",
        }
    }
}

/// The hops of a walk and how it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathReport {
    pub hops: Vec<Hop>,
    pub end: End,
}

impl PathReport {
    /// Whether the packet arrives (or, in host mode, leaves towards the host
    /// that continues the path: nothing on this machine drops it).
    pub fn arrives(&self) -> bool {
        !matches!(self.end, End::Dies { .. })
    }
}

//! Forwarding-database entries of VXLAN devices (`bridge fdb ... self`).
//!
//! Head-end replication: one all-zero-MAC entry per remote VTEP, appended
//! (NLM_F_APPEND) to the same MAC, so that broadcast and unknown unicast go
//! to every remote.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    },
};
use rtnetlink::Handle;

use crate::model::Mac;

use super::{
    error::{Context, Result},
    netlink::request,
};

/// The MAC of the flood entries: matches every destination not learnt.
pub const FLOOD_MAC: Mac = Mac([0; 6]);

/// An fdb entry of a VXLAN device: frames for `mac` go to VTEP `dst`.
/// Its state is not kept: the kernel learns only real source MACs, so
/// every all-zero-MAC entry was configured (by netloom, NUD_PERMANENT, or
/// by hand: `bridge fdb append` writes NUD_PERMANENT|NUD_NOARP) and sends
/// traffic whatever its state bits say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: Mac,
    pub dst: Option<IpAddr>,
}

/// The AF_BRIDGE neighbour message for (`index`, `mac`, `dst`), NTF_SELF
/// (the device's own fdb, not its master bridge's), NUD_PERMANENT.
fn message(index: u32, mac: Mac, dst: IpAddr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    message.header.flags = NeighbourFlags::Own;
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    message
        .attributes
        .push(NeighbourAttribute::Destination(dst.into()));
    message
}

/// Adds a remote for `mac` on VXLAN device `index`, like `bridge fdb append
/// MAC dev DEV dst IP` (EEXIST if that exact remote is already there).
pub async fn fdb_append(handle: &Handle, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    request(
        handle,
        RouteNetlinkMessage::NewNeighbour(message(index, mac, dst)),
        flags,
    )
    .await
    .map(drop)
    .op(|| format!("append fdb {mac} dst {dst} on ifindex {index}"))
}

/// Removes one remote of `mac`, like `bridge fdb del MAC dev DEV dst IP`
/// (ENOENT if absent).
pub async fn fdb_delete(handle: &Handle, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
    handle
        .neighbours()
        .del(message(index, mac, dst))
        .execute()
        .await
        .op(|| format!("delete fdb {mac} dst {dst} on ifindex {index}"))
}

/// Dumps the fdb of device `index` (RTM_GETNEIGH, AF_BRIDGE; the kernel
/// filters by port ifindex under strict checking), keeping the device's own
/// entries (NTF_SELF), not the master bridge's entries about that port.
pub async fn dump_fdb(handle: &Handle, index: u32) -> Result<Vec<FdbEntry>> {
    let mut dump = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge);
    dump.message_mut().header.ifindex = index;
    let messages: Vec<NeighbourMessage> = dump
        .execute()
        .try_collect()
        .await
        .op(|| format!("dump fdb of ifindex {index}"))?;
    Ok(messages
        .iter()
        .filter(|m| m.header.ifindex == index && m.header.flags.contains(NeighbourFlags::Own))
        .filter_map(decode_entry)
        .collect())
}

fn decode_entry(message: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let mut dst = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = Some(Mac(bytes.as_slice().try_into().ok()?))
            }
            NeighbourAttribute::Destination(address) => dst = ip_of(address),
            _ => {}
        }
    }
    Some(FdbEntry { mac: mac?, dst })
}

fn ip_of(address: &NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        // In an AF_BRIDGE message the crate can't tell NDA_DST's family:
        // decode it by length.
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(bytes.as_slice()).ok()?,
            ))),
            16 => Some(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(bytes.as_slice()).ok()?,
            ))),
            _ => None,
        },
        _ => None,
    }
}

//! Namespace ids: how one namespace names another in IFLA_LINK_NETNSID.
//!
//! An nsid is local to the namespace that assigned it (the kernel assigns
//! one on demand, e.g. when a veth's peer lands in another namespace). To
//! learn which namespace a veth peer's IFLA_LINK_NETNSID means, ask the
//! namespace that reported it (through its handle) for the nsid of each
//! candidate namespace: RTM_GETNSID with NETNSA_FD = an fd of the candidate.

use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage},
    nsid::{NsidAttribute, NsidMessage},
};
use rtnetlink::Handle;

use super::{
    error::{Context, Result},
    netlink::request,
    netns::open_netns,
};

/// The id under which the handle's namespace knows namespace `ns` (`""`: the
/// process's own), or `None` if it has not assigned it one.
pub async fn nsid_of(handle: &Handle, ns: &str) -> Result<Option<i32>> {
    let describe = || format!("get nsid of netns {ns:?}");
    // NETNSA_FD is a raw fd: keep the file open until the answer is in.
    let file = open_netns(ns).op(describe)?;
    let mut message = NsidMessage::default();
    message
        .attributes
        .push(NsidAttribute::Fd(file.as_raw_fd() as u32));
    let answer = request(
        handle,
        RouteNetlinkMessage::GetNsId(message),
        NLM_F_REQUEST | NLM_F_ACK,
    )
    .await
    .op(describe)?;
    let id = answer.iter().find_map(|msg| match msg {
        RouteNetlinkMessage::NewNsId(msg) => msg.attributes.iter().find_map(|attr| match attr {
            NsidAttribute::Id(id) => Some(*id),
            _ => None,
        }),
        _ => None,
    });
    // NETNSA_NSID_NOT_ASSIGNED is -1.
    Ok(id.filter(|id| *id >= 0))
}

/// The alias of the loopback of the namespace the handle's namespace calls
/// `nsid`, if any: netloom's mark on a namespace it made, so a hint to
/// which namespace that is. One RTM_GETLINK with IFLA_TARGET_NETNSID, read
/// only (a loopback has no link netnsid, so none is assigned by asking).
pub async fn loopback_alias(handle: &Handle, nsid: i32) -> Result<Option<String>> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName("lo".to_string()));
    message.attributes.push(LinkAttribute::IfNetnsId(nsid));
    let answer = request(
        handle,
        RouteNetlinkMessage::GetLink(message),
        NLM_F_REQUEST | NLM_F_ACK,
    )
    .await
    .op(|| format!("get the loopback of nsid {nsid}"))?;
    Ok(answer.iter().find_map(|msg| match msg {
        RouteNetlinkMessage::NewLink(link) => link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfAlias(alias) => Some(alias.clone()),
            _ => None,
        }),
        _ => None,
    }))
}

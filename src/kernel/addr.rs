//! Interface addresses, IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::{AddressMessageBuilder, Handle};

use super::error::{Context, Result};

/// An address on an interface, e.g. 10.0.0.2/24 on ifindex 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix_len: u8,
}

/// The message naming `address` in a delete request.
fn message(address: &Address) -> AddressMessage {
    match address.ip {
        IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(address.index)
            .address(ip, address.prefix_len)
            .build(),
        IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(address.index)
            .address(ip, address.prefix_len)
            .build(),
    }
}

/// Adds an address (EEXIST if present), like `ip addr add`. IPv6 addresses
/// get IFA_F_NODAD, so they are usable at once instead of "tentative".
pub async fn add_address(handle: &Handle, address: &Address) -> Result<()> {
    let mut request = handle
        .address()
        .add(address.index, address.ip, address.prefix_len);
    if address.ip.is_ipv6() {
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request.execute().await.op(|| {
        format!(
            "add address {}/{} to ifindex {}",
            address.ip, address.prefix_len, address.index
        )
    })
}

/// Deletes an address (EADDRNOTAVAIL if absent), like `ip addr del`.
pub async fn delete_address(handle: &Handle, address: &Address) -> Result<()> {
    handle
        .address()
        .del(message(address))
        .execute()
        .await
        .op(|| {
            format!(
                "delete address {}/{} from ifindex {}",
                address.ip, address.prefix_len, address.index
            )
        })
}

/// Dumps every address of the handle's namespace, both families, IPv6
/// link-local ones included: a file may declare one (the kernel's own are
/// told apart by the plan, as undeclared). Those of the loopback are left
/// to the caller to skip by interface.
pub async fn dump_addresses(handle: &Handle) -> Result<Vec<Address>> {
    let messages: Vec<AddressMessage> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .op(|| "dump addresses".to_string())?;
    Ok(messages.iter().filter_map(decode_address).collect())
}

/// The interface with an address on whose network `ip` is (the most
/// specific one), other than `ip` itself: where a gateway is reached.
pub async fn interface_on_network_of(handle: &Handle, ip: IpAddr) -> Result<Option<u32>> {
    let addresses = dump_addresses(handle).await?;
    Ok(addresses
        .iter()
        .filter(|a| a.ip != ip)
        .filter(|a| ipnet::IpNet::new(a.ip, a.prefix_len).is_ok_and(|net| net.contains(&ip)))
        .max_by_key(|a| a.prefix_len)
        .map(|a| a.index))
}

fn decode_address(message: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on
    // point-to-point links, and the only one IPv6 sends.
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    Some(Address {
        index: message.header.index,
        ip: local.or(address)?,
        prefix_len: message.header.prefix_len,
    })
}

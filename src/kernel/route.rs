//! Routes of every table, IPv4 and IPv6, marked with netloom's protocol.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::{
    AddressFamily,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
};
use rtnetlink::Handle;

use super::error::{Context, Result};
use crate::model::ROUTE_PROTOCOL;

/// A route netloom adds or deletes. Its identity is (table, family,
/// destination, metric); `via` and `oif` can be replaced in place, and in
/// a delete they name the exact route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination network; `0.0.0.0`/`::` with prefix 0 for a default route.
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub via: Option<IpAddr>,
    /// Outgoing interface; required when there is no `via`.
    pub oif: Option<u32>,
    pub metric: u32,
    pub table: u32,
}

/// As `ip route` writes it: `10.9.0.0/16 via 10.0.0.1 dev ifindex 3 metric 0`
/// (and `table 100` outside the main table).
impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix_len)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev ifindex {oif}")?;
        }
        write!(f, " metric {}", self.metric)?;
        if self.table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// A route as observed. `metric` is the effective one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservedRoute {
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: u32,
    pub protocol: u8,
    pub table: u32,
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// A message naming `route`: its key (table, family, destination, metric)
/// and, when set, its gateway and output interface.
fn message(route: &Route) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family(route.dst);
    message.header.destination_prefix_length = route.prefix_len;
    // Like `ip route`: the header's 8-bit table where the id fits, and
    // always RTA_TABLE, which holds the full 32-bit id and wins.
    message.header.table = u8::try_from(route.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.attributes.push(RouteAttribute::Table(route.table));
    // Like `ip route`, leave RTA_DST out of default routes.
    if route.prefix_len > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(route.dst.into()));
    }
    message
        .attributes
        .push(RouteAttribute::Priority(route.metric));
    if let Some(via) = route.via {
        message.attributes.push(RouteAttribute::Gateway(via.into()));
    }
    if let Some(oif) = route.oif {
        message.attributes.push(RouteAttribute::Oif(oif));
    }
    message
}

/// Adds a route with netloom's protocol: create-exclusive (EEXIST if one
/// with the same destination and metric exists), or with `replace` in
/// place of the one with that key (NLM_F_REPLACE: a new via/dev; created
/// if absent).
pub async fn add_route(handle: &Handle, route: &Route, replace: bool) -> Result<()> {
    let mut message = message(route);
    message.header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    message.header.kind = RouteType::Unicast;
    // A route without gateway is on-link (`scope link`, as `ip route` sets).
    message.header.scope = if route.via.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    let mut request = handle.route().add(message);
    if replace {
        request = request.replace();
    }
    request
        .execute()
        .await
        .op(|| format!("{} route {route}", if replace { "replace" } else { "add" }))
}

/// Deletes exactly `route` from its table: its destination, metric,
/// gateway and output interface must all match (ESRCH if no route does),
/// so a route with the same key but another gateway or interface is never
/// taken instead.
pub async fn delete_route(handle: &Handle, route: &Route) -> Result<()> {
    let describe = || format!("delete route {route}");
    // An IPv4 delete takes metric 0 for "any metric": it would take a route
    // with the same gateway and interface but another metric when this one
    // is gone. Make sure it is there.
    if route.dst.is_ipv4() && route.metric == 0 && !is_present(handle, route).await? {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH)).op(describe);
    }
    let mut message = message(route);
    // The plan deletes only routes this topology owns (any protocol inside
    // its own namespaces): match every protocol.
    message.header.protocol = RouteProtocol::Unspec;
    // Scope "nowhere" matches routes of any scope (IPv4).
    message.header.scope = RouteScope::NoWhere;
    handle.route().del(message).execute().await.op(describe)
}

/// Whether the route's table has `route` (its gateway and interface where
/// given) with the metric given.
async fn is_present(handle: &Handle, route: &Route) -> Result<bool> {
    Ok(dump_family(handle, family(route.dst))
        .await?
        .iter()
        .any(|live| {
            live.table == route.table
                && live.dst == route.dst
                && live.prefix_len == route.prefix_len
                && live.metric == route.metric
                && live.via == route.via
                && route.oif.is_none_or(|oif| live.oif == Some(oif))
        }))
}

/// Dumps every table, IPv4 then IPv6 (one dump at a time per socket).
pub async fn dump_routes(handle: &Handle) -> Result<Vec<ObservedRoute>> {
    let mut routes = dump_family(handle, AddressFamily::Inet).await?;
    routes.extend(dump_family(handle, AddressFamily::Inet6).await?);
    Ok(routes)
}

/// Dumps the routes of one family, of every table (RT_TABLE_UNSPEC: no
/// table filter).
async fn dump_family(handle: &Handle, family: AddressFamily) -> Result<Vec<ObservedRoute>> {
    let mut filter = RouteMessage::default();
    filter.header.address_family = family;
    filter.header.table = RouteHeader::RT_TABLE_UNSPEC;
    let messages: Vec<RouteMessage> = handle
        .route()
        .get(filter)
        .execute()
        .try_collect()
        .await
        .op(|| {
            let family = if family == AddressFamily::Inet {
                "IPv4"
            } else {
                "IPv6"
            };
            format!("dump {family} routes")
        })?;
    Ok(messages.iter().filter_map(decode_route).collect())
}

fn ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn decode_route(message: &RouteMessage) -> Option<ObservedRoute> {
    let unspecified = match message.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut route = ObservedRoute {
        dst: unspecified,
        prefix_len: message.header.destination_prefix_length,
        via: None,
        oif: None,
        // IPv4 routes of metric 0 carry no RTA_PRIORITY.
        metric: 0,
        protocol: u8::from(message.header.protocol),
        table: u32::from(message.header.table),
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(dst) => route.dst = ip(dst)?,
            RouteAttribute::Gateway(via) => route.via = ip(via),
            RouteAttribute::Oif(oif) => route.oif = Some(*oif),
            RouteAttribute::Priority(metric) => route.metric = *metric,
            // RTA_TABLE holds the full 32-bit id (the header's is 8 bits).
            RouteAttribute::Table(table) => route.table = *table,
            _ => {}
        }
    }
    Some(route)
}

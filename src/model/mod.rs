//! The flat model both sides of a diff share: a map from a stable
//! `ResourceId` to a `Resource`. The file is expanded into it (`expand`),
//! the kernel is observed into it (`kernel::observe`), and a plan is the
//! difference of two of them (`plan`).

mod change;
pub mod expand;
pub mod live;
mod mac;
mod names;

pub use change::{Action, Change, Claims, Observed};
pub use expand::{Mode, expand};
pub use mac::Mac;
pub use names::{derived_bridge_mac, derived_ifname, mark, mark_owner};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// netloom's own route protocol number (see `/etc/iproute2/rt_protos`):
/// marks routes netloom added, so they are never confused with others.
pub const ROUTE_PROTOCOL: u8 = 211;

/// The main routing table: where a route without `table` lives.
pub const MAIN_TABLE: u32 = 254;

/// The kernel's own `local` table: the local and broadcast routes it makes
/// for every address. Never declared, never observed.
pub const LOCAL_TABLE: u32 = 255;

/// Route protocols of routes the kernel makes by itself: `kernel` (the
/// route of an address's subnet) and `ra` (from a router advertisement).
pub const KERNEL_ROUTE_PROTOCOLS: [u8; 2] = [2, 9];

/// What kind of kernel object a resource is. The order is the order in
/// which `status` and `plan` list objects of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Namespace,
    Sysctl,
    Link,
    Alias,
    Mac,
    Mtu,
    Master,
    LinkLocal,
    Up,
    Qdisc,
    Address,
    Route,
    Fdb,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Sysctl => "sysctl",
            Kind::Link => "link",
            Kind::Alias => "alias",
            Kind::Mac => "mac",
            Kind::Mtu => "mtu",
            Kind::Master => "master",
            Kind::LinkLocal => "link-local",
            Kind::Up => "up",
            Kind::Qdisc => "qdisc",
            Kind::Address => "address",
            Kind::Route => "route",
            Kind::Fdb => "fdb",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The identity of a kernel object: the namespace it lives in (`""` is
/// the namespace netloom runs in), its kind, and a name unique within
/// (namespace, kind). A namespace's own id has `ns` = its name, `name` = "".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceId {
    pub ns: String,
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(ns: &str, kind: Kind, name: impl Into<String>) -> Self {
        ResourceId {
            ns: ns.to_string(),
            kind,
            name: name.into(),
        }
    }

    pub fn namespace(ns: &str) -> Self {
        ResourceId::new(ns, Kind::Namespace, "")
    }

    pub fn link(ns: &str, ifname: &str) -> Self {
        ResourceId::new(ns, Kind::Link, ifname)
    }

    /// The interface an attribute, address, qdisc or fdb entry belongs to.
    pub fn ifname(&self) -> Option<&str> {
        match self.kind {
            Kind::Link
            | Kind::Alias
            | Kind::Mac
            | Kind::Mtu
            | Kind::Master
            | Kind::LinkLocal
            | Kind::Up => Some(&self.name),
            Kind::Qdisc => Some(&self.name),
            Kind::Address | Kind::Fdb => self.name.split(' ').next(),
            Kind::Namespace | Kind::Sysctl | Kind::Route => None,
        }
    }
}

/// The namespace netloom runs in, as messages name it (JSON says `""`).
pub const OWN_NAMESPACE: &str = "this machine's namespace";

/// `link web/eth0`, and `link test0 in this machine's namespace` for an
/// object of the machine's own namespace: people read every message,
/// plan line and log line made from this.
impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.ns.as_str()) {
            (Kind::Namespace, "") => f.write_str(OWN_NAMESPACE),
            (Kind::Namespace, ns) => write!(f, "namespace {ns}"),
            (kind, "") => write!(f, "{kind} {} in {OWN_NAMESPACE}", self.name),
            (kind, ns) => write!(f, "{kind} {ns}/{}", self.name),
        }
    }
}

/// What a kernel object is, as far as netloom manages it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Resource {
    /// A named network namespace under /run/netns.
    Namespace,
    /// A `net.*` sysctl of the namespace, as the text /proc/sys shows.
    Sysctl {
        value: String,
    },
    /// A network interface.
    Link(LinkKind),
    /// IFLA_IFALIAS: netloom's ownership mark on links.
    Alias {
        alias: String,
    },
    Mac {
        mac: Mac,
    },
    Mtu {
        mtu: u32,
    },
    /// The bridge (by interface name, same namespace) the link is a port of.
    Master {
        master: String,
    },
    /// Whether the interface gets an IPv6 link-local address (its
    /// IFLA_INET6_ADDR_GEN_MODE is anything but "none").
    LinkLocal {
        enabled: bool,
    },
    Up {
        up: bool,
    },
    /// A token-bucket root qdisc shaping egress.
    Qdisc {
        rate_bits_per_second: u64,
    },
    Address {
        ifname: String,
        address: IpNet,
    },
    Route(Route),
    /// A VXLAN flood entry: all-zero MAC towards a remote VTEP.
    Fdb {
        ifname: String,
        dst: IpAddr,
    },
}

/// Interfaces by how they are made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum LinkKind {
    Bridge,
    /// A veth pair, held by its canonical end (the lesser of the two
    /// (namespace, name) pairs); the other end lives and dies with it.
    Veth {
        peer_ns: String,
        peer: String,
    },
    Vxlan(Vxlan),
    /// Anything else seen in the kernel (never created by netloom).
    Other {
        name: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxlan {
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    /// The underlay interface (same namespace) the tunnel is bound to.
    pub underlay: String,
}

/// A route. Its identity is (table, family, destination, metric); `via`
/// and `dev` can change in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub to: IpNet,
    pub metric: u32,
    pub via: Option<IpAddr>,
    /// Unset in the file: whatever interface the kernel picks.
    pub dev: Option<String>,
    /// The routing table. Left out of records and journals for the main
    /// table, so that those written before tables existed still read.
    #[serde(default = "main_table", skip_serializing_if = "is_main_table")]
    pub table: u32,
}

fn main_table() -> u32 {
    MAIN_TABLE
}

fn is_main_table(table: &u32) -> bool {
    *table == MAIN_TABLE
}

impl Route {
    /// The id name of a route: its destination and metric, and its table
    /// when it is not the main one (main-table names predate tables).
    pub fn id_name(to: &IpNet, metric: u32, table: u32) -> String {
        if table == MAIN_TABLE {
            format!("{to} metric {metric}")
        } else {
            format!("{to} metric {metric} table {table}")
        }
    }
}

impl Resource {
    /// Whether a live object satisfies this desired one. Equal, except
    /// where the file leaves a detail to the kernel (a route's device).
    pub fn is_satisfied_by(&self, live: &Resource) -> bool {
        match (self, live) {
            (Resource::Route(want), Resource::Route(have)) => {
                want.to == have.to
                    && want.metric == have.metric
                    && want.table == have.table
                    && want.via == have.via
                    && (want.dev.is_none() || want.dev == have.dev)
            }
            (Resource::Sysctl { value: want }, Resource::Sysctl { value: have }) => {
                // As /proc/sys shows them: "01" reads back as "1".
                let same = |a: &str, b: &str| match (a.parse::<i64>(), b.parse::<i64>()) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => a == b,
                };
                want.split_whitespace().count() == have.split_whitespace().count()
                    && want
                        .split_whitespace()
                        .zip(have.split_whitespace())
                        .all(|(a, b)| same(a, b))
            }
            _ => self == live,
        }
    }

    /// Whether a difference can be fixed in place; otherwise the object is
    /// deleted and created again (a veth's peer, a VXLAN's parameters).
    pub fn updates_in_place(&self) -> bool {
        !matches!(self, Resource::Link(_) | Resource::Namespace)
    }

    /// An address, and the name it goes by: interface and IP (an IPv6
    /// address is one per interface whatever its prefix; a new prefix
    /// length changes the address in place).
    pub fn address(ifname: &str, address: IpNet) -> (String, Resource) {
        let name = format!("{ifname} {}", address.addr());
        let ifname = ifname.to_string();
        (name, Resource::Address { ifname, address })
    }

    /// A short human description of the value, for plans and status.
    pub fn describe(&self) -> String {
        match self {
            Resource::Namespace => "namespace".to_string(),
            Resource::Sysctl { value } => value.clone(),
            Resource::Link(LinkKind::Bridge) => "bridge".to_string(),
            Resource::Link(LinkKind::Veth { peer_ns, peer }) if peer_ns.is_empty() => {
                format!("veth, peer {peer} in {OWN_NAMESPACE}")
            }
            Resource::Link(LinkKind::Veth { peer_ns, peer }) => {
                format!("veth, peer {peer_ns}/{peer}")
            }
            Resource::Link(LinkKind::Vxlan(v)) => format!(
                "vxlan vni {} port {} local {} dev {}",
                v.vni, v.port, v.local, v.underlay
            ),
            Resource::Link(LinkKind::Other { name }) => name.clone(),
            Resource::Alias { alias } => alias.clone(),
            Resource::Mac { mac } => mac.to_string(),
            Resource::Mtu { mtu } => mtu.to_string(),
            Resource::Master { master } => master.clone(),
            Resource::LinkLocal { enabled } => if *enabled {
                "ipv6 link-local"
            } else {
                "no ipv6 link-local"
            }
            .to_string(),
            Resource::Up { up } => if *up { "up" } else { "down" }.to_string(),
            Resource::Qdisc {
                rate_bits_per_second,
            } => format!("tbf rate {rate_bits_per_second}bit"),
            Resource::Address { address, .. } => address.to_string(),
            Resource::Route(route) => {
                let mut text = route.to.to_string();
                if let Some(via) = route.via {
                    text.push_str(&format!(" via {via}"));
                }
                if let Some(dev) = &route.dev {
                    text.push_str(&format!(" dev {dev}"));
                }
                text.push_str(&format!(" metric {}", route.metric));
                if route.table != MAIN_TABLE {
                    text.push_str(&format!(" table {}", route.table));
                }
                text
            }
            Resource::Fdb { dst, .. } => format!("00:00:00:00:00:00 dst {dst}"),
        }
    }
}

/// A set of kernel objects: what the file wants, or what the kernel has.
pub type Resources = BTreeMap<ResourceId, Resource>;

/// What the file asks for, in one mode.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub topology: String,
    pub resources: Resources,
}

impl Desired {
    /// Namespaces this topology creates (and so wholly owns).
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.resources
            .keys()
            .filter(|id| id.kind == Kind::Namespace)
            .map(|id| id.ns.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_compare_as_the_kernel_shows_them() {
        let sysctl = |value: &str| Resource::Sysctl {
            value: value.to_string(),
        };
        assert!(sysctl("01").is_satisfied_by(&sysctl("1")));
        assert!(sysctl("4096 87380  6291456").is_satisfied_by(&sysctl("4096\t87380\t6291456")));
        assert!(!sysctl("1").is_satisfied_by(&sysctl("0")));
        assert!(!sysctl("1 2").is_satisfied_by(&sysctl("1")));
        assert!(!sysctl("on").is_satisfied_by(&sysctl("off")));
    }
}

//! The topology file, as typed Rust (docs/FORMAT.md is the contract; the JSON
//! Schema in `schemas/` is generated from these types).
//!
//! Every value keeps its source location (`Sp`), and scalars that need
//! parsing are `Parsed`, so validation can point at any value it rejects.

mod scalars;
mod spanned;

pub use scalars::{Endpoint, IfaceAddr, Ip, Mac, Network, Rate, RouteDest, parse_mac_bytes};
pub use spanned::{Parsed, Sp, Span};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

/// Topology names: `[a-z0-9-]`, 1..=16 characters.
pub const TOPOLOGY_NAME_PATTERN: &str = "^[a-z0-9-]{1,16}$";
/// Host, bridge and pod names (they name namespaces): `[A-Za-z0-9_.-]`,
/// 1..=64 characters, not `.` or `..`.
pub const OBJECT_NAME_PATTERN: &str = r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,64}$";
/// Interface names: 1..=15 bytes, no `/`, `:`, `%` or whitespace, not `.`
/// or `..`.
/// (The schema counts characters; validation counts bytes.)
pub const IFNAME_PATTERN: &str = r"^(?!\.\.?$)[^/:%\s]{1,15}$";
/// Namespaced sysctl keys: `net.` and then dotted words.
pub const SYSCTL_PATTERN: &str = r"^net(\.[A-Za-z0-9_-]+)+$";

/// A netloom topology (format version 1).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "netloom topology")]
pub struct Topology {
    /// The topology's identity, used in every ownership mark.
    #[schemars(regex(pattern = TOPOLOGY_NAME_PATTERN))]
    pub name: Sp<String>,
    /// Machines. Omitted: one implicit host, the machine netloom runs on.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": OBJECT_NAME_PATTERN }))]
    pub hosts: IndexMap<Sp<String>, Host>,
    /// How hosts reach each other's `pod_cidr`.
    #[serde(default)]
    pub routing: Option<Sp<Routing>>,
    /// Linux bridges, by name.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": OBJECT_NAME_PATTERN }))]
    pub bridges: IndexMap<Sp<String>, Bridge>,
    /// Pods: each one is a named network namespace.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": OBJECT_NAME_PATTERN }))]
    pub pods: IndexMap<Sp<String>, Pod>,
    /// veth pairs between two endpoints.
    #[serde(default)]
    pub links: Vec<Sp<Link>>,
    /// VXLAN segments that stretch bridges across hosts.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": IFNAME_PATTERN }))]
    pub overlays: IndexMap<Sp<String>, Overlay>,
    /// Reachability that must hold after apply (`netloom check`).
    #[serde(default)]
    pub expect: Vec<Sp<Expectation>>,
}

/// How hosts reach each other's pod networks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// No routes between hosts.
    #[default]
    None,
    /// Every host routes every other host's `pod_cidr` via that host's underlay address.
    HostGw,
}

/// A machine: emulated as a namespace in lab mode, the real machine with `--host`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The host's address on the underlay network, with prefix length.
    #[schemars(extend("format" = "ip-with-prefix"))]
    pub underlay: Option<Parsed<IfaceAddr>>,
    /// The host's underlay interface (default `eth0`).
    #[schemars(regex(pattern = IFNAME_PATTERN))]
    pub underlay_interface: Option<Sp<String>>,
    /// The network of this host's pods and bridges.
    pub pod_cidr: Option<Parsed<Network>>,
    /// IP forwarding (default: on in lab mode, left alone on a real host).
    pub forwarding: Option<Sp<bool>>,
    /// Settings of host-side link ends.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": IFNAME_PATTERN }))]
    pub interfaces: IndexMap<Sp<String>, Interface>,
    /// Routes in the host's namespace.
    #[serde(default)]
    pub routes: Vec<Sp<Route>>,
}

/// A Linux bridge.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    /// The host the bridge lives on (optional when there is at most one host).
    pub host: Option<Sp<String>>,
    /// The bridge's interface name (default: its key).
    #[schemars(regex(pattern = IFNAME_PATTERN))]
    pub ifname: Option<Sp<String>>,
    /// Addresses of the bridge, with prefix length.
    #[serde(default)]
    pub addresses: Vec<Parsed<IfaceAddr>>,
    /// MTU, set after the ports have joined.
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<Sp<u32>>,
    /// MAC address (default: derived from topology and bridge name, stable).
    #[schemars(regex(pattern = MAC_PATTERN))]
    pub mac: Option<Parsed<Mac>>,
}

/// A pod: a named network namespace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pod {
    /// The host the pod runs on (optional when there is at most one host).
    pub host: Option<Sp<String>>,
    /// The namespace name under /run/netns (default: the pod's name).
    #[schemars(regex(pattern = OBJECT_NAME_PATTERN))]
    pub netns: Option<Sp<String>>,
    /// The pod's interfaces, by name.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": IFNAME_PATTERN }))]
    pub interfaces: IndexMap<Sp<String>, Interface>,
    /// Routes in the pod's namespace.
    #[serde(default)]
    pub routes: Vec<Sp<Route>>,
    /// Namespaced `net.*` sysctls.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": SYSCTL_PATTERN }))]
    pub sysctls: IndexMap<Sp<String>, Sp<String>>,
}

/// Settings of an interface that a link (or the `bridge:` shorthand) creates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Addresses, with prefix length.
    #[serde(default)]
    pub addresses: Vec<Parsed<IfaceAddr>>,
    /// MAC address.
    #[schemars(regex(pattern = MAC_PATTERN))]
    pub mac: Option<Parsed<Mac>>,
    /// MTU (both ends of a veth get the same).
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<Sp<u32>>,
    /// Shorthand: a link from this interface to a port of this bridge.
    pub bridge: Option<Sp<String>>,
    /// Whether the interface gets an IPv6 link-local address (default:
    /// only if it has an IPv6 address).
    pub ipv6_link_local: Option<Sp<bool>>,
}

/// A veth pair.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The two ends, each `OWNER:ifname` (OWNER: a pod, bridge or host).
    #[schemars(length(min = 2, max = 2))]
    pub endpoints: Sp<Vec<Parsed<Endpoint>>>,
    /// MTU of both ends.
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<Sp<u32>>,
    /// Egress shaping on both ends, e.g. `100mbit`.
    #[schemars(regex(pattern = RATE_PATTERN))]
    pub rate: Option<Parsed<Rate>>,
}

/// A route.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A network in CIDR notation, or `default`.
    pub to: Parsed<RouteDest>,
    /// The gateway.
    pub via: Option<Parsed<Ip>>,
    /// The outgoing interface (required without `via`).
    #[schemars(regex(pattern = IFNAME_PATTERN))]
    pub dev: Option<Sp<String>>,
    /// Route metric (unset: the kernel's default).
    pub metric: Option<Sp<u32>>,
    /// Routing table id (unset: the main table, 254; 255 is the kernel's).
    #[schemars(range(min = 1))]
    pub table: Option<Sp<u32>>,
}

/// A VXLAN segment stretching one bridge on each member host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// VXLAN network identifier.
    #[schemars(range(min = 1, max = 16777215))]
    pub vni: Sp<u32>,
    /// One bridge on each member host.
    pub bridges: Vec<Sp<String>>,
    /// UDP port (default 4789).
    #[schemars(range(min = 1))]
    pub port: Option<Sp<u16>>,
}

/// Reachability checked with real traffic by `netloom check`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The pod the traffic starts in.
    pub from: Sp<String>,
    /// A pod name or an address.
    pub to: Sp<String>,
    /// TCP port whose handshake must complete (without: ICMP echo).
    #[schemars(range(min = 1))]
    pub port: Option<Sp<u16>>,
    /// Which address of the `to` pod to use.
    pub address: Option<Parsed<Ip>>,
    /// Whether the target must be reachable (default true).
    pub reach: Option<Sp<bool>>,
}

/// MAC addresses: six hex pairs separated by colons.
pub const MAC_PATTERN: &str = "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$";
/// Rates: a whole number and a tc unit.
pub const RATE_PATTERN: &str = "^[0-9]+([kmgtKMGT]?([bB][iI][tT]|[bB][pP][sS]))$";

impl Topology {
    /// Bridges, pods and hosts share one namespace of names; this finds
    /// what a name refers to.
    pub fn owner_kind(&self, name: &str) -> Option<OwnerKind> {
        if self.pods.contains_key(name) {
            Some(OwnerKind::Pod)
        } else if self.bridges.contains_key(name) {
            Some(OwnerKind::Bridge)
        } else if self.hosts.contains_key(name) {
            Some(OwnerKind::Host)
        } else {
            None
        }
    }
}

/// What an endpoint's OWNER names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    Pod,
    Bridge,
    Host,
}

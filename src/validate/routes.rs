//! Routes: a gateway or a device, families that agree, a gateway on a
//! directly connected network of the same namespace, a table netloom may
//! write, and each route (table, family, destination, metric) once per
//! namespace.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::addresses::subnet_edge;
use super::context::{Context, Iface, Ns, Place};
use super::names::ifname_problem;
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::model::{LOCAL_TABLE, MAIN_TABLE};
use crate::spec::{Ip, RouteDest, Routing, Sp, Span};

/// The kernel's metric for a route that sets none: 0 for IPv4, 1024 for
/// IPv6 (which also stores an explicit 0 as 1024).
const IPV6_DEFAULT_METRIC: u32 = 1024;

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let host_gw = t.routing.as_ref().map(|r| r.value) == Some(Routing::HostGw);
    for (name, host) in &t.hosts {
        let ns = Ns::Place(Place::Host(name.as_str()));
        let implied = if host_gw {
            host_gw_keys(cx, name)
        } else {
            HashMap::new()
        };
        namespace(cx, ns, &host.routes, &implied, out);
    }
    for (name, pod) in &t.pods {
        namespace(
            cx,
            Ns::Pod(name.as_str()),
            &pod.routes,
            &HashMap::new(),
            out,
        );
    }
}

/// What identifies a route in the kernel.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    to: IpNet,
    metric: u32,
    table: u32,
}

/// The routes `routing: host-gw` adds on a host: to every other host's
/// pod_cidr, with the kernel's default metric.
fn host_gw_keys(cx: &Context, host: &str) -> HashMap<Key, String> {
    let others = cx.t.hosts.iter().filter(|(name, _)| name.as_str() != host);
    others
        .filter_map(|(name, other)| {
            let to = other.pod_cidr.as_ref()?.ok()?.0;
            let metric = default_metric(&to);
            let table = MAIN_TABLE;
            Some((Key { to, metric, table }, name.value.clone()))
        })
        .collect()
}

fn default_metric(to: &IpNet) -> u32 {
    match to {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => IPV6_DEFAULT_METRIC,
    }
}

fn namespace(
    cx: &Context,
    ns: Ns,
    routes: &[Sp<crate::spec::Route>],
    implied: &HashMap<Key, String>,
    out: &mut Vec<Diagnostic>,
) {
    if routes.is_empty() {
        return;
    }
    let ifaces = cx.interfaces(ns);
    let by_name: HashMap<&str, &Iface> = ifaces.iter().map(|i| (i.name.as_str(), i)).collect();
    let all = Subnets::of(ifaces.iter());
    let mut keys: Vec<(Key, Span)> = Vec::new();
    for route in routes {
        let Some(to) = route.to.ok() else { continue };
        let table = match &route.table {
            Some(table) if table.value == 0 || table.value == LOCAL_TABLE => {
                out.push(table_problem(table));
                continue;
            }
            Some(table) => table.value,
            None => MAIN_TABLE,
        };
        let via = match &route.via {
            Some(via) => match via.ok() {
                Some(&Ip(ip)) => Some((ip, via.span())),
                None => continue,
            },
            None => None,
        };
        let dev = route.dev.as_ref().filter(|d| ifname_problem(d).is_none());
        let dev_iface = match dev {
            Some(dev) => match by_name.get(dev.as_str()) {
                Some(iface) => Some(*iface),
                None => {
                    let names = ifaces.iter().map(|i| i.name.as_str());
                    out.push(
                        Diagnostic::new(dev.span, format!("{ns} has no interface `{dev}`"))
                            .with_label("unknown interface")
                            .with_help(cx.suggest(dev, &format!("interfaces of {ns}"), names)),
                    );
                    continue;
                }
            },
            None => None,
        };
        let to = match (to, via) {
            (RouteDest::Default, None) => {
                out.push(
                    Diagnostic::new(
                        route.to.span(),
                        "`to: default` needs `via`, which gives it its family",
                    )
                    .with_label("default without via")
                    .with_help(
                        "without a gateway, write `to: 0.0.0.0/0` or `to: ::/0`, with `dev`",
                    ),
                );
                continue;
            }
            (RouteDest::Default, Some((ip, _))) => match ip {
                IpAddr::V4(_) => IpNet::V4(Default::default()),
                IpAddr::V6(_) => IpNet::V6(Default::default()),
            },
            (RouteDest::Net(net), _) => *net,
        };
        match via {
            None if route.dev.is_none() => out.push(
                Diagnostic::new(route.to.span(), "a route without `via` needs `dev`")
                    .with_label("no via, no dev")
                    .with_help("add `via:` with the gateway, or `dev:` with the interface the destination is on"),
            ),
            None => {}
            Some((ip, span)) if ip.is_ipv4() != to.addr().is_ipv4() => out.push(
                Diagnostic::new(span, format!("gateway {ip} and destination {to} are of different IP families"))
                    .with_label("wrong family")
                    .with_help(format!("an {} route needs an {} gateway", family(&to.addr()), family(&to.addr()))),
            ),
            Some((ip, span)) => {
                let via = Via { ip, span, has_dev: route.dev.is_some() };
                gateway(ns, via, &all, dev_iface, out);
            }
        }
        let metric = match &route.metric {
            Some(metric) if metric.value == 0 && to.addr().is_ipv6() => {
                out.push(
                    Diagnostic::new(
                        metric.span,
                        "an IPv6 route's metric 0 is stored by the kernel as 1024",
                    )
                    .with_label("becomes 1024")
                    .with_help("write `metric: 1024`, or leave `metric` out"),
                );
                continue;
            }
            Some(metric) => metric.value,
            None => default_metric(&to),
        };
        let key = Key { to, metric, table };
        if let Some(host) = implied.get(&key) {
            out.push(
                Diagnostic::new(
                    route.to.span(),
                    format!("`routing: host-gw` already adds a route to {to} (host `{host}`'s pod_cidr) with metric {metric}"),
                )
                .with_label("duplicate route")
                .with_help("remove this route, or give it another `metric`"),
            );
        } else {
            keys.push((key, route.to.span()));
        }
    }
    for ((_, first), (key, span)) in repeats(keys.into_iter().map(|k| (k.0, k)), |(_, s)| *s) {
        out.push(
            Diagnostic::new(
                span,
                format!("{ns} already has a route to {} with metric {}{}{}", key.to, key.metric, in_table(key.table), at_line(first)),
            )
            .with_label("duplicate route")
            .with_help("a route is identified by its table, destination and metric: remove one, or give it another `metric`"),
        );
    }
}

/// Table 0 means "unspecified" to the kernel, and 255 is its own `local`
/// table (the routes it makes for every address).
fn table_problem(table: &Sp<u32>) -> Diagnostic {
    let what = if table.value == 0 {
        "table 0 is not a routing table (the kernel reads it as \"unspecified\")"
    } else {
        "table 255 is the kernel's `local` table: it holds the routes the kernel makes for addresses"
    };
    Diagnostic::new(table.span, what)
        .with_label("not a table netloom writes")
        .with_help(format!(
            "use a table id from 1 to 4294967295 other than 255, or leave `table` out for the main table ({MAIN_TABLE})"
        ))
}

/// " in table N" for a table other than main.
fn in_table(table: u32) -> String {
    if table == MAIN_TABLE {
        String::new()
    } else {
        format!(" in table {table}")
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// The networks of some interfaces, indexed so that finding the one that
/// holds an address costs one lookup per prefix length, however many
/// addresses a namespace has.
struct Subnets {
    own: HashSet<IpAddr>,
    networks: HashSet<IpNet>,
    /// In file order, for the help line.
    listed: Vec<IpNet>,
}

impl Subnets {
    fn of<'i, 'a: 'i>(ifaces: impl Iterator<Item = &'i Iface<'a>>) -> Subnets {
        let mut subnets = Subnets {
            own: HashSet::new(),
            networks: HashSet::new(),
            listed: Vec::new(),
        };
        let nets = ifaces.flat_map(|i| i.addresses.iter().filter_map(|a| a.ok()));
        for net in nets.map(|a| a.0) {
            subnets.own.insert(net.addr());
            if subnets.networks.insert(net.trunc()) {
                subnets.listed.push(net.trunc());
            }
        }
        subnets
    }

    /// The connected networks that hold `ip`.
    fn holding(&self, ip: IpAddr) -> impl Iterator<Item = IpNet> + '_ {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (0..=max)
            .filter_map(move |len| IpNet::new(ip, len).ok().map(|net| net.trunc()))
            .filter(|net| self.networks.contains(net))
    }

    fn reach(&self, ip: IpAddr) -> bool {
        self.holding(ip).next().is_some()
    }
}

/// A route's gateway.
struct Via {
    ip: IpAddr,
    span: Span,
    has_dev: bool,
}

/// The kernel takes a gateway only on a directly connected network: in the
/// subnet of an address of the namespace (of `dev`, when given), and not
/// one of the namespace's own addresses. An IPv6 link-local gateway is on
/// every link, so it needs `dev` to say which.
fn gateway(ns: Ns, via: Via, all: &Subnets, dev: Option<&Iface>, out: &mut Vec<Diagnostic>) {
    let Via { ip, span, has_dev } = via;
    if let IpAddr::V6(v6) = ip
        && v6.is_unicast_link_local()
    {
        if !has_dev {
            out.push(
                Diagnostic::new(span, format!("link-local gateway {ip} needs `dev`"))
                    .with_label("which link?")
                    .with_help("a link-local address is on every link: add `dev:` with the interface it is on"),
            );
        }
        return;
    }
    if all.own.contains(&ip) {
        out.push(
            Diagnostic::new(span, format!("gateway {ip} is an address of {ns} itself"))
                .with_label("own address")
                .with_help(
                    "the gateway is the next hop: an address of a neighbour on a connected network",
                ),
        );
        return;
    }
    let dev_subnets;
    let candidates = match dev {
        Some(iface) => {
            dev_subnets = Subnets::of(std::iter::once(iface));
            &dev_subnets
        }
        None => all,
    };
    if let Some((net, edge)) = candidates
        .holding(ip)
        .find_map(|net| Some((net, subnet_edge(ip, net)?)))
    {
        // The kernel refuses a broadcast gateway half way through an apply
        // ("Nexthop has invalid gateway"); a network address answers nobody.
        out.push(
            Diagnostic::new(span, format!("gateway {ip} is the {edge} address of {net}"))
                .with_label("not a host address")
                .with_help("the gateway is a neighbour's address: a host address of the subnet, like the bridge's"),
        );
        return;
    }
    if candidates.reach(ip) {
        return;
    }
    let whose = match dev {
        Some(iface) => format!("`{}`", iface.name),
        None => ns.to_string(),
    };
    let subnets: Vec<String> = (candidates.listed.iter())
        .filter(|net| net.addr().is_ipv4() == ip.is_ipv4())
        .map(|net| net.to_string())
        .take(4)
        .collect();
    let help = if subnets.is_empty() {
        format!(
            "{whose} has no {} address: give it one in the gateway's subnet",
            family(&ip)
        )
    } else {
        format!(
            "{whose} is on {}: the gateway must be in one of them",
            subnets.join(", ")
        )
    };
    out.push(
        Diagnostic::new(span, format!("gateway {ip} is not on a network of {whose}"))
            .with_label("unreachable gateway")
            .with_help(help),
    );
}

#[cfg(test)]
mod tests {
    use crate::model::derived_ifname;
    use crate::validate::testing::{at, last, one, valid};

    /// A pod with addresses on eth0 (bridged) and eth1 (linked), and routes.
    fn pod(routes: &str) -> String {
        format!(
            "name: t\nbridges:\n  br0: {{ addresses: [10.0.0.1/24] }}\npods:\n  web:\n    interfaces:\n      eth0: {{ bridge: br0, addresses: [10.0.0.2/24, \"fd00::2/64\"] }}\n      eth1: {{ addresses: [10.1.0.2/24] }}\n    routes:\n{routes}links:\n  - endpoints: [web:eth1, br0:p1]\n"
        )
    }

    #[test]
    fn routes_with_a_gateway_or_a_device() {
        valid(&pod(
            "      - { to: default, via: 10.0.0.1 }\n      - { to: \"::/0\", via: \"fd00::1\" }\n      - { to: 10.96.0.0/12, via: 10.1.0.1, metric: 100 }\n      - { to: 10.97.0.0/16, dev: eth1 }\n      - { to: 0.0.0.0/0, dev: eth0, metric: 10 }\n      - { to: 10.98.0.0/16, dev: lo }\n      - { to: \"fd01::/64\", via: \"fe80::1\", dev: eth0 }\n",
        ));
    }

    /// The kernel refuses a broadcast gateway ("Nexthop has invalid
    /// gateway") half way through an apply; a network address answers
    /// nobody. Both are refused before anything is touched.
    #[test]
    fn a_gateway_is_a_host_address() {
        for (via, edge) in [("10.0.0.255", "broadcast"), ("10.0.0.0", "network")] {
            let text = pod(&format!("      - {{ to: 10.96.0.0/12, via: {via} }}\n"));
            let problem = one(
                &text,
                &format!("gateway {via} is the {edge} address of 10.0.0.0/24"),
                last(&text, via),
            );
            assert!(problem.help.unwrap().contains("host address"));
        }
        // Through `dev`, and on a /31, whose two addresses are both hosts.
        let text = pod("      - { to: 10.96.0.0/12, via: 10.1.0.255, dev: eth1 }\n");
        one(
            &text,
            "gateway 10.1.0.255 is the broadcast address of 10.1.0.0/24",
            last(&text, "10.1.0.255"),
        );
        valid(
            "name: t\npods:\n  a:\n    interfaces: { eth0: { addresses: [10.0.0.0/31] } }\n    routes: [ { to: default, via: 10.0.0.1 } ]\n  b:\n    interfaces: { eth0: { addresses: [10.0.0.1/31] } }\n    routes: [ { to: default, via: 10.0.0.0 } ]\nlinks:\n  - endpoints: [a:eth0, b:eth0]\n",
        );
    }

    #[test]
    fn default_needs_a_gateway() {
        let text = pod("      - { to: default, dev: eth0 }\n");
        let problem = one(&text, "`to: default` needs `via`", at(&text, "default"));
        assert_eq!(
            problem.help.as_deref(),
            Some("without a gateway, write `to: 0.0.0.0/0` or `to: ::/0`, with `dev`")
        );
    }

    #[test]
    fn without_a_gateway_a_device() {
        let text = pod("      - { to: 10.96.0.0/12 }\n");
        let problem = one(
            &text,
            "a route without `via` needs `dev`",
            at(&text, "10.96"),
        );
        assert!(problem.help.unwrap().contains("add `via:`"));
    }

    #[test]
    fn gateway_and_destination_of_one_family() {
        let text = pod("      - { to: 10.96.0.0/12, via: \"fd00::1\" }\n");
        one(
            &text,
            "gateway fd00::1 and destination 10.96.0.0/12 are of different IP families",
            at(&text, "\"fd00::1\""),
        );
    }

    #[test]
    fn dev_names_an_interface_of_the_namespace() {
        let text = pod("      - { to: 10.96.0.0/12, dev: eht1 }\n");
        let problem = one(
            &text,
            "pod `web` has no interface `eht1`",
            at(&text, "eht1"),
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `eth1`?"));
        // A bridge's port is not in the pod.
        let text = pod("      - { to: 10.96.0.0/12, dev: p1 }\n");
        one(&text, "pod `web` has no interface `p1`", at(&text, "p1 }"));
    }

    #[test]
    fn a_hosts_devices_include_bridges_and_derived_names() {
        let port = derived_ifname("t", "web", "eth0");
        let text = format!(
            "name: t\nhosts:\n  n1:\n    underlay: 192.168.1.11/24\n    routes:\n      - {{ to: 10.1.0.0/16, dev: cbr0 }}\n      - {{ to: 10.2.0.0/16, dev: {port} }}\n      - {{ to: 10.3.0.0/16, dev: eth0 }}\n      - {{ to: 10.4.0.0/16, dev: p0 }}\n      - {{ to: 10.5.0.0/16, dev: vx1 }}\n      - {{ to: 10.99.0.0/16, via: 192.168.1.1 }}\n      - {{ to: 10.98.0.0/16, via: 10.244.1.7 }}\n    pod_cidr: 10.244.1.0/24\n  n2: {{ underlay: 192.168.1.12/24 }}\nbridges:\n  b1: {{ host: n1, ifname: cbr0, addresses: [10.244.1.1/24] }}\n  b2: {{ host: n2 }}\npods:\n  web: {{ host: n1, interfaces: {{ eth0: {{ bridge: b1 }} }} }}\nlinks:\n  - endpoints: [b1:p0, web:eth1]\noverlays:\n  vx1: {{ vni: 1, bridges: [b1, b2] }}\n"
        );
        valid(&text);
        let text = text.replace("dev: p0", "dev: p9");
        one(&text, "host `n1` has no interface `p9`", at(&text, "p9"));
    }

    #[test]
    fn a_gateway_is_on_a_connected_network() {
        let text = pod("      - { to: default, via: 10.9.0.1 }\n");
        let problem = one(
            &text,
            "gateway 10.9.0.1 is not on a network of pod `web`",
            at(&text, "10.9.0.1"),
        );
        assert_eq!(
            problem.help.as_deref(),
            Some("pod `web` is on 10.0.0.0/24, 10.1.0.0/24: the gateway must be in one of them")
        );
        // With `dev`, on that device's networks.
        let text = pod("      - { to: default, via: 10.1.0.1, dev: eth0 }\n");
        let problem = one(
            &text,
            "gateway 10.1.0.1 is not on a network of `eth0`",
            at(&text, "10.1.0.1"),
        );
        assert_eq!(
            problem.help.as_deref(),
            Some("`eth0` is on 10.0.0.0/24: the gateway must be in one of them")
        );
        let text = "name: t\npods:\n  web:\n    routes:\n      - { to: default, via: 10.0.0.1 }\n";
        let problem = one(text, "not on a network of pod `web`", at(text, "10.0.0.1"));
        assert_eq!(
            problem.help.as_deref(),
            Some("pod `web` has no IPv4 address: give it one in the gateway's subnet")
        );
    }

    #[test]
    fn a_gateway_is_not_an_own_address() {
        let text = pod("      - { to: default, via: 10.1.0.2 }\n");
        one(
            &text,
            "gateway 10.1.0.2 is an address of pod `web` itself",
            last(&text, "10.1.0.2"),
        );
    }

    #[test]
    fn a_link_local_gateway_needs_a_device() {
        let text = pod("      - { to: \"::/0\", via: \"fe80::1\" }\n");
        one(
            &text,
            "link-local gateway fe80::1 needs `dev`",
            at(&text, "\"fe80::1\""),
        );
    }

    #[test]
    fn a_hosts_gateways_are_on_its_underlay_interfaces_and_bridges() {
        let host = "name: t\nhosts:\n  n1:\n    underlay: 192.168.1.11/24\n    interfaces: { lab0: { addresses: [172.30.0.1/24] } }\n    routes:\n      - { to: 10.99.0.0/16, via: 192.168.1.1 }\n      - { to: 10.98.0.0/16, via: 172.30.0.2 }\n      - { to: 10.97.0.0/16, via: 10.0.0.9 }\nbridges:\n  br0: { addresses: [10.0.0.1/24] }\npods:\n  web: {}\nlinks:\n  - endpoints: [n1:lab0, web:eth0]\n";
        valid(host);
        let text = host.replace("via: 10.0.0.9", "via: 10.7.0.9");
        one(
            &text,
            "gateway 10.7.0.9 is not on a network of host `n1`",
            at(&text, "10.7.0.9"),
        );
    }

    #[test]
    fn a_route_is_declared_once_per_namespace() {
        let text = pod(
            "      - { to: default, via: 10.0.0.1 }\n      - { to: 0.0.0.0/0, via: 10.1.0.1 }\n",
        );
        let problem = one(
            &text,
            "pod `web` already has a route to 0.0.0.0/0 with metric 0 (line 10)",
            at(&text, "0.0.0.0/0"),
        );
        assert!(problem.help.unwrap().contains("another `metric`"));
        valid(&pod(
            "      - { to: default, via: 10.0.0.1 }\n      - { to: 0.0.0.0/0, via: 10.1.0.1, metric: 100 }\n",
        ));
        // Unset is the kernel's default: 0 for IPv4, 1024 for IPv6.
        let text = pod(
            "      - { to: 10.96.0.0/12, via: 10.0.0.1 }\n      - { to: 10.96.0.0/12, dev: eth1, metric: 0 }\n",
        );
        one(
            &text,
            "already has a route to 10.96.0.0/12 with metric 0",
            last(&text, "10.96.0.0/12"),
        );
        let text = pod(
            "      - { to: \"fd01::/64\", via: \"fd00::1\" }\n      - { to: \"fd01::/64\", dev: eth0, metric: 1024 }\n",
        );
        one(
            &text,
            "already has a route to fd01::/64 with metric 1024",
            last(&text, "\"fd01::/64\""),
        );
        // The same destination in two namespaces is two routes.
        let two = "name: t\npods:\n  a: { routes: [ { to: 10.0.0.0/8, dev: lo } ] }\n  b: { routes: [ { to: 10.0.0.0/8, dev: lo } ] }\n";
        valid(two);
    }

    #[test]
    fn a_route_is_declared_once_per_table() {
        // The same destination and metric in two tables is two routes.
        valid(&pod(
            "      - { to: default, via: 10.0.0.1 }\n      - { to: default, via: 10.1.0.1, table: 100 }\n",
        ));
        // Table 254 is the main table, written out.
        let text = pod(
            "      - { to: default, via: 10.0.0.1 }\n      - { to: 0.0.0.0/0, via: 10.1.0.1, table: 254 }\n",
        );
        one(
            &text,
            "already has a route to 0.0.0.0/0 with metric 0 (line 10)",
            at(&text, "0.0.0.0/0"),
        );
        let text = pod(
            "      - { to: default, via: 10.0.0.1, table: 7 }\n      - { to: 0.0.0.0/0, via: 10.1.0.1, table: 7 }\n",
        );
        one(
            &text,
            "already has a route to 0.0.0.0/0 with metric 0 in table 7 (line 10)",
            at(&text, "0.0.0.0/0"),
        );
    }

    #[test]
    fn the_unspecified_and_local_tables_are_refused() {
        let text = pod("      - { to: default, via: 10.0.0.1, table: 255 }\n");
        let problem = one(
            &text,
            "table 255 is the kernel's `local` table",
            at(&text, "255"),
        );
        assert!(problem.help.unwrap().contains("leave `table` out"));
        let text = pod("      - { to: default, via: 10.0.0.1, table: 0 }\n");
        one(&text, "table 0 is not a routing table", at(&text, "0 }"));
    }

    #[test]
    fn an_ipv6_metric_0_would_become_1024() {
        let text = pod("      - { to: \"fd01::/64\", via: \"fd00::1\", metric: 0 }\n");
        let problem = one(
            &text,
            "metric 0 is stored by the kernel as 1024",
            at(&text, "0 }"),
        );
        assert_eq!(
            problem.help.as_deref(),
            Some("write `metric: 1024`, or leave `metric` out")
        );
    }

    #[test]
    fn host_gw_routes_count_as_declared() {
        let text = "name: t\nrouting: host-gw\nhosts:\n  n1:\n    underlay: 192.168.1.11/24\n    pod_cidr: 10.244.1.0/24\n    routes: [ { to: 10.244.2.0/24, via: 192.168.1.1 } ]\n  n2: { underlay: 192.168.1.12/24, pod_cidr: 10.244.2.0/24 }\n";
        let problem = one(
            text,
            "`routing: host-gw` already adds a route to 10.244.2.0/24 (host `n2`'s pod_cidr) with metric 0",
            at(text, "10.244.2.0/24"),
        );
        assert!(problem.help.unwrap().contains("another `metric`"));
        valid(&text.replace("via: 192.168.1.1 }", "via: 192.168.1.1, metric: 50 }"));
    }
}

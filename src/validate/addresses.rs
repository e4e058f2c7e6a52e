//! Addresses: each used once in the whole file, each a host address of
//! its subnet, and pod and bridge addresses inside their host's `pod_cidr`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::context::{Context, Place};
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::spec::{IfaceAddr, Parsed};

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    duplicates(cx, out);
    unusable(cx, out);
    pod_cidrs(cx, out);
}

/// Every interface address of the file, with what it is on, in map order.
fn every_address<'t>(cx: &Context<'t>) -> Vec<(&'t Parsed<IfaceAddr>, String)> {
    let t = cx.t;
    let mut all = Vec::new();
    for (name, host) in &t.hosts {
        if let Some(address) = &host.underlay {
            all.push((address, format!("the underlay of host `{name}`")));
        }
        for (ifname, settings) in &host.interfaces {
            for address in &settings.addresses {
                all.push((address, format!("interface `{ifname}` of host `{name}`")));
            }
        }
    }
    for (key, bridge) in &t.bridges {
        for address in &bridge.addresses {
            all.push((address, format!("bridge `{key}`")));
        }
    }
    for (name, pod) in &t.pods {
        for (ifname, settings) in &pod.interfaces {
            for address in &settings.addresses {
                all.push((address, format!("interface `{ifname}` of pod `{name}`")));
            }
        }
    }
    all
}

/// One machine may hold every namespace (lab mode), and DAD is off
/// (docs/FORMAT.md), so the same address twice is an error even on separate
/// segments (link-local ones included): the file is the only place it can
/// be caught.
fn duplicates(cx: &Context, out: &mut Vec<Diagnostic>) {
    let all = every_address(cx).into_iter().filter_map(|(address, what)| {
        let IfaceAddr(net) = address.ok()?;
        let ip = net.addr();
        Some((ip, (ip, (address.span(), what))))
    });
    for ((_, (first_span, first)), (address, (span, _))) in repeats(all, |(_, (span, _))| *span) {
        out.push(
            Diagnostic::new(
                span,
                format!(
                    "address {address} is already used by {first}{}",
                    at_line(first_span)
                ),
            )
            .with_label("duplicate address")
            .with_help(
                "every address is used once in a topology (prefix lengths aside): pick another",
            ),
        );
    }
}

/// Addresses the kernel takes but that cannot work on an interface: a /0
/// prefix (the whole address space on one link), and an IPv4 subnet's
/// network or broadcast address (prefixes of /31 and /32 have neither: RFC
/// 3021).
fn unusable(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (address, what) in every_address(cx) {
        let Some(&IfaceAddr(net)) = address.ok() else {
            continue;
        };
        let problem = if net.prefix_len() == 0 {
            Some((
                format!("{net} of {what} has a /0 prefix: its subnet would be every address"),
                "/0 prefix",
                "write the prefix length of the interface's subnet, e.g. /24".to_string(),
            ))
        } else {
            subnet_edge(net.addr(), net).map(|edge| {
                (
                    format!("{net} of {what} is the {edge} address of {}", net.trunc()),
                    "not a host address",
                    format!(
                        "an interface takes a host address of {}: {}",
                        net.trunc(),
                        host_range(net)
                    ),
                )
            })
        };
        if let Some((message, label, help)) = problem {
            out.push(
                Diagnostic::new(address.span(), message)
                    .with_label(label)
                    .with_help(help),
            );
        }
    }
}

/// "network" or "broadcast" when `ip` is one of those of the IPv4 subnet
/// `net` (of a prefix shorter than /31); `None` otherwise.
pub(super) fn subnet_edge(ip: IpAddr, net: IpNet) -> Option<&'static str> {
    let (IpAddr::V4(ip), IpNet::V4(net)) = (ip, net) else {
        return None;
    };
    if net.prefix_len() >= 31 || !net.contains(&ip) {
        None
    } else if ip == net.network() {
        Some("network")
    } else if ip == net.broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

/// "10.0.0.1 to 10.0.0.254" for 10.0.0.0/24.
fn host_range(net: IpNet) -> String {
    match net.hosts().next().zip(net.hosts().last()) {
        Some((first, last)) => format!("{first} to {last}"),
        None => "none".to_string(),
    }
}

/// A host's pods and bridges take their addresses from its `pod_cidr`.
/// Only addresses of the pod_cidr's family are checked: a pod_cidr is one
/// network, and a dual-stack pod's other family has no range to fit in.
/// Host interfaces and underlays are outside it by nature. The address
/// must be inside, not its whole subnet: a pod may see a wider on-link
/// network than its host's share of it.
fn pod_cidrs(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let bridges = t.bridges.iter().map(|(key, b)| {
        let addresses: Vec<_> = b.addresses.iter().collect();
        (
            cx.place(b.host.as_ref()),
            format!("bridge `{key}`"),
            addresses,
        )
    });
    let pods = t.pods.iter().map(|(name, p)| {
        let addresses: Vec<_> = p.interfaces.values().flat_map(|i| &i.addresses).collect();
        (
            cx.place(p.host.as_ref()),
            format!("pod `{name}`"),
            addresses,
        )
    });
    for (place, what, addresses) in bridges.chain(pods) {
        let Some(Place::Host(host)) = place else {
            continue;
        };
        let Some(cidr_value) = &t.hosts[host].pod_cidr else {
            continue;
        };
        let Some(cidr) = cidr_value.ok().map(|c| c.0) else {
            continue;
        };
        for address in addresses {
            let Some(IfaceAddr(net)) = address.ok() else {
                continue;
            };
            let same_family = net.addr().is_ipv4() == cidr.addr().is_ipv4();
            if same_family && !cidr.contains(&net.addr()) {
                out.push(
                    Diagnostic::new(
                        address.span(),
                        format!(
                            "{net} of {what} is outside the `pod_cidr` {cidr} of host `{host}`{}",
                            at_line(cidr_value.span())
                        ),
                    )
                    .with_label("outside pod_cidr")
                    .with_help(format!(
                        "a pod or bridge on `{host}` takes its addresses from {cidr}"
                    )),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{at, last, one, valid};

    #[test]
    fn an_address_is_used_once_in_the_file() {
        let base = "name: t\nhosts:\n  n1: { underlay: 192.168.1.1/24 }\nbridges:\n  br0: { addresses: [10.0.0.1/24] }\npods:\n  web: { interfaces: { eth0: { bridge: br0, addresses: [ADDR] } } }\n";
        valid(&base.replace("ADDR", "10.0.0.2/24"));
        // Prefix lengths aside, against bridges, underlays and pods.
        for (addr, first) in [
            ("10.0.0.1/16", "bridge `br0` (line 5)"),
            ("192.168.1.1/24", "the underlay of host `n1` (line 3)"),
        ] {
            let text = base.replace("ADDR", addr);
            let problem = one(
                &text,
                &format!("is already used by {first}"),
                last(&text, addr),
            );
            assert!(problem.help.unwrap().contains("pick another"));
        }
        let text = "name: t\nhosts:\n  n1:\n    interfaces: { lab0: { addresses: [\"fd00::1/64\"] } }\npods:\n  web: { interfaces: { eth0: { addresses: [\"fd00::1/128\"] } } }\nlinks:\n  - endpoints: [n1:lab0, web:eth0]\n";
        one(
            text,
            "address fd00::1 is already used by interface `lab0` of host `n1`",
            at(text, "\"fd00::1/128"),
        );
        let text = "name: t\nbridges:\n  br0: { addresses: [10.0.0.1/24, 10.0.0.1/32] }\n";
        one(
            text,
            "address 10.0.0.1 is already used by bridge `br0`",
            last(text, "10.0.0.1"),
        );
    }

    #[test]
    fn an_interface_address_is_a_host_address_of_its_subnet() {
        let base = "name: t\nhosts:\n  n1: { underlay: UNDERLAY }\nbridges:\n  br0: { addresses: [BRIDGE] }\npods:\n  web: { interfaces: { eth0: { bridge: br0, addresses: [POD] } } }\n";
        let file = |underlay: &str, bridge: &str, pod: &str| {
            base.replace("UNDERLAY", underlay)
                .replace("BRIDGE", bridge)
                .replace("POD", pod)
        };
        // /31 and /32 have no network or broadcast address; IPv6 has none.
        valid(&file("192.168.1.1/24", "10.0.0.0/31", "10.0.0.1/31"));
        valid(&file("192.168.1.1/24", "10.0.0.7/32", "\"fd00::/64\""));
        let text = file("192.168.1.1/24", "10.0.0.0/24", "10.0.0.2/24");
        let problem = one(
            &text,
            "10.0.0.0/24 of bridge `br0` is the network address of 10.0.0.0/24",
            at(&text, "10.0.0.0/24"),
        );
        assert_eq!(
            problem.help.as_deref(),
            Some("an interface takes a host address of 10.0.0.0/24: 10.0.0.1 to 10.0.0.254")
        );
        let text = file("192.168.1.1/24", "10.0.0.1/24", "10.0.0.255/24");
        one(
            &text,
            "10.0.0.255/24 of interface `eth0` of pod `web` is the broadcast address of 10.0.0.0/24",
            at(&text, "10.0.0.255"),
        );
        let text = file("192.168.0.0/16", "10.0.0.1/24", "10.0.0.2/24");
        one(
            &text,
            "of the underlay of host `n1` is the network address of 192.168.0.0/16",
            at(&text, "192.168.0.0"),
        );
        for slash0 in ["10.0.0.2/0", "\"fd00::2/0\""] {
            let text = file("192.168.1.1/24", "10.0.0.1/24", slash0);
            let problem = one(&text, "has a /0 prefix", at(&text, slash0));
            assert!(problem.help.unwrap().contains("prefix length"));
        }
    }

    const HOST: &str = "name: t\nhosts:\n  n1:\n    pod_cidr: 10.244.1.0/24\n    interfaces: { lab0: { addresses: [172.30.0.1/24] } }\n";

    #[test]
    fn pod_and_bridge_addresses_are_in_the_pod_cidr() {
        let valid_text = format!(
            "{HOST}bridges:\n  br0: {{ addresses: [10.244.1.1/24, \"fd00::1/64\"] }}\npods:\n  web: {{ interfaces: {{ eth0: {{ bridge: br0, addresses: [10.244.1.10/24, \"fd00::10/64\"] }} }} }}\nlinks:\n  - endpoints: [n1:lab0, web:eth1]\n"
        );
        // Host interfaces are outside by nature; IPv6 has no range here.
        valid(&valid_text);
        let text = valid_text.replace("10.244.1.10/24", "10.244.2.10/24");
        let problem = one(
            &text,
            "10.244.2.10/24 of pod `web` is outside the `pod_cidr` 10.244.1.0/24 of host `n1` (line 4)",
            at(&text, "10.244.2.10"),
        );
        assert!(problem.help.unwrap().contains("from 10.244.1.0/24"));
        let text = valid_text.replace("10.244.1.1/24", "10.0.0.1/24");
        one(
            &text,
            "10.0.0.1/24 of bridge `br0` is outside",
            at(&text, "10.0.0.1"),
        );
    }
}

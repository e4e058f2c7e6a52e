//! Addresses: each used once in the whole file, and pod and bridge
//! addresses inside their host's `pod_cidr`.

use std::net::IpAddr;

use super::context::{Context, Place};
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::spec::{IfaceAddr, Parsed, Span};

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    duplicates(cx, out);
    pod_cidrs(cx, out);
}

/// Every address of the file with what it is on. One machine may hold
/// every namespace (lab mode), and DAD is off (docs/FORMAT.md), so the same
/// address twice is an error even on separate segments (link-local ones
/// included): the file is the only place it can be caught.
fn duplicates(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let mut all: Vec<(IpAddr, (Span, String))> = Vec::new();
    let mut add = |addresses: &mut dyn Iterator<Item = &Parsed<IfaceAddr>>, what: String| {
        for address in addresses {
            if let Some(IfaceAddr(net)) = address.ok() {
                all.push((net.addr(), (address.span(), what.clone())));
            }
        }
    };
    for (name, host) in &t.hosts {
        add(
            &mut host.underlay.iter(),
            format!("the underlay of host `{name}`"),
        );
        for (ifname, settings) in &host.interfaces {
            add(
                &mut settings.addresses.iter(),
                format!("interface `{ifname}` of host `{name}`"),
            );
        }
    }
    for (key, bridge) in &t.bridges {
        add(&mut bridge.addresses.iter(), format!("bridge `{key}`"));
    }
    for (name, pod) in &t.pods {
        for (ifname, settings) in &pod.interfaces {
            add(
                &mut settings.addresses.iter(),
                format!("interface `{ifname}` of pod `{name}`"),
            );
        }
    }
    for ((_, (first_span, first)), (address, (span, _))) in repeats(
        all.into_iter().map(|(ip, item)| (ip, (ip, item))),
        |(_, (span, _))| *span,
    ) {
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

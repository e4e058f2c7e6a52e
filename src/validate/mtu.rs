//! MTUs: within the kernel's range, at least IPv6's minimum where an
//! interface has an IPv6 address, and one value for both ends of a veth.

use std::collections::HashSet;

use super::at_line;
use super::context::Context;
use crate::diagnostics::Diagnostic;
use crate::spec::{Endpoint, IfaceAddr, Interface, OwnerKind, Parsed, Sp};

/// The kernel's range for Ethernet-like devices (ETH_MIN_MTU..=ETH_MAX_MTU
/// for veths, bridges and VXLAN).
const MIN_MTU: u32 = 68;
const MAX_MTU: u32 = 65535;
/// IPv6 refuses to run on a link with a smaller MTU (RFC 8200).
const MIN_IPV6_MTU: u32 = 1280;

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let interfaces = (t.hosts.values().flat_map(|h| h.interfaces.values()))
        .chain(t.pods.values().flat_map(|p| p.interfaces.values()));
    for interface in interfaces {
        if let Some(mtu) = &interface.mtu {
            checked(mtu, has_ipv6(&interface.addresses), "this interface", out);
        }
    }
    for bridge in t.bridges.values() {
        if let Some(mtu) = &bridge.mtu {
            checked(mtu, has_ipv6(&bridge.addresses), "this bridge", out);
        }
    }
    for link in &t.links {
        if let Some(mtu) = &link.mtu {
            in_range(mtu, out);
        }
    }
    veths(cx, out);
}

fn has_ipv6(addresses: &[Parsed<IfaceAddr>]) -> bool {
    addresses
        .iter()
        .any(|a| a.ok().is_some_and(|a| a.0.addr().is_ipv6()))
}

/// Range, then IPv6's minimum for an interface that has an IPv6 address.
fn checked(mtu: &Sp<u32>, ipv6: bool, what: &str, out: &mut Vec<Diagnostic>) {
    if in_range(mtu, out) && ipv6 && mtu.value < MIN_IPV6_MTU {
        out.push(
            Diagnostic::new(
                mtu.span,
                format!("MTU {mtu} is below {MIN_IPV6_MTU}, and {what} has an IPv6 address"),
            )
            .with_label("too small for IPv6")
            .with_help(format!("IPv6 needs an MTU of at least {MIN_IPV6_MTU}")),
        );
    }
}

fn in_range(mtu: &Sp<u32>, out: &mut Vec<Diagnostic>) -> bool {
    let ok = (MIN_MTU..=MAX_MTU).contains(&mtu.value);
    if !ok {
        out.push(
            Diagnostic::new(
                mtu.span,
                format!("MTU {mtu} is outside {MIN_MTU}..={MAX_MTU}"),
            )
            .with_label("invalid MTU")
            .with_help(format!(
                "an MTU is {MIN_MTU} to {MAX_MTU}; Ethernet's is 1500"
            )),
        );
    }
    ok
}

/// One end of a veth: its settings, and its bridge when it is a port.
struct VethEnd<'a> {
    name: String,
    settings: Option<&'a Interface>,
    bridge_mtu: Option<&'a Sp<u32>>,
}

impl<'a> VethEnd<'a> {
    fn mtu(&self) -> Option<&'a Sp<u32>> {
        self.settings.and_then(|s| s.mtu.as_ref())
    }

    fn ipv6(&self) -> bool {
        self.settings.is_some_and(|s| has_ipv6(&s.addresses))
    }
}

fn link_end<'a>(cx: &Context<'a>, endpoint: &Endpoint) -> VethEnd<'a> {
    let t = cx.t;
    let ifname = endpoint.ifname.as_str();
    let (settings, bridge_mtu) = match t.owner_kind(&endpoint.owner) {
        Some(OwnerKind::Pod) => (t.pods[endpoint.owner.as_str()].interfaces.get(ifname), None),
        Some(OwnerKind::Host) => (
            t.hosts[endpoint.owner.as_str()].interfaces.get(ifname),
            None,
        ),
        Some(OwnerKind::Bridge) => (None, t.bridges[endpoint.owner.as_str()].mtu.as_ref()),
        None => (None, None),
    };
    VethEnd {
        name: endpoint.to_string(),
        settings,
        bridge_mtu,
    }
}

/// Both ends of a veth get one MTU (docs/FORMAT.md, Link): the link's, else an
/// end's, else a bridge port's bridge's. Two different explicit values are
/// a conflict; the value that wins must suit an end with IPv6.
fn veths(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    // Values too small for an IPv6 end they reach, and that end.
    let mut too_small: Vec<(&Sp<u32>, String)> = Vec::new();
    for link in &t.links {
        let ends: Vec<VethEnd> = link
            .endpoints
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| link_end(cx, e))
            .collect();
        let [a, b] = &ends[..] else { continue };
        if let Some(mtu) = &link.mtu {
            for end in [a, b] {
                if let Some(own) = end.mtu()
                    && own != mtu
                {
                    out.push(conflict(
                        own,
                        &end.name,
                        &format!("this link's `mtu: {mtu}`"),
                        mtu,
                    ));
                }
            }
        } else if let (Some(ma), Some(mb)) = (a.mtu(), b.mtu())
            && ma != mb
        {
            let (first, (later, end)) = if super::position(ma.span) <= super::position(mb.span) {
                (ma, (mb, b))
            } else {
                (mb, (ma, a))
            };
            out.push(conflict(
                later,
                &end.name,
                &format!("the other end's `mtu: {first}`"),
                first,
            ));
        }
        let effective = (link.mtu.as_ref())
            .or(a.mtu())
            .or(b.mtu())
            .or(a.bridge_mtu)
            .or(b.bridge_mtu);
        for end in [a, b] {
            if let Some(mtu) = effective
                && end.ipv6()
                && mtu.value < MIN_IPV6_MTU
                && end.mtu() != Some(mtu)
            {
                too_small.push((mtu, end.name.clone()));
            }
        }
    }
    for (name, pod) in &t.pods {
        for (ifname, settings) in &pod.interfaces {
            let Some(bridge_key) = &settings.bridge else {
                continue;
            };
            let Some(bridge) = t.bridges.get(bridge_key.as_str()) else {
                continue;
            };
            if let Some(mtu) = &bridge.mtu
                && settings.mtu.is_none()
                && has_ipv6(&settings.addresses)
                && mtu.value < MIN_IPV6_MTU
            {
                too_small.push((mtu, format!("{name}:{ifname}")));
            }
        }
    }
    // Each value once, however many interfaces it reaches (a bridge's MTU
    // reaches all its ports); one out of range is reported as such.
    let mut reported = HashSet::new();
    for (mtu, end) in too_small {
        if (MIN_MTU..=MAX_MTU).contains(&mtu.value) && reported.insert(super::position(mtu.span)) {
            out.push(small_for(mtu, &end));
        }
    }
}

fn conflict(mtu: &Sp<u32>, end: &str, other: &str, other_at: &Sp<u32>) -> Diagnostic {
    Diagnostic::new(
        mtu.span,
        format!(
            "MTU {mtu} of `{end}` conflicts with {other}{}",
            at_line(other_at.span)
        ),
    )
    .with_label("conflicting MTU")
    .with_help(
        "both ends of a veth get one MTU: set it once (the link's `mtu`), or make the values equal",
    )
}

/// An MTU set elsewhere that reaches an interface with an IPv6 address.
fn small_for(mtu: &Sp<u32>, end: &str) -> Diagnostic {
    Diagnostic::new(
        mtu.span,
        format!("MTU {mtu} applies to `{end}` too, which has an IPv6 address; IPv6 needs at least {MIN_IPV6_MTU}"),
    )
    .with_label("too small for IPv6")
    .with_help(format!("raise it to {MIN_IPV6_MTU} or more"))
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{at, check, last, one, valid};

    fn iface_mtu(mtu: u32, address: &str) -> String {
        format!(
            "name: t\nbridges:\n  br0: {{}}\npods:\n  web: {{ interfaces: {{ eth0: {{ bridge: br0, mtu: {mtu}, addresses: [\"{address}\"] }} }} }}\n"
        )
    }

    #[test]
    fn mtus_are_within_the_kernels_range() {
        valid(&iface_mtu(68, "10.0.0.1/24"));
        valid(&iface_mtu(65535, "10.0.0.1/24"));
        for mtu in [0, 67, 65536, 9_000_000] {
            let text = iface_mtu(mtu, "10.0.0.1/24");
            let (line, column) = at(&text, &format!("mtu: {mtu}"));
            one(
                &text,
                &format!("MTU {mtu} is outside 68..=65535"),
                (line, column + 5),
            );
        }
        let text = "name: t\nbridges:\n  br0: { mtu: 67 }\n";
        one(text, "MTU 67 is outside", at(text, "67"));
        let text = "name: t\npods:\n  a: {}\n  b: {}\nlinks:\n  - { endpoints: [a:eth0, b:eth0], mtu: 70000 }\n";
        one(text, "MTU 70000 is outside", at(text, "70000"));
    }

    #[test]
    fn an_interface_with_ipv6_needs_1280() {
        valid(&iface_mtu(1280, "fd00::1/64"));
        valid(&iface_mtu(576, "10.0.0.1/24"));
        let text = iface_mtu(1279, "fd00::1/64");
        let problem = one(
            &text,
            "MTU 1279 is below 1280, and this interface has an IPv6 address",
            at(&text, "1279"),
        );
        assert!(problem.help.unwrap().contains("at least 1280"));
        let text = "name: t\nbridges:\n  br0: { mtu: 1000, addresses: [\"fd00::1/64\"] }\n";
        one(text, "this bridge has an IPv6 address", at(text, "1000"));
    }

    #[test]
    fn the_mtu_a_veth_gets_must_suit_an_ipv6_end() {
        let pods = "name: t\npods:\n  a: { interfaces: { eth0: { addresses: [\"fd00::1/64\"] } } }\n  b: { interfaces: { eth0: { mtu: 1000 } } }\n";
        let text = format!("{pods}links:\n  - {{ endpoints: [a:eth0, b:eth0], mtu: 1200 }}\n");
        let problems = check(&text);
        // The link's MTU reaches a:eth0; b's own 1000 conflicts with it.
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("MTU 1200 applies to `a:eth0` too")
                    && (p.span.line, p.span.column) == at(&text, "1200"))
        );
        let text = format!("{pods}links:\n  - {{ endpoints: [a:eth0, b:eth0] }}\n");
        one(
            &text,
            "MTU 1000 applies to `a:eth0` too, which has an IPv6 address",
            at(&text, "1000"),
        );
    }

    #[test]
    fn a_small_bridge_mtu_reaching_ipv6_ports_is_reported_once() {
        let text = "name: t\nbridges:\n  br0: { mtu: 1000 }\npods:\n  a: { interfaces: { eth0: { bridge: br0, addresses: [\"fd00::1/64\"] } } }\n  b: { interfaces: { eth0: { bridge: br0, addresses: [\"fd00::2/64\"] } } }\n";
        one(text, "MTU 1000 applies to `a:eth0` too", at(text, "1000"));
        // An end's own MTU wins over its bridge's.
        valid(&text.replace("bridge: br0,", "bridge: br0, mtu: 1500,"));
    }

    #[test]
    fn both_ends_of_a_veth_get_one_mtu() {
        let pods = "name: t\npods:\n  a: { interfaces: { eth0: { mtu: 1500 } } }\n  b: { interfaces: { eth0: { mtu: 9000 } } }\n";
        let text = format!("{pods}links:\n  - {{ endpoints: [a:eth0, b:eth0] }}\n");
        let problem = one(
            &text,
            "MTU 9000 of `b:eth0` conflicts with the other end's `mtu: 1500` (line 3)",
            at(&text, "9000"),
        );
        assert!(problem.help.unwrap().contains("set it once"));
        let text = format!("{pods}links:\n  - {{ endpoints: [a:eth0, b:eth0], mtu: 1500 }}\n");
        one(
            &text,
            "MTU 9000 of `b:eth0` conflicts with this link's `mtu: 1500` (line 6)",
            at(&text, "9000"),
        );
        let same = pods.replace("9000", "1500");
        valid(&format!(
            "{same}links:\n  - {{ endpoints: [a:eth0, b:eth0], mtu: 1500 }}\n"
        ));
        let text = format!("{same}links:\n  - {{ endpoints: [a:eth0, b:eth0], mtu: 1400 }}\n");
        assert_eq!(check(&text).len(), 2, "each end's MTU conflicts");
        assert_eq!(
            (check(&text)[1].span.line, check(&text)[1].span.column),
            last(&text.replace("1400", "____"), "1500")
        );
    }
}

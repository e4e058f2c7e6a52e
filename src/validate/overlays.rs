//! Overlays (one bridge on each of at least two hosts with an underlay,
//! unique VNI and port) and `routing: host-gw` (hosts with a pod_cidr and
//! an underlay on one subnet).

use std::collections::HashMap;

use ipnet::IpNet;

use super::context::{Context, Place};
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::model::expand::DEFAULT_VXLAN_PORT;
use crate::spec::{Routing, Sp, Span};

/// VXLAN network identifiers are 24 bits; 0 is reserved.
const MAX_VNI: u32 = (1 << 24) - 1;

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    for (name, overlay) in &t.overlays {
        if !(1..=MAX_VNI).contains(&overlay.vni.value) {
            out.push(
                Diagnostic::new(
                    overlay.vni.span,
                    format!("VNI {} is outside 1..={MAX_VNI}", overlay.vni),
                )
                .with_label("invalid VNI")
                .with_help("a VXLAN network identifier is 24 bits, and 0 is reserved"),
            );
        }
        if let Some(port) = &overlay.port
            && port.value == 0
        {
            out.push(
                Diagnostic::new(port.span, "UDP port 0 cannot carry VXLAN")
                    .with_label("invalid port")
                    .with_help(format!(
                        "leave `port` out for the standard {DEFAULT_VXLAN_PORT}"
                    )),
            );
        }
        members(cx, name, overlay, out);
    }
    // A bridge is stretched by one overlay; a (VNI, port) is one segment.
    let memberships = t
        .overlays
        .iter()
        .flat_map(|(name, o)| o.bridges.iter().map(move |b| (b, name)));
    for ((_, first), (bridge, overlay)) in
        repeats(memberships.map(|(b, n)| (b.as_str(), (b, n))), |(b, _)| {
            b.span
        })
    {
        // Twice in one overlay is reported by `members`.
        if first == overlay {
            continue;
        }
        out.push(
            Diagnostic::new(
                bridge.span,
                format!(
                    "bridge `{bridge}` is already in overlay `{first}`{}",
                    at_line(first.span)
                ),
            )
            .with_label("in two overlays")
            .with_help("a bridge is stretched by at most one overlay"),
        );
    }
    let segments = t.overlays.iter().map(|(name, o)| {
        let port = o.port.as_ref().map_or(DEFAULT_VXLAN_PORT, |p| p.value);
        ((o.vni.value, port), (name, &o.vni, port))
    });
    for ((first, _, _), (_, vni, port)) in repeats(segments, |(_, vni, _)| vni.span) {
        out.push(
            Diagnostic::new(
                vni.span,
                format!(
                    "VNI {vni} on port {port} is already overlay `{first}`'s{}",
                    at_line(first.span)
                ),
            )
            .with_label("segment used twice")
            .with_help("give each overlay its own `vni` (or `port`)"),
        );
    }
    if let Some(routing) = &t.routing
        && routing.value == Routing::HostGw
    {
        host_gw(cx, routing, out);
    }
}

/// The members of an overlay are the hosts of its bridges: one bridge on
/// each, at least two, each with an underlay of one IP family.
fn members(
    cx: &Context,
    name: &Sp<String>,
    overlay: &crate::spec::Overlay,
    out: &mut Vec<Diagnostic>,
) {
    let t = cx.t;
    // Member hosts in file order, and the bridge that made each one a member.
    let mut hosts: Vec<(&str, &Sp<String>)> = Vec::new();
    let mut seen: HashMap<&str, &Sp<String>> = HashMap::new();
    for bridge in &overlay.bridges {
        match cx.bridge_place(bridge) {
            Some(Place::Host(host)) => match seen.get(host).map(|b| (host, *b)) {
                Some((_, first)) if first.as_str() == bridge.as_str() => out.push(
                    Diagnostic::new(
                        bridge.span,
                        format!("bridge `{bridge}` is listed twice{}", at_line(first.span)),
                    )
                    .with_label("listed twice")
                    .with_help("list each bridge once"),
                ),
                Some((_, first)) => out.push(
                    Diagnostic::new(
                        bridge.span,
                        format!(
                            "bridge `{bridge}` is on host `{host}`, like `{first}`{}",
                            at_line(first.span)
                        ),
                    )
                    .with_label("second bridge on one host")
                    .with_help("an overlay stretches one bridge on each member host"),
                ),
                None => {
                    seen.insert(host, bridge);
                    hosts.push((host, bridge));
                }
            },
            // Without hosts there is one machine: nothing to stretch across.
            Some(Place::Machine) => {}
            None => {}
        }
    }
    let known = overlay
        .bridges
        .iter()
        .filter(|b| cx.bridge_place(b).is_some())
        .count();
    if hosts.len() < 2 && known == overlay.bridges.len() {
        let found = match hosts.len() {
            0 => "no member host".to_string(),
            _ => format!("one member host, `{}`", hosts[0].0),
        };
        out.push(
            Diagnostic::new(name.span, format!("overlay `{name}` has {found}"))
                .with_label("fewer than two hosts")
                .with_help("an overlay stretches bridges across hosts: list one bridge on each of at least two hosts"),
        );
    }
    let mut family: Option<(bool, &str)> = None;
    for (host, bridge) in hosts {
        match t.hosts[host].underlay.as_ref().map(|u| u.ok()) {
            None => out.push(
                Diagnostic::new(bridge.span, format!("host `{host}` of bridge `{bridge}` has no `underlay`"))
                    .with_label("no underlay")
                    .with_help(format!("the VXLAN device of `{name}` on `{host}` needs the host's underlay address: set `underlay:` on host `{host}`")),
            ),
            Some(Some(underlay)) => {
                let v4 = underlay.0.addr().is_ipv4();
                match family {
                    Some((first_v4, first_host)) if first_v4 != v4 => out.push(
                        Diagnostic::new(
                            bridge.span,
                            format!("the underlay of host `{host}` is not of the same IP family as `{first_host}`'s"),
                        )
                        .with_label("mixed underlay families")
                        .with_help("VXLAN tunnels of one overlay run over one IP family: give every member an underlay of that family"),
                    ),
                    Some(_) => {}
                    None => family = Some((v4, host)),
                }
            }
            Some(None) => {}
        }
    }
}

/// host-gw routes each host's pod_cidr via its underlay address, which the
/// other hosts must reach directly: two hosts at least, each with both, on
/// one subnet.
fn host_gw(cx: &Context, routing: &Sp<Routing>, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    if t.hosts.len() < 2 {
        out.push(
            Diagnostic::new(
                routing.span,
                format!(
                    "`routing: host-gw` needs at least two hosts, the file has {}",
                    t.hosts.len()
                ),
            )
            .with_label("too few hosts")
            .with_help("declare the hosts under `hosts:`, or remove `routing`"),
        );
        return;
    }
    let mut first: Option<(&str, ipnet::IpNet)> = None;
    for (name, host) in &t.hosts {
        let mut missing = Vec::new();
        if host.pod_cidr.is_none() {
            missing.push("`pod_cidr`");
        }
        if host.underlay.is_none() {
            missing.push("`underlay`");
        }
        if !missing.is_empty() {
            out.push(
                Diagnostic::new(
                    name.span,
                    format!(
                        "host `{name}` has no {}, which `routing: host-gw` needs",
                        missing.join(" and ")
                    ),
                )
                .with_label("incomplete for host-gw")
                .with_help(
                    "host-gw routes each host's pod_cidr via its underlay address: set both",
                ),
            );
        }
        let Some(underlay) = host.underlay.as_ref() else {
            continue;
        };
        let Some(net) = underlay.ok().map(|u| u.0) else {
            continue;
        };
        // The other hosts route this pod_cidr via this underlay address.
        if let Some(cidr) = &host.pod_cidr
            && let Some(cidr_net) = cidr.ok().map(|c| c.0)
            && cidr_net.addr().is_ipv4() != net.addr().is_ipv4()
        {
            out.push(
                Diagnostic::new(
                    cidr.span(),
                    format!(
                        "pod_cidr {cidr_net} of host `{name}` is not of the IP family of its underlay {}",
                        net.addr()
                    ),
                )
                .with_label("other family than the underlay")
                .with_help("host-gw routes a host's pod_cidr via its underlay address: use one IP family for both"),
            );
        }
        match first {
            None => first = Some((name.as_str(), net)),
            Some((first_name, first_net)) => {
                if !(first_net.contains(&net.addr()) && net.contains(&first_net.addr())) {
                    out.push(
                        Diagnostic::new(
                            underlay.span(),
                            format!("underlay {net} is not on the subnet of host `{first_name}`'s underlay {first_net}"),
                        )
                        .with_label("another subnet")
                        .with_help(format!("host-gw needs every underlay on one subnet ({}), so each host reaches the others directly", first_net.trunc())),
                    );
                }
            }
        }
    }
    overlapping_pod_cidrs(cx, out);
}

/// host-gw routes to another host's pod_cidr: two that overlap would send
/// one host's pods to the other. CIDRs nest or are disjoint, so in order of
/// start address, an overlap is a CIDR inside the last disjoint one.
fn overlapping_pod_cidrs(cx: &Context, out: &mut Vec<Diagnostic>) {
    let mut cidrs: Vec<(IpNet, &str, Span)> =
        cx.t.hosts
            .iter()
            .filter_map(|(name, h)| {
                let cidr = h.pod_cidr.as_ref()?;
                Some((cidr.ok()?.0, name.as_str(), cidr.span()))
            })
            .collect();
    cidrs.sort_by_key(|(net, _, span)| (*net, super::position(*span)));
    let mut cover: Option<(IpNet, &str, Span)> = None;
    for (net, name, span) in cidrs {
        match cover {
            Some((outer, outer_name, outer_span)) if outer.contains(&net) => out.push(
                Diagnostic::new(span, format!("pod_cidr {net} of host `{name}` overlaps host `{outer_name}`'s {outer}{}", at_line(outer_span)))
                    .with_label("overlapping pod_cidr")
                    .with_help("with host-gw each host routes the others' pod_cidrs: give each host its own range"),
            ),
            _ => cover = Some((net, name, span)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{at, check, last, one, valid};

    const HOSTS: &str = "name: t\nhosts:\n  n1: { underlay: 192.168.1.11/24 }\n  n2: { underlay: 192.168.1.12/24 }\n  n3: { underlay: 192.168.1.13/24 }\nbridges:\n  b1: { host: n1 }\n  b2: { host: n2 }\n  b3: { host: n3 }\n  c1: { host: n1, ifname: cbr1 }\n";

    fn overlays(text: &str) -> String {
        format!("{HOSTS}overlays:\n{text}")
    }

    #[test]
    fn an_overlay_stretches_one_bridge_on_each_of_two_hosts_or_more() {
        valid(&overlays(
            "  vx1: { vni: 1, bridges: [b1, b2], port: 8472 }\n  vx2: { vni: 16777215, bridges: [c1, b3] }\n",
        ));
        let text = overlays("  vx1: { vni: 1, bridges: [b1] }\n");
        let problem = one(
            &text,
            "overlay `vx1` has one member host, `n1`",
            at(&text, "vx1"),
        );
        assert!(problem.help.unwrap().contains("at least two hosts"));
        let text = overlays("  vx1: { vni: 1, bridges: [b1, b2, c1] }\n");
        let problem = one(
            &text,
            "bridge `c1` is on host `n1`, like `b1` (line 12)",
            at(&text, "c1]"),
        );
        assert!(
            problem
                .help
                .unwrap()
                .contains("one bridge on each member host")
        );
        let text = overlays("  vx1: { vni: 1, bridges: [b1, b2, b1] }\n");
        one(&text, "bridge `b1` is listed twice", at(&text, "b1]"));
        let text = "name: t\nbridges:\n  b1: {}\noverlays:\n  vx1: { vni: 1, bridges: [b1] }\n";
        one(text, "overlay `vx1` has no member host", at(text, "vx1"));
    }

    #[test]
    fn vni_and_port_are_in_range() {
        for vni in [0, 16777216] {
            let text = overlays(&format!("  vx1: {{ vni: {vni}, bridges: [b1, b2] }}\n"));
            let problem = one(
                &text,
                &format!("VNI {vni} is outside 1..=16777215"),
                at(&text, &format!("{vni},")),
            );
            assert!(problem.help.unwrap().contains("24 bits"));
        }
        let text = overlays("  vx1: { vni: 1, port: 0, bridges: [b1, b2] }\n");
        one(&text, "UDP port 0", at(&text, "0, b"));
    }

    #[test]
    fn a_bridge_is_in_one_overlay() {
        let text = overlays(
            "  vx1: { vni: 1, bridges: [b1, b2] }\n  vx2: { vni: 2, bridges: [b3, b2] }\n",
        );
        let problem = one(
            &text,
            "bridge `b2` is already in overlay `vx1` (line 12)",
            last(&text, "b2"),
        );
        assert!(problem.help.unwrap().contains("at most one overlay"));
    }

    #[test]
    fn a_vni_and_port_make_one_segment() {
        valid(&overlays(
            "  vx1: { vni: 7, bridges: [b1, b2] }\n  vx2: { vni: 7, port: 8472, bridges: [c1, b3] }\n",
        ));
        let text = overlays(
            "  vx1: { vni: 7, bridges: [b1, b2] }\n  vx2: { vni: 7, port: 4789, bridges: [c1, b3] }\n",
        );
        let problem = one(
            &text,
            "VNI 7 on port 4789 is already overlay `vx1`'s (line 12)",
            last(&text, "7,"),
        );
        assert!(problem.help.unwrap().contains("its own `vni`"));
    }

    #[test]
    fn every_member_host_has_an_underlay_of_one_family() {
        let text = overlays("  vx1: { vni: 1, bridges: [b1, b2] }\n")
            .replace("n2: { underlay: 192.168.1.12/24 }", "n2: {}");
        let problem = one(
            &text,
            "host `n2` of bridge `b2` has no `underlay`",
            last(&text, "b2"),
        );
        assert!(
            problem
                .help
                .unwrap()
                .contains("set `underlay:` on host `n2`")
        );
        let text = overlays("  vx1: { vni: 1, bridges: [b1, b2] }\n")
            .replace("192.168.1.12/24", "\"fd00::12/64\"");
        one(
            &text,
            "the underlay of host `n2` is not of the same IP family as `n1`'s",
            last(&text, "b2"),
        );
    }

    const GW: &str = "name: t\nrouting: host-gw\nhosts:\n  n1: { underlay: 192.168.1.11/24, pod_cidr: 10.244.1.0/24 }\n  n2: { underlay: 192.168.1.12/24, pod_cidr: 10.244.2.0/24 }\n";

    #[test]
    fn host_gw_needs_two_complete_hosts_on_one_subnet() {
        valid(GW);
        let text = "name: t\nrouting: host-gw\nhosts:\n  n1: { underlay: 192.168.1.11/24, pod_cidr: 10.244.1.0/24 }\n";
        one(
            text,
            "`routing: host-gw` needs at least two hosts, the file has 1",
            at(text, "host-gw"),
        );
        let text = GW.replace(", pod_cidr: 10.244.2.0/24", "");
        let problem = one(
            &text,
            "host `n2` has no `pod_cidr`, which `routing: host-gw` needs",
            at(&text, "n2"),
        );
        assert!(problem.help.unwrap().contains("set both"));
        let text = GW.replace("underlay: 192.168.1.12/24, ", "");
        one(&text, "host `n2` has no `underlay`", at(&text, "n2"));
        let text = GW.replace("192.168.1.12/24", "192.168.2.12/24");
        let problem = one(
            &text,
            "underlay 192.168.2.12/24 is not on the subnet of host `n1`'s underlay 192.168.1.11/24",
            at(&text, "192.168.2.12"),
        );
        assert!(problem.help.unwrap().contains("(192.168.1.0/24)"));
        let text = GW.replace("10.244.2.0/24", "\"fd00:2::/64\"");
        one(
            &text,
            "pod_cidr fd00:2::/64 of host `n2` is not of the IP family of its underlay 192.168.1.12",
            at(&text, "\"fd00:2"),
        );
        // Not routing host-gw: nothing of this is needed.
        valid("name: t\nhosts:\n  n1: {}\n");
    }

    #[test]
    fn host_gw_pod_cidrs_do_not_overlap() {
        let text = GW.replace("10.244.2.0/24", "10.244.0.0/16");
        let problem = one(
            &text,
            "pod_cidr 10.244.1.0/24 of host `n1` overlaps host `n2`'s 10.244.0.0/16 (line 5)",
            at(&text, "10.244.1.0/24"),
        );
        assert!(problem.help.unwrap().contains("its own range"));
        let three = format!("{GW}  n3: {{ underlay: 192.168.1.13/24, pod_cidr: 10.244.1.0/24 }}\n");
        let problems = check(&three);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(
            (problems[0].span.line, problems[0].span.column),
            last(&three, "10.244.1.0/24")
        );
    }
}

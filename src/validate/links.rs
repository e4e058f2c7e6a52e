//! Who creates each interface: every interface is created by exactly one
//! thing (a link, a pod's `bridge:` shorthand, or a lab host's underlay),
//! a veth joins two ends on one host, and a bridge has room for its ports.

use std::collections::HashMap;

use super::context::{Context, Place};
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::model::expand::underlay_interface;
use crate::spec::{Endpoint, OwnerKind, Span};

/// The kernel's limit on the ports of one bridge (BR_MAX_PORTS - 1).
const MAX_BRIDGE_PORTS: usize = 1023;

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let ends = endpoints(cx, out);
    created_once(cx, &ends, out);
    shorthand_hosts(cx, out);
    bridge_ports(cx, out);
}

/// Every well-formed link end, with the link it belongs to (by index).
struct End<'a> {
    endpoint: &'a Endpoint,
    span: Span,
    link: usize,
}

/// Each link has two distinct ends on one host; each end belongs to one
/// link. Returns the ends, for `created_once`.
fn endpoints<'a>(cx: &Context<'a>, out: &mut Vec<Diagnostic>) -> Vec<End<'a>> {
    let t = cx.t;
    let mut ends = Vec::new();
    for (index, link) in t.links.iter().enumerate() {
        let count = link.endpoints.len();
        if count != 2 {
            out.push(
                Diagnostic::new(
                    link.endpoints.span,
                    format!("a link has two endpoints, this one has {count}"),
                )
                .with_label("not two endpoints")
                .with_help("a link is one veth pair: `endpoints: [pod:eth0, bridge:port0]`"),
            );
        }
        let parsed: Vec<(&Endpoint, Span)> = link
            .endpoints
            .iter()
            .filter_map(|e| Some((e.ok()?, e.span())))
            .collect();
        if let [(a, _), (b, span)] = parsed[..] {
            if a == b {
                out.push(
                    Diagnostic::new(span, format!("both ends of this link are `{a}`"))
                        .with_label("same end twice")
                        .with_help("a veth joins two different interfaces"),
                );
                continue;
            }
            if let (Some(pa), Some(pb)) = (cx.endpoint_place(a), cx.endpoint_place(b))
                && pa != pb
            {
                out.push(
                    Diagnostic::new(
                        span,
                        format!("link across hosts: `{a}` is on {pa}, `{b}` on {pb}"),
                    )
                    .with_label("link across hosts")
                    .with_help("a veth cannot leave its host: use an overlay, a bridge on each host stretched by an `overlays` entry"),
                );
            }
        }
        ends.extend(parsed.into_iter().map(|(endpoint, span)| End {
            endpoint,
            span,
            link: index,
        }));
    }
    for (first, end) in repeats(ends.iter().map(|e| (e.endpoint, e)), |e| e.span) {
        if first.link != end.link {
            out.push(
                Diagnostic::new(
                    end.span,
                    format!(
                        "`{}` is already an end of another link{}",
                        end.endpoint,
                        at_line(first.span)
                    ),
                )
                .with_label("end used twice")
                .with_help(
                    "an interface is the end of one veth: give this end another interface name",
                ),
            );
        }
    }
    ends
}

/// The `interfaces` maps only configure: an entry needs a creator, and an
/// interface has one creator.
fn created_once(cx: &Context, ends: &[End], out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    // The first link end naming each (owner, ifname).
    let mut linked: HashMap<(&str, &str), Span> = HashMap::new();
    for end in ends {
        linked
            .entry((end.endpoint.owner.as_str(), end.endpoint.ifname.as_str()))
            .or_insert(end.span);
    }
    for (name, pod) in &t.pods {
        for (ifname, settings) in &pod.interfaces {
            let link = linked.get(&(name.as_str(), ifname.as_str()));
            match (&settings.bridge, link) {
                (Some(bridge), Some(&span)) => out.push(
                    Diagnostic::new(
                        span,
                        format!("`{name}:{ifname}` is already created by its `bridge: {bridge}` shorthand{}", at_line(bridge.span)),
                    )
                    .with_label("created twice")
                    .with_help("an interface is created by one thing: remove this link, or the `bridge:` shorthand"),
                ),
                (None, None) => out.push(
                    Diagnostic::new(ifname.span, format!("nothing creates interface `{ifname}` of pod `{name}`"))
                        .with_label("not created")
                        .with_help(format!(
                            "`interfaces` only configures: add a link with endpoint `{name}:{ifname}`, or `bridge:` to plug it into a bridge"
                        )),
                ),
                _ => {}
            }
        }
    }
    for (name, host) in &t.hosts {
        // The underlay interface is the underlay's alone: expand gives it
        // only the `underlay` address, and a real host's is never modified,
        // so an `interfaces` entry or a link end naming it is refused rather
        // than silently ignored.
        let underlay = host.underlay.as_ref().map(|_| underlay_interface(host));
        for (ifname, settings) in &host.interfaces {
            if underlay == Some(ifname.as_str()) {
                out.push(
                    Diagnostic::new(ifname.span, format!("`{ifname}` is the underlay interface of host `{name}`"))
                        .with_label("configured by `underlay`")
                        .with_help("the underlay interface is configured by `underlay` (and left alone on a real host): remove this entry"),
                );
            } else if settings.bridge.is_none()
                && !linked.contains_key(&(name.as_str(), ifname.as_str()))
            {
                out.push(
                    Diagnostic::new(
                        ifname.span,
                        format!("nothing creates interface `{ifname}` of host `{name}`"),
                    )
                    .with_label("not created")
                    .with_help(format!(
                        "`interfaces` only configures: add a link with endpoint `{name}:{ifname}`"
                    )),
                );
            }
        }
        if let Some(underlay) = underlay
            && let Some(&span) = linked.get(&(name.as_str(), underlay))
        {
            out.push(
                Diagnostic::new(span, format!("`{name}:{underlay}` is the underlay interface of host `{name}`"))
                    .with_label("created by the underlay")
                    .with_help("netloom creates a lab host's underlay interface (a real host's exists already): name this link end differently"),
            );
        }
    }
}

/// A `bridge:` shorthand is a veth, so the bridge must be on the pod's host.
fn shorthand_hosts(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (name, pod) in &cx.t.pods {
        let Some(pod_place) = cx.place(pod.host.as_ref()) else {
            continue;
        };
        for settings in pod.interfaces.values() {
            let Some(bridge) = &settings.bridge else {
                continue;
            };
            if let Some(bridge_place) = cx.bridge_place(bridge)
                && bridge_place != pod_place
            {
                let on = match pod_place {
                    Place::Host(host) => format!("a bridge on `{host}`"),
                    Place::Machine => "a bridge on this machine".to_string(),
                };
                out.push(
                    Diagnostic::new(
                        bridge.span,
                        format!("bridge `{bridge}` is on {bridge_place}, but pod `{name}` is on {pod_place}"),
                    )
                    .with_label("bridge on another host")
                    .with_help(format!("use {on}; an overlay stretches bridges across hosts")),
                );
            }
        }
    }
}

/// Links to a bridge, shorthands naming it and an overlay's VXLAN device
/// are its ports.
fn bridge_ports(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let mut ports: HashMap<&str, usize> = HashMap::new();
    let link_ends = t.links.iter().flat_map(|l| l.endpoints.iter());
    for endpoint in link_ends.filter_map(|e| e.ok()) {
        if t.owner_kind(&endpoint.owner) == Some(OwnerKind::Bridge) {
            *ports.entry(endpoint.owner.as_str()).or_default() += 1;
        }
    }
    let shorthands = t.pods.values().flat_map(|p| p.interfaces.values());
    for bridge in shorthands.filter_map(|i| i.bridge.as_ref()) {
        *ports.entry(bridge.as_str()).or_default() += 1;
    }
    for bridge in t.overlays.values().flat_map(|o| &o.bridges) {
        *ports.entry(bridge.as_str()).or_default() += 1;
    }
    for key in t.bridges.keys() {
        let count = ports.get(key.as_str()).copied().unwrap_or(0);
        if count > MAX_BRIDGE_PORTS {
            out.push(
                Diagnostic::new(key.span, format!("bridge `{key}` has {count} ports; the kernel allows at most {MAX_BRIDGE_PORTS}"))
                    .with_label("too many ports")
                    .with_help("split the pods over several bridges"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{at, check, last, one, valid};

    const PODS: &str = "name: t\nbridges:\n  br0: {}\npods:\n  web: {}\n  db: {}\n";

    #[test]
    fn a_link_has_two_endpoints() {
        valid(&format!(
            "{PODS}links:\n  - endpoints: [web:eth0, db:eth0]\n"
        ));
        let text = format!("{PODS}links:\n  - endpoints: [web:eth0]\n");
        one(
            &text,
            "a link has two endpoints, this one has 1",
            at(&text, "[web"),
        );
        let text = format!("{PODS}links:\n  - endpoints: [web:eth0, db:eth0, br0:p0]\n");
        one(&text, "this one has 3", at(&text, "[web"));
    }

    #[test]
    fn a_link_joins_two_different_ends() {
        let text = format!("{PODS}links:\n  - endpoints: [web:eth0, web:eth0]\n");
        one(
            &text,
            "both ends of this link are `web:eth0`",
            last(&text, "web:eth0"),
        );
    }

    #[test]
    fn an_end_belongs_to_one_link() {
        let text = format!(
            "{PODS}links:\n  - endpoints: [web:eth0, db:eth0]\n  - endpoints: [br0:p0, web:eth0]\n"
        );
        let problem = one(
            &text,
            "`web:eth0` is already an end of another link (line 8)",
            last(&text, "web:eth0"),
        );
        assert!(problem.help.unwrap().contains("another interface name"));
    }

    #[test]
    fn a_link_stays_on_one_host() {
        let hosts = "name: t\nhosts:\n  n1: {}\n  n2: {}\nbridges:\n  br1: { host: n1 }\npods:\n  a: { host: n1 }\n  b: { host: n2 }\n";
        valid(&format!(
            "{hosts}links:\n  - endpoints: [a:eth0, br1:p0]\n  - endpoints: [n1:lab0, a:eth1]\n  - endpoints: [n2:lab0, b:eth0]\n"
        ));
        let text = format!("{hosts}links:\n  - endpoints: [a:eth0, b:eth0]\n");
        let problem = one(
            &text,
            "link across hosts: `a:eth0` is on host `n1`, `b:eth0` on host `n2`",
            at(&text, "b:eth0"),
        );
        assert!(problem.help.unwrap().contains("use an overlay"));
        let text = format!("{hosts}links:\n  - endpoints: [n1:lab0, b:eth0]\n");
        one(&text, "link across hosts", at(&text, "b:eth0"));
    }

    #[test]
    fn an_interface_entry_needs_a_creator() {
        valid(
            &format!("{PODS}links:\n  - endpoints: [web:eth0, db:eth0]\n").replace(
                "web: {}",
                "web: { interfaces: { eth0: { addresses: [10.0.0.1/24] } } }",
            ),
        );
        valid(
            "name: t\nbridges:\n  br0: {}\npods:\n  web: { interfaces: { eth0: { bridge: br0 } } }\n",
        );
        let text =
            "name: t\npods:\n  web:\n    interfaces:\n      eth0: { addresses: [10.0.0.1/24] }\n";
        let problem = one(
            text,
            "nothing creates interface `eth0` of pod `web`",
            at(text, "eth0"),
        );
        assert!(problem.help.unwrap().contains("`web:eth0`"));
        let text =
            "name: t\nhosts:\n  n1:\n    interfaces:\n      lab0: { addresses: [10.0.0.1/24] }\n";
        one(
            text,
            "nothing creates interface `lab0` of host `n1`",
            at(text, "lab0"),
        );
    }

    #[test]
    fn an_interface_has_one_creator() {
        let text = "name: t\nbridges:\n  br0: {}\npods:\n  web: { interfaces: { eth0: { bridge: br0 } } }\nlinks:\n  - endpoints: [web:eth0, br0:p0]\n";
        let problem = one(
            text,
            "`web:eth0` is already created by its `bridge: br0` shorthand (line 5)",
            at(text, "web:eth0"),
        );
        assert!(
            problem
                .help
                .unwrap()
                .contains("remove this link, or the `bridge:` shorthand")
        );
    }

    #[test]
    fn the_underlay_interface_is_the_underlays() {
        let host = "name: t\nhosts:\n  n1:\n    underlay: 192.168.1.1/24\n";
        valid(&format!(
            "{host}    interfaces:\n      lab0: {{}}\npods:\n  web: {{}}\nlinks:\n  - endpoints: [n1:lab0, web:eth0]\n"
        ));
        let text = format!("{host}    interfaces:\n      eth0: {{ mtu: 9000 }}\n");
        let problem = one(
            &text,
            "`eth0` is the underlay interface of host `n1`",
            at(&text, "eth0"),
        );
        assert!(problem.help.unwrap().contains("remove this entry"));
        let text =
            format!("{host}pods:\n  web: {{}}\nlinks:\n  - endpoints: [n1:eth0, web:eth0]\n");
        one(
            &text,
            "`n1:eth0` is the underlay interface",
            at(&text, "n1:eth0"),
        );
        // Without an underlay, `eth0` is a name like any other.
        valid(
            "name: t\nhosts:\n  n1: {}\npods:\n  web: {}\nlinks:\n  - endpoints: [n1:eth0, web:eth0]\n",
        );
    }

    #[test]
    fn a_shorthand_bridge_is_on_the_pods_host() {
        let hosts = "name: t\nhosts:\n  n1: {}\n  n2: {}\nbridges:\n  b1: { host: n1 }\n  b2: { host: n2 }\n";
        valid(&format!(
            "{hosts}pods:\n  a: {{ host: n1, interfaces: {{ eth0: {{ bridge: b1 }} }} }}\n"
        ));
        let text = format!(
            "{hosts}pods:\n  a: {{ host: n1, interfaces: {{ eth0: {{ bridge: b2 }} }} }}\n"
        );
        let problem = one(
            &text,
            "bridge `b2` is on host `n2`, but pod `a` is on host `n1`",
            last(&text, "b2"),
        );
        assert!(problem.help.unwrap().contains("a bridge on `n1`"));
    }

    #[test]
    fn a_bridge_has_at_most_1023_ports() {
        let ports = |n: usize| -> String {
            let links: String = (0..n)
                .map(|i| format!("  - endpoints: [br0:p{i}, n1:h{i}]\n"))
                .collect();
            format!("name: t\nhosts:\n  n1: {{}}\nbridges:\n  br0: {{}}\nlinks:\n{links}")
        };
        valid(&ports(1023));
        let text = ports(1022) + "pods:\n  web: { interfaces: { eth0: { bridge: br0 } } }\n";
        valid(&text);
        let text = ports(1023) + "pods:\n  web: { interfaces: { eth0: { bridge: br0 } } }\n";
        one(
            &text,
            "bridge `br0` has 1024 ports; the kernel allows at most 1023",
            at(&text, "br0:"),
        );
        assert!(
            check(&ports(1024))
                .iter()
                .any(|p| p.message.contains("1024 ports"))
        );
    }
}

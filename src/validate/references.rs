//! Names that must refer to something: `host:`, `bridge:`, link end
//! owners, overlay bridges, and expectations' pods and addresses.

use std::collections::HashSet;
use std::net::IpAddr;

use super::context::Context;
use crate::diagnostics::Diagnostic;
use crate::spec::{Ip, OwnerKind, Pod, Sp, Span};

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    for (key, bridge) in &t.bridges {
        placement(cx, "bridge", key, bridge.host.as_ref(), out);
    }
    for (name, pod) in &t.pods {
        placement(cx, "pod", name, pod.host.as_ref(), out);
        for settings in pod.interfaces.values() {
            if let Some(bridge) = &settings.bridge {
                bridge_ref(cx, bridge, out);
            }
        }
    }
    for (name, host) in &t.hosts {
        for (ifname, settings) in &host.interfaces {
            if let Some(bridge) = &settings.bridge {
                out.push(
                    Diagnostic::new(bridge.span, "`bridge:` is only for pod interfaces")
                        .with_label("not on a host interface")
                        .with_help(format!(
                            "connect a host interface to a bridge with a link: `endpoints: [{name}:{ifname}, {bridge}:PORT]`"
                        )),
                );
            }
        }
    }
    let owners = || {
        t.pods
            .keys()
            .chain(t.bridges.keys())
            .chain(t.hosts.keys())
            .map(|k| k.as_str())
    };
    for link in &t.links {
        for end in link.endpoints.iter() {
            let Some(endpoint) = end.ok() else { continue };
            if t.owner_kind(&endpoint.owner).is_none() {
                out.push(
                    Diagnostic::new(
                        end.span(),
                        format!("`{}` is not a pod, bridge or host", endpoint.owner),
                    )
                    .with_label("unknown endpoint owner")
                    .with_help(cx.suggest(
                        &endpoint.owner,
                        "pods, bridges and hosts",
                        owners(),
                    )),
                );
            }
        }
    }
    for overlay in t.overlays.values() {
        for bridge in &overlay.bridges {
            bridge_ref(cx, bridge, out);
        }
    }
    expectations(cx, out);
}

/// `host:` names a host; with several hosts it is required; without
/// hosts it makes no sense.
fn placement(
    cx: &Context,
    kind: &str,
    name: &Sp<String>,
    host: Option<&Sp<String>>,
    out: &mut Vec<Diagnostic>,
) {
    let hosts = &cx.t.hosts;
    let names = || hosts.keys().map(|k| k.as_str());
    match host {
        Some(host) if hosts.is_empty() => out.push(
            Diagnostic::new(host.span, format!("`{host}` is not a host: the file declares no hosts"))
                .with_label("unknown host")
                .with_help("without `hosts:` everything is on this machine: remove `host:`, or declare the host under `hosts:`"),
        ),
        Some(host) if !hosts.contains_key(host.as_str()) => out.push(
            Diagnostic::new(host.span, format!("`{host}` is not a host"))
                .with_label("unknown host")
                .with_help(cx.suggest(host, "hosts", names())),
        ),
        None if hosts.len() > 1 => {
            let list: Vec<String> = names().take(4).map(|n| format!("`{n}`")).collect();
            out.push(
                Diagnostic::new(
                    name.span,
                    format!("{kind} `{name}` has no `host:`, and the file has several hosts"),
                )
                .with_label("which host?")
                .with_help(format!("add `host:` with one of {}", list.join(", "))),
            );
        }
        _ => {}
    }
}

/// A `bridge:` shorthand or overlay member names a bridge.
fn bridge_ref(cx: &Context, bridge: &Sp<String>, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    if t.bridges.contains_key(bridge.as_str()) {
        return;
    }
    let kind = match t.owner_kind(bridge) {
        Some(OwnerKind::Pod) => " (it is a pod)",
        Some(OwnerKind::Host) => " (it is a host)",
        _ => "",
    };
    out.push(
        Diagnostic::new(bridge.span, format!("`{bridge}` is not a bridge{kind}"))
            .with_label("unknown bridge")
            .with_help(cx.suggest(bridge, "bridges", t.bridges.keys().map(|k| k.as_str()))),
    );
}

fn expectations(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let pods = || t.pods.keys().map(|k| k.as_str());
    let unknown_pod = |name: &Sp<String>, what: &str| {
        Diagnostic::new(name.span, format!("`{name}` is not a pod"))
            .with_label(format!("unknown {what}"))
            .with_help(cx.suggest(name, "pods", pods()))
    };
    // Every pod address, when an expectation picks one.
    let addresses: HashSet<(&str, IpAddr)> = if t.expect.iter().any(|e| e.address.is_some()) {
        t.pods
            .iter()
            .flat_map(|(name, pod)| pod_addresses(pod).map(move |ip| (name.as_str(), ip)))
            .collect()
    } else {
        HashSet::new()
    };
    for expectation in &t.expect {
        if !t.pods.contains_key(expectation.from.as_str()) {
            out.push(unknown_pod(&expectation.from, "pod"));
        }
        if let Some(port) = &expectation.port
            && port.value == 0
        {
            out.push(
                Diagnostic::new(port.span, "port 0 cannot be connected to")
                    .with_label("invalid port")
                    .with_help("a TCP port is 1 to 65535"),
            );
        }
        let to = &expectation.to;
        let Some(pod) = t.pods.get(to.as_str()) else {
            if to.parse::<IpAddr>().is_err() {
                out.push(
                    Diagnostic::new(
                        to.span,
                        format!("`{to}` is neither a pod nor an IP address"),
                    )
                    .with_label("unknown target")
                    .with_help(cx.suggest(to, "pods", pods())),
                );
            } else if let Some(address) = &expectation.address {
                out.push(
                    Diagnostic::new(
                        address.span(),
                        "`address` picks an address of a `to` pod, but `to` is an address",
                    )
                    .with_label("needs a pod in `to`")
                    .with_help("remove `address`, or name the pod in `to`"),
                );
            }
            continue;
        };
        match expectation.address.as_ref().map(|a| (a.ok(), a.span())) {
            Some((Some(&Ip(address)), span)) if !addresses.contains(&(to.as_str(), address)) => {
                out.push(not_the_pods(span, address, to, pod));
            }
            // Without `address`, the target is the pod's first address:
            // a pod without one cannot be checked.
            None if !pod.interfaces.values().any(|i| !i.addresses.is_empty()) => out.push(
                Diagnostic::new(to.span, format!("pod `{to}` has no address to reach"))
                    .with_label("no address")
                    .with_help(format!("give an interface of `{to}` an address")),
            ),
            _ => {}
        }
    }
}

fn pod_addresses(pod: &Pod) -> impl Iterator<Item = IpAddr> + '_ {
    let addresses = pod.interfaces.values().flat_map(|i| &i.addresses);
    addresses.filter_map(|a| a.ok()).map(|a| a.0.addr())
}

fn not_the_pods(span: Span, address: IpAddr, name: &str, pod: &Pod) -> Diagnostic {
    let diagnostic = Diagnostic::new(span, format!("{address} is not an address of pod `{name}`"))
        .with_label("not the pod's");
    let list: Vec<String> = pod_addresses(pod).take(6).map(|a| a.to_string()).collect();
    if list.is_empty() {
        diagnostic.with_help(format!("pod `{name}` has no addresses"))
    } else {
        diagnostic.with_help(format!("its addresses are {}", list.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{at, last, one, valid};

    const TWO_HOSTS: &str = "name: t\nhosts:\n  node1: {}\n  node2: {}\n";

    #[test]
    fn host_is_optional_with_at_most_one_host() {
        valid("name: t\nbridges:\n  br0: {}\n");
        valid("name: t\nhosts:\n  node1: {}\nbridges:\n  br0: {}\npods:\n  web: {}\n");
        valid(&format!(
            "{TWO_HOSTS}bridges:\n  br0: {{ host: node1 }}\npods:\n  web: {{ host: node2 }}\n"
        ));
    }

    #[test]
    fn with_several_hosts_every_bridge_and_pod_needs_one() {
        let text = format!("{TWO_HOSTS}pods:\n  web: {{}}\n");
        let problem = one(&text, "pod `web` has no `host:`", at(&text, "web"));
        assert_eq!(
            problem.help.as_deref(),
            Some("add `host:` with one of `node1`, `node2`")
        );
        let text = format!("{TWO_HOSTS}bridges:\n  br0: {{}}\n");
        one(&text, "bridge `br0` has no `host:`", at(&text, "br0"));
    }

    #[test]
    fn host_names_a_host() {
        let text = format!("{TWO_HOSTS}bridges:\n  br0: {{ host: nod2 }}\n");
        let problem = one(&text, "`nod2` is not a host", at(&text, "nod2"));
        assert_eq!(problem.help.as_deref(), Some("did you mean `node2`?"));
    }

    #[test]
    fn host_without_hosts_is_an_error() {
        let text = "name: t\npods:\n  web: { host: node1 }\n";
        let problem = one(text, "the file declares no hosts", at(text, "node1"));
        assert!(problem.help.unwrap().contains("remove `host:`"));
    }

    #[test]
    fn the_bridge_shorthand_names_a_bridge() {
        valid(
            "name: t\nbridges:\n  cbr-node1: {}\npods:\n  web: { interfaces: { eth0: { bridge: cbr-node1 } } }\n",
        );
        let text = "name: t\nbridges:\n  cbr-node1: {}\npods:\n  web: { interfaces: { eth0: { bridge: cbr-nod1 } } }\n";
        let problem = one(text, "`cbr-nod1` is not a bridge", at(text, "cbr-nod1"));
        assert_eq!(problem.help.as_deref(), Some("did you mean `cbr-node1`?"));
        let text = "name: t\npods:\n  db: {}\n  web: { interfaces: { eth0: { bridge: db } } }\n";
        let problem = one(text, "`db` is not a bridge (it is a pod)", last(text, "db"));
        assert_eq!(
            problem.help.as_deref(),
            Some("the file declares no bridges")
        );
    }

    #[test]
    fn the_bridge_shorthand_is_only_for_pods() {
        let text = "name: t\nhosts:\n  n1:\n    interfaces:\n      lab0: { bridge: br0 }\nbridges:\n  br0: {}\n";
        let problem = one(
            text,
            "`bridge:` is only for pod interfaces",
            at(text, "br0 }"),
        );
        assert_eq!(
            problem.help.as_deref(),
            Some(
                "connect a host interface to a bridge with a link: `endpoints: [n1:lab0, br0:PORT]`"
            )
        );
    }

    #[test]
    fn a_link_end_is_owned_by_a_pod_bridge_or_host() {
        valid(
            "name: t\nhosts:\n  n1: {}\nbridges:\n  br0: {}\npods:\n  web: {}\nlinks:\n  - endpoints: [web:eth0, br0:p0]\n  - endpoints: [n1:lab0, web:eth1]\n",
        );
        let text = "name: t\nbridges:\n  test0: {}\npods:\n  test: {}\nlinks:\n  - endpoints: [test:eth0, tset0:veth0]\n";
        let problem = one(
            text,
            "`tset0` is not a pod, bridge or host",
            at(text, "tset0"),
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `test0`?"));
        let text =
            "name: t\npods:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: [a:eth0, zzzzzz:eth0]\n";
        let problem = one(text, "`zzzzzz` is not", at(text, "zzzzzz"));
        assert_eq!(
            problem.help.as_deref(),
            Some("the pods, bridges and hosts are `a`, `b`")
        );
    }

    #[test]
    fn overlay_bridges_name_bridges() {
        let text = "name: t\nhosts:\n  n1: { underlay: 10.0.0.1/24 }\n  n2: { underlay: 10.0.0.2/24 }\nbridges:\n  b1: { host: n1 }\n  b2: { host: n2 }\noverlays:\n  vx: { vni: 1, bridges: [b1, b3] }\n";
        let problem = one(text, "`b3` is not a bridge", at(text, "b3"));
        assert_eq!(problem.help.as_deref(), Some("did you mean `b1`?"));
    }

    const PODS: &str = "name: t\nbridges:\n  br0: {}\npods:\n  web: { interfaces: { eth0: { bridge: br0, addresses: [10.0.0.2/24, \"fd00::2/64\"] } } }\n  db: { interfaces: { eth0: { bridge: br0, addresses: [10.0.0.3/24] } } }\n";

    #[test]
    fn expectations_name_pods_or_addresses() {
        valid(&format!(
            "{PODS}expect:\n  - {{ from: web, to: db, port: 5432 }}\n  - {{ from: web, to: 10.0.0.9 }}\n  - {{ from: db, to: web, address: \"fd00::2\" }}\n  - {{ from: web, to: 192.0.2.1, reach: false }}\n"
        ));
        let text = format!("{PODS}expect:\n  - {{ from: wbe, to: db }}\n");
        let problem = one(&text, "`wbe` is not a pod", at(&text, "wbe"));
        assert_eq!(problem.help.as_deref(), Some("did you mean `web`?"));
        let text = format!("{PODS}expect:\n  - {{ from: web, to: dbb }}\n");
        let problem = one(
            &text,
            "`dbb` is neither a pod nor an IP address",
            at(&text, "dbb"),
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `db`?"));
    }

    #[test]
    fn an_expectation_address_is_one_of_the_target_pods() {
        let text = format!("{PODS}expect:\n  - {{ from: web, to: db, address: 10.0.0.2 }}\n");
        let problem = one(
            &text,
            "10.0.0.2 is not an address of pod `db`",
            last(&text, "10.0.0.2"),
        );
        assert_eq!(problem.help.as_deref(), Some("its addresses are 10.0.0.3"));
        let text = format!("{PODS}expect:\n  - {{ from: web, to: 10.0.0.3, address: 10.0.0.3 }}\n");
        one(&text, "`to` is an address", last(&text, "10.0.0.3"));
    }

    #[test]
    fn an_expectation_port_is_a_real_port() {
        let text = format!("{PODS}expect:\n  - {{ from: web, to: db, port: 0 }}\n");
        one(&text, "port 0", at(&text, "0 }"));
    }

    #[test]
    fn an_expectation_target_pod_has_an_address() {
        let text = "name: t\nbridges:\n  br0: {}\npods:\n  web: { interfaces: { eth0: { bridge: br0, addresses: [10.0.0.2/24] } } }\n  db: { interfaces: { eth0: { bridge: br0 } } }\nexpect:\n  - { from: web, to: db }\n";
        one(text, "pod `db` has no address to reach", last(text, "db"));
    }
}

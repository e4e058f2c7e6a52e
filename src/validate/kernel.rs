//! Kernel names that must be unique, by lab-mode rules (every namespace on
//! one machine): interface names within a namespace, derived ones included,
//! and namespace names on the machine.

use super::context::{Context, Ns};
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::model::expand::{pod_namespace, underlay_namespace};
use crate::spec::Span;

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    interfaces(cx, out);
    namespaces(cx, out);
}

fn interfaces(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (ns, ifaces) in &cx.namespaces {
        let named = ifaces.iter().map(|i| (i.name.as_str(), i));
        for (first, later) in repeats(named, |i| i.span) {
            let message = format!(
                "interface name `{}` of {} is already used in {ns} by {}{}",
                later.name,
                later.what,
                first.what,
                at_line(first.span)
            );
            let help = if first.name == "lo" {
                "every namespace has its loopback `lo`: rename this interface".to_string()
            } else if later.derived || first.derived {
                let (derived, other) = if later.derived {
                    (later, first)
                } else {
                    (first, later)
                };
                format!(
                    "`{}` is the name netloom derives for {}: rename {}",
                    derived.name, derived.what, other.what
                )
            } else {
                "interface names are unique within a namespace: rename one of them".to_string()
            };
            // A derived name has no place of its own in the file: point at
            // the value it is derived from.
            out.push(
                Diagnostic::new(later.span, message)
                    .with_label("interface name used twice")
                    .with_help(help),
            );
        }
    }
}

/// Pods' netns names, lab hosts and the underlay switch share the
/// machine's /run/netns.
fn namespaces(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let mut all: Vec<(&str, (Span, String))> = Vec::new();
    let underlay = underlay_namespace(&t.name);
    if cx.namespaces.contains_key(&Ns::Underlay) {
        let what = "the lab underlay switch".to_string();
        all.push((&underlay, (t.name.span, what)));
    }
    for name in t.hosts.keys() {
        all.push((name.as_str(), (name.span, format!("host `{name}`"))));
    }
    for (name, pod) in &t.pods {
        // A pod named like a host is reported as a duplicate name already.
        if pod.netns.is_none() && t.hosts.contains_key(name.as_str()) {
            continue;
        }
        let span = pod.netns.as_ref().map_or(name.span, |n| n.span);
        all.push((pod_namespace(name, pod), (span, format!("pod `{name}`"))));
    }
    let all = all
        .into_iter()
        .map(|(ns, (span, what))| (ns, (ns, span, what)));
    for ((_, first_span, first), (ns, span, what)) in repeats(all, |(_, span, _)| *span) {
        out.push(
            Diagnostic::new(
                span,
                format!(
                    "netns name `{ns}` of {what} is already used by {first}{}",
                    at_line(first_span)
                ),
            )
            .with_label("netns name used twice")
            .with_help(
                "every namespace on a machine has its own name: set another `netns`, or rename",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::derived_ifname;
    use crate::validate::testing::{at, check, last, one, valid};

    #[test]
    fn netns_names_are_unique_on_the_machine() {
        valid("name: t\npods:\n  a: { netns: x }\n  b: { netns: y }\n  c: {}\n");
        let text = "name: t\npods:\n  a: { netns: shared }\n  b: { netns: shared }\n";
        let problem = one(
            text,
            "netns name `shared` of pod `b` is already used by pod `a` (line 3)",
            last(text, "shared"),
        );
        assert!(problem.help.unwrap().contains("set another `netns`"));
        let text = "name: t\npods:\n  a: {}\n  b: { netns: a }\n";
        one(
            text,
            "netns name `a` of pod `b` is already used by pod `a`",
            last(text, "a }"),
        );
        // Lab hosts are namespaces named after the host.
        let text = "name: t\nhosts:\n  node1: {}\npods:\n  web: { netns: node1 }\n";
        one(
            text,
            "netns name `node1` of pod `web` is already used by host `node1`",
            last(text, "node1"),
        );
        // So is the lab underlay switch, when there is an underlay.
        let text = "name: lab\nhosts:\n  n1: { underlay: 10.0.0.1/24 }\npods:\n  web: { netns: lab-underlay }\n";
        one(
            text,
            "netns name `lab-underlay` of pod `web` is already used by the lab underlay switch (line 1)",
            at(text, "lab-underlay"),
        );
        valid("name: lab\nhosts:\n  n1: {}\npods:\n  web: { netns: lab-underlay }\n");
    }

    #[test]
    fn a_pod_named_like_a_host_is_reported_once() {
        let problems = check("name: t\nhosts:\n  x: {}\npods:\n  x: {}\n");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("already the name of a host"));
    }

    #[test]
    fn interface_names_are_unique_in_a_namespace() {
        // One name on two hosts is fine: each host has its own namespace.
        valid(
            "name: t\nhosts:\n  n1: {}\n  n2: {}\nbridges:\n  b1: { host: n1, ifname: cbr0 }\n  b2: { host: n2, ifname: cbr0 }\n",
        );
        let text = "name: t\nbridges:\n  b1: { ifname: cbr0 }\n  b2: { ifname: cbr0 }\n";
        let problem = one(
            text,
            "interface name `cbr0` of bridge `b2` is already used in this machine's namespace by bridge `b1` (line 3)",
            last(text, "cbr0"),
        );
        assert!(problem.help.unwrap().contains("rename one of them"));
        // Bridge ports of two bridges live side by side.
        let text = "name: t\nbridges:\n  b1: {}\n  b2: {}\npods:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: [a:eth0, b1:port]\n  - endpoints: [b:eth0, b2:port]\n";
        one(
            text,
            "interface name `port` of bridge port `b2:port` is already used in this machine's namespace by bridge port `b1:port` (line 9)",
            at(text, "b2:port"),
        );
        // A port named like a bridge.
        let text = "name: t\nbridges:\n  b1: {}\n  b2: {}\npods:\n  a: {}\nlinks:\n  - endpoints: [a:eth0, b2:b1]\n";
        one(
            text,
            "interface name `b1` of bridge port `b2:b1` is already used",
            at(text, "b2:b1"),
        );
        // A host's interfaces and its bridges.
        let text = "name: t\nhosts:\n  n1: {}\nbridges:\n  br0: {}\npods:\n  a: {}\nlinks:\n  - endpoints: [n1:br0, a:eth0]\n";
        one(
            text,
            "interface name `br0` of link end `n1:br0` is already used in host `n1` by bridge `br0` (line 5)",
            at(text, "n1:br0"),
        );
    }

    #[test]
    fn every_namespace_has_its_loopback() {
        let text = "name: t\npods:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: [a:lo, b:eth0]\n";
        let problem = one(
            text,
            "interface name `lo` of link end `a:lo` is already used in pod `a` by the loopback interface",
            at(text, "a:lo"),
        );
        assert!(problem.help.unwrap().contains("loopback"));
        let text = "name: t\nbridges:\n  lo: {}\n";
        one(text, "`lo` of bridge `lo`", at(text, "lo:"));
    }

    #[test]
    fn derived_names_are_checked_too() {
        let port = derived_ifname("t", "web", "eth0");
        let text = format!(
            "name: t\nbridges:\n  br0: {{}}\n  b2: {{ ifname: {port} }}\npods:\n  web: {{ interfaces: {{ eth0: {{ bridge: br0 }} }} }}\n"
        );
        let problem = one(
            &text,
            &format!(
                "interface name `{port}` of the bridge port of `web:eth0` is already used in this machine's namespace by bridge `b2` (line 4)"
            ),
            at(&text, "eth0"),
        );
        assert_eq!(
            problem.help.unwrap(),
            format!(
                "`{port}` is the name netloom derives for the bridge port of `web:eth0`: rename bridge `b2`"
            )
        );
        // The underlay interface and an overlay's VXLAN device of a lab host.
        let text = "name: t\nhosts:\n  n1: { underlay: 10.0.0.1/24, underlay_interface: cbr0 }\n  n2: { underlay: 10.0.0.2/24 }\nbridges:\n  b1: { host: n1, ifname: cbr0 }\n  b2: { host: n2 }\n";
        one(
            text,
            "interface name `cbr0` of bridge `b1` is already used in host `n1` by the underlay interface of host `n1` (line 3)",
            last(text, "cbr0"),
        );
        let text = "name: t\nhosts:\n  n1: { underlay: 10.0.0.1/24 }\n  n2: { underlay: 10.0.0.2/24 }\nbridges:\n  b1: { host: n1, ifname: vx }\n  b2: { host: n2 }\noverlays:\n  vx: { vni: 1, bridges: [b1, b2] }\n";
        one(
            text,
            "interface name `vx` of overlay `vx` is already used in host `n1` by bridge `b1` (line 6)",
            last(text, "vx"),
        );
    }
}

//! Names: the topology's, the shared namespace of host, bridge and pod
//! names, interface and netns names as the kernel accepts them, and pod
//! sysctl keys.

use std::collections::HashSet;
use std::net::IpAddr;

use super::context::{Context, Ns};
use super::{at_line, repeats};
use crate::diagnostics::Diagnostic;
use crate::graph::sysctl_interface;
use crate::spec::{Sp, Span};

/// The kernel's IFNAMSIZ, less the terminating NUL.
const MAX_IFNAME_BYTES: usize = 15;
/// Host, bridge, pod and netns names.
const MAX_OBJECT_NAME_CHARS: usize = 64;
const MAX_TOPOLOGY_NAME_CHARS: usize = 16;

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    topology_name(&cx.t.name, out);
    object_names(cx, out);
    interface_names(cx, out);
    for (name, pod) in &cx.t.pods {
        if let Some(netns) = &pod.netns
            && let Some(problem) = object_name_problem(netns)
        {
            out.push(
                Diagnostic::new(netns.span, format!("netns name `{}` {problem}", elided(netns)))
                    .with_label("invalid netns name")
                    .with_help("a netns name is a file name in /run/netns: 1 to 64 of A-Z, a-z, 0-9, `_`, `.` and `-`"),
            );
        }
        sysctls(cx, name, out);
    }
}

/// Whether `name` can name a topology (it names files of the state dir
/// too, so it must never hold a `/` or a `..`).
pub fn is_topology_name(name: &str) -> bool {
    (1..=MAX_TOPOLOGY_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn topology_name(name: &Sp<String>, out: &mut Vec<Diagnostic>) {
    if is_topology_name(name) {
        return;
    }
    let mut diagnostic = Diagnostic::new(
        name.span,
        format!(
            "topology name `{}` is not 1 to 16 of a-z, 0-9 and `-`",
            elided(name)
        ),
    )
    .with_label("invalid topology name");
    let lower: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c == '_' || c == ' ' || c == '.' {
                '-'
            } else {
                c
            }
        })
        .collect();
    if is_topology_name(&lower) {
        diagnostic = diagnostic.with_help(format!("did you mean `{lower}`?"));
    } else {
        diagnostic = diagnostic.with_help(
            "the name goes into every ownership mark: keep it short, lower case, digits and `-`",
        );
    }
    out.push(diagnostic);
}

/// What is wrong with a host, bridge, pod or netns name.
fn object_name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if name.is_empty() {
        return Some("is empty".to_string());
    }
    if chars > MAX_OBJECT_NAME_CHARS {
        return Some(format!(
            "is {chars} characters long; at most {MAX_OBJECT_NAME_CHARS} are allowed"
        ));
    }
    if name == "." || name == ".." {
        return Some("cannot be `.` or `..`".to_string());
    }
    let invalid = |c: &char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    name.chars().find(invalid).map(|c| {
        format!(
            "contains {}; only A-Z, a-z, 0-9, `_`, `.` and `-` are allowed",
            shown(c)
        )
    })
}

/// What is wrong with an interface name, as the kernel's
/// `dev_valid_name` sees it, or as it would misread it: a `%` makes the
/// name a template (`br%d` becomes `br0`, `br1`, ... on each creation).
pub(super) fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_IFNAME_BYTES {
        Some(format!(
            "is {} bytes long; the kernel allows at most {MAX_IFNAME_BYTES}",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("cannot be `.` or `..`".to_string())
    } else if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '\0') || c.is_whitespace())
    {
        Some(format!("contains {}", shown(c)))
    } else if name.contains('%') {
        Some("contains `%`, which the kernel reads as a name template".to_string())
    } else if name.bytes().any(|b| b == 0xa0) {
        // The kernel tests each byte with isspace(), which counts 0xa0
        // (Latin-1 no-break space); UTF-8 has that byte inside characters.
        Some("contains a character whose UTF-8 encoding the kernel reads as a space".to_string())
    } else {
        None
    }
}

/// A name as a message shows it: a name too long to be valid is cut.
fn elided(name: &str) -> String {
    match name.char_indices().nth(MAX_OBJECT_NAME_CHARS) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_string(),
    }
}

/// A character as a message shows it: printable ones quoted, others escaped.
fn shown(c: char) -> String {
    if c.is_whitespace() {
        format!("whitespace ({})", c.escape_unicode())
    } else if c.is_control() {
        format!("a control character ({})", c.escape_unicode())
    } else {
        format!("`{c}`")
    }
}

/// Hosts, bridges and pods: valid namespace names, each used once across
/// the three maps (so `X:ifname` is unambiguous), hosts and pods not
/// looking like IP addresses (so an expectation's `to` is unambiguous).
fn object_names(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let all = (t.hosts.keys().map(|k| (k, "host")))
        .chain(t.bridges.keys().map(|k| (k, "bridge")))
        .chain(t.pods.keys().map(|k| (k, "pod")));
    for (name, kind) in all.clone() {
        if let Some(problem) = object_name_problem(name) {
            out.push(
                Diagnostic::new(
                    name.span,
                    format!("{kind} name `{}` {problem}", elided(name)),
                )
                .with_label(format!("invalid {kind} name")),
            );
        } else if kind != "bridge" && name.parse::<IpAddr>().is_ok() {
            out.push(
                Diagnostic::new(name.span, format!("{kind} name `{name}` is an IP address"))
                    .with_label(format!("invalid {kind} name"))
                    .with_help(format!(
                        "an expectation's `to` is a pod name or an address: give the {kind} a name that is not an address"
                    )),
            );
        }
    }
    for ((first, first_kind), (name, kind)) in repeats(
        all.map(|(name, kind)| (name.as_str(), (name, kind))),
        |(name, _)| name.span,
    ) {
        out.push(
            Diagnostic::new(
                name.span,
                format!(
                    "`{name}` is already the name of a {first_kind}{}",
                    at_line(first.span)
                ),
            )
            .with_label(format!("second use of `{name}`"))
            .with_help(format!(
                "hosts, bridges and pods share one namespace of names, so that an endpoint `{name}:ifname` is unambiguous: rename this {kind}"
            )),
        );
    }
}

/// Every interface name the file writes.
fn interface_names(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    let check = |name: &str, span: Span, what: &str, out: &mut Vec<Diagnostic>| {
        if let Some(problem) = ifname_problem(name) {
            out.push(
                Diagnostic::new(span, format!("{what} `{}` {problem}", elided(name)))
                    .with_label("invalid interface name")
                    .with_help("an interface name is 1 to 15 bytes, without `/`, `:`, `%` or whitespace, and not `.` or `..`"),
            );
        }
    };
    for (key, bridge) in &t.bridges {
        match &bridge.ifname {
            Some(ifname) => check(ifname, ifname.span, "interface name", out),
            // The key is the interface name: say how to keep a long key
            // (a key that is no valid name at all is reported as such).
            None if object_name_problem(key).is_none() => {
                if let Some(problem) = ifname_problem(key) {
                    out.push(
                        Diagnostic::new(
                            key.span,
                            format!("bridge `{key}` has no `ifname`, and as an interface name its key {problem}"),
                        )
                        .with_label("invalid interface name")
                        .with_help("set `ifname:` to a name of 1 to 15 bytes, without `/`, `:`, `%` or whitespace"),
                    );
                }
            }
            None => {}
        }
    }
    for host in t.hosts.values() {
        for ifname in host.interfaces.keys() {
            check(ifname, ifname.span, "interface name", out);
        }
        if let Some(ifname) = &host.underlay_interface {
            check(ifname, ifname.span, "interface name", out);
        }
        for route in &host.routes {
            if let Some(dev) = &route.dev {
                check(dev, dev.span, "interface name", out);
            }
        }
    }
    for pod in t.pods.values() {
        for ifname in pod.interfaces.keys() {
            check(ifname, ifname.span, "interface name", out);
        }
        for route in &pod.routes {
            if let Some(dev) = &route.dev {
                check(dev, dev.span, "interface name", out);
            }
        }
    }
    for link in &t.links {
        for end in link.endpoints.iter() {
            if let Some(endpoint) = end.ok() {
                check(
                    &endpoint.ifname,
                    end.span(),
                    &format!("in `{endpoint}`, interface name"),
                    out,
                );
            }
        }
    }
    for name in t.overlays.keys() {
        check(
            name,
            name.span,
            "overlay name (its VXLAN interface name)",
            out,
        );
    }
}

/// Pod sysctls are written to /proc/sys/net/... inside the pod: only
/// namespaced `net.*` keys, values that are one line.
fn sysctls(cx: &Context, pod: &Sp<String>, out: &mut Vec<Diagnostic>) {
    let sysctls = &cx.t.pods[pod.as_str()].sysctls;
    if sysctls.is_empty() {
        return;
    }
    let ifaces = cx.interfaces(Ns::Pod(pod.as_str()));
    let names: HashSet<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
    for (key, value) in sysctls {
        let words: Vec<&str> = key.split('.').collect();
        let valid = words.len() >= 2
            && words[0] == "net"
            && words[1..].iter().all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        // A valid key may still be about an interface the pod lacks, which
        // has no file in /proc/sys to write.
        if !valid {
            out.push(
                Diagnostic::new(key.span, format!("`{key}` is not a namespaced `net.*` sysctl"))
                    .with_label("invalid sysctl")
                    .with_help("a pod sysctl is `net.` and dotted words of A-Z, a-z, 0-9, `_` and `-`, like net.ipv4.ip_forward"),
            );
        } else if let Some(ifname) = sysctl_interface(key)
            && !names.contains(ifname)
        {
            let names = ifaces.iter().map(|i| i.name.as_str());
            out.push(
                Diagnostic::new(
                    key.span,
                    format!(
                        "`{key}` is about interface `{ifname}`, which pod `{pod}` does not have"
                    ),
                )
                .with_label("unknown interface")
                .with_help(cx.suggest(ifname, "interfaces of the pod", names)),
            );
        }
        if value.trim().is_empty() {
            out.push(
                Diagnostic::new(value.span, format!("sysctl `{key}` has an empty value"))
                    .with_label("empty value")
                    .with_help("write the value as /proc/sys shows it, e.g. \"1\""),
            );
        } else if value.contains(['\n', '\r', '\0']) {
            out.push(
                Diagnostic::new(
                    value.span,
                    format!("the value of sysctl `{key}` has a line break or NUL"),
                )
                .with_label("not one line")
                .with_help("a sysctl value is one line, as /proc/sys shows it"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ifname_problem;
    use crate::validate::testing::{at, check, last, one, valid};

    #[test]
    fn topology_names() {
        valid("name: lab-1\n");
        valid("name: abcdefghijklmnop\n");
        let text = "name: My_Lab\n";
        let problem = one(text, "topology name `My_Lab`", at(text, "My_Lab"));
        assert_eq!(problem.help.as_deref(), Some("did you mean `my-lab`?"));
        let text = "name: abcdefghijklmnopq\n";
        one(text, "not 1 to 16", at(text, "abc"));
        let text = "name: \"\"\n";
        one(text, "topology name", (1, 7));
    }

    #[test]
    fn object_names_are_namespace_names() {
        valid("name: t\npods:\n  web_1.a-b: {}\n  X: {}\n");
        let text = "name: t\npods:\n  web/1: {}\n";
        one(text, "pod name `web/1` contains `/`", at(text, "web/1"));
        let text = "name: t\nbridges:\n  \"..\": { ifname: br0 }\n";
        one(text, "cannot be `.` or `..`", at(text, "\"..\""));
        let long = "p".repeat(65);
        let text = format!("name: t\npods:\n  {long}: {{}}\n");
        one(&text, "65 characters long", at(&text, &long));
        let text = "name: t\nhosts:\n  \"nodé\": {}\n";
        one(text, "contains `é`", at(text, "\"nod"));
    }

    #[test]
    fn hosts_and_pods_are_not_named_like_addresses() {
        valid("name: t\nbridges:\n  10.0.0.1: { ifname: br0 }\n");
        let text = "name: t\npods:\n  10.0.0.1: {}\n";
        let problem = one(
            text,
            "pod name `10.0.0.1` is an IP address",
            at(text, "10.0.0.1"),
        );
        assert!(problem.help.unwrap().contains("expectation"));
        let text = "name: t\nhosts:\n  10.1.1.1: {}\n";
        one(
            text,
            "host name `10.1.1.1` is an IP address",
            at(text, "10.1.1.1"),
        );
    }

    #[test]
    fn hosts_bridges_and_pods_share_one_namespace_of_names() {
        valid("name: t\nhosts:\n  a: {}\nbridges:\n  b: {}\npods:\n  c: {}\n");
        let text = "name: t\nbridges:\n  web: {}\npods:\n  web: {}\n";
        let problem = one(
            text,
            "`web` is already the name of a bridge (line 3)",
            last(text, "web"),
        );
        assert!(problem.help.unwrap().contains("rename this pod"));
        // The second in the file is reported, whichever map it is in.
        let text = "name: t\npods:\n  x: {}\nhosts:\n  x: {}\n";
        one(text, "already the name of a pod", last(text, "x:"));
    }

    #[test]
    fn interface_names_follow_the_kernel() {
        assert_eq!(ifname_problem("eth0"), None);
        assert_eq!(ifname_problem("a-very-long-n15"), None);
        assert_eq!(ifname_problem("ethé"), None);
        assert!(
            ifname_problem("a-very-long-n016")
                .unwrap()
                .contains("16 bytes")
        );
        assert!(ifname_problem("éééééééé").unwrap().contains("16 bytes"));
        assert!(ifname_problem("").unwrap().contains("empty"));
        assert!(ifname_problem(".").unwrap().contains("`.`"));
        assert!(ifname_problem("a/b").unwrap().contains("`/`"));
        assert!(ifname_problem("a:b").unwrap().contains("`:`"));
        assert!(ifname_problem("br%d").unwrap().contains("name template"));
        assert!(ifname_problem("a b").unwrap().contains("whitespace"));
        assert!(ifname_problem("a\u{3000}b").unwrap().contains("whitespace"));
        assert!(ifname_problem("a\0").unwrap().contains("control"));
        // `à` is C3 A0 in UTF-8; the kernel's isspace() refuses the A0.
        assert!(ifname_problem("eth\u{e0}").unwrap().contains("space"));
    }

    /// The kernel would make `br0`, `br1`, ... of `br%d`, one per apply,
    /// and destroy would leave them all behind.
    #[test]
    fn a_percent_sign_in_an_interface_name_is_refused() {
        let text = "name: t\nbridges:\n  br0: { ifname: \"br%d\" }\n";
        let problem = one(
            text,
            "interface name `br%d` contains `%`, which the kernel reads as a name template",
            at(text, "\"br%d"),
        );
        assert!(problem.help.unwrap().contains("`%`"));
        let text = "name: t\npods:\n  web:\n    interfaces:\n      \"eth%d\": { addresses: [10.0.0.2/24] }\nlinks:\n  - endpoints: [\"web:eth%d\", web:eth1]\n";
        let problems = check(text);
        let places: Vec<_> = problems
            .iter()
            .map(|p| (p.span.line, p.span.column))
            .collect();
        assert_eq!(
            places,
            [at(text, "\"eth%d"), at(text, "\"web:eth%d")],
            "{problems:#?}"
        );
    }

    #[test]
    fn every_interface_name_of_the_file_is_checked() {
        let cases = [
            // An interface key of a pod and of a host.
            "name: t\npods:\n  web:\n    interfaces:\n      BADeth0-too-long: {}\n",
            "name: t\nhosts:\n  n1:\n    interfaces:\n      BADa b: {}\n",
            // A bridge's ifname; a link end; an overlay name.
            "name: t\nbridges:\n  br0: { ifname: BADbr/0 }\n",
            "name: t\npods:\n  a: {}\n  b: {}\nlinks:\n  - endpoints: [a:eth0, BADb:..]\n",
            // The underlay interface; a route's dev.
            "name: t\nhosts:\n  n1: { underlay: 10.0.0.1/24, underlay_interface: BADens3-is-too-long }\n",
            "name: t\npods:\n  web:\n    routes:\n      - { to: 10.0.0.0/8, dev: BADeth0:1 }\n",
        ];
        for text in cases {
            let problems = check(text);
            let names: Vec<_> = problems
                .iter()
                .filter(|p| p.label.as_deref() == Some("invalid interface name"))
                .collect();
            assert_eq!(names.len(), 1, "{text:?}: {problems:#?}");
            assert_eq!((names[0].span.line, names[0].span.column), at(text, "BAD"));
        }
    }

    #[test]
    fn an_overlay_name_is_an_interface_name() {
        let text = "name: t\noverlays:\n  vxlan-overlay-42: { vni: 42, bridges: [] }\n";
        let problems = check(text);
        assert!(
            problems.iter().any(|p| p.message
                == "overlay name (its VXLAN interface name) `vxlan-overlay-42` is 16 bytes long; the kernel allows at most 15"
                && (p.span.line, p.span.column) == at(text, "vxlan-overlay-42")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_bridge_key_too_long_for_an_interface_needs_an_ifname() {
        valid("name: t\nbridges:\n  bridge-of-node-one: { ifname: cbr0 }\n");
        let text = "name: t\nbridges:\n  bridge-of-node-one: {}\n";
        let problem = one(text, "has no `ifname`", at(text, "bridge-of"));
        assert!(problem.help.unwrap().contains("set `ifname:`"));
    }

    #[test]
    fn netns_names_cannot_leave_run_netns() {
        valid("name: t\npods:\n  web: { netns: web.ns_1 }\n");
        for netns in ["../../etc/passwd", "..", "a b", "x/y"] {
            let text = format!("name: t\npods:\n  web: {{ netns: \"{netns}\" }}\n");
            let problem = one(&text, "netns name", at(&text, "\""));
            assert!(problem.help.unwrap().contains("/run/netns"));
        }
    }

    #[test]
    fn sysctl_keys_are_namespaced_net_keys() {
        valid(
            "name: t\npods:\n  web:\n    interfaces: { eth0: {} }\n    sysctls:\n      net.ipv4.ip_forward: \"1\"\n      net.ipv4.conf.eth0.rp_filter: \"2\"\n      net.ipv6.conf.all.disable_ipv6: \"0\"\n      net.ipv4.ip_local_port_range: \"1024\\t65000\"\nlinks:\n  - endpoints: [web:eth0, web:eth1]\n",
        );
        for key in [
            "kernel.hostname",
            "net",
            "net..ipv4",
            "net.ipv4/ip_forward",
            "net.ipv4.",
            "net.ipv4.ip forward",
        ] {
            let text = format!("name: t\npods:\n  web:\n    sysctls:\n      \"{key}\": \"1\"\n");
            let problem = one(
                &text,
                "is not a namespaced `net.*` sysctl",
                at(&text, &format!("\"{key}\"")),
            );
            assert!(problem.help.is_some(), "{key}");
        }
    }

    #[test]
    fn sysctl_values_are_one_nonempty_line() {
        let text = "name: t\npods:\n  web:\n    sysctls:\n      net.ipv4.ip_forward: \"\"\n";
        one(text, "has an empty value", at(text, "\"\""));
        let text = "name: t\npods:\n  web:\n    sysctls:\n      net.ipv4.ip_forward: \"1\\n2\"\n";
        one(text, "line break", at(text, "\"1"));
    }

    #[test]
    fn a_per_interface_sysctl_names_an_interface_of_the_pod() {
        let text = "name: t\npods:\n  web:\n    interfaces: { eth0: {} }\n    sysctls:\n      net.ipv4.conf.eht0.rp_filter: \"1\"\nlinks:\n  - endpoints: [web:eth0, web:eth1]\n";
        let problem = one(
            text,
            "is about interface `eht0`, which pod `web` does not have",
            at(text, "net.ipv4.conf.eht0"),
        );
        assert_eq!(problem.help.as_deref(), Some("did you mean `eth0`?"));
        // Loopback is in every pod; `all` and `default` are not interfaces.
        valid(
            "name: t\npods:\n  web:\n    sysctls:\n      net.ipv4.conf.lo.rp_filter: \"1\"\n      net.ipv6.conf.default.forwarding: \"1\"\n",
        );
    }
}

//! Scalars that did not parse (addresses, networks, MACs, rates,
//! endpoints). The loader keeps them with their text so that all of them
//! are reported here together, each at its own place.

use super::context::Context;
use crate::diagnostics::Diagnostic;
use crate::spec::{Interface, Parsed, Route};

pub(super) fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let t = cx.t;
    for host in t.hosts.values() {
        malformed(&host.underlay, "not an address", out);
        if let Some(cidr) = &host.pod_cidr {
            network(cidr, "pod_cidr", "not a network", out);
        }
        interfaces(host.interfaces.values(), out);
        routes(host.routes.iter().map(|r| &r.value), out);
    }
    for bridge in t.bridges.values() {
        malformed(&bridge.addresses, "not an address", out);
        malformed(&bridge.mac, "not a unicast MAC", out);
    }
    for pod in t.pods.values() {
        interfaces(pod.interfaces.values(), out);
        routes(pod.routes.iter().map(|r| &r.value), out);
    }
    for link in &t.links {
        malformed(link.endpoints.iter(), "not an endpoint", out);
        malformed(&link.rate, "not a rate", out);
    }
    for expectation in &t.expect {
        malformed(&expectation.address, "not an IP address", out);
    }
}

fn interfaces<'a>(interfaces: impl Iterator<Item = &'a Interface>, out: &mut Vec<Diagnostic>) {
    for interface in interfaces {
        malformed(&interface.addresses, "not an address", out);
        malformed(&interface.mac, "not a unicast MAC", out);
    }
}

fn routes<'a>(routes: impl Iterator<Item = &'a Route>, out: &mut Vec<Diagnostic>) {
    for route in routes {
        network(&route.to, "to", "not a destination", out);
        malformed(&route.via, "not an IP address", out);
    }
}

/// A parse error is already a sentence that says what is wrong.
fn malformed<'a, T: 'a>(
    values: impl IntoIterator<Item = &'a Parsed<T>>,
    label: &str,
    out: &mut Vec<Diagnostic>,
) {
    for value in values {
        if let Err(err) = &value.value {
            out.push(Diagnostic::new(value.span(), err.clone()).with_label(label));
        }
    }
}

/// A network with host bits set has an obvious fix: its network.
fn network<T>(value: &Parsed<T>, key: &str, label: &str, out: &mut Vec<Diagnostic>) {
    let Err(err) = &value.value else { return };
    let mut diagnostic = Diagnostic::new(value.span(), err.clone()).with_label(label);
    if let Ok(net) = value.text.parse::<ipnet::IpNet>()
        && net.trunc() != net
    {
        diagnostic = diagnostic.with_help(format!("write `{key}: {}`", net.trunc()));
    }
    out.push(diagnostic);
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{at, check, one, valid};

    #[test]
    fn well_formed_values_pass() {
        valid(
            r#"name: t
hosts:
  n1: { underlay: 192.168.1.1/24, pod_cidr: 10.0.0.0/24 }
bridges:
  br0: { addresses: [10.0.0.1/24, "fd00::1/64"], mac: "02:00:00:00:00:01" }
pods:
  web:
    interfaces:
      eth0: { bridge: br0, addresses: [10.0.0.2/24], mac: "02:00:00:00:00:02" }
    routes:
      - { to: 10.96.0.0/12, via: 10.0.0.1 }
links:
  - endpoints: [n1:lab0, br0:p0]
    rate: 100mbit
expect:
  - { from: web, to: web, address: 10.0.0.2 }
"#,
        );
    }

    #[test]
    fn each_malformed_value_is_reported_at_its_place() {
        let cases = [
            (
                "name: t\nhosts:\n  n1: { underlay: 192.168.1.1 }\n",
                "192.168.1.1",
                "has no prefix length",
            ),
            (
                "name: t\nhosts:\n  n1: { pod_cidr: 10.0.0.0/33 }\n",
                "10.0.0.0/33",
                "not a network",
            ),
            (
                "name: t\nbridges:\n  br0: { mac: \"01:00:5e:00:00:01\" }\n",
                "\"01:00",
                "multicast",
            ),
            (
                "name: t\nbridges:\n  br0: { addresses: [10.0.0.256/24] }\n",
                "10.0.0.256",
                "not an address",
            ),
            (
                "name: t\nbridges:\n  br0: {}\npods:\n  web:\n    interfaces:\n      eth0: { bridge: br0, mac: \"02:00:00:00:00\" }\n",
                "\"02:00",
                "not a MAC address",
            ),
            (
                "name: t\npods:\n  web:\n    routes:\n      - { to: nowhere, dev: lo }\n",
                "nowhere",
                "neither `default` nor a network",
            ),
            (
                "name: t\npods:\n  web:\n    routes:\n      - { to: default, via: gateway }\n",
                "gateway",
                "not an IP address",
            ),
            (
                "name: t\npods:\n  web: {}\nlinks:\n  - endpoints: [web, web:eth1]\n",
                "web,",
                "not an endpoint",
            ),
            (
                "name: t\npods:\n  web: {}\n  db: {}\nlinks:\n  - endpoints: [web:eth0, db:eth0]\n    rate: fast\n",
                "fast",
                "not a rate",
            ),
            (
                "name: t\npods:\n  web: { interfaces: { lo0: {} } }\nexpect:\n  - { from: web, to: web, address: 10.0.0.1/24 }\n",
                "10.0.0.1/24",
                "not an IP address",
            ),
        ];
        for (text, value, fragment) in cases {
            let problems = check(text);
            let problem = problems
                .iter()
                .find(|p| p.message.contains(fragment))
                .unwrap_or_else(|| panic!("no `{fragment}` in {problems:#?}"));
            assert_eq!(
                (problem.span.line, problem.span.column),
                at(text, value),
                "{text}"
            );
        }
    }

    #[test]
    fn a_network_with_host_bits_gets_its_network_as_help() {
        let text = "name: t\nhosts:\n  n1: { pod_cidr: 10.244.1.1/24 }\n";
        let problem = one(text, "host bits set", at(text, "10.244.1.1/24"));
        assert_eq!(
            problem.help.as_deref(),
            Some("write `pod_cidr: 10.244.1.0/24`")
        );
        let text = "name: t\npods:\n  web:\n    routes:\n      - { to: 10.96.0.1/12, dev: lo }\n";
        let problem = one(text, "host bits set", at(text, "10.96.0.1/12"));
        assert_eq!(problem.help.as_deref(), Some("write `to: 10.96.0.0/12`"));
    }

    #[test]
    fn every_malformed_value_is_reported_together() {
        let text =
            "name: t\nbridges:\n  br0: { addresses: [bad, 10.0.0.1/24, worse], mac: nope }\n";
        let problems = check(text);
        let places: Vec<_> = problems
            .iter()
            .map(|p| (p.span.line, p.span.column))
            .collect();
        assert_eq!(
            places,
            [at(text, "bad"), at(text, "worse"), at(text, "nope")]
        );
    }
}

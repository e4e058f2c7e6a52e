//! IPv6 link-local addresses (docs/FORMAT.md, Pod): an interface the file
//! gives no IPv6 address gets none, unless `ipv6_link_local: true`; bridge
//! ports never get one. Read back with `ip -j addr` in a sandbox.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::{Sandbox, apply_converged};

const TOPOLOGY: &str = r#"
name: ll6
bridges:
  llbr:
    addresses: [10.41.0.1/24]
pods:
  only4:
    interfaces:
      eth0: { bridge: llbr, addresses: [10.41.0.2/24] }
  asked:
    interfaces:
      eth0: { bridge: llbr, addresses: [10.41.0.3/24], ipv6_link_local: true }
  dual:
    interfaces:
      eth0: { bridge: llbr, addresses: [10.41.0.4/24, "fd00:41::4/64"] }
"#;

/// The kernel-made (fe80::/10) addresses of an interface.
fn link_local_addresses(sandbox: &Sandbox, ns: &str, ifname: &str) -> Vec<String> {
    let n = if ns.is_empty() {
        String::new()
    } else {
        format!("-n {ns} ")
    };
    sandbox.ip_json(&format!("{n}-6 addr show dev {ifname}"))[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["local"].as_str())
        .filter(|ip| ip.starts_with("fe80:"))
        .map(str::to_string)
        .collect()
}

/// Waits (a link-local address comes once the link has a carrier) until
/// the interface has one, or gives up after five seconds.
fn eventually_link_local(sandbox: &Sandbox, ns: &str, ifname: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found = link_local_addresses(sandbox, ns, ifname);
        if !found.is_empty() || started.elapsed() > Duration::from_secs(5) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn only_interfaces_with_ipv6_or_asking_get_a_link_local_address() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = support::topology_file("link-local-contract.yaml", TOPOLOGY);
    apply_converged(&sandbox, &file);

    assert!(
        !eventually_link_local(&sandbox, "asked", "eth0").is_empty(),
        "ipv6_link_local: true gives eth0 a link-local address"
    );
    assert!(
        !eventually_link_local(&sandbox, "dual", "eth0").is_empty(),
        "an IPv6 address brings the link-local address with it"
    );
    // The others have had theirs by now: an IPv4-only pod's would be too.
    assert_eq!(
        link_local_addresses(&sandbox, "only4", "eth0"),
        Vec::<String>::new(),
        "an IPv4-only pod interface gets no link-local address"
    );
    let ports: Vec<String> = common::links(&sandbox, "")
        .into_iter()
        .filter(|link| link["master"] == "llbr")
        .filter_map(|link| link["ifname"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ports.len(), 3, "three bridge ports: {ports:?}");
    for port in &ports {
        assert_eq!(
            link_local_addresses(&sandbox, "", port),
            Vec::<String>::new(),
            "bridge port {port} gets no link-local address"
        );
    }
}

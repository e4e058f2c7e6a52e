//! The kernel picture of a sandbox, for "the same as a fresh apply"
//! checks: `ip -j` of links, addresses and routes of every table, qdiscs,
//! flood entries and the forwarding sysctls of every namespace, with what
//! the kernel picks anew each time (ifindexes, random MACs, link-local
//! addresses, lifetimes, counters) left out.

use serde_json::Value;

use super::Sandbox;

/// Fields the kernel sets anew for each object it makes.
const VOLATILE: &[&str] = &[
    "ifindex",
    "link_index",
    "link_netnsid",
    "address",
    "broadcast",
    "perm_address",
    "operstate",
    "valid_life_time",
    "preferred_life_time",
    "stats",
    "stats64",
    "refcnt",
    "expires",
    "linkinfo",
    // A qdisc handle the kernel allocates.
    "handle",
    "inet6_addr_gen_mode",
    "min_mtu",
    "max_mtu",
    // A bridge's offload limits follow the ports it has had.
    "tso_max_size",
    "tso_max_segs",
    "gso_max_size",
    "gso_max_segs",
    "gro_max_size",
];

/// Carrier follows the ports and the kernel's timing (a bridge whose last
/// port left may keep it a while), not the file.
const CARRIER_FLAGS: &[&str] = &["NO-CARRIER", "LOWER_UP", "linkdown"];

/// The value without the fields the kernel picks anew, without carrier, and without
/// link-local IPv6 addresses (they follow the random MACs).
fn normalised(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.retain(|key, _| !VOLATILE.contains(&key.as_str()));
            if let Some(Value::Array(flags)) = map.get_mut("flags") {
                flags.retain(|flag| !CARRIER_FLAGS.iter().any(|c| flag == c));
            }
            if let Some(Value::Array(addresses)) = map.get_mut("addr_info") {
                addresses.retain(|a| a["scope"] != "link");
            }
            for field in map.values_mut() {
                *field = normalised(field.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = normalised(item.take());
            }
        }
        _ => {}
    }
    value
}

/// Each object of a JSON list as one line, sorted (the kernel lists them
/// by ifindex, which differs between sandboxes).
fn lines(text: &str, keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let list: Value = serde_json::from_str(text).unwrap_or(Value::Array(Vec::new()));
    let mut lines: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| keep(item))
        .map(|item| normalised(item.clone()).to_string())
        .collect();
    lines.sort();
    lines
}

/// The kernel's own IPv6 routes of an interface: link-local (they follow
/// the random MACs) and the multicast route it adds when IPv6 starts on
/// the interface, whose timing differs between runs.
fn kernel_ipv6_route(route: &Value) -> bool {
    route["dst"]
        .as_str()
        .is_some_and(|dst| dst.starts_with("fe80") || dst == "ff00::/8")
}

/// The kernel picture of the whole sandbox.
pub fn picture(sandbox: &Sandbox) -> String {
    let mut namespaces: Vec<String> = sandbox
        .sh("ls /run/netns 2>/dev/null || true")
        .split_whitespace()
        .map(String::from)
        .collect();
    namespaces.sort();
    let mut picture = format!("namespaces {namespaces:?}\n");
    for ns in std::iter::once(String::new()).chain(namespaces) {
        let exec = if ns.is_empty() {
            String::new()
        } else {
            format!("ip netns exec {ns} ")
        };
        let run = |command: &str| sandbox.sh(&format!("{exec}{command}"));
        picture.push_str(&format!("== {ns}\n"));
        let sections = [
            ("links", lines(&run("ip -d -j link show"), |_| true)),
            ("addresses", lines(&run("ip -j addr show"), |_| true)),
            (
                "routes",
                lines(&run("ip -j route show table all"), |route| {
                    !kernel_ipv6_route(route)
                }),
            ),
            (
                "routes6",
                lines(&run("ip -6 -j route show table all"), |route| {
                    !kernel_ipv6_route(route)
                }),
            ),
            ("qdiscs", lines(&run("tc -j qdisc show"), |_| true)),
            (
                "flood",
                lines(&run("bridge -j fdb show"), |entry| {
                    entry["mac"] == "00:00:00:00:00:00"
                }),
            ),
        ];
        for (name, items) in sections {
            picture.push_str(&format!("{name}:\n"));
            for item in items {
                picture.push_str(&format!("  {item}\n"));
            }
        }
        let sysctls = run(
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/forwarding \
             /proc/sys/net/ipv6/conf/all/forwarding",
        );
        picture.push_str(&format!(
            "sysctls: {}\n",
            sysctls.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    picture
}

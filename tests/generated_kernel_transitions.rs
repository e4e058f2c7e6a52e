//! Generated transitions on the real kernel, in sandboxes: for a few dozen
//! pairs of valid topologies (A, B) drawn with a fixed seed (reproducible),
//! `apply A; apply B` exits 0 on the first try and leaves the same kernel
//! picture as `apply B` in a fresh sandbox. The picture is `ip -j` of links,
//! addresses and routes of every table, qdiscs, flood entries and the
//! forwarding sysctls of every namespace, with what the kernel picks anew
//! each time (ifindexes, random MACs, link-local addresses, lifetimes,
//! counters) left out.

mod common;
mod pairs;

use common::{Sandbox, assert_exit, assert_ok};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

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

fn pair_count() -> usize {
    std::env::var("NETLOOM_KERNEL_PAIRS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24)
}

/// `count` pairs of valid topology texts, the same on every run.
fn generated_pairs(count: usize) -> Vec<(String, String)> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = pairs::topology_choice();
    let mut draw = || loop {
        let text = strategy.new_tree(&mut runner).unwrap().current().render();
        if pairs::valid(&text).is_some() {
            return text;
        }
    };
    (0..count).map(|_| (draw(), draw())).collect()
}

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
fn picture(sandbox: &Sandbox) -> String {
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

#[test]
fn applying_a_then_b_leaves_what_applying_b_alone_leaves() {
    for (n, (a, b)) in generated_pairs(pair_count()).into_iter().enumerate() {
        let Some(edited) = Sandbox::new() else {
            return;
        };
        assert_ok(&edited.netloom_stdin(&["apply", "-"], &a));
        let second = edited.netloom_stdin(&["apply", "-"], &b);
        assert!(
            second.status.success(),
            "pair {n}: apply B after A failed:\n{}\n--- A\n{a}--- B\n{b}",
            String::from_utf8_lossy(&second.stderr)
        );
        assert_exit(
            &edited.netloom_stdin(&["plan", "--detailed-exitcode", "-"], &b),
            0,
        );
        let Some(fresh) = Sandbox::new() else {
            return;
        };
        assert_ok(&fresh.netloom_stdin(&["apply", "-"], &b));
        let (after_a, alone) = (picture(&edited), picture(&fresh));
        assert!(
            after_a == alone,
            "pair {n}: A then B differs from B alone\n--- A\n{a}--- B\n{b}--- A then B\n{after_a}--- B alone\n{alone}"
        );
    }
}

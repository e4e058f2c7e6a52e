//! Backward recovery in the kernel (sandboxes): `apply --atomic` refused
//! half way, `rollback` after a SIGKILL at several points of an atomic
//! apply (and of a rollback), `--confirm` without and with `netloom
//! confirm`. Each compares a normalised picture read with `ip -j`, `tc -j`,
//! `bridge -j` and sysctl: links (kind, MTU, MAC, flags, master, alias),
//! addresses, routes of every table, qdiscs, fdb entries and the
//! namespaces' forwarding and IPv6 sysctls. What the kernel numbers anew
//! when an object is made again (ifindexes, IPv6 link-local addresses
//! and their routes, counters) is left out.

mod common;
mod support;

use std::collections::BTreeMap;
use std::fmt::Write;

use common::{Sandbox, apply_converged, assert_exit, assert_ok};
use serde_json::Value;
use support::{namespaces, stderr, topology_file};

/// Keeps the named fields of each object of a JSON list.
fn fields(list: &Value, keep: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|object| {
            keep.iter()
                .map(|key| format!("{key}={}", object.get(*key).unwrap_or(&Value::Null)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    out.sort();
    out
}

fn picture(sandbox: &Sandbox) -> BTreeMap<String, Vec<String>> {
    let mut picture = BTreeMap::new();
    for ns in std::iter::once(String::new()).chain(namespaces(sandbox)) {
        let n = if ns.is_empty() {
            String::new()
        } else {
            format!("-n {ns} ")
        };
        let mut lines = Vec::new();
        let links = sandbox.ip_json(&format!("{n}-d link show"));
        for link in links.as_array().into_iter().flatten() {
            let kind = link["linkinfo"]["info_kind"].clone();
            let mut flags: Vec<String> = link["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f.to_string())
                .collect();
            flags.sort();
            lines.push(format!(
                "link {} kind={kind} mtu={} mac={} flags={flags:?} master={} alias={}",
                link["ifname"], link["mtu"], link["address"], link["master"], link["ifalias"]
            ));
        }
        let addresses = sandbox.ip_json(&format!("{n}addr show"));
        for link in addresses.as_array().into_iter().flatten() {
            for address in link["addr_info"].as_array().into_iter().flatten() {
                if address["scope"] != "link" {
                    lines.push(format!(
                        "address {} {}/{}",
                        link["ifname"], address["local"], address["prefixlen"]
                    ));
                }
            }
        }
        for family in ["-4", "-6"] {
            let routes = sandbox.ip_json(&format!("{n}{family} route show table all"));
            let routes: Vec<Value> = routes
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| !r["dst"].as_str().unwrap_or("").starts_with("fe80"))
                .cloned()
                .collect();
            let keep = [
                "dst", "gateway", "dev", "protocol", "metric", "table", "type",
            ];
            lines.extend(
                fields(&Value::Array(routes), &keep)
                    .into_iter()
                    .map(|r| format!("route {r}")),
            );
        }
        let qdiscs: Value =
            serde_json::from_str(&sandbox.sh(&format!("tc {n}-j qdisc show"))).unwrap();
        lines.extend(
            fields(&qdiscs, &["dev", "kind", "root", "options"])
                .into_iter()
                .map(|q| format!("qdisc {q}")),
        );
        let fdb: Value =
            serde_json::from_str(&sandbox.sh(&format!("bridge {n}-j fdb show"))).unwrap();
        lines.extend(
            fields(&fdb, &["mac", "ifname", "dst", "master", "state"])
                .into_iter()
                .map(|f| format!("fdb {f}")),
        );
        let exec = if ns.is_empty() {
            String::new()
        } else {
            format!("ip netns exec {ns} ")
        };
        let sysctls = sandbox.sh(&format!(
            "{exec}sh -c 'for f in /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/forwarding /proc/sys/net/ipv4/conf/*/promote_secondaries /proc/sys/net/ipv6/conf/*/forwarding /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo $f=$(cat $f); done'"
        ));
        lines.extend(sysctls.lines().map(|s| format!("sysctl {s}")));
        lines.sort();
        picture.insert(ns, lines);
    }
    picture
}

#[track_caller]
fn assert_same_picture(before: &BTreeMap<String, Vec<String>>, sandbox: &Sandbox, what: &str) {
    let after = picture(sandbox);
    if *before == after {
        return;
    }
    let mut differences = String::new();
    for ns in before.keys().chain(after.keys()) {
        let (was, is) = (before.get(ns), after.get(ns));
        for line in was.into_iter().flatten() {
            if !is.is_some_and(|is| is.contains(line)) {
                let _ = writeln!(differences, "  [{ns}] gone: {line}");
            }
        }
        for line in is.into_iter().flatten() {
            if !was.is_some_and(|was| was.contains(line)) {
                let _ = writeln!(differences, "  [{ns}] new:  {line}");
            }
        }
    }
    panic!("{what}: the kernel differs from before:\n{differences}");
}

/// `count` pods on one bridge, each with an address and a default route.
fn many_pods(name: &str, count: usize) -> String {
    let mut text =
        format!("name: {name}\nbridges:\n  many0:\n    addresses: [10.20.0.1/16]\npods:\n");
    for i in 0..count {
        let _ = write!(
            text,
            "  {name}-{i}:\n    interfaces:\n      eth0: {{ bridge: many0, addresses: [10.20.{}.{}/16] }}\n    routes:\n      - {{ to: default, via: 10.20.0.1 }}\n",
            1 + i / 200,
            10 + i % 200
        );
    }
    text
}

/// Starts `netloom ARGS` in the background and kills it with SIGKILL as
/// soon as the shell condition `when` holds; returns its exit status.
fn kill_when(sandbox: &Sandbox, args: &str, when: &str) -> i32 {
    let bin = common::netloom_bin();
    let script = format!(
        "{} {args} >/dev/null 2>&1 & pid=$!\n\
         until {when}; do :; done\n\
         kill -9 $pid; wait $pid; echo $?",
        bin.display()
    );
    sandbox.sh(&script).trim().parse().expect("an exit status")
}

/// A pod whose IPv6 is disabled by its own sysctl cannot take its IPv6
/// address: the kernel refuses with EACCES in the middle of the apply.
const IPV6_OFF: &str = r#"
name: v6off
bridges:
  v6br: { addresses: [10.7.0.1/24] }
pods:
  v6-a:
    interfaces:
      eth0: { addresses: [10.6.0.1/24, "fd00:6::1/64"] }
    sysctls:
      net.ipv6.conf.all.disable_ipv6: "1"
  v6-b:
    interfaces:
      eth0: { addresses: [10.6.0.2/24, "fd00:6::2/64"] }
links:
  - endpoints: [v6-a:eth0, v6-b:eth0]
"#;

/// What runs before: another pod on the bridge that the failing version
/// removes, and a bridge MTU it changes.
const BEFORE_V6: &str = r#"
name: v6off
bridges:
  v6br: { addresses: [10.7.0.1/24, "fd00:7::1/64"], mtu: 1400 }
pods:
  v6-c:
    interfaces:
      eth0: { bridge: v6br, addresses: [10.7.0.3/24] }
    routes:
      - { to: 10.99.0.0/16, via: 10.7.0.1 }
    sysctls:
      net.ipv4.ip_forward: "1"
"#;

#[test]
fn an_atomic_apply_the_kernel_refuses_half_way_leaves_the_kernel_as_it_was() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let before_file = topology_file("atomic-before.yaml", BEFORE_V6);
    apply_converged(&sandbox, &before_file);
    let before = picture(&sandbox);
    let broken = topology_file("atomic-broken.yaml", IPV6_OFF);

    let run = sandbox.netloom(&["apply", "--atomic", &broken]);
    assert_exit(&run, 1);
    let err = stderr(&run);
    assert!(err.contains("address v6-a/eth0 fd00:6::1"), "{err}");
    assert!(err.contains("rolled back: "), "{err}");
    assert!(err.contains("read back and verified"), "{err}");
    assert_same_picture(&before, &sandbox, "after the refused atomic apply");
    // And the record is the one before: the earlier file is in sync.
    assert_exit(&sandbox.netloom(&["status", &before_file]), 0);

    // The same for machines.
    let run = sandbox.netloom(&["apply", "--atomic", "--output", "json", &broken]);
    assert_exit(&run, 1);
    let doc = support::json(&run);
    assert_eq!(doc["rolled_back"]["restored"], true, "{doc:#}");
    assert_same_picture(&before, &sandbox, "after the second refused atomic apply");

    // Without --atomic the same refusal leaves the half-made network
    // (and the picture sees it).
    assert_exit(&sandbox.netloom(&["apply", &broken]), 1);
    assert_ne!(before, picture(&sandbox), "a plain apply refused half way");
}

#[test]
fn rollback_after_a_sigkill_of_an_atomic_apply_restores_the_state_before() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let small = topology_file("atomic-crash-a.yaml", &many_pods("crash", 3));
    apply_converged(&sandbox, &small);
    let before = picture(&sandbox);
    let file = topology_file("atomic-crash-b.yaml", &many_pods("crash", 60));
    // Killed at ever later points: namespaces made, veths made, most made.
    for when in [
        "[ $(ls /run/netns | wc -l) -ge 10 ]",
        "[ $(ip -o link | wc -l) -ge 30 ]",
        "[ $(ip -o link | wc -l) -ge 55 ]",
    ] {
        let status = kill_when(&sandbox, &format!("apply --atomic {file}"), when);
        assert_eq!(status, 137, "the apply was killed ({when})");
        let run = sandbox.netloom(&["rollback", &file]);
        assert_ok(&run);
        assert_same_picture(
            &before,
            &sandbox,
            &format!("rollback after a kill ({when})"),
        );
        assert_exit(&sandbox.netloom(&["status", &small]), 0);
    }

    // A rollback killed half way is finished by the next.
    apply_converged(&sandbox, &file);
    for when in [
        "[ $(ls /run/netns | wc -l) -le 45 ]",
        "[ $(ls /run/netns | wc -l) -le 20 ]",
    ] {
        let status = kill_when(&sandbox, &format!("rollback {file}"), when);
        assert_eq!(status, 137, "the rollback was killed ({when})");
    }
    assert_ok(&sandbox.netloom(&["rollback", &file]));
    assert_same_picture(&before, &sandbox, "a killed rollback finished by the next");
    // Again: nothing left to do, nothing written.
    let again = sandbox.netloom(&["rollback", &file]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to roll back"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn confirm_keeps_an_apply_and_no_confirmation_undoes_it() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let before_file = topology_file("confirm-before.yaml", BEFORE_V6);
    apply_converged(&sandbox, &before_file);
    let before = picture(&sandbox);
    let after_file = topology_file(
        "confirm-after.yaml",
        &BEFORE_V6
            .replace("mtu: 1400", "mtu: 1300")
            .replace("10.7.0.3/24", "10.7.0.4/24"),
    );

    // Nobody confirms: undone after the wait.
    let run = sandbox.netloom(&["apply", "--confirm", "1", &after_file]);
    assert_exit(&run, 1);
    let err = stderr(&run);
    assert!(
        err.contains("netloom confirm"),
        "says how to confirm: {err}"
    );
    assert!(
        err.contains("rolled back: not confirmed within 1s"),
        "{err}"
    );
    assert_same_picture(&before, &sandbox, "an apply nobody confirmed");

    // Confirmed from another shell: it stays.
    let bin = common::netloom_bin();
    let script = format!(
        "{bin} apply --confirm 30 {after_file} >/dev/null 2>&1 & pid=$!\n\
         until [ -e /run/netloom/v6off.awaiting-confirmation ]; do sleep 0.05; done\n\
         {bin} confirm {after_file} >/dev/null || exit 9\n\
         wait $pid; echo $?",
        bin = bin.display()
    );
    assert_eq!(sandbox.sh(&script).trim(), "0", "a confirmed apply exits 0");
    assert_exit(&sandbox.netloom(&["status", &after_file]), 0);
    // Nothing waits any more.
    assert_exit(&sandbox.netloom(&["confirm", &after_file]), 1);
}

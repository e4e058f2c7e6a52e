//! The kernel layer where it used to go wrong: exact route deletes and
//! exclusive route creates, declared IPv6 link-local addresses,
//! promote_secondaries on netloom's own links in a namespace it did not
//! create, leftover namespace files, veth pairing along pod chains, token
//! buckets that hold a full-size frame, VXLAN flood entries in any state,
//! sysctls written through a worker's own procfs.
//! Each test runs in its own sandbox and reads the result back with `ip -j`.
//!
//! Tests that call the kernel layer directly (not through the binary) run
//! the test binary again inside their sandbox: see `common::inside_sandbox`.

mod common;
mod support;

use std::time::Duration;

use common::{Sandbox, addresses, apply_converged, assert_exit, assert_ok, inside_sandbox};
use netloom::kernel::Kernel;
use netloom::model::ResourceId;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A namespace file left empty by a creation killed half way is no
/// namespace: an interface "in" it is gone, not waited for (entering it
/// would fail).
#[test]
fn await_gone_takes_an_empty_namespace_file_for_no_namespace() {
    if !inside_sandbox("await_gone_takes_an_empty_namespace_file_for_no_namespace") {
        return;
    }
    std::fs::write("/run/netns/half-made", "").expect("an empty namespace file");
    let kernel = Kernel::new().expect("kernel");
    let gone = [ResourceId::link("half-made", "eth0")];
    runtime()
        .block_on(kernel.await_gone(&gone, Duration::from_secs(1)))
        .expect("an interface of no namespace is gone");
}

/// Runs `ip ARGS` in the calling process's namespace (a test inside its
/// sandbox); panics if it fails. Returns what it printed.
#[track_caller]
fn ip(args: &str) -> String {
    let output = std::process::Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("ip runs");
    assert!(
        output.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `ip -j ARGS`, parsed.
#[track_caller]
fn ip_json(args: &str) -> serde_json::Value {
    let text = ip(&format!("-j {args}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("ip -j {args}: {err}: {text}"))
}

/// The gateways of the main-table routes to `dst` (`-4` or `-6`), as
/// (gateway, metric) in the kernel's order.
fn gateways(family: &str, dst: &str) -> Vec<(String, u64)> {
    ip_json(&format!("{family} route show {dst}"))
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["gateway"].as_str().unwrap_or("-").to_string(),
                r["metric"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A veth `v0` (peer `v1`) in the calling process's namespace, up, with
/// 10.0.0.2/24 and fd00::2/64.
fn one_interface() {
    ip("link add v0 type veth peer name v1");
    ip("addr add 10.0.0.2/24 dev v0");
    ip("addr add fd00::2/64 dev v0 nodad");
    ip("link set v1 up");
    ip("link set v0 up");
}

fn route_change(
    action: netloom::model::Action,
    to: &str,
    metric: u32,
    from: Option<(&str, Option<&str>)>,
    wanted: Option<(&str, Option<&str>)>,
) -> netloom::model::Change {
    use netloom::model::{Kind, MAIN_TABLE, Resource, Route};
    let net: ipnet::IpNet = to.parse().unwrap();
    let route = |(via, dev): (&str, Option<&str>)| {
        Resource::Route(Route {
            to: net,
            metric,
            via: Some(via.parse().unwrap()),
            dev: dev.map(String::from),
            table: MAIN_TABLE,
        })
    };
    netloom::model::Change {
        action,
        id: ResourceId::new("", Kind::Route, Route::id_name(&net, metric, MAIN_TABLE)),
        from: from.map(route),
        to: wanted.map(route),
        takes_along: Vec::new(),
    }
}

/// A route the plan did not see, with the key of one it creates, is not
/// overwritten: the create fails with EEXIST. An update replaces in place.
#[test]
fn creating_a_route_never_overwrites_one_the_plan_did_not_see() {
    use netloom::model::Action::{Create, Update};
    if !inside_sandbox("creating_a_route_never_overwrites_one_the_plan_did_not_see") {
        return;
    }
    one_interface();
    ip("route add 10.9.0.0/16 via 10.0.0.254");
    ip("route add fd00:9::/48 via fd00::fe");
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    for (family, dst, theirs, ours, metric) in [
        ("-4", "10.9.0.0/16", "10.0.0.254", "10.0.0.1", 0),
        ("-6", "fd00:9::/48", "fd00::fe", "fd00::1", 1024),
    ] {
        let create = route_change(Create, dst, metric, None, Some((ours, None)));
        let err = rt
            .block_on(kernel.execute(&create))
            .expect_err("a create onto an unseen route fails");
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        assert_eq!(
            gateways(family, dst),
            [(theirs.to_string(), u64::from(metric))]
        );

        let update = route_change(
            Update,
            dst,
            metric,
            Some((theirs, Some("v0"))),
            Some((ours, None)),
        );
        rt.block_on(kernel.execute(&update)).expect("update");
        assert_eq!(
            gateways(family, dst),
            [(ours.to_string(), u64::from(metric))]
        );
    }
}

/// Deleting a route deletes that route only: one with the same key but
/// another gateway (it changed since the plan saw it), or with the same
/// gateway but another metric, stays.
#[test]
fn deleting_a_route_takes_only_that_route() {
    use netloom::model::Action::Delete;
    if !inside_sandbox("deleting_a_route_takes_only_that_route") {
        return;
    }
    one_interface();
    ip("route add 10.9.0.0/16 via 10.0.0.254");
    ip("route add 10.9.0.0/16 via 10.0.0.1 metric 100");
    ip("route add fd00:9::/48 via fd00::fe");
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    for (family, dst, theirs, seen, metric) in [
        ("-4", "10.9.0.0/16", "10.0.0.254", "10.0.0.1", 0),
        ("-6", "fd00:9::/48", "fd00::fe", "fd00::1", 1024),
    ] {
        let before = gateways(family, dst);
        let stale = route_change(Delete, dst, metric, Some((seen, Some("v0"))), None);
        rt.block_on(kernel.execute(&stale))
            .expect("a route already gone is not an error");
        assert_eq!(gateways(family, dst), before, "{dst} via {seen}");

        let exact = route_change(Delete, dst, metric, Some((theirs, Some("v0"))), None);
        rt.block_on(kernel.execute(&exact)).expect("delete");
        let left: Vec<_> = before
            .into_iter()
            .filter(|(via, m)| (via.as_str(), *m) != (theirs, u64::from(metric)))
            .collect();
        assert_eq!(gateways(family, dst), left, "{dst} via {theirs}");
    }
    assert_eq!(
        gateways("-4", "10.9.0.0/16"),
        [("10.0.0.1".to_string(), 100)]
    );
}

/// The IPv6 addresses of an interface (`""`: the sandbox's own namespace)
/// as `ip -j` shows them, link-local ones included.
fn ipv6_addresses(sandbox: &Sandbox, ns: &str, ifname: &str) -> Vec<String> {
    let n = if ns.is_empty() {
        String::new()
    } else {
        format!("-n {ns} ")
    };
    sandbox.ip_json(&format!("{n}-6 addr show dev {ifname}"))[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// A declared IPv6 link-local address is observed like any other: it is
/// added once and then in sync (it used to be dropped from every dump, so
/// every run added it again). The kernel's own link-local addresses stay.
#[test]
fn a_declared_link_local_address_converges() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = support::topology_file(
        "link-local.yaml",
        r#"
name: ll
bridges:
  llbr0:
    addresses: [10.40.0.1/24, "fe80::1/64"]
pods:
  ll-a:
    interfaces:
      eth0: { bridge: llbr0, addresses: [10.40.0.2/24, "fe80::a/64"] }
      eth1: { addresses: ["fe80::1:a/64"] }
  ll-b:
    interfaces:
      eth1: { addresses: ["fe80::1:b/64", "fd00:40::b/64"] }
links:
  - endpoints: [ll-a:eth1, ll-b:eth1]
"#,
    );
    apply_converged(&sandbox, &file);
    support::settle(&sandbox);
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", &file]), 0);
    let has = |ns: &str, ifname: &str, address: &str| {
        let found = ipv6_addresses(&sandbox, ns, ifname);
        assert!(
            found.iter().any(|a| a == address),
            "{ns}/{ifname}: {found:?}"
        );
        found
    };
    has("", "llbr0", "fe80::1/64");
    let a0 = has("ll-a", "eth0", "fe80::a/64");
    has("ll-a", "eth1", "fe80::1:a/64");
    let b1 = has("ll-b", "eth1", "fe80::1:b/64");
    // The kernel's own (from the MAC) are still there beside them.
    for found in [a0, b1] {
        assert!(
            found.iter().any(|a| a.starts_with("fe80::")
                && a.ends_with("/64")
                && a.matches(':').count() > 3),
            "{found:?}"
        );
    }
}

/// An address the plan did not see (it appeared since) is not taken over
/// by a create: EEXIST is an error.
#[test]
fn adding_an_address_that_appeared_since_fails() {
    use netloom::model::{Kind, Resource};
    if !inside_sandbox("adding_an_address_that_appeared_since_fails") {
        return;
    }
    one_interface();
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    for address in ["10.0.0.2/24", "fd00::2/64"] {
        let address: ipnet::IpNet = address.parse().unwrap();
        let (name, resource) = Resource::address("v0", address);
        let create = netloom::model::Change {
            action: netloom::model::Action::Create,
            id: ResourceId::new("", Kind::Address, name),
            from: None,
            to: Some(resource),
            takes_along: Vec::new(),
        };
        let err = rt
            .block_on(kernel.execute(&create))
            .expect_err("adding an address that is there fails");
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    }
}

/// In a namespace netloom did not create, `promote_secondaries` may be
/// off: then deleting a primary address flushes the secondaries of its
/// subnet, and replacing an address (the new one added, then the old one
/// deleted) would lose the new one too. Every link netloom makes has it
/// on for itself, so the replacement converges in one apply.
#[test]
fn replacing_an_address_in_the_machines_namespace_keeps_the_new_one() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    sandbox.sh("sysctl -qw net.ipv4.conf.all.promote_secondaries=0 \
         net.ipv4.conf.default.promote_secondaries=0");
    let seed = std::fs::read_to_string(common::root().join("examples/seed.yaml")).unwrap();
    assert!(seed.contains("[10.0.0.1/24]"));
    let before = support::topology_file("promote-before.yaml", &seed);
    let after = support::topology_file(
        "promote-after.yaml",
        &seed.replace("[10.0.0.1/24]", "[10.0.0.254/24]"),
    );
    apply_converged(&sandbox, &before);
    let promote = |ns: &str, ifname: &str| {
        let n = if ns.is_empty() {
            String::new()
        } else {
            format!("ip netns exec {ns} ")
        };
        sandbox
            .sh(&format!(
                "{n}cat /proc/sys/net/ipv4/conf/{ifname}/promote_secondaries"
            ))
            .trim()
            .to_string()
    };
    assert_eq!(promote("", "all"), "0");
    for (ns, ifname) in [("", "test0"), ("", "testveth0"), ("test", "eth0")] {
        assert_eq!(promote(ns, ifname), "1", "{ns}/{ifname}");
    }

    let applied = sandbox.netloom(&["apply", &after]);
    assert_ok(&applied);
    assert_eq!(addresses(&sandbox, "", "test0"), ["10.0.0.254/24"]);
    assert_exit(
        &sandbox.netloom(&["plan", "--detailed-exitcode", &after]),
        0,
    );
}

/// The same when the bridge is adopted in the run that replaces its
/// address: it is marked (and so gets `promote_secondaries`) before its
/// old address goes.
#[test]
fn adopting_a_bridge_and_replacing_its_address_keeps_the_new_one() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    sandbox.sh("sysctl -qw net.ipv4.conf.all.promote_secondaries=0 \
         net.ipv4.conf.default.promote_secondaries=0 \
         && ip link add test0 type bridge && ip addr add 10.0.0.1/24 dev test0 \
         && ip link set test0 up");
    let seed = std::fs::read_to_string(common::root().join("examples/seed.yaml")).unwrap();
    let file = support::topology_file(
        "promote-adopt.yaml",
        &seed.replace("[10.0.0.1/24]", "[10.0.0.254/24]"),
    );
    assert_ok(&sandbox.netloom(&["apply", "--adopt", &file]));
    assert_eq!(addresses(&sandbox, "", "test0"), ["10.0.0.254/24"]);
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", &file]), 0);
}

/// A chain of pods, each linked to the next: every pod has the same two
/// ifindexes (2 and 3), so every link looks the same from its ifindexes;
/// beside it a bridge with two pods (their eth0 is ifindex 2 too).
fn chain(pods: usize) -> String {
    let mut text = String::from(
        "name: chain\nbridges:\n  chbr0: { addresses: [10.60.0.1/24] }\npods:\n  \
         ch-x: { interfaces: { eth0: { bridge: chbr0, addresses: [10.60.0.2/24] } } }\n  \
         ch-y: { interfaces: { eth0: { bridge: chbr0, addresses: [10.60.0.3/24] } } }\n",
    );
    for i in 0..pods {
        text.push_str(&format!("  ch{i}: {{}}\n"));
    }
    text.push_str("links:\n");
    for i in 1..pods {
        text.push_str(&format!("  - endpoints: [ch{}:r, ch{i}:l]\n", i - 1));
    }
    text
}

/// Veth ends are paired right although ifindexes repeat in every pod:
/// the plan after apply is empty (a veth paired wrongly would be seen as
/// another link than the file's). The pairs are the file's, as `ip -j`
/// shows them (peer ifindex and the peer's namespace id).
#[test]
fn veth_ends_along_a_chain_of_pods_are_paired_right() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    const PODS: usize = 8;
    let file = support::topology_file("chain.yaml", &chain(PODS));
    apply_converged(&sandbox, &file);
    for i in 1..PODS {
        let l = common::link(&sandbox, &format!("ch{i}"), "l");
        let r = common::link(&sandbox, &format!("ch{}", i - 1), "r");
        assert_eq!(l["link_index"], r["ifindex"], "ch{i}:l");
        assert_eq!(r["link_index"], l["ifindex"], "ch{}:r", i - 1);
        let id = l["link_netnsid"]
            .as_i64()
            .expect("a peer in another namespace");
        let named = sandbox.sh(&format!(
            "ip -n ch{i} netns list-id | grep -w 'nsid {id}' | grep -w ch{}",
            i - 1
        ));
        assert!(!named.is_empty());
    }
}

/// Misleading marks (every pod's loopback alias made the same) cost only
/// questions: the pairs stay right, and the only changes are the aliases
/// put back.
#[test]
fn misleading_namespace_marks_do_not_mispair_veths() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    const PODS: usize = 6;
    let file = support::topology_file("chain-marks.yaml", &chain(PODS));
    apply_converged(&sandbox, &file);
    let mark = |ns: &str| {
        common::link(&sandbox, ns, "lo")["ifalias"]
            .as_str()
            .expect("a mark")
            .to_string()
    };
    let marks: Vec<String> = (0..PODS).map(|i| mark(&format!("ch{i}"))).collect();
    for i in 1..PODS {
        sandbox.sh(&format!("ip -n ch{i} link set lo alias '{}'", marks[0]));
    }
    let plan = sandbox.netloom(&["plan", "--output", "json", &file]);
    let doc = support::json(&plan);
    let changes: Vec<String> = doc["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let field = |key: &str| c[key].as_str().unwrap_or_default().to_string();
            format!(
                "{} {} {}/{}",
                field("action"),
                field("kind"),
                field("namespace"),
                field("name")
            )
        })
        .collect();
    let expected: Vec<String> = (1..PODS)
        .map(|i| format!("update alias ch{i}/lo"))
        .collect();
    assert_eq!(changes, expected, "{doc:#}");
    assert_ok(&sandbox.netloom(&["apply", &file]));
    for (i, wanted) in marks.iter().enumerate() {
        assert_eq!(&mark(&format!("ch{i}")), wanted);
    }
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", &file]), 0);
}

/// Two pods on a shaped link of MTU `mtu` (10 Mbit/s: a 16 KiB bucket
/// unless the MTU needs more).
fn shaped_link(mtu: u32) -> String {
    format!(
        "name: shaped\npods:\n  sa:\n    interfaces:\n      eth0: {{ addresses: [10.3.0.1/24] }}\n  sb:\n    interfaces:\n      eth0: {{ addresses: [10.3.0.2/24] }}\nlinks:\n  - endpoints: [sa:eth0, sb:eth0]\n    mtu: {mtu}\n    rate: 10mbit\n"
    )
}

/// Whether 512 KiB cross the shaped link from sa to sb by TCP in time
/// (0.4 s at 10 Mbit/s): TCP sends full-size segments, which a bucket
/// smaller than a frame drops every time.
fn large_transfer_completes(sandbox: &Sandbox) -> bool {
    const BYTES: usize = 512 * 1024;
    let to = "10.3.0.2".parse().expect("an address");
    let received = support::tcp_transfer(sandbox, "sb", "sa", to, BYTES, Duration::from_secs(10));
    received == BYTES
}

/// tbf drops every packet longer than its burst: a bucket sized for a
/// 1500-byte MTU stalls large transfers on a link of MTU 30000. The burst
/// holds a full-size frame whether the link is made with its MTU or the
/// MTU grows under an existing bucket.
#[test]
fn a_shaped_link_passes_full_size_frames_of_its_mtu() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let small = support::topology_file("shaped-1500.yaml", &shaped_link(1500));
    let large = support::topology_file("shaped-30000.yaml", &shaped_link(30_000));
    let qdisc = || sandbox.sh("tc -n sa -s qdisc show dev eth0");
    apply_converged(&sandbox, &small);
    assert!(large_transfer_completes(&sandbox), "{}", qdisc());
    // The MTU grows under the bucket made for 1500.
    apply_converged(&sandbox, &large);
    assert!(large_transfer_completes(&sandbox), "{}", qdisc());
    // Made with its MTU from the start.
    assert_ok(&sandbox.netloom(&["destroy", &large]));
    apply_converged(&sandbox, &large);
    assert!(large_transfer_completes(&sandbox), "{}", qdisc());
}

/// The all-zero-MAC entries of VXLAN device `dev` in `ns`: their `dst`s.
fn flood_destinations(sandbox: &Sandbox, ns: &str, dev: &str) -> Vec<String> {
    let entries = sandbox.ip_json(&format!("-n {ns} link show dev {dev}"));
    assert!(
        entries.as_array().is_some_and(|a| a.len() == 1),
        "{entries}"
    );
    let text = sandbox.sh(&format!("bridge -n {ns} -j fdb show dev {dev}"));
    let entries: serde_json::Value = serde_json::from_str(&text).expect("bridge -j");
    let mut dsts: Vec<String> = entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["mac"] == "00:00:00:00:00:00")
        .filter_map(|e| e["dst"].as_str().map(String::from))
        .collect();
    dsts.sort();
    dsts
}

/// `bridge fdb append` writes NUD_PERMANENT|NUD_NOARP, and the state is
/// the whole all-zero-MAC entry's: appending a remote by hand turns every
/// remote of it PERMANENT|NOARP. The declared remotes are still there, the
/// hand-made one is drift: `status` sees only it, `apply` removes only it.
#[test]
fn hand_made_flood_entries_are_drift_and_declared_ones_stay_seen() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "examples/vxlan.yaml";
    apply_converged(&sandbox, file);
    assert_eq!(
        flood_destinations(&sandbox, "vx1", "vx70"),
        ["192.168.70.12"]
    );
    sandbox.sh("bridge -n vx1 fdb append 00:00:00:00:00:00 dev vx70 dst 192.168.70.99");
    let status = sandbox.netloom(&["status", "--output", "json", file]);
    assert_exit(&status, 2);
    let doc = support::json(&status);
    let differing: Vec<String> = doc["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["state"] != "in-sync")
        .map(|o| {
            let field = |key: &str| o[key].as_str().unwrap_or_default().to_string();
            format!(
                "{} {} {}/{}",
                field("state"),
                field("kind"),
                field("namespace"),
                field("name")
            )
        })
        .collect();
    assert_eq!(differing, ["extra fdb vx1/vx70 192.168.70.99"], "{doc:#}");
    assert_ok(&sandbox.netloom(&["apply", file]));
    assert_eq!(
        flood_destinations(&sandbox, "vx1", "vx70"),
        ["192.168.70.12"]
    );
    assert_exit(&sandbox.netloom(&["status", file]), 0);
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", file]), 0);
}

/// A refusal keeps the kernel's own words (its extended ack), and names
/// the attribute it pointed at with its value; nothing is a struct dump.
#[test]
fn kernel_refusals_say_why_in_the_kernels_words() {
    use netloom::model::{Action, Change};
    use netloom::model::{Kind, LinkKind, Resource};
    if !inside_sandbox("kernel_refusals_say_why_in_the_kernels_words") {
        return;
    }
    one_interface();
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    let refusal = |change: Change| {
        rt.block_on(kernel.execute(&change))
            .expect_err("the kernel refuses")
            .to_string()
    };
    let set = |id: ResourceId, to: Resource| Change {
        action: Action::Create,
        id,
        from: None,
        to: Some(to),
        takes_along: Vec::new(),
    };
    let too_large = refusal(set(
        ResourceId::new("", Kind::Mtu, "v0"),
        Resource::Mtu { mtu: 70_000 },
    ));
    assert!(
        too_large.contains("mtu greater than device maximum"),
        "{too_large}"
    );
    let broadcast = refusal(route_change(
        Action::Create,
        "10.9.0.0/16",
        0,
        None,
        Some(("10.0.0.255", None)),
    ));
    assert!(
        broadcast.contains("Nexthop has invalid gateway"),
        "{broadcast}"
    );
    let long_name = refusal(set(
        ResourceId::link("", "a-name-too-long-x"),
        Resource::Link(LinkKind::Bridge),
    ));
    assert!(
        long_name.contains("IFLA_IFNAME = \"a-name-too-long-x\""),
        "{long_name}"
    );
    for text in [&too_large, &broadcast, &long_name] {
        assert!(!text.contains('{') && !text.contains("Some("), "{text}");
    }
}

/// A pod sysctl dropped from the file goes back to the kernel's default
/// (what a new namespace reads) in one apply; before, it kept its value
/// and `plan` said nothing to do.
#[test]
fn a_pod_sysctl_the_file_drops_goes_back_to_the_kernels_default() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let pod = |sysctls: &str| {
        format!(
            "name: unset\nbridges:\n  br0: {{}}\npods:\n  sp:\n    interfaces:\n      eth0: {{ bridge: br0 }}\n    sysctls: {{ {sysctls} }}\n"
        )
    };
    let with = support::topology_file(
        "unset-with.yaml",
        &pod("net.ipv4.ip_forward: \"1\", net.ipv4.conf.eth0.rp_filter: \"2\""),
    );
    let without = support::topology_file("unset-without.yaml", &pod(""));
    let read = |key: &str| sandbox.sh(&format!("ip netns exec sp cat /proc/sys/{key}"));
    let fresh = |key: &str| sandbox.sh(&format!("unshare --net cat /proc/sys/{key}"));
    apply_converged(&sandbox, &with);
    assert_eq!(read("net/ipv4/ip_forward").trim(), "1");
    assert_exit(
        &sandbox.netloom(&["plan", "--detailed-exitcode", &without]),
        2,
    );
    apply_converged(&sandbox, &without);
    assert_eq!(read("net/ipv4/ip_forward"), fresh("net/ipv4/ip_forward"));
    assert_eq!(
        read("net/ipv4/conf/eth0/rp_filter"),
        fresh("net/ipv4/conf/default/rp_filter")
    );
}

/// A sysctl key the running kernel does not have, or cannot write, is an
/// error before anything is changed (it used to fail half way, leaving
/// the pod's namespace behind).
#[test]
fn a_sysctl_the_kernel_cannot_set_is_refused_before_anything_changes() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    for (key, why) in [
        ("net.ipv4.ip_forwardd", "no such sysctl"),
        ("net.ipv4.conf.all.mc_forwarding", "read-only"),
    ] {
        let file = support::topology_file(
            "bad-sysctl.yaml",
            &format!("name: bad\npods:\n  bp:\n    sysctls: {{ {key}: \"1\" }}\n"),
        );
        let before = common::everything(&sandbox);
        let run = sandbox.netloom(&["apply", &file]);
        assert_exit(&run, 1);
        let stderr = support::stderr(&run);
        assert!(stderr.contains(key) && stderr.contains(why), "{stderr}");
        assert_eq!(
            common::everything(&sandbox),
            before,
            "{key}: something changed"
        );
    }
}

/// A worker reads and writes sysctls through a procfs instance of its own
/// (mounted nowhere): what it writes lands in its namespace, as that
/// namespace's `/proc` shows, and nowhere else.
#[test]
fn a_sysctl_goes_to_the_namespace_of_the_thread_that_writes_it() {
    if !inside_sandbox("a_sysctl_goes_to_the_namespace_of_the_thread_that_writes_it") {
        return;
    }
    use netloom::kernel::sysctl;
    let forwarding = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let outside = forwarding();
    let key = "net.ipv4.ip_forward".to_string();
    // A new namespace starts from the machine's value (the kernel copies
    // it): set the other one.
    let (wanted, through_proc, read_back) = sysctl::in_fresh_namespace(move || {
        let before = sysctl::read_here(std::slice::from_ref(&key))?;
        let wanted = if before[0].1.as_deref() == Some("1") {
            "0"
        } else {
            "1"
        };
        sysctl::write_here(&key, wanted)?;
        let through_proc = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")?;
        Ok((wanted, through_proc, sysctl::read_here(&[key])?))
    })
    .expect("a sysctl set in a fresh namespace");
    assert_eq!(through_proc.trim(), wanted);
    assert_eq!(read_back[0].1.as_deref(), Some(wanted));
    assert_eq!(
        forwarding(),
        outside,
        "the sandbox's own value is untouched"
    );
}

/// `ip netns delete` unmounts, then unlinks: a netloom run looking in
/// between must not take the file for a leftover and unlink it first
/// (the user's command would fail); one still there later is one.
#[test]
fn a_namespace_file_being_deleted_is_no_leftover_but_one_that_stays_is() {
    if !inside_sandbox("a_namespace_file_being_deleted_is_no_leftover_but_one_that_stays_is") {
        return;
    }
    use netloom::kernel::netns::remove_leftover;
    std::fs::write("/run/netns/going", "").unwrap();
    let deleter = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::remove_file("/run/netns/going")
    });
    assert!(!remove_leftover("going").unwrap(), "its deleter unlinks it");
    deleter
        .join()
        .unwrap()
        .expect("the deleter's own unlink works");
    std::fs::write("/run/netns/stays", "").unwrap();
    assert!(remove_leftover("stays").unwrap());
    assert!(!std::path::Path::new("/run/netns/stays").exists());
}

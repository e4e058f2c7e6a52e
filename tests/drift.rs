//! Drift in every table, generated (issue 7): one lab that holds every
//! kind of object netloom makes, applied in a sandbox; then, one after
//! the other, a hand change for every declared object (as `status --all`
//! lists them: removed, or changed) and an extra object for every
//! namespace, interface, routing table and VXLAN device the kernel shows.
//! After each: `status` exits 2, one `apply` exits 0 and leaves exactly
//! the kernel picture of before (`common::picture`), and `status` says in
//! sync again. Five tests share the cases out, each in its own sandbox.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::picture::picture_comparing;
use common::{Sandbox, apply_converged};
use serde_json::Value;

/// Every kind: pods, bridges (addressed, with an MTU, bare), shorthand
/// ports, a pod-to-pod veth with an MTU and a rate, a host link, IPv4
/// and IPv6 addresses, routes in main and in tables 100 and 1000 (via,
/// dev, metrics), a MAC, sysctls of the namespace and of an interface,
/// lab hosts with host-gw routes and a route of their own, and a VXLAN
/// overlay with its flood entries.
const LAB: &str = r#"
name: drift
routing: host-gw
hosts:
  dh1:
    underlay: 192.168.80.11/24
    pod_cidr: 10.80.1.0/24
    interfaces:
      lab0: { addresses: [10.80.1.193/29] }
    routes:
      - { to: 10.99.0.0/16, via: 192.168.80.1 }
  dh2: { underlay: 192.168.80.12/24, pod_cidr: 10.80.2.0/24 }
bridges:
  dh1-br: { host: dh1, ifname: cbr0, addresses: [10.80.1.1/24, "fd00:80:1::1/64"] }
  dh2-br: { host: dh2, ifname: cbr0, addresses: [10.80.2.1/24], mtu: 1400 }
  dh1-seg: { host: dh1, ifname: seg0 }
  dh2-seg: { host: dh2, ifname: seg0 }
pods:
  da:
    host: dh1
    interfaces:
      eth0:
        bridge: dh1-br
        addresses: [10.80.1.10/24, "fd00:80:1::10/64"]
        mac: "02:00:00:80:01:10"
      eth1: { addresses: [10.80.1.129/30] }
      eth2: { addresses: [10.80.1.194/29] }
      eth3: { bridge: dh1-seg, addresses: ["fd00:81::11/64"] }
    routes:
      - { to: default, via: 10.80.1.1 }
      - { to: 10.90.0.0/16, via: 10.80.1.1, metric: 50 }
      - { to: 10.91.0.0/16, dev: eth1 }
      - { to: "fd00:90::/48", via: "fd00:80:1::1" }
      - { to: default, via: 10.80.1.1, table: 100 }
      - { to: 10.92.0.0/16, dev: eth1, metric: 5, table: 100 }
      - { to: default, via: "fd00:80:1::1", table: 100 }
      - { to: "fd00:92::/48", dev: eth3, metric: 7, table: 1000 }
    sysctls:
      net.ipv4.ip_forward: "1"
      net.ipv4.conf.eth0.rp_filter: "2"
      net.ipv6.conf.all.forwarding: "1"
  db:
    host: dh1
    interfaces:
      eth1: { addresses: [10.80.1.130/30] }
    routes:
      - { to: default, via: 10.80.1.129 }
  dc:
    host: dh2
    interfaces:
      eth0: { bridge: dh2-br, addresses: [10.80.2.10/24] }
      eth3: { bridge: dh2-seg, addresses: ["fd00:81::12/64"] }
    routes:
      - { to: default, via: 10.80.2.1 }
links:
  - endpoints: [da:eth1, db:eth1]
    mtu: 9000
    rate: 100mbit
  - endpoints: [dh1:lab0, da:eth2]
overlays:
  vx80: { vni: 80, bridges: [dh1-seg, dh2-seg] }
"#;

/// Picture fields compared here although `common::picture` usually
/// leaves them out: whether an interface gets an IPv6 link-local address
/// is declared, and a repair must put it back.
const COMPARED: &[&str] = &["inet6_addr_gen_mode"];

/// How long the kernel may take to finish by itself what a repair set off
/// (carrier, the multicast route of a link whose IPv6 starts).
const SETTLE: Duration = Duration::from_secs(10);

/// Which test runs a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Share {
    Interfaces,
    Links,
    Addresses,
    Routes,
    Settings,
}

/// One hand change: what it does, in words, and the shell that does it.
struct HandChange {
    share: Share,
    what: String,
    script: String,
    /// The change takes away netloom's proof of ownership (a namespace's
    /// mark): the namespace is nobody's now, a conflict that a plain
    /// `apply` refuses, changing nothing, and `apply --adopt` repairs.
    unmarks: bool,
}

fn change(share: Share, what: impl Into<String>, script: impl Into<String>) -> HandChange {
    HandChange {
        share,
        what: what.into(),
        script: script.into(),
        unmarks: false,
    }
}

/// What the kernel shows of one namespace, to generate changes from.
struct Namespace {
    name: String,
    /// Interface names, `lo` aside.
    links: Vec<String>,
    /// (family flag, table) of every route, the `local` table aside.
    tables: BTreeSet<(&'static str, String)>,
    /// (destination, interface) of the kernel's IPv4 subnet routes.
    subnet_routes: Vec<(String, String)>,
}

fn live_namespaces(sandbox: &Sandbox) -> Vec<Namespace> {
    support::namespaces(sandbox)
        .into_iter()
        .map(|name| {
            let links = support::link_names(sandbox, &name)
                .into_iter()
                .filter(|l| l != "lo")
                .collect();
            let mut tables = BTreeSet::new();
            let mut subnet_routes = Vec::new();
            for family in ["-4", "-6"] {
                let routes = sandbox.ip_json(&format!("-n {name} {family} route show table all"));
                for route in routes.as_array().into_iter().flatten() {
                    let table = route["table"].as_str().unwrap_or("main").to_string();
                    if table == "local" {
                        continue;
                    }
                    if family == "-4" && route["protocol"] == "kernel" && route["scope"] == "link" {
                        let dst = route["dst"].as_str().unwrap().to_string();
                        let dev = route["dev"].as_str().unwrap().to_string();
                        subnet_routes.push((dst, dev));
                    }
                    tables.insert((family, table));
                }
            }
            Namespace {
                name,
                links,
                tables,
                subnet_routes,
            }
        })
        .collect()
}

fn field<'a>(object: &'a Value, key: &str) -> &'a str {
    object[key].as_str().unwrap_or_default()
}

/// `ip` (or `tc`, `bridge`) in namespace `ns`.
fn cmd(tool: &str, ns: &str, args: &str) -> String {
    format!("{tool} -n {ns} {args}")
}

/// A value other than `value` for a sysctl: 0 and 1 swap, others become 0.
fn flipped(value: &str) -> &'static str {
    match value {
        "0" => "1",
        _ => "0",
    }
}

/// `ip route VERB` of the route `status` names `DST metric M [table T]`.
fn route_command(verb: &str, name: &str) -> String {
    let family = if name.contains(':') { "-6" } else { "-4" };
    format!("{family} route {verb} {name} proto 211")
}

/// Removing or changing every declared object `status --all` lists.
fn declared_changes(status: &Value, live: &[Namespace]) -> Vec<HandChange> {
    let mut changes = Vec::new();
    let objects = status["objects"].as_array().expect("status objects");
    for object in objects {
        let (kind, ns, name) = (
            field(object, "kind"),
            field(object, "namespace"),
            field(object, "name"),
        );
        let desired = field(object, "desired");
        let at = format!("{kind} {ns}/{name}");
        let ip = |args: &str| cmd("ip", ns, args);
        match kind {
            "namespace" => changes.push(change(
                Share::Interfaces,
                format!("{at} deleted"),
                format!("ip netns del {ns}"),
            )),
            "link" => {
                changes.push(change(
                    Share::Interfaces,
                    format!("{at} deleted"),
                    ip(&format!("link del {name}")),
                ));
                changes.push(change(
                    Share::Interfaces,
                    format!("{at} renamed"),
                    ip(&format!(
                        "link set {name} down && {}",
                        ip(&format!("link set {name} name hand0"))
                    )),
                ));
                // A veth end moved into another of the lab's namespaces,
                // one where its name is free.
                let elsewhere = live
                    .iter()
                    .find(|n| n.name != ns && !n.links.iter().any(|l| l == name));
                if let Some(other) = elsewhere.filter(|_| desired.starts_with("veth")) {
                    changes.push(change(
                        Share::Interfaces,
                        format!("{at} moved into {}", other.name),
                        ip(&format!("link set {name} netns {}", other.name)),
                    ));
                }
            }
            "alias" => {
                changes.push(change(
                    Share::Links,
                    format!("{at} changed"),
                    ip(&format!("link set {name} alias netloom:drift/hand")),
                ));
                changes.push(HandChange {
                    unmarks: name == "lo",
                    ..change(
                        Share::Links,
                        format!("{at} removed"),
                        ip(&format!("link set {name} alias ''")),
                    )
                });
            }
            "up" => changes.push(change(
                Share::Links,
                format!("{at} set down"),
                ip(&format!("link set {name} down")),
            )),
            "mac" => changes.push(change(
                Share::Links,
                format!("{at} changed"),
                ip(&format!("link set {name} address 02:00:00:99:99:99")),
            )),
            "mtu" => {
                let mtu: u32 = desired.parse().expect("an MTU");
                changes.push(change(
                    Share::Links,
                    format!("{at} changed"),
                    ip(&format!("link set {name} mtu {}", mtu - 10)),
                ));
            }
            "master" => {
                changes.push(change(
                    Share::Links,
                    format!("{at} set nomaster"),
                    ip(&format!("link set {name} nomaster")),
                ));
                let other_bridge = objects.iter().find(|o| {
                    field(o, "kind") == "link"
                        && field(o, "namespace") == ns
                        && field(o, "desired") == "bridge"
                        && field(o, "name") != desired
                });
                if let Some(bridge) = other_bridge {
                    let bridge = field(bridge, "name");
                    changes.push(change(
                        Share::Links,
                        format!("{at} moved to bridge {bridge}"),
                        ip(&format!("link set {name} master {bridge}")),
                    ));
                }
            }
            "link-local" => {
                let mode = if desired.starts_with("no ") {
                    "eui64"
                } else {
                    "none"
                };
                changes.push(change(
                    Share::Links,
                    format!("{at} flipped"),
                    ip(&format!("link set {name} addrgenmode {mode}")),
                ));
            }
            "qdisc" => {
                changes.push(change(
                    Share::Settings,
                    format!("{at} deleted"),
                    cmd("tc", ns, &format!("qdisc del dev {name} root")),
                ));
                changes.push(change(
                    Share::Settings,
                    format!("{at} changed"),
                    cmd(
                        "tc",
                        ns,
                        &format!(
                            "qdisc change dev {name} root tbf rate 10mbit burst 50000 latency 50ms"
                        ),
                    ),
                ));
            }
            "address" => {
                let (ifname, _) = name.split_once(' ').expect("IFNAME ADDRESS");
                let (address, prefix) = desired.split_once('/').expect("ADDRESS/PREFIX");
                let prefix: u8 = prefix.parse().expect("a prefix length");
                changes.push(change(
                    Share::Addresses,
                    format!("{at} deleted"),
                    ip(&format!("addr del {desired} dev {ifname}")),
                ));
                // Both ways round: an IPv4 interface left without an
                // address on the way loses its routes, otherwise they stay.
                let shorter = format!("{address}/{}", prefix - 1);
                let (del, add) = (
                    ip(&format!("addr del {desired} dev {ifname}")),
                    ip(&format!("addr add {shorter} dev {ifname}")),
                );
                changes.push(change(
                    Share::Addresses,
                    format!("{at} deleted, then added as {shorter}"),
                    format!("{del} && {add}"),
                ));
                if !address.contains(':') {
                    changes.push(change(
                        Share::Addresses,
                        format!("{at} added as {shorter}, then deleted"),
                        format!("{add} && {del}"),
                    ));
                }
            }
            "route" => {
                changes.push(change(
                    Share::Routes,
                    format!("{at} deleted"),
                    ip(&route_command("del", name)),
                ));
                // Another interface than the route's: `via` and `dev` both change.
                let declared_dev = desired
                    .split(" dev ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next());
                let namespace = live
                    .iter()
                    .find(|n| n.name == ns)
                    .expect("a live namespace");
                if let Some(other) = namespace
                    .links
                    .iter()
                    .find(|l| Some(l.as_str()) != declared_dev)
                {
                    changes.push(change(
                        Share::Routes,
                        format!("{at} sent out of {other}"),
                        ip(&format!("{} dev {other}", route_command("replace", name))),
                    ));
                }
            }
            "sysctl" => {
                let path = format!("/proc/sys/{}", name.replace('.', "/"));
                let value = flipped(desired);
                changes.push(change(
                    Share::Settings,
                    format!("{at} set to {value}"),
                    format!("nsenter --net=/run/netns/{ns} sh -c 'echo {value} > {path}'"),
                ));
            }
            "fdb" => {
                let (dev, dst) = name.split_once(' ').expect("DEV DST");
                changes.push(change(
                    Share::Settings,
                    format!("{at} deleted"),
                    cmd(
                        "bridge",
                        ns,
                        &format!("fdb del 00:00:00:00:00:00 dev {dev} dst {dst}"),
                    ),
                ));
            }
            other => panic!("no hand change for kind {other}: add one"),
        }
    }
    changes
}

/// Objects the file does not declare, added to every owned namespace,
/// interface, routing table and VXLAN device the kernel shows.
fn extra_objects(status: &Value, live: &[Namespace]) -> Vec<HandChange> {
    let mut changes = Vec::new();
    for namespace in live {
        let ns = namespace.name.as_str();
        let ip = |args: &str| cmd("ip", ns, args);
        changes.push(change(
            Share::Interfaces,
            format!("extra link: a bridge in {ns}"),
            ip("link add hand0 type bridge"),
        ));
        if let Some(next) = live.iter().find(|n| n.name > namespace.name) {
            changes.push(change(
                Share::Interfaces,
                format!("extra link: a veth from {ns} to {}", next.name),
                ip(&format!(
                    "link add hand0 type veth peer name hand1 netns {}",
                    next.name
                )),
            ));
        }
        changes.push(change(
            Share::Addresses,
            format!("extra lo-address IPv4 in {ns}"),
            ip("addr add 10.99.0.1/32 dev lo"),
        ));
        changes.push(change(
            Share::Addresses,
            format!("extra lo-address IPv6 in {ns}"),
            ip("-6 addr add fd00:99::1/128 dev lo"),
        ));
        for link in &namespace.links {
            changes.push(change(
                Share::Addresses,
                format!("extra address on {link} in {ns}"),
                ip(&format!("addr add 198.18.0.1/24 dev {link}")),
            ));
        }
        let first = &namespace.links[0];
        for (family, table) in &namespace.tables {
            let dst = if *family == "-6" {
                "2001:db8:99::/64"
            } else {
                "198.51.100.0/24"
            };
            changes.push(change(
                Share::Routes,
                format!("extra route ({family}) in table {table} of {ns}"),
                ip(&format!(
                    "{family} route add {dst} dev {first} table {table} proto 211"
                )),
            ));
        }
        changes.push(change(
            Share::Routes,
            format!("extra route in a new table of {ns}"),
            ip(&format!("route add 198.51.100.0/24 dev {first} table 4242")),
        ));
        changes.push(change(
            Share::Routes,
            format!("extra route claiming proto kernel in {ns}"),
            ip(&format!(
                "route add 198.51.100.0/24 dev {first} proto kernel"
            )),
        ));
        // Once invisible (issue 7, class 3): a route that only claims to
        // be the kernel's, beside the kernel's own subnet route.
        for (dst, dev) in &namespace.subnet_routes {
            changes.push(change(
                Share::Routes,
                format!("extra route {dst} claiming proto kernel, metric 7, in {ns}"),
                ip(&format!("route add {dst} dev {dev} proto kernel metric 7")),
            ));
        }
    }
    for object in status["objects"].as_array().expect("status objects") {
        if field(object, "kind") == "link" && field(object, "desired").starts_with("vxlan") {
            let (ns, dev) = (field(object, "namespace"), field(object, "name"));
            changes.push(change(
                Share::Settings,
                format!("extra fdb entry on {dev} in {ns}"),
                cmd(
                    "bridge",
                    ns,
                    &format!("fdb append 00:00:00:00:00:00 dev {dev} dst 192.168.80.99"),
                ),
            ));
        }
    }
    changes
}

/// The picture once the kernel has finished by itself what the apply set
/// off: the same twice in a row.
fn settled_picture(sandbox: &Sandbox) -> String {
    let deadline = Instant::now() + SETTLE;
    let mut last = picture_comparing(sandbox, COMPARED);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = picture_comparing(sandbox, COMPARED);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Waits for the picture to come back to `before`; the last one seen if
/// it does not.
fn back_to(sandbox: &Sandbox, before: &str) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = picture_comparing(sandbox, COMPARED);
        if now == before {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(now);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The lines of `after` that are not in `before` and the other way round.
fn difference(before: &str, after: &str) -> String {
    let (old, new): (BTreeSet<&str>, BTreeSet<&str>) =
        (before.lines().collect(), after.lines().collect());
    let gone = old.difference(&new).map(|l| format!("- {l}"));
    let came = new.difference(&old).map(|l| format!("+ {l}"));
    gone.chain(came).collect::<Vec<_>>().join("\n")
}

/// Makes each hand change of `share`, checks that status sees it and one
/// apply undoes it; reports every case that failed, not just the first.
fn drift_is_seen_and_undone(share: Share) {
    let Some(mut sandbox) = Sandbox::new() else {
        return;
    };
    let file = support::topology_file(&format!("drift-{share:?}.yaml"), LAB);
    apply_converged(&sandbox, &file);
    let before = settled_picture(&sandbox);
    let status = support::json(&sandbox.netloom(&["status", "--all", "--output", "json", &file]));
    let live = live_namespaces(&sandbox);
    let cases: Vec<HandChange> = declared_changes(&status, &live)
        .into_iter()
        .chain(extra_objects(&status, &live))
        .filter(|c| c.share == share)
        .collect();
    let mut failures = Vec::new();
    for case in &cases {
        sandbox.sh(&case.script);
        let seen = sandbox.netloom(&["status", &file]);
        let refused = case.unmarks.then(|| {
            let changed = settled_picture(&sandbox);
            let refused = sandbox.netloom(&["apply", &file]);
            (refused, changed != settled_picture(&sandbox))
        });
        let repaired = if case.unmarks {
            sandbox.netloom(&["apply", "--adopt", &file])
        } else {
            sandbox.netloom(&["apply", &file])
        };
        let failure = if seen.status.code() != Some(2) {
            Some(format!(
                "status exited {:?}, not 2:\n{}",
                seen.status.code(),
                String::from_utf8_lossy(&seen.stdout)
            ))
        } else if let Some((refused, touched)) = refused.filter(|(refused, touched)| {
            *touched
                || refused.status.code() != Some(1)
                || !support::stderr(refused).contains("owned by nobody")
        }) {
            Some(format!(
                "apply without --adopt exited {:?}, the kernel {}:\n{}",
                refused.status.code(),
                if touched { "changed" } else { "untouched" },
                support::stderr(&refused)
            ))
        } else if !repaired.status.success() {
            Some(format!(
                "apply exited {:?}:\n{}",
                repaired.status.code(),
                support::stderr(&repaired)
            ))
        } else {
            match back_to(&sandbox, &before) {
                Err(after) => Some(format!(
                    "the picture differs:\n{}",
                    difference(&before, &after)
                )),
                Ok(()) => {
                    let again = sandbox.netloom(&["status", &file]);
                    (again.status.code() != Some(0)).then(|| {
                        format!(
                            "status after the apply exited {:?}:\n{}",
                            again.status.code(),
                            String::from_utf8_lossy(&again.stdout)
                        )
                    })
                }
            }
        };
        if let Some(failure) = failure {
            failures.push(format!("{} (`{}`): {failure}", case.what, case.script));
            // Start the next case from the lab as it was, in a new
            // sandbox (the case may have left this one beyond repair).
            sandbox = Sandbox::new().expect("a sandbox as before");
            apply_converged(&sandbox, &file);
            back_to(&sandbox, &before).unwrap_or_else(|after| {
                panic!("a fresh apply differs:\n{}", difference(&before, &after))
            });
        }
    }
    // By kind: the first word of a change to a declared object, the
    // first two of an extra one.
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        let words: Vec<&str> = case.what.split([' ', ':']).take(2).collect();
        let kind = match words[..] {
            ["extra", kind] => format!("extra {kind}"),
            _ => words[0].to_string(),
        };
        *tally.entry(kind).or_default() += 1;
    }
    eprintln!("{share:?} cases by kind: {tally:?}");
    eprintln!(
        "{share:?}: {} drift cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(cases.len() > 10, "too few cases: the lab did not come up");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn drift_of_namespaces_and_interfaces_is_seen_and_undone() {
    drift_is_seen_and_undone(Share::Interfaces);
}

#[test]
fn drift_of_interface_attributes_is_seen_and_undone() {
    drift_is_seen_and_undone(Share::Links);
}

#[test]
fn drift_of_addresses_is_seen_and_undone() {
    drift_is_seen_and_undone(Share::Addresses);
}

#[test]
fn drift_of_routes_in_every_table_is_seen_and_undone() {
    drift_is_seen_and_undone(Share::Routes);
}

#[test]
fn drift_of_qdiscs_sysctls_and_flood_entries_is_seen_and_undone() {
    drift_is_seen_and_undone(Share::Settings);
}

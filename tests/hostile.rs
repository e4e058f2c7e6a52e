//! Hostile input: whatever bytes a topology file holds, loading and
//! validating it never panics and never takes long; a file that validates
//! expands into kernel names the kernel accepts, in an order without cycles.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use netloom::diagnostics::{Diagnostics, SourceFile};
use netloom::graph::Graph;
use netloom::model::{self, Kind, Mode};
use proptest::prelude::*;

/// Loads, validates and renders the diagnostics of a text; when it is
/// valid, expands it in every mode and orders its graph. Returns whether
/// it was valid.
fn exercise(text: &str) -> bool {
    let source = SourceFile::new("hostile.yaml", text);
    let topology = match netloom::load::parse(&source) {
        Ok(topology) => topology,
        Err(diagnostics) => {
            diagnostics.render(false);
            return false;
        }
    };
    let problems = netloom::validate::validate(&topology);
    if !problems.is_empty() {
        Diagnostics::new(source, problems).render(false);
        return false;
    }
    let hosts = topology.hosts.keys().map(|name| Mode::Host {
        name: name.value.clone(),
        underlay_mtu: Some(1500),
    });
    for mode in std::iter::once(Mode::Lab).chain(hosts) {
        let desired = model::expand(&topology, &mode);
        for id in desired.resources.keys() {
            assert!(kernel_accepts_netns(&id.ns), "netns {:?} in {text}", id.ns);
            if id.kind == Kind::Link {
                assert!(
                    kernel_accepts_ifname(&id.name),
                    "ifname {:?} in {text}",
                    id.name
                );
            }
        }
        let graph = Graph::new(&desired.resources);
        assert!(graph.order().is_ok(), "a valid file has a cycle: {text}");
    }
    true
}

/// The kernel's `dev_valid_name`.
fn kernel_accepts_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| matches!(b, b'/' | b':' | b'\0' | b' ' | b'\t'..=b'\r' | 0xa0))
}

/// A name under /run/netns (or "", the namespace netloom runs in).
fn kernel_accepts_netns(name: &str) -> bool {
    name.is_empty()
        || (name.len() <= 64
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
}

/// Runs `f` and fails when it hangs or blows up (an alias bomb, a quadratic
/// rule): each case takes well under a second, so the bound is set far above
/// that, where a loaded CI machine cannot reach it. Speed itself is measured
/// by the benchmarks, not here.
fn quickly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{what} took {took:?}");
    result
}

/// A valid file that uses every part of the format, to mutate.
const EVERYTHING: &str = r#"name: lab
routing: host-gw
hosts:
  node1:
    underlay: 192.168.100.11/24
    pod_cidr: 10.244.1.0/24
    interfaces:
      lab0: { addresses: [172.30.0.1/24], mtu: 1500 }
    routes: [ { to: 10.99.0.0/16, via: 192.168.100.1 } ]
  node2: { underlay: 192.168.100.12/24, pod_cidr: 10.244.2.0/24, forwarding: true }
bridges:
  cbr-node1: { host: node1, ifname: cbr0, addresses: [10.244.1.1/24, "fd00:1::1/64"], mac: "02:00:00:00:01:01" }
  cbr-node2: { host: node2, ifname: cbr0, addresses: [10.244.2.1/24] }
pods:
  web:
    host: node1
    interfaces:
      eth0: { bridge: cbr-node1, addresses: [10.244.1.10/24, "fd00:1::10/64"], mtu: 1400 }
      eth1: { mtu: 1500 }
    routes:
      - { to: default, via: 10.244.1.1 }
      - { to: 10.96.0.0/12, via: 10.244.1.1, metric: 100 }
    sysctls:
      net.ipv4.ip_forward: "1"
  db:
    host: node2
    netns: db-ns
    interfaces:
      eth0: { bridge: cbr-node2, addresses: [10.244.2.20/24] }
    routes: [ { to: default, via: 10.244.2.1 } ]
links:
  - endpoints: [node1:lab0, web:eth1]
    rate: 100mbit
overlays:
  vx42: { vni: 42, bridges: [cbr-node1, cbr-node2], port: 4789 }
expect:
  - { from: web, to: db, port: 5432 }
  - { from: web, to: 10.244.2.20, reach: true }
  - { from: db, to: web, address: "fd00:1::10" }
"#;

/// Valid files to start mutations from: the one above and every shipped
/// topology.
fn seeds() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = vec![EVERYTHING.to_string()];
    for dir in ["examples", "topologies"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        for path in files {
            if path.extension().is_some_and(|e| e == "yaml") {
                seeds.push(std::fs::read_to_string(path).expect("readable"));
            }
        }
    }
    seeds
}

#[test]
fn the_mutation_seeds_are_valid() {
    for seed in seeds() {
        assert!(exercise(&seed), "not valid: {seed}");
    }
}

/// Fragments that make YAML and topologies interesting when spliced in.
const FRAGMENTS: &[&str] = &[
    "\n",
    "  ",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!!str ",
    "'",
    "\"",
    "#",
    "~",
    "null",
    "0",
    "-1",
    "65536",
    "4294967296",
    "99999999999999999999",
    "1e9",
    "default",
    "10.244.1.1",
    "10.244.1.1/24",
    "fd00::1/64",
    "fe80::1",
    "::",
    "0.0.0.0/0",
    "eth0",
    "lo",
    "cbr0",
    "web",
    "db",
    "node1",
    "node2",
    "cbr-node1",
    "vx42",
    "web:eth0",
    "a:b:c",
    ":",
    "host: node1",
    "bridge: cbr-node1",
    "netns: web",
    "mtu: 1279",
    "via: 10.244.1.1",
    "dev: eth0",
    "ifname: ",
    "é",
    "\u{a0}",
    "\u{200d}",
    "/",
    "..",
    "xxxxxxxxxxxxxxxxxxxx",
];

/// Values that keep the YAML well-formed when they replace a scalar, so
/// that mutations reach the rules rather than the parser.
const VALUES: &[&str] = &[
    "web",
    "db",
    "node1",
    "node2",
    "cbr-node1",
    "cbr-node2",
    "cbr0",
    "eth0",
    "eth1",
    "lab0",
    "lo",
    "vx42",
    "test0",
    "10.244.1.1/24",
    "10.244.2.20",
    "fd00:1::10",
    "fe80::1",
    "0.0.0.0/0",
    "default",
    "0",
    "1",
    "68",
    "1279",
    "1280",
    "4789",
    "65535",
    "16777216",
    "web:eth0",
    "node1:lab0",
    "cbr-node1:p0",
    "web:eth0:1",
    "100mbit",
    "net.ipv4.ip_forward",
    "true",
    "aaaaaaaaaaaaaaaa",
    ".",
    "..",
    "10.244.1.1",
];

/// A text edit: what to splice in where, a scalar to replace, a span to
/// delete, or lines to repeat or swap.
#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, usize),
    Replace(usize, usize),
    Delete(usize, usize),
    RepeatLine(usize),
    SwapLines(usize, usize),
}

fn apply(text: &str, edit: &Edit) -> String {
    let boundary = |at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match *edit {
        Edit::Insert(at, fragment) => {
            let at = boundary(at);
            let fragment = FRAGMENTS[fragment % FRAGMENTS.len()];
            format!("{}{fragment}{}", &text[..at], &text[at..])
        }
        Edit::Replace(token, value) => {
            let scalar = |c: char| c.is_ascii_alphanumeric() || "_.:/-".contains(c);
            let mut tokens = Vec::new();
            let mut start = None;
            for (at, c) in text
                .char_indices()
                .chain(std::iter::once((text.len(), ' ')))
            {
                match (start, scalar(c)) {
                    (None, true) => start = Some(at),
                    (Some(from), false) => {
                        tokens.push((from, at));
                        start = None;
                    }
                    _ => {}
                }
            }
            let Some(&(from, to)) = tokens.get(token % tokens.len().max(1)) else {
                return text.to_string();
            };
            let value = VALUES[value % VALUES.len()];
            format!("{}{value}{}", &text[..from], &text[to..])
        }
        Edit::Delete(at, len) => {
            let start = boundary(at);
            let end = boundary(start + len % 40);
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::RepeatLine(line) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let line = line % lines.len().max(1);
            if let Some(repeated) = lines.get(line).copied() {
                lines.insert(line, repeated);
            }
            lines.join("\n")
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    // Mostly scalar replacements, which keep the file YAML and so reach
    // the rules; the rest breaks the YAML itself.
    prop_oneof![
        6 => (any::<usize>(), any::<usize>()).prop_map(|(t, v)| Edit::Replace(t, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, f)| Edit::Insert(a, f)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        1 => any::<usize>().prop_map(Edit::RepeatLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_like_text_never_panics(text in "(name: [a-z]{1,3}\n)?([a-z_]{1,9}:( [-\\[\\]{}:,a-z0-9./]{0,12})?\n( {2,6}[-a-z0-9:./{}\\[\\], ]{0,24}\n){0,4}){0,6}") {
        exercise(&text);
    }

    #[test]
    fn mutated_topologies_never_panic(
        seed in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let seeds = seeds();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for edit in &edits {
            text = apply(&text, edit);
        }
        exercise(&text);
    }
}

#[test]
fn deep_nesting_is_refused_quickly() {
    for nested in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        "- ".repeat(50_000),
    ] {
        let text = format!("name: x\npods: {nested}\n");
        assert!(!quickly("deep nesting", || exercise(&text)));
    }
    let block: String = (0..2_000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    assert!(!quickly("deep block nesting", || exercise(&format!(
        "name: x\npods:\n{block}"
    ))));
}

#[test]
fn alias_bombs_are_refused_quickly() {
    let mut text = String::from("name: x\nexpect: &a0 [{ from: a, to: b }]\nx0: &b0 [*a0, *a0]\n");
    for level in 1..40 {
        let p = format!("*b{}", level - 1);
        text.push_str(&format!(
            "x{level}: &b{level} [{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}]\n"
        ));
    }
    assert!(!quickly("alias bomb", || exercise(&text)));
}

#[test]
fn huge_numbers_are_refused() {
    let cases = [
        "name: x\nbridges:\n  b: { mtu: 99999999999999999999999 }\n",
        "name: x\nbridges:\n  b: { mtu: 4294967296 }\n",
        "name: x\nbridges:\n  b: { mtu: 4294967295 }\n",
        "name: x\nbridges:\n  b: { mtu: -1 }\n",
        "name: x\nbridges:\n  b: { mtu: 1e400 }\n",
        "name: x\noverlays:\n  v: { vni: 4294967295, bridges: [] }\n",
        "name: x\noverlays:\n  v: { vni: 1, port: 65536, bridges: [] }\n",
        "name: x\npods:\n  p: { routes: [ { to: 10.0.0.0/8, dev: lo, metric: 4294967295 } ] }\n",
        "name: x\npods:\n  a: {}\n  b: {}\nlinks:\n  - { endpoints: [a:e, b:e], rate: 99999999999999999999999tbit }\n",
        "name: x\npods:\n  p: { interfaces: { e: { addresses: [10.0.0.1/4294967296] } } }\n",
    ];
    for text in cases {
        let valid = quickly("huge numbers", || exercise(text));
        // Only the metric is a number a file may legitimately push to the top.
        assert_eq!(valid, text.contains("metric"), "{text}");
    }
}

#[test]
fn unicode_names_are_handled() {
    let names = [
        "wéb",
        "веб",
        "網",
        "🦀",
        "a\u{200d}b",
        "e\u{301}",
        "\u{202e}evil",
        "ab\u{a0}c",
        "x\u{0}y",
        "\u{feff}web",
    ];
    for name in names {
        for text in [
            format!("name: \"{name}\"\n"),
            format!("name: x\npods:\n  \"{name}\": {{}}\n"),
            format!("name: x\npods:\n  p: {{ netns: \"{name}\" }}\n"),
            format!("name: x\nbridges:\n  b: {{ ifname: \"{name}\" }}\n"),
            format!(
                "name: x\npods:\n  a: {{}}\n  b: {{}}\nlinks:\n  - endpoints: [\"a:{name}\", b:eth0]\n"
            ),
            format!("name: x\npods:\n  p: {{}}\nexpect:\n  - {{ from: p, to: \"{name}\" }}\n"),
        ] {
            let text = text.replace('\0', "\\0");
            quickly("unicode names", || exercise(&text));
        }
    }
    // 15 bytes is the limit, however many characters that is.
    assert!(exercise("name: x\nbridges:\n  b: { ifname: ééééééé }\n"));
    assert!(!exercise("name: x\nbridges:\n  b: { ifname: éééééééé }\n"));
}

#[test]
fn long_names_are_refused_quickly() {
    let long = "a".repeat(100_000);
    let texts = [
        format!("name: {long}\n"),
        format!("name: x\npods:\n  {long}: {{}}\n"),
        format!("name: x\nbridges:\n  b: {{ ifname: {long} }}\n"),
        format!("name: x\npods:\n  p: {{ netns: {long} }}\n"),
        format!("name: x\npods:\n  p: {{}}\nlinks:\n  - endpoints: [p:{long}, {long}:eth0]\n"),
        format!("name: x\npods:\n  {long}: {{}}\nexpect:\n  - {{ from: {long}b, to: {long}c }}\n"),
        format!("name: x\npods:\n  p: {{ sysctls: {{ net.{long}: \"1\" }} }}\n"),
    ];
    for text in texts {
        assert!(!quickly("long names", || exercise(&text)));
    }
}

#[test]
fn many_objects_and_many_mistakes_stay_fast() {
    // 1500 pods on three bridges; then 1500 misspelt references, which get
    // suggestions within a budget.
    let mut text = String::from("name: big\nbridges:\n");
    for b in 0..3 {
        text.push_str(&format!("  br{b}: {{ addresses: [10.{b}.0.1/16] }}\n"));
    }
    text.push_str("pods:\n");
    for i in 0..1_500 {
        let (b, hi, lo) = (i % 3, i / 250, i % 250 + 2);
        text.push_str(&format!(
            "  pod-{i}: {{ interfaces: {{ eth0: {{ bridge: br{b}, addresses: [10.{b}.{hi}.{lo}/16] }} }}, routes: [ {{ to: default, via: 10.{b}.0.1 }} ] }}\n"
        ));
    }
    text.push_str("expect:\n");
    for i in 0..1_000 {
        text.push_str(&format!("  - {{ from: pod-{i}, to: pod-{} }}\n", i + 1));
    }
    assert!(quickly("a valid 1500-pod file", || exercise(&text)));
    let broken = text
        .replace("from: pod-", "from: pdo-")
        .replace("bridge: br", "bridge: rb");
    assert!(!quickly("1500 misspelt references", || exercise(&broken)));
    // Many ends on one bridge, many routes in one pod.
    let mut text = String::from("name: big\nbridges:\n  br0: {}\npods:\n  p:\n    interfaces:\n");
    for i in 0..1_100 {
        text.push_str(&format!(
            "      e{i}: {{ addresses: [\"fd00:{i:x}::1/64\"] }}\n"
        ));
    }
    text.push_str("    routes:\n");
    for i in 0..1_100 {
        text.push_str(&format!(
            "      - {{ to: \"fd01:{i:x}::/64\", via: \"fd00:{i:x}::2\" }}\n"
        ));
    }
    text.push_str("links:\n");
    for i in 0..1_100 {
        text.push_str(&format!("  - endpoints: [p:e{i}, br0:port{i}]\n"));
    }
    // Over the 1023 ports of one bridge: invalid, but quickly so.
    assert!(!quickly("1100 links and routes", || exercise(&text)));
}

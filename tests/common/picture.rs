//! The kernel picture of a sandbox, for "the same as a fresh apply"
//! checks: `ip -j` of links, addresses and routes of every table, qdiscs,
//! flood entries, and the forwarding and address sysctls of every
//! interface of every namespace, with what the kernel picks anew each
//! time (ifindexes, random MACs, link-local addresses, lifetimes,
//! counters) left out.

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

/// The value without the fields the kernel picks anew (but those in
/// `compared`), without carrier, and without link-local IPv6 addresses
/// (they follow the random MACs).
fn normalised(mut value: Value, compared: &[&str]) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.retain(|key, _| {
                !VOLATILE.contains(&key.as_str()) || compared.contains(&key.as_str())
            });
            if let Some(Value::Array(flags)) = map.get_mut("flags") {
                flags.retain(|flag| !CARRIER_FLAGS.iter().any(|c| flag == c));
            }
            if let Some(Value::Array(addresses)) = map.get_mut("addr_info") {
                addresses.retain(|a| a["scope"] != "link");
            }
            for field in map.values_mut() {
                *field = normalised(field.take(), compared);
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = normalised(item.take(), compared);
            }
        }
        _ => {}
    }
    value
}

/// Each object of a JSON list as one line, sorted (the kernel lists them
/// by ifindex, which differs between sandboxes).
fn lines(text: &str, compared: &[&str], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let list: Value = serde_json::from_str(text).unwrap_or(Value::Array(Vec::new()));
    let mut lines: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| keep(item))
        .map(|item| normalised(item.clone(), compared).to_string())
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

/// What one namespace's section of the picture reads, all in one script
/// (one process per picture, not one per command).
const PICTURE_SCRIPT: &str = r#"
for ns in '' $(ls /run/netns 2>/dev/null | sort); do
  if [ -z "$ns" ]; then x=''; else x="nsenter --net=/run/netns/$ns"; fi
  echo "@@namespace $ns"
  echo "@@links"; $x ip -d -j link show
  echo "@@addresses"; $x ip -j addr show
  echo "@@routes"; $x ip -j route show table all
  echo "@@routes6"; $x ip -6 -j route show table all
  echo "@@qdiscs"; $x tc -j qdisc show
  echo "@@flood"; $x bridge -j fdb show
  echo "@@sysctls"; $x sh -c 'cd /proc/sys/net && grep -r . ipv4/ip_forward \
    ipv4/conf/*/forwarding ipv4/conf/*/rp_filter ipv4/conf/*/promote_secondaries \
    ipv6/conf/*/forwarding ipv6/conf/*/accept_dad 2>/dev/null | sort'
done
"#;

/// The kernel picture of the whole sandbox, ifindexes and what else the
/// kernel picks anew aside: every namespace's links, addresses, routes of
/// every table (both families), qdiscs, flood entries (all-zero MAC) and
/// forwarding, `rp_filter`, `promote_secondaries` and `accept_dad` of
/// every interface.
pub fn picture(sandbox: &Sandbox) -> String {
    picture_comparing(sandbox, &[])
}

/// `picture`, comparing also the fields of `compared` it usually leaves
/// out (e.g. `inet6_addr_gen_mode`, where no link is made again by
/// another route to the same picture).
pub fn picture_comparing(sandbox: &Sandbox, compared: &[&str]) -> String {
    let text = sandbox.sh(PICTURE_SCRIPT);
    let mut picture = String::new();
    for section in text.split("\n@@").map(|s| s.trim_start_matches("@@")) {
        let (head, body) = section.split_once('\n').unwrap_or((section, ""));
        let items = match head {
            namespace if namespace.starts_with("namespace") => {
                picture.push_str(&format!("== {}\n", namespace["namespace".len()..].trim()));
                continue;
            }
            "sysctls" => body.lines().map(String::from).collect(),
            "routes" | "routes6" => lines(body, compared, |route| !kernel_ipv6_route(route)),
            "flood" => lines(body, compared, |entry| entry["mac"] == "00:00:00:00:00:00"),
            _ => lines(body, compared, |_| true),
        };
        picture.push_str(&format!("{head}:\n"));
        for item in items {
            picture.push_str(&format!("  {item}\n"));
        }
    }
    picture
}

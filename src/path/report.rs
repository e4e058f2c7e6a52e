//! How a walk is shown: one line per hop for people, one JSON document for
//! machines.

use std::fmt::Write;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::{End, PathReport};

/// One line per hop (node, interfaces, decision), then how it ends.
pub fn text(report: &PathReport, to: IpAddr) -> String {
    let width = report
        .hops
        .iter()
        .map(|hop| hop.node.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (number, hop) in report.hops.iter().enumerate() {
        let interfaces = match (&hop.in_interface, &hop.out_interface) {
            (Some(i), Some(o)) => format!("{i} -> {o}"),
            (Some(i), None) => format!("{i} ->"),
            (None, Some(o)) => format!("-> {o}"),
            (None, None) => String::new(),
        };
        let address = hop.address.map(|a| format!(" {a}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>2}  {:<width$}  {}{address}: {}",
            number + 1,
            hop.node,
            interfaces,
            hop.decision
        );
    }
    let _ = writeln!(out, "{}", ending(&report.end, to));
    out
}

/// The last line: delivered, leaving this machine, or where it dies.
fn ending(end: &End, to: IpAddr) -> String {
    match end {
        End::Delivered { node, .. } => format!("delivered to {node} ({to})"),
        End::Leaves {
            interface,
            towards,
            host,
        } => {
            let host = host
                .as_ref()
                .map(|h| format!(" (host {h}: run `netloom path` there for the rest)"))
                .unwrap_or_default();
            format!("leaves this machine through {interface} towards {towards}{host}")
        }
        End::Dies { node, reason, .. } => format!("dies in {node}: {reason}"),
    }
}

/// The JSON document: `hops` (namespace, node, in, out, address, decision)
/// and a final `delivered` flag, with how the walk ended.
pub fn json(report: &PathReport, from: &str, to_name: &str, to: IpAddr) -> Value {
    let end = match &report.end {
        End::Delivered { namespace, node } => json!({
            "state": "delivered", "namespace": namespace, "node": node,
        }),
        End::Leaves {
            interface,
            towards,
            host,
        } => json!({
            "state": "leaves", "interface": interface, "towards": towards, "host": host,
        }),
        End::Dies {
            namespace,
            node,
            reason,
        } => json!({
            "state": "dies", "namespace": namespace, "node": node,
            "reason": reason.reason(), "message": reason.to_string(),
        }),
    };
    json!({
        "version": 1,
        "from": from,
        "to": to_name,
        "address": to,
        "hops": report.hops,
        "end": end,
        "delivered": matches!(report.end, End::Delivered { .. }),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Death, Hop};
    use super::*;

    fn report(end: End) -> PathReport {
        PathReport {
            hops: vec![
                Hop {
                    namespace: "pod1".to_string(),
                    node: "pod1".to_string(),
                    in_interface: None,
                    out_interface: Some("eth0".to_string()),
                    address: Some("10.1.0.10".parse().unwrap()),
                    decision: "route default via 10.1.0.1 dev eth0".to_string(),
                },
                Hop {
                    namespace: "node1".to_string(),
                    node: "node1".to_string(),
                    in_interface: Some("cbr0".to_string()),
                    out_interface: None,
                    address: None,
                    decision: "dropped: no route to 10.2.0.10".to_string(),
                },
            ],
            end,
        }
    }

    #[test]
    fn text_has_a_line_per_hop_and_the_ending() {
        let dies = End::Dies {
            namespace: "node1".to_string(),
            node: "node1".to_string(),
            reason: Death::NoRoute {
                to: "10.2.0.10".parse().unwrap(),
            },
        };
        let text = text(&report(dies), "10.2.0.10".parse().unwrap());
        assert_eq!(
            text,
            " 1  pod1   -> eth0 10.1.0.10: route default via 10.1.0.1 dev eth0\n \
             2  node1  cbr0 ->: dropped: no route to 10.2.0.10\n\
             dies in node1: no route to 10.2.0.10\n"
        );
    }

    #[test]
    fn json_lists_hops_and_says_whether_it_was_delivered() {
        let delivered = End::Delivered {
            namespace: "pod2".to_string(),
            node: "pod2".to_string(),
        };
        let doc = json(
            &report(delivered),
            "pod1",
            "pod2",
            "10.2.0.10".parse().unwrap(),
        );
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["delivered"], true);
        assert_eq!(doc["end"]["state"], "delivered");
        assert_eq!(doc["hops"][0]["out"], "eth0");
        assert_eq!(doc["hops"][0]["address"], "10.1.0.10");
        assert!(doc["hops"][0].get("in").is_none());
        assert_eq!(doc["hops"][1]["namespace"], "node1");
    }
}

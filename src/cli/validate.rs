//! `netloom validate FILE`: parse and check; changes nothing, needs no root.

use std::process::ExitCode;

use serde_json::json;

use super::topology::{read_topology, report_topology_error};
use super::{Output, error, exit};
use crate::spec::Topology;

pub fn run(file: &str, output: Output) -> ExitCode {
    let result = read_topology(file);
    if output == Output::Json {
        let doc = match &result {
            Ok(_) => json!({ "version": 1, "valid": true, "diagnostics": [] }),
            Err(err) => {
                let mut doc = error::topology_error_document(file, err);
                doc["valid"] = json!(false);
                doc
            }
        };
        println!("{doc:#}");
    }
    match result {
        Ok(topology) => {
            if output == Output::Human {
                let shown = if file == "-" { "<stdin>" } else { file };
                println!("{shown}: valid ({})", summary(&topology));
            }
            exit::success()
        }
        Err(err) => {
            if output == Output::Human {
                report_topology_error(&err);
            }
            exit::failure()
        }
    }
}

/// "1 bridge, 2 pods, 1 link" — what a file declares, in brief.
fn summary(topology: &Topology) -> String {
    let counts = [
        (topology.hosts.len(), "host"),
        (topology.bridges.len(), "bridge"),
        (topology.pods.len(), "pod"),
        (topology.links.len(), "link"),
        (topology.overlays.len(), "overlay"),
        (topology.expect.len(), "expectation"),
    ];
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if parts.is_empty() {
        "empty".to_string()
    } else {
        parts.join(", ")
    }
}

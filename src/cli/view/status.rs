//! `status` for people: what differs, under the file's objects (every
//! object with `--all`), then a table of the pods like containerlab's
//! `inspect`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::objects::{Object, Owners};
use super::{object_words, value_words};
use crate::engine::{ObjectStatus, State};
use crate::model::Mode;
use crate::model::expand::pod_namespace;
use crate::plan::Conflict;
use crate::spec::Topology;

fn detail(status: &ObjectStatus) -> String {
    let values = match (status.state, &status.desired, &status.live) {
        (State::Drifted, Some(want), Some(have)) => {
            format!("file {}, kernel {}", value_words(want), value_words(have))
        }
        (_, Some(value), _) | (_, None, Some(value)) => value_words(value),
        _ => String::new(),
    };
    object_words(&status.id, &values)
}

/// The whole status text: summary, differences (or all), pods table.
pub fn status_text(
    spec: &Topology,
    mode: &Mode,
    statuses: &[ObjectStatus],
    conflicts: &[Conflict],
    all: bool,
) -> String {
    let owners = Owners::new(spec, mode);
    let count = |state| statuses.iter().filter(|s| s.state == state).count();
    let mut out = format!(
        "{}: {} in sync, {} drifted, {} missing, {} extra\n",
        spec.name.value,
        count(State::InSync),
        count(State::Drifted),
        count(State::Missing),
        count(State::Extra)
    );
    let mut by_object: BTreeMap<Object, Vec<&ObjectStatus>> = BTreeMap::new();
    for status in statuses {
        if all || status.state != State::InSync {
            by_object
                .entry(owners.owner_of(&status.id))
                .or_default()
                .push(status);
        }
    }
    for (object, statuses) in &by_object {
        let _ = writeln!(out, "  {object}");
        for status in statuses {
            let _ = writeln!(out, "      {:<8} {}", status.state.label(), detail(status));
        }
    }
    for conflict in conflicts {
        let _ = writeln!(out, "  conflict {}", conflict.message());
    }
    out.push_str(&pods_table(spec, &owners, statuses));
    out
}

/// A pod's state: in sync when every object it owns is.
fn pod_state(pod: &Object, owners: &Owners, statuses: &[ObjectStatus]) -> &'static str {
    let mine: Vec<&ObjectStatus> = statuses
        .iter()
        .filter(|s| owners.owner_of(&s.id) == *pod)
        .collect();
    if mine.is_empty() {
        return "not here";
    }
    let namespace_missing = mine
        .iter()
        .any(|s| s.id.kind == crate::model::Kind::Namespace && s.state == State::Missing);
    if namespace_missing {
        "missing"
    } else if mine.iter().all(|s| s.state == State::InSync) {
        "in sync"
    } else {
        "drifted"
    }
}

fn pods_table(spec: &Topology, owners: &Owners, statuses: &[ObjectStatus]) -> String {
    if spec.pods.is_empty() {
        return String::new();
    }
    let mut rows = vec![[
        "POD".to_string(),
        "HOST".to_string(),
        "NAMESPACE".to_string(),
        "INTERFACES".to_string(),
        "STATE".to_string(),
    ]];
    for (name, pod) in &spec.pods {
        let host = match (&pod.host, spec.hosts.len()) {
            (Some(host), _) => host.value.clone(),
            (None, 1) => spec
                .hosts
                .keys()
                .next()
                .map(|h| h.value.clone())
                .unwrap_or_default(),
            _ => "this machine".to_string(),
        };
        let interfaces: Vec<String> = pod
            .interfaces
            .iter()
            .map(|(ifname, settings)| {
                let addresses: Vec<String> = settings
                    .addresses
                    .iter()
                    .filter_map(|a| a.ok())
                    .map(|a| a.0.to_string())
                    .collect();
                if addresses.is_empty() {
                    ifname.value.clone()
                } else {
                    format!("{ifname} {}", addresses.join(","))
                }
            })
            .collect();
        let state = pod_state(&Object::Pod(name.value.clone()), owners, statuses);
        rows.push([
            name.value.clone(),
            host,
            pod_namespace(name, pod).to_string(),
            interfaces.join("; "),
            state.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::from("\n");
    for row in &rows {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            if col + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[col]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

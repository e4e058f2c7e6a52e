//! The rules of docs/FORMAT.md a well-typed file can still break. Every rule
//! reports every violation, pointing at the offending value; a value that
//! one rule rejects (an unknown reference, an unparsable address) is
//! skipped by the others, so one mistake gives one diagnostic.
//!
//! Kernel names are checked by lab-mode rules (every namespace on one
//! machine), so a file valid in lab mode is valid in host mode everywhere.

mod addresses;
mod context;
mod kernel;
mod links;
mod mtu;
mod names;
mod overlays;
mod references;
mod routes;
mod values;
pub use names::is_topology_name;

#[cfg(test)]
mod rendered;
#[cfg(test)]
mod testing;

use crate::diagnostics::Diagnostic;
use crate::spec::{Span, Topology};

use context::Context;

/// Every problem of a topology, in file order; empty when it is valid.
pub fn validate(topology: &Topology) -> Vec<Diagnostic> {
    let cx = Context::new(topology);
    let mut out = Vec::new();
    values::check(&cx, &mut out);
    names::check(&cx, &mut out);
    references::check(&cx, &mut out);
    links::check(&cx, &mut out);
    mtu::check(&cx, &mut out);
    addresses::check(&cx, &mut out);
    routes::check(&cx, &mut out);
    overlays::check(&cx, &mut out);
    kernel::check(&cx, &mut out);
    out.sort_by_key(|d| position(d.span));
    out
}

/// Where a span starts, for ordering values as they appear in the file.
fn position(span: Span) -> (u32, u32) {
    (span.line, span.column)
}

/// Items whose key repeats, in file order: each later item with the first
/// one that has its key. Rules report the later one ("already used at...").
fn repeats<K, T>(items: impl IntoIterator<Item = (K, T)>, span: impl Fn(&T) -> Span) -> Vec<(T, T)>
where
    K: std::hash::Hash + Eq,
    T: Clone,
{
    let mut items: Vec<(K, T)> = items.into_iter().collect();
    items.sort_by_key(|(_, item)| position(span(item)));
    let mut first = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (key, item) in items {
        match first.get(&key) {
            Some(earlier) => out.push((T::clone(earlier), item)),
            None => {
                first.insert(key, item);
            }
        }
    }
    out
}

/// " (line N)" when a span has a line, to point from one diagnostic at a
/// second place in the file.
fn at_line(span: Span) -> String {
    if span.line > 0 {
        format!(" (line {})", span.line)
    } else {
        String::new()
    }
}

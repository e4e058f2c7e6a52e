//! Plans and results as a person reads them: grouped under the file's
//! objects (hosts, bridges, pods, links, overlays), netloom's own baseline
//! folded into its owner, the summary line last. `--objects` keeps the
//! per-kernel-object list of `report`.

pub mod objects;
pub mod picture;
pub mod status;
mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::io::IsTerminal;

use crate::model::{Action, Change, Kind, LinkKind, Resource, ResourceId};
use crate::plan::Plan;
pub use objects::{Object, Owners, namespace_words};

/// Whether to colour: only on a terminal, never with `NO_COLOR`
/// (https://no-color.org).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    pub const PLAIN: Style = Style { colour: false };

    /// The style for standard output as it is now.
    pub fn for_stdout() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: std::io::stdout().is_terminal() && !no_color,
        }
    }

    fn sign(self, action: Action) -> String {
        let (sign, colour) = match action {
            Action::Create => ('+', "32"),
            Action::Update => ('~', "33"),
            Action::Delete => ('-', "31"),
        };
        if self.colour {
            format!("\x1b[{colour}m{sign}\x1b[0m")
        } else {
            sign.to_string()
        }
    }
}

/// The changes of one file object, in plan order.
struct Group<'a> {
    object: Object,
    changes: Vec<&'a Change>,
}

impl Group<'_> {
    /// Made or removed as a whole when every change does the same and
    /// one of them is its namespace or an interface; otherwise changed.
    fn action(&self) -> Action {
        let first = self.changes[0].action;
        let same = self.changes.iter().all(|c| c.action == first);
        let whole = self
            .changes
            .iter()
            .any(|c| matches!(c.id.kind, Kind::Namespace | Kind::Link));
        if same && whole { first } else { Action::Update }
    }
}

fn groups<'a>(changes: impl Iterator<Item = &'a Change>, owners: &Owners) -> Vec<Group<'a>> {
    let mut by_object: BTreeMap<Object, Vec<&Change>> = BTreeMap::new();
    for change in changes {
        by_object
            .entry(owners.owner_of(&change.id))
            .or_default()
            .push(change);
    }
    by_object
        .into_iter()
        .map(|(object, changes)| Group { object, changes })
        .collect()
}

/// The interfaces and namespaces this plan makes or removes whole: their
/// baseline goes without saying.
fn whole(changes: &[Change]) -> BTreeSet<(Action, String, String)> {
    let mut whole = BTreeSet::new();
    for change in changes {
        match (change.id.kind, &change.to, &change.from) {
            (Kind::Namespace, ..) => {
                whole.insert((change.action, change.id.ns.clone(), String::new()));
            }
            (Kind::Link, to, from) => {
                whole.insert((change.action, change.id.ns.clone(), change.id.name.clone()));
                let value = to.as_ref().or(from.as_ref());
                if let Some(Resource::Link(LinkKind::Veth { peer_ns, peer })) = value {
                    whole.insert((change.action, peer_ns.clone(), peer.clone()));
                }
            }
            _ => {}
        }
    }
    whole
}

/// Whether a change says something the header does not: baseline objects
/// of an interface or namespace made or removed whole are folded in.
fn worth_a_line(
    change: &Change,
    owners: &Owners,
    whole: &BTreeSet<(Action, String, String)>,
) -> bool {
    if change.action == Action::Update || !owners.is_baseline(&change.id) {
        // Everything inside a namespace being deleted goes with it.
        return !(change.action == Action::Delete
            && whole.contains(&(Action::Delete, change.id.ns.clone(), String::new())));
    }
    let interface = change.id.ifname().unwrap_or("");
    let of_interface = (
        change.action,
        change.id.ns.clone(),
        if interface == "lo" { "" } else { interface }.to_string(),
    );
    let of_namespace = (change.action, change.id.ns.clone(), String::new());
    !(whole.contains(&of_interface) || whole.contains(&of_namespace))
}

/// A value in the file's words: a default route is `default`, the
/// kernel's default metric goes unsaid.
pub(super) fn value_words(resource: &Resource) -> String {
    let text = resource.describe();
    if !matches!(resource, Resource::Route(_)) {
        return text;
    }
    let text = text
        .strip_prefix("0.0.0.0/0")
        .or_else(|| text.strip_prefix("::/0"))
        .map_or(text.clone(), |rest| format!("default{rest}"));
    text.trim_end_matches(" metric 0").to_string()
}

/// A kernel object and its value(s) in the file's words:
/// `address eth0 10.0.0.2/24`, `route default via 10.0.0.1`,
/// `mtu eth0: 1500 -> 9000`.
pub(super) fn object_words(id: &ResourceId, values: &str) -> String {
    match id.kind {
        Kind::Route => format!("route {values}"),
        Kind::Sysctl => format!("sysctl {} = {values}", id.name),
        Kind::Address => format!("address {} {values}", id.ifname().unwrap_or_default()),
        Kind::Fdb => format!("flood to {}", id.name.split(' ').nth(1).unwrap_or("")),
        Kind::Namespace => namespace_words(&id.ns),
        Kind::Link => format!("interface {}: {values}", id.name),
        kind => format!("{kind} {}: {values}", id.name),
    }
}

fn detail(change: &Change) -> String {
    let values = match (&change.from, &change.to) {
        (Some(from), Some(to)) => format!("{} -> {}", value_words(from), value_words(to)),
        (Some(only), None) | (None, Some(only)) => value_words(only),
        (None, None) => String::new(),
    };
    object_words(&change.id, &values)
}

/// The header words after an object: where it lives.
fn header(object: &Object, owners: &Owners) -> String {
    match (object, owners.location(object)) {
        (Object::Bridge(_), Some(place)) => format!("{object} in {place}"),
        (Object::Pod(_) | Object::Host(_), Some(place)) => format!("{object} ({place})"),
        _ => object.to_string(),
    }
}

/// Changes grouped under the file's objects, two spaces in.
pub fn grouped_changes<'a>(
    changes: impl Iterator<Item = &'a Change>,
    all: &[Change],
    owners: &Owners,
    style: Style,
) -> (String, Counts) {
    let whole = whole(all);
    let mut out = String::new();
    let mut counts = Counts::default();
    for group in groups(changes, owners) {
        let action = group.action();
        counts.add(action);
        let _ = writeln!(
            out,
            "  {} {}",
            style.sign(action),
            header(&group.object, owners)
        );
        for change in group
            .changes
            .iter()
            .filter(|c| worth_a_line(c, owners, &whole))
        {
            let _ = writeln!(
                out,
                "      {} {}",
                style.sign(change.action),
                detail(change)
            );
        }
    }
    (out, counts)
}

/// What a run stopped by a signal did, one line per file object in plan
/// order: done, partly done (how far) or not done; the next run finishes
/// it. (`--objects` lists every kernel object instead: `report`.)
pub fn stopped_text(verb: &str, plan: &Plan, done: &[bool], owners: &Owners) -> String {
    let mut progress: BTreeMap<Object, (usize, usize)> = BTreeMap::new();
    for (change, made) in plan.changes.iter().zip(done) {
        let (made_here, total) = progress.entry(owners.owner_of(&change.id)).or_default();
        *made_here += usize::from(*made);
        *total += 1;
    }
    let made = done.iter().filter(|d| **d).count();
    let mut out = format!(
        "stopped: {made} of {} changes were made (those under way were finished and recorded):\n",
        plan.changes.len()
    );
    for (object, (made, total)) in &progress {
        let header = header(object, owners);
        let _ = match made {
            0 => writeln!(out, "  not done  {header}"),
            made if made == total => writeln!(out, "  done      {header}"),
            made => writeln!(out, "  partly    {header}: {made} of {total} changes"),
        };
    }
    let _ = writeln!(
        out,
        "the next `netloom {verb}` finishes it: the plan is recomputed from the kernel"
    );
    out
}

/// How many file objects are made, changed, removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub create: usize,
    pub change: usize,
    pub delete: usize,
}

impl Counts {
    fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.change += 1,
            Action::Delete => self.delete += 1,
        }
    }
}

/// A plan for people: the topology, the groups, the summary last.
pub fn plan_text(topology: &str, plan: &Plan, owners: &Owners, style: Style) -> String {
    if plan.is_empty() && plan.conflicts.is_empty() {
        return format!("{topology}: nothing to do, the kernel matches the file\n");
    }
    let (body, counts) = grouped_changes(plan.changes.iter(), &plan.changes, owners, style);
    format!(
        "{topology}:\n{body}\nPlan: {} to create, {} to change, {} to delete\n",
        counts.create, counts.change, counts.delete
    )
}

/// A plan that stands in for a run (`apply`/`destroy --dry-run`).
pub fn dry_run_text(
    topology: &str,
    verb: &str,
    plan: &Plan,
    owners: &Owners,
    style: Style,
) -> String {
    let text = if plan.is_empty() && plan.conflicts.is_empty() {
        format!("{}\n", super::report::nothing_to_do(topology, verb))
    } else {
        plan_text(topology, plan, owners, style)
    };
    format!("dry run: `netloom {verb}` would do this, nothing was changed\n{text}")
}

/// What a finished run changed, grouped like a plan.
pub fn applied_text(
    topology: &str,
    verb: &str,
    plan: &Plan,
    done: &[bool],
    owners: &Owners,
    style: Style,
) -> String {
    let made = plan
        .changes
        .iter()
        .zip(done)
        .filter(|(_, d)| **d)
        .map(|(c, _)| c);
    let (body, counts) = grouped_changes(made, &plan.changes, owners, style);
    let summary = if verb == "destroy" {
        format!("Destroyed: {} deleted", counts.delete)
    } else if verb == "rollback" {
        format!(
            "Rolled back: {} created, {} changed, {} deleted",
            counts.create, counts.change, counts.delete
        )
    } else {
        format!(
            "Applied: {} created, {} changed, {} deleted",
            counts.create, counts.change, counts.delete
        )
    };
    format!("{topology}:\n{body}\n{summary}\n")
}

//! How plans, runs and statuses are shown: for people (results on stdout,
//! problems on stderr) and for machines (one JSON document, version 1).

use std::fmt::Write;

use serde_json::{Value, json};

use crate::engine::{Execution, ObjectStatus, Rollback, State};
use crate::model::{Action, Change, Kind, ResourceId};
use crate::plan::{Conflict, Plan};
use crate::state::StateError;

fn sign(action: Action) -> char {
    match action {
        Action::Create => '+',
        Action::Update => '~',
        Action::Delete => '-',
    }
}

/// One line per change: `+ link test0 in this machine's namespace: bridge`, `~ mtu web/eth0: 1500 -> 9000`.
pub fn change_line(change: &Change) -> String {
    let value = match (&change.from, &change.to) {
        (Some(from), Some(to)) => format!(": {} -> {}", from.describe(), to.describe()),
        (None, Some(to)) => format!(": {}", to.describe()),
        (Some(from), None) => format!(": {}", from.describe()),
        (None, None) => String::new(),
    };
    format!(
        "{} {}{value}{}",
        sign(change.action),
        change.id,
        taken_along(change)
    )
}

/// What goes with a deleted namespace: its veths' other ends elsewhere.
fn taken_along(change: &Change) -> String {
    if change.takes_along.is_empty() {
        return String::new();
    }
    let ends: Vec<String> = change.takes_along.iter().map(|id| id.to_string()).collect();
    format!(" (and with it {})", ends.join(", "))
}

/// "3 to create, 1 to update, 0 to delete".
pub fn summary_line(plan: &Plan) -> String {
    let (create, update, delete) = plan.summary();
    format!("{create} to create, {update} to update, {delete} to delete")
}

/// A plan for people.
pub fn plan_text(topology: &str, plan: &Plan) -> String {
    if plan.is_empty() && plan.conflicts.is_empty() {
        return format!("{topology}: nothing to do, the kernel matches the file\n");
    }
    let mut out = format!("{topology}: {}\n", summary_line(plan));
    for change in &plan.changes {
        let _ = writeln!(out, "  {}", change_line(change));
    }
    out
}

/// Conflicts for people (stderr), and what they mean for this command.
pub fn conflicts_text(conflicts: &[Conflict], consequence: &str) -> String {
    let mut out = String::new();
    for conflict in conflicts {
        let _ = writeln!(
            out,
            "error: conflict: {}\n  help: {}",
            conflict.message(),
            conflict.help()
        );
    }
    if !conflicts.is_empty() {
        let _ = writeln!(out, "{consequence}");
    }
    out
}

/// Said after the conflicts of a plan (nothing runs).
pub const PLAN_BLOCKED: &str = "apply would stop here, before changing anything";
/// Said after the conflicts that stopped an apply.
pub const NOTHING_CHANGED: &str = "nothing was changed";

/// The outcome of `apply` or `destroy` for people: the summary on
/// stdout, and on failure what was and was not done on stderr.
pub fn execution_text(topology: &str, verb: &str, run: &Execution) -> (String, String) {
    let plan = &run.plan;
    if let Some(rollback) = &run.rollback {
        return rolled_back_text(topology, run, rollback);
    }
    if plan.is_empty() && plan.conflicts.is_empty() && verb == "rollback" {
        return (
            format!(
                "{topology}: nothing to roll back, the kernel holds the state found at the start of the last changing run\n"
            ),
            String::new(),
        );
    }
    if !plan.conflicts.is_empty() {
        return (
            String::new(),
            conflicts_text(&plan.conflicts, NOTHING_CHANGED),
        );
    }
    if plan.is_empty() {
        return (
            format!("{}\n", nothing_to_do(topology, verb)),
            String::new(),
        );
    }
    let done = run.done.iter().filter(|d| **d).count();
    if run.interrupted {
        return (String::new(), interrupted_text(verb, run, done));
    }
    if let Some((failed, error)) = &run.failure {
        let failed_line = change_line(&plan.changes[*failed]);
        if done == 0 {
            return (
                String::new(),
                format!(
                    "error: {failed_line} failed: {error}\nnone of the {} changes was made\n",
                    plan.changes.len()
                ),
            );
        }
        let mut err = format!(
            "error: {failed_line} failed: {error}\n{done} of {} changes were made before it stopped:\n",
            plan.changes.len()
        );
        for (change, _) in plan.changes.iter().zip(&run.done).filter(|(_, d)| **d) {
            let _ = writeln!(err, "  done     {}", change_line(change));
        }
        for (i, change) in plan
            .changes
            .iter()
            .enumerate()
            .filter(|(i, _)| !run.done[*i])
        {
            let what = if i == *failed { "FAILED  " } else { "not done" };
            let _ = writeln!(err, "  {what} {}", change_line(change));
        }
        if let Some(state_error) = &run.unrecorded {
            let _ = writeln!(err, "error: the state dir failed too: {state_error}");
        }
        let _ = writeln!(
            err,
            "run `netloom {verb}` again to finish: the plan is recomputed from the kernel"
        );
        return (String::new(), err);
    }
    if let Some(state_error) = &run.unrecorded {
        return (String::new(), unrecorded_text(verb, run, state_error));
    }
    let (create, update, delete) = plan.summary();
    let mut out = format!(
        "{topology}: {done} changes ({create} created, {update} updated, {delete} deleted)"
    );
    if run.succeeded() {
        out.push_str(", verified\n");
        return (out, String::new());
    }
    out.push('\n');
    let mut err = String::from("error: read back, the kernel still differs from the file:\n");
    for change in &run.unverified {
        let _ = writeln!(err, "  {}", change_line(change));
    }
    for conflict in &run.unverified_conflicts {
        let _ = writeln!(err, "  conflict: {}", conflict.message());
    }
    (out, err)
}

/// An apply undone (`--atomic`, `--confirm`): what it had done, why it was
/// undone, and whether the start state is back.
fn rolled_back_text(topology: &str, run: &Execution, rollback: &Rollback) -> (String, String) {
    let done = run.done.iter().filter(|d| **d).count();
    let mut err = String::new();
    if let Some((failed, error)) = &run.failure {
        let _ = writeln!(
            err,
            "error: {} failed: {error}",
            change_line(&run.plan.changes[*failed])
        );
    }
    let _ = writeln!(
        err,
        "{done} of {} changes were made, then undone:",
        run.plan.changes.len()
    );
    for (change, _) in run.plan.changes.iter().zip(&run.done).filter(|(_, d)| **d) {
        let _ = writeln!(err, "  undone   {}", change_line(change));
    }
    match &rollback.restore {
        Ok(restore) if restore.succeeded() => {
            let changes = restore.done.iter().filter(|d| **d).count();
            let _ = writeln!(
                err,
                "rolled back: {}; the state found at the start is back ({changes} changes), read back and verified",
                rollback.why
            );
        }
        Ok(restore) => {
            let (_, restore_err) = execution_text(topology, "rollback", restore);
            let _ = write!(
                err,
                "error: rolling back ({}) did not finish:\n{restore_err}",
                rollback.why
            );
        }
        Err(error) => {
            let _ = writeln!(
                err,
                "error: rolling back ({}) failed: {error}\nrun `netloom rollback` to finish it",
                rollback.why
            );
        }
    }
    (String::new(), err)
}

fn rollback_json(rollback: &Rollback) -> Value {
    let mut doc = json!({
        "reason": rollback.why,
        "restored": rollback.restored(),
    });
    match &rollback.restore {
        Ok(restore) => {
            doc["changes"] = restore
                .plan
                .changes
                .iter()
                .zip(&restore.done)
                .map(|(c, d)| change_json(c, Some(*d)))
                .collect();
            if !restore.succeeded() {
                doc["error"] = json!("the restore did not finish: run `netloom rollback`");
            }
        }
        Err(error) => doc["error"] = json!(error.to_string()),
    }
    doc
}

/// A run the state dir failed (full, read-only) once changes had begun:
/// what was made, and how the next run finishes and records it.
fn unrecorded_text(verb: &str, run: &Execution, state_error: &StateError) -> String {
    let plan = &run.plan;
    let done = run.done.iter().filter(|d| **d).count();
    let mut err = format!("error: {state_error}\n");
    if done == plan.changes.len() {
        let _ = writeln!(
            err,
            "all {done} changes were made, but netloom could not record them:"
        );
    } else {
        let _ = writeln!(
            err,
            "{done} of {} changes were made before it stopped:",
            plan.changes.len()
        );
    }
    for (change, done) in plan.changes.iter().zip(&run.done) {
        let what = if *done { "done    " } else { "not done" };
        let _ = writeln!(err, "  {what} {}", change_line(change));
    }
    let _ = writeln!(
        err,
        "what was made is in the state dir's journal or record: once the state dir can be written again (room on its file system, not read-only), run `netloom {verb}` again to record it and finish"
    );
    err
}

/// What a run with an empty plan says: destroy has no file to match.
pub fn nothing_to_do(topology: &str, verb: &str) -> String {
    if verb == "destroy" {
        format!("{topology}: nothing to do, nothing of {topology} is left on this machine")
    } else {
        format!("{topology}: nothing to do, the kernel matches the file")
    }
}

/// A run a signal stopped: what was done, what was not, and how it ends.
fn interrupted_text(verb: &str, run: &Execution, done: usize) -> String {
    let plan = &run.plan;
    let mut err = format!(
        "stopped: {done} of {} changes were made (those under way were finished and recorded):\n",
        plan.changes.len()
    );
    for (change, made) in plan.changes.iter().zip(&run.done) {
        let what = if *made { "done    " } else { "not done" };
        let _ = writeln!(err, "  {what} {}", change_line(change));
    }
    let _ = writeln!(
        err,
        "the next `netloom {verb}` finishes it: the plan is recomputed from the kernel"
    );
    err
}

/// The `name` of an object in JSON: a namespace is named by itself.
fn object_name(id: &ResourceId) -> &str {
    match id.kind {
        Kind::Namespace => &id.ns,
        _ => &id.name,
    }
}

fn change_json(change: &Change, done: Option<bool>) -> Value {
    let mut value = json!({
        "action": change.action,
        "kind": change.id.kind,
        "namespace": change.id.ns,
        "name": object_name(&change.id),
    });
    if let Some(from) = &change.from {
        value["from"] = json!(from.describe());
    }
    if let Some(to) = &change.to {
        value["to"] = json!(to.describe());
    }
    if !change.takes_along.is_empty() {
        let ends: Vec<Value> = change
            .takes_along
            .iter()
            .map(|id| json!({ "kind": id.kind, "namespace": id.ns, "name": id.name }))
            .collect();
        value["takes_along"] = json!(ends);
    }
    if let Some(done) = done {
        value["done"] = json!(done);
    }
    value
}

fn conflict_json(conflict: &Conflict) -> Value {
    json!({
        "kind": conflict.id.kind,
        "namespace": conflict.id.ns,
        "name": object_name(&conflict.id),
        "owner": conflict.owner,
        "live": conflict.live.describe(),
        "message": conflict.message(),
        "help": conflict.help(),
    })
}

fn summary_json(plan: &Plan) -> Value {
    let (create, update, delete) = plan.summary();
    json!({ "create": create, "update": update, "delete": delete })
}

pub fn plan_json(topology: &str, plan: &Plan) -> Value {
    json!({
        "version": 1,
        "topology": topology,
        "changes": plan.changes.iter().map(|c| change_json(c, None)).collect::<Vec<_>>(),
        "conflicts": plan.conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
        "summary": summary_json(plan),
    })
}

pub fn execution_json(topology: &str, run: &Execution) -> Value {
    let plan = &run.plan;
    let mut doc = json!({
        "version": 1,
        "topology": topology,
        "changes": plan.changes.iter().zip(&run.done).map(|(c, d)| change_json(c, Some(*d))).collect::<Vec<_>>(),
        "conflicts": plan.conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
        "summary": summary_json(plan),
        "verified": run.succeeded(),
    });
    if run.interrupted {
        doc["error"] = json!("stopped by a signal: the changes not done are left for the next run");
    } else if let Some((failed, error)) = &run.failure {
        doc["error"] = json!(format!(
            "{} failed: {error}",
            change_line(&plan.changes[*failed])
        ));
    } else if let Some(state_error) = &run.unrecorded {
        doc["error"] = json!(format!(
            "{state_error}; what was made is in the state dir's journal or record, for the next run to finish"
        ));
    } else if !run.unverified.is_empty() || !run.unverified_conflicts.is_empty() {
        doc["error"] = json!("read back, the kernel still differs from the file");
        doc["unverified"] = run
            .unverified
            .iter()
            .map(|c| change_json(c, None))
            .chain(run.unverified_conflicts.iter().map(conflict_json))
            .collect();
    } else if !plan.conflicts.is_empty() {
        doc["error"] = json!("conflicts: nothing was changed");
    }
    if let Some(rollback) = &run.rollback {
        if doc.get("error").is_none() {
            doc["error"] = json!(format!("rolled back: {}", rollback.why));
        }
        doc["rolled_back"] = rollback_json(rollback);
    }
    doc
}

/// One object's status: `drifted  route ns/... : file X, kernel Y`.
pub fn status_line(status: &ObjectStatus) -> String {
    let detail = match (status.state, &status.desired, &status.live) {
        (State::Drifted, Some(want), Some(have)) => {
            format!(": file {}, kernel {}", want.describe(), have.describe())
        }
        (_, Some(want), _) => format!(": {}", want.describe()),
        (_, None, Some(have)) => format!(": {}", have.describe()),
        _ => String::new(),
    };
    format!("{:<8} {}{detail}", status.state.label(), status.id)
}

/// One object of `status --output json`.
pub fn status_object_json(s: &ObjectStatus) -> Value {
    let mut value = json!({
        "kind": s.id.kind,
        "namespace": s.id.ns,
        "name": object_name(&s.id),
        "state": s.state,
    });
    if let Some(want) = &s.desired {
        value["desired"] = json!(want.describe());
    }
    if let Some(have) = &s.live {
        value["live"] = json!(have.describe());
    }
    value
}

pub fn status_json(topology: &str, statuses: &[ObjectStatus], conflicts: &[Conflict]) -> Value {
    let objects: Vec<Value> = statuses.iter().map(status_object_json).collect();
    json!({
        "version": 1,
        "topology": topology,
        "objects": objects,
        "conflicts": conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
    })
}

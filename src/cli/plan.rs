//! `netloom plan FILE`: the ordered changes and any conflicts; changes nothing.

use std::process::ExitCode;

use super::topology::topology_or_report;
use super::view::{self, Owners, Style};
use super::{KernelArgs, Output, ViewArgs, block_on, error, exit, report};
use crate::model::Mode;
use crate::plan::Plan;

pub fn run(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    detailed: bool,
    view_args: ViewArgs,
    output: Output,
) -> ExitCode {
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let result = kernel
        .engine(adopt)
        .and_then(|engine| block_on(engine.plan(&topology)));
    let snapshot = match result {
        Ok(snapshot) => snapshot,
        Err(err) => return error::fail(&err, output),
    };
    let plan = &snapshot.plan;
    let owners = Owners::new(&topology, &Mode::from_host_flag(kernel.host.clone()));
    let text = |plan: &Plan| view::plan_text(&topology.name, plan, &owners, Style::for_stdout());
    show(&topology.name, plan, view_args, output, text);
    if !plan.conflicts.is_empty() {
        exit::failure()
    } else if detailed && !plan.is_empty() {
        exit::pending()
    } else {
        exit::success()
    }
}

/// Prints a plan: `plan`, and `apply`/`destroy` with `--dry-run`;
/// `grouped` is its text by the file's objects.
pub(super) fn show(
    topology: &str,
    plan: &Plan,
    view_args: ViewArgs,
    output: Output,
    grouped: impl Fn(&Plan) -> String,
) {
    match output {
        Output::Json => println!("{:#}", report::plan_json(topology, plan)),
        Output::Human => {
            if view_args.objects {
                print!("{}", report::plan_text(topology, plan));
            } else {
                print!("{}", grouped(plan));
            }
            eprint!(
                "{}",
                report::conflicts_text(&plan.conflicts, report::PLAN_BLOCKED)
            );
        }
    }
}

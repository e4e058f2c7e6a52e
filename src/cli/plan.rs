//! `netloom plan FILE`: the ordered changes and any conflicts; changes nothing.

use std::process::ExitCode;

use super::topology::topology_or_report;
use super::{KernelArgs, Output, block_on, error, exit, report};
use crate::plan::Plan;

pub fn run(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    detailed: bool,
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
    show(&topology.name, plan, output);
    if !plan.conflicts.is_empty() {
        exit::failure()
    } else if detailed && !plan.is_empty() {
        exit::pending()
    } else {
        exit::success()
    }
}

/// Prints a plan: `plan`, and `apply`/`destroy` with `--dry-run`.
pub(super) fn show(topology: &str, plan: &Plan, output: Output) {
    match output {
        Output::Json => println!("{:#}", report::plan_json(topology, plan)),
        Output::Human => {
            print!("{}", report::plan_text(topology, plan));
            eprint!(
                "{}",
                report::conflicts_text(&plan.conflicts, report::PLAN_BLOCKED)
            );
        }
    }
}

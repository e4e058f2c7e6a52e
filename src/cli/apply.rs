//! `netloom apply FILE`: make the kernel match the file, read back, verify.

use std::process::ExitCode;

use super::progress::ProgressDisplay;
use super::topology::topology_or_report;
use super::{KernelArgs, Output, block_on, check, check_timeout, error, exit, plan, report};
use crate::engine::{EngineError, Execution};

pub fn run(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    dry_run: bool,
    then_check: bool,
    output: Output,
) -> ExitCode {
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let progress = ProgressDisplay::new(output);
    let engine = match kernel.engine(adopt) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, output),
    };
    let result = block_on(engine.apply(&topology, dry_run, &progress));
    if !then_check {
        return finish_run(&topology.name, "apply", result, dry_run, output);
    }
    // `--check`: the expectations, once the apply has converged.
    let run = match result {
        Ok(run) if run.succeeded() => run,
        other => return finish_run(&topology.name, "apply", other, dry_run, output),
    };
    let outcomes = match block_on(engine.check(&topology, check_timeout())) {
        Ok(outcomes) => outcomes,
        Err(err) => return error::fail(&err, output),
    };
    match output {
        Output::Json => {
            let mut doc = report::execution_json(&topology.name, &run);
            doc["check"] = check::results_json(&outcomes);
            println!("{doc:#}");
        }
        Output::Human => {
            let (out, err) = report::execution_text(&topology.name, "apply", &run);
            print!("{out}{}", check::text(&outcomes));
            eprint!("{err}");
        }
    }
    exit::success_if(check::holds(&outcomes))
}

/// Reports a run that changes the kernel (`apply`, `destroy`) and picks
/// its exit code.
pub(super) fn finish_run(
    topology: &str,
    verb: &str,
    result: Result<Execution, EngineError>,
    dry_run: bool,
    output: Output,
) -> ExitCode {
    let run = match result {
        Ok(run) => run,
        Err(err) => return error::fail(&err, output),
    };
    if dry_run {
        plan::show(topology, &run.plan, output);
        return exit::success_if(run.plan.conflicts.is_empty());
    }
    match output {
        Output::Json => println!("{:#}", report::execution_json(topology, &run)),
        Output::Human => {
            let (out, err) = report::execution_text(topology, verb, &run);
            print!("{out}");
            eprint!("{err}");
        }
    }
    exit::success_if(run.succeeded())
}

//! `netloom apply FILE`: make the kernel match the file, read back, verify.

use std::process::ExitCode;

use super::interrupt::{Interrupt, StopSignal};
use super::progress::ProgressDisplay;
use super::topology::topology_or_report;
use super::view::{self, Owners, Style};
use super::{
    KernelArgs, Output, ViewArgs, block_on, check, check_timeout, error, exit, plan, report,
};
use crate::engine::{EngineError, Execution};
use crate::model::Mode;

/// How a changing run (`apply`, `destroy`) reports.
#[derive(Clone, Copy, Debug)]
pub struct RunView {
    pub dry_run: bool,
    /// With `--dry-run`: exit 2 when there are changes to make.
    pub detailed_exitcode: bool,
    pub view: ViewArgs,
    pub output: Output,
}

pub fn run(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    then_check: bool,
    run_view: RunView,
) -> ExitCode {
    let output = run_view.output;
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let progress = ProgressDisplay::new(output);
    let mut engine = match kernel.engine(adopt) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, output),
    };
    let interrupt = match stop_on_signals(&mut engine, "apply", run_view.dry_run) {
        Ok(interrupt) => interrupt,
        Err(code) => return code,
    };
    let stopped_by = || interrupt.as_ref().and_then(Interrupt::received);
    let owners = Owners::new(&topology, &Mode::from_host_flag(kernel.host.clone()));
    let result = block_on(engine.apply(&topology, run_view.dry_run, &progress));
    if !then_check {
        return finish_run(
            &topology.name,
            "apply",
            result,
            &owners,
            run_view,
            stopped_by(),
        );
    }
    // `--check`: the expectations, once the apply has converged.
    let run = match result {
        Ok(run) if run.succeeded() => run,
        other => {
            return finish_run(
                &topology.name,
                "apply",
                other,
                &owners,
                run_view,
                stopped_by(),
            );
        }
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
            let (out, err) = run_text(&topology.name, "apply", &run, &owners, run_view.view);
            print!("{out}{}", check::text(&outcomes));
            eprint!("{err}");
        }
    }
    exit::success_if(check::holds(&outcomes))
}

/// A run that changes the kernel stops on SIGINT/SIGTERM as docs/CLI.md
/// says (`Interrupt`); a dry run changes nothing and is simply killed.
pub(super) fn stop_on_signals(
    engine: &mut crate::engine::Engine,
    verb: &'static str,
    dry_run: bool,
) -> Result<Option<Interrupt>, ExitCode> {
    if dry_run {
        return Ok(None);
    }
    match Interrupt::listen(verb) {
        Ok(interrupt) => {
            engine.stop_on(interrupt.stop());
            Ok(Some(interrupt))
        }
        Err(err) => {
            eprintln!("error: cannot handle SIGINT/SIGTERM: {err}");
            Err(exit::failure())
        }
    }
}

/// A finished run for people: what changed, grouped like a plan (the
/// kernel-object list with `--objects`) on stdout; what went wrong on
/// stderr.
fn run_text(
    topology: &str,
    verb: &str,
    run: &Execution,
    owners: &Owners,
    view_args: ViewArgs,
) -> (String, String) {
    let (out, err) = report::execution_text(topology, verb, run);
    let finished = run.failure.is_none() && run.plan.conflicts.is_empty();
    if !finished || run.plan.is_empty() || view_args.objects {
        return (out, err);
    }
    let style = Style::for_stdout();
    let mut out = view::applied_text(topology, verb, &run.plan, &run.done, owners, style);
    if run.succeeded() {
        out.push_str("Read back and verified.\n");
    }
    (out, err)
}

/// Reports a run that changes the kernel (`apply`, `destroy`) and picks
/// its exit code.
pub(super) fn finish_run(
    topology: &str,
    verb: &str,
    result: Result<Execution, EngineError>,
    owners: &Owners,
    run_view: RunView,
    stopped_by: Option<StopSignal>,
) -> ExitCode {
    let output = run_view.output;
    let run = match result {
        Ok(run) => run,
        Err(err) => return error::fail(&err, output),
    };
    if run_view.dry_run {
        let style = Style::for_stdout();
        let text = |plan: &_| view::dry_run_text(topology, verb, plan, owners, style);
        plan::show(topology, &run.plan, run_view.view, output, text);
        return if !run.plan.conflicts.is_empty() {
            exit::failure()
        } else if run_view.detailed_exitcode && !run.plan.is_empty() {
            exit::pending()
        } else {
            exit::success()
        };
    }
    match output {
        Output::Json => println!("{:#}", report::execution_json(topology, &run)),
        Output::Human => {
            let (out, err) = run_text(topology, verb, &run, owners, run_view.view);
            print!("{out}");
            eprint!("{err}");
        }
    }
    match stopped_by {
        Some(signal) if run.interrupted => signal.exit_code(),
        _ => exit::success_if(run.succeeded()),
    }
}

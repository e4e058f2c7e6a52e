//! `netloom apply FILE`: make the kernel match the file, read back, verify.

use std::process::ExitCode;

use super::progress::ProgressDisplay;
use super::topology::{parsed_or_report, source_or_report, topology_from_source};
use super::view::{self, Owners, Style};
use super::{
    KernelArgs, Output, ViewArgs, block_on, check, check_timeout, error, exit, plan, report,
};
use crate::diagnostics::SourceFile;
use crate::engine::{Engine, EngineError, Execution, SavedPlan, is_plan_file};
use crate::model::Mode;
use crate::spec::Topology;

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
    let Some(source) = source_or_report(file, output) else {
        return exit::failure();
    };
    if is_plan_file(&source.text) {
        return run_saved(file, &source.text, kernel, adopt, then_check, run_view);
    }
    let Some(topology) = parsed_or_report(file, source, output) else {
        return exit::failure();
    };
    let progress = ProgressDisplay::new(output);
    let engine = match kernel.engine(adopt) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, output),
    };
    let owners = Owners::new(&topology, &Mode::from_host_flag(kernel.host.clone()));
    let result = block_on(engine.apply(&topology, run_view.dry_run, &progress));
    finish_apply(&engine, &topology, result, &owners, then_check, run_view)
}

/// `apply PLANFILE`: the saved plan, in the mode it was made in.
fn run_saved(
    file: &str,
    text: &str,
    kernel: &KernelArgs,
    adopt: bool,
    then_check: bool,
    run_view: RunView,
) -> ExitCode {
    let output = run_view.output;
    let refuse = |why: String| {
        eprintln!("error: cannot apply the plan in {file}: {why}");
        exit::failure()
    };
    let saved = match SavedPlan::from_json(text) {
        Ok(saved) => saved,
        Err(err) => return refuse(err.to_string()),
    };
    if kernel.host.is_some() && kernel.host != saved.basis.host || adopt && !saved.basis.adopt {
        return refuse(
            "it was made with other --host/--adopt flags; apply it without them (it keeps its own)"
                .to_string(),
        );
    }
    // The file as it was read when planning: valid then, so valid now
    // unless the plan file was made by another netloom.
    let source = SourceFile::new(saved.source.name.clone(), saved.source.text.clone());
    let topology = match topology_from_source(source) {
        Ok(topology) => topology,
        Err(err) => return refuse(format!("its topology no longer loads: {err}")),
    };
    let mode = saved.mode();
    let engine = match kernel.engine_in(mode.clone(), saved.basis.adopt) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, output),
    };
    let progress = ProgressDisplay::new(output);
    let owners = Owners::new(&topology, &mode);
    let result = block_on(engine.apply_saved(&topology, &saved, run_view.dry_run, &progress));
    finish_apply(&engine, &topology, result, &owners, then_check, run_view)
}

/// Reports an apply, after the file's expectations with `--check`.
fn finish_apply(
    engine: &Engine,
    topology: &Topology,
    result: Result<Execution, EngineError>,
    owners: &Owners,
    then_check: bool,
    run_view: RunView,
) -> ExitCode {
    let output = run_view.output;
    if !then_check {
        return finish_run(&topology.name, "apply", result, owners, run_view);
    }
    // `--check`: the expectations, once the apply has converged.
    let run = match result {
        Ok(run) if run.succeeded() => run,
        other => return finish_run(&topology.name, "apply", other, owners, run_view),
    };
    let outcomes = match block_on(engine.check(topology, check_timeout())) {
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
            let (out, err) = run_text(&topology.name, "apply", &run, owners, run_view.view);
            print!("{out}{}", check::text(&outcomes));
            eprint!("{err}");
        }
    }
    exit::success_if(check::holds(&outcomes))
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
    exit::success_if(run.succeeded())
}

//! `netloom apply FILE`: make the kernel match the file, read back, verify.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::interrupt::{Interrupt, StopSignal};
use super::progress::ProgressDisplay;
use super::topology::{parsed_or_report, source_or_report, topology_from_source};
use super::view::{self, Owners, Style};
use super::{
    KernelArgs, Output, ViewArgs, block_on, check, check_timeout, error, exit, plan, report,
};
use crate::diagnostics::SourceFile;
use crate::engine::{Engine, EngineError, Execution, SavedPlan, is_plan_file};
use crate::model::Mode;
use crate::probe::run::Outcome;
use crate::spec::Topology;

/// How an apply may be undone (`--atomic`, `--confirm`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Transaction {
    pub atomic: bool,
    /// `--confirm SECONDS`: how long to wait for a confirmation.
    pub confirm: Option<Duration>,
}

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
    transaction: Transaction,
    run_view: RunView,
) -> ExitCode {
    let output = run_view.output;
    let Some(source) = source_or_report(file, output) else {
        return exit::failure();
    };
    if is_plan_file(&source.text) {
        if transaction.atomic || transaction.confirm.is_some() {
            // A saved plan is carried out exactly as shown; undoing it is
            // `netloom rollback FILE` afterwards, never a silent no-op flag.
            error::report(
                &format!(
                    "{file} is a saved plan, which --atomic and --confirm do not apply to; apply the topology file with them instead"
                ),
                output,
            );
            return exit::usage();
        }
        return run_saved(file, &source.text, kernel, adopt, then_check, run_view);
    }
    let Some(topology) = parsed_or_report(file, source, output) else {
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
    if transaction.atomic || transaction.confirm.is_some() {
        let atomic = Atomic {
            file,
            topology: &topology,
            engine: &engine,
            then_check,
            confirm: transaction.confirm,
        };
        return atomic.run(&owners, run_view, &progress);
    }
    let result = block_on(engine.apply(&topology, run_view.dry_run, &progress));
    finish_apply(
        &engine,
        &topology,
        result,
        &owners,
        then_check,
        run_view,
        stopped_by(),
    )
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
        error::report(&format!("cannot apply the plan in {file}: {why}"), output);
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
    finish_apply(
        &engine, &topology, result, &owners, then_check, run_view, None,
    )
}

/// Reports an apply, after the file's expectations with `--check`.
fn finish_apply(
    engine: &Engine,
    topology: &Topology,
    result: Result<Execution, EngineError>,
    owners: &Owners,
    then_check: bool,
    run_view: RunView,
    stopped_by: Option<StopSignal>,
) -> ExitCode {
    let output = run_view.output;
    if !then_check {
        return finish_run(
            &topology.name,
            "apply",
            result,
            owners,
            run_view,
            stopped_by,
        );
    }
    // `--check`: the expectations, once the apply has converged.
    let run = match result {
        Ok(run) if run.succeeded() => run,
        other => return finish_run(&topology.name, "apply", other, owners, run_view, stopped_by),
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

/// An apply that is undone if it fails half way, if (with `--check`) an
/// expectation fails after it, or (with `--confirm`) if nobody confirms it.
struct Atomic<'a> {
    file: &'a str,
    topology: &'a Topology,
    engine: &'a Engine,
    then_check: bool,
    confirm: Option<Duration>,
}

impl Atomic<'_> {
    fn run(&self, owners: &Owners, run_view: RunView, progress: &ProgressDisplay) -> ExitCode {
        let output = run_view.output;
        let checked: RefCell<Option<Vec<Outcome>>> = RefCell::new(None);
        let keep = async {
            if self.then_check {
                let outcomes = self
                    .engine
                    .check(self.topology, check_timeout())
                    .await
                    .map_err(|err| {
                        format!("the file's expectations could not be checked: {err}")
                    })?;
                let failed = outcomes.iter().filter(|o| !o.ok).count();
                *checked.borrow_mut() = Some(outcomes);
                if failed > 0 {
                    return Err(format!("{failed} of the file's expectations failed"));
                }
            }
            match self.confirm {
                Some(timeout) => self.confirmation(timeout).await,
                None => Ok(()),
            }
        };
        let result = block_on(self.engine.apply_atomic(self.topology, progress, keep));
        let Some(outcomes) = checked.into_inner() else {
            return finish_run(&self.topology.name, "apply", result, owners, run_view, None);
        };
        let run = match result {
            Ok(run) => run,
            Err(err) => return error::fail(&err, output),
        };
        match output {
            Output::Json => {
                let mut doc = report::execution_json(&self.topology.name, &run);
                doc["check"] = check::results_json(&outcomes);
                println!("{doc:#}");
            }
            Output::Human => {
                let (out, err) =
                    run_text(&self.topology.name, "apply", &run, owners, run_view.view);
                print!("{out}{}", check::text(&outcomes));
                eprint!("{err}");
            }
        }
        exit::success_if(run.succeeded() && check::holds(&outcomes))
    }

    /// Waits for a keypress (Enter, on a terminal) or `netloom confirm`;
    /// Ctrl-C, or nothing in time, says why the apply is to be undone.
    async fn confirmation(&self, timeout: Duration) -> Result<(), String> {
        let pressed = Arc::new(AtomicBool::new(false));
        let on_terminal = std::io::stdin().is_terminal();
        if on_terminal {
            let pressed = Arc::clone(&pressed);
            // Left blocked on the terminal if nobody presses: it ends with
            // the process.
            std::thread::spawn(move || {
                let mut line = String::new();
                if std::io::stdin().read_line(&mut line).is_ok() {
                    pressed.store(true, Ordering::Relaxed);
                }
            });
        }
        let how = if on_terminal {
            "press Enter here, or run"
        } else {
            "run"
        };
        eprintln!(
            "Applied. To keep these changes, {how} `netloom confirm {}` within {}s; otherwise they are undone.",
            self.file,
            timeout.as_secs_f64()
        );
        let name = self.topology.name.as_str();
        let wait = self
            .engine
            .await_confirmation(name, timeout, || pressed.load(Ordering::Relaxed));
        let answered = tokio::select! {
            answered = wait => answered.map_err(|err| err.to_string())?,
            _ = tokio::signal::ctrl_c() => return Err("interrupted before confirmation".into()),
        };
        if answered {
            eprintln!("Confirmed: the changes stay.");
            Ok(())
        } else {
            Err(format!("not confirmed within {}s", timeout.as_secs_f64()))
        }
    }
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
    let finished = run.failure.is_none() && run.plan.conflicts.is_empty() && run.rollback.is_none();
    if !finished || run.plan.is_empty() || view_args.objects {
        return (out, err);
    }
    let style = Style::for_stdout();
    let mut out = view::applied_text(topology, verb, &run.plan, &run.done, owners, style);
    if run.succeeded() {
        out.push_str("Read back and verified.\n");
    }
    if run.interrupted {
        return (out, view::stopped_text(verb, &run.plan, &run.done, owners));
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

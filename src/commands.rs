//! The kernel-facing commands: build the engine for the flags given, run
//! one slice of the pipeline, print, and choose the exit code (CLI.md).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{KernelArgs, Output, TopologyError, read_topology, report_topology_error};
use crate::engine::{DestroyTarget, Engine, EngineError, Execution, Options, Progress, State};
use crate::model::{Change, Mode};
use crate::report;
use crate::spec::Topology;

const EXIT_PENDING: u8 = 2;

fn engine(kernel: &KernelArgs, adopt: bool) -> Result<Engine, EngineError> {
    let mode = match &kernel.host {
        Some(name) => Mode::Host {
            name: name.clone(),
            underlay_mtu: None,
        },
        None => Mode::Lab,
    };
    Engine::new(Options {
        mode,
        adopt,
        state_dir: kernel.state_dir.clone(),
        lock_timeout: Duration::from_secs(kernel.lock_timeout),
    })
}

/// Runs one async slice of the pipeline on a single-threaded runtime:
/// netlink is I/O bound and the kernel serialises most writes anyway.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

/// The validated topology, or `None` once its problems are reported (as
/// a JSON document too, with `--output json`).
fn topology(file: &str, output: Output) -> Option<Topology> {
    match read_topology(file) {
        Ok(topology) => Some(topology),
        Err(err) => {
            if output == Output::Json {
                let diagnostics = match &err {
                    TopologyError::Invalid(d) => {
                        serde_json::to_value(d.to_json()).unwrap_or_default()
                    }
                    TopologyError::Read(_) => serde_json::json!([]),
                };
                let doc = serde_json::json!({
                    "version": 1,
                    "error": err.to_string(),
                    "diagnostics": diagnostics,
                });
                println!("{doc:#}");
            }
            report_topology_error(&err);
            None
        }
    }
}

fn fail(err: &EngineError, output: Output) -> ExitCode {
    if output == Output::Json {
        println!(
            "{:#}",
            serde_json::json!({ "version": 1, "error": err.to_string() })
        );
    }
    eprintln!("error: {err}");
    if err.needs_root() {
        eprintln!(
            "  help: netloom changes the kernel's network state: run it as root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
        );
    }
    ExitCode::FAILURE
}

pub fn plan(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    detailed: bool,
    output: Output,
) -> ExitCode {
    let Some(topology) = topology(file, output) else {
        return ExitCode::FAILURE;
    };
    let result = engine(kernel, adopt).and_then(|engine| block_on(engine.plan(&topology)));
    let snapshot = match result {
        Ok(snapshot) => snapshot,
        Err(err) => return fail(&err, output),
    };
    let plan = &snapshot.plan;
    match output {
        Output::Json => println!("{:#}", report::plan_json(&topology.name, plan)),
        Output::Human => {
            print!("{}", report::plan_text(&topology.name, plan));
            eprint!(
                "{}",
                report::conflicts_text(&plan.conflicts, report::PLAN_BLOCKED)
            );
        }
    }
    if !plan.conflicts.is_empty() {
        ExitCode::FAILURE
    } else if detailed && !plan.is_empty() {
        ExitCode::from(EXIT_PENDING)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn apply(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    dry_run: bool,
    output: Output,
) -> ExitCode {
    let Some(topology) = topology(file, output) else {
        return ExitCode::FAILURE;
    };
    let progress = ProgressDisplay::new(output);
    let result = engine(kernel, adopt)
        .and_then(|engine| block_on(engine.apply(&topology, dry_run, &progress)));
    finish_run(&topology.name, "apply", result, dry_run, output)
}

pub fn destroy(
    file: Option<&str>,
    name: Option<&str>,
    kernel: &KernelArgs,
    dry_run: bool,
    output: Output,
) -> ExitCode {
    let parsed;
    let (target, topology_name) = match (file, name) {
        (Some(file), _) => {
            let Some(topology) = topology(file, output) else {
                return ExitCode::FAILURE;
            };
            parsed = topology;
            (DestroyTarget::File(&parsed), parsed.name.value.clone())
        }
        // clap requires FILE or --name; the name also names state files.
        (None, name) => {
            let name = name.unwrap_or_default();
            if !crate::validate::is_topology_name(name) {
                eprintln!("error: `{name}` is not a topology name (1 to 16 of a-z, 0-9 and `-`)");
                return ExitCode::from(crate::cli::EXIT_USAGE);
            }
            (DestroyTarget::Name(name), name.to_string())
        }
    };
    let progress = ProgressDisplay::new(output);
    let result = engine(kernel, false)
        .and_then(|engine| block_on(engine.destroy(target, dry_run, &progress)));
    finish_run(&topology_name, "destroy", result, dry_run, output)
}

fn finish_run(
    topology: &str,
    verb: &str,
    result: Result<Execution, EngineError>,
    dry_run: bool,
    output: Output,
) -> ExitCode {
    let run = match result {
        Ok(run) => run,
        Err(err) => return fail(&err, output),
    };
    if dry_run {
        match output {
            Output::Json => println!("{:#}", report::plan_json(topology, &run.plan)),
            Output::Human => {
                print!("{}", report::plan_text(topology, &run.plan));
                eprint!(
                    "{}",
                    report::conflicts_text(&run.plan.conflicts, report::PLAN_BLOCKED)
                );
            }
        }
        return if run.plan.conflicts.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match output {
        Output::Json => println!("{:#}", report::execution_json(topology, &run)),
        Output::Human => {
            let (out, err) = report::execution_text(topology, verb, &run);
            print!("{out}");
            eprint!("{err}");
        }
    }
    if run.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub fn status(file: &str, kernel: &KernelArgs, output: Output) -> ExitCode {
    let Some(topology) = topology(file, output) else {
        return ExitCode::FAILURE;
    };
    let result = engine(kernel, false).and_then(|engine| block_on(engine.status(&topology)));
    let (snapshot, statuses) = match result {
        Ok(found) => found,
        Err(err) => return fail(&err, output),
    };
    let conflicts = &snapshot.plan.conflicts;
    match output {
        Output::Json => println!(
            "{:#}",
            report::status_json(&topology.name, &statuses, conflicts)
        ),
        Output::Human => print!(
            "{}",
            report::status_text(&topology.name, &statuses, conflicts)
        ),
    }
    let in_sync = conflicts.is_empty() && statuses.iter().all(|s| s.state == State::InSync);
    if in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PENDING)
    }
}

pub fn exec(file: &str, pod: &str, command: &[String], kernel: &KernelArgs) -> ExitCode {
    let Some(topology) = topology(file, Output::Human) else {
        return ExitCode::FAILURE;
    };
    let result =
        engine(kernel, false).and_then(|engine| block_on(engine.pod_namespace(&topology, pod)));
    let ns = match result {
        Ok(Some(ns)) => ns,
        Ok(None) => {
            eprintln!(
                "error: pod `{pod}` is not a running pod of topology `{}` (is it in the file, and applied?)",
                topology.name
            );
            return ExitCode::FAILURE;
        }
        Err(err) => return fail(&err, Output::Human),
    };
    match crate::kernel::netns::run_in(&ns, command) {
        Ok(status) => ExitCode::from(status.code().map_or(1, |code| code.clamp(0, 255) as u8)),
        Err(err) => {
            eprintln!(
                "error: cannot run `{}` in pod `{pod}`: {err}",
                command.join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on a terminal; nothing otherwise.
struct ProgressDisplay {
    bar: Option<ProgressBar>,
}

impl ProgressDisplay {
    fn new(output: Output) -> Self {
        let shown = output == Output::Human && std::io::stderr().is_terminal();
        ProgressDisplay {
            bar: shown.then(ProgressBar::hidden),
        }
    }
}

impl Progress for ProgressDisplay {
    fn start(&self, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                    .expect("a valid template"),
            );
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn advance(&self, change: &Change) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(report::change_line(change));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! `netloom plan FILE`: the ordered changes and any conflicts; changes nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::topology::{parsed_or_report, source_or_report};
use super::view::{self, Owners, Style};
use super::{KernelArgs, Output, ViewArgs, block_on, error, exit, report};
use crate::model::Mode;
use crate::plan::Plan;

/// What `plan` does besides showing the plan.
pub struct PlanArgs {
    /// Exit 2 when there are changes to make.
    pub detailed_exitcode: bool,
    /// Save the plan here (`--out`).
    pub out: Option<PathBuf>,
}

pub fn run(
    file: &str,
    kernel: &KernelArgs,
    adopt: bool,
    args: PlanArgs,
    view_args: ViewArgs,
    output: Output,
) -> ExitCode {
    let detailed = args.detailed_exitcode;
    let Some(source) = source_or_report(file, output) else {
        return exit::failure();
    };
    let Some(topology) = parsed_or_report(file, source.clone(), output) else {
        return exit::failure();
    };
    let engine = match kernel.engine(adopt) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, output),
    };
    let snapshot = match block_on(engine.plan(&topology)) {
        Ok(snapshot) => snapshot,
        Err(err) => return error::fail(&err, output),
    };
    let plan = &snapshot.plan;
    let owners = Owners::new(&topology, &Mode::from_host_flag(kernel.host.clone()));
    let text = |plan: &Plan| view::plan_text(&topology.name, plan, &owners, Style::for_stdout());
    show(&topology.name, plan, view_args, output, text);
    if let Some(out) = &args.out {
        if !plan.conflicts.is_empty() {
            eprintln!(
                "error: no plan saved to {}: a plan with conflicts cannot be applied",
                out.display()
            );
        } else if let Err(err) = save(out, &engine.saved_plan(&snapshot, &source).to_json()) {
            eprintln!("error: cannot save the plan to {}: {err}", out.display());
            return exit::failure();
        } else {
            eprintln!(
                "Saved the plan to {0}: `netloom apply {0}` carries out exactly this plan, or nothing if the kernel changes first.",
                out.display()
            );
        }
    }
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

/// Writes a plan file aside and renames it into place: a reader never
/// sees half a plan.
fn save(path: &Path, text: &str) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

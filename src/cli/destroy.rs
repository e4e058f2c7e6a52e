//! `netloom destroy FILE | --name NAME`: delete what the topology owns,
//! restore the values it replaced.

use std::process::ExitCode;

use super::apply::{RunView, finish_run, stop_on_signals};
use super::interrupt::Interrupt;
use super::progress::ProgressDisplay;
use super::topology::topology_or_report;
use super::view::Owners;
use super::{KernelArgs, block_on, error, exit};
use crate::engine::DestroyTarget;
use crate::model::Mode;

pub fn run(
    file: Option<&str>,
    name: Option<&str>,
    kernel: &KernelArgs,
    run_view: RunView,
) -> ExitCode {
    let output = run_view.output;
    let parsed;
    let mut owners = Owners::none();
    let (target, topology_name) = match (file, name) {
        (Some(file), _) => {
            let Some(topology) = topology_or_report(file, output) else {
                return exit::failure();
            };
            parsed = topology;
            owners = Owners::new(&parsed, &Mode::from_host_flag(kernel.host.clone()));
            (DestroyTarget::File(&parsed), parsed.name.value.clone())
        }
        // clap requires FILE or --name; the name also names state files.
        (None, name) => {
            let name = name.unwrap_or_default();
            if !crate::validate::is_topology_name(name) {
                eprintln!("error: `{name}` is not a topology name (1 to 16 of a-z, 0-9 and `-`)");
                return exit::usage();
            }
            (DestroyTarget::Name(name), name.to_string())
        }
    };
    let progress = ProgressDisplay::new(output);
    let mut engine = match kernel.engine(false) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, output),
    };
    let interrupt = match stop_on_signals(&mut engine, "destroy", run_view.dry_run) {
        Ok(interrupt) => interrupt,
        Err(code) => return code,
    };
    let result = block_on(engine.destroy(target, run_view.dry_run, &progress));
    let stopped_by = interrupt.as_ref().and_then(Interrupt::received);
    finish_run(
        &topology_name,
        "destroy",
        result,
        &owners,
        run_view,
        stopped_by,
    )
}

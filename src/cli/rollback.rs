//! `netloom rollback FILE`: put back the state found at the start of the
//! topology's last changing run, read back, verify.

use std::process::ExitCode;

use super::apply::{RunView, finish_run};
use super::progress::ProgressDisplay;
use super::topology::topology_or_report;
use super::view::Owners;
use super::{KernelArgs, Output, ViewArgs, block_on, exit};
use crate::model::Mode;

pub fn run(file: &str, kernel: &KernelArgs, view: ViewArgs, output: Output) -> ExitCode {
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let progress = ProgressDisplay::new(output);
    let owners = Owners::new(&topology, &Mode::from_host_flag(kernel.host.clone()));
    let result = kernel
        .engine(false)
        .and_then(|engine| block_on(engine.rollback(&topology, &progress)));
    let run_view = RunView {
        dry_run: false,
        detailed_exitcode: false,
        view,
        output,
    };
    finish_run(&topology.name, "rollback", result, &owners, run_view, None)
}

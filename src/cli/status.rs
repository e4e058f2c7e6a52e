//! `netloom status FILE`: desired vs live, object by object.

use std::process::ExitCode;

use super::topology::topology_or_report;
use super::view;
use super::{KernelArgs, Output, block_on, error, exit, report};
use crate::engine::State;
use crate::model::Mode;

pub fn run(file: &str, kernel: &KernelArgs, all: bool, output: Output) -> ExitCode {
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let result = kernel
        .engine(false)
        .and_then(|engine| block_on(engine.status(&topology)));
    let (snapshot, statuses) = match result {
        Ok(found) => found,
        Err(err) => return error::fail(&err, output),
    };
    let conflicts = &snapshot.plan.conflicts;
    match output {
        Output::Json => println!(
            "{:#}",
            report::status_json(&topology.name, &statuses, conflicts)
        ),
        Output::Human => {
            let mode = Mode::from_host_flag(kernel.host.clone());
            let text = view::status::status_text(&topology, &mode, &statuses, conflicts, all);
            print!("{text}");
        }
    }
    let in_sync = conflicts.is_empty() && statuses.iter().all(|s| s.state == State::InSync);
    if in_sync {
        exit::success()
    } else {
        exit::pending()
    }
}

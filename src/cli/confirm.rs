//! `netloom confirm FILE`: keep the changes of an `apply --confirm` that
//! waits on this topology (from another shell). Exit 1 if none waits.

use std::process::ExitCode;

use super::topology::topology_or_report;
use super::{KernelArgs, Output, error, exit};

pub fn run(file: &str, kernel: &KernelArgs) -> ExitCode {
    let Some(topology) = topology_or_report(file, Output::Human) else {
        return exit::failure();
    };
    let confirmed = kernel
        .engine(false)
        .and_then(|engine| engine.confirm(&topology.name));
    match confirmed {
        Ok(true) => {
            println!("{}: confirmed, the changes stay", topology.name.value);
            exit::success()
        }
        Ok(false) => {
            eprintln!(
                "error: no `apply --confirm` of {} is waiting for confirmation",
                topology.name.value
            );
            exit::failure()
        }
        Err(err) => error::fail(&err, Output::Human),
    }
}

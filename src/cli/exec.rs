//! `netloom exec FILE POD -- CMD...`: run a command inside a pod.

use std::process::ExitCode;

use super::topology::topology_or_report;
use super::{KernelArgs, Output, block_on, error, exit};

pub fn run(file: &str, pod: &str, command: &[String], kernel: &KernelArgs) -> ExitCode {
    let Some(topology) = topology_or_report(file, Output::Human) else {
        return exit::failure();
    };
    let engine = match kernel.engine(false) {
        Ok(engine) => engine,
        Err(err) => return error::fail(&err, Output::Human),
    };
    let ns = match block_on(engine.pod_namespace(&topology, pod)) {
        Ok(Some(ns)) => ns,
        Ok(None) => {
            eprintln!(
                "error: pod `{pod}` is not a running pod of topology `{}` (is it in the file, and applied?)",
                topology.name
            );
            return exit::failure();
        }
        Err(err) => return error::fail(&err, Output::Human),
    };
    match engine.run_command(&ns, command) {
        Ok(status) => exit::of_command(status),
        Err(err) => {
            eprintln!(
                "error: cannot run `{}` in pod `{pod}`: {err}",
                command.join(" ")
            );
            exit::failure()
        }
    }
}

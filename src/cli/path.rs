//! `netloom path FILE FROM TO`: walk a packet through the live kernel, hop
//! by hop. Exit 0 when it arrives (or, in host mode, leaves towards the
//! host that carries it on), 1 when it dies, cannot start, or a `--probe`
//! disagrees.

use std::fmt::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use super::topology::topology_or_report;
use super::{KernelArgs, Output, block_on, error, exit, report};
use crate::engine::{PathProbe, PathRun};
use crate::path;

pub struct PathArgs<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub port: Option<u16>,
    pub probe: bool,
    pub timeout: Duration,
}

pub fn run(file: &str, args: &PathArgs, kernel: &KernelArgs, output: Output) -> ExitCode {
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let probe = args.probe.then_some(PathProbe {
        port: args.port,
        timeout: args.timeout,
    });
    let result = kernel
        .engine(false)
        .and_then(|engine| block_on(engine.path(&topology, args.from, args.to, probe)));
    let run = match result {
        Ok(run) => run,
        Err(err) => return error::fail(&err, output),
    };
    let arrives = run.report.arrives();
    let agrees = run
        .probe
        .as_ref()
        .is_none_or(|p| p.latency.is_some() == arrives);
    match output {
        Output::Json => {
            let mut doc = path::report::json(&run.report, args.from, args.to, run.walk.to);
            doc["drift"] = run.drift.iter().map(report::status_object_json).collect();
            if let Some(probe) = &run.probe {
                doc["probe"] = json!({
                    "reached": probe.latency.is_some(),
                    "latency_ms": probe.latency.map(|l| l.as_secs_f64() * 1000.0),
                    "reason": probe.failure.as_ref().map(|f| f.reason()),
                    "agrees": agrees,
                });
            }
            println!("{doc:#}");
        }
        Output::Human => print!("{}", text(&run, arrives, agrees)),
    }
    exit::success_if(arrives && agrees)
}

fn text(run: &PathRun, arrives: bool, agrees: bool) -> String {
    let mut out = path::report::text(&run.report, run.walk.to);
    if !run.drift.is_empty() {
        let _ = writeln!(
            out,
            "the kernel is not as the file says on the way (drift):"
        );
        for status in &run.drift {
            let _ = writeln!(out, "  {}", report::status_line(status));
        }
    }
    if let Some(probe) = &run.probe {
        let sent = match (&probe.latency, &probe.failure) {
            (Some(latency), _) => format!("answered in {:.2} ms", latency.as_secs_f64() * 1000.0),
            (None, Some(failure)) => format!("no answer ({failure})"),
            (None, None) => "no answer".to_string(),
        };
        let verdict = match (agrees, arrives) {
            (true, _) => "agrees with the walk",
            (false, true) => "DISAGREES: the walk says it arrives",
            (false, false) => "DISAGREES: the walk says it dies",
        };
        let _ = writeln!(out, "probe: {sent}: {verdict}");
    }
    out
}

//! `netloom check FILE`: the file's `expect` list, with real traffic from
//! inside the pods. Exit 0 when every expectation holds, 1 otherwise.

use std::fmt::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::topology::topology_or_report;
use super::{KernelArgs, Output, block_on, error, exit};
use crate::expect::Method;
use crate::probe::run::Outcome;

pub fn run(file: &str, kernel: &KernelArgs, timeout: Duration, output: Output) -> ExitCode {
    let Some(topology) = topology_or_report(file, output) else {
        return exit::failure();
    };
    let result = kernel
        .engine(false)
        .and_then(|engine| block_on(engine.check(&topology, timeout)));
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        Err(err) => return error::fail(&err, output),
    };
    match output {
        Output::Json => println!("{:#}", json_document(&outcomes)),
        Output::Human => print!("{}", text(&outcomes)),
    }
    exit::success_if(holds(&outcomes))
}

/// Whether every expectation holds.
pub(super) fn holds(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| o.ok)
}

fn method(outcome: &Outcome) -> String {
    match outcome.check.method {
        Method::Echo => "icmp".to_string(),
        Method::Tcp { port } => format!("tcp/{port}"),
    }
}

fn target(outcome: &Outcome) -> String {
    let check = &outcome.check;
    if check.to == check.target.to_string() {
        check.to.clone()
    } else {
        format!("{} ({})", check.to, check.target)
    }
}

fn result(outcome: &Outcome) -> String {
    let why = outcome
        .failure
        .as_ref()
        .map(|f| f.to_string())
        .unwrap_or_default();
    let served = if outcome.listener {
        " (netloom listened)"
    } else {
        ""
    };
    match (outcome.ok, outcome.check.reach) {
        (true, true) => format!("ok{served}"),
        (true, false) => format!("ok: not reachable, as expected ({why})"),
        (false, true) => format!("FAILED: {why}"),
        (false, false) => format!("FAILED: reachable, but must not be{served}"),
    }
}

fn latency(outcome: &Outcome) -> String {
    outcome
        .latency
        .map(|l| format!("{:.2} ms", l.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".to_string())
}

/// A table: from, to, method, result, latency; then a count.
pub(super) fn text(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|o| {
            [
                o.check.from.clone(),
                target(o),
                method(o),
                result(o),
                latency(o),
            ]
        })
        .collect();
    let header = ["FROM", "TO", "METHOD", "RESULT", "LATENCY"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    let _ = match failed {
        0 => writeln!(
            out,
            "{} of {} expectations hold",
            outcomes.len(),
            outcomes.len()
        ),
        n => writeln!(out, "{n} of {} expectations FAILED", outcomes.len()),
    };
    out
}

fn result_json(outcome: &Outcome) -> Value {
    let check = &outcome.check;
    let (method, port) = match check.method {
        Method::Echo => ("icmp", None),
        Method::Tcp { port } => ("tcp", Some(port)),
    };
    json!({
        "from": check.from,
        "to": check.to,
        "address": check.target,
        "method": method,
        "port": port,
        "reach": check.reach,
        "ok": outcome.ok,
        "reached": outcome.latency.is_some(),
        "latency_ms": outcome.latency.map(|l| l.as_secs_f64() * 1000.0),
        "reason": outcome.failure.as_ref().map(|f| f.reason()),
        "message": outcome.failure.as_ref().map(|f| f.to_string()),
        "listener": outcome.listener,
    })
}

/// The `results` array, as `check` and `apply --check` print it.
pub(super) fn results_json(outcomes: &[Outcome]) -> Value {
    Value::Array(outcomes.iter().map(result_json).collect())
}

fn json_document(outcomes: &[Outcome]) -> Value {
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    json!({
        "version": 1,
        "results": results_json(outcomes),
        "summary": { "total": outcomes.len(), "ok": outcomes.len() - failed, "failed": failed },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Check;
    use crate::probe::Failure;

    fn outcome(to: &str, method: Method, reach: bool, answer: Result<u64, Failure>) -> Outcome {
        let reached = answer.is_ok();
        Outcome {
            check: Check {
                index: 0,
                from: "web".to_string(),
                from_ns: "web".to_string(),
                to: to.to_string(),
                target: "10.0.0.3".parse().unwrap(),
                serve_in: None,
                method,
                reach,
            },
            ok: reached == reach,
            latency: answer.as_ref().ok().map(|us| Duration::from_micros(*us)),
            failure: answer.err(),
            listener: matches!(method, Method::Tcp { .. }) && reached,
        }
    }

    fn sample() -> Vec<Outcome> {
        vec![
            outcome("db", Method::Tcp { port: 5432 }, true, Ok(250)),
            outcome("10.0.0.3", Method::Echo, false, Err(Failure::TimedOut)),
            outcome("db", Method::Echo, true, Err(Failure::NoRoute)),
        ]
    }

    #[test]
    fn the_table_says_what_held_and_why_not() {
        assert_eq!(
            text(&sample()),
            "FROM  TO             METHOD    RESULT                                      LATENCY\n\
             web   db (10.0.0.3)  tcp/5432  ok (netloom listened)                       0.25 ms\n\
             web   10.0.0.3       icmp      ok: not reachable, as expected (timed out)  -\n\
             web   db (10.0.0.3)  icmp      FAILED: no route                            -\n\
             1 of 3 expectations FAILED\n"
        );
    }

    #[test]
    fn the_json_has_results_with_ok_latency_and_reason() {
        let doc = json_document(&sample());
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["summary"], json!({"total": 3, "ok": 2, "failed": 1}));
        let first = &doc["results"][0];
        assert_eq!(first["ok"], true);
        assert_eq!(first["method"], "tcp");
        assert_eq!(first["port"], 5432);
        assert_eq!(first["latency_ms"], 0.25);
        assert_eq!(first["reason"], Value::Null);
        let failed = &doc["results"][2];
        assert_eq!(failed["ok"], false);
        assert_eq!(failed["reason"], "no-route");
        assert_eq!(failed["latency_ms"], Value::Null);
        assert_eq!(doc["results"][1]["reach"], false);
    }
}

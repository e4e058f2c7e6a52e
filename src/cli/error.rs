//! The one error document of `--output json`: `{"version": 1, "error":
//! TEXT, "diagnostics": [...]}`, where each diagnostic is `{file, line,
//! column, message, help}` (a file that cannot be read is one diagnostic
//! at line 0). `validate` adds `"valid": false` to it.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::topology::TopologyError;
use super::{Output, exit};
use crate::engine::EngineError;

/// The document for a topology that cannot be used.
pub fn topology_error_document(file: &str, err: &TopologyError) -> Value {
    document(&err.to_string(), diagnostics(file, err))
}

/// The diagnostics of a topology error, as the JSON document lists them.
pub fn diagnostics(file: &str, err: &TopologyError) -> Value {
    match err {
        TopologyError::Invalid(d) => {
            serde_json::to_value(d.to_json()).expect("diagnostics serialize")
        }
        TopologyError::Read(err) => json!([{
            "file": file, "line": 0, "column": 0, "message": err.to_string(), "help": null
        }]),
    }
}

fn document(error: &str, diagnostics: Value) -> Value {
    json!({ "version": 1, "error": error, "diagnostics": diagnostics })
}

/// Reports an engine failure (the document too, with `--output json`);
/// exits 1.
pub fn fail(err: &EngineError, output: Output) -> ExitCode {
    if output == Output::Json {
        println!("{:#}", document(&err.to_string(), json!([])));
    }
    eprintln!("error: {err}");
    if err.needs_root() {
        eprintln!(
            "  help: netloom changes the kernel's network state: run it as root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
        );
    }
    exit::failure()
}

//! `netloom schema`: the JSON Schema of the file format.

use std::process::ExitCode;

use super::exit;
use crate::spec::Topology;

pub fn run() -> ExitCode {
    println!("{}", schema_json());
    exit::success()
}

/// The JSON Schema of the file format, as committed in `schemas/`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Topology);
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

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

/// Says why a run does not start: on stderr, and as the document with
/// `--output json`.
pub fn report(error: &str, output: Output) {
    if output == Output::Json {
        println!("{:#}", document(error, json!([])));
    }
    eprintln!("error: {error}");
}

/// Reports an engine failure (the document too, with `--output json`);
/// exits 1.
pub fn fail(err: &EngineError, output: Output) -> ExitCode {
    report(&err.to_string(), output);
    if err.needs_root() {
        eprintln!(
            "  help: netloom changes the kernel's network state: run it as root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
        );
    }
    exit::failure()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::topology::read_topology;

    #[test]
    fn every_topology_error_has_the_same_document() {
        let missing = read_topology("does/not/exist.yaml").unwrap_err();
        let doc = topology_error_document("does/not/exist.yaml", &missing);
        assert_eq!(doc["version"], 1);
        assert!(
            doc["error"]
                .as_str()
                .unwrap()
                .contains("does/not/exist.yaml")
        );
        assert_eq!(
            doc["diagnostics"],
            json!([{
                "file": "does/not/exist.yaml", "line": 0, "column": 0,
                "message": missing.to_string(), "help": null
            }])
        );

        let dir = std::env::temp_dir().join(format!("netloom-cli-error-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.yaml");
        std::fs::write(&file, "name: lab\nbogus: 1\n").unwrap();
        let file = file.to_str().unwrap();
        let invalid = read_topology(file).unwrap_err();
        let doc = topology_error_document(file, &invalid);
        std::fs::remove_dir_all(&dir).unwrap();
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["diagnostics", "error", "version"]);
        let first = &doc["diagnostics"][0];
        assert_eq!((&first["line"], &first["column"]), (&2.into(), &1.into()));
        assert!(first["message"].as_str().unwrap().contains("bogus"));
    }
}

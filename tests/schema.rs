//! The committed JSON Schema must be exactly what `netloom schema` prints,
//! and every shipped topology file must point editors at it.

use std::fs;
use std::path::{Path, PathBuf};

const SCHEMA_PATH: &str = "schemas/topology.schema.json";
const SCHEMA_LINE: &str = "# yaml-language-server: $schema=../schemas/topology.schema.json";
const REGENERATE: &str = "cargo run -q -- schema > schemas/topology.schema.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schema_matches_the_types() {
    let committed = fs::read_to_string(root().join(SCHEMA_PATH)).unwrap_or_else(|err| {
        panic!("cannot read {SCHEMA_PATH} ({err}); create it with: {REGENERATE}")
    });
    // `netloom schema` prints the schema and a newline.
    let generated = format!("{}\n", netloom::cli::schema_json());
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one is a prefix of the other".to_string(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "{SCHEMA_PATH} is stale ({first_difference}): the spec types changed. \
             Regenerate it with:\n\n    {REGENERATE}\n\nand commit the result."
        );
    }
}

#[test]
fn committed_schema_is_a_json_schema() {
    let text = fs::read_to_string(root().join(SCHEMA_PATH)).expect("schema is committed");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://json-schema.org/")),
        "no `$schema` in {SCHEMA_PATH}"
    );
    assert_eq!(schema["type"], "object");
    for key in [
        "name", "hosts", "routing", "bridges", "pods", "links", "overlays", "expect",
    ] {
        assert!(
            schema["properties"].get(key).is_some(),
            "top-level key `{key}` missing from the schema"
        );
    }
    assert_eq!(schema["required"], serde_json::json!(["name"]));
    assert_eq!(
        schema["additionalProperties"],
        serde_json::json!(false),
        "unknown keys are an error (deny_unknown_fields)"
    );
}

/// Every `.yaml` file of `examples/` and `topologies/`.
fn topology_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "topologies"] {
        for entry in fs::read_dir(root().join(dir)).expect("directory exists") {
            let path = entry.expect("readable entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_topology_file_points_at_the_schema() {
    let files = topology_files();
    assert!(!files.is_empty(), "no topology files found");
    let mut wrong = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).expect("readable");
        if text.lines().next() != Some(SCHEMA_LINE) {
            wrong.push(relative(path));
        }
        // The line is relative to the file, so the file must sit one level
        // below the repository root, next to `schemas/`.
        assert_eq!(
            path.parent().and_then(Path::parent),
            Some(root().as_path()),
            "{} is not one directory below the root: its schema line would not resolve",
            relative(path)
        );
    }
    assert!(
        wrong.is_empty(),
        "these files do not start with `{SCHEMA_LINE}`: {wrong:?}"
    );
    assert!(
        root()
            .join("examples")
            .join("..")
            .join(SCHEMA_PATH)
            .is_file()
    );
}

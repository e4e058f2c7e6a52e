//! The command line contract (docs/CLI.md), checked on the real binary: exit
//! codes, the JSON shape of `validate --output json`, standard input,
//! help, completions, schema, and the graph output.

use std::path::PathBuf;

use assert_cmd::Command;
use clap::CommandFactory;
use serde_json::Value;

const SEED: &str = "examples/seed.yaml";
/// A file that does not parse: `bogus` is not a key of the format.
const UNKNOWN_KEY: &str = "name: broken\nbogus: 1\n";
const EXIT_USAGE: i32 = 64;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn netloom() -> Command {
    let mut cmd = Command::cargo_bin("netloom").expect("binary is built");
    cmd.current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let output = netloom().args(args).output().expect("netloom runs");
    assert!(
        output.status.success(),
        "`netloom {}` exited {:?}: {}",
        args.join(" "),
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(bytes)))
}

// ---- validate -----------------------------------------------------------

#[test]
fn validate_exits_0_for_a_valid_file() {
    let out = netloom().args(["validate", SEED]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.starts_with("examples/seed.yaml: valid"),
        "unexpected: {stdout}"
    );
}

#[test]
fn validate_exits_1_for_an_invalid_file_and_points_at_it() {
    let out = netloom()
        .args(["validate", "-"])
        .write_stdin(UNKNOWN_KEY)
        .assert()
        .code(1);
    let output = out.get_output();
    assert!(
        output.stdout.is_empty(),
        "diagnostics belong on stderr, not stdout"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("<stdin>:2:1"),
        "no file:line:col in:\n{stderr}"
    );
    assert!(stderr.contains("bogus"), "{stderr}");
}

#[test]
fn validate_diagnostic_is_rendered_with_the_source_line() {
    let out = netloom()
        .args(["validate", "-"])
        .write_stdin(UNKNOWN_KEY)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    insta::assert_snapshot!("validate_unknown_key", stderr);
}

#[test]
fn validate_exits_1_for_a_wrong_type_and_bad_yaml() {
    for text in [
        "name: x\nbridges:\n  b: { mtu: big }\n",
        "name: x\nbridges: [\n",
        "pods: {}\n",
    ] {
        netloom()
            .args(["validate", "-"])
            .write_stdin(text)
            .assert()
            .code(1);
    }
}

#[test]
fn validate_exits_1_for_a_missing_file() {
    let out = netloom()
        .args(["validate", "does/not/exist.yaml"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("does/not/exist.yaml"), "{stderr}");
}

#[test]
fn validate_json_for_a_valid_file() {
    let out = netloom()
        .args(["validate", "--output", "json", SEED])
        .assert()
        .success();
    let doc = json(&out.get_output().stdout);
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "valid": true, "diagnostics": []})
    );
}

/// Every diagnostic has exactly these fields, with these types.
fn assert_diagnostic_shape(diagnostic: &Value) {
    let object = diagnostic.as_object().expect("a diagnostic is an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["column", "file", "help", "line", "message"]);
    assert!(diagnostic["file"].is_string());
    assert!(diagnostic["line"].is_u64());
    assert!(diagnostic["column"].is_u64());
    assert!(
        diagnostic["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(diagnostic["help"].is_string() || diagnostic["help"].is_null());
}

#[test]
fn validate_json_for_an_invalid_file() {
    let out = netloom()
        .args(["validate", "--output", "json", "-"])
        .write_stdin(UNKNOWN_KEY)
        .assert()
        .code(1);
    let doc = json(&out.get_output().stdout);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["valid"], false);
    let diagnostics = doc["diagnostics"].as_array().expect("an array");
    assert!(!diagnostics.is_empty());
    for diagnostic in diagnostics {
        assert_diagnostic_shape(diagnostic);
    }
    let first = &diagnostics[0];
    assert_eq!(first["file"], "<stdin>");
    assert_eq!((&first["line"], &first["column"]), (&2.into(), &1.into()));
    assert!(first["message"].as_str().unwrap().contains("bogus"));
}

#[test]
fn validate_json_for_a_missing_file() {
    let out = netloom()
        .args(["validate", "--output", "json", "does/not/exist.yaml"])
        .assert()
        .code(1);
    let doc = json(&out.get_output().stdout);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["valid"], false);
    let diagnostics = doc["diagnostics"].as_array().expect("an array");
    assert_eq!(diagnostics.len(), 1);
    assert_diagnostic_shape(&diagnostics[0]);
    assert_eq!(diagnostics[0]["file"], "does/not/exist.yaml");
}

#[test]
fn validate_reads_standard_input() {
    let text = std::fs::read_to_string(root().join(SEED)).unwrap();
    let out = netloom()
        .args(["validate", "-"])
        .write_stdin(text)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout);
    assert!(
        stdout.contains(": valid (1 bridge, 1 pod, 1 link)"),
        "{stdout}"
    );
}

// ---- usage errors, help, version ------------------------------------------

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["validate", "--frobnicate", SEED][..], // unknown flag
        &["validate"],                           // missing argument
        &["graph"],                              // missing argument
        &["graph", "--format", "png", SEED],     // bad value
        &["completions"],                        // missing argument
        &["completions", "tcsh"],                // unknown shell
        &["frobnicate"],                         // unknown command
        &[],                                     // no command at all
        &["schema", "extra"],                    // unexpected argument
        &["validate", "--output", "yaml", SEED], // bad value
    ] {
        let out = netloom().args(args).assert().code(EXIT_USAGE);
        let output = out.get_output();
        assert!(
            !output.stderr.is_empty(),
            "`netloom {}`: a usage error says why on stderr",
            args.join(" ")
        );
        assert!(
            output.stdout.is_empty(),
            "`netloom {}`: nothing on stdout",
            args.join(" ")
        );
    }
}

/// Every subcommand the binary has, from its own definition, so a new
/// command is covered as soon as it exists.
fn subcommands() -> Vec<String> {
    netloom::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn help_exits_0_for_every_subcommand() {
    let subcommands = subcommands();
    for expected in ["validate", "graph", "schema", "completions"] {
        assert!(subcommands.iter().any(|s| s == expected), "no `{expected}`");
    }
    let top = stdout_of(&["--help"]);
    for sub in &subcommands {
        assert!(top.contains(sub.as_str()), "--help does not list `{sub}`");
        let help = stdout_of(&[sub, "--help"]);
        assert!(help.contains("Usage: netloom"), "`{sub} --help`:\n{help}");
        stdout_of(&["help", sub]);
    }
}

#[test]
fn version_exits_0() {
    let out = stdout_of(&["--version"]);
    assert_eq!(out.trim(), format!("netloom {}", env!("CARGO_PKG_VERSION")));
}

// ---- completions, schema ----------------------------------------------------

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("netloom") && script.contains("validate"),
            "{shell} completions do not complete netloom's commands"
        );
    }
}

#[test]
fn schema_is_a_json_schema_and_matches_the_committed_one() {
    let printed = stdout_of(&["schema"]);
    let schema = json(printed.as_bytes());
    assert!(schema["$schema"].is_string(), "no `$schema`");
    assert_eq!(schema["title"], "netloom topology");
    let committed = std::fs::read_to_string(root().join("schemas/topology.schema.json"))
        .expect("schema is committed");
    assert!(
        printed == committed,
        "schemas/topology.schema.json is stale; regenerate it with \
         `cargo run -q -- schema > schemas/topology.schema.json`"
    );
}

// ---- graph ----------------------------------------------------------------------

#[test]
fn graph_of_the_seed_has_its_objects() {
    let dot = stdout_of(&["graph", "--objects", SEED]);
    assert_eq!(
        dot,
        stdout_of(&["graph", "--objects", "--format", "dot", SEED]),
        "dot is the default"
    );
    let mermaid = stdout_of(&["graph", "--objects", "--format", "mermaid", SEED]);
    for label in [
        "this machine's namespace",
        "netns test",
        "link test0",
        "link testveth0",
        "master testveth0",
        "address test0 10.0.0.1",
        "address eth0 10.0.0.2",
        "route 0.0.0.0/0 metric 0",
    ] {
        assert!(
            dot.contains(&format!("\"{label}\"")),
            "dot lacks `{label}`:\n{dot}"
        );
        assert!(
            mermaid.contains(&format!("\"{label}\"")),
            "mermaid lacks `{label}`:\n{mermaid}"
        );
    }
    assert!(dot.starts_with("digraph netloom {"), "{dot}");
    assert!(mermaid.starts_with("flowchart"), "{mermaid}");
}

#[test]
fn graph_is_deterministic() {
    for format in ["dot", "mermaid", "svg"] {
        for file in [
            SEED,
            "topologies/k8s-host-gw.yaml",
            "topologies/k8s-vxlan.yaml",
        ] {
            let first = stdout_of(&["graph", "--format", format, file]);
            let second = stdout_of(&["graph", "--format", format, file]);
            assert_eq!(first, second, "{file} as {format} differs between runs");
        }
    }
}

#[test]
fn graph_reads_standard_input() {
    let text = std::fs::read_to_string(root().join(SEED)).unwrap();
    let out = netloom()
        .args(["graph", "--objects", "--format", "mermaid", "-"])
        .write_stdin(text)
        .assert()
        .success();
    let from_stdin = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        from_stdin,
        stdout_of(&["graph", "--objects", "--format", "mermaid", SEED])
    );
}

#[test]
fn graph_of_an_invalid_file_exits_1() {
    netloom()
        .args(["graph", "-"])
        .write_stdin(UNKNOWN_KEY)
        .assert()
        .code(1)
        .stdout("");
}

#[test]
fn graph_mermaid_of_the_seed() {
    insta::assert_snapshot!(
        "graph_mermaid_seed",
        stdout_of(&["graph", "--objects", "--format", "mermaid", SEED])
    );
}

#[test]
fn readme_shows_the_seed_graph() {
    // The picture in README.md is the real output, not a drawing that can
    // go stale.
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("```mermaid\n")
        .expect("README.md has a ```mermaid block")
        + "```mermaid\n".len();
    let end = start + readme[start..].find("```").expect("the block is closed");
    let generated = stdout_of(&["graph", "--objects", "--format", "mermaid", SEED]);
    assert!(
        readme[start..end] == generated,
        "README.md's mermaid block is stale; replace it with the output of \
         `cargo run -q -- graph --format mermaid {SEED}`"
    );
}

#[test]
fn readme_states_the_derived_name_rule_truly() {
    // README documents the rule with a worked example; the rule is part of
    // the contract (docs/FORMAT.md), so the example must stay right.
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let derived = netloom::model::derived_ifname("seed", "test", "eth0");
    assert!(
        readme.contains(&format!("`{derived}`")),
        "README.md's derived-name example should be `{derived}`"
    );
    assert!(readme.contains("SHA-256 of `TOPOLOGY/POD/INTERFACE`"));
}

#[test]
fn a_fifo_a_device_or_a_socket_as_file_is_refused_at_once() {
    let dir = std::env::temp_dir().join(format!("netloom-cli-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A FIFO nobody writes to would block a plain open for ever.
    let fifo = dir.join("topology.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let socket = dir.join("topology.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let cases = [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a character device"),
        (socket.to_str().unwrap(), "a socket"),
    ];
    for (file, what) in cases {
        for command in ["validate", "plan", "graph"] {
            let started = std::time::Instant::now();
            let output = netloom()
                .args([command, file])
                .timeout(std::time::Duration::from_secs(20))
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(1), "{command} {file}");
            let err = String::from_utf8_lossy(&output.stderr);
            assert!(
                err.contains(what) && err.contains("not a regular file"),
                "{command} {file}: {err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

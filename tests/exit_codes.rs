//! Exit codes that do not lie, and output without colour off a terminal,
//! on the real binary (docs/CLI.md): `exec` exits like shells do (its
//! command's code, 126, 127, 128+N; 125 for netloom's own failure),
//! `destroy --name` of a topology this machine does not have and
//! `graph --host` of a host the file does not have exit 1.

mod common;

use std::process::Command;

use common::{Sandbox, apply_converged, assert_exit, assert_ok, netloom_bin, root};

const ESC: char = '\u{1b}';

#[test]
fn exec_exits_with_the_commands_code_or_as_shells_do() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = "examples/seed.yaml";
    apply_converged(&sandbox, file);
    let exec = |command: &[&str]| {
        let mut args = vec!["exec", file, "test", "--"];
        args.extend_from_slice(command);
        sandbox.netloom(&args)
    };
    assert_exit(&exec(&["true"]), 0);
    assert_exit(&exec(&["sh", "-c", "exit 42"]), 42);
    sandbox.sh("echo true > /run/not-executable && chmod 644 /run/not-executable");
    assert_exit(&exec(&["/run/not-executable"]), 126);
    assert_exit(&exec(&["no-such-program-anywhere"]), 127);
    assert_exit(&exec(&["sh", "-c", "kill -KILL $$"]), 128 + 9);

    // Without a command: the shell of $SHELL, here reading its input.
    let shell = sandbox
        .command(netloom_bin())
        .args(["exec", file, "test"])
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(b"ip -o link show eth0 >/dev/null && exit 7\n")?;
            child.wait_with_output()
        })
        .expect("netloom runs");
    assert_exit(&shell, 7);

    // netloom's own failure: 125, and a typo gets the closest name.
    let typo = sandbox.netloom(&["exec", file, "tset", "--", "true"]);
    assert_exit(&typo, 125);
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(said.contains("did you mean `test`?"), "{said}");
}

#[test]
fn destroy_by_the_name_of_no_topology_here_exits_1() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let unknown = sandbox.netloom(&["destroy", "--name", "nosuch"]);
    assert_exit(&unknown, 1);
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("no topology nosuch on this machine"),
        "{said}"
    );
    assert!(!said.contains("matches the file"), "{said}");

    // A topology that is here is destroyed by name as before.
    apply_converged(&sandbox, "examples/seed.yaml");
    assert_ok(&sandbox.netloom(&["destroy", "--name", "seed"]));
    // ... and then it is gone: its name names nothing any more.
    assert_exit(&sandbox.netloom(&["destroy", "--name", "seed"]), 1);
}

#[test]
fn graph_of_a_host_the_file_does_not_have_exits_1() {
    let graph = |host: &str| {
        Command::new(netloom_bin())
            .current_dir(root())
            .args(["graph", "examples/vxlan.yaml", "--host", host])
            .output()
            .expect("netloom runs")
    };
    let unknown = graph("nosuch");
    assert_exit(&unknown, 1);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("host `nosuch` is not in the file"));
    assert!(unknown.stdout.is_empty());
}

#[test]
fn the_man_page_comes_from_the_command_line_definition() {
    let man = Command::new(netloom_bin())
        .arg("man")
        .output()
        .expect("netloom runs");
    let page = assert_ok(&man);
    assert!(
        page.starts_with(".ie") || page.contains(".TH netloom"),
        "{page}"
    );
    for command in [
        "validate", "plan", "apply", "destroy", "status", "exec", "man",
    ] {
        assert!(page.contains(command), "the page lists `{command}`");
    }
}

#[test]
fn man_dir_writes_one_page_per_command_each_with_its_own_flags() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("netloom-man-pages");
    let _ = std::fs::remove_dir_all(&dir);
    let written = Command::new(netloom_bin())
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .expect("netloom runs");
    let listed = assert_ok(&written);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the directory was made")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(listed.lines().count(), files.len(), "{listed}");
    let page = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|_| panic!("{name} in {files:?}"))
    };
    assert!(page("netloom.1").contains(".TH netloom 1"));
    for command in [
        "validate", "plan", "apply", "destroy", "status", "exec", "graph", "man",
    ] {
        let text = page(&format!("netloom-{command}.1"));
        assert!(text.contains(&format!(".TH netloom-{command} 1")), "{text}");
    }
    // Each page is its command's: apply's flags are on apply's page only.
    assert!(page("netloom-apply.1").contains("\\-\\-dry\\-run"));
    assert!(page("netloom-plan.1").contains("\\-\\-out"));
    assert!(!page("netloom-status.1").contains("\\-\\-dry\\-run"));
    assert!(!files.contains(&"netloom-help.1".to_string()), "{files:?}");

    let refused = Command::new(netloom_bin())
        .args(["man", "--dir", "/dev/null"])
        .output()
        .expect("netloom runs");
    assert_exit(&refused, 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot write the man pages"));
}

/// A file with mistakes, so that diagnostics (coloured on a terminal) are shown.
const BROKEN: &str = "name: lab\nbogus: 1\n";

#[test]
fn nothing_is_coloured_off_a_terminal() {
    let mut validate = Command::new(netloom_bin());
    validate.args(["-vvv", "validate", "-"]);
    let output = assert_cmd::Command::from_std(validate)
        .write_stdin(BROKEN)
        .output()
        .expect("netloom runs");
    assert_exit(&output, 1);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("bogus"), "{said}");
    assert!(!said.contains(ESC), "{said:?}");

    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    // Logs at every level, and the reports, through pipes.
    let plan = sandbox.netloom(&["-vvv", "plan", "examples/seed.yaml"]);
    assert_ok(&plan);
    for stream in [&plan.stdout, &plan.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(ESC), "{text:?}");
    }
    assert!(String::from_utf8_lossy(&plan.stderr).contains("DEBUG"));
}

#[test]
fn no_color_turns_colour_off_even_on_a_terminal() {
    // `script` gives netloom a terminal; without it there is nothing to test.
    let on_a_terminal = |no_color: Option<&str>| {
        let file = std::env::temp_dir().join(format!("netloom-broken-{}.yaml", std::process::id()));
        std::fs::write(&file, BROKEN).unwrap();
        let line = format!("{} validate {}", netloom_bin().display(), file.display());
        let mut script = Command::new("script");
        script
            .args(["-qec", &line, "/dev/null"])
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let output = script.output();
        std::fs::remove_file(&file).unwrap();
        output
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(coloured) = on_a_terminal(None) else {
        eprintln!("SKIPPED: no `script` to run netloom on a terminal");
        return;
    };
    assert!(coloured.contains("bogus"), "{coloured}");
    assert!(
        coloured.contains(ESC),
        "on a terminal, diagnostics are coloured"
    );
    let plain = on_a_terminal(Some("1")).unwrap();
    assert!(plain.contains("bogus"), "{plain}");
    assert!(!plain.contains(ESC), "{plain:?}");
}

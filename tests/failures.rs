//! When things go wrong: an invalid file changes nothing; a kernel error
//! in the middle of an apply names the object, the operation and the
//! kernel's reason and says what was and was not done, and the next apply
//! finishes the job; a run killed with SIGKILL at any point is finished by
//! the next one, and so is one stopped by SIGINT or SIGTERM (which says
//! what is left); one lock serialises runs on a state dir.

mod common;
mod support;

use std::fmt::Write;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::picture::picture;
use common::{Sandbox, addresses, apply_converged, assert_exit, assert_ok};
use support::{
    assert_nothing_left, assert_same, json, namespaces, settle, snapshot, state_files, stderr,
    topology_file,
};

/// `file:line:column` of the first occurrence of `token` in `text`.
fn position(file: &str, text: &str, token: &str) -> String {
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find(token).map(|c| (i + 1, c + 1)))
        .unwrap_or_else(|| panic!("{token} is not in the text"));
    format!("{file}:{line}:{column}")
}

#[test]
fn an_invalid_file_is_refused_and_changes_nothing() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    // Something to lose: an applied topology, and a hand-made bridge.
    sandbox.sh("ip link add foreign0 type bridge && ip addr add 10.98.0.1/24 dev foreign0");
    apply_converged(&sandbox, "examples/seed.yaml");
    settle(&sandbox);
    let before = snapshot(&sandbox);
    let record = sandbox.sh("cat /run/netloom/*");

    let seed = std::fs::read_to_string(common::root().join("examples/seed.yaml")).unwrap();
    // An unknown key, a semantic error (an address used twice) in the
    // applied topology itself, and broken YAML.
    let unknown_key = seed.replace(
        "    addresses: [10.0.0.1/24]\n",
        "    addresses: [10.0.0.1/24]\n    colour: blue\n",
    );
    let duplicate = seed.replace("10.0.0.2/24", "10.0.0.1/24");
    let broken = seed.replace("[10.0.0.2/24]", "[10.0.0.2/24 }");
    let cases = [
        ("invalid-key.yaml", &unknown_key, "colour"),
        (
            "invalid-duplicate.yaml",
            &duplicate,
            "[10.0.0.1/24]\n    routes",
        ),
        ("invalid-yaml.yaml", &broken, " }"),
    ];
    for (name, text, token) in cases {
        let file = topology_file(name, text);
        // The duplicate is the second use of the address.
        let at = if name == "invalid-duplicate.yaml" {
            let pod = text.find("pods:").unwrap();
            let column_of = &text[pod..];
            let line = text[..pod].lines().count()
                + column_of[..column_of.find("[10.0.0.1/24]").unwrap()]
                    .lines()
                    .count();
            let col = text
                .lines()
                .nth(line - 1)
                .unwrap()
                .find("10.0.0.1/24")
                .unwrap()
                + 1;
            format!("{file}:{line}:{col}")
        } else if name == "invalid-yaml.yaml" {
            // The parser points somewhere on the broken line.
            let line = text.lines().position(|l| l.contains(token)).unwrap() + 1;
            format!("{file}:{line}:")
        } else {
            position(&file, text, token)
        };
        for command in [
            vec!["apply"],
            vec!["apply", "--adopt"],
            vec!["plan"],
            vec!["destroy"],
        ] {
            let mut args = command.clone();
            args.push(&file);
            let run = sandbox.netloom(&args);
            assert_exit(&run, 1);
            assert!(
                stderr(&run).contains(&at),
                "`netloom {}` should point at {at}:\n{}",
                command.join(" "),
                stderr(&run)
            );
        }
        // The same from standard input.
        let run = sandbox.netloom_stdin(&["apply", "-"], text);
        assert_exit(&run, 1);
        let stdin_at = at.replacen(&file, "<stdin>", 1);
        assert!(stderr(&run).contains(&stdin_at), "{}", stderr(&run));
    }
    assert_same(&before, &snapshot(&sandbox), "after the invalid files");
    assert_eq!(sandbox.sh("cat /run/netloom/*"), record, "the state record");
    assert_exit(
        &sandbox.netloom(&["plan", "--detailed-exitcode", "examples/seed.yaml"]),
        0,
    );
}

/// A pod whose IPv6 is disabled by its own sysctl cannot take its IPv6
/// address: the kernel refuses with EACCES in the middle of the apply.
const IPV6_OFF: &str = r#"
name: v6off
pods:
  v6-a:
    interfaces:
      eth0: { addresses: [10.6.0.1/24, "fd00:6::1/64"] }
    sysctls:
      net.ipv6.conf.all.disable_ipv6: "1"
  v6-b:
    interfaces:
      eth0: { addresses: [10.6.0.2/24, "fd00:6::2/64"] }
links:
  - endpoints: [v6-a:eth0, v6-b:eth0]
"#;

#[test]
fn a_kernel_error_names_object_operation_and_reason_and_the_next_apply_finishes() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let broken = topology_file("v6off-broken.yaml", IPV6_OFF);
    let run = sandbox.netloom(&["apply", &broken]);
    assert_exit(&run, 1);
    let err = stderr(&run);
    // The object, the operation, the kernel's reason.
    assert!(
        err.contains("address v6-a/eth0 fd00:6::1"),
        "names the object:\n{err}"
    );
    assert!(err.contains("add address"), "names the operation:\n{err}");
    assert!(
        err.contains("os error 13"),
        "gives the kernel's errno:\n{err}"
    );
    assert!(
        !err.contains("CAP_NET_ADMIN"),
        "root lacks no capability:\n{err}"
    );
    // What was done and what was not.
    assert!(err.contains("done     + link v6-a/eth0"), "{err}");
    assert!(
        err.contains("FAILED   + address v6-a/eth0 fd00:6::1"),
        "{err}"
    );
    assert!(err.contains("run `netloom apply` again"), "{err}");
    // The kernel agrees: everything but that address is there.
    assert_eq!(addresses(&sandbox, "v6-a", "eth0"), ["10.6.0.1/24"]);
    assert_eq!(
        addresses(&sandbox, "v6-b", "eth0"),
        ["10.6.0.2/24", "fd00:6::2/64"]
    );

    // The same failure for machines.
    let run = sandbox.netloom(&["apply", "--output", "json", &broken]);
    assert_exit(&run, 1);
    let doc = json(&run);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("address v6-a/eth0 fd00:6::1"),
        "{doc:#}"
    );
    assert_eq!(doc["verified"], false);
    let failed: Vec<&serde_json::Value> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["done"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{doc:#}");
    assert_eq!(failed[0]["kind"], "address");

    // Fix the cause; one apply finishes the job.
    let fixed = topology_file(
        "v6off-fixed.yaml",
        &IPV6_OFF.replace("disable_ipv6: \"1\"", "disable_ipv6: \"0\""),
    );
    apply_converged(&sandbox, &fixed);
    assert_eq!(
        addresses(&sandbox, "v6-a", "eth0"),
        ["10.6.0.1/24", "fd00:6::1/64"]
    );
    assert_exit(&sandbox.netloom(&["status", &fixed]), 0);
    assert_ok(&sandbox.netloom(&["destroy", &fixed]));
    assert_nothing_left(&sandbox);
}

/// A sysctl the validator accepts (any `net.*` key) but this kernel lacks:
/// refused before anything changes (issue 7: it used to fail mid-apply,
/// after the namespaces were made), and dropping it converges.
#[test]
fn a_missing_sysctl_is_refused_before_anything_changes_and_dropping_it_converges() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let text = "name: knob\npods:\n  kn-a:\n    interfaces:\n      eth0: { addresses: [10.7.0.1/24] }\n    sysctls:\n      net.ipv4.conf.all.no_such_knob: \"1\"\n  kn-b:\n    interfaces:\n      eth0: { addresses: [10.7.0.2/24] }\nlinks:\n  - endpoints: [kn-a:eth0, kn-b:eth0]\n";
    let broken = topology_file("knob-broken.yaml", text);
    assert_ok(&sandbox.netloom(&["validate", &broken]));
    let before = common::everything(&sandbox);
    let run = sandbox.netloom(&["apply", &broken]);
    assert_exit(&run, 1);
    let err = stderr(&run);
    assert!(
        err.contains(
            "`net.ipv4.conf.all.no_such_knob` in netns kn-a: this kernel has no such sysctl"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(common::everything(&sandbox), before, "the kernel changed");

    let fixed = topology_file(
        "knob-fixed.yaml",
        &text.replace(
            "    sysctls:\n      net.ipv4.conf.all.no_such_knob: \"1\"\n",
            "",
        ),
    );
    apply_converged(&sandbox, &fixed);
    assert_eq!(addresses(&sandbox, "kn-a", "eth0"), ["10.7.0.1/24"]);
    assert_ok(&sandbox.netloom(&["destroy", &fixed]));
    assert_nothing_left(&sandbox);
}

/// `count` pods on one bridge, each with an address and a default route.
fn many_pods(name: &str, count: usize) -> String {
    let mut text =
        format!("name: {name}\nbridges:\n  many0:\n    addresses: [10.20.0.1/16]\npods:\n");
    for i in 0..count {
        let _ = write!(
            text,
            "  {name}-{i}:\n    interfaces:\n      eth0: {{ bridge: many0, addresses: [10.20.{}.{}/16] }}\n    routes:\n      - {{ to: default, via: 10.20.0.1 }}\n",
            1 + i / 200,
            10 + i % 200
        );
    }
    text
}

/// Starts `netloom ARGS` in the background and kills it with SIGKILL as
/// soon as the shell condition `when` holds; returns netloom's exit status
/// (137 if it was killed).
fn kill_when(sandbox: &Sandbox, args: &str, when: &str) -> i32 {
    let bin = common::netloom_bin();
    let script = format!(
        "{} {args} >/dev/null 2>&1 & pid=$!\n\
         until {when}; do :; done\n\
         kill -9 $pid; wait $pid; echo $?",
        bin.display()
    );
    sandbox.sh(&script).trim().parse().expect("an exit status")
}

#[test]
fn an_apply_killed_midway_is_finished_by_the_next() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = topology_file("crash-apply.yaml", &many_pods("crash", 100));
    // Killed at ever later points of the same work: once some namespaces
    // exist, then with some and with most of the veths made (the last ones
    // of these may find their condition true at once, and die at start).
    for when in [
        "[ $(ls /run/netns | wc -l) -ge 20 ]",
        "[ $(ip -o link | wc -l) -ge 40 ]",
        "[ $(ip -o link | wc -l) -ge 80 ]",
    ] {
        let status = kill_when(&sandbox, &format!("apply {file}"), when);
        assert_eq!(status, 137, "the apply was killed ({when})");
        // Half-made, and plan says so: no conflict with its own leftovers.
        let plan = sandbox.netloom(&["plan", "--detailed-exitcode", &file]);
        assert_exit(&plan, 2);
    }
    assert_ne!(namespaces(&sandbox).len(), 0);

    apply_converged(&sandbox, &file);
    assert_exit(&sandbox.netloom(&["status", &file]), 0);
    assert_eq!(namespaces(&sandbox).len(), 100);
    for i in [0, 57, 99] {
        assert_eq!(
            addresses(&sandbox, &format!("crash-{i}"), "eth0"),
            [format!("10.20.1.{}/16", 10 + i)]
        );
    }
    assert_ok(&sandbox.netloom(&["destroy", &file]));
    assert_nothing_left(&sandbox);
}

/// kill -9 between creating /run/netns/NAME and mounting the namespace
/// on it leaves an empty file: the next run must not trip over it.
#[test]
fn the_file_of_a_namespace_creation_killed_half_way_is_replaced() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    sandbox.sh("touch /run/netns/test && chmod 0 /run/netns/test");
    assert_exit(
        &sandbox.netloom(&["plan", "--detailed-exitcode", "examples/seed.yaml"]),
        2,
    );
    apply_converged(&sandbox, "examples/seed.yaml");
    assert_eq!(addresses(&sandbox, "test", "eth0"), ["10.0.0.2/24"]);
    assert_ok(&sandbox.netloom(&["destroy", "examples/seed.yaml"]));
    assert_nothing_left(&sandbox);
}

#[test]
fn a_destroy_killed_midway_is_finished_by_the_next() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = topology_file("crash-destroy.yaml", &many_pods("wreck", 100));
    assert_ok(&sandbox.netloom(&["apply", &file]));
    // Killed a little into the apply after a change of every pod's route,
    // then in the middle of a destroy.
    let changed = topology_file(
        "crash-destroy-changed.yaml",
        &many_pods("wreck", 100).replace("to: default", "to: 10.21.0.0/16"),
    );
    let status = kill_when(
        &sandbox,
        &format!("apply {changed}"),
        "ip -n wreck-0 route show 10.21.0.0/16 | grep -q via",
    );
    assert_eq!(status, 137, "the apply was killed midway");
    apply_converged(&sandbox, &changed);

    let status = kill_when(
        &sandbox,
        &format!("destroy {changed}"),
        "[ $(ls /run/netns | wc -l) -le 70 ]",
    );
    assert_eq!(status, 137, "the destroy was killed midway");
    assert_ne!(namespaces(&sandbox).len(), 0);
    assert_ok(&sandbox.netloom(&["destroy", &changed]));
    assert_nothing_left(&sandbox);
}

/// How an apply that was sent a signal ended.
struct Stopped {
    code: Option<i32>,
    stderr: String,
}

/// Runs `netloom -vvv apply [FLAGS] FILE` and sends it `signal` as soon
/// as it logs its first kernel request: the run is under way, whatever
/// the machine's load. The trace lines go to stderr, with the run's message.
fn signal_once_under_way(sandbox: &Sandbox, flags: &[&str], file: &str, signal: i32) -> Stopped {
    let mut child = sandbox
        .command(common::netloom_bin())
        .args(["-vvv", "apply"])
        .args(flags)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netloom starts");
    let mut stderr = String::new();
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    for line in lines.by_ref() {
        let line = line.expect("stderr is text");
        let started = line.contains("TRACE request:");
        stderr.push_str(&line);
        stderr.push('\n');
        if started {
            // nsenter execs netloom (no fork): the child is netloom itself.
            // SAFETY: kill has no preconditions; the pid is our own child's.
            unsafe { libc::kill(child.id() as i32, signal) };
            break;
        }
    }
    for line in lines {
        stderr.push_str(&line.expect("stderr is text"));
        stderr.push('\n');
    }
    let code = child.wait().expect("netloom ends").code();
    Stopped { code, stderr }
}

/// SIGINT (Ctrl-C) or SIGTERM in the middle of an apply of many pods:
/// exit 128+N, a message of what was and was not done (by file object;
/// with `--objects` by kernel object) that says the next apply finishes
/// it; one apply then finishes it, and the kernel is what a fresh apply
/// of the file makes. A run that ended before the signal stopped it is
/// tried again with more pods, never passed.
fn an_apply_stopped_by(signal: i32, name: &str, flags: &[&str]) {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let (pods, file, stopped) = [100, 200, 400]
        .into_iter()
        .find_map(|pods| {
            let file = topology_file(&format!("stopped-{pods}.yaml"), &many_pods("stopped", pods));
            let stopped = signal_once_under_way(&sandbox, flags, &file, signal);
            if stopped.code == Some(0) {
                // Done before the signal: start from nothing, with more work.
                assert_ok(&sandbox.netloom(&["destroy", &file]));
                return None;
            }
            Some((pods, file, stopped))
        })
        .expect("the apply always finished before the signal could stop it");
    let err = &stopped.stderr;
    assert_eq!(stopped.code, Some(128 + signal), "{err}");
    assert!(
        err.contains(&format!(
            "{name}: stopping once the changes under way are done"
        )),
        "{err}"
    );
    let counts = err
        .lines()
        .find_map(|line| line.strip_prefix("stopped: "))
        .and_then(|rest| {
            let (done, rest) = rest.split_once(" of ")?;
            let (total, _) = rest.split_once(' ')?;
            Some((done.parse::<usize>().ok()?, total.parse::<usize>().ok()?))
        });
    let Some((done, total)) = counts else {
        panic!("no `stopped: D of N changes were made` line:\n{err}");
    };
    assert!(0 < done && done < total, "{done} of {total} done:\n{err}");
    let listed = |what: &str| err.lines().filter(|l| l.starts_with(what)).count();
    if flags.contains(&"--objects") {
        assert_eq!(listed("  done     "), done, "{err}");
        assert_eq!(listed("  not done "), total - done, "{err}");
    } else {
        // One line per file object: the bridge and each pod.
        let (whole, partly, not) = (
            listed("  done      "),
            listed("  partly    "),
            listed("  not done  "),
        );
        assert_eq!(whole + partly + not, pods + 1, "{err}");
        assert!(whole + partly > 0 && partly + not > 0, "{err}");
        assert!(
            err.contains("  partly    pod stopped-") || err.contains("  done      pod stopped-"),
            "{err}"
        );
    }
    assert!(
        err.contains("the next `netloom apply` finishes it"),
        "{err}"
    );

    apply_converged(&sandbox, &file);
    settle(&sandbox);
    let Some(fresh) = Sandbox::new() else {
        return;
    };
    assert_ok(&fresh.netloom(&["apply", &file]));
    settle(&fresh);
    let (resumed, alone) = (picture(&sandbox), picture(&fresh));
    assert!(
        resumed == alone,
        "an apply stopped by {name} and finished differs from a fresh one\n--- finished\n{resumed}--- fresh\n{alone}"
    );
}

#[test]
fn an_apply_stopped_by_sigint_says_what_is_left_and_the_next_finishes_it() {
    an_apply_stopped_by(libc::SIGINT, "SIGINT", &[]);
}

#[test]
fn an_apply_stopped_by_sigterm_says_what_is_left_and_the_next_finishes_it() {
    an_apply_stopped_by(libc::SIGTERM, "SIGTERM", &["--objects"]);
}

#[test]
fn concurrent_runs_on_one_state_dir_take_turns() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let many = topology_file("turns.yaml", &many_pods("turns", 40));
    let bin = common::netloom_bin();
    let bin = bin.display();
    // Two different topologies, and the same one twice, at once.
    let statuses = sandbox.sh(&format!(
        "{bin} apply {many} >/dev/null 2>&1 & a=$!\n\
         {bin} apply examples/seed.yaml >/dev/null 2>&1 & b=$!\n\
         {bin} apply {many} >/dev/null 2>&1 & c=$!\n\
         wait $a; echo $?; wait $b; echo $?; wait $c; echo $?"
    ));
    assert_eq!(
        statuses.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "0"]
    );
    for file in [many.as_str(), "examples/seed.yaml"] {
        assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", file]), 0);
    }
    assert_eq!(namespaces(&sandbox).len(), 41);
}

#[test]
fn a_held_lock_and_no_patience_fails_naming_the_lock() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = topology_file("lock.yaml", &many_pods("lock", 100));
    let bin = common::netloom_bin();
    // Another netloom run holds the lock: stop it (SIGSTOP) right there.
    let pid = sandbox.sh(&format!(
        "{} apply {file} >/dev/null 2>&1 & pid=$!\n\
         until ! flock -n /run/netloom/lock true 2>/dev/null; do :; done\n\
         kill -STOP $pid; echo $pid",
        bin.display()
    ));
    let pid = pid.trim();
    assert!(
        !sandbox.try_sh("flock -n /run/netloom/lock true"),
        "the stopped run holds the lock"
    );
    let before = snapshot(&sandbox);

    let run = sandbox.netloom(&["apply", "--lock-timeout", "0", "examples/seed.yaml"]);
    assert_exit(&run, 1);
    let err = stderr(&run);
    assert!(
        err.contains("lock") && err.contains("/run/netloom"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {pid}")),
        "names the holder: {err}"
    );
    let run = sandbox.netloom(&[
        "apply",
        "--lock-timeout",
        "0",
        "--output",
        "json",
        "examples/seed.yaml",
    ]);
    assert_exit(&run, 1);
    assert!(json(&run)["error"].as_str().unwrap().contains("lock"));
    assert!(!namespaces(&sandbox).contains(&"test".to_string()));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        snapshot(&sandbox).keys().collect::<Vec<_>>()
    );

    // Let it go: it finishes, and then the other run gets its turn.
    sandbox.sh(&format!(
        "kill -CONT {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.05; done"
    ));
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", &file]), 0);
    assert_ok(&sandbox.netloom(&["apply", "--lock-timeout", "0", "examples/seed.yaml"]));
    let records = state_files(&sandbox);
    let records = records.lines().filter(|file| file.ends_with(".json"));
    assert_eq!(records.count(), 2, "two records");
}

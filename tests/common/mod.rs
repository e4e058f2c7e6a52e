//! Sandboxes for kernel tests (docs/TESTING.md): each test gets its own network
//! and mount namespace, with a private tmpfs on /run (so /run/netns and
//! the state dir /run/netloom are its own), held by a sleeping child that
//! is killed on drop. netloom and `ip` run inside it through nsenter; the
//! machine's own network is never touched.
//!
//! Without root the kernel tests skip, loudly; with
//! NETLOOM_REQUIRE_KERNEL_TESTS=1 (set by .ci/run) they fail instead.

#![allow(dead_code)] // each test binary uses a different part

pub mod picture;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub struct Sandbox {
    holder: Child,
    pid: u32,
}

/// The root of the repository (examples/, topologies/).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn netloom_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netloom"))
}

impl Sandbox {
    /// A fresh sandbox, or `None` (after saying why) when kernel tests
    /// cannot run here.
    pub fn new() -> Option<Sandbox> {
        if let Some(reason) = cannot_run() {
            if std::env::var_os("NETLOOM_REQUIRE_KERNEL_TESTS").is_some() {
                panic!("kernel test cannot run: {reason} (NETLOOM_REQUIRE_KERNEL_TESTS is set)");
            }
            eprintln!("SKIPPED kernel test: {reason}");
            return None;
        }
        let script = "mount -t tmpfs -o size=64m netloom-test /run && mkdir -p /run/netns /run/netloom \
                      && ip link set lo up && echo ready && exec sleep 100000";
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare starts");
        let mut ready = String::new();
        BufReader::new(holder.stdout.as_mut().expect("piped"))
            .read_line(&mut ready)
            .expect("sandbox says ready");
        assert_eq!(ready.trim(), "ready", "the sandbox did not start");
        let pid = holder.id();
        Some(Sandbox { holder, pid })
    }

    /// A command run inside the sandbox.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        // Entering the mount namespace resets the working directory:
        // set it again, so relative paths (examples/...) work.
        command
            .args(["-t", &self.pid.to_string(), "-n", "-m"])
            .arg(format!("--wd={}", root().display()))
            .arg("--")
            .arg(program);
        command
    }

    /// Runs netloom inside the sandbox.
    pub fn netloom(&self, args: &[&str]) -> Output {
        self.command(netloom_bin())
            .args(args)
            .output()
            .expect("netloom runs")
    }

    /// Runs netloom with a topology given on standard input.
    pub fn netloom_stdin(&self, args: &[&str], topology: &str) -> Output {
        let mut child = self
            .command(netloom_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("netloom runs");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(topology.as_bytes())
            .expect("topology written");
        child.wait_with_output().expect("netloom finishes")
    }

    /// Runs a shell script inside the sandbox; panics if it fails.
    pub fn sh(&self, script: &str) -> String {
        let output = self
            .command("sh")
            .args(["-c", script])
            .output()
            .expect("sh runs");
        assert!(
            output.status.success(),
            "`{script}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a shell script inside the sandbox, returning whether it worked.
    pub fn try_sh(&self, script: &str) -> bool {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("sh runs")
            .status
            .success()
    }

    /// `ip -j ARGS` inside the sandbox, parsed.
    pub fn ip_json(&self, args: &str) -> Value {
        let text = self.sh(&format!("ip -j {args}"));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("ip -j {args}: {err}: {text}"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Why kernel tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (kernel tests need CAP_NET_ADMIN and CAP_SYS_ADMIN)".to_string());
    }
    for tool in ["unshare", "nsenter", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// Asserts a command succeeded, showing its output when it did not.
#[track_caller]
pub fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts a command exited with `code`.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Applies, then proves idempotence: `plan --detailed-exitcode` exits 0
/// and a second apply changes nothing.
#[track_caller]
pub fn apply_converged(sandbox: &Sandbox, file: &str) {
    assert_ok(&sandbox.netloom(&["apply", file]));
    assert_exit(&sandbox.netloom(&["plan", "--detailed-exitcode", file]), 0);
    let again = assert_ok(&sandbox.netloom(&["apply", "--output", "json", file]));
    let doc: Value = serde_json::from_str(&again).expect("apply json");
    assert_eq!(
        doc["summary"],
        serde_json::json!({"create": 0, "update": 0, "delete": 0}),
        "{doc:#}"
    );
}

/// The links of a namespace (`""`: the sandbox's own) by name.
pub fn links(sandbox: &Sandbox, ns: &str) -> Vec<Value> {
    let prefix = if ns.is_empty() {
        String::new()
    } else {
        format!("-n {ns} ")
    };
    sandbox
        .ip_json(&format!("{prefix}-d link show"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// One link of a namespace by name.
#[track_caller]
pub fn link(sandbox: &Sandbox, ns: &str, name: &str) -> Value {
    links(sandbox, ns)
        .into_iter()
        .find(|l| l["ifname"] == name)
        .unwrap_or_else(|| panic!("no link {name} in {ns:?}"))
}

/// The addresses (`ip/prefix`) of an interface, without link-local ones.
pub fn addresses(sandbox: &Sandbox, ns: &str, ifname: &str) -> Vec<String> {
    let prefix = if ns.is_empty() {
        String::new()
    } else {
        format!("-n {ns} ")
    };
    let info = sandbox.ip_json(&format!("{prefix}addr show dev {ifname}"));
    info[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// A complete snapshot of the sandbox's network objects, for "untouched
/// byte for byte" checks: every namespace's links, addresses and routes.
/// Without the operational state: the kernel moves a link that was just
/// set up from UNKNOWN to UP by itself a moment later (linkwatch), and
/// netloom sets only the administrative UP flag, which stays in.
pub fn everything(sandbox: &Sandbox) -> String {
    sandbox.sh(
        "for ns in '' $(ls /run/netns); do \
           if [ -z \"$ns\" ]; then n=''; else n=\"-n $ns\"; fi; \
           echo \"== $ns\"; ip $n -d -j link show; ip $n -j addr show; ip $n -j route show table all; \
         done | sed 's/\"operstate\":\"[A-Z]*\",//g'",
    )
}

/// `everything` once the kernel has settled by itself: a veth just set up
/// gains its carrier, and with it a multicast route, a moment after
/// netloom is done. The same picture twice, 300 ms apart (at most 10 s).
pub fn settled_everything(sandbox: &Sandbox) -> String {
    let mut last = everything(sandbox);
    for _ in 0..33 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = everything(sandbox);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Set in the copy of the test binary that runs inside a sandbox.
const INSIDE: &str = "NETLOOM_TEST_INSIDE_SANDBOX";

/// Makes the calling test run inside a sandbox of its own: outside, runs
/// this test binary again inside one (just `test`, by its exact name) and
/// returns `false`, after checking that it passed there; inside, returns
/// `true`, and the test goes on with the kernel layer as a library.
#[track_caller]
pub fn inside_sandbox(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let Some(sandbox) = Sandbox::new() else {
        return false;
    };
    let exe = std::env::current_exe().expect("the test binary");
    let output = sandbox
        .command(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("the test binary runs in the sandbox");
    let stdout = assert_ok(&output);
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run inside the sandbox:\n{stdout}"
    );
    false
}

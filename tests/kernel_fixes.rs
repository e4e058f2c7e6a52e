//! The kernel layer where it used to go wrong: exact route deletes and
//! exclusive route creates, declared IPv6 link-local addresses,
//! promote_secondaries on netloom's own links in a namespace it did not
//! create, leftover namespace files, veth pairing along pod chains. Each
//! test runs in its own sandbox and reads the result back with `ip -j`.
//!
//! Tests that call the kernel layer directly (not through the binary) run
//! the test binary again inside their sandbox: see `inside_sandbox`.

mod common;

use std::time::Duration;

use common::{Sandbox, assert_ok};
use netloom::kernel::Kernel;
use netloom::model::ResourceId;

/// Set in the copy of the test binary that runs inside a sandbox.
const INSIDE: &str = "NETLOOM_TEST_INSIDE_SANDBOX";

/// Makes the calling test run inside a sandbox of its own: outside, runs
/// this test binary again inside one (just `test`, by its exact name) and
/// returns `false`, after checking that it passed there; inside, returns
/// `true`, and the test goes on with the kernel layer as a library.
#[track_caller]
fn inside_sandbox(test: &str) -> bool {
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A namespace file left empty by a creation killed half way is no
/// namespace: an interface "in" it is gone, not waited for (entering it
/// would fail).
#[test]
fn await_gone_takes_an_empty_namespace_file_for_no_namespace() {
    if !inside_sandbox("await_gone_takes_an_empty_namespace_file_for_no_namespace") {
        return;
    }
    std::fs::write("/run/netns/half-made", "").expect("an empty namespace file");
    let kernel = Kernel::new().expect("kernel");
    let gone = [ResourceId::link("half-made", "eth0")];
    runtime()
        .block_on(kernel.await_gone(&gone, Duration::from_secs(1)))
        .expect("an interface of no namespace is gone");
}

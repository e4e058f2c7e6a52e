//! A run that fails half way (EMFILE under a low open-file limit) is
//! recovered like a killed one: the error names the limit, the next run
//! claims what the failed one made and converges, and destroy removes it
//! all (issue 7, class 6).

mod common;

use std::process::Output;

use common::{Sandbox, assert_ok, netloom_bin};

/// Enough pods that a low limit runs out part way through.
fn many_pods() -> String {
    let mut text =
        String::from("name: fdlimit\nbridges:\n  br0: { addresses: [10.50.0.1/24] }\npods:\n");
    for i in 0..40 {
        text.push_str(&format!(
            "  p{i}:\n    interfaces:\n      eth0: {{ bridge: br0, addresses: [10.50.0.{}/24] }}\n",
            10 + i
        ));
    }
    text
}

fn namespaces(sandbox: &Sandbox) -> usize {
    sandbox
        .sh("ls /run/netns 2>/dev/null || true")
        .split_whitespace()
        .count()
}

fn limited_apply(sandbox: &Sandbox, file: &str, limit: u32) -> Output {
    sandbox
        .command("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(netloom_bin())
        .args(["apply", file])
        .output()
        .expect("prlimit runs")
}

#[test]
fn a_run_that_hits_the_open_file_limit_is_recovered_by_the_next() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let file = std::env::temp_dir().join(format!("netloom-fdlimit-{}.yaml", std::process::id()));
    std::fs::write(&file, many_pods()).unwrap();
    let file = file.to_str().unwrap();

    let failed = limited_apply(&sandbox, file, 48);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RLIMIT_NOFILE"),
        "the error names the limit: {stderr}"
    );
    let left = namespaces(&sandbox);
    assert!(
        left > 0,
        "the failed run made nothing: the test tests nothing"
    );

    assert_ok(&sandbox.netloom(&["apply", file]));
    assert_eq!(namespaces(&sandbox), 40);
    assert_ok(&sandbox.netloom(&["destroy", file]));
    assert_eq!(namespaces(&sandbox), 0, "destroy left namespaces behind");
    let _ = std::fs::remove_file(file);
}

//! What contrib/ ships for running `netloom watch` on engines people already
//! run: the systemd unit is accepted by `systemd-analyze verify`, the
//! DaemonSet by an offline Kubernetes schema validator (kubernetes-validate,
//! which carries the schemas), the ConfigMap's topology by `netloom
//! validate`, and the Containerfile copies only what the repository has.
//!
//! A missing tool skips its test loudly; NETLOOM_REQUIRE_KERNEL_TESTS=1 (set
//! by .ci/run, which installs the tools) turns the skip into a failure.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{netloom_bin, root};

/// Whether `tool` is on PATH; if not, skips (or fails, in CI) saying how to
/// get it.
fn have(tool: &str, install: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let reason = format!("{tool} is not installed ({install})");
        if std::env::var_os("NETLOOM_REQUIRE_KERNEL_TESTS").is_some() {
            panic!("{reason}, and NETLOOM_REQUIRE_KERNEL_TESTS is set");
        }
        eprintln!("SKIPPED: {reason}");
    }
    found
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `systemd-analyze verify` of `unit` installed as `netloom-watch@cluster`.
/// verify insists that ExecStart's program exists, so it runs in a private
/// mount namespace where a tmpfs on /usr/local/bin holds the netloom just
/// built: the unit is checked as written, and the machine is not touched.
fn verify_unit(unit: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("netloom-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let installed = dir.join("netloom-watch@cluster.service");
    std::fs::write(&installed, unit).unwrap();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs netloom-unit-test /usr/local/bin \
             && cp \"$1\" /usr/local/bin/netloom \
             && systemd-analyze verify \"$2\"",
        )
        .arg("sh")
        .arg(netloom_bin())
        .arg(&installed)
        .output()
        .expect("unshare runs");
    std::fs::remove_dir_all(&dir).unwrap();
    output
}

#[test]
fn systemd_accepts_the_unit() {
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var_os("NETLOOM_REQUIRE_KERNEL_TESTS").is_some() {
            panic!("verifying the unit needs root (a private mount namespace)");
        }
        eprintln!("SKIPPED: verifying the unit needs root");
        return;
    }
    if !have("systemd-analyze", "apt-get install systemd") {
        return;
    }
    let unit = std::fs::read_to_string(root().join("contrib/netloom-watch@.service")).unwrap();
    let output = verify_unit(&unit);
    assert!(
        output.status.success() && text(&output).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&output)
    );
    // The check is strict enough to matter: a wrong value is reported.
    let broken = verify_unit(&unit.replace("Type=notify", "Type=notify-ready"));
    assert!(
        text(&broken).contains("Failed to parse service type"),
        "a bad Type= went unnoticed: {}",
        text(&broken)
    );
}

fn kubernetes_validate(manifest: &Path) -> Output {
    Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(manifest)
        .output()
        .expect("kubernetes-validate runs")
}

#[test]
fn the_daemonset_passes_the_kubernetes_schemas() {
    if !have("kubernetes-validate", "pip install kubernetes-validate") {
        return;
    }
    let manifest = root().join("contrib/kubernetes/daemonset.yaml");
    let output = kubernetes_validate(&manifest);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("passed"), "{}", text(&output));

    // A misspelt field fails: the schemas are really checked, strictly.
    let misspelt = std::env::temp_dir().join(format!("netloom-ds-{}.yaml", std::process::id()));
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &misspelt,
        original.replace("mountPropagation:", "mountPropagaton:"),
    )
    .unwrap();
    let output = kubernetes_validate(&misspelt);
    std::fs::remove_file(&misspelt).unwrap();
    assert!(!output.status.success(), "{}", text(&output));
}

#[test]
fn the_configmap_topology_is_valid() {
    let output = Command::new(netloom_bin())
        .arg("validate")
        .arg(root().join("contrib/kubernetes/topology.yaml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let kustomization =
        std::fs::read_to_string(root().join("contrib/kubernetes/kustomization.yaml")).unwrap();
    for listed in ["daemonset.yaml", "topology.yaml"] {
        assert!(kustomization.contains(&format!("- {listed}")), "{listed}");
    }
}

#[test]
fn the_containerfile_copies_what_the_repository_has() {
    let containerfile =
        std::fs::read_to_string(root().join("contrib/kubernetes/Containerfile")).unwrap();
    let sources: Vec<&str> = containerfile
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .filter(|rest| !rest.starts_with("--from"))
        .flat_map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert!(sources.contains(&"src"), "{sources:?}");
    for source in sources {
        assert!(root().join(source).exists(), "COPY {source}: no such path");
    }
}

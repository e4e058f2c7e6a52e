//! Kernel events (src/kernel/events.rs) against the real kernel. The library
//! is used in-process, so the test re-runs its own binary inside a sandbox
//! (tests/common/mod.rs) for the part that touches namespaces.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Sandbox;
use netloom::kernel::Kernel;
use netloom::kernel::events::{KernelEvents, NamespaceChange};

const INSIDE: &str = "NETLOOM_EVENTS_TEST_INSIDE_SANDBOX";
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn namespace_changes_and_deletion_are_reported() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let status = sandbox
        .command(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "inside_a_sandbox", "--ignored", "--nocapture"])
        .env(INSIDE, "1")
        .status()
        .expect("the test binary runs in the sandbox");
    assert!(status.success(), "the sandboxed half failed");
}

/// Runs `sh -c script` (already inside the sandbox).
fn sh(script: &str) {
    let output = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        output.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Takes events until `ns` has shown what `wanted` accepts.
async fn expect_change(
    events: &KernelEvents,
    ns: &str,
    what: &str,
    wanted: impl Fn(&NamespaceChange) -> bool,
) {
    let started = Instant::now();
    let mut seen: BTreeMap<String, NamespaceChange> = BTreeMap::new();
    loop {
        if seen.get(ns).is_some_and(&wanted) {
            return;
        }
        let left = PATIENCE.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, events.next()).await {
            Ok(taken) => {
                for (name, change) in taken {
                    eprintln!("event in {name:?}: {}", change.describe());
                    seen.entry(name).or_default().merge(&change);
                }
            }
            Err(_) => panic!("no {what} event in {ns:?}; saw {seen:?}"),
        }
    }
}

/// Whether interface `name` exists in the sandbox's own namespace.
fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
#[ignore = "runs inside the sandbox of namespace_changes_and_deletion_are_reported"]
fn inside_a_sandbox() {
    assert!(
        std::env::var_os(INSIDE).is_some(),
        "this half changes the network: it only runs inside a sandbox"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sh("ip netns add pod && ip link add v0 type veth peer name v1 netns pod");
        let kernel = Kernel::new().unwrap();
        let mut events = KernelEvents::new();
        events.subscribe(&kernel, "pod").await.unwrap();
        events.subscribe(&kernel, "").await.unwrap();
        assert_eq!(events.subscribed().len(), 2);

        sh("ip -n pod link set v1 mtu 1400");
        expect_change(&events, "pod", "link", |c| c.links).await;
        sh("ip -n pod addr add 10.9.0.1/24 dev v1");
        expect_change(&events, "pod", "address", |c| c.addresses).await;
        sh("ip -n pod link set lo up && ip -n pod route add 10.9.1.0/24 dev lo");
        expect_change(&events, "pod", "route", |c| c.routes).await;
        sh("ip netns exec pod sh -c 'echo 1 > /proc/sys/net/ipv4/conf/v1/forwarding'");
        expect_change(&events, "pod", "setting", |c| c.settings).await;
        sh("tc -n pod qdisc add dev v1 root tbf rate 1mbit burst 32kbit latency 400ms");
        expect_change(&events, "pod", "qdisc", |c| c.qdiscs).await;
        // The namespace netloom runs in is told apart from the named one.
        events.take();
        sh("ip link set v0 mtu 1300");
        expect_change(&events, "", "link", |c| c.links).await;

        // Deleted behind netloom's back: reported gone, while netloom's own
        // sockets still pin it (the peer in the sandbox stays)...
        sh("ip netns delete pod");
        expect_change(&events, "pod", "deletion", |c| c.gone).await;
        assert!(link_exists("v0"), "the namespace is still pinned");
        // ...and once let go, the kernel frees it, veth pair and all.
        events.unsubscribe("pod");
        kernel.release_namespace("pod");
        let started = Instant::now();
        while link_exists("v0") {
            assert!(
                started.elapsed() < PATIENCE,
                "v0 outlived its peer's namespace: something still holds it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(events.subscribed().len(), 1);
    });
}

//! The kernel session over a long life (what `watch` needs): a namespace
//! or an interface deleted and made again behind netloom's back is not
//! acted on through a stale handle, and an engine run leaves no namespace
//! worker behind. Each test runs the kernel layer as a library inside a
//! sandbox of its own (`common::inside_sandbox`).

mod common;

use common::inside_sandbox;
use netloom::kernel::{Kernel, Scope};
use netloom::model::{Action, Change, Kind, Resource, ResourceId};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `sh -c SCRIPT` in the calling process's namespace (a test inside
/// its sandbox); panics if it fails. Returns what it printed.
#[track_caller]
fn sh(script: &str) -> String {
    let output = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn set_mtu(ns: &str, ifname: &str, mtu: u32) -> Change {
    Change {
        action: Action::Update,
        id: ResourceId::new(ns, Kind::Mtu, ifname),
        from: None,
        to: Some(Resource::Mtu { mtu }),
        takes_along: Vec::new(),
    }
}

fn add_address(ns: &str, ifname: &str, address: &str) -> Change {
    let (name, resource) = Resource::address(ifname, address.parse().unwrap());
    Change {
        action: Action::Create,
        id: ResourceId::new(ns, Kind::Address, name),
        from: None,
        to: Some(resource),
        takes_along: Vec::new(),
    }
}

/// A namespace deleted and made again under the same name while the
/// session holds it: the next change goes to the new namespace, not to
/// the old one the session's worker kept alive.
#[test]
fn a_namespace_made_again_behind_the_sessions_back_is_attached_afresh() {
    if !inside_sandbox("a_namespace_made_again_behind_the_sessions_back_is_attached_afresh") {
        return;
    }
    sh("ip netns add again && ip -n again link add br0 type bridge");
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    rt.block_on(kernel.observe(&Scope::namespaces(["again".to_string()])))
        .expect("observe");
    sh("ip netns del again && ip netns add again && ip -n again link add br0 type bridge");
    rt.block_on(kernel.execute(&set_mtu("again", "br0", 1400)))
        .expect("the change goes to the namespace there is now");
    let shown = sh("ip -n again -o link show br0");
    assert!(shown.contains("mtu 1400"), "{shown}");
}

/// An interface deleted and made again behind the session's back has a
/// new ifindex: a change through the one learnt before would fail with
/// ENODEV (or hit another interface); the session looks it up again.
#[test]
fn an_interface_made_again_behind_the_sessions_back_is_found_again() {
    if !inside_sandbox("an_interface_made_again_behind_the_sessions_back_is_found_again") {
        return;
    }
    sh("ip link add d0 type bridge");
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    rt.block_on(kernel.observe(&Scope::namespaces([String::new()])))
        .expect("observe");
    sh("ip link del d0 && ip link add d1 type bridge && ip link add d0 type bridge");
    rt.block_on(kernel.execute(&add_address("", "d0", "10.9.0.1/24")))
        .expect("the address goes on the interface there is now");
    let shown = sh("ip -o addr show dev d0");
    assert!(shown.contains("10.9.0.1/24"), "{shown}");
    assert!(!sh("ip -o addr show dev d1").contains("10.9.0.1"));
}

/// The worker threads of the namespaces a session attached end when it
/// lets go (each thread inside a namespace would keep it alive).
#[test]
fn release_ends_every_namespace_worker() {
    if !inside_sandbox("release_ends_every_namespace_worker") {
        return;
    }
    sh("ip netns add w1 && ip netns add w2");
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let before = threads();
    let scope = Scope::namespaces(["w1".to_string(), "w2".to_string()]);
    rt.block_on(kernel.observe(&scope)).expect("observe");
    assert_eq!(threads(), before + 2, "one worker per namespace");
    kernel.release();
    // A released worker ends on its own thread: give it a moment to exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while threads() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(threads(), before, "the workers are gone");
}

/// A host namespace's link dump spans many datagrams (a thousand pods'
/// ports): observe reads it whole, decoding as it goes, and misses none.
#[test]
fn a_link_dump_of_many_datagrams_is_read_whole() {
    if !inside_sandbox("a_link_dump_of_many_datagrams_is_read_whole") {
        return;
    }
    let batch: String = (0..400)
        .map(|i| format!("link add many{i} type bridge\n"))
        .collect();
    sh(&format!("ip -batch - <<'EOF'\n{batch}EOF"));
    let kernel = Kernel::new().expect("kernel");
    let observed = runtime()
        .block_on(kernel.observe(&Scope::namespaces([String::new()])))
        .expect("observe");
    let links = observed
        .resources
        .keys()
        .filter(|id| id.kind == Kind::Link && id.name.starts_with("many"))
        .count();
    assert_eq!(links, 400, "every link of the dump is observed");
}

/// What a deleted namespace takes along (the host end of its veth) is
/// awaited until it is gone; one that stays is a timeout naming it.
#[test]
fn awaiting_teardown_waits_for_the_peers_and_names_one_that_stays() {
    if !inside_sandbox("awaiting_teardown_waits_for_the_peers_and_names_one_that_stays") {
        return;
    }
    sh(
        "ip netns add gone && ip link add h1 type veth peer name eth0 netns gone \
        && ip link add h2 type veth peer name eth1 netns gone && ip link add stays type bridge",
    );
    let kernel = Kernel::new().expect("kernel");
    let rt = runtime();
    sh("ip netns del gone");
    let ends = [ResourceId::link("", "h1"), ResourceId::link("", "h2")];
    rt.block_on(kernel.await_gone(&ends, std::time::Duration::from_secs(10)))
        .expect("the host ends go with the namespace");
    let shown = sh("ip -o link show");
    assert!(!shown.contains("h1") && !shown.contains("h2"), "{shown}");
    let err = rt
        .block_on(kernel.await_gone(
            &[ResourceId::link("", "stays")],
            std::time::Duration::from_millis(100),
        ))
        .expect_err("a link nobody deletes stays");
    assert!(err.to_string().contains("stays"), "{err}");
}

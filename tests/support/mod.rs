//! Helpers for the reconcile tests (issue #3), on top of `common`'s
//! sandbox: snapshots of the kernel read with `ip -j` (never with
//! netloom), topology variants in temporary files, `ip monitor` watches
//! that prove a run made no netlink writes, and TCP between pods from
//! threads that enter the pods' namespaces with setns.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Sandbox;

/// The parsed JSON document a `--output json` run printed.
#[track_caller]
pub fn json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a topology variant to a file of its own (under cargo's
/// per-test-target tmp dir, visible inside every sandbox) and returns its
/// absolute path.
pub fn topology_file(name: &str, text: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("netloom-tests");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("topology written");
    path.to_string_lossy().into_owned()
}

/// The named namespaces of the sandbox (`ip netns`), sorted.
pub fn namespaces(sandbox: &Sandbox) -> Vec<String> {
    let mut names: Vec<String> = sandbox
        .sh("ls /run/netns")
        .split_whitespace()
        .map(String::from)
        .collect();
    names.sort();
    names
}

fn ns_prefix(ns: &str) -> String {
    if ns.is_empty() {
        String::new()
    } else {
        format!("-n {ns} ")
    }
}

/// Drops what changes by itself while nothing happens: bridge and port
/// timers (`gc_timer`, `hello_timer`, ...) count down on their own.
fn without_timers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !key.ends_with("_timer"));
            map.values_mut().for_each(without_timers);
        }
        Value::Array(items) => items.iter_mut().for_each(without_timers),
        _ => {}
    }
}

/// One namespace as the kernel shows it: `ip -d -j link`, `ip -j addr`
/// and every route of every table, timers left out.
pub fn ns_snapshot(sandbox: &Sandbox, ns: &str) -> Value {
    let n = ns_prefix(ns);
    let mut doc = serde_json::json!({
        "links": sandbox.ip_json(&format!("{n}-d link show")),
        "addresses": sandbox.ip_json(&format!("{n}addr show")),
        "routes4": sandbox.ip_json(&format!("{n}-4 route show table all")),
        "routes6": sandbox.ip_json(&format!("{n}-6 route show table all")),
    });
    without_timers(&mut doc);
    doc
}

/// Every namespace of the sandbox (`""`: its own), for "nothing changed"
/// checks.
pub fn snapshot(sandbox: &Sandbox) -> BTreeMap<String, Value> {
    std::iter::once(String::new())
        .chain(namespaces(sandbox))
        .map(|ns| {
            let snap = ns_snapshot(sandbox, &ns);
            (ns, snap)
        })
        .collect()
}

/// Asserts two snapshots are equal, naming the first namespace that differs.
#[track_caller]
pub fn assert_same(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>, what: &str) {
    let names = |s: &BTreeMap<String, Value>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "{what}: the namespaces differ");
    for (ns, snap) in before {
        for part in ["links", "addresses", "routes4", "routes6"] {
            assert_eq!(
                snap[part], after[ns][part],
                "{what}: {part} of namespace {ns:?} differ"
            );
        }
    }
}

/// The interface names of a namespace, in ifindex order.
pub fn link_names(sandbox: &Sandbox, ns: &str) -> Vec<String> {
    crate::common::links(sandbox, ns)
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_string())
        .collect()
}

/// (namespace, interface name) -> ifindex of every interface in the sandbox.
pub fn ifindexes(sandbox: &Sandbox) -> BTreeMap<(String, String), u64> {
    let mut found = BTreeMap::new();
    for ns in std::iter::once(String::new()).chain(namespaces(sandbox)) {
        for link in crate::common::links(sandbox, &ns) {
            found.insert(
                (ns.clone(), link["ifname"].as_str().unwrap().to_string()),
                link["ifindex"].as_u64().unwrap(),
            );
        }
    }
    found
}

/// The routes of a namespace (`-4` or `-6`, main table) as `ip -j` shows them.
pub fn routes(sandbox: &Sandbox, ns: &str, family: &str) -> Vec<Value> {
    sandbox
        .ip_json(&format!("{}{family} route show", ns_prefix(ns)))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The state dir's files other than the lock and the records' backups.
pub fn state_files(sandbox: &Sandbox) -> String {
    sandbox
        .sh("ls -A /run/netloom | grep -vx lock | grep -v '[.]bak$' || true")
        .trim()
        .to_string()
}

/// After a destroy: no namespace, no interface but lo, nothing in the
/// state dir but the lock.
#[track_caller]
pub fn assert_nothing_left(sandbox: &Sandbox) {
    assert_eq!(namespaces(sandbox), Vec::<String>::new(), "namespaces left");
    assert_eq!(link_names(sandbox, ""), ["lo"], "interfaces left");
    let left = sandbox.sh("ls -A /run/netloom | grep -vx lock || true");
    assert_eq!(left.trim(), "", "state files left (backups too)");
}

// ---------------------------------------------------------------------
// ip monitor: proof that a run wrote nothing over netlink.

/// A marker rule only the watcher itself adds and deletes: it needs no
/// interface, so it works in every namespace, and netloom neither reads
/// nor writes rules, so a running `watch` does not take it for drift (a
/// route in a namespace netloom made would be).
fn marker(ns: &str, n: u8, verb: &str) -> String {
    format!(
        "ip {}rule {verb} pref {} from 198.51.100.{n}/32 unreachable",
        ns_prefix(ns),
        32000 + u32::from(n)
    )
}

/// How `ip monitor` shows marker `n`.
fn marker_line(n: u8) -> String {
    format!("from 198.51.100.{n} unreachable")
}

/// `ip -o monitor` on a set of namespaces. Start it, run something, then
/// `events()` returns every event that the something caused. Marker
/// rules before and after delimit the window, so no event is missed
/// (the monitors are subscribed before) or cut short (everything before
/// the closing marker has been printed).
pub struct Monitor {
    namespaces: Vec<String>,
    children: Vec<Child>,
    lines: Vec<Receiver<String>>,
}

const MONITOR_WAIT: Duration = Duration::from_secs(10);
/// How long without an event counts as quiet: longer than linkwatch's
/// one-second batching.
const QUIET: Duration = Duration::from_millis(1200);
const SETTLE_WAIT: Duration = Duration::from_secs(8);

/// Every namespace of the sandbox, its own (`""`) first.
pub fn everywhere(sandbox: &Sandbox) -> Vec<String> {
    std::iter::once(String::new())
        .chain(namespaces(sandbox))
        .collect()
}

/// Waits until the kernel has finished what a run set off (see
/// `Monitor::quiet`), so that snapshots compare what netloom did.
pub fn settle(sandbox: &Sandbox) {
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        Monitor::start(sandbox, &everywhere(sandbox)).quiet();
        // Duplicate address detection may still be waiting to send.
        let tentative = everywhere(sandbox).iter().any(|ns| {
            sandbox
                .ip_json(&format!("{}addr show", ns_prefix(ns)))
                .to_string()
                .contains("\"tentative\":true")
        });
        if !tentative {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "addresses stay tentative: {}",
            sandbox.sh("ip -br addr")
        );
    }
}

impl Monitor {
    pub fn start(sandbox: &Sandbox, namespaces: &[String]) -> Monitor {
        let mut monitor = Monitor {
            namespaces: namespaces.to_vec(),
            children: Vec::new(),
            lines: Vec::new(),
        };
        for ns in namespaces {
            let mut command = sandbox.command("ip");
            if !ns.is_empty() {
                command.args(["-n", ns]);
            }
            let mut child = command
                .args([
                    "-o", "monitor", "link", "address", "route", "rule", "netconf", "nsid",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ip monitor starts");
            let stdout = child.stdout.take().expect("piped");
            let stderr = child.stderr.take().expect("piped");
            let (tx, rx) = channel();
            let errors = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            // A monitor that fails (e.g. ENOBUFS) says so among its events.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if errors.send(format!("ip monitor error: {line}")).is_err() {
                        break;
                    }
                }
            });
            monitor.children.push(child);
            monitor.lines.push(rx);
        }
        // Subscribed once each has printed an opening marker. `ip monitor`
        // subscribes a moment after it starts: mark again until it shows.
        for (i, ns) in namespaces.iter().enumerate() {
            let deadline = Instant::now() + MONITOR_WAIT;
            for attempt in 10u8.. {
                monitor.mark(sandbox, i, attempt);
                let seen = Instant::now() + Duration::from_millis(300);
                if monitor
                    .lines_until(i, attempt, seen.min(deadline))
                    .is_some()
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "ip monitor in {ns:?} never started"
                );
            }
        }
        monitor
    }

    fn mark(&self, sandbox: &Sandbox, i: usize, n: u8) {
        let ns = &self.namespaces[i];
        sandbox.sh(&format!(
            "{} && {}",
            marker(ns, n, "add"),
            marker(ns, n, "del")
        ));
    }

    /// The lines of monitor `i` before the deletion of marker rule `n`
    /// (its addition among them), or None if it did not come by `deadline`.
    fn lines_until(&self, i: usize, n: u8, deadline: Instant) -> Option<Vec<String>> {
        let needle = marker_line(n);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines[i].recv_timeout(left) {
                Ok(line) if line.contains(&needle) && line.starts_with("Deleted") => {
                    return Some(seen);
                }
                Ok(line) => seen.push(line),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "ip monitor in {:?} stopped; it said {seen:#?}",
                    self.namespaces[i]
                ),
            }
        }
    }

    /// Waits until the kernel has been quiet for QUIET in every watched
    /// namespace, dropping what it said until then: after a run, the kernel
    /// still finishes some work of its own for a while (linkwatch sets
    /// operstate up to a second later, IPv6 adds link-local addresses
    /// when carrier comes and ends duplicate address detection).
    pub fn quiet(&self) {
        let deadline = Instant::now() + SETTLE_WAIT;
        let mut last = Instant::now();
        let mut said = Vec::new();
        while last.elapsed() < QUIET {
            let mut any = false;
            for rx in &self.lines {
                while let Ok(line) = rx.try_recv() {
                    said.push(line);
                    any = true;
                }
            }
            if any {
                last = Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "the kernel never went quiet: {said:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every event seen since `start` (or `quiet`), as `namespace: line`.
    pub fn events(mut self, sandbox: &Sandbox) -> Vec<String> {
        const CLOSING: u8 = 2;
        let mut events = Vec::new();
        for i in 0..self.namespaces.len() {
            self.mark(sandbox, i, CLOSING);
            let lines = self
                .lines_until(i, CLOSING, Instant::now() + MONITOR_WAIT)
                .unwrap_or_else(|| {
                    panic!("ip monitor in {:?} missed the marker", self.namespaces[i])
                });
            let ns = if self.namespaces[i].is_empty() {
                "-"
            } else {
                &self.namespaces[i]
            };
            events.extend(
                lines
                    .into_iter()
                    .filter(|l| !l.contains(&marker_line(CLOSING)))
                    .map(|l| format!("{ns}: {l}")),
            );
        }
        self.stop();
        events
    }

    fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------
// Traffic between pods, from threads inside their namespaces.

/// An open handle on one of the sandbox's named namespaces. The files
/// under /run/netns live in the sandbox's own mount namespace: reach them
/// through /proc/PID/root of a process inside it.
pub fn netns_handle(sandbox: &Sandbox, ns: &str) -> File {
    let mut inside = sandbox
        .command("sh")
        .args(["-c", "echo in && exec sleep 30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("a process in the sandbox");
    let mut line = String::new();
    BufReader::new(inside.stdout.as_mut().expect("piped"))
        .read_line(&mut line)
        .expect("it starts");
    let path = format!("/proc/{}/root/run/netns/{ns}", inside.id());
    let file = File::open(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let _ = inside.kill();
    let _ = inside.wait();
    file
}

/// Runs `f` on a thread of its own that has entered the namespace: a
/// socket opened there belongs to that namespace for good.
pub fn in_netns<T: Send + 'static>(handle: File, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("the thread in the namespace finishes")
}

/// A TCP connection from pod `client` to `address` in pod `server`: a
/// listener in the server pod, a connect from the client pod, a message
/// echoed back. Returns the client address the server saw.
#[track_caller]
pub fn tcp_roundtrip(sandbox: &Sandbox, server: &str, client: &str, address: IpAddr) -> IpAddr {
    let any = match address {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let listener = in_netns(netns_handle(sandbox, server), move || {
        TcpListener::bind(SocketAddr::new(any, 0))
    })
    .expect("listen in the server pod");
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let serving = std::thread::spawn(move || -> std::io::Result<IpAddr> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut stream, peer) = loop {
            match listener.accept() {
                Ok(found) => break found,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(err);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) => return Err(err),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut message = [0u8; 7];
        stream.read_exact(&mut message)?;
        stream.write_all(&message)?;
        Ok(peer.ip())
    });
    let target = SocketAddr::new(address, port);
    let echoed = in_netns(netns_handle(sandbox, client), move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"netloom")?;
        let mut back = [0u8; 7];
        stream.read_exact(&mut back)?;
        Ok::<_, std::io::Error>(back)
    })
    .unwrap_or_else(|err| panic!("TCP from {client} to {target} in {server}: {err}"));
    assert_eq!(&echoed, b"netloom");
    serving
        .join()
        .expect("the server thread finishes")
        .expect("the server pod accepted and echoed")
}

/// Sends `bytes` bytes over TCP from pod `client` to `address` in pod
/// `server`, within `timeout`. Returns how many arrived in time: fewer
/// than `bytes` when the path stalls.
pub fn tcp_transfer(
    sandbox: &Sandbox,
    server: &str,
    client: &str,
    address: IpAddr,
    bytes: usize,
    timeout: Duration,
) -> usize {
    let any = match address {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let listener = in_netns(netns_handle(sandbox, server), move || {
        TcpListener::bind(SocketAddr::new(any, 0))
    })
    .expect("listen in the server pod");
    let port = listener.local_addr().unwrap().port();
    let deadline = Instant::now() + timeout;
    let receiving = std::thread::spawn(move || -> usize {
        let Ok((mut stream, _)) = listener.accept() else {
            return 0;
        };
        let mut received = 0;
        let mut buffer = vec![0u8; 64 * 1024];
        while received < bytes {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        received
    });
    let target = SocketAddr::new(address, port);
    in_netns(netns_handle(sandbox, client), move || {
        let Ok(mut stream) = TcpStream::connect_timeout(&target, timeout) else {
            return;
        };
        // The sender gives up with the receiver: a stalled path must not
        // keep the test waiting.
        let _ = stream.set_write_timeout(Some(timeout));
        let _ = stream.write_all(&vec![0x5a; bytes]);
    });
    receiving.join().expect("the receiving thread finishes")
}

//! `netloom watch` in a sandbox (tests/common/mod.rs): every way a file
//! changes converges, an invalid edit changes nothing, and hand-made drift
//! of each kind is repaired while unowned objects stay byte-identical. What
//! the kernel holds is read with `ip`, never asked of netloom. The resync is
//! an hour, so every repair here comes from an event.

mod common;
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, netloom_bin};
use support::{Monitor, everywhere};

const PATIENCE: Duration = Duration::from_secs(20);

/// A running `netloom watch`, stopped (SIGTERM, then SIGKILL) on drop.
struct Watching {
    child: Child,
    log: PathBuf,
}

impl Watching {
    fn start(sandbox: &Sandbox, file: &Path, dir: &Path) -> Watching {
        let mut command = sandbox.command(netloom_bin());
        command.arg("watch").arg(file);
        Watching::spawn(command, dir.join("watch.log"))
    }

    /// `watch --host HOST` on an emulated machine: a namespace of the
    /// sandbox, entered with nsenter, with a state dir of its own.
    fn start_on(sandbox: &Sandbox, machine: &str, host: &str, file: &Path, dir: &Path) -> Watching {
        let mut command = sandbox.command("nsenter");
        command
            .arg(format!("--net=/run/netns/{machine}"))
            .arg(netloom_bin())
            .arg("watch")
            .arg(file)
            .args(["--host", host, "--state-dir"])
            .arg(format!("/run/netloom/{machine}"));
        Watching::spawn(command, dir.join(format!("watch-{machine}.log")))
    }

    fn spawn(mut command: Command, log: PathBuf) -> Watching {
        let child = command
            .args(["--resync", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("netloom watch starts");
        Watching { child, log }
    }

    /// How many reconciles its log reports so far.
    fn reconciles(&self) -> usize {
        self.log().matches("reconciled (").count()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `text` (`count` times in all).
    fn wait_for_log(&mut self, text: &str, count: usize) {
        let started = Instant::now();
        while self.log().matches(text).count() < count {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "watch ended: {}",
                self.log()
            );
            assert!(
                started.elapsed() < PATIENCE,
                "no {text:?} in: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM; returns the exit code.
    fn stop(mut self) -> Option<i32> {
        let code = self.terminate();
        if code != Some(0) {
            eprintln!("watch ended with {code:?}: {}", self.log());
        }
        std::mem::forget(self);
        code
    }

    fn terminate(&mut self) -> Option<i32> {
        // SAFETY: a plain kill(2) of the child we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A directory of the test's own.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netloom-watch-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `script` succeeds in the sandbox.
fn wait_until(sandbox: &Sandbox, script: &str, watch: &mut Watching) {
    let started = Instant::now();
    while !sandbox.try_sh(script) {
        assert!(watch.alive(), "watch ended: {}", watch.log());
        assert!(
            started.elapsed() < PATIENCE,
            "`{script}` never held; watch said: {}",
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the sandbox holds, without what moves by itself (IPv6 addresses
/// and routes settle for seconds after a link comes up).
fn ipv4_state(sandbox: &Sandbox) -> String {
    sandbox.sh(
        "for ns in '' $(ls /run/netns); do \
           if [ -z \"$ns\" ]; then n=''; else n=\"-n $ns\"; fi; \
           echo \"== $ns\"; ip $n -j link show; ip $n -4 -j addr show; ip $n -4 -j route show table all; \
         done",
    )
}

/// A bridge with the given pods on it, pod i at 10.30.0.(10+i).
fn pods_on_a_bridge(pods: &[&str]) -> String {
    let mut text = "name: wt\nbridges:\n  wt0: { addresses: [10.30.0.1/24] }\npods:\n".to_string();
    for (i, pod) in pods.iter().enumerate() {
        text.push_str(&format!(
            "  {pod}:\n    interfaces:\n      eth0: {{ bridge: wt0, addresses: [10.30.0.{}/24] }}\n",
            10 + i
        ));
    }
    text
}

/// The bridge wt0 has exactly `count` ports.
fn bridge_has_ports(count: usize) -> String {
    format!("[ \"$(ip -o link show master wt0 | wc -l)\" -eq {count} ]")
}

/// The pod's eth0 has its address.
fn has_pod(pod: &str, index: usize) -> String {
    format!(
        "ip -n {pod} -j addr show eth0 | grep -q '\"10.30.0.{}\"'",
        10 + index
    )
}

#[test]
fn every_way_of_changing_the_file_converges_and_an_invalid_edit_changes_nothing() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let dir = test_dir("file");
    let file = dir.join("topology.yaml");
    fs::write(&file, pods_on_a_bridge(&["wa"])).unwrap();
    let mut watch = Watching::start(&sandbox, &file, &dir);
    wait_until(&sandbox, &has_pod("wa", 0), &mut watch);

    // An editor's save: a temporary file renamed over the old one.
    let swap = dir.join(".topology.yaml.swp");
    fs::write(&swap, pods_on_a_bridge(&["wa", "wb"])).unwrap();
    fs::rename(&swap, &file).unwrap();
    wait_until(&sandbox, &has_pod("wb", 1), &mut watch);

    // git checkout: unlink, then write anew.
    fs::remove_file(&file).unwrap();
    fs::write(&file, pods_on_a_bridge(&["wa", "wb", "wc"])).unwrap();
    wait_until(&sandbox, &has_pod("wc", 2), &mut watch);

    // Deleted: not an empty topology; the network stays.
    let before = ipv4_state(&sandbox);
    fs::remove_file(&file).unwrap();
    watch.wait_for_log("is unavailable", 1);
    // Re-created with an edit: it converges.
    fs::write(&file, pods_on_a_bridge(&["wa", "wb"])).unwrap();
    wait_until(&sandbox, "! test -e /run/netns/wc", &mut watch);
    // The kernel tears a deleted namespace down asynchronously: wc's host
    // end stays on the bridge (its peer's netnsid -1) for a moment after.
    wait_until(&sandbox, &bridge_has_ports(2), &mut watch);
    assert_ne!(before, ipv4_state(&sandbox));

    // An invalid edit: validate's diagnostic, and nothing changes.
    let before = ipv4_state(&sandbox);
    fs::write(
        &file,
        pods_on_a_bridge(&["wa"]) + "  wz: { interfaces: 7 }\n",
    )
    .unwrap();
    watch.wait_for_log("is not valid", 1);
    assert!(watch.log().contains("topology.yaml:"), "{}", watch.log());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before,
        ipv4_state(&sandbox),
        "an invalid edit changed the kernel"
    );
    assert!(watch.alive());
    // The next valid edit converges.
    fs::write(&file, pods_on_a_bridge(&["wa"])).unwrap();
    wait_until(&sandbox, "! test -e /run/netns/wb", &mut watch);

    assert_eq!(watch.stop(), Some(0), "SIGTERM ends watch with 0");
    // The network stays after watch ends.
    assert!(sandbox.try_sh(&has_pod("wa", 0)));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_configmap_volume_update_converges() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    // kubelet's layout: topology.yaml -> ..data/topology.yaml, ..data -> a
    // timestamped directory; an update swaps ..data by a rename.
    let dir = test_dir("configmap");
    let version = |n: usize, pods: &[&str]| {
        let name = format!("..2026_12_01_00_00_0{n}.1");
        fs::create_dir(dir.join(&name)).unwrap();
        fs::write(
            dir.join(&name).join("topology.yaml"),
            pods_on_a_bridge(pods),
        )
        .unwrap();
        name
    };
    let first = version(0, &["ca"]);
    std::os::unix::fs::symlink(&first, dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/topology.yaml", dir.join("topology.yaml")).unwrap();
    let mut watch = Watching::start(&sandbox, &dir.join("topology.yaml"), &dir);
    wait_until(&sandbox, &has_pod("ca", 0), &mut watch);

    let mut old = first;
    for (n, pods) in [(1, vec!["ca", "cb"]), (2, vec!["ca"])] {
        let new = version(n, &pods);
        std::os::unix::fs::symlink(&new, dir.join("..data_tmp")).unwrap();
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        fs::remove_dir_all(dir.join(&old)).unwrap();
        old = new;
        if pods.len() == 2 {
            wait_until(&sandbox, &has_pod("cb", 1), &mut watch);
        } else {
            wait_until(&sandbox, "! test -e /run/netns/cb", &mut watch);
        }
    }
    assert_eq!(watch.stop(), Some(0));
    fs::remove_dir_all(dir).unwrap();
}

const DRIFT: &str = "name: wd
bridges:
  wd0: { addresses: [10.31.0.1/24] }
pods:
  dp:
    interfaces:
      eth0: { bridge: wd0, addresses: [10.31.0.2/24], mtu: 1400 }
    routes:
      - { to: 10.32.0.0/16, via: 10.31.0.1 }
    sysctls:
      net.ipv4.ip_forward: \"1\"
";

#[test]
fn drift_of_every_kind_is_repaired_and_unowned_objects_stay_byte_identical() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    // Someone else's interface, address and route, in the namespace netloom
    // shares (IPv4: the kernel adds an IPv6 link-local address by itself).
    sandbox.sh(
        "ip link add keep0 type veth peer name keep1 && ip link set keep1 up \
         && ip addr add 10.99.0.1/24 dev keep0 \
         && ip link set keep0 up && ip route add 10.98.0.0/24 dev keep0",
    );
    let unowned = || {
        sandbox
            .sh("ip -d -j link show keep0; ip -4 -j addr show keep0; ip -4 -j route show dev keep0")
    };
    let before = unowned();
    let dir = test_dir("drift");
    let file = dir.join("topology.yaml");
    fs::write(&file, DRIFT).unwrap();
    let mut watch = Watching::start(&sandbox, &file, &dir);
    let address = "ip -n dp -j addr show eth0 | grep -q '\"10.31.0.2\"'";
    wait_until(&sandbox, address, &mut watch);

    let drifts = [
        ("ip -n dp addr flush dev eth0", address),
        (
            "ip -n dp route del 10.32.0.0/16",
            "ip -n dp route show 10.32.0.0/16 | grep -q via",
        ),
        (
            "ip -n dp link set eth0 down",
            "ip -n dp link show eth0 | grep -q ',UP'",
        ),
        (
            "ip -n dp link set eth0 mtu 1300",
            "ip -n dp link show eth0 | grep -q 'mtu 1400'",
        ),
        (
            "ip netns exec dp sysctl -qw net.ipv4.ip_forward=0",
            "test \"$(ip netns exec dp sysctl -n net.ipv4.ip_forward)\" = 1",
        ),
        ("ip -n dp link del eth0", address),
        ("ip netns delete dp", address),
    ];
    for (drift, repaired) in drifts {
        sandbox.sh(drift);
        wait_until(&sandbox, repaired, &mut watch);
        assert_eq!(
            before,
            unowned(),
            "after `{drift}`, unowned objects changed"
        );
    }
    // The veth came back on its bridge.
    wait_until(
        &sandbox,
        "ip -j link show master wd0 | grep -q ifname",
        &mut watch,
    );
    assert_eq!(watch.stop(), Some(0));
    assert_eq!(before, unowned());
    fs::remove_dir_all(dir).unwrap();
}

/// Three nodes, each a machine of its own; `with_c` adds a pod on node3.
fn three_nodes(with_c: bool) -> String {
    let mut text = "name: w3\nrouting: host-gw\nhosts:\n".to_string();
    for n in 1..=3 {
        text.push_str(&format!(
            "  node{n}: {{ underlay: 192.168.71.1{n}/24, pod_cidr: 10.71.{n}.0/24, forwarding: true }}\n"
        ));
    }
    text.push_str("bridges:\n");
    for n in 1..=3 {
        text.push_str(&format!(
            "  b{n}: {{ host: node{n}, ifname: cbr0, addresses: [10.71.{n}.1/24] }}\n"
        ));
    }
    text.push_str("pods:\n");
    let pods: &[(&str, usize)] = if with_c {
        &[("w3a", 1), ("w3b", 2), ("w3c", 3)]
    } else {
        &[("w3a", 1), ("w3b", 2)]
    };
    for (pod, n) in pods {
        text.push_str(&format!(
            "  {pod}:\n    host: node{n}\n    interfaces: {{ eth0: {{ bridge: b{n}, addresses: [10.71.{n}.10/24] }} }}\n    routes: [{{ to: default, via: 10.71.{n}.1 }}]\n"
        ));
    }
    text
}

/// Machines m1..m3, each a namespace with its underlay eth0 on one switch
/// (a bridge in the sandbox's own namespace), forwarding off as on a fresh
/// host.
fn three_machines(sandbox: &Sandbox) {
    sandbox.sh("ip link add wire type bridge && ip link set wire up");
    for n in 1..=3 {
        sandbox.sh(&format!(
            "ip netns add m{n} \
             && ip netns exec m{n} sysctl -qw net.ipv6.conf.default.disable_ipv6=1 \
             && ip link add eth0 netns m{n} type veth peer name wire-m{n} \
             && ip link set wire-m{n} master wire && ip link set wire-m{n} up \
             && ip -n m{n} addr add 192.168.71.1{n}/24 dev eth0 && ip -n m{n} link set eth0 up \
             && ip netns exec m{n} sysctl -qw net.ipv4.ip_forward=0"
        ));
    }
}

/// Answers every TCP connection with a line naming its pod.
const LISTENER: &str = "import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 7070))
server.listen()
print('listening', flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(('hello from ' + sys.argv[2] + '\\n').encode())
    connection.close()
";

/// Connects to the address, prints the line it is sent.
const CONNECTOR: &str = "import socket, sys
connection = socket.create_connection((sys.argv[1], 7070), timeout=5)
print(connection.makefile().readline().strip())
";

/// A TCP listener in a pod, stopped on drop.
struct Listener(Child);

impl Listener {
    fn start(sandbox: &Sandbox, pod: &str, address: &str) -> Listener {
        let mut child = sandbox
            .command("ip")
            .args([
                "netns", "exec", pod, "python3", "-c", LISTENER, address, pod,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            "listening",
            "the listener in {pod} did not start"
        );
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a pod hears when it connects by TCP to `address`.
fn tcp_answer(sandbox: &Sandbox, from: &str, address: &str) -> String {
    let output = sandbox
        .command("ip")
        .args(["netns", "exec", from, "python3", "-c", CONNECTOR, address])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{from} cannot reach {address} by TCP: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn three_machines_each_watch_their_part_of_one_file() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    if !sandbox.try_sh("command -v python3") {
        panic!("this test needs python3 (its TCP listener and connector)");
    }
    three_machines(&sandbox);
    let dir = test_dir("machines");
    let file = dir.join("cluster.yaml");
    fs::write(&file, three_nodes(false)).unwrap();
    let mut watches: Vec<Watching> = (1..=3)
        .map(|n| Watching::start_on(&sandbox, &format!("m{n}"), &format!("node{n}"), &file, &dir))
        .collect();
    for watch in &mut watches {
        watch.wait_for_log("reconciled (start)", 1);
    }
    wait_until(
        &sandbox,
        "ip -n w3a -4 addr show eth0 | grep -q 10.71.1.10",
        &mut watches[0],
    );
    wait_until(
        &sandbox,
        "ip -n w3b -4 addr show eth0 | grep -q 10.71.2.10",
        &mut watches[1],
    );
    // Each bridge is on its own machine only.
    assert!(sandbox.try_sh("ip -n m1 link show cbr0 && ip -n m2 link show cbr0"));
    assert!(
        sandbox.try_sh("ip -n m3 link show cbr0"),
        "node3 has its bridge, no pod yet"
    );
    assert!(!sandbox.try_sh("ip link show cbr0"));

    // One edit adds a pod on node3: it converges there.
    fs::write(&file, three_nodes(true)).unwrap();
    wait_until(
        &sandbox,
        "ip -n w3c -4 addr show eth0 | grep -q 10.71.3.10",
        &mut watches[2],
    );
    for watch in &mut watches {
        watch.wait_for_log("reconciled (file changed)", 1);
    }
    let c_port = "ip -n m3 -o link show master cbr0 | grep -q .";
    assert!(sandbox.try_sh(c_port), "w3c's veth is on node3's bridge");
    assert!(!sandbox.try_sh("ip -n m1 -o link show master cbr0 | grep -v w3a | grep -q ."));

    // Pods on different machines reach each other by TCP.
    let listeners = [
        Listener::start(&sandbox, "w3a", "10.71.1.10"),
        Listener::start(&sandbox, "w3b", "10.71.2.10"),
        Listener::start(&sandbox, "w3c", "10.71.3.10"),
    ];
    assert_eq!(tcp_answer(&sandbox, "w3a", "10.71.2.10"), "hello from w3b");
    assert_eq!(tcp_answer(&sandbox, "w3b", "10.71.3.10"), "hello from w3c");
    assert_eq!(tcp_answer(&sandbox, "w3c", "10.71.1.10"), "hello from w3a");

    // Drift on m2 is repaired by m2's watch, and only by it: the other
    // machines do not even hear of it.
    let before: Vec<usize> = watches.iter().map(Watching::reconciles).collect();
    sandbox.sh("ip -n w3b link del eth0");
    wait_until(
        &sandbox,
        "ip -n w3b -4 addr show eth0 | grep -q 10.71.2.10",
        &mut watches[1],
    );
    wait_until(
        &sandbox,
        "ip -n m2 -o link show master cbr0 | grep -q .",
        &mut watches[1],
    );
    std::thread::sleep(Duration::from_millis(500));
    let after: Vec<usize> = watches.iter().map(Watching::reconciles).collect();
    assert!(after[1] > before[1], "m2 repaired: {}", watches[1].log());
    assert_eq!(
        (after[0], after[2]),
        (before[0], before[2]),
        "only m2's watch acts on m2's drift: {}\n{}",
        watches[0].log(),
        watches[2].log()
    );
    // The repaired pod reaches out and is reachable again (its listener
    // kept its socket: the namespace stayed, only its interface came back).
    // Outwards first: its new interface has a new MAC, which m2 learns from
    // the pod's first ARP request; until then m2 may send to the old one.
    assert_eq!(tcp_answer(&sandbox, "w3b", "10.71.1.10"), "hello from w3a");
    assert_eq!(tcp_answer(&sandbox, "w3a", "10.71.2.10"), "hello from w3b");

    drop(listeners);
    for watch in watches {
        assert_eq!(watch.stop(), Some(0));
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_repair_wakes_no_reconcile_with_its_own_writes() {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    let dir = test_dir("own");
    let file = dir.join("topology.yaml");
    fs::write(&file, DRIFT).unwrap();
    let mut watch = Watching::start(&sandbox, &file, &dir);
    let address = "ip -n dp -j addr show eth0 | grep -q '\"10.31.0.2\"'";
    wait_until(&sandbox, address, &mut watch);
    // The kernel settles new interfaces by itself for a while (IPv6: a
    // port's duplicate address detection ends a second or more after it
    // came up): let that pass, until two seconds go by without a reconcile.
    let idle = |watch: &Watching| {
        let mut count = watch.reconciles();
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let now = watch.reconciles();
            if now == count {
                break;
            }
            count = now;
        }
    };
    idle(&watch);
    let drifts = [
        ("ip -n dp addr flush dev eth0", address),
        (
            "ip -n dp route del 10.32.0.0/16",
            "ip -n dp route show 10.32.0.0/16 | grep -q via",
        ),
        (
            "ip -n dp link set eth0 mtu 1300",
            "ip -n dp link show eth0 | grep -q 'mtu 1400'",
        ),
    ];
    for (drift, repaired) in drifts {
        let before = watch.reconciles();
        sandbox.sh(drift);
        wait_until(&sandbox, repaired, &mut watch);
        // The repair's writes send events too: they must not make a
        // follow-up reconcile.
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(
            watch.reconciles(),
            before + 1,
            "after `{drift}`, one reconcile only: {}",
            watch.log()
        );
        // The kernel's side, not netloom's word: once what the repair set
        // off has died down, nothing writes over netlink any more (a loop
        // of re-applies would keep it busy).
        let monitor = Monitor::start(&sandbox, &everywhere(&sandbox));
        monitor.quiet();
        std::thread::sleep(Duration::from_millis(700));
        let written = monitor.events(&sandbox);
        assert!(
            written.is_empty(),
            "after `{drift}` was repaired, netlink writes went on: {written:#?}\n{}",
            watch.log()
        );
    }
    assert_eq!(watch.stop(), Some(0));
    fs::remove_dir_all(dir).unwrap();
}

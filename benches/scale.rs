//! Scale benchmark: N pods on bridges of at most 1000 ports, each pod with
//! eth0 on a bridge, an address and a default route. Three methods build
//! the same topology, each in a fresh sandbox, alternating within one run
//! so a loaded machine weighs on all of them alike:
//!
//! - netloom (`apply`, a no-op `apply`, an `apply` of one changed
//!   address, `destroy`);
//! - an `ip -batch` script (one batch for the host, one `ip -n POD -batch`
//!   per pod; torn down by a `netns delete` batch);
//! - a bare netlink program, this bench itself run again inside the
//!   sandbox (`--bare`): namespace, veth with its peer born in the
//!   namespace, address, route, with the same crates netloom uses; no
//!   observe, no checks, no record. The floor for a tool. Run again with
//!   `--bare-read`, it reads every namespace back (links, addresses,
//!   routes, the baseline sysctls) and compares: the floor for a no-op.
//!
//! `ip netns delete` returns before the kernel has torn the namespace
//! down (its veths go a little later, from a kernel work queue), where
//! netloom's destroy waits for them: the script's destroy is timed both
//! ways. Between methods the bench waits until the machine is quiet
//! again, so that no method pays for the teardown of the one before.
//!
//! Each twice: pods without an IPv6 link-local address (netloom's default
//! for an IPv4-only interface) and with one (`ipv6_link_local: true`), for
//! which it also measures the time until the machine is quiet again (the
//! kernel keeps flooding the pods' IPv6 multicast after the tool is done).
//!
//!   cargo bench --bench scale                       # N = 100 500 1000 2000, 3 runs
//!   cargo bench --bench scale -- --with-5000        # and 5000 (five bridges)
//!   cargo bench --bench scale -- --runs 5 100 1000  # other sizes, other runs
//!   cargo bench --bench scale -- --smoke            # CI: 10 pods, once, no timing
//!   cargo bench --bench scale -- --skip-link-local  # without the link-local half
//!   cargo bench --bench scale -- --save             # also docs/bench/scale.{md,svg}
//!
//! Needs root (it makes its own sandboxes; the machine's network is never
//! touched). Writes its table (medians) and its plot (time vs N per
//! method) into the directory target/scale-bench, as markdown and SVG.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netloom::model::expand::NAMESPACE_BASELINE as BASELINE;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

/// Pods per bridge (a bridge takes at most 1023 ports).
const PODS_PER_BRIDGE: usize = 1000;
/// Requests in flight at once in the bare program (netloom's limit too).
const IN_FLIGHT: usize = 32;

fn bridges(pods: usize) -> usize {
    pods.div_ceil(PODS_PER_BRIDGE).max(1)
}

/// Pod `i`'s bridge, its address on it and the bridge's address (the
/// default gateway): bridge `b` has 10.(100+b).0.1/16.
fn placement(i: usize) -> (usize, Ipv4Addr, Ipv4Addr) {
    let bridge = i / PODS_PER_BRIDGE;
    let n = i % PODS_PER_BRIDGE + 2;
    let second = 100 + bridge as u8;
    (
        bridge,
        Ipv4Addr::new(10, second, (n / 256) as u8, (n % 256) as u8),
        Ipv4Addr::new(10, second, 0, 1),
    )
}

fn topology(pods: usize, link_local: bool) -> String {
    let mut text = String::from("name: scale\nbridges:\n");
    for b in 0..bridges(pods) {
        let _ = writeln!(text, "  br{b}:\n    addresses: [10.{}.0.1/16]", 100 + b);
    }
    text.push_str("pods:\n");
    let extra = if link_local {
        ", ipv6_link_local: true"
    } else {
        ""
    };
    for i in 0..pods {
        let (bridge, address, gateway) = placement(i);
        let _ = write!(
            text,
            "  p{i}:\n    interfaces:\n      eth0: {{ bridge: br{bridge}, addresses: [{address}/16]{extra} }}\n    routes: [{{ to: default, via: {gateway} }}]\n"
        );
    }
    text
}

/// The topology with one attribute changed: the first pod's address (on
/// a host number no pod has).
fn one_change(pods: usize) -> String {
    let (_, address, _) = placement(0);
    let [a, b, _, _] = address.octets();
    topology(pods, false).replacen(
        &format!("addresses: [{address}/16]"),
        &format!("addresses: [{a}.{b}.250.250/16]"),
        1,
    )
}

/// The same topology as an ip script. Bridge ports get no link-local
/// address (as netloom's); eth0 only in the link-local case.
fn ip_build_script(pods: usize, link_local: bool) -> String {
    let mut host = String::new();
    for b in 0..bridges(pods) {
        let _ = write!(
            host,
            "link add br{b} type bridge\naddr add 10.{}.0.1/16 dev br{b}\nlink set br{b} up\n",
            100 + b
        );
    }
    let eth0_mode = if link_local { "" } else { " addrgenmode none" };
    let mut script = String::new();
    for i in 0..pods {
        let (bridge, address, gateway) = placement(i);
        let _ = write!(
            host,
            "netns add p{i}\nlink add h{i} type veth peer name eth0 netns p{i}\nlink set h{i} master br{bridge} addrgenmode none up\n"
        );
        let _ = writeln!(
            script,
            "printf 'link set lo up\\nlink set eth0{eth0_mode} up\\naddr add {address}/16 dev eth0\\nroute add default via {gateway}\\n' | ip -n p{i} -batch -"
        );
    }
    format!("set -e\nip -batch - <<'EOF'\n{host}EOF\n{script}")
}

fn ip_destroy_script(pods: usize) -> String {
    let mut batch = String::new();
    for i in 0..pods {
        let _ = writeln!(batch, "netns delete p{i}");
    }
    for b in 0..bridges(pods) {
        let _ = writeln!(batch, "link delete br{b}");
    }
    format!("ip -batch - <<'EOF'\n{batch}EOF\n")
}

// ---- The bare netlink program (runs inside the sandbox) ----

fn addr_gen_none() -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        In6AddrGenMode::None,
    )])])
}

/// Creates the namespace on a thread of its own (a thread that entered a
/// namespace stays in it), sets the baseline there as netloom does, and
/// returns a netlink handle opened there.
async fn bare_namespace(runtime: &tokio::runtime::Handle, name: String) -> std::io::Result<Handle> {
    let runtime_for_thread = runtime.clone();
    let (connection, handle) = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            netloom::kernel::netns::create_here(&name)?;
            for (key, value) in BASELINE {
                netloom::kernel::sysctl::write_here(key, value)?;
            }
            netloom::kernel::netlink::connect_here(&runtime_for_thread)
        })
        .join()
        .expect("namespace thread")
    })
    .await
    .expect("namespace thread")?;
    runtime.spawn(connection);
    Ok(handle)
}

async fn bare_pod(
    runtime: tokio::runtime::Handle,
    host: Handle,
    bridge_indexes: Vec<u32>,
    i: usize,
    link_local: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("p{i}");
    let (bridge, address, gateway) = placement(i);
    let pod = bare_namespace(&runtime, name.clone()).await?;
    let ns = std::fs::File::open(format!("/run/netns/{name}"))?;
    let peer = LinkUnspec::new_with_name("eth0").setns_by_fd(ns.as_raw_fd());
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(format!("h{i}"))
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .controller(bridge_indexes[bridge])
        .build();
    host.link().add(veth).execute().await?;
    drop(ns);
    // The kernel refuses IFLA_AF_SPEC in a create (EAFNOSUPPORT): the
    // port's address generation is set, with up, in a second request.
    let port = LinkUnspec::new_with_name(&format!("h{i}"))
        .up()
        .append_extra_attribute(addr_gen_none())
        .build();
    host.link().change(port).execute().await?;
    let lo = LinkUnspec::new_with_name("lo").up().build();
    pod.link().change(lo).execute().await?;
    let mut eth0 = LinkUnspec::new_with_name("eth0").up();
    if !link_local {
        eth0 = eth0.append_extra_attribute(addr_gen_none());
    }
    pod.link().change(eth0.build()).execute().await?;
    let index = pod
        .link()
        .get()
        .match_name("eth0".to_string())
        .execute()
        .next()
        .await
        .ok_or("no eth0")??
        .header
        .index;
    pod.address()
        .add(index, address.into(), 16)
        .execute()
        .await?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    pod.route().add(route).execute().await?;
    Ok(())
}

fn bare_build(pods: usize, link_local: bool) {
    netloom::kernel::netlink::raise_fd_limit().expect("fd limit");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (connection, host) =
            netloom::kernel::netlink::connect_here(runtime.handle()).expect("netlink");
        runtime.spawn(connection);
        let mut bridge_indexes = Vec::new();
        for b in 0..bridges(pods) {
            let name = format!("br{b}");
            host.link()
                .add(LinkBridge::new(&name).up().build())
                .execute()
                .await
                .expect("bridge");
            let index = host
                .link()
                .get()
                .match_name(name)
                .execute()
                .next()
                .await
                .expect("bridge is there")
                .expect("bridge")
                .header
                .index;
            host.address()
                .add(index, Ipv4Addr::new(10, 100 + b as u8, 0, 1).into(), 16)
                .execute()
                .await
                .expect("bridge address");
            bridge_indexes.push(index);
        }
        let results: Vec<_> = futures::stream::iter(0..pods)
            .map(|i| {
                bare_pod(
                    runtime.handle().clone(),
                    host.clone(),
                    bridge_indexes.clone(),
                    i,
                    link_local,
                )
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for result in results {
            result.unwrap_or_else(|err| panic!("bare build: {err}"));
        }
    });
    // Every namespace thread and socket ends with the process.
    std::process::exit(0);
}

/// Dumps one kind of object in the calling thread's namespace.
fn bare_dump(request: RouteNetlinkMessage) -> Vec<RouteNetlinkMessage> {
    netloom::kernel::netlink::dump_here(request, Some).expect("dump")
}

/// Reads pod `i`'s namespace back and compares it with what the build
/// made: eth0 up with its address, the default route, the baseline.
fn bare_read_pod(i: usize) -> Result<(), String> {
    let (_, address, gateway) = placement(i);
    netloom::kernel::netns::enter_here(&format!("p{i}")).map_err(|e| e.to_string())?;
    let links = bare_dump(RouteNetlinkMessage::GetLink(LinkMessage::default()));
    let eth0 = links.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(link)
            if link
                .attributes
                .contains(&LinkAttribute::IfName("eth0".into())) =>
        {
            Some(link)
        }
        _ => None,
    });
    let eth0 = eth0.ok_or("no eth0")?;
    if !eth0.header.flags.contains(LinkFlags::Up) {
        return Err("eth0 down".into());
    }
    let addresses = bare_dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()));
    let has_address = addresses.iter().any(|m| {
        matches!(m, RouteNetlinkMessage::NewAddress(a)
            if a.header.index == eth0.header.index
                && a.attributes.contains(&AddressAttribute::Address(address.into())))
    });
    let routes = bare_dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()));
    let has_default = routes.iter().any(|m| {
        matches!(m, RouteNetlinkMessage::NewRoute(r)
            if r.header.destination_prefix_length == 0
                && r.attributes.contains(&RouteAttribute::Gateway(RouteAddress::Inet(gateway))))
    });
    let keys: Vec<String> = BASELINE.iter().map(|(k, _)| k.to_string()).collect();
    let values = netloom::kernel::sysctl::read_here(&keys).map_err(|e| e.to_string())?;
    let baseline = values
        .iter()
        .zip(BASELINE)
        .all(|((_, seen), (_, want))| seen.as_deref() == Some(want));
    match (has_address, has_default, baseline) {
        (true, true, true) => Ok(()),
        _ => Err(format!(
            "p{i}: address {has_address}, route {has_default}, baseline {baseline}"
        )),
    }
}

/// The floor for a no-op: every namespace read back and compared, as
/// many at once as netloom reads, each on a thread of its own (a thread
/// entering a namespace stays in it).
fn bare_read(pods: usize) {
    netloom::kernel::netlink::raise_fd_limit().expect("fd limit");
    let ports = bare_dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
        .iter()
        .filter(|m| {
            matches!(m, RouteNetlinkMessage::NewLink(l)
            if l.attributes.iter().any(|a| matches!(a, LinkAttribute::Controller(_))))
        })
        .count();
    assert_eq!(ports, pods, "bridge ports");
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..IN_FLIGHT {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= pods {
                        break;
                    }
                    let read = std::thread::spawn(move || bare_read_pod(i));
                    read.join()
                        .expect("reading thread")
                        .unwrap_or_else(|err| panic!("bare read: {err}"));
                }
            });
        }
    });
    std::process::exit(0);
}

// ---- Measuring ----

/// One child run: its wall time and peak RSS (of the child itself: nsenter
/// execs the program without forking).
struct Run {
    wall: Duration,
    peak_mib: f64,
}

fn run(mut command: Command) -> Run {
    // A file, not a pipe: a full pipe would block the child before wait4.
    let stderr_path = common::root().join("target/scale-bench/step.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("benchmark step starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes into the zeroed struct and status it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4");
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        panic!("benchmark step failed ({status}): {stderr}");
    }
    Run {
        wall,
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// Busy and total jiffies of the whole machine, from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The machine's busy share over `window`.
fn busy_share(window: Duration) -> f64 {
    let (busy0, total0) = cpu_jiffies();
    std::thread::sleep(window);
    let (busy1, total1) = cpu_jiffies();
    (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64
}

/// Seconds from `started` until the machine is as quiet as `baseline`
/// again (its busy share within 10 points of it over half a second), at
/// most a minute after.
fn until_quiet(started: Instant, baseline: f64) -> Duration {
    let limit = started.elapsed() + Duration::from_secs(60);
    while busy_share(Duration::from_millis(500)) > baseline + 0.10 {
        if started.elapsed() > limit {
            break;
        }
    }
    started.elapsed()
}

#[derive(Default)]
struct Samples {
    values: Vec<f64>,
}

impl Samples {
    fn push(&mut self, value: f64) {
        self.values.push(value);
    }
    fn median(&self) -> f64 {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }
}

/// Every figure of one N, medians over the runs.
#[derive(Default)]
struct Row {
    pods: usize,
    netloom_apply: Samples,
    netloom_noop: Samples,
    netloom_one_change: Samples,
    netloom_destroy: Samples,
    netloom_peak_mib: Samples,
    ip_build: Samples,
    ip_destroy: Samples,
    ip_destroy_gone: Samples,
    bare_build: Samples,
    bare_read: Samples,
    bare_peak_mib: Samples,
    netloom_apply_ll: Samples,
    ip_build_ll: Samples,
    bare_build_ll: Samples,
    netloom_quiet_ll: Samples,
    ip_quiet_ll: Samples,
    bare_quiet_ll: Samples,
}

struct Files {
    topology: PathBuf,
    topology_ll: PathBuf,
    topology_one_change: PathBuf,
    ip_build: PathBuf,
    ip_build_ll: PathBuf,
    ip_destroy: PathBuf,
}

fn write_files(dir: &Path, pods: usize) -> Files {
    let write = |name: String, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("bench file written");
        path
    };
    Files {
        topology: write(format!("scale-{pods}.yaml"), topology(pods, false)),
        topology_ll: write(format!("scale-{pods}-ll.yaml"), topology(pods, true)),
        topology_one_change: write(format!("scale-{pods}-one.yaml"), one_change(pods)),
        ip_build: write(format!("ip-build-{pods}.sh"), ip_build_script(pods, false)),
        ip_build_ll: write(
            format!("ip-build-{pods}-ll.sh"),
            ip_build_script(pods, true),
        ),
        ip_destroy: write(format!("ip-destroy-{pods}.sh"), ip_destroy_script(pods)),
    }
}

fn netloom(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut command = sandbox.command(common::netloom_bin());
    command.args(args);
    command
}

fn bare(sandbox: &Sandbox, pods: usize, link_local: bool) -> Command {
    let mut command = sandbox.command(std::env::current_exe().expect("bench exe"));
    command.arg("--bare").arg(pods.to_string());
    if link_local {
        command.arg("--link-local");
    }
    command
}

/// What one run measures, and how.
struct Settings {
    /// Wait for quiet between methods, and time until quiet after a
    /// link-local build (off in the smoke test).
    timed: bool,
    link_local: bool,
    /// The machine's busy share before the bench started.
    idle: f64,
}

/// Waits (at most a minute) until the machine is about as idle as before
/// the bench: the kernel tears deleted namespaces down after the tool has
/// returned, and the next method must not pay for that.
fn settle(settings: &Settings) {
    if !settings.timed {
        return;
    }
    let started = Instant::now();
    while busy_share(Duration::from_millis(300)) > settings.idle + 0.05
        && started.elapsed() < Duration::from_secs(60)
    {}
}

fn script(sandbox: &Sandbox, path: &Path) -> Command {
    let mut command = sandbox.command("sh");
    command.arg(path);
    command
}

/// Until no veth is left in the sandbox: the kernel's part of a destroy
/// that `ip netns delete` does not wait for.
fn veths_gone(sandbox: &Sandbox) -> Command {
    let mut command = sandbox.command("sh");
    command.args([
        "-c",
        "while ip -o link show type veth | grep -q .; do sleep 0.01; done",
    ]);
    command
}

/// One run of every method at `pods`; `None` when sandboxes cannot run.
fn measure_once(row: &mut Row, files: &Files, settings: &Settings) -> Option<()> {
    let secs = |r: &Run| r.wall.as_secs_f64();
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let (topology, topology_ll) = (path(&files.topology), path(&files.topology_ll));
    let one = path(&files.topology_one_change);

    // Pods without link-local addresses.
    settle(settings);
    let sandbox = Sandbox::new()?;
    let apply = run(netloom(&sandbox, &["apply", &topology]));
    row.netloom_apply.push(secs(&apply));
    row.netloom_peak_mib.push(apply.peak_mib);
    let noop = run(netloom(&sandbox, &["apply", &topology]));
    row.netloom_noop.push(secs(&noop));
    row.netloom_one_change
        .push(secs(&run(netloom(&sandbox, &["apply", &one]))));
    row.netloom_destroy
        .push(secs(&run(netloom(&sandbox, &["destroy", &topology]))));
    drop(sandbox);

    settle(settings);
    let sandbox = Sandbox::new()?;
    row.ip_build
        .push(secs(&run(script(&sandbox, &files.ip_build))));
    let destroy = secs(&run(script(&sandbox, &files.ip_destroy)));
    row.ip_destroy.push(destroy);
    row.ip_destroy_gone
        .push(destroy + secs(&run(veths_gone(&sandbox))));
    drop(sandbox);

    settle(settings);
    let sandbox = Sandbox::new()?;
    let bare_run = run(bare(&sandbox, row.pods, false));
    row.bare_build.push(secs(&bare_run));
    row.bare_peak_mib.push(bare_run.peak_mib);
    let mut read = sandbox.command(std::env::current_exe().expect("bench exe"));
    read.arg("--bare-read").arg(row.pods.to_string());
    row.bare_read.push(secs(&run(read)));
    drop(sandbox);

    if !settings.link_local {
        return Some(());
    }
    // Pods with link-local addresses, and the time until quiet.
    let methods: [(&str, &mut Samples, &mut Samples); 3] = [
        (
            "netloom",
            &mut row.netloom_apply_ll,
            &mut row.netloom_quiet_ll,
        ),
        ("ip", &mut row.ip_build_ll, &mut row.ip_quiet_ll),
        ("bare", &mut row.bare_build_ll, &mut row.bare_quiet_ll),
    ];
    for (method, build, quiet) in methods {
        settle(settings);
        let sandbox = Sandbox::new()?;
        let command = match method {
            "netloom" => netloom(&sandbox, &["apply", &topology_ll]),
            "ip" => script(&sandbox, &files.ip_build_ll),
            _ => bare(&sandbox, row.pods, true),
        };
        let started = Instant::now();
        build.push(secs(&run(command)));
        if settings.timed {
            quiet.push(until_quiet(started, settings.idle).as_secs_f64());
        }
        drop(sandbox);
    }
    Some(())
}

/// A table column: its header, and its cell in a row.
type Column = (&'static str, fn(&Row) -> String);

/// One markdown table: a caption, a header, a line of cells per row.
fn section(out: &mut String, caption: &str, columns: &[Column], rows: &[Row]) {
    let header: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let _ = writeln!(out, "\n{caption}\n\n| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---:|".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|(_, cell)| cell(row)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn seconds(samples: &Samples) -> String {
    format!("{:.2}", samples.median())
}

fn ratio(a: &Samples, b: &Samples) -> String {
    format!("{:.2}x", a.median() / b.median())
}

fn mib(samples: &Samples) -> String {
    format!("{:.0} MiB", samples.median())
}

fn table(rows: &[Row], runs: usize, link_local: bool) -> String {
    let mut out = format!(
        "Medians of {runs} run(s), in seconds unless said; the machine quiet before each method. Pods without IPv6 link-local unless said.\n"
    );
    let build: [Column; 8] = [
        ("pods", |r| r.pods.to_string()),
        ("netloom apply", |r| seconds(&r.netloom_apply)),
        ("bare netlink", |r| seconds(&r.bare_build)),
        ("ip -batch", |r| seconds(&r.ip_build)),
        ("netloom / bare", |r| ratio(&r.netloom_apply, &r.bare_build)),
        ("ip / netloom", |r| ratio(&r.ip_build, &r.netloom_apply)),
        ("peak RSS netloom", |r| mib(&r.netloom_peak_mib)),
        ("peak RSS bare", |r| mib(&r.bare_peak_mib)),
    ];
    section(&mut out, "Build:", &build, rows);
    let again: [Column; 12] = [
        ("pods", |r| r.pods.to_string()),
        ("netloom no-op", |r| seconds(&r.netloom_noop)),
        ("bare read-and-compare", |r| seconds(&r.bare_read)),
        ("no-op / bare read", |r| {
            ratio(&r.netloom_noop, &r.bare_read)
        }),
        ("no-op / ip build", |r| {
            format!(
                "{:.0}%",
                100.0 * r.netloom_noop.median() / r.ip_build.median()
            )
        }),
        ("one change", |r| seconds(&r.netloom_one_change)),
        ("one change / no-op", |r| {
            ratio(&r.netloom_one_change, &r.netloom_noop)
        }),
        ("netloom destroy", |r| seconds(&r.netloom_destroy)),
        ("ip destroy", |r| seconds(&r.ip_destroy)),
        ("ip destroy, until gone", |r| seconds(&r.ip_destroy_gone)),
        ("destroy / ip", |r| ratio(&r.netloom_destroy, &r.ip_destroy)),
        ("destroy / ip until gone", |r| {
            ratio(&r.netloom_destroy, &r.ip_destroy_gone)
        }),
    ];
    section(
        &mut out,
        "No-op and destroy (\"until gone\": until the kernel has torn the veths down, which netloom's destroy waits for and `ip netns delete` does not):",
        &again,
        rows,
    );
    if link_local {
        let quiet: [Column; 8] = [
            ("pods", |r| r.pods.to_string()),
            ("netloom", |r| seconds(&r.netloom_apply_ll)),
            ("bare", |r| seconds(&r.bare_build_ll)),
            ("ip -batch", |r| seconds(&r.ip_build_ll)),
            ("quiet netloom", |r| seconds(&r.netloom_quiet_ll)),
            ("quiet bare", |r| seconds(&r.bare_quiet_ll)),
            ("quiet ip", |r| seconds(&r.ip_quiet_ll)),
            ("quiet netloom / ip", |r| {
                ratio(&r.netloom_quiet_ll, &r.ip_quiet_ll)
            }),
        ];
        section(
            &mut out,
            "Pods with IPv6 link-local addresses (`ipv6_link_local: true`), build and until the machine is quiet again:",
            &quiet,
            rows,
        );
    }
    out
}

/// A plotted line: label, colour, dash pattern, and its value in a row.
type Series = (&'static str, &'static str, &'static str, fn(&Row) -> f64);

/// A hand-written SVG line plot: build time vs N for each method, solid
/// without link-local addresses, dashed with them (time until quiet).
fn plot(rows: &[Row]) -> String {
    let (width, height, margin) = (720.0, 420.0, 60.0);
    let series: [Series; 6] = [
        ("netloom apply", "#1f77b4", "", |r| r.netloom_apply.median()),
        ("bare netlink", "#2ca02c", "", |r| r.bare_build.median()),
        ("ip -batch", "#d62728", "", |r| r.ip_build.median()),
        ("netloom, ll, until quiet", "#1f77b4", "6 4", |r| {
            r.netloom_quiet_ll.median()
        }),
        ("bare, ll, until quiet", "#2ca02c", "6 4", |r| {
            r.bare_quiet_ll.median()
        }),
        ("ip, ll, until quiet", "#d62728", "6 4", |r| {
            r.ip_quiet_ll.median()
        }),
    ];
    let max_n = rows.iter().map(|r| r.pods).max().unwrap_or(1) as f64;
    let max_t = rows
        .iter()
        .flat_map(|r| series.iter().map(move |(_, _, _, f)| f(r)))
        .filter(|t| t.is_finite())
        .fold(0.1_f64, f64::max)
        * 1.1;
    let x = |n: f64| margin + n / max_n * (width - 2.0 * margin);
    let y = |t: f64| height - margin - t / max_t * (height - 2.0 * margin);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{margin}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/><line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{0}\" stroke=\"black\"/>",
        height - margin,
        width - margin
    );
    for row in rows {
        let px = x(row.pods as f64);
        let _ = writeln!(
            svg,
            "<text x=\"{px}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - margin + 16.0,
            row.pods
        );
    }
    for step in 0..=4 {
        let t = max_t * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t:.1} s</text>",
            margin - 6.0,
            y(t) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">pods</text>",
        width / 2.0,
        height - 12.0
    );
    for (k, (label, colour, dash, value)) in series.iter().enumerate() {
        let points: Vec<String> = rows
            .iter()
            .filter(|r| value(r).is_finite())
            .map(|r| format!("{:.1},{:.1}", x(r.pods as f64), y(value(r))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            points.join(" ")
        );
        let ly = margin + 16.0 * k as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{2}\" y=\"{3}\">{label}</text>",
            margin + 10.0,
            margin + 40.0,
            margin + 46.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--bare") {
        let pods = args[at + 1].parse().expect("--bare N");
        bare_build(pods, args.iter().any(|a| a == "--link-local"));
    }
    if let Some(at) = args.iter().position(|a| a == "--bare-read") {
        bare_read(args[at + 1].parse().expect("--bare-read N"));
    }
    let flag = |name: &str| args.iter().any(|a| a == name);
    let smoke = flag("--smoke");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(if smoke { 1 } else { 3 });
    let runs_value = args.iter().position(|a| a == "--runs").map(|at| at + 1);
    let mut sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != runs_value)
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = if smoke {
            vec![10]
        } else {
            vec![100, 500, 1000, 2000]
        };
    }
    if flag("--with-5000") {
        sizes.push(5000);
    }
    let settings = Settings {
        timed: !smoke,
        link_local: !flag("--skip-link-local"),
        idle: if smoke {
            0.0
        } else {
            busy_share(Duration::from_secs(1))
        },
    };
    let dir = common::root().join("target/scale-bench");
    std::fs::create_dir_all(&dir).expect("target/scale-bench");
    let mut rows = Vec::new();
    for &pods in &sizes {
        let files = write_files(&dir, pods);
        let mut row = Row {
            pods,
            ..Row::default()
        };
        for _ in 0..runs {
            if measure_once(&mut row, &files, &settings).is_none() {
                return;
            }
        }
        eprintln!("{pods} pods measured");
        rows.push(row);
    }
    let table = table(&rows, runs, settings.link_local);
    print!("{table}");
    let svg = plot(&rows);
    let mut outputs = vec![dir];
    if flag("--save") {
        outputs.push(common::root().join("docs/bench"));
    }
    for out in outputs {
        std::fs::create_dir_all(&out).expect("output directory");
        std::fs::write(out.join("scale").with_extension("md"), &table).expect("table written");
        std::fs::write(out.join("scale.svg"), &svg).expect("plot written");
    }
}

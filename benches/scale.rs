//! Scale benchmark: one bridge with N pods, each with eth0 on the bridge,
//! an address and a default route — built, re-applied unchanged and torn
//! down by netloom, next to the same topology built and torn down by an
//! `ip -batch` script, each in a fresh sandbox, in one run.
//!
//!   cargo bench --bench scale            # N = 100 and 1000
//!   cargo bench --bench scale -- 10 500  # other sizes
//!
//! Needs root (it makes its own sandboxes; the machine's network is never
//! touched). Prints a table of wall times and netloom's peak memory.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::process::Output;
use std::time::{Duration, Instant};

use common::Sandbox;

/// The topology; `quiet`: pods without IPv6 link-local addresses (whose
/// router solicitations and MLD reports a bridge floods to every port).
fn topology(pods: usize, quiet: bool) -> String {
    let mut text =
        String::from("name: scale\nbridges:\n  br0:\n    addresses: [10.100.0.1/16]\npods:\n");
    let sysctls = if quiet {
        "    sysctls: { net.ipv6.conf.default.addr_gen_mode: \"1\" }\n"
    } else {
        ""
    };
    for (i, address) in addresses(pods).enumerate() {
        let _ = write!(
            text,
            "  p{i}:\n    interfaces:\n      eth0: {{ bridge: br0, addresses: [{address}/16] }}\n    routes: [{{ to: default, via: 10.100.0.1 }}]\n{sysctls}"
        );
    }
    text
}

fn addresses(pods: usize) -> impl Iterator<Item = String> {
    (2..pods + 2).map(|n| format!("10.100.{}.{}", n / 256, n % 256))
}

/// The same topology as an ip script: one batch for the host side (it can
/// create each namespace and its veth, with the peer born inside), and one
/// `ip -n POD -batch` per pod for what only the pod's namespace can do.
fn ip_build_script(pods: usize) -> String {
    let mut host =
        String::from("link add br0 type bridge\naddr add 10.100.0.1/16 dev br0\nlink set br0 up\n");
    let mut script = String::new();
    for (i, address) in addresses(pods).enumerate() {
        let _ = write!(
            host,
            "netns add p{i}\nlink add h{i} type veth peer name eth0 netns p{i}\nlink set h{i} master br0 up\n"
        );
        let _ = writeln!(
            script,
            "printf 'link set lo up\\nlink set eth0 up\\naddr add {address}/16 dev eth0\\nroute add default via 10.100.0.1\\n' | ip -n p{i} -batch -"
        );
    }
    format!("ip -batch - <<'EOF'\n{host}EOF\n{script}")
}

fn ip_destroy_script(pods: usize) -> String {
    let mut batch = String::new();
    for i in 0..pods {
        let _ = writeln!(batch, "netns delete p{i}");
    }
    batch.push_str("link delete br0\n");
    format!("ip -batch - <<'EOF'\n{batch}EOF\n")
}

fn timed(run: impl FnOnce() -> Output) -> Duration {
    let started = Instant::now();
    let output = run();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "benchmark step failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

/// Peak resident memory of the largest child waited for so far, in MiB.
fn children_peak_rss_mib() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

struct Row {
    pods: usize,
    netloom_apply: Duration,
    netloom_apply_quiet: Duration,
    netloom_noop: Duration,
    netloom_destroy: Duration,
    netloom_peak_mib: f64,
    ip_build: Duration,
    ip_destroy: Duration,
}

fn measure(pods: usize) -> Option<Row> {
    let write = |quiet: bool| {
        let file = std::env::temp_dir().join(format!("netloom-scale-{pods}-{quiet}.yaml"));
        std::fs::write(&file, topology(pods, quiet)).expect("topology written");
        file.to_string_lossy().into_owned()
    };
    let (file, quiet_file) = (write(false), write(true));
    let file = file.as_str();

    let sandbox = Sandbox::new()?;
    let netloom_apply = timed(|| sandbox.netloom(&["apply", file]));
    let netloom_peak_mib = children_peak_rss_mib();
    let netloom_noop = timed(|| sandbox.netloom(&["apply", file]));
    let netloom_destroy = timed(|| sandbox.netloom(&["destroy", file]));
    drop(sandbox);

    let sandbox = Sandbox::new()?;
    let netloom_apply_quiet = timed(|| sandbox.netloom(&["apply", &quiet_file]));
    drop(sandbox);

    let build = std::env::temp_dir().join(format!("netloom-scale-ip-build-{pods}.sh"));
    std::fs::write(&build, ip_build_script(pods)).expect("script written");
    let destroy = std::env::temp_dir().join(format!("netloom-scale-ip-destroy-{pods}.sh"));
    std::fs::write(&destroy, ip_destroy_script(pods)).expect("script written");
    let sandbox = Sandbox::new()?;
    let ip_build = timed(|| sandbox.command("sh").arg(&build).output().expect("sh"));
    let ip_destroy = timed(|| sandbox.command("sh").arg(&destroy).output().expect("sh"));
    Some(Row {
        pods,
        netloom_apply,
        netloom_apply_quiet,
        netloom_noop,
        netloom_destroy,
        netloom_peak_mib,
        ip_build,
        ip_destroy,
    })
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000]
    } else {
        sizes
    };
    let seconds = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "| pods | netloom apply | ip -batch build | speed-up | netloom apply, pods without IPv6 link-local | netloom no-op apply | netloom destroy | ip destroy | netloom peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for pods in sizes {
        let Some(row) = measure(pods) else { return };
        println!(
            "| {} | {} | {} | {:.1}x | {} | {} | {} | {} | {:.0} MiB |",
            row.pods,
            seconds(row.netloom_apply),
            seconds(row.ip_build),
            row.ip_build.as_secs_f64() / row.netloom_apply.as_secs_f64(),
            seconds(row.netloom_apply_quiet),
            seconds(row.netloom_noop),
            seconds(row.netloom_destroy),
            seconds(row.ip_destroy),
            row.netloom_peak_mib,
        );
    }
}

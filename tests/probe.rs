//! The probes of `netloom check` against a real kernel: two namespaces of a
//! sandbox joined by a veth (made with `ip`), and the probes opened from
//! threads that entered them. Traffic only goes to the sandbox's addresses.

mod common;
mod support;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

use common::Sandbox;
use netloom::expect::{Check, Method};
use netloom::probe::run::{Namespaces, run_checks};
use netloom::probe::{EchoSocket, Failure, Listener, TcpProbe, icmp::SocketKind};
use support::{in_netns, netns_handle};

const TIMEOUT: Duration = Duration::from_secs(2);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `left` (10.77.0.1, fd00:77::1) and `right` (10.77.0.2, fd00:77::2) on a veth.
fn two_namespaces() -> Option<Sandbox> {
    let sandbox = Sandbox::new()?;
    sandbox.sh(
        "ip netns add left && ip netns add right \
         && ip -n left link add eth0 type veth peer name eth0 netns right \
         && for ns in left right; do \
              ip -n $ns link set lo up; ip -n $ns link set eth0 up; \
              ip netns exec $ns sysctl -qw net.ipv6.conf.eth0.accept_dad=0; \
            done \
         && ip -n left addr add 10.77.0.1/24 dev eth0 && ip -n left addr add fd00:77::1/64 dev eth0 nodad \
         && ip -n right addr add 10.77.0.2/24 dev eth0 && ip -n right addr add fd00:77::2/64 dev eth0 nodad",
    );
    Some(sandbox)
}

/// An echo from `from` to `to`: the kind of socket it went through (none
/// when opening failed) and its outcome.
fn echo(
    sandbox: &Sandbox,
    from: &str,
    to: IpAddr,
    timeout: Duration,
) -> (Option<SocketKind>, Result<Duration, Failure>) {
    let socket = in_netns(netns_handle(sandbox, from), move || EchoSocket::open(to));
    match socket {
        Ok(socket) => (Some(socket.kind()), socket.echo(timeout)),
        Err(failure) => (None, Err(failure)),
    }
}

#[test]
fn an_echo_is_answered_over_ipv4_and_ipv6_through_a_raw_socket() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    for target in ["10.77.0.2", "fd00:77::2"] {
        // A new namespace's ping_group_range is empty: root falls back to raw.
        let (kind, answer) = echo(&sandbox, "left", ip(target), TIMEOUT);
        assert_eq!(kind, Some(SocketKind::Raw));
        let latency = answer.unwrap_or_else(|f| panic!("{target}: {f}"));
        assert!(latency < TIMEOUT, "{latency:?}");
    }
}

#[test]
fn an_echo_goes_through_the_unprivileged_socket_when_the_group_may() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    sandbox.sh("ip netns exec left sysctl -qw net.ipv4.ping_group_range='0 0'");
    for target in ["10.77.0.2", "fd00:77::2"] {
        let (kind, answer) = echo(&sandbox, "left", ip(target), TIMEOUT);
        assert_eq!(kind, Some(SocketKind::Datagram));
        answer.unwrap_or_else(|f| panic!("{target}: {f}"));
    }
}

#[test]
fn an_echo_without_a_route_or_an_answer_fails_with_the_reason() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    let (_, answer) = echo(
        &sandbox,
        "left",
        ip("10.99.0.1"),
        Duration::from_millis(600),
    );
    assert_eq!(answer, Err(Failure::NoRoute));
    // On the link's subnet, but nobody has it: no neighbour answers.
    let (_, answer) = echo(
        &sandbox,
        "left",
        ip("10.77.0.9"),
        Duration::from_millis(600),
    );
    assert!(
        matches!(answer, Err(Failure::TimedOut | Failure::Unreachable)),
        "{answer:?}"
    );
    // An address that answers nothing once its interface is down.
    sandbox.sh("ip -n right link set eth0 down");
    let (_, answer) = echo(
        &sandbox,
        "left",
        ip("10.77.0.2"),
        Duration::from_millis(600),
    );
    assert!(answer.is_err(), "{answer:?}");
}

fn handshake(sandbox: &Sandbox, from: &str, to: SocketAddr) -> Result<Duration, Failure> {
    let probe =
        in_netns(netns_handle(sandbox, from), move || TcpProbe::open(to)).expect("a socket");
    probe.handshake(TIMEOUT)
}

#[test]
fn a_temporary_listener_serves_a_handshake_and_is_gone_after() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    for target in ["10.77.0.2:8080", "[fd00:77::2]:8080"] {
        let target: SocketAddr = target.parse().unwrap();
        assert_eq!(handshake(&sandbox, "left", target), Err(Failure::Refused));
        let listener = in_netns(netns_handle(&sandbox, "right"), move || {
            Listener::start_unless_served(target)
        })
        .expect("listen")
        .expect("nothing listened there");
        assert_eq!(listener.address(), target);
        handshake(&sandbox, "left", target).unwrap_or_else(|f| panic!("{target}: {f}"));
        in_netns(netns_handle(&sandbox, "right"), move || listener.stop()).expect("stopped");
        // Gone: the port refuses again.
        assert_eq!(handshake(&sandbox, "left", target), Err(Failure::Refused));
    }
}

#[test]
fn no_listener_is_started_where_one_already_listens() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    let target: SocketAddr = "10.77.0.2:5432".parse().unwrap();
    // A server of the pod's own, on the wildcard address.
    let server = in_netns(netns_handle(&sandbox, "right"), || {
        TcpListener::bind("0.0.0.0:5432")
    })
    .expect("the pod's server");
    let started = in_netns(netns_handle(&sandbox, "right"), move || {
        Listener::start_unless_served(target)
    })
    .expect("asked");
    assert!(started.is_none(), "{started:?}");
    handshake(&sandbox, "left", target).expect("the pod's own server answers");
    drop(server);
    assert_eq!(handshake(&sandbox, "left", target), Err(Failure::Refused));
}

#[test]
fn a_handshake_without_a_route_says_so() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    let target: SocketAddr = "10.99.0.1:80".parse().unwrap();
    assert_eq!(handshake(&sandbox, "left", target), Err(Failure::NoRoute));
}

/// Namespaces of the sandbox, entered by a thread of its own per job.
struct SandboxNamespaces<'a>(&'a Sandbox);

impl Namespaces for SandboxNamespaces<'_> {
    async fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        job: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        in_netns(netns_handle(self.0, ns), job)
    }
}

fn check(index: usize, to: &str, method: Method, reach: bool) -> Check {
    Check {
        index,
        from: "left".to_string(),
        from_ns: "left".to_string(),
        to: to.to_string(),
        target: ip(to),
        serve_in: (to == "10.77.0.2").then(|| "right".to_string()),
        method,
        reach,
    }
}

#[test]
fn checks_run_together_with_listeners_started_and_stopped_around_them() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    let checks = vec![
        check(0, "10.77.0.2", Method::Echo, true),
        check(1, "10.77.0.2", Method::Tcp { port: 7000 }, true),
        check(2, "fd00:77::2", Method::Echo, true),
        // Served by nobody: the handshake is refused, as it must be.
        check(3, "fd00:77::2", Method::Tcp { port: 7000 }, false),
        check(4, "10.99.0.1", Method::Echo, false),
        // Must be reachable and is not: this one fails.
        check(5, "10.99.0.1", Method::Tcp { port: 80 }, true),
    ];
    let started = std::time::Instant::now();
    let outcomes = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_checks(
            &SandboxNamespaces(&sandbox),
            &checks,
            Duration::from_secs(1),
        ))
        .expect("the listeners were stopped");
    let ok: Vec<bool> = outcomes.iter().map(|o| o.ok).collect();
    assert_eq!(ok, [true, true, true, true, true, false], "{outcomes:#?}");
    assert!(outcomes[1].listener && !outcomes[3].listener);
    assert_eq!(outcomes[3].failure, Some(Failure::Refused));
    assert_eq!(outcomes[5].failure, Some(Failure::NoRoute));
    assert!(outcomes[0].latency.is_some());
    // Concurrently: the failing checks each take the whole second.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The listener is gone.
    let target: SocketAddr = "10.77.0.2:7000".parse().unwrap();
    assert_eq!(handshake(&sandbox, "left", target), Err(Failure::Refused));
}

#[test]
fn a_router_without_a_route_is_reported_as_no_route_not_a_timeout() {
    let Some(sandbox) = two_namespaces() else {
        return;
    };
    // left sends everything to right, which forwards but has no route on.
    sandbox.sh("ip -n left route add default via 10.77.0.2 \
         && ip netns exec right sysctl -qw net.ipv4.ip_forward=1");
    // The handshake fails at the first ICMP error.
    let target: SocketAddr = "10.99.0.1:80".parse().unwrap();
    assert_eq!(handshake(&sandbox, "left", target), Err(Failure::NoRoute));
    let timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let (_, answer) = echo(&sandbox, "left", ip("10.99.0.1"), timeout);
    assert_eq!(answer, Err(Failure::NoRoute));
    // The echo keeps trying until its deadline (a route may still come).
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
}

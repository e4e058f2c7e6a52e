//! Runs resolved expectations (`expect::Check`) with real traffic: the
//! temporary listeners first, then every check at once, each bounded in
//! time, then the listeners stopped and proven gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{EchoSocket, Failure, Listener, TcpProbe};
use crate::expect::{Check, Method};

/// Where probes are opened: a thread inside a named namespace (`""`: the
/// one netloom runs in). A socket opened there stays in that namespace.
pub trait Namespaces {
    fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> impl Future<Output = io::Result<T>>;
}

/// The first pause before another attempt of a check whose route or
/// address is not usable yet.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub check: Check,
    /// Whether the expectation holds: reached, or not reached with
    /// `reach: false`.
    pub ok: bool,
    /// The round trip or handshake time, when the target answered.
    pub latency: Option<Duration>,
    /// Why the target did not answer.
    pub failure: Option<Failure>,
    /// Whether netloom served the port for this check.
    pub listener: bool,
}

impl Outcome {
    /// A check from a pod that has no namespace here: it fails whatever it
    /// expects, since no traffic was sent.
    pub fn not_applied(check: Check) -> Outcome {
        Outcome {
            ok: false,
            latency: None,
            failure: Some(Failure::NotApplied {
                namespace: check.from_ns.clone(),
            }),
            listener: false,
            check,
        }
    }
}

/// Runs the checks: listeners for TCP targets on this machine where
/// nothing listens, every check concurrently (each within `timeout`), the
/// listeners stopped afterwards whatever happened. Errors only when a
/// listener could not be stopped and proven gone.
pub async fn run_checks<N: Namespaces>(
    namespaces: &N,
    checks: &[Check],
    timeout: Duration,
) -> io::Result<Vec<Outcome>> {
    let listeners = start_listeners(namespaces, checks).await;
    let outcomes = futures::future::join_all(checks.iter().map(|check| async {
        let answer = run_check(namespaces, check, timeout).await;
        let served = listen_address(check).is_some_and(|key| listeners.contains_key(&key));
        outcome(check.clone(), answer, served)
    }))
    .await;
    let mut stopped = Ok(());
    for ((ns, address), listener) in listeners {
        let stop = namespaces.run_in(&ns, move || listener.stop()).await;
        if let Err(err) = stop {
            let err = io::Error::other(format!("stop the listener on {address} in {ns}: {err}"));
            stopped = stopped.and(Err(err));
        }
    }
    stopped.map(|()| outcomes)
}

/// Where netloom would listen for a check: a TCP check whose target pod is
/// on this machine.
fn listen_address(check: &Check) -> Option<(String, SocketAddr)> {
    match (check.method, &check.serve_in) {
        (Method::Tcp { port }, Some(ns)) => Some((ns.clone(), SocketAddr::new(check.target, port))),
        _ => None,
    }
}

/// One listener per (namespace, address, port) that nothing serves yet. A
/// listener that cannot start (the address is not there) is left out: its
/// checks then fail on their own, with the kernel's reason.
async fn start_listeners<N: Namespaces>(
    namespaces: &N,
    checks: &[Check],
) -> BTreeMap<(String, SocketAddr), Listener> {
    let mut listeners = BTreeMap::new();
    for (ns, address) in checks.iter().filter_map(listen_address) {
        if listeners.contains_key(&(ns.clone(), address)) {
            continue;
        }
        let started = namespaces
            .run_in(&ns, move || Listener::start_unless_served(address))
            .await;
        match started {
            Ok(Some(listener)) => {
                listeners.insert((ns, address), listener);
            }
            Ok(None) => tracing::debug!("{address} in {ns} is served already"),
            Err(err) => tracing::warn!("cannot listen on {address} in {ns}: {err}"),
        }
    }
    listeners
}

/// One check, retried while its route or address is not usable yet (right
/// after an apply), until `timeout`; the pause between attempts doubles, so
/// a router answering each with an ICMP error is not pushed into its rate
/// limit. A failure that says why beats a later "timed out".
async fn run_check<N: Namespaces>(
    namespaces: &N,
    check: &Check,
    timeout: Duration,
) -> Result<Duration, Failure> {
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_RETRY_PAUSE;
    let mut reason = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(namespaces, check, left).await {
            Ok(latency) => return Ok(latency),
            // Not usable yet, perhaps: again while there is time.
            Err(failure @ (Failure::NoRoute | Failure::Unreachable | Failure::Error(_)))
                if Instant::now() + pause < deadline =>
            {
                reason = Some(failure);
            }
            Err(Failure::TimedOut) if reason.is_some() => {
                return Err(reason.unwrap_or(Failure::TimedOut));
            }
            Err(failure) => return Err(failure),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// Opens the probe in the `from` pod, then waits for the answer on a
/// thread of its own, so the pod's namespace worker stays free.
async fn attempt<N: Namespaces>(
    namespaces: &N,
    check: &Check,
    timeout: Duration,
) -> Result<Duration, Failure> {
    let target = check.target;
    let failed = |err: io::Error| Failure::from_io(&err);
    let exchange = match check.method {
        Method::Echo => {
            let socket = namespaces
                .run_in(&check.from_ns, move || Ok(EchoSocket::open(target)))
                .await
                .map_err(failed)??;
            tokio::task::spawn_blocking(move || socket.echo(timeout)).await
        }
        Method::Tcp { port } => {
            let address = SocketAddr::new(target, port);
            let probe = namespaces
                .run_in(&check.from_ns, move || TcpProbe::open(address))
                .await
                .map_err(failed)?;
            tokio::task::spawn_blocking(move || probe.handshake(timeout)).await
        }
    };
    exchange.map_err(|err| Failure::Error(format!("the probe thread failed: {err}")))?
}

fn outcome(check: Check, answer: Result<Duration, Failure>, listener: bool) -> Outcome {
    let reached = answer.is_ok();
    Outcome {
        ok: reached == check.reach,
        latency: answer.as_ref().ok().copied(),
        failure: answer.err(),
        listener,
        check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(reach: bool) -> Check {
        Check {
            index: 0,
            from: "a".to_string(),
            from_ns: "a".to_string(),
            to: "b".to_string(),
            target: "10.0.0.3".parse().unwrap(),
            serve_in: Some("b".to_string()),
            method: Method::Tcp { port: 80 },
            reach,
        }
    }

    #[test]
    fn an_expectation_holds_when_reality_matches_reach() {
        let answered = Ok(Duration::from_millis(3));
        let refused = Err(Failure::Refused);
        assert!(outcome(check(true), answered.clone(), true).ok);
        assert!(!outcome(check(true), refused.clone(), true).ok);
        assert!(outcome(check(false), refused.clone(), true).ok);
        assert!(!outcome(check(false), answered, true).ok);
        let failed = outcome(check(true), refused, false);
        assert_eq!(failed.failure, Some(Failure::Refused));
        assert_eq!(failed.latency, None);
    }

    #[test]
    fn only_tcp_checks_to_pods_of_this_machine_get_a_listener() {
        let tcp = check(true);
        assert_eq!(
            listen_address(&tcp),
            Some(("b".to_string(), "10.0.0.3:80".parse().unwrap()))
        );
        let elsewhere = Check {
            serve_in: None,
            ..check(true)
        };
        assert_eq!(listen_address(&elsewhere), None);
        let echo = Check {
            method: Method::Echo,
            ..check(true)
        };
        assert_eq!(listen_address(&echo), None);
    }
}

//! `watch --metrics ADDR`: what the loop did, as Prometheus scrapes it
//! (`GET /metrics`, the OpenMetrics text format), and whether it is up
//! (`GET /healthz`: 200 once the first reconcile converged, 503 before).
//!
//! The server is tiny_http on threads of its own that sleep in accept, so an
//! idle watch stays idle; the metrics are atomics the loop updates.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    reason: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// How objects stood at the last look: the states of `netloom status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    pub in_sync: u64,
    pub drifted: u64,
    pub missing: u64,
    pub extra: u64,
}

/// What one reconcile did, as the loop reports it.
pub struct ReconcileReport<'a> {
    /// Why it ran: `start`, `file`, `kernel`, `resync`, `retry`.
    pub reason: &'a str,
    pub converged: bool,
    /// Changes made to repair drift (not to follow a new file).
    pub repairs: u64,
    pub duration: Duration,
    /// Objects before the reconcile acted.
    pub objects: ObjectCounts,
}

/// The metrics of one watch.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    repairs: Counter,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    objects: Family<StateLabels, Gauge>,
    file_valid: Gauge,
    namespaces: Gauge,
    converged_once: AtomicBool,
    /// Why the last reconcile failed, for /healthz before the first success.
    last_error: Mutex<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let repairs = Counter::default();
        // 1 ms .. about 65 s.
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 17,
        ));
        let last_success = Gauge::<f64, AtomicU64>::default();
        let objects = Family::<StateLabels, Gauge>::default();
        let file_valid = Gauge::default();
        let namespaces = Gauge::default();
        let mut registry = Registry::with_prefix("netloom");
        registry.register(
            "reconciles",
            "Reconciles run, by why (start, file, kernel, resync, retry) and result (converged, failed)",
            reconciles.clone(),
        );
        registry.register(
            "drift_repairs",
            "Changes made to repair drift rather than to follow an edit of the file",
            repairs.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took",
            duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When a reconcile last converged (Unix time)",
            last_success.clone(),
        );
        registry.register(
            "objects",
            "Objects of the topology by state (in-sync, drifted, missing, extra) at the last look",
            objects.clone(),
        );
        registry.register(
            "file_valid",
            "1 if the file's current content is a valid topology, 0 while an invalid edit waits for a fix",
            file_valid.clone(),
        );
        registry.register(
            "watched_namespaces",
            "Namespaces whose kernel events are listened to",
            namespaces.clone(),
        );
        Metrics {
            registry,
            reconciles,
            repairs,
            duration,
            last_success,
            objects,
            file_valid,
            namespaces,
            converged_once: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub fn reconciled(&self, report: &ReconcileReport, error: Option<String>) {
        let result = if report.converged {
            "converged"
        } else {
            "failed"
        };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                reason: report.reason.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.repairs.inc_by(report.repairs);
        self.duration.observe(report.duration.as_secs_f64());
        let counts = report.objects;
        for (state, count) in [
            ("in-sync", counts.in_sync),
            ("drifted", counts.drifted),
            ("missing", counts.missing),
            ("extra", counts.extra),
        ] {
            self.objects
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(count as i64);
        }
        if report.converged {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
            self.converged_once.store(true, Ordering::Release);
        }
        *self.last_error.lock().expect("last error lock") = error;
    }

    pub fn file_valid(&self, valid: bool) {
        self.file_valid.set(i64::from(valid));
    }

    pub fn watched_namespaces(&self, count: usize) {
        self.namespaces.set(count as i64);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The answer of /healthz: status code and body.
    fn health(&self) -> (u16, String) {
        if self.converged_once.load(Ordering::Acquire) {
            return (200, "ok\n".to_string());
        }
        match &*self.last_error.lock().expect("last error lock") {
            Some(error) => (503, format!("not converged yet: {error}\n")),
            None => (503, "not converged yet\n".to_string()),
        }
    }
}

/// The HTTP endpoint; dropping it stops it.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` (`host:port`) and serves `metrics`.
    pub fn start(addr: &str, metrics: Arc<Metrics>) -> std::io::Result<MetricsServer> {
        let server = Arc::new(tiny_http::Server::http(addr).map_err(std::io::Error::other)?);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let (code, body, content_type) = match request.url() {
                        "/metrics" => (
                            200,
                            metrics.encode(),
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                        "/healthz" => {
                            let (code, body) = metrics.health();
                            (code, body, "text/plain; charset=utf-8")
                        }
                        _ => (
                            404,
                            "not found: try /metrics or /healthz\n".to_string(),
                            "text/plain; charset=utf-8",
                        ),
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                        .expect("a valid header");
                    let response = tiny_http::Response::from_string(body)
                        .with_status_code(code)
                        .with_header(header);
                    // A client that went away is its own problem.
                    let _ = request.respond(response);
                }
            })?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
        })
    }

    /// Where it listens (the port chosen, for `:0`).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.server_addr().to_ip()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// The status code and the whole answer.
    fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let code = answer.split(' ').nth(1).and_then(|c| c.parse().ok());
        (
            code.unwrap_or_else(|| panic!("no status in {answer}")),
            answer,
        )
    }

    fn report(reason: &str, converged: bool) -> ReconcileReport<'_> {
        ReconcileReport {
            reason,
            converged,
            repairs: 2,
            duration: Duration::from_millis(30),
            objects: ObjectCounts {
                in_sync: 10,
                drifted: 1,
                missing: 1,
                extra: 0,
            },
        }
    }

    #[test]
    fn counts_reconciles_by_reason_and_result() {
        let metrics = Metrics::new();
        metrics.reconciled(&report("kernel", true), None);
        metrics.reconciled(&report("kernel", true), None);
        metrics.reconciled(&report("file", false), Some("boom".into()));
        let text = metrics.encode();
        assert!(
            text.contains("netloom_reconciles_total{reason=\"kernel\",result=\"converged\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("netloom_reconciles_total{reason=\"file\",result=\"failed\"} 1"),
            "{text}"
        );
        assert!(text.contains("netloom_drift_repairs_total 6"), "{text}");
        assert!(
            text.contains("netloom_objects{state=\"drifted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("netloom_reconcile_duration_seconds_count 3"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn serves_metrics_and_health_over_http() {
        let metrics = Arc::new(Metrics::new());
        let server = MetricsServer::start("127.0.0.1:0", metrics.clone()).unwrap();
        let addr = server.local_addr().unwrap();

        assert_eq!(get(addr, "/healthz").0, 503);
        metrics.reconciled(&report("start", false), Some("lock busy".into()));
        let (code, health) = get(addr, "/healthz");
        assert_eq!(code, 503);
        assert!(health.contains("not converged yet: lock busy"), "{health}");
        metrics.reconciled(&report("retry", true), None);
        assert_eq!(get(addr, "/healthz").0, 200);

        let (code, scraped) = get(addr, "/metrics");
        assert_eq!(code, 200);
        assert!(
            scraped.contains("application/openmetrics-text"),
            "{scraped}"
        );
        assert!(scraped.contains("netloom_last_success_timestamp_seconds"));
        assert_eq!(get(addr, "/nothing").0, 404);
        drop(server);
        // tiny_http's accept thread lets go of the port just after.
        let stopped = std::time::Instant::now();
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(
                stopped.elapsed() < Duration::from_secs(5),
                "still listening"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

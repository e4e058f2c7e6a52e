//! The loop's bookkeeping, apart from any kernel: what the next reconcile
//! must cover (everything that woke the loop since the last one, merged),
//! and how long to wait after failures.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kernel::events::NamespaceChange;
use crate::model::OWN_NAMESPACE;

/// What the next reconcile must cover. Events that arrive while one runs
/// merge here, so they make one follow-up, never a queue of them.
#[derive(Debug, Default)]
pub struct Work {
    /// The first reconcile of the watch.
    pub start: bool,
    /// The file has new valid content.
    pub file: bool,
    /// The periodic full resync is due.
    pub resync: bool,
    /// A failed reconcile is due again.
    pub retry: bool,
    /// Namespaces with kernel events, and what changed in each.
    pub namespaces: BTreeMap<String, NamespaceChange>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        !self.start && !self.file && !self.resync && !self.retry && self.namespaces.is_empty()
    }

    /// Whether everything must be observed; otherwise only `namespaces`.
    pub fn is_full(&self) -> bool {
        self.start || self.file || self.resync || self.retry
    }

    pub fn kernel_events(&mut self, changes: BTreeMap<String, NamespaceChange>) {
        for (ns, change) in changes {
            self.namespaces.entry(ns).or_default().merge(&change);
        }
    }

    /// The one word a metric labels it with, by precedence: the start, then
    /// a new file, a retry, a resync, and events.
    pub fn reason(&self) -> &'static str {
        if self.start {
            "start"
        } else if self.file {
            "file"
        } else if self.retry {
            "retry"
        } else if self.resync {
            "resync"
        } else {
            "kernel"
        }
    }

    /// Why, for the log line: `file`, `kernel event in netns a (links)`.
    pub fn describe(&self) -> String {
        let mut why: Vec<String> = [
            (self.start, "start"),
            (self.file, "file changed"),
            (self.retry, "retry"),
            (self.resync, "resync"),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| name.to_string())
        .collect();
        if !self.namespaces.is_empty() {
            let events: Vec<String> = self
                .namespaces
                .iter()
                .take(MAX_NAMED_NAMESPACES)
                .map(|(ns, change)| format!("{} ({})", label(ns), change.describe()))
                .collect();
            let more = self.namespaces.len().saturating_sub(MAX_NAMED_NAMESPACES);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            why.push(format!("kernel events in {}{tail}", events.join(", ")));
        }
        why.join("; ")
    }
}

/// A log line names this many namespaces at most.
const MAX_NAMED_NAMESPACES: usize = 5;

fn label(ns: &str) -> String {
    if ns.is_empty() {
        OWN_NAMESPACE.to_string()
    } else {
        format!("netns {ns}")
    }
}

/// Exponential backoff between failed reconciles: `first`, doubling, at most
/// `max`; reset by a success.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            failures: 0,
        }
    }

    /// Notes a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        let delay = self
            .first
            .saturating_mul(1 << self.failures.min(16))
            .min(self.max);
        self.failures += 1;
        delay
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> NamespaceChange {
        NamespaceChange {
            links: true,
            ..NamespaceChange::default()
        }
    }

    #[test]
    fn events_merge_into_one_piece_of_work() {
        let mut work = Work::default();
        assert!(work.is_empty());
        work.kernel_events(BTreeMap::from([("a".to_string(), links())]));
        let addresses = NamespaceChange {
            addresses: true,
            ..NamespaceChange::default()
        };
        work.kernel_events(BTreeMap::from([
            ("a".to_string(), addresses),
            (String::new(), links()),
        ]));
        assert!(!work.is_full());
        assert_eq!(work.reason(), "kernel");
        assert_eq!(
            work.describe(),
            "kernel events in this machine's namespace (links), netns a (links, addresses)"
        );
        work.file = true;
        assert!(work.is_full());
        assert_eq!(work.reason(), "file");
        assert!(work.describe().starts_with("file changed; kernel events"));
    }

    #[test]
    fn a_long_list_of_namespaces_is_cut_short() {
        let mut work = Work::default();
        work.kernel_events((0..8).map(|i| (format!("p{i}"), links())).collect());
        assert!(
            work.describe().ends_with("netns p4 (links) and 3 more"),
            "{}",
            work.describe()
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let delays: Vec<u64> = (0..6)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff.failures(), 6);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(500));
    }
}

//! Kernel events: which namespaces changed since they were last looked at.
//!
//! Each namespace in scope gets a netlink socket of its own, opened on the
//! namespace's worker (a socket belongs to the namespace it was opened in, so
//! an event's namespace is known without asking) and subscribed to the
//! multicast groups of what netloom manages: links, addresses, routes,
//! per-interface IP settings (netconf: forwarding and friends) and qdiscs.
//! It is not the request socket: a flood of events (a large apply's own) can
//! overflow it, which only means "something changed here", and must never
//! cost a request its answer.
//!
//! Events are not queued but merged: one pending entry per namespace, taken
//! whole by the watch loop, so a thousand events during a reconcile are one
//! follow-up and memory does not grow with the rate.
//!
//! A namespace deleted behind netloom's back (`ip netns delete`) would live on
//! while netloom holds a socket or worker in it, so its deletion is seen in
//! /run/netns (inotify), not on the socket: the entry is marked gone, and the
//! caller lets go of it (`unsubscribe`, `Kernel::release_namespace`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use netlink_packet_core::NetlinkBuffer;
use netlink_sys::{AsyncSocket, AsyncSocketExt, TokioSocket, protocols::NETLINK_ROUTE};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::error::{Context, Result};
use super::{Kernel, namespace_label, netns};

/// The multicast groups whose messages mean netloom's objects may differ
/// from what was last observed. Neighbour events are left out: ordinary
/// traffic resolves neighbours all the time; the periodic resync covers
/// fdb entries.
const GROUPS: [u32; 8] = [
    libc::RTNLGRP_LINK,
    libc::RTNLGRP_IPV4_IFADDR,
    libc::RTNLGRP_IPV6_IFADDR,
    libc::RTNLGRP_IPV4_ROUTE,
    libc::RTNLGRP_IPV6_ROUTE,
    libc::RTNLGRP_IPV4_NETCONF,
    libc::RTNLGRP_IPV6_NETCONF,
    libc::RTNLGRP_TC,
];

/// Room for a burst of events before the kernel drops some (ENOBUFS).
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

/// What happened in one namespace since it was last taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceChange {
    pub links: bool,
    pub addresses: bool,
    pub routes: bool,
    /// Forwarding and other per-interface IP settings.
    pub settings: bool,
    pub qdiscs: bool,
    /// Events were lost (the socket overflowed, or failed and was closed):
    /// anything may have changed.
    pub missed: bool,
    /// Its /run/netns entry is gone: deleted behind netloom's back.
    pub gone: bool,
}

impl NamespaceChange {
    pub fn merge(&mut self, other: &NamespaceChange) {
        self.links |= other.links;
        self.addresses |= other.addresses;
        self.routes |= other.routes;
        self.settings |= other.settings;
        self.qdiscs |= other.qdiscs;
        self.missed |= other.missed;
        self.gone |= other.gone;
    }

    /// What a message of this netlink type says changed (nothing, for a type
    /// none of the groups should send).
    fn of_message(message_type: u16) -> NamespaceChange {
        let mut change = NamespaceChange::default();
        match message_type {
            libc::RTM_NEWLINK | libc::RTM_DELLINK => change.links = true,
            libc::RTM_NEWADDR | libc::RTM_DELADDR => change.addresses = true,
            libc::RTM_NEWROUTE | libc::RTM_DELROUTE => change.routes = true,
            libc::RTM_NEWNETCONF | libc::RTM_DELNETCONF => change.settings = true,
            libc::RTM_NEWQDISC | libc::RTM_DELQDISC => change.qdiscs = true,
            _ => {}
        }
        change
    }

    /// Every message of a datagram, merged.
    fn of_datagram(mut bytes: &[u8]) -> NamespaceChange {
        let mut change = NamespaceChange::default();
        while let Ok(message) = NetlinkBuffer::new_checked(bytes) {
            change.merge(&NamespaceChange::of_message(message.message_type()));
            // Messages are 4-byte aligned within a datagram.
            let length = (message.length() as usize).next_multiple_of(4);
            if length == 0 || length >= bytes.len() {
                break;
            }
            bytes = &bytes[length..];
        }
        change
    }

    /// The parts that changed, for messages: "links, routes".
    pub fn describe(&self) -> String {
        let parts = [
            (self.gone, "namespace deleted"),
            (self.missed, "events lost"),
            (self.links, "links"),
            (self.addresses, "addresses"),
            (self.routes, "routes"),
            (self.settings, "settings"),
            (self.qdiscs, "qdiscs"),
        ];
        let named: Vec<&str> = parts
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
        named.join(", ")
    }
}

/// What the reader tasks and the /run/netns watch leave for the loop.
#[derive(Default)]
struct Pending {
    changes: Mutex<BTreeMap<String, NamespaceChange>>,
    /// Raised on every new entry; a stored permit makes any number of them
    /// one wake-up.
    wakeup: Notify,
    /// The named namespaces subscribed, which the /run/netns watch checks.
    subscribed: Mutex<BTreeSet<String>>,
}

impl Pending {
    fn record(&self, ns: &str, change: &NamespaceChange) {
        if change == &NamespaceChange::default() {
            return;
        }
        self.changes
            .lock()
            .expect("pending changes lock")
            .entry(ns.to_string())
            .or_default()
            .merge(change);
        self.wakeup.notify_one();
    }

    /// Marks gone each subscribed namespace whose /run/netns entry no longer
    /// pins a namespace, of those named (all, for `None`).
    fn check_gone(&self, names: Option<Vec<String>>) {
        let subscribed = self.subscribed.lock().expect("subscribed lock").clone();
        let candidates = match names {
            Some(names) => names
                .into_iter()
                .filter(|n| subscribed.contains(n))
                .collect(),
            None => subscribed,
        };
        let gone = NamespaceChange {
            gone: true,
            ..NamespaceChange::default()
        };
        for ns in candidates {
            if !netns::netns_exists(&ns) {
                self.record(&ns, &gone);
            }
        }
    }
}

/// Kernel events of the namespaces subscribed. Dropping it closes every
/// socket and stops the /run/netns watch.
pub struct KernelEvents {
    pending: Arc<Pending>,
    readers: HashMap<String, JoinHandle<()>>,
    /// Started with the first named namespace (before that, /run/netns may
    /// not exist).
    netns_watch: Option<RecommendedWatcher>,
}

impl Default for KernelEvents {
    fn default() -> Self {
        KernelEvents::new()
    }
}

impl KernelEvents {
    pub fn new() -> KernelEvents {
        KernelEvents {
            pending: Arc::default(),
            readers: HashMap::new(),
            netns_watch: None,
        }
    }

    /// Listens to namespace `ns` (`""`: the one netloom runs in), if not
    /// already; a subscription whose socket failed is renewed.
    pub async fn subscribe(&mut self, kernel: &Kernel, ns: &str) -> Result<()> {
        if self.readers.get(ns).is_some_and(|r| !r.is_finished()) {
            return Ok(());
        }
        if !ns.is_empty() {
            self.watch_netns_dir()
                .map_err(io::Error::other)
                .op(|| format!("watch {}", netns::NETNS_RUN_DIR))?;
            self.pending
                .subscribed
                .lock()
                .expect("subscribed lock")
                .insert(ns.to_string());
        }
        let runtime = tokio::runtime::Handle::current();
        let socket = kernel
            .run_in(ns, move || open_event_socket(&runtime))
            .await
            .op(|| format!("listen to netlink events in {}", namespace_label(ns)))?;
        let reader = tokio::spawn(read_events(ns.to_string(), socket, self.pending.clone()));
        self.readers.insert(ns.to_string(), reader);
        // Deleted between the last look and this subscription: say so now.
        if !ns.is_empty() {
            self.pending.check_gone(Some(vec![ns.to_string()]));
        }
        Ok(())
    }

    /// Stops listening to `ns` and closes its socket, so that a namespace
    /// deleted elsewhere can really go.
    pub fn unsubscribe(&mut self, ns: &str) {
        if let Some(reader) = self.readers.remove(ns) {
            reader.abort();
        }
        self.pending
            .subscribed
            .lock()
            .expect("subscribed lock")
            .remove(ns);
    }

    /// The namespaces listened to.
    pub fn subscribed(&self) -> BTreeSet<String> {
        self.readers.keys().cloned().collect()
    }

    /// Waits until some namespace changed, then takes everything pending.
    pub async fn next(&self) -> BTreeMap<String, NamespaceChange> {
        loop {
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            self.pending.wakeup.notified().await;
        }
    }

    /// Everything pending now (possibly nothing), without waiting: what
    /// arrived during a reconcile, or netloom's own writes, to fold into one
    /// follow-up or drop.
    pub fn take(&self) -> BTreeMap<String, NamespaceChange> {
        std::mem::take(&mut *self.pending.changes.lock().expect("pending changes lock"))
    }

    fn watch_netns_dir(&mut self) -> notify::Result<()> {
        if self.netns_watch.is_some() {
            return Ok(());
        }
        let pending = self.pending.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // An event names the entries it is about; an error (the queue
                // overflowed) names none: check every subscribed namespace.
                let names = event.ok().filter(|e| !e.paths.is_empty()).map(|e| {
                    e.paths
                        .iter()
                        .filter_map(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect()
                });
                pending.check_gone(names);
            })?;
        watcher.watch(Path::new(netns::NETNS_RUN_DIR), RecursiveMode::NonRecursive)?;
        self.netns_watch = Some(watcher);
        Ok(())
    }
}

impl Drop for KernelEvents {
    fn drop(&mut self) {
        for reader in self.readers.values() {
            reader.abort();
        }
    }
}

impl Kernel {
    /// Lets go of a namespace deleted behind netloom's back (its worker and
    /// request socket), so that the kernel can free it and the veths in it.
    pub fn release_namespace(&self, ns: &str) {
        self.forget(ns);
    }
}

/// A netlink socket of the calling thread's namespace, member of `GROUPS`,
/// registered with the given runtime's reactor.
fn open_event_socket(runtime: &tokio::runtime::Handle) -> io::Result<TokioSocket> {
    let _runtime = runtime.enter();
    let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
    let socket_ref = socket.socket_mut();
    socket_ref.bind_auto()?;
    socket_ref.set_rx_buf_sz(RECEIVE_BUFFER_BYTES)?;
    for group in GROUPS {
        socket_ref.add_membership(group)?;
    }
    Ok(socket)
}

/// Turns the socket's datagrams into pending changes of `ns`, until the
/// socket fails (or the task is aborted).
async fn read_events(ns: String, socket: TokioSocket, pending: Arc<Pending>) {
    let missed = NamespaceChange {
        missed: true,
        ..NamespaceChange::default()
    };
    loop {
        match socket.recv_from_full().await {
            Ok((datagram, _sender)) => {
                pending.record(&ns, &NamespaceChange::of_datagram(&datagram));
            }
            // The kernel dropped events it had no room for; the socket works on.
            Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => pending.record(&ns, &missed),
            Err(err) => {
                tracing::warn!(
                    "netlink events of {} stopped: {err}; the next resync covers it",
                    namespace_label(&ns)
                );
                pending.record(&ns, &missed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink header of the given type and length, then the padding.
    fn message(message_type: u16, length: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&length.to_ne_bytes());
        bytes.extend_from_slice(&message_type.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.resize((length as usize).next_multiple_of(4), 0);
        bytes
    }

    #[test]
    fn every_message_of_a_datagram_counts() {
        let mut datagram = message(libc::RTM_NEWADDR, 22);
        datagram.extend(message(libc::RTM_DELROUTE, 16));
        let change = NamespaceChange::of_datagram(&datagram);
        assert_eq!(
            change,
            NamespaceChange {
                addresses: true,
                routes: true,
                ..NamespaceChange::default()
            }
        );
        assert_eq!(change.describe(), "addresses, routes");
    }

    #[test]
    fn a_truncated_datagram_counts_what_it_holds() {
        let mut datagram = message(libc::RTM_NEWLINK, 16);
        datagram.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            NamespaceChange::of_datagram(&datagram),
            NamespaceChange {
                links: true,
                ..NamespaceChange::default()
            }
        );
        assert_eq!(
            NamespaceChange::of_datagram(&[]),
            NamespaceChange::default()
        );
    }

    #[test]
    fn pending_changes_merge_per_namespace_and_are_taken_whole() {
        let events = KernelEvents::new();
        let link = NamespaceChange::of_message(libc::RTM_NEWLINK);
        let qdisc = NamespaceChange::of_message(libc::RTM_NEWQDISC);
        events.pending.record("a", &link);
        events.pending.record("a", &qdisc);
        events.pending.record("b", &link);
        events.pending.record("c", &NamespaceChange::default());
        let taken = events.take();
        assert_eq!(taken.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(taken["a"].describe(), "links, qdiscs");
        assert!(events.take().is_empty());
    }
}

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
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::RouteAttribute;
use netlink_sys::{AsyncSocket, AsyncSocketExt, TokioSocket, protocols::NETLINK_ROUTE};
use nix::sys::socket::MsgFlags;
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
    /// The interfaces the events were about, by name.
    pub interfaces: BTreeSet<String>,
    /// Some event was about no one interface (a route without an output
    /// device, a namespace-wide setting, an interface not yet known), or
    /// events were lost: anything in the namespace may have changed.
    pub anywhere: bool,
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
        self.interfaces.extend(other.interfaces.iter().cloned());
        self.anywhere |= other.anywhere;
    }

    /// Events were lost, or the namespace went: anything may have changed.
    fn lost(gone: bool) -> NamespaceChange {
        NamespaceChange {
            missed: !gone,
            gone,
            anywhere: true,
            ..NamespaceChange::default()
        }
    }

    /// The interfaces touched, or `None` for anything in the namespace.
    pub fn touched(&self) -> Option<&BTreeSet<String>> {
        (!self.anywhere).then_some(&self.interfaces)
    }

    /// Notes an event about the interface of this index (`None`: about no
    /// one interface).
    fn touch(&mut self, index: Option<u32>, names: &Interfaces) {
        match index.and_then(|index| names.get(&index)) {
            Some(name) => {
                self.interfaces.insert(name.clone());
            }
            None => self.anywhere = true,
        }
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

/// ifindex -> name of one namespace's interfaces, kept up to date by its
/// link events, so that an event naming an index can name the interface.
type Interfaces = HashMap<u32, String>;

/// The main routing table: the only one netloom reads (`observe`), so a
/// route event of another (`local`, every address makes some) is not drift.
const MAIN_TABLE: u32 = 254;

/// What one datagram of an event socket says: what changed, and which
/// barrier it acknowledges, if it is an acknowledgement.
fn read_datagram(mut bytes: &[u8], names: &mut Interfaces) -> (NamespaceChange, Option<u32>) {
    let mut change = NamespaceChange::default();
    let mut acked = None;
    while let Ok(message) = NetlinkBuffer::new_checked(bytes) {
        let length = message.length() as usize;
        if message.message_type() == NLMSG_ERROR {
            acked = Some(message.sequence_number());
        } else {
            read_message(&bytes[..length], names, &mut change);
        }
        // Messages are 4-byte aligned within a datagram.
        let length = length.next_multiple_of(4);
        if length == 0 || length >= bytes.len() {
            break;
        }
        bytes = &bytes[length..];
    }
    (change, acked)
}

const NLMSG_ERROR: u16 = 2;

/// Adds what one event message says changed, and where, to `change`.
fn read_message(bytes: &[u8], names: &mut Interfaces, change: &mut NamespaceChange) {
    let message_type = NetlinkBuffer::new(bytes).message_type();
    if matches!(message_type, libc::RTM_NEWNETCONF | libc::RTM_DELNETCONF) {
        // Not parsed by netlink-packet-route: the index is read by hand.
        change.settings = true;
        change.touch(netconf_ifindex(bytes), names);
        return;
    }
    let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) else {
        // Of a group netloom listens to, but not understood: it may be anything.
        change.anywhere = true;
        return;
    };
    let NetlinkPayload::InnerMessage(message) = message.payload else {
        return;
    };
    match message {
        RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link) => {
            change.links = true;
            let index = link.header.index;
            for attribute in &link.attributes {
                if let LinkAttribute::IfName(name) = attribute {
                    names.insert(index, name.clone());
                }
            }
            change.touch(Some(index), names);
            if message_type == libc::RTM_DELLINK {
                names.remove(&index);
            }
        }
        RouteNetlinkMessage::NewAddress(address) | RouteNetlinkMessage::DelAddress(address) => {
            change.addresses = true;
            change.touch(Some(address.header.index), names);
        }
        RouteNetlinkMessage::NewRoute(route) | RouteNetlinkMessage::DelRoute(route) => {
            let mut table = u32::from(route.header.table);
            let mut device = None;
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Oif(index) => device = Some(*index),
                    _ => {}
                }
            }
            if table == MAIN_TABLE {
                change.routes = true;
                change.touch(device, names);
            }
        }
        RouteNetlinkMessage::NewQueueDiscipline(qdisc)
        | RouteNetlinkMessage::DelQueueDiscipline(qdisc) => {
            change.qdiscs = true;
            change.touch(u32::try_from(qdisc.header.index).ok(), names);
        }
        _ => {}
    }
}

/// The interface a netconf message is about (`None`: all, or the defaults
/// for new ones): its NETCONFA_IFINDEX attribute, after the 16-byte netlink
/// header and the 4-byte (padded) netconfmsg.
fn netconf_ifindex(bytes: &[u8]) -> Option<u32> {
    const NETCONFA_IFINDEX: u16 = 1;
    let mut attributes = bytes.get(20..)?;
    while attributes.len() >= 4 {
        let length = u16::from_ne_bytes([attributes[0], attributes[1]]) as usize;
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if length < 4 || length > attributes.len() {
            return None;
        }
        if kind == NETCONFA_IFINDEX && length >= 8 {
            let index = i32::from_ne_bytes(attributes[4..8].try_into().ok()?);
            // NETCONFA_IFINDEX_ALL (-1) and _DEFAULT (-2) are no one interface.
            return u32::try_from(index).ok();
        }
        attributes = attributes
            .get(length.next_multiple_of(4)..)
            .unwrap_or_default();
    }
    None
}

/// A barrier on one namespace's event socket: a no-op request whose
/// acknowledgement the kernel queues behind every event already queued.
/// Sent right before netloom reads the namespace, its acknowledgement marks
/// the events that reading saw the effect of: those need no follow-up.
/// netloom's own writes are always among them, since each reconcile reads
/// back what it wrote.
struct Barrier {
    /// A second descriptor of the event socket, to send on.
    socket: OwnedFd,
    sent: u32,
    acked: u32,
}

impl Barrier {
    fn send(&mut self) {
        let sequence = self.sent + 1;
        let mut request = [0u8; 16];
        request[0..4].copy_from_slice(&16u32.to_ne_bytes());
        request[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
        request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        request[8..12].copy_from_slice(&sequence.to_ne_bytes());
        // A barrier that cannot be sent covers nothing: the events stay.
        if nix::sys::socket::send(self.socket.as_raw_fd(), &request, MsgFlags::MSG_DONTWAIT).is_ok()
        {
            self.sent = sequence;
        }
    }
}

const NLMSG_NOOP: u16 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

/// What the reader tasks and the /run/netns watch leave for the loop.
#[derive(Default)]
struct Pending {
    changes: Mutex<BTreeMap<String, NamespaceChange>>,
    /// Raised on every new entry; a stored permit makes any number of them
    /// one wake-up.
    wakeup: Notify,
    /// The named namespaces subscribed, which the /run/netns watch checks.
    subscribed: Mutex<BTreeSet<String>>,
    barriers: Mutex<HashMap<String, Barrier>>,
    /// Raised when a barrier is acknowledged.
    acknowledged: Notify,
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
        for ns in candidates {
            if !netns::netns_exists(&ns) {
                self.record(&ns, &NamespaceChange::lost(true));
            }
        }
    }

    /// Sends a barrier to the namespace, if it is subscribed.
    fn barrier(&self, ns: &str) {
        if let Some(barrier) = self.barriers.lock().expect("barriers lock").get_mut(ns) {
            barrier.send();
        }
    }

    /// Barrier `sequence` of `ns` came back: everything recorded of `ns`
    /// until now was seen by the reading that followed it.
    fn acknowledged(&self, ns: &str, sequence: u32) {
        self.changes
            .lock()
            .expect("pending changes lock")
            .remove(ns);
        if let Some(barrier) = self.barriers.lock().expect("barriers lock").get_mut(ns) {
            barrier.acked = barrier.acked.max(sequence);
        }
        self.acknowledged.notify_waiters();
    }

    fn barriers_settled(&self) -> bool {
        let barriers = self.barriers.lock().expect("barriers lock");
        barriers.values().all(|b| b.acked >= b.sent)
    }
}

/// How long `settle` waits for barriers (a socket that overflowed drops
/// them: its events then stay, and make a follow-up).
const SETTLE_AT_MOST: Duration = Duration::from_secs(1);

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

    /// From now on, every reading of a subscribed namespace by `kernel`
    /// is preceded by a barrier: the events it saw the effect of (netloom's
    /// own writes among them) are dropped once `settle` returns.
    pub fn cover_readings(&self, kernel: &Kernel) {
        let pending = self.pending.clone();
        kernel.before_reading(Arc::new(move |ns: &str| pending.barrier(ns)));
    }

    /// Waits (a little at most) until every barrier sent came back, so that
    /// what is pending then is only what the last readings did not see.
    pub async fn settle(&self) {
        let settled = async {
            loop {
                let acknowledged = self.pending.acknowledged.notified();
                tokio::pin!(acknowledged);
                acknowledged.as_mut().enable();
                if self.pending.barriers_settled() {
                    return;
                }
                acknowledged.await;
            }
        };
        if tokio::time::timeout(SETTLE_AT_MOST, settled).await.is_err() {
            tracing::debug!("some netlink event barriers did not come back in time");
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
        // SAFETY: the descriptor is the socket's, open while `socket` lives,
        // which is past this borrow: it is only duplicated here.
        let barrier = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) }
            .try_clone_to_owned()
            .op(|| format!("duplicate the event socket of {}", namespace_label(ns)))?;
        // The names of the interfaces there now; events after the socket
        // was opened keep them up to date.
        let names: Interfaces = kernel
            .links(ns)
            .await?
            .into_iter()
            .map(|link| (link.index, link.name))
            .collect();
        self.pending.barriers.lock().expect("barriers lock").insert(
            ns.to_string(),
            Barrier {
                socket: barrier,
                sent: 0,
                acked: 0,
            },
        );
        let reader = tokio::spawn(read_events(
            ns.to_string(),
            socket,
            names,
            self.pending.clone(),
        ));
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
            .barriers
            .lock()
            .expect("barriers lock")
            .remove(ns);
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
async fn read_events(
    ns: String,
    socket: TokioSocket,
    mut names: Interfaces,
    pending: Arc<Pending>,
) {
    loop {
        match socket.recv_from_full().await {
            Ok((datagram, _sender)) => {
                let (change, acked) = read_datagram(&datagram, &mut names);
                pending.record(&ns, &change);
                if let Some(sequence) = acked {
                    pending.acknowledged(&ns, sequence);
                }
            }
            // The kernel dropped events it had no room for; the socket works on.
            Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                pending.record(&ns, &NamespaceChange::lost(false))
            }
            Err(err) => {
                tracing::warn!(
                    "netlink events of {} stopped: {err}; the next resync covers it",
                    namespace_label(&ns)
                );
                pending.record(&ns, &NamespaceChange::lost(false));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::NetlinkHeader;
    use netlink_packet_route::address::AddressMessage;
    use netlink_packet_route::link::LinkMessage;
    use netlink_packet_route::route::RouteMessage;

    use super::*;

    /// One event message, as the kernel sends it.
    fn event(message: RouteNetlinkMessage) -> Vec<u8> {
        let mut message = NetlinkMessage::new(NetlinkHeader::default(), message.into());
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn link(index: u32, name: &str) -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes
            .push(LinkAttribute::IfName(name.to_string()));
        link
    }

    fn address(index: u32) -> RouteNetlinkMessage {
        let mut address = AddressMessage::default();
        address.header.index = index;
        RouteNetlinkMessage::DelAddress(address)
    }

    fn route(table: u8, device: Option<u32>) -> RouteNetlinkMessage {
        let mut route = RouteMessage::default();
        route.header.table = table;
        route.attributes.extend(device.map(RouteAttribute::Oif));
        RouteNetlinkMessage::DelRoute(route)
    }

    fn names() -> Interfaces {
        Interfaces::from([(1, "lo".to_string()), (7, "eth0".to_string())])
    }

    #[test]
    fn every_message_of_a_datagram_counts_with_its_interface() {
        let mut datagram = event(address(7));
        datagram.extend(event(route(254, Some(1))));
        let (change, acked) = read_datagram(&datagram, &mut names());
        assert_eq!(acked, None);
        assert_eq!(
            change,
            NamespaceChange {
                addresses: true,
                routes: true,
                interfaces: BTreeSet::from(["eth0".to_string(), "lo".to_string()]),
                ..NamespaceChange::default()
            }
        );
        assert_eq!(change.describe(), "addresses, routes");
        assert!(change.touched().is_some());
    }

    #[test]
    fn link_events_keep_the_names_of_indexes_up_to_date() {
        let mut names = names();
        let (change, _) = read_datagram(
            &event(RouteNetlinkMessage::NewLink(link(9, "veth9"))),
            &mut names,
        );
        assert_eq!(
            change.touched(),
            Some(&BTreeSet::from(["veth9".to_string()]))
        );
        let (change, _) = read_datagram(&event(address(9)), &mut names);
        assert_eq!(
            change.touched(),
            Some(&BTreeSet::from(["veth9".to_string()]))
        );
        let (change, _) = read_datagram(
            &event(RouteNetlinkMessage::DelLink(link(9, "veth9"))),
            &mut names,
        );
        assert!(change.links);
        assert_eq!(
            change.touched(),
            Some(&BTreeSet::from(["veth9".to_string()]))
        );
        // Gone: an event naming its index can be about anything now.
        let (change, _) = read_datagram(&event(address(9)), &mut names);
        assert_eq!(change.touched(), None);
    }

    #[test]
    fn what_netloom_does_not_read_is_no_change_and_what_names_no_interface_is_anywhere() {
        // The local table: the kernel's, never observed.
        let (change, _) = read_datagram(&event(route(255, Some(7))), &mut names());
        assert_eq!(change, NamespaceChange::default());
        // A main-table route with no output device.
        let (change, _) = read_datagram(&event(route(254, None)), &mut names());
        assert!(change.routes && change.touched().is_none());
    }

    /// A netconf message about one interface (or all, for a negative index).
    fn netconf(index: i32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&28u32.to_ne_bytes());
        bytes.extend_from_slice(&libc::RTM_NEWNETCONF.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
        bytes.extend_from_slice(&8u16.to_ne_bytes());
        bytes.extend_from_slice(&1u16.to_ne_bytes());
        bytes.extend_from_slice(&index.to_ne_bytes());
        bytes
    }

    #[test]
    fn netconf_events_name_their_interface() {
        let (change, _) = read_datagram(&netconf(7), &mut names());
        assert!(change.settings);
        assert_eq!(
            change.touched(),
            Some(&BTreeSet::from(["eth0".to_string()]))
        );
        let (change, _) = read_datagram(&netconf(-1), &mut names());
        assert!(change.settings && change.touched().is_none());
    }

    #[test]
    fn a_truncated_datagram_counts_what_it_holds() {
        let mut datagram = event(RouteNetlinkMessage::NewLink(link(7, "eth0")));
        datagram.extend_from_slice(&[1, 2, 3]);
        let (change, _) = read_datagram(&datagram, &mut names());
        assert_eq!(
            change,
            NamespaceChange {
                links: true,
                interfaces: BTreeSet::from(["eth0".to_string()]),
                ..NamespaceChange::default()
            }
        );
        assert_eq!(
            read_datagram(&[], &mut names()).0,
            NamespaceChange::default()
        );
    }

    #[test]
    fn an_acknowledgement_names_its_barrier() {
        let mut ack = vec![0; 36];
        ack[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&5u32.to_ne_bytes());
        let (change, acked) = read_datagram(&ack, &mut names());
        assert_eq!((change, acked), (NamespaceChange::default(), Some(5)));
    }

    #[test]
    fn pending_changes_merge_per_namespace_and_are_taken_whole() {
        let events = KernelEvents::new();
        let link = NamespaceChange {
            links: true,
            ..NamespaceChange::default()
        };
        let qdisc = NamespaceChange {
            qdiscs: true,
            ..NamespaceChange::default()
        };
        events.pending.record("a", &link);
        events.pending.record("a", &qdisc);
        events.pending.record("b", &link);
        events.pending.record("c", &NamespaceChange::default());
        let taken = events.take();
        assert_eq!(taken.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(taken["a"].describe(), "links, qdiscs");
        assert!(events.take().is_empty());
    }

    #[test]
    fn an_acknowledged_barrier_drops_what_came_before_it() {
        let events = KernelEvents::new();
        let link = NamespaceChange {
            links: true,
            ..NamespaceChange::default()
        };
        events.pending.record("a", &link);
        events.pending.record("b", &link);
        events.pending.acknowledged("a", 1);
        events.pending.record("a", &link);
        let taken = events.take();
        assert_eq!(taken.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(taken["a"], link, "what came after the barrier stays");
    }
}

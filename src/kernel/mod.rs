//! The kernel layer: named namespaces, one rtnetlink handle per namespace,
//! observation of what is there, and execution of one change at a time.
//! Everything here acts on the real kernel; the layers above never do.

pub mod addr;
pub mod error;
pub mod events;
pub mod extack;
pub mod fdb;
pub mod link;
pub mod lookup;
pub mod netlink;
pub mod netns;
pub mod nsid;
pub mod qdisc;
pub mod route;
pub mod sysctl;
pub mod worker;

mod exec;
mod observe;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtnetlink::Handle;
use tokio::sync::OnceCell;
use worker::Worker;

pub use error::KernelError;
use error::{Context, Result};

/// What to observe: namespaces (`""`: the one netloom runs in), each with
/// the sysctl keys to read there.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub namespaces: BTreeMap<String, BTreeSet<String>>,
    /// Namespaces of `namespaces` read in part only: these interfaces, with
    /// what is on them (addresses, routes out of them, qdiscs, flood
    /// entries), looked up by name instead of dumping every link. A
    /// repair's way to read one port of a thousand-port bridge namespace.
    pub only_interfaces: BTreeMap<String, BTreeSet<String>>,
}

impl Scope {
    pub fn namespaces(names: impl IntoIterator<Item = String>) -> Scope {
        Scope {
            namespaces: names.into_iter().map(|n| (n, BTreeSet::new())).collect(),
            only_interfaces: BTreeMap::new(),
        }
    }

    /// Both scopes: a namespace either reads whole is read whole.
    pub fn merge(mut self, other: Scope) -> Scope {
        let whole = |scope: &Scope, ns: &str| {
            scope.namespaces.contains_key(ns) && !scope.only_interfaces.contains_key(ns)
        };
        let mut only = BTreeMap::new();
        for (ns, names) in self.only_interfaces.iter().chain(&other.only_interfaces) {
            if !whole(&self, ns) && !whole(&other, ns) {
                only.entry(ns.clone())
                    .or_insert_with(BTreeSet::new)
                    .extend(names.iter().cloned());
            }
        }
        for (ns, keys) in other.namespaces {
            self.namespaces.entry(ns).or_default().extend(keys);
        }
        self.only_interfaces = only;
        self
    }

    /// The interfaces read in `ns`, if only some are.
    pub fn interfaces_in(&self, ns: &str) -> Option<&BTreeSet<String>> {
        self.only_interfaces.get(ns)
    }
}

/// A namespace netloom talks to: the thread that lives in it and the
/// netlink handle opened there.
struct Attached {
    worker: Worker,
    handle: Handle,
    /// Which namespace the worker is in (`netns::netns_inode`).
    inode: u64,
}

impl Attached {
    /// Whether `/run/netns/NS` still names the namespace the worker is
    /// in: if it was deleted (and maybe made again) behind netloom's back,
    /// acting through this handle would act on a namespace nobody sees.
    fn is_current(&self, ns: &str) -> bool {
        ns.is_empty() || netns::netns_inode(ns).is_ok_and(|inode| inode == self.inode)
    }
}

/// How many namespaces stay attached at once. Each holds a thread and a
/// netlink socket with its buffers (some 80 KiB): a thousand pods kept
/// attached for a whole run cost a thousand threads and 80 MiB. The
/// scheduler and observe work on at most 32 namespaces at a time, and
/// the kernel serialises the requests anyway: a small set, the least
/// recently used let go first, costs a re-attach (a thread and a socket,
/// some tens of microseconds) now and then.
const MAX_ATTACHED: usize = 64;

/// A namespace's attachment, made on first use.
type Cell = Arc<OnceCell<Arc<Attached>>>;

/// The namespaces attached, and when each was last used.
#[derive(Default)]
struct Attachments {
    cells: HashMap<String, (Cell, u64)>,
    clock: u64,
    /// The namespace each name was last attached to (`netns_inode`),
    /// kept when its attachment is let go: attached again to another
    /// namespace of the same name, the ifindexes learnt are stale.
    inodes: HashMap<String, u64>,
}

impl Attachments {
    /// The cell of `ns`, marked as used now; and the least recently used
    /// others beyond `MAX_ATTACHED`, let go (to be dropped unlocked: a
    /// dropped worker is joined).
    fn cell(&mut self, ns: &str) -> (Cell, Vec<Cell>) {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.cells.entry(ns.to_string()).or_default();
        entry.1 = clock;
        let cell = entry.0.clone();
        let mut evicted = Vec::new();
        while self.cells.len() > MAX_ATTACHED {
            // This machine's namespace holds every pod's host end: kept.
            let oldest = self
                .cells
                .iter()
                .filter(|(name, _)| !name.is_empty() && name.as_str() != ns)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(name, _)| name.clone());
            let Some(oldest) = oldest else { break };
            evicted.extend(self.cells.remove(&oldest).map(|(cell, _)| cell));
        }
        (cell, evicted)
    }
}

/// The kernel, as netloom talks to it: the namespaces in use attached (a
/// worker thread and a netlink handle each, at most `MAX_ATTACHED`), and
/// the ifindex of every interface seen.
pub struct Kernel {
    namespaces: Mutex<Attachments>,
    /// namespace -> interface name -> ifindex, learnt from dumps and
    /// creations, so that a change costs one request, not a lookup too.
    /// By namespace: a destroy forgets a thousand namespaces, each at
    /// the cost of its own interfaces, not of every one seen.
    indexes: Mutex<HashMap<String, HashMap<String, u32>>>,
    /// Told the namespace each time one is about to be read (`watch`
    /// marks its event sockets there: `events::KernelEvents::cover_readings`).
    before_reading: Mutex<Option<ReadingHook>>,
}

/// What `Kernel::before_reading` is given.
pub type ReadingHook = Arc<dyn Fn(&str) + Send + Sync>;

impl Kernel {
    pub fn new() -> Result<Kernel> {
        // Two descriptors per open namespace: thousands of pods need more
        // than the usual soft limit of 1024.
        netlink::raise_fd_limit().op(|| "raise the open-file limit".to_string())?;
        Ok(Kernel {
            namespaces: Mutex::new(Attachments::default()),
            indexes: Mutex::new(HashMap::new()),
            before_reading: Mutex::new(None),
        })
    }

    /// Calls `hook` with the namespace right before each reading of one
    /// (`observe`).
    pub fn before_reading(&self, hook: ReadingHook) {
        *self.before_reading.lock().expect("hook lock") = Some(hook);
    }

    fn about_to_read(&self, ns: &str) {
        let hook = self.before_reading.lock().expect("hook lock").clone();
        if let Some(hook) = hook {
            hook(ns);
        }
    }

    /// Opens the netlink socket on a namespace's worker.
    async fn attach(worker: Worker) -> std::io::Result<Arc<Attached>> {
        let runtime = tokio::runtime::Handle::current();
        let ((connection, handle), inode) = worker
            .run(move || {
                Ok((
                    netlink::connect_here(&runtime)?,
                    netns::current_netns_inode()?,
                ))
            })
            .await?;
        tokio::spawn(connection);
        Ok(Arc::new(Attached {
            worker,
            handle,
            inode,
        }))
    }

    /// An existing namespace, attached on first use, and attached afresh
    /// (once) if it was deleted or replaced behind netloom's back.
    async fn attached(&self, ns: &str) -> Result<Arc<Attached>> {
        let attached = self.attached_as_cached(ns).await?;
        if attached.is_current(ns) {
            return Ok(attached);
        }
        tracing::debug!(
            "{} changed behind netloom's back: attaching again",
            namespace_label(ns)
        );
        self.forget(ns);
        self.attached_as_cached(ns).await
    }

    async fn attached_as_cached(&self, ns: &str) -> Result<Arc<Attached>> {
        let (cell, evicted) = self.namespaces.lock().expect("namespaces lock").cell(ns);
        drop(evicted);
        let attached = cell
            .get_or_try_init(|| async { Kernel::attach(Worker::enter(ns).await?).await })
            .await
            .cloned()
            .op(|| format!("open netlink in {}", namespace_label(ns)))?;
        self.note_inode(ns, attached.inode);
        Ok(attached)
    }

    /// Notes which namespace `ns` names now; if another than when it was
    /// last attached (made again while let go), what was learnt of its
    /// interfaces is forgotten.
    fn note_inode(&self, ns: &str, inode: u64) {
        let before = self
            .namespaces
            .lock()
            .expect("namespaces lock")
            .inodes
            .insert(ns.to_string(), inode);
        if before.is_some_and(|before| before != inode) {
            self.forget_indexes(ns);
        }
    }

    /// The netlink handle of a namespace.
    async fn handle(&self, ns: &str) -> Result<Handle> {
        Ok(self.attached(ns).await?.handle.clone())
    }

    /// Creates a named namespace; its creator stays in it as its worker.
    async fn create_namespace(&self, ns: &str) -> Result<()> {
        let attached = async { Kernel::attach(Worker::create(ns).await?).await }
            .await
            .op(|| format!("create {}", namespace_label(ns)))?;
        let inode = attached.inode;
        let (replaced, evicted) = {
            let mut attachments = self.namespaces.lock().expect("namespaces lock");
            let replaced = attachments.cells.remove(ns);
            let (cell, evicted) = attachments.cell(ns);
            // A cell made just now: empty.
            let _ = cell.set(attached);
            (replaced, evicted)
        };
        drop((replaced, evicted));
        self.note_inode(ns, inode);
        Ok(())
    }

    /// Runs `job` inside a namespace, on its worker.
    pub async fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        job: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let attached = self.attached(ns).await.map_err(|e| e.source)?;
        attached.worker.run(job).await
    }

    /// Every link of namespace `ns`, dumped on its worker (see
    /// `netlink::dump_here`).
    async fn links(&self, ns: &str) -> Result<Vec<link::Link>> {
        self.run_in(ns, link::dump_links_here)
            .await
            .op(|| format!("dump links in {}", namespace_label(ns)))
    }

    /// Lets go of a namespace (its worker ends, its socket closes), so that
    /// deleting it really frees it.
    fn forget(&self, ns: &str) {
        let forgotten = self
            .namespaces
            .lock()
            .expect("namespaces lock")
            .cells
            .remove(ns);
        drop(forgotten);
        self.forget_indexes(ns);
    }

    /// Lets go of every namespace and every ifindex learnt: the workers
    /// end and the sockets close, so nothing keeps a namespace alive and
    /// the next use attaches afresh.
    pub fn release(&self) {
        let all = std::mem::take(&mut self.namespaces.lock().expect("namespaces lock").cells);
        drop(all);
        self.indexes.lock().expect("indexes lock").clear();
    }

    fn remember_index(&self, ns: &str, ifname: &str, index: u32) {
        let mut indexes = self.indexes.lock().expect("indexes lock");
        let known = match indexes.get_mut(ns) {
            Some(known) => known,
            None => indexes.entry(ns.to_string()).or_default(),
        };
        known.insert(ifname.to_string(), index);
    }

    /// Forgets every ifindex learnt in a namespace; whether there was any.
    fn forget_indexes(&self, ns: &str) -> bool {
        let forgotten = self.indexes.lock().expect("indexes lock").remove(ns);
        forgotten.is_some_and(|known| !known.is_empty())
    }

    fn forget_index(&self, ns: &str, ifname: &str) {
        if let Some(known) = self.indexes.lock().expect("indexes lock").get_mut(ns) {
            known.remove(ifname);
        }
    }

    /// The ifindex of an interface, from what was seen, else asked.
    async fn index(&self, ns: &str, ifname: &str) -> Result<u32> {
        let known = self
            .indexes
            .lock()
            .expect("indexes lock")
            .get(ns)
            .and_then(|known| known.get(ifname))
            .copied();
        if let Some(index) = known {
            return Ok(index);
        }
        let handle = self.handle(ns).await?;
        match link::link_index(&handle, ifname).await? {
            Some(index) => {
                self.remember_index(ns, ifname, index);
                Ok(index)
            }
            None => Err(KernelError::new(
                format!("find interface {ifname} in {}", namespace_label(ns)),
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )),
        }
    }

    /// An interface of a namespace that netloom only reads (a real host's
    /// underlay), if it exists.
    pub async fn interface(&self, ns: &str, ifname: &str) -> Result<Option<Interface>> {
        let Some(link) = link::link_named(&self.handle(ns).await?, ifname).await? else {
            return Ok(None);
        };
        let addresses = addr::dump_addresses(&self.handle(ns).await?)
            .await?
            .into_iter()
            .filter(|a| a.index == link.index)
            .filter_map(|a| ipnet::IpNet::new(a.ip, a.prefix_len).ok())
            .collect();
        Ok(Some(Interface {
            mtu: link.mtu,
            addresses,
        }))
    }

    /// Named namespaces whose loopback carries this topology's mark.
    pub async fn namespaces_marked_by(&self, topology: &str) -> Result<BTreeSet<String>> {
        let names = match netns::list_netns() {
            Ok(names) => names,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(err) => return Err(err).op(|| "list /run/netns".to_string()),
        };
        let mut marked = BTreeSet::new();
        for name in names {
            if self.attached(&name).await.is_err() {
                continue;
            }
            let links = self.links(&name).await?;
            let ours = links.iter().any(|l| {
                l.name == "lo"
                    && l.alias.as_deref().and_then(crate::model::mark_owner) == Some(topology)
            });
            if ours {
                marked.insert(name);
            } else {
                self.forget(&name);
            }
        }
        Ok(marked)
    }

    /// Waits until the given interfaces are gone: the kernel tears down a
    /// deleted namespace's veths (and so their peers elsewhere) a little
    /// after the namespace itself. One link dump per namespace and round
    /// proves them all gone at once (a thousand pods' host ends are one
    /// dump, not a thousand lookups).
    pub async fn await_gone(
        &self,
        interfaces: &[crate::model::ResourceId],
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        let mut by_namespace: BTreeMap<&str, Vec<&crate::model::ResourceId>> = BTreeMap::new();
        for id in interfaces {
            by_namespace.entry(&id.ns).or_default().push(id);
        }
        for (ns, ids) in by_namespace {
            // Gone with its own namespace (an empty file left by a creation
            // killed half way, or a deletion caught half way, is none).
            if !ns.is_empty() && !netns::netns_exists(ns) {
                continue;
            }
            loop {
                let present: BTreeSet<String> =
                    self.links(ns).await?.into_iter().map(|l| l.name).collect();
                let Some(left) = ids.iter().find(|id| present.contains(&id.name)) else {
                    break;
                };
                if started.elapsed() > timeout {
                    return Err(KernelError::new(
                        format!("wait for {left} to go with its peer's namespace"),
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for id in ids {
                self.forget_index(ns, &id.name);
            }
        }
        Ok(())
    }
}

/// What netloom reads of an interface it does not manage.
pub struct Interface {
    pub mtu: u32,
    pub addresses: Vec<ipnet::IpNet>,
}

/// How a namespace is named in messages.
pub fn namespace_label(ns: &str) -> String {
    if ns.is_empty() {
        crate::model::OWN_NAMESPACE.to_string()
    } else {
        format!("netns {ns}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_either_scope_reads_whole_stays_whole_when_merged() {
        let part = |ns: &str, names: &[&str]| Scope {
            namespaces: [(ns.to_string(), BTreeSet::new())].into(),
            only_interfaces: [(
                ns.to_string(),
                names.iter().map(|n| n.to_string()).collect(),
            )]
            .into(),
        };
        // Two parts of one namespace: both parts.
        let merged = part("a", &["eth0"]).merge(part("a", &["eth1"]));
        let names: Vec<&str> = merged
            .interfaces_in("a")
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["eth0", "eth1"]);
        // A part and the whole: the whole, whichever comes first.
        let whole = Scope::namespaces(["a".to_string()]);
        assert!(
            part("a", &["eth0"])
                .merge(whole.clone())
                .interfaces_in("a")
                .is_none()
        );
        assert!(
            whole
                .merge(part("a", &["eth0"]))
                .interfaces_in("a")
                .is_none()
        );
        // A part of a namespace the other does not read stays a part.
        let merged = part("a", &["eth0"]).merge(Scope::namespaces(["b".to_string()]));
        assert!(merged.interfaces_in("a").is_some() && merged.interfaces_in("b").is_none());
    }
}

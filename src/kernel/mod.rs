//! The kernel layer: named namespaces, one rtnetlink handle per namespace,
//! observation of what is there, and execution of one change at a time.
//! Everything here acts on the real kernel; the layers above never do.

pub mod addr;
pub mod error;
pub mod fdb;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod nsid;
pub mod qdisc;
pub mod route;
pub mod sysctl;

mod exec;
mod observe;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtnetlink::Handle;
use tokio::sync::OnceCell;

pub use error::KernelError;
use error::{Context, Result};

/// What to observe: namespaces (`""`: the one netloom runs in), each with
/// the sysctl keys to read there.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub namespaces: BTreeMap<String, BTreeSet<String>>,
}

impl Scope {
    pub fn namespaces(names: impl IntoIterator<Item = String>) -> Scope {
        Scope {
            namespaces: names.into_iter().map(|n| (n, BTreeSet::new())).collect(),
        }
    }

    pub fn merge(mut self, other: Scope) -> Scope {
        for (ns, keys) in other.namespaces {
            self.namespaces.entry(ns).or_default().extend(keys);
        }
        self
    }
}

/// The kernel, as netloom talks to it: a netlink handle per namespace,
/// opened on first use and kept, and the ifindex of every interface seen.
pub struct Kernel {
    handles: Mutex<HashMap<String, Arc<OnceCell<Handle>>>>,
    /// (namespace, interface name) -> ifindex, learnt from dumps and
    /// creations, so that a change costs one request, not a lookup too.
    indexes: Mutex<HashMap<(String, String), u32>>,
}

impl Kernel {
    pub fn new() -> Result<Kernel> {
        // Two descriptors per open namespace: thousands of pods need more
        // than the usual soft limit of 1024.
        netlink::raise_fd_limit().op(|| "raise the open-file limit".to_string())?;
        Ok(Kernel {
            handles: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
        })
    }

    /// The handle of a namespace, opened once.
    async fn handle(&self, ns: &str) -> Result<Handle> {
        let cell = self
            .handles
            .lock()
            .expect("handles lock")
            .entry(ns.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| netlink::connect(ns))
            .await
            .cloned()
            .op(|| format!("open netlink in {}", namespace_label(ns)))
    }

    /// Closes a namespace's handle, so that deleting the namespace really
    /// frees it (an open socket keeps it alive).
    fn forget(&self, ns: &str) {
        self.handles.lock().expect("handles lock").remove(ns);
        self.indexes
            .lock()
            .expect("indexes lock")
            .retain(|(n, _), _| n != ns);
    }

    fn remember_index(&self, ns: &str, ifname: &str, index: u32) {
        self.indexes
            .lock()
            .expect("indexes lock")
            .insert((ns.to_string(), ifname.to_string()), index);
    }

    fn forget_index(&self, ns: &str, ifname: &str) {
        self.indexes
            .lock()
            .expect("indexes lock")
            .remove(&(ns.to_string(), ifname.to_string()));
    }

    /// The ifindex of an interface, from what was seen, else asked.
    async fn index(&self, ns: &str, ifname: &str) -> Result<u32> {
        let known = self
            .indexes
            .lock()
            .expect("indexes lock")
            .get(&(ns.to_string(), ifname.to_string()))
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
            None => Err(KernelError {
                op: format!("find interface {ifname} in {}", namespace_label(ns)),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            }),
        }
    }

    /// The MTU of an interface of a namespace, if it exists.
    pub async fn link_mtu(&self, ns: &str, ifname: &str) -> Result<Option<u32>> {
        let handle = self.handle(ns).await?;
        let links = link::dump_links(&handle).await?;
        Ok(links.into_iter().find(|l| l.name == ifname).map(|l| l.mtu))
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
            let Ok(handle) = self.handle(&name).await else {
                continue;
            };
            let links = link::dump_links(&handle).await?;
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
    /// after the namespace itself.
    pub async fn await_gone(
        &self,
        interfaces: &[crate::model::ResourceId],
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        for id in interfaces {
            // Gone with its own namespace.
            if !id.ns.is_empty() && !netns::netns_path(&id.ns).exists() {
                continue;
            }
            let handle = self.handle(&id.ns).await?;
            while link::link_index(&handle, &id.name).await?.is_some() {
                if started.elapsed() > timeout {
                    return Err(KernelError {
                        op: format!("wait for {id} to go with its peer's namespace"),
                        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.forget_index(&id.ns, &id.name);
        }
        Ok(())
    }
}

/// How a namespace is named in messages.
pub fn namespace_label(ns: &str) -> String {
    if ns.is_empty() {
        "this machine's namespace".to_string()
    } else {
        format!("netns {ns}")
    }
}

//! An in-memory kernel for tests that need no root: it holds a set of
//! `Resources` and applies each `Change` to it as the kernel would, so
//! that observing after executing a plan shows the desired state. Deleting
//! a namespace takes everything in it along, and the veths reaching into
//! it; deleting a link takes its attributes, addresses, routes and ports'
//! membership along, and a veth its peer.
//!
//! Failures can be injected (the Nth write, or any write to one object),
//! a change can be silently ignored (a kernel that says yes and does
//! nothing), and every write is counted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::KernelPort;
use crate::graph::sysctl_interface;
use crate::kernel::{Interface, KernelError, Scope};
use crate::model::{
    Action, Change, Kind, LinkKind, Mac, Observed, ROUTE_PROTOCOL, Resource, ResourceId, mark_owner,
};

/// The MTU and state the kernel gives a new interface.
const DEFAULT_MTU: u32 = 1500;

#[derive(Default)]
pub struct FakeKernel {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: Observed,
    /// Every write asked for, in order (including failed and ignored ones).
    writes: Vec<Change>,
    /// Far ends of a namespace deleted by hand, not torn down yet.
    lingering: HashSet<ResourceId>,
    /// 1-based numbers of the writes that fail.
    failing_writes: BTreeSet<usize>,
    failing_ids: HashSet<ResourceId>,
    /// Writes that take effect and then fail (EMFILE), as a namespace
    /// made whose file cannot then be opened.
    failing_after_ids: HashSet<ResourceId>,
    ignored_ids: HashSet<ResourceId>,
    releases: usize,
    /// The changes of every `execute_settings` request, in order.
    settings_requests: Vec<Vec<ResourceId>>,
    /// The namespaces of every observation, in order.
    observations: Vec<BTreeSet<String>>,
    /// Of every observation, the namespaces read in part, and what of them.
    partial_reads: Vec<BTreeMap<String, BTreeSet<String>>>,
    /// The sysctls of a namespace just made (`fresh_namespace_sysctls`).
    fresh_sysctls: BTreeMap<String, String>,
    /// Sysctls that cannot be written, and why (`unwritable_sysctls`).
    unwritable: BTreeMap<String, String>,
    /// When each namespace appeared (`namespace_made_at`).
    namespace_births: BTreeMap<String, SystemTime>,
}

impl FakeKernel {
    /// A kernel with nothing but netloom's own (empty) namespace.
    pub fn new() -> FakeKernel {
        FakeKernel::default()
    }

    /// A kernel that already holds these objects.
    pub fn holding(live: Observed) -> FakeKernel {
        let fake = FakeKernel::new();
        fake.inner().live = live;
        fake
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake kernel lock")
    }

    /// `ip netns delete NS` by hand: the namespace goes at once, but, as
    /// in the kernel, the far ends of its veths stay a little longer,
    /// alone (their peer no longer resolves), until someone waits for
    /// them (`await_gone`).
    pub fn delete_namespace_by_hand(&self, ns: &str) {
        let mut inner = self.inner();
        let far_ends: Vec<ResourceId> = inner
            .live
            .resources
            .iter()
            .filter_map(|(id, resource)| match resource {
                Resource::Link(LinkKind::Veth { peer_ns, .. }) if peer_ns == ns => Some(id.clone()),
                Resource::Link(LinkKind::Veth { peer_ns, peer }) if id.ns == ns => {
                    Some(ResourceId::link(peer_ns, peer))
                }
                _ => None,
            })
            .filter(|end| end.ns != ns)
            .collect();
        inner.remove_where(|gone| gone.ns == ns);
        for end in far_ends {
            let alone = Resource::Link(LinkKind::Other {
                name: "veth".into(),
            });
            inner.live.resources.insert(end.clone(), alone);
            inner.lingering.insert(end);
        }
    }

    /// Makes the `n`th write (counting from 1) fail with EIO, unapplied.
    pub fn fail_write(&self, n: usize) {
        self.inner().failing_writes.insert(n);
    }

    /// Makes every write to `id` fail with EIO, unapplied.
    pub fn fail_on(&self, id: ResourceId) {
        self.inner().failing_ids.insert(id);
    }

    /// Makes every write to `id` take effect and then fail with EMFILE.
    pub fn fail_after(&self, id: ResourceId) {
        self.inner().failing_after_ids.insert(id);
    }

    /// Makes every write to `id` succeed without doing anything.
    pub fn ignore(&self, id: ResourceId) {
        self.inner().ignored_ids.insert(id);
    }

    /// What the kernel holds now.
    pub fn live(&self) -> Observed {
        self.inner().live.clone()
    }

    /// Every write asked for so far, in order.
    pub fn writes(&self) -> Vec<Change> {
        self.inner().writes.clone()
    }

    /// The changes each `execute_settings` request carried, in order.
    pub fn settings_requests(&self) -> Vec<Vec<ResourceId>> {
        self.inner().settings_requests.clone()
    }

    /// The namespaces each observation so far asked for, in order.
    pub fn observations(&self) -> Vec<BTreeSet<String>> {
        self.inner().observations.clone()
    }

    /// Of each observation so far, the namespaces it read for some
    /// interfaces only, and which (`Scope::only_interfaces`).
    pub fn partial_reads(&self) -> Vec<BTreeMap<String, BTreeSet<String>>> {
        self.inner().partial_reads.clone()
    }

    /// How many times the engine let go of all it held.
    pub fn releases(&self) -> usize {
        self.inner().releases
    }

    /// Makes `key` one that cannot be written, for `why`.
    pub fn refuse_sysctl(&self, key: &str, why: &str) {
        let mut inner = self.inner();
        inner.unwritable.insert(key.to_string(), why.to_string());
    }

    /// Says that namespace `ns` appeared at `time` (one made by someone
    /// else, or a create a killed run had in flight).
    pub fn set_namespace_made_at(&self, ns: &str, time: SystemTime) {
        let mut inner = self.inner();
        inner.namespace_births.insert(ns.to_string(), time);
    }

    /// Says what `key` reads in a namespace just made.
    pub fn set_fresh_sysctl(&self, key: &str, value: &str) {
        let mut inner = self.inner();
        inner
            .fresh_sysctls
            .insert(key.to_string(), value.to_string());
    }
}

impl Inner {
    fn exists(&self, ns: &str) -> bool {
        ns.is_empty() || self.live.resources.contains_key(&ResourceId::namespace(ns))
    }

    fn apply(&mut self, change: &Change) {
        let id = &change.id;
        match (change.action, &change.to) {
            (Action::Delete, _) => self.delete(change),
            (_, Some(Resource::Namespace)) => {
                self.insert(id.clone(), Resource::Namespace);
                self.namespace_births
                    .insert(id.ns.clone(), SystemTime::now());
                // A new namespace has its loopback, down.
                self.insert(
                    ResourceId::new(&id.ns, Kind::Up, "lo"),
                    Resource::Up { up: false },
                );
                // And every sysctl at the value a fresh namespace reads.
                for (key, value) in self.fresh_sysctls.clone() {
                    let sysctl = ResourceId::new(&id.ns, Kind::Sysctl, key);
                    self.insert(sysctl, Resource::Sysctl { value });
                }
            }
            (_, Some(link @ Resource::Link(kind))) => {
                self.insert(id.clone(), link.clone());
                self.new_interface(&id.ns, &id.name);
                if let LinkKind::Veth { peer_ns, peer } = kind {
                    self.new_interface(peer_ns, peer);
                }
            }
            (_, Some(route @ Resource::Route(_))) => {
                self.live.route_protocols.insert(id.clone(), ROUTE_PROTOCOL);
                self.insert(id.clone(), route.clone());
            }
            (_, Some(value)) => self.insert(id.clone(), value.clone()),
            (_, None) => {}
        }
    }

    fn insert(&mut self, id: ResourceId, resource: Resource) {
        self.live.resources.insert(id, resource);
    }

    fn new_interface(&mut self, ns: &str, ifname: &str) {
        let at = |kind| ResourceId::new(ns, kind, ifname);
        self.insert(at(Kind::Up), Resource::Up { up: false });
        self.insert(at(Kind::Mtu), Resource::Mtu { mtu: DEFAULT_MTU });
        // The kernel's default address generation: EUI-64.
        self.insert(at(Kind::LinkLocal), Resource::LinkLocal { enabled: true });
        // Every interface has a MAC: one of its own (the kernel's is
        // random; this one is the same for the same place, so that two
        // fakes doing the same compare equal).
        let digest = Sha256::digest(format!("fake/{ns}/{ifname}").as_bytes());
        let mac = Mac::local_from_hash(&digest);
        self.insert(at(Kind::Mac), Resource::Mac { mac });
    }

    fn delete(&mut self, change: &Change) {
        let id = &change.id;
        match id.kind {
            Kind::Namespace => {
                // Veths reaching into it go too, with their far end.
                let reaching: Vec<(String, String)> = self
                    .live
                    .resources
                    .iter()
                    .filter_map(|(other, resource)| match resource {
                        Resource::Link(LinkKind::Veth { peer_ns, peer }) if peer_ns == &id.ns => {
                            Some((other.ns.clone(), other.name.clone()))
                        }
                        Resource::Link(LinkKind::Veth { peer_ns, peer }) if other.ns == id.ns => {
                            Some((peer_ns.clone(), peer.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                for (ns, ifname) in reaching {
                    self.remove_interface(&ns, &ifname);
                }
                self.remove_where(|gone| gone.ns == id.ns);
            }
            Kind::Link => {
                if let Some(Resource::Link(LinkKind::Veth { peer_ns, peer })) =
                    self.live.resources.get(id).cloned()
                {
                    self.remove_interface(&peer_ns, &peer);
                }
                self.remove_interface(&id.ns, &id.name);
            }
            _ => {
                self.live.resources.remove(id);
                self.live.route_protocols.remove(id);
            }
        }
    }

    /// An interface and all that hangs on it: attributes, addresses,
    /// qdisc, fdb entries, its sysctls, routes through it, ports' membership.
    fn remove_interface(&mut self, ns: &str, ifname: &str) {
        let resources = &self.live.resources;
        let hangs_on = |id: &ResourceId| {
            id.ns == ns
                && (id.ifname() == Some(ifname)
                    || (id.kind == Kind::Sysctl && sysctl_interface(&id.name) == Some(ifname))
                    || match &resources[id] {
                        Resource::Route(route) => route.dev.as_deref() == Some(ifname),
                        Resource::Master { master } => master == ifname,
                        _ => false,
                    })
        };
        let gone: Vec<ResourceId> = resources
            .keys()
            .filter(|id| hangs_on(id))
            .cloned()
            .collect();
        for id in gone {
            self.live.resources.remove(&id);
            self.live.route_protocols.remove(&id);
        }
    }

    fn remove_where(&mut self, gone: impl Fn(&ResourceId) -> bool) {
        self.live.resources.retain(|id, _| !gone(id));
        self.live.route_protocols.retain(|id, _| !gone(id));
    }
}

fn refused(op: String) -> KernelError {
    KernelError::new(op, io::Error::from_raw_os_error(libc::EIO))
}

impl KernelPort for FakeKernel {
    async fn observe(&self, scope: &Scope) -> Result<Observed, KernelError> {
        let mut inner = self.inner();
        let namespaces = scope.namespaces.keys().cloned().collect();
        inner.observations.push(namespaces);
        inner.partial_reads.push(scope.only_interfaces.clone());
        let live = &inner.live;
        // As the kernel reads a namespace in part: the interfaces named,
        // what is on them, and the sysctls asked for.
        let on_interfaces_read = |id: &ResourceId| {
            let Some(names) = scope.interfaces_in(&id.ns) else {
                return true;
            };
            let ifname = match (id.kind, live.resources.get(id)) {
                (Kind::Namespace | Kind::Sysctl, _) => return true,
                (Kind::Route, Some(Resource::Route(route))) => route.dev.as_deref(),
                _ => id.ifname(),
            };
            ifname.is_some_and(|ifname| names.contains(ifname))
        };
        let in_scope = |id: &ResourceId| match scope.namespaces.get(&id.ns) {
            // Sysctls are read only where asked for, as /proc/sys is.
            Some(keys) if id.kind == Kind::Sysctl => keys.contains(&id.name),
            Some(_) => inner.exists(&id.ns) && on_interfaces_read(id),
            None => false,
        };
        Ok(Observed {
            resources: live
                .resources
                .iter()
                .filter(|(id, _)| in_scope(id))
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect(),
            route_protocols: live
                .route_protocols
                .iter()
                .filter(|(id, _)| in_scope(id))
                .map(|(id, p)| (id.clone(), *p))
                .collect(),
            alt_names: live
                .alt_names
                .iter()
                .filter(|((ns, _), name)| {
                    scope.namespaces.contains_key(ns)
                        && scope
                            .interfaces_in(ns)
                            .is_none_or(|names| names.contains(*name))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    async fn execute(&self, change: &Change) -> Result<(), KernelError> {
        let mut inner = self.inner();
        inner.writes.push(change.clone());
        let number = inner.writes.len();
        if inner.failing_writes.contains(&number) || inner.failing_ids.contains(&change.id) {
            return Err(refused(format!("{:?} {}", change.action, change.id)));
        }
        if !inner.ignored_ids.contains(&change.id) {
            inner.apply(change);
        }
        if inner.failing_after_ids.contains(&change.id) {
            let op = format!("{:?} {}", change.action, change.id);
            return Err(KernelError::new(
                op,
                io::Error::from_raw_os_error(libc::EMFILE),
            ));
        }
        Ok(())
    }

    async fn execute_settings(&self, changes: &[&Change]) -> Result<(), KernelError> {
        let ids = changes.iter().map(|c| c.id.clone()).collect();
        self.inner().settings_requests.push(ids);
        // One write each: a request the kernel fails half way has made
        // the settings before the failing one, as do_setlink does.
        for change in changes {
            self.execute(change).await?;
        }
        Ok(())
    }

    async fn await_gone(
        &self,
        interfaces: &[ResourceId],
        _timeout: Duration,
    ) -> Result<(), KernelError> {
        // Deletions take effect at once here, but for the far ends of a
        // namespace deleted by hand, which go once waited for; anything
        // else left stays.
        let mut inner = self.inner();
        for end in interfaces {
            if inner.lingering.remove(end) {
                inner.remove_interface(&end.ns, &end.name);
            }
        }
        let left = interfaces.iter().find(|gone| {
            let mut resources = inner.live.resources.keys();
            resources.any(|id| id.ns == gone.ns && id.ifname() == Some(gone.name.as_str()))
        });
        match left {
            Some(id) => Err(KernelError::new(
                format!("wait for {id} to go with its peer's namespace"),
                io::Error::from(io::ErrorKind::TimedOut),
            )),
            None => Ok(()),
        }
    }

    async fn namespaces_marked_by(&self, topology: &str) -> Result<BTreeSet<String>, KernelError> {
        let inner = self.inner();
        Ok(inner
            .live
            .resources
            .iter()
            .filter(|(id, _)| id.kind == Kind::Alias && id.name == "lo" && !id.ns.is_empty())
            .filter(|(_, alias)| {
                matches!(alias, Resource::Alias { alias } if mark_owner(alias) == Some(topology))
            })
            .map(|(id, _)| id.ns.clone())
            .collect())
    }

    async fn interface(&self, ns: &str, ifname: &str) -> Result<Option<Interface>, KernelError> {
        let inner = self.inner();
        let resources = &inner.live.resources;
        if !resources.contains_key(&ResourceId::link(ns, ifname)) {
            return Ok(None);
        }
        let mtu = match resources.get(&ResourceId::new(ns, Kind::Mtu, ifname)) {
            Some(Resource::Mtu { mtu }) => *mtu,
            _ => DEFAULT_MTU,
        };
        let addresses = resources
            .iter()
            .filter(|(id, _)| id.ns == ns)
            .filter_map(|(_, resource)| match resource {
                Resource::Address {
                    ifname: on,
                    address,
                } if on == ifname => Some(*address),
                _ => None,
            })
            .collect();
        Ok(Some(Interface { mtu, addresses }))
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.inner().exists(ns)
    }

    fn namespace_made_at(&self, ns: &str) -> Option<SystemTime> {
        let inner = self.inner();
        let exists = !ns.is_empty() && inner.exists(ns);
        exists.then(|| inner.namespace_births.get(ns).copied())?
    }

    fn remove_leftover_namespace(&self, _ns: &str) -> io::Result<bool> {
        // Deletions here are never killed half way: nothing is left over.
        Ok(false)
    }

    /// On the calling thread: the fake has no namespaces to enter.
    async fn run_in<T: Send + 'static>(
        &self,
        _ns: &str,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        job()
    }

    fn fresh_namespace_sysctls(
        &self,
        keys: &[String],
    ) -> io::Result<Vec<(String, Option<String>)>> {
        let inner = self.inner();
        let value = |key: &String| inner.fresh_sysctls.get(key).cloned();
        Ok(keys.iter().map(|key| (key.clone(), value(key))).collect())
    }

    async fn unwritable_sysctls(
        &self,
        keys: &[String],
        _fresh: bool,
    ) -> io::Result<Vec<(String, Option<String>)>> {
        let inner = self.inner();
        let why = |key: &String| inner.unwritable.get(key).cloned();
        Ok(keys.iter().map(|key| (key.clone(), why(key))).collect())
    }

    fn run_command(&self, _ns: &str, _command: &[String]) -> io::Result<ExitStatus> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the fake kernel runs no commands",
        ))
    }

    fn release(&self) {
        self.inner().releases += 1;
    }
}

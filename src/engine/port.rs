//! The narrow port through which the engine reaches a kernel: all it
//! reads and writes, and nothing else. `kernel::Kernel` is the real one;
//! `engine::fake::FakeKernel` an in-memory one for tests without root.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use crate::kernel::{Interface, Kernel, KernelError, Scope, netns, sysctl};
use crate::model::{Change, Observed, ResourceId};

/// A kernel the engine can reconcile. The futures need not be `Send`: a
/// run drives them on one thread.
pub trait KernelPort {
    /// Reads every namespace of the scope that exists.
    fn observe(&self, scope: &Scope) -> impl Future<Output = Result<Observed, KernelError>>;

    /// Carries out one change.
    fn execute(&self, change: &Change) -> impl Future<Output = Result<(), KernelError>>;

    /// Carries out changes to the settings of one interface, none waiting
    /// on another (see `scheduler::link_setting`), in as few requests as
    /// the kernel allows. May leave the first ones made if a later one
    /// fails.
    fn execute_settings(
        &self,
        changes: &[&Change],
    ) -> impl Future<Output = Result<(), KernelError>>;

    /// Waits until the given interfaces are gone (a deleted namespace's
    /// veths take their peers elsewhere along a little later).
    fn await_gone(
        &self,
        interfaces: &[ResourceId],
        timeout: Duration,
    ) -> impl Future<Output = Result<(), KernelError>>;

    /// Named namespaces whose loopback carries this topology's mark.
    fn namespaces_marked_by(
        &self,
        topology: &str,
    ) -> impl Future<Output = Result<BTreeSet<String>, KernelError>>;

    /// An interface netloom only reads (a real host's underlay), if any.
    fn interface(
        &self,
        ns: &str,
        ifname: &str,
    ) -> impl Future<Output = Result<Option<Interface>, KernelError>>;

    /// Whether a named namespace exists (`""`, netloom's own, always does).
    fn namespace_exists(&self, ns: &str) -> bool;

    /// When a named namespace appeared (`None`: it is not there): what a
    /// journal's create in flight at a kill is checked against.
    fn namespace_made_at(&self, ns: &str) -> Option<SystemTime>;

    /// Removes what a deletion killed half way left of a namespace;
    /// whether there was anything.
    fn remove_leftover_namespace(&self, ns: &str) -> io::Result<bool>;

    /// Runs `job` on a thread inside a namespace (a probe's socket is
    /// opened there) and returns its result.
    fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> impl Future<Output = io::Result<T>>;

    /// The values of `keys` in a network namespace just made: what a
    /// namespace netloom creates starts with (a key the kernel lacks: `None`).
    fn fresh_namespace_sysctls(&self, keys: &[String])
    -> io::Result<Vec<(String, Option<String>)>>;

    /// What stops each of `keys` from being written (`None`: nothing), in
    /// this machine's namespace or, with `fresh`, in a namespace made just
    /// now (one like those netloom creates). Writes nothing.
    fn unwritable_sysctls(
        &self,
        keys: &[String],
        fresh: bool,
    ) -> impl Future<Output = io::Result<Vec<(String, Option<String>)>>>;

    /// Runs a command inside a namespace and waits for it.
    fn run_command(&self, ns: &str, command: &[String]) -> io::Result<ExitStatus>;

    /// Lets go of every namespace and interface it holds on to, so that
    /// nothing is kept alive or acted on from a stale handle once a run
    /// is over.
    fn release(&self);
}

impl KernelPort for Kernel {
    async fn observe(&self, scope: &Scope) -> Result<Observed, KernelError> {
        Kernel::observe(self, scope).await
    }

    async fn execute(&self, change: &Change) -> Result<(), KernelError> {
        Kernel::execute(self, change).await
    }

    async fn execute_settings(&self, changes: &[&Change]) -> Result<(), KernelError> {
        Kernel::execute_settings(self, changes).await
    }

    async fn await_gone(
        &self,
        interfaces: &[ResourceId],
        timeout: Duration,
    ) -> Result<(), KernelError> {
        Kernel::await_gone(self, interfaces, timeout).await
    }

    async fn namespaces_marked_by(&self, topology: &str) -> Result<BTreeSet<String>, KernelError> {
        Kernel::namespaces_marked_by(self, topology).await
    }

    async fn interface(&self, ns: &str, ifname: &str) -> Result<Option<Interface>, KernelError> {
        Kernel::interface(self, ns, ifname).await
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        ns.is_empty() || netns::netns_exists(ns)
    }

    fn namespace_made_at(&self, ns: &str) -> Option<SystemTime> {
        netns::netns_made_at(ns).ok()
    }

    fn remove_leftover_namespace(&self, ns: &str) -> io::Result<bool> {
        netns::remove_leftover(ns)
    }

    async fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        Kernel::run_in(self, ns, job).await
    }

    fn fresh_namespace_sysctls(
        &self,
        keys: &[String],
    ) -> io::Result<Vec<(String, Option<String>)>> {
        let keys = keys.to_vec();
        sysctl::in_fresh_namespace(move || sysctl::read_here(&keys))
    }

    async fn unwritable_sysctls(
        &self,
        keys: &[String],
        fresh: bool,
    ) -> io::Result<Vec<(String, Option<String>)>> {
        let keys = keys.to_vec();
        if fresh {
            sysctl::in_fresh_namespace(move || sysctl::unwritable_here(&keys))
        } else {
            Kernel::run_in(self, "", move || sysctl::unwritable_here(&keys)).await
        }
    }

    fn run_command(&self, ns: &str, command: &[String]) -> io::Result<ExitStatus> {
        netns::run_in(ns, command)
    }

    fn release(&self) {
        Kernel::release(self)
    }
}

//! `check`: the file's expectations, run with real traffic from inside the
//! pods (probes opened on the port's namespace threads).

use std::io;
use std::time::Duration;

use super::{Engine, EngineError, KernelPort};
use crate::expect;
use crate::probe::run::{Namespaces, Outcome, run_checks};
use crate::spec::Topology;

/// A port's namespace threads, where probes open their sockets.
pub(super) struct OnPort<'a, K>(pub(super) &'a K);

impl<K: KernelPort> Namespaces for OnPort<'_, K> {
    async fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        self.0.run_in(ns, job).await
    }
}

impl<K: KernelPort> Engine<K> {
    /// Runs the expectations this machine runs (in host mode, those from its
    /// own pods), each within `timeout`. Changes nothing but the temporary
    /// listeners, which are gone when it returns.
    pub async fn check(
        &self,
        topology: &Topology,
        timeout: Duration,
    ) -> Result<Vec<Outcome>, EngineError> {
        self.releasing(async {
            // In host mode, this must be that host.
            self.desired(topology).await?;
            let (checks, not_applied): (Vec<_>, Vec<_>) =
                expect::resolve(topology, &self.options.mode)
                    .into_iter()
                    .partition(|check| self.kernel.namespace_exists(&check.from_ns));
            let mut outcomes = run_checks(&OnPort(&self.kernel), &checks, timeout)
                .await
                .map_err(EngineError::Listener)?;
            outcomes.extend(not_applied.into_iter().map(Outcome::not_applied));
            outcomes.sort_by_key(|outcome| outcome.check.index);
            Ok(outcomes)
        })
        .await
    }
}

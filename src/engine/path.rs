//! `path`: a packet's walk through the live kernel (the walker reads it
//! through `path::PathKernel`, implemented here for the real kernel), what
//! the file says about the namespaces it went through, and optionally one
//! real packet to compare with.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use super::{Engine, EngineError, KernelPort, ObjectStatus, State};
use crate::expect::{Check, Method};
use crate::kernel::{Kernel, KernelError};
use crate::model::Mac;
use crate::model::expand::pod_namespace;
use crate::model::live::{LiveInterface, Neighbour, RouteAnswer, RouteQuery, RouteRefusal};
use crate::path::{self, PathKernel, PathReport, Walk};
use crate::probe::run::Outcome;
use crate::spec::Topology;

impl PathKernel for Kernel {
    type Error = KernelError;

    async fn interfaces(&self, ns: &str) -> Result<Vec<LiveInterface>, KernelError> {
        self.live_interfaces(ns).await
    }

    async fn route(
        &self,
        ns: &str,
        query: RouteQuery,
    ) -> Result<Result<RouteAnswer, RouteRefusal>, KernelError> {
        self.route_get(ns, query).await
    }

    async fn neighbour(
        &self,
        ns: &str,
        index: u32,
        ip: IpAddr,
    ) -> Result<Option<Neighbour>, KernelError> {
        Kernel::neighbour(self, ns, index, ip).await
    }

    async fn bridge_port(
        &self,
        ns: &str,
        bridge: u32,
        mac: Mac,
    ) -> Result<Option<u32>, KernelError> {
        Kernel::bridge_port(self, ns, bridge, mac).await
    }

    async fn vxlan_remotes(
        &self,
        ns: &str,
        vxlan: u32,
        mac: Option<Mac>,
    ) -> Result<(bool, Vec<IpAddr>), KernelError> {
        Kernel::vxlan_remotes(self, ns, vxlan, mac).await
    }

    async fn sysctl(&self, ns: &str, key: &str) -> Result<Option<String>, KernelError> {
        self.read_sysctl(ns, key).await
    }

    async fn peer_namespace(
        &self,
        ns: &str,
        netnsid: Option<i32>,
        candidates: &[String],
    ) -> Result<Option<String>, KernelError> {
        Kernel::peer_namespace(self, ns, netnsid, candidates).await
    }
}

/// What `path` found.
pub struct PathRun {
    pub walk: Walk,
    pub report: PathReport,
    /// Objects of the namespaces the walk went through that are not as the
    /// file says (drifted, missing, extra): why the kernel's path may not
    /// be the file's.
    pub drift: Vec<ObjectStatus>,
    /// The real packet sent along, with `probe`.
    pub probe: Option<Outcome>,
}

/// What to send along a walk, if anything.
#[derive(Clone, Copy, Debug)]
pub struct PathProbe {
    /// TCP handshake on this port; without: an ICMP echo.
    pub port: Option<u16>,
    pub timeout: Duration,
}

impl Engine<Kernel> {
    /// Walks a packet from pod `from` to `to` (a pod or an address) through
    /// the live kernel; with `probe`, sends one too.
    pub async fn path(
        &self,
        topology: &Topology,
        from: &str,
        to: &str,
        probe: Option<PathProbe>,
    ) -> Result<PathRun, EngineError> {
        let walk = path::walk_for(topology, &self.options.mode, from, to)?;
        if !self.kernel.namespace_exists(&walk.from) {
            return Err(EngineError::NotApplied {
                pod: from.to_string(),
                ns: walk.from.clone(),
            });
        }
        let report = self
            .releasing(async {
                // In host mode, this must be that host.
                self.desired(topology).await?;
                Ok::<_, EngineError>(path::walk(&self.kernel, &walk).await?)
            })
            .await?;
        let visited: BTreeSet<&str> = report.hops.iter().map(|h| h.namespace.as_str()).collect();
        let (_, statuses) = self.status(topology).await?;
        let drift = statuses
            .into_iter()
            .filter(|s| s.state != State::InSync && visited.contains(s.id.ns.as_str()))
            .collect();
        let probe = match probe {
            Some(probe) => Some(self.probe_along(topology, &walk, from, to, probe).await?),
            None => None,
        };
        Ok(PathRun {
            walk,
            report,
            drift,
            probe,
        })
    }

    /// One real packet from the walk's start to its address, as `check`
    /// sends it (a listener in the target pod for a TCP probe).
    async fn probe_along(
        &self,
        topology: &Topology,
        walk: &Walk,
        from: &str,
        to: &str,
        probe: PathProbe,
    ) -> Result<Outcome, EngineError> {
        let serve_in = topology
            .pods
            .get_key_value(to)
            .filter(|_| walk.places.iter().any(|p| p.node == to))
            .map(|(name, pod)| pod_namespace(name, pod).to_string());
        let check = Check {
            index: 0,
            from: from.to_string(),
            from_ns: walk.from.clone(),
            to: to.to_string(),
            target: walk.to,
            serve_in,
            method: probe.port.map_or(Method::Echo, |port| Method::Tcp { port }),
            reach: true,
        };
        let checks = [check];
        let outcomes = self
            .releasing(crate::probe::run::run_checks(
                &super::check::OnPort(&self.kernel),
                &checks,
                probe.timeout,
            ))
            .await
            .map_err(EngineError::Listener)?;
        Ok(outcomes
            .into_iter()
            .next()
            .expect("run_checks gives one outcome per check"))
    }
}

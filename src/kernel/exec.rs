//! One change -> the netlink requests (or namespace and sysctl operations)
//! that make it. A run killed half way is finished by the next one, whose
//! plan starts from what is there; so a change does exactly what its plan
//! saw was needed: what is already gone is not an error for a delete, but
//! an address or route the plan did not see is not taken over by a create
//! (EEXIST), and a delete takes only the route the plan saw.

use std::io;

use super::error::{Context, KernelError, Result};
use super::link::{LinkChange, VethConfig, VxlanConfig};
use super::{Kernel, addr, fdb, link, namespace_label, netns, qdisc, route, sysctl};
use crate::model::{Action, Change, LinkKind, Resource, ResourceId};

/// A result where some errnos mean "already as wanted".
fn tolerate(result: Result<()>, already_done: &[i32]) -> Result<()> {
    match result {
        Err(err) if err.errno().is_some_and(|e| already_done.contains(&e)) => Ok(()),
        other => other,
    }
}

impl Kernel {
    /// Carries out one change. An interface deleted and made again behind
    /// netloom's back has a new ifindex: the request through the one
    /// learnt before fails with ENODEV, so the namespace's ifindexes are
    /// forgotten and the change is made once more, looking them up anew
    /// (each change is one request: nothing of the first try was done).
    pub async fn execute(&self, change: &Change) -> Result<()> {
        match self.execute_once(change).await {
            Err(err) if err.errno() == Some(libc::ENODEV) && self.forget_indexes(&change.id.ns) => {
                self.execute_once(change).await
            }
            other => other,
        }
    }

    async fn execute_once(&self, change: &Change) -> Result<()> {
        let id = &change.id;
        tracing::trace!("request: {:?} {id}", change.action);
        match (change.action, &change.to, &change.from) {
            (
                Action::Update,
                Some(Resource::Address { ifname, address }),
                Some(Resource::Address { address: old, .. }),
            ) => self.readdress(&id.ns, ifname, *old, *address).await,
            (Action::Create | Action::Update, Some(to), _) => self.set(id, to, change.action).await,
            (Action::Delete, _, Some(from)) => self.remove(id, from).await,
            _ => Err(KernelError::new(
                format!("{:?} {id}", change.action),
                io::Error::other("a change without its value"),
            )),
        }
    }

    /// Makes `id` have the value `to`: creates it (`Action::Create`) or
    /// changes it in place (`Action::Update`).
    async fn set(&self, id: &ResourceId, to: &Resource, action: Action) -> Result<()> {
        let ns = id.ns.as_str();
        let name = id.name.as_str();
        match to {
            Resource::Namespace => self.create_namespace(ns).await,
            Resource::Sysctl { value } => {
                let (key, text) = (name.to_string(), value.clone());
                self.run_in(ns, move || sysctl::write_here(&key, &text))
                    .await
                    .op(|| format!("set sysctl {name}={value} in {}", namespace_label(ns)))
            }
            Resource::Link(kind) => self.create_link(ns, name, kind).await,
            Resource::Alias { alias } => {
                self.change(ns, name, LinkChange::Mark(alias.clone())).await
            }
            Resource::Mac { mac } => self.change(ns, name, LinkChange::Mac(*mac)).await,
            Resource::Mtu { mtu } => {
                self.change(ns, name, LinkChange::Mtu(*mtu)).await?;
                self.fit_tbf_to_mtu(ns, name, *mtu).await
            }
            Resource::Up { up } => self.change(ns, name, LinkChange::Up(*up)).await,
            Resource::LinkLocal { enabled } => {
                self.change(ns, name, LinkChange::LinkLocal(*enabled)).await
            }
            Resource::Master { master } => {
                let master = self.index(ns, master).await?;
                match self.change(ns, name, LinkChange::Port(master)).await {
                    // A kernel without IPv6: a plain enslave.
                    Err(err) if err.errno() == Some(libc::EAFNOSUPPORT) => {
                        self.change(ns, name, LinkChange::Master(Some(master)))
                            .await
                    }
                    other => other,
                }
            }
            Resource::Qdisc {
                rate_bits_per_second,
            } => {
                let index = self.index(ns, name).await?;
                let handle = self.handle(ns).await?;
                let mtu = link::link_mtu(&handle, index).await?;
                let tbf = qdisc::Tbf::for_rate(*rate_bits_per_second, mtu);
                qdisc::set_tbf(&handle, index, &tbf).await
            }
            Resource::Address { ifname, address } => {
                let address = self.kernel_address(ns, ifname, address).await?;
                let handle = self.handle(ns).await?;
                // The plan adds only an address that is not there: one that
                // is (EEXIST) appeared since, and is not taken over.
                addr::add_address(&handle, &address).await
            }
            Resource::Route(wanted) => {
                let oif = match (&wanted.dev, wanted.via) {
                    (Some(dev), _) => Some(self.index(ns, dev).await?),
                    // Without `dev`, the kernel looks the gateway up in the
                    // route's own table, where the route being replaced
                    // may send it out of another interface: a repair goes
                    // out of the one on whose network the gateway is.
                    (None, Some(via)) if action == Action::Update => {
                        let handle = self.handle(ns).await?;
                        addr::interface_on_network_of(&handle, via).await?
                    }
                    (None, _) => None,
                };
                let kernel_route = route::Route {
                    dst: wanted.to.network(),
                    prefix_len: wanted.to.prefix_len(),
                    via: wanted.via,
                    oif,
                    metric: wanted.metric,
                    table: wanted.table,
                };
                let handle = self.handle(ns).await?;
                // A create is exclusive: a route with the same key that the
                // plan did not see is an error, not silently overwritten.
                // Only an update replaces the route the plan saw.
                route::add_route(&handle, &kernel_route, action == Action::Update).await
            }
            Resource::Fdb { ifname, dst } => {
                let index = self.index(ns, ifname).await?;
                let handle = self.handle(ns).await?;
                tolerate(
                    fdb::fdb_append(&handle, index, fdb::FLOOD_MAC, *dst).await,
                    &[libc::EEXIST],
                )
            }
        }
    }

    /// An address given a new prefix length. IPv4 holds one IP with two
    /// prefix lengths: the new one is added before the old goes, since
    /// removing an interface's last IPv4 address flushes every route out
    /// of it. IPv6 holds one IP once: the old goes first.
    async fn readdress(
        &self,
        ns: &str,
        ifname: &str,
        old: ipnet::IpNet,
        new: ipnet::IpNet,
    ) -> Result<()> {
        let old = self.kernel_address(ns, ifname, &old).await?;
        let new = self.kernel_address(ns, ifname, &new).await?;
        let handle = self.handle(ns).await?;
        let delete_old = || async {
            tolerate(
                addr::delete_address(&handle, &old).await,
                &[libc::EADDRNOTAVAIL],
            )
        };
        if new.ip.is_ipv4() {
            addr::add_address(&handle, &new).await?;
            delete_old().await
        } else {
            delete_old().await?;
            addr::add_address(&handle, &new).await
        }
    }

    /// A link's MTU went up: a token bucket already on it, sized for the
    /// old MTU, would drop the larger frames, so it grows with it (same
    /// rate). Whichever of the two a plan sets first, the bucket ends up
    /// holding the link's frames.
    async fn fit_tbf_to_mtu(&self, ns: &str, name: &str, mtu: u32) -> Result<()> {
        let index = self.index(ns, name).await?;
        let handle = self.handle(ns).await?;
        match qdisc::dump_tbfs(&handle).await?.remove(&index) {
            Some(tbf) if !tbf.holds_frames_of(mtu) => {
                qdisc::set_tbf(&handle, index, &qdisc::Tbf::for_rate(tbf.rate * 8, mtu)).await
            }
            _ => Ok(()),
        }
    }

    /// An address as netlink names it: on the interface's ifindex.
    async fn kernel_address(
        &self,
        ns: &str,
        ifname: &str,
        address: &ipnet::IpNet,
    ) -> Result<addr::Address> {
        Ok(addr::Address {
            index: self.index(ns, ifname).await?,
            ip: address.addr(),
            prefix_len: address.prefix_len(),
        })
    }

    /// Carries out changes to the settings of one interface (see
    /// `KernelPort::execute_settings`) in one request; retried once with
    /// ifindexes looked up anew, like `execute`.
    pub async fn execute_settings(&self, changes: &[&Change]) -> Result<()> {
        match self.execute_settings_once(changes).await {
            Err(err)
                if err.errno() == Some(libc::ENODEV)
                    && changes
                        .first()
                        .is_some_and(|c| self.forget_indexes(&c.id.ns)) =>
            {
                self.execute_settings_once(changes).await
            }
            other => other,
        }
    }

    async fn execute_settings_once(&self, changes: &[&Change]) -> Result<()> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        let (ns, name) = (first.id.ns.as_str(), first.id.name.as_str());
        let mut settings = Vec::with_capacity(changes.len());
        let mut master = None;
        for change in changes {
            tracing::trace!("request: {:?} {}", change.action, change.id);
            settings.push(match &change.to {
                Some(Resource::Alias { alias }) => LinkChange::Mark(alias.clone()),
                Some(Resource::Mac { mac }) => LinkChange::Mac(*mac),
                Some(Resource::Up { up }) => LinkChange::Up(*up),
                Some(Resource::LinkLocal { enabled }) => LinkChange::LinkLocal(*enabled),
                Some(Resource::Master { master: bridge }) => {
                    let index = self.index(ns, bridge).await?;
                    master = Some(index);
                    LinkChange::Port(index)
                }
                _ => {
                    return Err(KernelError::new(
                        format!("{:?} {}", change.action, change.id),
                        io::Error::other("not a setting of a link"),
                    ));
                }
            });
        }
        let handle = self.handle(ns).await?;
        match link::change_link_settings(&handle, name, &settings).await {
            // A kernel without IPv6: a plain enslave.
            Err(err) if err.errno() == Some(libc::EAFNOSUPPORT) && master.is_some() => {
                for setting in &mut settings {
                    if let LinkChange::Port(index) = setting {
                        *setting = LinkChange::Master(Some(*index));
                    }
                }
                link::change_link_settings(&handle, name, &settings).await
            }
            other => other,
        }
    }

    async fn change(&self, ns: &str, name: &str, change: LinkChange) -> Result<()> {
        let handle = self.handle(ns).await?;
        link::change_link(&handle, name, change).await
    }

    async fn create_link(&self, ns: &str, name: &str, kind: &LinkKind) -> Result<()> {
        let handle = self.handle(ns).await?;
        let index = match kind {
            LinkKind::Bridge => link::create_bridge(&handle, name).await?,
            LinkKind::Veth { peer_ns, peer } => {
                let veth = VethConfig {
                    name: name.to_string(),
                    peer_name: peer.clone(),
                    peer_netns: (peer_ns != ns).then(|| peer_ns.clone()),
                };
                let (index, peer_index) = link::create_veth(&handle, &veth).await?;
                // The pod's end is addressed next: no lookup for it.
                if let Some(peer_index) = peer_index {
                    self.remember_index(peer_ns, peer, peer_index);
                }
                index
            }
            LinkKind::Vxlan(vxlan) => {
                let config = VxlanConfig {
                    name: name.to_string(),
                    vni: vxlan.vni,
                    local: vxlan.local,
                    underlay: self.index(ns, &vxlan.underlay).await?,
                    port: vxlan.port,
                };
                link::create_vxlan(&handle, &config).await?
            }
            LinkKind::Other { name: other } => {
                return Err(KernelError::new(
                    format!("create {other} link {name}"),
                    io::Error::from(io::ErrorKind::Unsupported),
                ));
            }
        };
        self.remember_index(ns, name, index);
        Ok(())
    }

    /// Deletes `id`, whose live value is `from`.
    async fn remove(&self, id: &ResourceId, from: &Resource) -> Result<()> {
        let ns = id.ns.as_str();
        let name = id.name.as_str();
        match from {
            Resource::Namespace => {
                // An open socket would keep the namespace alive.
                self.forget(ns);
                tolerate(
                    netns::delete_netns(ns).op(|| format!("delete {}", namespace_label(ns))),
                    &[libc::ENOENT],
                )
            }
            Resource::Link(kind) => {
                let handle = self.handle(ns).await?;
                let result = link::delete_link(&handle, name).await;
                self.forget_index(ns, name);
                if let LinkKind::Veth { peer_ns, peer } = kind {
                    self.forget_index(peer_ns, peer);
                }
                tolerate(result, &[libc::ENODEV])
            }
            Resource::Master { .. } => self.change(ns, name, LinkChange::Master(None)).await,
            Resource::Alias { .. } => self.change(ns, name, LinkChange::Unmark).await,
            Resource::Qdisc { .. } => {
                let index = self.index(ns, name).await?;
                let handle = self.handle(ns).await?;
                tolerate(
                    qdisc::delete_root_qdisc(&handle, index).await,
                    &[libc::ENOENT, libc::EINVAL],
                )
            }
            Resource::Address { ifname, address } => {
                let address = self.kernel_address(ns, ifname, address).await?;
                let handle = self.handle(ns).await?;
                tolerate(
                    addr::delete_address(&handle, &address).await,
                    &[libc::EADDRNOTAVAIL],
                )
            }
            Resource::Route(live) => {
                let oif = match &live.dev {
                    Some(dev) => match self.index(ns, dev).await {
                        Ok(index) => Some(index),
                        // Its interface is gone, and the route with it.
                        Err(err) if err.errno() == Some(libc::ENODEV) => return Ok(()),
                        Err(err) => return Err(err),
                    },
                    None => None,
                };
                let exact = route::Route {
                    dst: live.to.network(),
                    prefix_len: live.to.prefix_len(),
                    via: live.via,
                    oif,
                    metric: live.metric,
                    table: live.table,
                };
                let handle = self.handle(ns).await?;
                tolerate(route::delete_route(&handle, &exact).await, &[libc::ESRCH])
            }
            Resource::Fdb { ifname, dst } => {
                let index = self.index(ns, ifname).await?;
                let handle = self.handle(ns).await?;
                tolerate(
                    fdb::fdb_delete(&handle, index, fdb::FLOOD_MAC, *dst).await,
                    &[libc::ENOENT],
                )
            }
            // Never planned: an undeclared MTU, MAC, state or address
            // generation is the kernel's, a sysctl cannot be deleted.
            Resource::Mtu { .. }
            | Resource::Mac { .. }
            | Resource::LinkLocal { .. }
            | Resource::Up { .. }
            | Resource::Sysctl { .. } => Ok(()),
        }
    }
}

//! Host mode: a file's `hosts` are real machines, and this is the one
//! `--host` names. Its underlay is read, never changed: it must be there
//! with the file's address (else this is not that machine), and overlay
//! MTUs follow its MTU.

use super::{EngineError, KernelPort};
use crate::kernel::{Interface, Scope};
use crate::model::{self, Desired, Kind, Mode, Resource, ResourceId};
use crate::spec::{Routing, Topology};

/// The desired state of a topology in a run's mode.
pub(super) async fn desired<K: KernelPort>(
    kernel: &K,
    topology: &Topology,
    mode: &Mode,
) -> Result<Desired, EngineError> {
    let mode = resolve_mode(kernel, topology, mode).await?;
    Ok(model::expand(topology, &mode))
}

/// The mode a topology expands in on this machine: in host mode, once the
/// underlay is checked, with its MTU (which overlay MTUs follow).
pub(super) async fn resolve_mode<K: KernelPort>(
    kernel: &K,
    topology: &Topology,
    mode: &Mode,
) -> Result<Mode, EngineError> {
    let Mode::Host { name, .. } = mode else {
        return Ok(mode.clone());
    };
    let host = topology
        .hosts
        .get(name.as_str())
        .ok_or_else(|| EngineError::UnknownHost(name.clone()))?;
    let ifname = model::expand::underlay_interface(host);
    let underlay = kernel.interface("", ifname).await?;
    let wanted = host.underlay.as_ref().and_then(|u| u.ok()).map(|u| u.0);
    if let Some(wanted) = wanted {
        check_underlay(name, ifname, wanted, underlay.as_ref())?;
    }
    Ok(Mode::Host {
        name: name.clone(),
        underlay_mtu: underlay.map(|interface| interface.mtu),
    })
}

/// This machine is host `host` only if its underlay holds the address.
fn check_underlay(
    host: &str,
    ifname: &str,
    wanted: ipnet::IpNet,
    underlay: Option<&Interface>,
) -> Result<(), EngineError> {
    let found = match underlay {
        None => format!("there is no interface {ifname}"),
        Some(interface) if interface.addresses.contains(&wanted) => return Ok(()),
        Some(interface) if interface.addresses.is_empty() => format!("{ifname} has no address"),
        Some(interface) => {
            let addresses: Vec<String> =
                interface.addresses.iter().map(|a| a.to_string()).collect();
            format!("{ifname} has {}", addresses.join(", "))
        }
    };
    Err(EngineError::WrongHost {
        host: host.to_string(),
        wanted: format!("{wanted} on {ifname}"),
        found,
    })
}

/// Host mode on a machine that does not forward IPv4, while the file
/// routes through it (`routing: host-gw`, or an overlay this host is a
/// member of) and leaves `forwarding` unset: pods elsewhere cannot reach
/// this host's pods. netloom sets no sysctl on a real host unless told
/// (docs/FORMAT.md, "Host"), so it says how to fix it.
pub(super) async fn forwarding_warning<K: KernelPort>(
    kernel: &K,
    topology: &Topology,
    mode: &Mode,
) -> Result<Option<String>, EngineError> {
    let Mode::Host { name, .. } = mode else {
        return Ok(None);
    };
    let Some(host) = topology.hosts.get(name.as_str()) else {
        return Ok(None);
    };
    if host.forwarding.is_some() {
        return Ok(None);
    }
    let host_gw = topology.routing.as_ref().map(|r| r.value) == Some(Routing::HostGw);
    let in_overlay = topology.overlays.values().any(|overlay| {
        overlay.bridges.iter().any(|key| {
            let bridge = topology.bridges.get(key.as_str());
            bridge.and_then(|b| b.host.as_ref()).map(|h| h.as_str()) == Some(name.as_str())
        })
    });
    if !host_gw && !in_overlay {
        return Ok(None);
    }
    let key = "net.ipv4.ip_forward";
    // The sysctl only: no interface of this machine's namespace.
    let scope = Scope {
        namespaces: [(String::new(), [key.to_string()].into())].into(),
        only_interfaces: [(String::new(), Default::default())].into(),
    };
    let observed = kernel.observe(&scope).await?;
    let forwards = observed
        .resources
        .get(&ResourceId::new("", Kind::Sysctl, key))
        .is_none_or(|value| !matches!(value, Resource::Sysctl { value } if value.trim() == "0"));
    if forwards {
        return Ok(None);
    }
    let why = if host_gw {
        "`routing: host-gw`"
    } else {
        "an overlay"
    };
    Ok(Some(format!(
        "host `{name}` does not forward IPv4 (net.ipv4.ip_forward is 0), so with {why} pods on other hosts cannot reach its pods: set `forwarding: true` on host `{name}`"
    )))
}

//! Host mode: a file's `hosts` are real machines, and this is the one
//! `--host` names. Its underlay is read, never changed: it must be there
//! with the file's address (else this is not that machine), and overlay
//! MTUs follow its MTU.

use super::{EngineError, KernelPort};
use crate::kernel::Interface;
use crate::model::{self, Desired, Mode};
use crate::spec::Topology;

/// The desired state of a topology in a run's mode.
pub(super) async fn desired<K: KernelPort>(
    kernel: &K,
    topology: &Topology,
    mode: &Mode,
) -> Result<Desired, EngineError> {
    let Mode::Host { name, .. } = mode else {
        return Ok(model::expand(topology, mode));
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
    let mode = Mode::Host {
        name: name.clone(),
        underlay_mtu: underlay.map(|interface| interface.mtu),
    };
    Ok(model::expand(topology, &mode))
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

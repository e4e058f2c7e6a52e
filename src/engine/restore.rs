//! Settings the file stopped declaring go back to what they were before
//! netloom set them (docs/FORMAT.md, "Pod"): a sysctl of a namespace
//! netloom did not create (a real host's `forwarding`) to the value it
//! replaced, as the record kept it; one of a namespace netloom created to
//! the kernel's default, read in a namespace made just for that (a new
//! namespace starts from the defaults, as the pod's did). A per-interface
//! key (`net.ipv4.conf.eth0.rp_filter`) starts from its `default` sibling.
//! An MTU set on a veth end that stays goes back to the kernel's default
//! for a new veth; one set on a bridge to what a new one would take from
//! its ports (the lowest of theirs, 1500 without ports). A VXLAN device's
//! MTU is always declared, its underlay's minus the overhead (see
//! `model::expand`): there is none to put back.

use std::collections::BTreeSet;
use std::io;

use crate::graph::sysctl_interface;
use crate::model::{Desired, Kind, LinkKind, Resource, ResourceId, Resources};
use crate::state::Record;

/// The MTU the kernel gives a new veth or bridge (ETH_DATA_LEN).
const VETH_DEFAULT_MTU: u32 = 1500;

/// The sysctls to put back, by id: not declared any more, recorded as set
/// by this topology, in a namespace that stays.
pub(super) fn restores(
    desired: &Desired,
    record: Option<&Record>,
    namespace_exists: impl Fn(&str) -> bool,
    fresh_namespace_sysctls: impl FnOnce(&[String]) -> io::Result<Vec<(String, Option<String>)>>,
) -> io::Result<Resources> {
    let mut restores = Resources::new();
    let Some(record) = record else {
        return Ok(restores);
    };
    let declared = |id: &ResourceId| desired.resources.contains_key(id);
    let made = record.all_namespaces();
    for (id, value) in &record.replaced {
        if !declared(id) && !made.contains(&id.ns) && namespace_exists(&id.ns) {
            let value = value.clone();
            restores.insert(id.clone(), Resource::Sysctl { value });
        }
    }
    for id in record
        .created
        .iter()
        .filter(|id| id.kind == Kind::Mtu && !declared(id))
    {
        let mtu = if is_declared_bridge(desired, id) {
            Some(bridge_mtu_from_ports(desired, &id.ns, &id.name))
        } else {
            is_declared_veth_end(desired, &id.ns, &id.name).then_some(VETH_DEFAULT_MTU)
        };
        if let Some(mtu) = mtu {
            restores.insert(id.clone(), Resource::Mtu { mtu });
        }
    }
    // Sysctls set in a namespace netloom made, which the file still has.
    let to_default: Vec<&ResourceId> = record
        .created
        .iter()
        .filter(|id| id.kind == Kind::Sysctl && !declared(id))
        .filter(|id| declared(&ResourceId::namespace(&id.ns)))
        .collect();
    if to_default.is_empty() {
        return Ok(restores);
    }
    let keys: BTreeSet<String> = to_default.iter().map(|id| default_key(&id.name)).collect();
    let keys: Vec<String> = keys.into_iter().collect();
    let defaults = fresh_namespace_sysctls(&keys)?;
    for id in to_default {
        let key = default_key(&id.name);
        let value = defaults.iter().find(|(k, _)| *k == key);
        // A key a new namespace lacks has no default to go back to.
        if let Some((_, Some(value))) = value {
            let value = value.clone();
            restores.insert(id.clone(), Resource::Sysctl { value });
        }
    }
    Ok(restores)
}

fn is_declared_bridge(desired: &Desired, mtu: &ResourceId) -> bool {
    let link = ResourceId::link(&mtu.ns, &mtu.name);
    matches!(
        desired.resources.get(&link),
        Some(Resource::Link(LinkKind::Bridge))
    )
}

/// The MTU a bridge takes from its declared ports when none is set on it:
/// the lowest of theirs (a port without one has a new veth's), or a new
/// bridge's 1500 without ports. Set explicitly, it no longer follows ports
/// that change later: the kernel has no way back to following them.
fn bridge_mtu_from_ports(desired: &Desired, ns: &str, bridge: &str) -> u32 {
    let port_mtu = |port: &ResourceId| match desired.resources.get(&ResourceId::new(
        ns,
        Kind::Mtu,
        port.name.clone(),
    )) {
        Some(Resource::Mtu { mtu }) => *mtu,
        _ => VETH_DEFAULT_MTU,
    };
    desired
        .resources
        .iter()
        .filter(|(id, r)| {
            id.ns == ns && matches!(r, Resource::Master { master } if master == bridge)
        })
        .map(|(port, _)| port_mtu(port))
        .min()
        .unwrap_or(VETH_DEFAULT_MTU)
}

/// Whether (ns, ifname) is an end of a veth the file declares.
fn is_declared_veth_end(desired: &Desired, ns: &str, ifname: &str) -> bool {
    desired
        .resources
        .iter()
        .any(|(id, resource)| match resource {
            Resource::Link(LinkKind::Veth { peer_ns, peer }) => {
                (id.ns == ns && id.name == ifname) || (peer_ns == ns && peer == ifname)
            }
            _ => false,
        })
}

/// The key whose value in a new namespace is `key`'s default: itself, or
/// for an interface's key its `default` sibling (an interface copies it
/// when it is made).
pub(super) fn default_key(key: &str) -> String {
    match sysctl_interface(key) {
        Some(ifname) => key.replacen(&format!(".{ifname}."), ".default.", 1),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Desired;

    fn sysctl(ns: &str, key: &str) -> ResourceId {
        ResourceId::new(ns, Kind::Sysctl, key)
    }

    #[test]
    fn a_per_interface_key_defaults_like_its_default_sibling() {
        assert_eq!(
            default_key("net.ipv4.conf.eth0.rp_filter"),
            "net.ipv4.conf.default.rp_filter"
        );
        assert_eq!(default_key("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
    }

    #[test]
    fn only_what_was_set_and_is_no_longer_declared_goes_back() {
        let mut record = Record::new("t");
        record.namespaces.insert("pod".into());
        record
            .replaced
            .insert(sysctl("", "net.ipv4.ip_forward"), "0".into());
        record
            .replaced
            .insert(sysctl("gone", "net.ipv4.ip_forward"), "0".into());
        record.created.insert(sysctl("pod", "net.ipv4.ip_forward"));
        record
            .created
            .insert(sysctl("pod", "net.ipv4.conf.eth0.rp_filter"));
        record
            .created
            .insert(sysctl("removed-pod", "net.ipv4.ip_forward"));
        let mut desired = Desired {
            topology: "t".into(),
            resources: Resources::new(),
        };
        desired
            .resources
            .insert(ResourceId::namespace("pod"), Resource::Namespace);
        let still = sysctl("pod", "net.ipv4.conf.eth0.rp_filter");
        desired
            .resources
            .insert(still.clone(), Resource::Sysctl { value: "2".into() });
        let fresh = |keys: &[String]| {
            assert_eq!(keys, ["net.ipv4.ip_forward"]);
            Ok(vec![(
                "net.ipv4.ip_forward".to_string(),
                Some("0".to_string()),
            )])
        };
        let restores = restores(&desired, Some(&record), |ns| ns != "gone", fresh).unwrap();
        let zero = Resource::Sysctl { value: "0".into() };
        assert_eq!(
            restores.into_iter().collect::<Vec<_>>(),
            [
                (sysctl("", "net.ipv4.ip_forward"), zero.clone()),
                (sysctl("pod", "net.ipv4.ip_forward"), zero),
            ]
        );
    }

    #[test]
    fn an_mtu_no_longer_declared_on_a_veth_end_goes_back_to_the_default() {
        let mtu = |ns: &str, ifname: &str| ResourceId::new(ns, Kind::Mtu, ifname);
        let mut record = Record::new("t");
        // Set on both ends of a veth that stays, and on one that went.
        for id in [mtu("pod", "eth0"), mtu("", "port0"), mtu("old", "eth0")] {
            record.created.insert(id);
        }
        let mut desired = Desired {
            topology: "t".into(),
            resources: Resources::new(),
        };
        let veth = LinkKind::Veth {
            peer_ns: "pod".into(),
            peer: "eth0".into(),
        };
        desired
            .resources
            .insert(ResourceId::link("", "port0"), Resource::Link(veth));
        // Still declared on one end: nothing to restore there.
        desired
            .resources
            .insert(mtu("", "port0"), Resource::Mtu { mtu: 9000 });
        let fresh = |_: &[String]| Ok(Vec::new());
        let restores = restores(&desired, Some(&record), |_| true, fresh).unwrap();
        assert_eq!(
            restores.into_iter().collect::<Vec<_>>(),
            [(mtu("pod", "eth0"), Resource::Mtu { mtu: 1500 })]
        );
    }

    #[test]
    fn a_bridge_mtu_no_longer_declared_goes_back_to_what_its_ports_give() {
        let mtu = |ifname: &str| ResourceId::new("", Kind::Mtu, ifname);
        let mut record = Record::new("t");
        record.created.insert(mtu("br0"));
        let mut desired = Desired {
            topology: "t".into(),
            resources: Resources::new(),
        };
        desired.resources.insert(
            ResourceId::link("", "br0"),
            Resource::Link(LinkKind::Bridge),
        );
        let fresh = |_: &[String]| Ok(Vec::new());
        let restored = |desired: &Desired| {
            restores(desired, Some(&record), |_| true, fresh).unwrap()[&mtu("br0")].clone()
        };
        // No ports: a new bridge's 1500.
        assert_eq!(restored(&desired), Resource::Mtu { mtu: 1500 });
        // The lowest of its ports'.
        for (port, port_mtu) in [("p1", Some(1400)), ("p2", None)] {
            let master = ResourceId::new("", Kind::Master, port);
            let on = Resource::Master {
                master: "br0".into(),
            };
            desired.resources.insert(master, on);
            if let Some(port_mtu) = port_mtu {
                let value = Resource::Mtu { mtu: port_mtu };
                desired.resources.insert(mtu(port), value);
            }
        }
        assert_eq!(restored(&desired), Resource::Mtu { mtu: 1400 });
    }
}

//! Settings the file stopped declaring go back to what they were before
//! netloom set them (docs/FORMAT.md, "Pod"): a sysctl of a namespace
//! netloom did not create (a real host's `forwarding`) to the value it
//! replaced, as the record kept it; one of a namespace netloom created to
//! the kernel's default, read in a namespace made just for that (a new
//! namespace starts from the defaults, as the pod's did). A per-interface
//! key (`net.ipv4.conf.eth0.rp_filter`) starts from its `default` sibling.

use std::collections::BTreeSet;
use std::io;

use crate::graph::sysctl_interface;
use crate::model::{Desired, Kind, Resource, ResourceId, Resources};
use crate::state::Record;

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
}

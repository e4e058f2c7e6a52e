//! The goal of `destroy`: nothing of the topology left, and every value it
//! replaced back as it was.

use crate::model::{Resource, Resources};
use crate::spec::Topology;
use crate::state::Records;

/// What `destroy` works from.
pub enum DestroyTarget<'a> {
    /// The file: what it places on this machine, and what the record says
    /// was made.
    File(&'a Topology),
    /// A name alone: the record, and every namespace carrying the
    /// topology's mark (the record may be gone).
    Name(&'a str),
}

/// The values to restore: sysctls the topology replaced in namespaces
/// that stay (those it made go away with their sysctls) and still exist.
pub(super) fn restore_set(
    records: &Records,
    topology: &str,
    namespace_exists: impl Fn(&str) -> bool,
) -> Resources {
    let Some(record) = records.get(topology) else {
        return Resources::new();
    };
    let made = record.all_namespaces();
    record
        .replaced
        .iter()
        .filter(|(id, _)| !made.contains(&id.ns))
        .filter(|(id, _)| namespace_exists(&id.ns))
        .map(|(id, value)| {
            let value = value.clone();
            (id.clone(), Resource::Sysctl { value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, ResourceId};
    use crate::state::Record;

    #[test]
    fn only_values_of_namespaces_that_stay_are_restored() {
        let sysctl = |ns: &str| ResourceId::new(ns, Kind::Sysctl, "net.ipv4.ip_forward");
        let mut record = Record::new("lab");
        record.namespaces.insert("made".into());
        for ns in ["", "made", "foreign", "gone"] {
            record.replaced.insert(sysctl(ns), "0".into());
        }
        let mut records = Records::default();
        records.by_topology.insert("lab".into(), record);
        let restore = restore_set(&records, "lab", |ns| ns != "gone");
        assert_eq!(
            restore.keys().collect::<Vec<_>>(),
            [&sysctl(""), &sysctl("foreign")]
        );
        assert_eq!(restore[&sysctl("")], Resource::Sysctl { value: "0".into() });
        assert!(restore_set(&records, "other", |_| true).is_empty());
    }
}

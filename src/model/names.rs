//! Names netloom derives and the ownership marks it writes. Both are part
//! of the contract: they must stay the same across runs and versions.

use sha2::{Digest, Sha256};

use super::Mac;

/// The mark on every link netloom creates (IFLA_IFALIAS) and on the
/// loopback of every namespace it creates: `netloom:<topology>/<object>`.
pub fn mark(topology: &str, object: &str) -> String {
    format!("netloom:{topology}/{object}")
}

/// The topology a mark belongs to, if it is a netloom mark.
pub fn mark_owner(alias: &str) -> Option<&str> {
    let rest = alias.strip_prefix("netloom:")?;
    let (topology, _) = rest.split_once('/')?;
    Some(topology)
}

/// The interface name netloom gives a link end the file does not name:
/// the bridge side of a pod's `bridge:` shorthand (owner = pod), and the
/// switch side of a lab host's underlay (owner = host). `veth` and the
/// first 8 hex digits of SHA-256 of `topology/owner/interface`: 12 bytes,
/// stable, and distinct for every topology, owner and interface.
pub fn derived_ifname(topology: &str, owner: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{topology}/{owner}/{ifname}").as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("veth{hex}")
}

/// A bridge's MAC when the file sets none: stable, so the bridge does not
/// take a new address whenever its lowest-numbered port changes.
pub fn derived_bridge_mac(topology: &str, bridge: &str) -> Mac {
    let digest = Sha256::digest(format!("{topology}/bridge/{bridge}").as_bytes());
    Mac::local_from_hash(&digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_are_stable_and_short() {
        // These values are part of the contract (README documents the
        // rule): changing them would orphan every running lab.
        assert_eq!(derived_ifname("seed", "test", "eth0"), "vethab3fe044");
        assert!(derived_ifname("a-very-long-topo", "a-very-long-pod-name", "eth0").len() <= 15);
        assert_ne!(
            derived_ifname("a", "b", "eth0"),
            derived_ifname("a", "c", "eth0")
        );
        let mac = derived_bridge_mac("seed", "test0");
        assert_eq!(mac.0[0] & 0x03, 0x02, "locally administered unicast");
        assert_eq!(mac, derived_bridge_mac("seed", "test0"));
    }

    #[test]
    fn marks_name_their_topology() {
        let alias = mark("seed", "bridge:test0");
        assert_eq!(alias, "netloom:seed/bridge:test0");
        assert_eq!(mark_owner(&alias), Some("seed"));
        assert_eq!(mark_owner("my uplink"), None);
        assert_eq!(mark_owner("netloom:broken"), None);
    }
}

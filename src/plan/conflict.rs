//! A declared object that something netloom may not touch is in the way
//! of: what it is, whose, and how to fix it.

use serde::Serialize;

use super::Owner;
use crate::model::{Resource, ResourceId};

/// A declared object that something netloom may not touch is in the way of.
#[derive(Clone, Debug, Serialize)]
pub struct Conflict {
    pub id: ResourceId,
    pub owner: Owner,
    pub live: Resource,
    pub cause: Cause,
}

/// How an object is in the way of a declared one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "cause", content = "name")]
pub enum Cause {
    /// It has the declared object's name (or key).
    SameName,
    /// It holds the declared interface name as an alternative name.
    AltName(String),
    /// It is another kind of object than the declared one (even adopted,
    /// it could only be replaced, which would delete it).
    OtherKind(String),
    /// A veth moved into one of the topology's namespaces by hand, whose
    /// other end is outside them: deleting it would delete that end too.
    ForeignPeer,
}

impl Conflict {
    pub fn message(&self) -> String {
        let whose = match &self.owner {
            Owner::Other(topology) => format!("owned by topology `{topology}`"),
            Owner::Kernel => "made by the kernel itself".to_string(),
            _ => "owned by nobody (it is not netloom's)".to_string(),
        };
        let note = match &self.cause {
            Cause::SameName => String::new(),
            Cause::AltName(name) => format!(" and holds the name {name} as an altname"),
            Cause::OtherKind(wanted) => format!(" and is not the {wanted} the file declares"),
            Cause::ForeignPeer => {
                " in a namespace of this topology, but its peer is outside the topology's namespaces (deleting it would delete the peer too)".to_string()
            }
        };
        format!(
            "{} already exists ({}){note}, {whose}",
            self.id,
            self.live.describe()
        )
    }

    pub fn help(&self) -> &'static str {
        match (&self.cause, &self.owner) {
            // Adopting the other interface would not free the name.
            (Cause::AltName(_), _) => {
                "rename the interface in the file, or remove the altname (ip link property del dev IFACE altname NAME)"
            }
            (Cause::OtherKind(_), _) => "rename the object in the file, or remove the existing one",
            (Cause::ForeignPeer, _) => {
                "move the veth out of the namespace (ip -n NS link set IFACE netns OTHER), or delete the pair yourself (ip -n NS link del IFACE)"
            }
            (_, Owner::Other(_)) => {
                "rename the object in one of the two topologies; netloom never touches another topology's objects"
            }
            (_, Owner::Kernel) => {
                "the kernel keeps this route for an address's subnet (or learnt it from a router): remove it from the file, or give it another metric"
            }
            _ => {
                "rename the object in the file, remove the existing one, or take it over with --adopt"
            }
        }
    }
}

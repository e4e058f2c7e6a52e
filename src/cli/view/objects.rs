//! Which of the file's objects each kernel object belongs to, so that
//! plans and results read in the file's words (a pod, a bridge, a link)
//! rather than in kernel objects.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::model::expand::{
    self, NAMESPACE_BASELINE, UNDERLAY_BRIDGE, bridge_ifname, pod_namespace, underlay_interface,
    underlay_namespace,
};
use crate::model::{Kind, Mode, OWN_NAMESPACE, ResourceId, derived_ifname};
use crate::spec::{OwnerKind, Sp, Topology};

/// An object of the topology file. The variant order is the order in
/// which a plan lists them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    Host(String),
    /// The lab's underlay switch.
    Underlay,
    Bridge(String),
    Pod(String),
    /// A `links:` entry, by its two endpoints.
    Link(String, String),
    Overlay(String),
    /// Something the file no longer names (a leftover being deleted).
    Namespace(String),
    Interface(String, String),
}

/// A namespace name for people: `""` is the machine's own.
pub fn namespace_words(ns: &str) -> String {
    if ns.is_empty() {
        OWN_NAMESPACE.to_string()
    } else {
        format!("namespace {ns}")
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Host(name) => write!(f, "host {name}"),
            Object::Underlay => f.write_str("underlay switch"),
            Object::Bridge(name) => write!(f, "bridge {name}"),
            Object::Pod(name) => write!(f, "pod {name}"),
            Object::Link(a, b) => write!(f, "link {a} <-> {b}"),
            Object::Overlay(name) => write!(f, "overlay {name}"),
            Object::Namespace(ns) => f.write_str(&namespace_words(ns)),
            Object::Interface(ns, ifname) => {
                write!(f, "interface {ifname} in {}", namespace_words(ns))
            }
        }
    }
}

type Place = (String, String);

/// The owners of a topology's kernel objects, in one mode.
#[derive(Debug, Default)]
pub struct Owners {
    namespaces: HashMap<String, Object>,
    /// (namespace, interface) -> the object whose interface it is.
    interfaces: HashMap<Place, Object>,
    /// (namespace, interface) of a veth end -> the object the pair stands for.
    cables: HashMap<Place, Object>,
    /// Bridges whose MAC netloom derives (the file sets none).
    derived_macs: BTreeSet<Place>,
    /// Pod and host namespaces, for the words after a header.
    where_: HashMap<Object, String>,
}

impl Owners {
    /// No file (`destroy --name`): every object is named by where it is.
    pub fn none() -> Owners {
        Owners::default()
    }

    pub fn new(spec: &Topology, mode: &Mode) -> Owners {
        let mut owners = Owners::default();
        let scope = Scope { spec, mode };
        let topology = spec.name.as_str();
        let lab = *mode == Mode::Lab;
        if lab && spec.hosts.values().any(|h| h.underlay.is_some()) {
            let ns = underlay_namespace(topology);
            owners.namespaces.insert(ns.clone(), Object::Underlay);
            owners
                .interfaces
                .insert((ns, UNDERLAY_BRIDGE.to_string()), Object::Underlay);
        }
        for name in spec.hosts.keys() {
            let Some(ns) = scope.host_ns(Some(name)) else {
                continue;
            };
            let host = Object::Host(name.value.clone());
            owners.namespaces.insert(ns.clone(), host.clone());
            owners.where_.insert(host.clone(), namespace_words(&ns));
            let ifname = underlay_interface(&spec.hosts[name]);
            let port = derived_ifname(topology, name, ifname);
            for place in [
                (ns.clone(), ifname.to_string()),
                (underlay_namespace(topology), port),
            ] {
                owners.interfaces.insert(place.clone(), host.clone());
                owners.cables.insert(place, host.clone());
            }
        }
        for (key, bridge) in &spec.bridges {
            let Some(ns) = scope.host_ns(scope.placement(bridge.host.as_ref())) else {
                continue;
            };
            let object = Object::Bridge(key.value.clone());
            let place = (ns.clone(), bridge_ifname(key, bridge).to_string());
            if bridge.mac.is_none() {
                owners.derived_macs.insert(place.clone());
            }
            owners.interfaces.insert(place, object.clone());
            owners.where_.insert(object, namespace_words(&ns));
        }
        for (name, pod) in &spec.pods {
            let Some(host_ns) = scope.host_ns(scope.placement(pod.host.as_ref())) else {
                continue;
            };
            let ns = pod_namespace(name, pod).to_string();
            let object = Object::Pod(name.value.clone());
            owners.namespaces.insert(ns.clone(), object.clone());
            owners.where_.insert(object.clone(), namespace_words(&ns));
            for (ifname, settings) in &pod.interfaces {
                owners
                    .interfaces
                    .insert((ns.clone(), ifname.value.clone()), object.clone());
                if settings.bridge.is_some() {
                    let port = (host_ns.clone(), derived_ifname(topology, name, ifname));
                    owners.interfaces.insert(port.clone(), object.clone());
                    owners.cables.insert(port, object.clone());
                    owners
                        .cables
                        .insert((ns.clone(), ifname.value.clone()), object.clone());
                }
            }
        }
        for link in &spec.links {
            let ends: Vec<_> = link.endpoints.iter().filter_map(|e| e.ok()).collect();
            let [a, b] = ends[..] else { continue };
            let object = Object::Link(a.to_string(), b.to_string());
            for end in [a, b] {
                let Some(ns) = scope.endpoint_ns(&end.owner) else {
                    continue;
                };
                let place = (ns, end.ifname.clone());
                owners.cables.insert(place.clone(), object.clone());
                // A pod's or host's end carries the settings written under
                // that pod or host; a bridge's end is the link's own.
                owners.interfaces.entry(place).or_insert(object.clone());
            }
        }
        for (name, overlay) in &spec.overlays {
            for key in &overlay.bridges {
                let Some(bridge) = spec.bridges.get(key.as_str()) else {
                    continue;
                };
                if let Some(ns) = scope.host_ns(scope.placement(bridge.host.as_ref())) {
                    let object = Object::Overlay(name.value.clone());
                    owners
                        .interfaces
                        .insert((ns, name.value.clone()), object.clone());
                }
            }
        }
        owners
    }

    /// The object a kernel object belongs to.
    pub fn owner_of(&self, id: &ResourceId) -> Object {
        let place = |ifname: &str| (id.ns.clone(), ifname.to_string());
        let by_namespace = || {
            self.namespaces
                .get(&id.ns)
                .cloned()
                .unwrap_or_else(|| Object::Namespace(id.ns.clone()))
        };
        match id.ifname() {
            Some("lo") | None => by_namespace(),
            Some(ifname) if id.kind == Kind::Link => self
                .cables
                .get(&place(ifname))
                .or_else(|| self.interfaces.get(&place(ifname)))
                .cloned()
                .unwrap_or_else(|| Object::Interface(id.ns.clone(), ifname.to_string())),
            Some(ifname) => self
                .interfaces
                .get(&place(ifname))
                .cloned()
                .unwrap_or_else(|| Object::Interface(id.ns.clone(), ifname.to_string())),
        }
    }

    /// Where a pod, host or bridge lives, in words.
    pub fn location(&self, object: &Object) -> Option<&str> {
        self.where_.get(object).map(String::as_str)
    }

    /// Whether a kernel object is netloom's own baseline rather than
    /// something the file says: marks, `up`, bridge ports, a namespace's
    /// baseline sysctls, derived MACs, the namespace or veth itself.
    pub fn is_baseline(&self, id: &ResourceId) -> bool {
        match id.kind {
            Kind::Namespace | Kind::Link | Kind::Alias | Kind::Up | Kind::Master => true,
            Kind::Sysctl => NAMESPACE_BASELINE.iter().any(|(key, _)| *key == id.name),
            Kind::Mac => self
                .derived_macs
                .contains(&(id.ns.clone(), id.name.clone())),
            _ => false,
        }
    }
}

/// Where the file's objects are in one mode (as `model::expand` places them).
struct Scope<'a> {
    spec: &'a Topology,
    mode: &'a Mode,
}

impl<'a> Scope<'a> {
    fn placement(&self, explicit: Option<&'a Sp<String>>) -> Option<&'a str> {
        expand::placement(self.spec, explicit)
    }

    fn host_ns(&self, host: Option<&str>) -> Option<String> {
        expand::host_namespace(self.spec, self.mode, host)
    }

    fn endpoint_ns(&self, owner: &str) -> Option<String> {
        let spec = self.spec;
        match spec.owner_kind(owner)? {
            OwnerKind::Pod => {
                let (name, pod) = spec.pods.get_key_value(owner)?;
                self.host_ns(self.placement(pod.host.as_ref()))?;
                Some(pod_namespace(name, pod).to_string())
            }
            OwnerKind::Bridge => {
                let bridge = spec.bridges.get(owner)?;
                self.host_ns(self.placement(bridge.host.as_ref()))
            }
            OwnerKind::Host => self.host_ns(Some(owner)),
        }
    }
}

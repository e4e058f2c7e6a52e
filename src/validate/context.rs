//! What several rules need to know about a file: where each object is
//! placed, and every interface of every namespace in lab mode (the one
//! machine that holds every namespace), derived ones included.

use std::cell::Cell;
use std::collections::HashSet;

use indexmap::IndexMap;

use crate::model::derived_ifname;
use crate::model::expand::{UNDERLAY_BRIDGE, bridge_ifname, underlay_interface};
use crate::spec::{Endpoint, IfaceAddr, OwnerKind, Parsed, Sp, Span, Topology};

/// Where a bridge, pod or link end lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Place<'a> {
    /// No `hosts:`: the machine netloom runs on.
    Machine,
    Host(&'a str),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Machine => f.write_str("this machine"),
            Place::Host(host) => write!(f, "host `{host}`"),
        }
    }
}

/// A network namespace, by what it belongs to (not by its name: two pods
/// with one `netns` are reported once, as a namespace name collision, not
/// again for every interface name they share).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Ns<'a> {
    Place(Place<'a>),
    Pod(&'a str),
    /// The lab underlay switch, `<topology>-underlay`.
    Underlay,
}

impl std::fmt::Display for Ns<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ns::Place(Place::Machine) => f.write_str("this machine's namespace"),
            Ns::Place(place) => place.fmt(f),
            Ns::Pod(pod) => write!(f, "pod `{pod}`"),
            Ns::Underlay => f.write_str("the underlay switch's namespace"),
        }
    }
}

/// One interface of a namespace.
#[derive(Debug)]
pub(super) struct Iface<'a> {
    pub name: String,
    /// What it is, for messages: "bridge `br0`", "interface `eth0` of pod `web`".
    pub what: String,
    /// Where the file declares it, or the value it is derived from.
    pub span: Span,
    pub addresses: Vec<&'a Parsed<IfaceAddr>>,
    /// The `OWNER:ifname` of a link end that would be this interface.
    pub end: Option<(&'a str, &'a str)>,
    /// Named by netloom, not by the file: a collision needs a rename of
    /// whatever the name is derived from.
    pub derived: bool,
}

pub(super) struct Context<'a> {
    pub t: &'a Topology,
    /// Every namespace netloom creates or uses in lab mode, with its interfaces.
    pub namespaces: IndexMap<Ns<'a>, Vec<Iface<'a>>>,
    /// "Did you mean" costs a string distance per candidate: a hostile file
    /// with thousands of bad references among thousands of names gets
    /// suggestions until this many distances have been computed.
    distances_left: Cell<usize>,
}

impl<'a> Context<'a> {
    pub fn new(t: &'a Topology) -> Self {
        let mut cx = Context {
            t,
            namespaces: IndexMap::new(),
            distances_left: Cell::new(20_000),
        };
        cx.namespaces = cx.inventory();
        cx
    }

    /// The host an object with this `host:` is on; `None` when that cannot
    /// be told (an unknown host, or none given with several hosts: both
    /// reported by `references`).
    pub fn place(&self, host: Option<&Sp<String>>) -> Option<Place<'a>> {
        let hosts = &self.t.hosts;
        match host {
            Some(host) => hosts
                .get_key_value(host.as_str())
                .map(|(name, _)| Place::Host(name.as_str())),
            None if hosts.is_empty() => Some(Place::Machine),
            None if hosts.len() == 1 => hosts.keys().next().map(|name| Place::Host(name.as_str())),
            None => None,
        }
    }

    pub fn bridge_place(&self, key: &str) -> Option<Place<'a>> {
        self.place(self.t.bridges.get(key)?.host.as_ref())
    }

    fn pod_place(&self, key: &str) -> Option<Place<'a>> {
        self.place(self.t.pods.get(key)?.host.as_ref())
    }

    /// The host a link end is on.
    pub fn endpoint_place(&self, end: &Endpoint) -> Option<Place<'a>> {
        match self.t.owner_kind(&end.owner)? {
            OwnerKind::Pod => self.pod_place(&end.owner),
            OwnerKind::Bridge => self.bridge_place(&end.owner),
            OwnerKind::Host => self
                .t
                .hosts
                .get_key_value(end.owner.as_str())
                .map(|(name, _)| Place::Host(name.as_str())),
        }
    }

    /// The namespace a link end's interface lives in.
    pub fn endpoint_ns(&self, end: &Endpoint) -> Option<Ns<'a>> {
        match self.t.owner_kind(&end.owner)? {
            OwnerKind::Pod => {
                let (name, _) = self.t.pods.get_key_value(end.owner.as_str())?;
                Some(Ns::Pod(name.as_str()))
            }
            OwnerKind::Bridge | OwnerKind::Host => self.endpoint_place(end).map(Ns::Place),
        }
    }

    /// The name closest to `wanted`, if one is close enough to be a typo.
    fn closest<'n>(
        &self,
        wanted: &str,
        candidates: impl IntoIterator<Item = &'n str>,
    ) -> Option<&'n str> {
        if wanted.len() > 64 {
            return None;
        }
        let chars = wanted.chars().count();
        let limit = (chars / 3).max(1);
        let mut best: Option<(usize, &str)> = None;
        for name in candidates {
            // The distance is at least the difference in length.
            if name.len() > 4 * 64 || name.chars().count().abs_diff(chars) > limit {
                continue;
            }
            let left = self.distances_left.get();
            if left == 0 {
                return None;
            }
            self.distances_left.set(left - 1);
            let distance = strsim::osa_distance(wanted, name);
            if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, name));
            }
        }
        best.map(|(_, name)| name)
    }

    /// A help line for a name that refers to nothing: the closest name, or
    /// the few there are.
    pub fn suggest<'n>(
        &self,
        wanted: &str,
        kind_plural: &str,
        candidates: impl IntoIterator<Item = &'n str> + Clone,
    ) -> String {
        if let Some(name) = self.closest(wanted, candidates.clone()) {
            return format!("did you mean `{name}`?");
        }
        let names: Vec<&str> = candidates.into_iter().take(6).collect();
        match names.len() {
            0 => format!("the file declares no {kind_plural}"),
            1..=5 => {
                let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                format!("the {kind_plural} are {}", list.join(", "))
            }
            _ => format!("none of the {kind_plural} has a similar name"),
        }
    }

    /// Every namespace's interfaces in lab mode (see `Iface`). Each
    /// interface appears once however many times the file mentions it (an
    /// `interfaces` entry and a link end are the same interface).
    fn inventory(&self) -> IndexMap<Ns<'a>, Vec<Iface<'a>>> {
        let t = self.t;
        let mut out: IndexMap<Ns<'a>, Vec<Iface<'a>>> = IndexMap::new();
        let mut ends = HashSet::new();
        let mut add = |ns: Ns<'a>, iface: Iface<'a>| {
            if iface.end.is_none_or(|end| ends.insert((ns, end))) {
                out.entry(ns).or_default().push(iface);
            }
        };
        let derived = |name: String, what: String, span: Span| Iface {
            name,
            what,
            span,
            addresses: Vec::new(),
            end: None,
            derived: true,
        };
        let loopback = || derived("lo".into(), "the loopback interface".into(), Span::UNKNOWN);
        if t.hosts.is_empty() {
            add(Ns::Place(Place::Machine), loopback());
        }
        for (name, host) in &t.hosts {
            let ns = Ns::Place(Place::Host(name.as_str()));
            add(ns, loopback());
            if let Some(underlay) = &host.underlay {
                let ifname = underlay_interface(host);
                add(
                    ns,
                    Iface {
                        name: ifname.to_string(),
                        what: format!("the underlay interface of host `{name}`"),
                        span: host
                            .underlay_interface
                            .as_ref()
                            .map_or(underlay.span(), |i| i.span),
                        addresses: vec![underlay],
                        end: Some((name.as_str(), ifname)),
                        derived: false,
                    },
                );
            }
        }
        if t.hosts.values().any(|h| h.underlay.is_some()) {
            add(Ns::Underlay, loopback());
            let switch = "the underlay switch".to_string();
            add(
                Ns::Underlay,
                derived(UNDERLAY_BRIDGE.into(), switch, Span::UNKNOWN),
            );
            for (name, host) in &t.hosts {
                if let Some(underlay) = &host.underlay {
                    let port = derived_ifname(&t.name, name, underlay_interface(host));
                    let what = format!("the underlay switch port of host `{name}`");
                    add(Ns::Underlay, derived(port, what, underlay.span()));
                }
            }
        }
        for (key, bridge) in &t.bridges {
            let Some(place) = self.place(bridge.host.as_ref()) else {
                continue;
            };
            let iface = Iface {
                name: bridge_ifname(key, bridge).to_string(),
                what: format!("bridge `{key}`"),
                span: bridge.ifname.as_ref().map_or(key.span, |i| i.span),
                addresses: bridge.addresses.iter().collect(),
                end: None,
                derived: false,
            };
            add(Ns::Place(place), iface);
        }
        for (name, host) in &t.hosts {
            for (ifname, settings) in &host.interfaces {
                let iface = Iface {
                    name: ifname.value.clone(),
                    what: format!("interface `{ifname}` of host `{name}`"),
                    span: ifname.span,
                    addresses: settings.addresses.iter().collect(),
                    end: Some((name.as_str(), ifname.as_str())),
                    derived: false,
                };
                add(Ns::Place(Place::Host(name.as_str())), iface);
            }
        }
        for (name, pod) in &t.pods {
            let ns = Ns::Pod(name.as_str());
            add(ns, loopback());
            for (ifname, settings) in &pod.interfaces {
                let iface = Iface {
                    name: ifname.value.clone(),
                    what: format!("interface `{ifname}` of pod `{name}`"),
                    span: ifname.span,
                    addresses: settings.addresses.iter().collect(),
                    end: Some((name.as_str(), ifname.as_str())),
                    derived: false,
                };
                add(ns, iface);
            }
            // The bridge side of each `bridge:` shorthand, beside the bridge
            // (on the pod's host: `links` reports a bridge elsewhere).
            let Some(place) = self.place(pod.host.as_ref()) else {
                continue;
            };
            for (ifname, settings) in &pod.interfaces {
                if settings
                    .bridge
                    .as_ref()
                    .is_some_and(|b| t.bridges.contains_key(b.as_str()))
                {
                    let port = derived_ifname(&t.name, name, ifname);
                    let what = format!("the bridge port of `{name}:{ifname}`");
                    add(Ns::Place(place), derived(port, what, ifname.span));
                }
            }
        }
        // Link ends not listed yet: unconfigured pod and host ends, and
        // bridge ports (which live beside their bridge).
        for link in &t.links {
            for end in link.endpoints.iter() {
                let Some(endpoint) = end.ok() else { continue };
                let Some(ns) = self.endpoint_ns(endpoint) else {
                    continue;
                };
                let what = match t.owner_kind(&endpoint.owner) {
                    Some(OwnerKind::Bridge) => format!("bridge port `{endpoint}`"),
                    _ => format!("link end `{endpoint}`"),
                };
                let iface = Iface {
                    name: endpoint.ifname.clone(),
                    what,
                    span: end.span(),
                    addresses: Vec::new(),
                    end: Some((endpoint.owner.as_str(), endpoint.ifname.as_str())),
                    derived: false,
                };
                add(ns, iface);
            }
        }
        // One VXLAN device per overlay on each member host (two members on
        // one host are reported by `overlays`).
        for (name, overlay) in &t.overlays {
            let mut places: Vec<Place> = Vec::new();
            for place in overlay.bridges.iter().filter_map(|b| self.bridge_place(b)) {
                if !places.contains(&place) {
                    places.push(place);
                }
            }
            for place in places {
                let iface = Iface {
                    name: name.value.clone(),
                    what: format!("overlay `{name}`"),
                    span: name.span,
                    addresses: Vec::new(),
                    end: None,
                    derived: false,
                };
                add(Ns::Place(place), iface);
            }
        }
        out
    }

    /// The interfaces of a namespace.
    pub fn interfaces(&self, ns: Ns<'a>) -> &[Iface<'a>] {
        self.namespaces.get(&ns).map_or(&[], Vec::as_slice)
    }
}

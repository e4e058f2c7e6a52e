//! Reading the kernel into the model's shape: every link, address, route
//! (of every table but the kernel's `local`), tbf qdisc, VXLAN flood entry and requested sysctl of every
//! namespace in scope — not only netloom's, so that a foreign object in the
//! way is a conflict at plan time rather than EEXIST half way through.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt, stream};
use ipnet::IpNet;

use super::error::{Context, Result};
use super::link::{Link, LinkKind as KernelLinkKind, VethPeer};
use super::{Kernel, Scope, addr, fdb, link, namespace_label, netns, nsid, qdisc, route, sysctl};
use crate::model::Observed;
use crate::model::{Kind, LOCAL_TABLE, LinkKind, Resource, ResourceId, Route, Vxlan};

/// Namespaces observed at once (each has its own socket; dumps on one
/// socket run one at a time).
const CONCURRENT_NAMESPACES: usize = 32;

/// The addresses every loopback has.
const LOOPBACK_ADDRESSES: [&str; 2] = ["127.0.0.1/8", "::1/128"];

/// Everything read from one namespace.
struct View {
    ns: String,
    links: Vec<Link>,
    /// ifindex -> position in `links` (a host namespace holds a port per pod).
    by_index: HashMap<u32, usize>,
    /// Read in part only: the names of the links not read that those read
    /// refer to (a bridge port's master, a VXLAN's underlay).
    names_elsewhere: HashMap<u32, String>,
    addresses: Vec<addr::Address>,
    routes: Vec<route::ObservedRoute>,
    tbfs: HashMap<u32, qdisc::Tbf>,
    flood_entries: HashMap<u32, Vec<fdb::FdbEntry>>,
    sysctls: Vec<(String, Option<String>)>,
}

impl View {
    fn name_of(&self, index: u32) -> Option<&str> {
        match self.by_index.get(&index) {
            Some(&at) => Some(self.links[at].name.as_str()),
            None => self.names_elsewhere.get(&index).map(String::as_str),
        }
    }
}

impl Kernel {
    /// Reads every namespace of the scope that exists.
    pub async fn observe(&self, scope: &Scope) -> Result<Observed> {
        let present: Vec<(&String, &BTreeSet<String>)> = scope
            .namespaces
            .iter()
            .filter(|(ns, _)| ns.is_empty() || netns::netns_exists(ns))
            .collect();
        let mut views: Vec<View> = stream::iter(present)
            .map(|(ns, keys)| self.view(ns, keys, scope.interfaces_in(ns)))
            .buffer_unordered(CONCURRENT_NAMESPACES)
            .try_collect()
            .await?;
        // This machine's namespace first: it holds the host end of every
        // pod's veth, so pairing them asks its own socket (still attached)
        // and no pod needs attaching again.
        views.sort_by(|a, b| a.ns.cmp(&b.ns));
        for view in &views {
            for link in &view.links {
                self.remember_index(&view.ns, &link.name, link.index);
            }
        }
        let peers = self.veth_peers(&views).await?;
        let mut observed = Observed::default();
        for view in &views {
            translate(view, &peers, &mut observed);
        }
        Ok(observed)
    }

    /// Reads a namespace: whole, or only the interfaces `only` names.
    async fn view(
        &self,
        ns: &str,
        sysctl_keys: &BTreeSet<String>,
        only: Option<&BTreeSet<String>>,
    ) -> Result<View> {
        let handle = self.handle(ns).await?;
        self.about_to_read(ns);
        let links = match only {
            None => self.links(ns).await?,
            Some(names) => {
                let mut links = Vec::new();
                for name in names {
                    links.extend(link::link_named(&handle, name).await?);
                }
                links
            }
        };
        // Nothing is on no interface.
        let nothing_read = only.is_some() && links.is_empty();
        let (mut addresses, mut routes, mut tbfs) = if nothing_read {
            Default::default()
        } else {
            (
                addr::dump_addresses(&handle).await?,
                route::dump_routes(&handle).await?,
                qdisc::dump_tbfs(&handle).await?,
            )
        };
        let mut names_elsewhere = HashMap::new();
        if only.is_some() {
            // Only what is on the links read.
            let read: HashSet<u32> = links.iter().map(|l| l.index).collect();
            addresses.retain(|a| read.contains(&a.index));
            routes.retain(|r| r.oif.is_some_and(|oif| read.contains(&oif)));
            tbfs.retain(|index, _| read.contains(index));
            let referred = links.iter().flat_map(|l| {
                let underlay = match &l.kind {
                    KernelLinkKind::Vxlan(info) => info.underlay,
                    _ => None,
                };
                l.master.into_iter().chain(underlay)
            });
            // Each once: the ports read of a bridge share their master.
            let unread: BTreeSet<u32> = referred.filter(|i| !read.contains(i)).collect();
            for index in unread {
                if let Some(name) = link::link_name(&handle, index).await? {
                    names_elsewhere.insert(index, name);
                }
            }
        }
        let mut flood_entries = HashMap::new();
        for vxlan in links
            .iter()
            .filter(|l| matches!(l.kind, KernelLinkKind::Vxlan(_)))
        {
            flood_entries.insert(vxlan.index, fdb::dump_fdb(&handle, vxlan.index).await?);
        }
        tracing::debug!(
            links = links.len(),
            addresses = addresses.len(),
            routes = routes.len(),
            "read {}",
            namespace_label(ns)
        );
        let keys: Vec<String> = sysctl_keys.iter().cloned().collect();
        let sysctls = if keys.is_empty() {
            Vec::new()
        } else {
            self.run_in(ns, move || sysctl::read_here(&keys))
                .await
                .op(|| format!("read sysctls in {}", namespace_label(ns)))?
        };
        let by_index = links
            .iter()
            .enumerate()
            .map(|(at, l)| (l.index, at))
            .collect();
        Ok(View {
            ns: ns.to_string(),
            links,
            by_index,
            names_elsewhere,
            addresses,
            routes,
            tbfs,
            flood_entries,
            sysctls,
        })
    }

    /// Pairs veth ends across namespaces: (namespace, ifindex) of each end
    /// -> (namespace, name) of the other.
    ///
    /// An end names its peer by (ifindex, IFLA_LINK_NETNSID), an id only
    /// its own namespace knows, and ifindexes repeat across namespaces
    /// (every pod's eth0 tends to be 2). The namespace that reported the id
    /// is asked whether a candidate namespace is the one it means (one
    /// RTM_GETNSID each), and only candidates that can be are asked: those
    /// holding a veth with the peer's ifindex whose own peer has this end's
    /// ifindex. When several can (along a chain of pods every link looks the
    /// same), those whose loopback carries the mark of the namespace behind
    /// the id go first, so the first question is usually the right one.
    async fn veth_peers(&self, views: &[View]) -> Result<HashMap<(String, u32), (String, String)>> {
        let by_ns: HashMap<&str, &View> = views.iter().map(|v| (v.ns.as_str(), v)).collect();
        let candidates = Candidates::new(views);
        let mut peers = HashMap::new();
        for view in views {
            let ns = view.ns.as_str();
            // Opened only if this namespace has a question to ask: most
            // pods' ends were paired from the other side already, and
            // their namespace may no longer be attached.
            let mut handle = None;
            // What this namespace's ids stand for, and whom it was asked about.
            let mut known: HashMap<i32, &str> = HashMap::new();
            let mut asked: HashSet<&str> = HashSet::new();
            for end in &view.links {
                let Some(VethPeer { index, netnsid }) = end.peer else {
                    continue;
                };
                if peers.contains_key(&(ns.to_string(), end.index)) {
                    continue;
                }
                let peer_ns = match netnsid {
                    None => ns,
                    Some(id) => {
                        if !known.contains_key(&id) {
                            let handle = match &handle {
                                Some(handle) => handle,
                                None => handle.insert(self.handle(ns).await?),
                            };
                            let mut possible: Vec<&str> = candidates
                                .for_end(end.index, index)
                                .filter(|c| *c != ns && !asked.contains(c))
                                .collect();
                            if possible.len() > 1 {
                                // Best effort: without a hint, ask them all.
                                let mark = nsid::loopback_alias(handle, id).await.ok();
                                if let Some(mark) = mark {
                                    possible
                                        .sort_by_key(|c| candidates.marks[c] != mark.as_deref());
                                }
                            }
                            for candidate in possible {
                                asked.insert(candidate);
                                if let Some(found) = nsid::nsid_of(handle, candidate).await? {
                                    known.insert(found, candidate);
                                    if found == id {
                                        break;
                                    }
                                }
                            }
                        }
                        let Some(&peer_ns) = known.get(&id) else {
                            continue;
                        };
                        peer_ns
                    }
                };
                let Some(peer_name) = by_ns.get(peer_ns).and_then(|v| v.name_of(index)) else {
                    continue;
                };
                peers.insert(
                    (ns.to_string(), end.index),
                    (peer_ns.to_string(), peer_name.to_string()),
                );
                peers.insert(
                    (peer_ns.to_string(), index),
                    (ns.to_string(), end.name.clone()),
                );
            }
        }
        Ok(peers)
    }
}

/// Where the peer of a veth end can be.
struct Candidates<'a> {
    /// (ifindex, its peer's ifindex) of every veth whose peer is in another
    /// namespace -> the namespaces holding one.
    ends: HashMap<(u32, u32), Vec<&'a str>>,
    /// Each namespace's mark: the alias of its loopback.
    marks: HashMap<&'a str, Option<&'a str>>,
}

impl<'a> Candidates<'a> {
    fn new(views: &'a [View]) -> Self {
        let mut ends: HashMap<(u32, u32), Vec<&str>> = HashMap::new();
        let mut marks = HashMap::new();
        for view in views {
            let mut mark = None;
            for link in &view.links {
                match link.peer {
                    Some(VethPeer {
                        index,
                        netnsid: Some(_),
                    }) => ends.entry((link.index, index)).or_default().push(&view.ns),
                    _ if link.kind == KernelLinkKind::Device && link.name == "lo" => {
                        mark = link.alias.as_deref();
                    }
                    _ => {}
                }
            }
            marks.insert(view.ns.as_str(), mark);
        }
        Candidates { ends, marks }
    }

    /// The namespaces that can hold the peer of the end `index` whose peer
    /// has ifindex `peer`: those with a veth `peer` whose own peer is
    /// `index` (in another namespace).
    fn for_end(&self, index: u32, peer: u32) -> impl Iterator<Item = &'a str> + '_ {
        self.ends.get(&(peer, index)).into_iter().flatten().copied()
    }
}

/// One namespace's view, as resources.
fn translate(
    view: &View,
    peers: &HashMap<(String, u32), (String, String)>,
    observed: &mut Observed,
) {
    let ns = view.ns.as_str();
    let mut add = |kind: Kind, name: String, resource: Resource| {
        observed
            .resources
            .insert(ResourceId::new(ns, kind, name), resource);
    };
    if !ns.is_empty() {
        add(Kind::Namespace, String::new(), Resource::Namespace);
    }
    for link in &view.links {
        let name = link.name.clone();
        for alt_name in &link.alt_names {
            observed
                .alt_names
                .insert((ns.to_string(), alt_name.clone()), name.clone());
        }
        if let Some(alias) = link.alias.clone().filter(|a| !a.is_empty()) {
            add(Kind::Alias, name.clone(), Resource::Alias { alias });
        }
        add(Kind::Up, name.clone(), Resource::Up { up: link.up });
        // The loopback comes with its namespace: only its mark and state.
        if link.kind == KernelLinkKind::Device && name == "lo" {
            continue;
        }
        let kind = match &link.kind {
            KernelLinkKind::Bridge => Some(LinkKind::Bridge),
            KernelLinkKind::Veth => match peers.get(&(ns.to_string(), link.index)) {
                // Held by the canonical end: the lesser (namespace, name).
                Some((peer_ns, peer))
                    if (ns, name.as_str()) < (peer_ns.as_str(), peer.as_str()) =>
                {
                    Some(LinkKind::Veth {
                        peer_ns: peer_ns.clone(),
                        peer: peer.clone(),
                    })
                }
                Some(_) => None,
                None => Some(LinkKind::Other {
                    name: "veth".to_string(),
                }),
            },
            KernelLinkKind::Vxlan(info) => Some(vxlan(view, info)),
            KernelLinkKind::Device => Some(LinkKind::Other {
                name: "device".to_string(),
            }),
            KernelLinkKind::Other(other) => Some(LinkKind::Other {
                name: other.clone(),
            }),
        };
        if let Some(kind) = kind {
            add(Kind::Link, name.clone(), Resource::Link(kind));
        }
        add(Kind::Mtu, name.clone(), Resource::Mtu { mtu: link.mtu });
        let enabled = link.link_local;
        add(
            Kind::LinkLocal,
            name.clone(),
            Resource::LinkLocal { enabled },
        );
        if let Some(mac) = link.mac {
            add(Kind::Mac, name.clone(), Resource::Mac { mac });
        }
        if let Some(master) = link.master.and_then(|index| view.name_of(index)) {
            let master = master.to_string();
            add(Kind::Master, name.clone(), Resource::Master { master });
        }
        if let Some(tbf) = view.tbfs.get(&link.index) {
            let rate_bits_per_second = tbf.rate * 8;
            add(
                Kind::Qdisc,
                name.clone(),
                Resource::Qdisc {
                    rate_bits_per_second,
                },
            );
        }
        // Every flood entry, in whatever state: one the file does not
        // declare is drift (extra), one it does is there.
        for entry in view.flood_entries.get(&link.index).into_iter().flatten() {
            if let (true, Some(dst)) = (entry.mac == fdb::FLOOD_MAC, entry.dst) {
                let fdb = Resource::Fdb {
                    ifname: name.clone(),
                    dst,
                };
                add(Kind::Fdb, format!("{name} {dst}"), fdb);
            }
        }
    }
    for address in &view.addresses {
        let Some(ifname) = view.name_of(address.index) else {
            continue;
        };
        let Ok(net) = IpNet::new(address.ip, address.prefix_len) else {
            continue;
        };
        // The loopback's own addresses come with its namespace; any other
        // there (one added by hand) is observed like any address.
        if ifname == "lo" && LOOPBACK_ADDRESSES.contains(&net.to_string().as_str()) {
            continue;
        }
        let (name, resource) = Resource::address(ifname, net);
        // IPv4 allows one IP with several prefix lengths on an interface:
        // the others go by `ip/prefix` (the plan lines them up with the file).
        let id = ResourceId::new(ns, Kind::Address, name);
        let id = if observed.resources.contains_key(&id) {
            ResourceId::new(ns, Kind::Address, format!("{ifname} {net}"))
        } else {
            id
        };
        observed.resources.insert(id, resource);
    }
    for live in &view.routes {
        // Every table but `local`, which holds only what the kernel makes
        // for each address (a hand-made route elsewhere is drift). Routes
        // the kernel made are kept (marked by their protocol): they are
        // never netloom's, but they can be in the way of a declared one.
        if live.table == LOCAL_TABLE {
            continue;
        }
        let Ok(to) = IpNet::new(live.dst, live.prefix_len) else {
            continue;
        };
        let name = Route::id_name(&to, live.metric, live.table);
        let id = ResourceId::new(ns, Kind::Route, name);
        let route = Route {
            to,
            metric: live.metric,
            via: live.via,
            dev: live.oif.and_then(|i| view.name_of(i)).map(String::from),
            table: live.table,
        };
        observed.route_protocols.insert(id.clone(), live.protocol);
        observed.resources.insert(id, Resource::Route(route));
    }
    for (key, value) in &view.sysctls {
        if let Some(value) = value {
            let id = ResourceId::new(ns, Kind::Sysctl, key.clone());
            observed.resources.insert(
                id,
                Resource::Sysctl {
                    value: value.clone(),
                },
            );
        }
    }
}

fn vxlan(view: &View, info: &link::VxlanInfo) -> LinkKind {
    let underlay = info.underlay.and_then(|i| view.name_of(i));
    match (info.vni, info.port, info.local, underlay) {
        (Some(vni), Some(port), Some(local), Some(underlay)) => LinkKind::Vxlan(Vxlan {
            vni,
            port,
            local,
            underlay: underlay.to_string(),
        }),
        _ => LinkKind::Other {
            name: "vxlan".to_string(),
        },
    }
}

//! Reading the kernel into the model's shape: every link, address, main
//! table route, tbf qdisc, VXLAN flood entry and requested sysctl of every
//! namespace in scope — not only netloom's, so that a foreign object in the
//! way is a conflict at plan time rather than EEXIST half way through.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt, stream};
use ipnet::IpNet;

use super::error::{Context, Result};
use super::link::{Link, LinkKind as KernelLinkKind, VethPeer};
use super::{Kernel, Scope, addr, fdb, link, namespace_label, netns, nsid, qdisc, route, sysctl};
use crate::model::{Kind, LinkKind, Resource, ResourceId, Route, Vxlan};
use crate::plan::Observed;

/// Namespaces observed at once (each has its own socket; dumps on one
/// socket run one at a time).
const CONCURRENT_NAMESPACES: usize = 32;

/// Everything read from one namespace.
struct View {
    ns: String,
    links: Vec<Link>,
    addresses: Vec<addr::Address>,
    routes: Vec<route::ObservedRoute>,
    tbfs: HashMap<u32, qdisc::Tbf>,
    flood_entries: HashMap<u32, Vec<fdb::FdbEntry>>,
    sysctls: Vec<(String, Option<String>)>,
}

impl View {
    fn name_of(&self, index: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.as_str())
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
        let views: Vec<View> = stream::iter(present)
            .map(|(ns, keys)| self.view(ns, keys))
            .buffer_unordered(CONCURRENT_NAMESPACES)
            .try_collect()
            .await?;
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

    async fn view(&self, ns: &str, sysctl_keys: &BTreeSet<String>) -> Result<View> {
        let handle = self.handle(ns).await?;
        let links = link::dump_links(&handle).await?;
        let addresses = addr::dump_addresses(&handle).await?;
        let routes = route::dump_routes(&handle).await?;
        let tbfs = qdisc::dump_tbfs(&handle).await?;
        let mut flood_entries = HashMap::new();
        for vxlan in links
            .iter()
            .filter(|l| matches!(l.kind, KernelLinkKind::Vxlan(_)))
        {
            flood_entries.insert(vxlan.index, fdb::dump_fdb(&handle, vxlan.index).await?);
        }
        let keys: Vec<String> = sysctl_keys.iter().cloned().collect();
        let sysctls = if keys.is_empty() {
            Vec::new()
        } else {
            self.run_in(ns, move || sysctl::read_here(&keys))
                .await
                .op(|| format!("read sysctls in {}", namespace_label(ns)))?
        };
        Ok(View {
            ns: ns.to_string(),
            links,
            addresses,
            routes,
            tbfs,
            flood_entries,
            sysctls,
        })
    }

    /// Pairs veth ends across namespaces: (namespace, ifindex) of each end
    /// -> (namespace, name) of the other. A peer's IFLA_LINK_NETNSID is an
    /// id only its own namespace knows; ask it which namespace of the scope
    /// that id stands for. Ends in named namespaces are resolved first
    /// (their peer is usually in the host: one question each), so the
    /// host's side rarely needs any.
    async fn veth_peers(&self, views: &[View]) -> Result<HashMap<(String, u32), (String, String)>> {
        let by_ns: HashMap<&str, &View> = views.iter().map(|v| (v.ns.as_str(), v)).collect();
        let mut candidates: Vec<&str> = views.iter().map(|v| v.ns.as_str()).collect();
        candidates.sort_by_key(|ns| !ns.is_empty());
        let mut ordered: Vec<&View> = views.iter().collect();
        ordered.sort_by_key(|v| v.ns.is_empty());
        let mut peers = HashMap::new();
        let mut paired: HashSet<(String, u32)> = HashSet::new();
        for view in ordered {
            let mut known_ids: HashMap<i32, Option<&str>> = HashMap::new();
            let handle = self.handle(&view.ns).await?;
            for end in &view.links {
                let Some(VethPeer { index, netnsid }) = end.peer else {
                    continue;
                };
                if paired.contains(&(view.ns.clone(), end.index)) {
                    continue;
                }
                let peer_ns = match netnsid {
                    None => Some(view.ns.as_str()),
                    Some(id) => {
                        if !known_ids.contains_key(&id) {
                            for &candidate in &candidates {
                                if candidate == view.ns
                                    || known_ids.values().any(|k| *k == Some(candidate))
                                {
                                    continue;
                                }
                                let found = nsid::nsid_of(&handle, candidate).await?;
                                if let Some(found) = found {
                                    known_ids.insert(found, Some(candidate));
                                }
                                if found == Some(id) {
                                    break;
                                }
                            }
                            known_ids.entry(id).or_insert(None);
                        }
                        known_ids[&id]
                    }
                };
                let Some(peer_ns) = peer_ns else { continue };
                let Some(peer_name) = by_ns.get(peer_ns).and_then(|v| v.name_of(index)) else {
                    continue;
                };
                peers.insert(
                    (view.ns.clone(), end.index),
                    (peer_ns.to_string(), peer_name.to_string()),
                );
                peers.insert(
                    (peer_ns.to_string(), index),
                    (view.ns.clone(), end.name.clone()),
                );
                paired.insert((peer_ns.to_string(), index));
            }
        }
        Ok(peers)
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
        for entry in view.flood_entries.get(&link.index).into_iter().flatten() {
            if let (true, true, Some(dst)) =
                (entry.mac == fdb::FLOOD_MAC, entry.permanent, entry.dst)
            {
                let fdb = Resource::Fdb {
                    ifname: name.clone(),
                    dst,
                };
                add(Kind::Fdb, format!("{name} {dst}"), fdb);
            }
        }
    }
    for address in &view.addresses {
        let Some(ifname) = view.name_of(address.index).filter(|n| *n != "lo") else {
            continue;
        };
        let Ok(net) = IpNet::new(address.ip, address.prefix_len) else {
            continue;
        };
        let (name, resource) = Resource::address(ifname, net);
        add(Kind::Address, name, resource);
    }
    for live in &view.routes {
        // The main table only; routes the kernel made are kept (marked by
        // their protocol): they are never netloom's, but they can be in
        // the way of a declared one.
        if live.table != 254 {
            continue;
        }
        let Ok(to) = IpNet::new(live.dst, live.prefix_len) else {
            continue;
        };
        let id = ResourceId::new(ns, Kind::Route, Route::id_name(&to, live.metric));
        let route = Route {
            to,
            metric: live.metric,
            via: live.via,
            dev: live.oif.and_then(|i| view.name_of(i)).map(String::from),
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

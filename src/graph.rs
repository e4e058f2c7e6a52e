//! The dependency graph of a set of resources: namespace before anything
//! in it, link before its attributes and addresses, master before port,
//! ports before a bridge's explicit MTU, addresses before the routes that
//! use them. Creation follows it; deletion runs it backwards.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::model::{Kind, LinkKind, OWN_NAMESPACE, Resource, ResourceId, Resources};

/// Resources and their dependencies: an edge `a -> b` means `a` must
/// exist before `b`.
pub struct Graph {
    graph: DiGraph<ResourceId, ()>,
    nodes: HashMap<ResourceId, NodeIndex>,
}

/// A dependency cycle: the resources on it. A topology the model expands
/// into a cycle is a bug in netloom, reported rather than looped on.
#[derive(Debug, thiserror::Error)]
#[error("dependency cycle between {}", .0.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", "))]
pub struct Cycle(pub Vec<ResourceId>);

/// netloom's one topological sort (Kahn's algorithm), for the resource
/// graph and for a plan's changes alike: items `0..count`, each after its
/// `prerequisites`; among the ready ones the smallest `key` goes first, so
/// the order is the same on every run. A cycle is an error: `Err` holds
/// the items that could not be placed (the cycle and what waits on it).
pub fn topological_sort<K: Ord, I: IntoIterator<Item = usize>>(
    count: usize,
    prerequisites: impl Fn(usize) -> I,
    key: impl Fn(usize) -> K,
) -> Result<Vec<usize>, Vec<usize>> {
    let mut waiting_on = vec![0usize; count];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, waiting) in waiting_on.iter_mut().enumerate() {
        for j in prerequisites(i) {
            *waiting += 1;
            dependents[j].push(i);
        }
    }
    let mut ready: BTreeSet<(K, usize)> = (0..count)
        .filter(|&i| waiting_on[i] == 0)
        .map(|i| (key(i), i))
        .collect();
    let mut order = Vec::with_capacity(count);
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.insert((key(d), d));
            }
        }
    }
    if order.len() == count {
        Ok(order)
    } else {
        Err((0..count).filter(|&i| waiting_on[i] > 0).collect())
    }
}

impl Graph {
    pub fn new(resources: &Resources) -> Graph {
        let mut graph = DiGraph::new();
        let nodes: HashMap<ResourceId, NodeIndex> = resources
            .keys()
            .map(|id| (id.clone(), graph.add_node(id.clone())))
            .collect();
        let index = Index::new(resources);
        let mut this = Graph { graph, nodes };
        for (id, resource) in resources {
            let to = this.nodes[id];
            for dependency in index.dependencies(id, resource) {
                if let Some(&from) = this.nodes.get(&dependency)
                    && from != to
                {
                    this.graph.update_edge(from, to, ());
                }
            }
        }
        this
    }

    /// What `id` directly depends on.
    pub fn dependencies(&self, id: &ResourceId) -> impl Iterator<Item = &ResourceId> {
        self.nodes.get(id).into_iter().flat_map(|&node| {
            self.graph
                .neighbors_directed(node, petgraph::Direction::Incoming)
                .map(|n| &self.graph[n])
        })
    }

    /// What directly depends on `id`.
    pub fn dependents(&self, id: &ResourceId) -> impl Iterator<Item = &ResourceId> {
        self.nodes.get(id).into_iter().flat_map(|&node| {
            self.graph
                .neighbors_directed(node, petgraph::Direction::Outgoing)
                .map(|n| &self.graph[n])
        })
    }

    /// Every resource after all it depends on. Among the ready ones the
    /// smallest id goes first, so the order is the same on every run.
    pub fn order(&self) -> Result<Vec<ResourceId>, Cycle> {
        let ids = |nodes: Vec<usize>| {
            nodes
                .into_iter()
                .map(|n| self.graph[NodeIndex::new(n)].clone())
        };
        let prerequisites = |n: usize| {
            self.graph
                .neighbors_directed(NodeIndex::new(n), petgraph::Direction::Incoming)
                .map(NodeIndex::index)
        };
        let key = |n: usize| &self.graph[NodeIndex::new(n)];
        match topological_sort(self.graph.node_count(), prerequisites, key) {
            Ok(order) => Ok(ids(order).collect()),
            Err(_) => {
                // Name the cycle itself, not what merely waits behind it.
                let cycle = tarjan_scc(&self.graph)
                    .into_iter()
                    .find(|component| component.len() > 1)
                    .unwrap_or_default();
                let mut ids: Vec<ResourceId> =
                    ids(cycle.iter().map(|n| n.index()).collect()).collect();
                ids.sort();
                Err(Cycle(ids))
            }
        }
    }

    /// Graphviz, one cluster per namespace.
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph netloom {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n");
        for (i, (ns, nodes)) in self.by_namespace().into_iter().enumerate() {
            let _ = writeln!(
                out,
                "  subgraph cluster_{i} {{\n    label=\"{}\";",
                escape(&namespace_label(ns))
            );
            for node in nodes {
                let _ = writeln!(
                    out,
                    "    n{} [label=\"{}\"];",
                    node.index(),
                    escape(&node_label(&self.graph[node]))
                );
            }
            out.push_str("  }\n");
        }
        for edge in self.sorted_edges() {
            let _ = writeln!(out, "  n{} -> n{};", edge.0.index(), edge.1.index());
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart, one subgraph per namespace.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, (ns, nodes)) in self.by_namespace().into_iter().enumerate() {
            let _ = writeln!(
                out,
                "  subgraph ns{i}[\"{}\"]",
                escape_mermaid(&namespace_label(ns))
            );
            for node in nodes {
                let _ = writeln!(
                    out,
                    "    n{}[\"{}\"]",
                    node.index(),
                    escape_mermaid(&node_label(&self.graph[node]))
                );
            }
            out.push_str("  end\n");
        }
        for edge in self.sorted_edges() {
            let _ = writeln!(out, "  n{} --> n{}", edge.0.index(), edge.1.index());
        }
        out
    }

    fn by_namespace(&self) -> Vec<(&str, Vec<NodeIndex>)> {
        let mut groups: Vec<(&str, Vec<NodeIndex>)> = Vec::new();
        let mut nodes: Vec<NodeIndex> = self.graph.node_indices().collect();
        nodes.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
        for node in nodes {
            let ns = self.graph[node].ns.as_str();
            match groups.last_mut() {
                Some((last, members)) if *last == ns => members.push(node),
                _ => groups.push((ns, vec![node])),
            }
        }
        groups
    }

    fn sorted_edges(&self) -> Vec<(NodeIndex, NodeIndex)> {
        let mut edges: Vec<(NodeIndex, NodeIndex)> = self
            .graph
            .edge_references()
            .map(|e| (e.source(), e.target()))
            .collect();
        edges.sort();
        edges
    }
}

fn namespace_label(ns: &str) -> String {
    if ns.is_empty() {
        OWN_NAMESPACE.to_string()
    } else {
        format!("netns {ns}")
    }
}

fn node_label(id: &ResourceId) -> String {
    match id.kind {
        Kind::Namespace => "namespace".to_string(),
        kind => format!("{kind} {}", id.name),
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn escape_mermaid(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Lookups the dependency rules need.
struct Index<'a> {
    /// The link resource that creates each (namespace, interface): a
    /// veth's canonical end creates its peer too.
    creators: HashMap<(&'a str, &'a str), &'a ResourceId>,
    /// Per namespace, its sysctls.
    sysctls: HashMap<&'a str, Vec<&'a ResourceId>>,
    /// Per namespace, its addresses and their interfaces.
    addresses: HashMap<&'a str, Vec<(&'a ResourceId, &'a ipnet::IpNet, &'a str)>>,
    /// Per (namespace, bridge), the master attributes of its ports.
    ports: HashMap<(&'a str, &'a str), Vec<&'a ResourceId>>,
    bridges: HashSet<(&'a str, &'a str)>,
}

impl<'a> Index<'a> {
    /// One pass over the resources, so that every rule below looks up
    /// what it needs instead of scanning a namespace (a host namespace may
    /// hold thousands of ports).
    fn new(resources: &'a Resources) -> Self {
        let mut index = Index {
            creators: HashMap::new(),
            sysctls: HashMap::new(),
            addresses: HashMap::new(),
            ports: HashMap::new(),
            bridges: HashSet::new(),
        };
        for (id, resource) in resources {
            let ns = id.ns.as_str();
            match resource {
                Resource::Link(kind) => {
                    index.creators.insert((ns, id.name.as_str()), id);
                    match kind {
                        LinkKind::Veth { peer_ns, peer } => {
                            index.creators.insert((peer_ns.as_str(), peer.as_str()), id);
                        }
                        LinkKind::Bridge => {
                            index.bridges.insert((ns, id.name.as_str()));
                        }
                        LinkKind::Vxlan(_) | LinkKind::Other { .. } => {}
                    }
                }
                Resource::Sysctl { .. } => index.sysctls.entry(ns).or_default().push(id),
                Resource::Address { ifname, address } => {
                    let entry = (id, address, ifname.as_str());
                    index.addresses.entry(ns).or_default().push(entry);
                }
                Resource::Master { master } => {
                    index
                        .ports
                        .entry((ns, master.as_str()))
                        .or_default()
                        .push(id);
                }
                _ => {}
            }
        }
        index
    }

    fn creator(&self, ns: &str, ifname: &str) -> Option<ResourceId> {
        self.creators.get(&(ns, ifname)).map(|id| (*id).clone())
    }

    fn sysctls_of(&self, ns: &str) -> impl Iterator<Item = &'a ResourceId> + '_ {
        self.sysctls.get(ns).into_iter().flatten().copied()
    }

    /// Sysctls that new interfaces of a namespace copy (`conf.default`):
    /// they must be set before any interface is made there.
    fn interface_defaults(&self, ns: &str) -> impl Iterator<Item = ResourceId> + '_ {
        self.sysctls_of(ns)
            .filter(|id| {
                id.name.starts_with("net.ipv4.conf.default.")
                    || id.name.starts_with("net.ipv6.conf.default.")
            })
            .cloned()
    }

    fn dependencies(&self, id: &ResourceId, resource: &Resource) -> BTreeSet<ResourceId> {
        let ns = id.ns.as_str();
        let mut deps = BTreeSet::new();
        if id.kind != Kind::Namespace {
            deps.insert(ResourceId::namespace(ns));
        }
        if let Some(ifname) = id.ifname() {
            deps.extend(self.creator(ns, ifname).filter(|creator| creator != id));
        }
        match resource {
            Resource::Link(kind) => {
                deps.extend(self.interface_defaults(ns));
                match kind {
                    LinkKind::Veth { peer_ns, .. } => {
                        deps.insert(ResourceId::namespace(peer_ns));
                        deps.extend(self.interface_defaults(peer_ns));
                    }
                    LinkKind::Vxlan(vxlan) => deps.extend(self.creator(ns, &vxlan.underlay)),
                    LinkKind::Bridge | LinkKind::Other { .. } => {}
                }
            }
            Resource::Master { master } => deps.extend(self.creator(ns, master)),
            Resource::Mtu { .. } if self.bridges.contains(&(ns, id.name.as_str())) => {
                // An explicit bridge MTU is set once its ports have joined
                // (joining would otherwise lower it again).
                let ports = self.ports.get(&(ns, id.name.as_str()));
                deps.extend(ports.into_iter().flatten().map(|port| (*port).clone()));
            }
            Resource::Up { .. } => {
                // Configure before bringing up (a bridge port is made one
                // before it first goes up: see kernel::link::LinkChange::Port).
                for kind in [Kind::Mac, Kind::Mtu, Kind::Master, Kind::LinkLocal] {
                    deps.insert(ResourceId::new(ns, kind, id.name.clone()));
                }
            }
            Resource::Route(route) => {
                if let Some(dev) = &route.dev {
                    deps.insert(ResourceId::new(ns, Kind::Up, dev.clone()));
                }
                if let Some(via) = route.via {
                    for (address_id, address, ifname) in
                        self.addresses.get(ns).into_iter().flatten()
                    {
                        if address.contains(&via) {
                            deps.insert((*address_id).clone());
                            deps.insert(ResourceId::new(ns, Kind::Up, ifname.to_string()));
                        }
                    }
                }
            }
            Resource::Sysctl { .. } => {
                if let Some(ifname) = sysctl_interface(&id.name) {
                    deps.extend(self.creator(ns, ifname));
                }
            }
            Resource::Address { ifname, .. } => {
                deps.extend(self.address_settings(ns, ifname));
                // Marking a link also turns on its own promote_secondaries:
                // replacing an address must not flush the others.
                deps.insert(ResourceId::new(ns, Kind::Alias, ifname.clone()));
            }
            _ => {}
        }
        deps
    }

    /// Sysctls that decide whether and how an address on `ifname` can be
    /// added or removed (`conf.all.*` and `conf.<ifname>.*`: e.g.
    /// `disable_ipv6`, `promote_secondaries`): they are set first, also
    /// when they change in the same run as the address.
    fn address_settings(&self, ns: &str, ifname: &str) -> Vec<ResourceId> {
        let all_or_own = |key: &str| {
            ["net.ipv4.conf.", "net.ipv6.conf."].iter().any(|prefix| {
                key.strip_prefix(prefix)
                    .and_then(|rest| rest.split_once('.'))
                    .is_some_and(|(scope, _)| scope == "all" || scope == ifname)
            })
        };
        self.sysctls_of(ns)
            .filter(|id| all_or_own(&id.name))
            .cloned()
            .collect()
    }
}

/// The interface a per-interface sysctl is about
/// (`net.ipv4.conf.eth0.rp_filter` -> `eth0`), if any.
pub fn sysctl_interface(key: &str) -> Option<&str> {
    let rest = key
        .strip_prefix("net.ipv4.conf.")
        .or_else(|| key.strip_prefix("net.ipv6.conf."))
        .or_else(|| key.strip_prefix("net.ipv4.neigh."))
        .or_else(|| key.strip_prefix("net.ipv6.neigh."))?;
    let (ifname, _) = rest.split_once('.')?;
    (!matches!(ifname, "all" | "default")).then_some(ifname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;

    use crate::diagnostics::SourceFile;
    use crate::model::{Mode, expand};

    fn seed_graph() -> Graph {
        let text = std::fs::read_to_string("examples/seed.yaml").unwrap();
        let spec = crate::load::parse(&SourceFile::new("seed.yaml", text)).unwrap();
        Graph::new(&expand(&spec, &Mode::Lab).resources)
    }

    fn position(order: &[ResourceId], text: &str) -> usize {
        order
            .iter()
            .position(|id| id.to_string() == text)
            .unwrap_or_else(|| panic!("{text} not in {order:#?}"))
    }

    #[test]
    fn order_follows_dependencies() {
        let order = seed_graph().order().unwrap();
        let before = |a: &str, b: &str| {
            assert!(
                position(&order, a) < position(&order, b),
                "{a} must come before {b}"
            );
        };
        before(
            "namespace test",
            "link testveth0 in this machine's namespace",
        );
        before(
            "sysctl test/net.ipv6.conf.default.accept_dad",
            "link testveth0 in this machine's namespace",
        );
        before(
            "link test0 in this machine's namespace",
            "master testveth0 in this machine's namespace",
        );
        before(
            "link testveth0 in this machine's namespace",
            "address test/eth0 10.0.0.2",
        );
        before(
            "address test/eth0 10.0.0.2",
            "route test/0.0.0.0/0 metric 0",
        );
        before("up test/eth0", "route test/0.0.0.0/0 metric 0");
        before("link testveth0 in this machine's namespace", "up test/eth0");
    }

    #[test]
    fn order_is_deterministic() {
        assert_eq!(seed_graph().order().unwrap(), seed_graph().order().unwrap());
    }

    #[test]
    fn explicit_bridge_mtu_waits_for_its_ports() {
        let text = "name: t\nbridges:\n  br0: { mtu: 9000 }\npods:\n  a: { interfaces: { eth0: { bridge: br0 } } }\n";
        let spec = crate::load::parse(&SourceFile::new("t.yaml", text)).unwrap();
        let order = Graph::new(&expand(&spec, &Mode::Lab).resources)
            .order()
            .unwrap();
        let port = crate::model::derived_ifname("t", "a", "eth0");
        assert!(
            position(
                &order,
                &format!("master {port} in this machine's namespace")
            ) < position(&order, "mtu br0 in this machine's namespace")
        );
    }

    #[test]
    fn the_sort_puts_the_smallest_ready_key_first_and_refuses_cycles() {
        // 2 waits for 0, 1 for 2; 3 is free.
        let chain = [vec![], vec![2], vec![0], vec![]];
        let sorted = topological_sort(4, |i| chain[i].iter().copied(), |i| i);
        assert_eq!(sorted, Ok(vec![0, 2, 1, 3]));
        let by_reverse_key = topological_sort(4, |i| chain[i].iter().copied(), Reverse);
        assert_eq!(by_reverse_key, Ok(vec![3, 0, 2, 1]));
        // 0 and 1 wait for each other; 2 waits behind them.
        let cyclic = [vec![1], vec![0], vec![1], vec![]];
        let stuck = topological_sort(4, |i| cyclic[i].iter().copied(), |i| i);
        assert_eq!(stuck, Err(vec![0, 1, 2]));
    }

    #[test]
    fn cycles_are_reported() {
        let mut resources = Resources::new();
        resources.insert(ResourceId::link("", "a"), Resource::Link(LinkKind::Bridge));
        resources.insert(ResourceId::link("", "b"), Resource::Link(LinkKind::Bridge));
        resources.insert(
            ResourceId::new("", Kind::Master, "a"),
            Resource::Master { master: "b".into() },
        );
        resources.insert(
            ResourceId::new("", Kind::Mtu, "b"),
            Resource::Mtu { mtu: 1500 },
        );
        // A bridge enslaved to itself through its own MTU rule is a cycle.
        resources.insert(
            ResourceId::new("", Kind::Master, "b"),
            Resource::Master { master: "b".into() },
        );
        let graph = Graph::new(&resources);
        assert!(graph.order().is_ok(), "self edges are ignored");
        let mut cyclic = Resources::new();
        cyclic.insert(
            ResourceId::link("x", "v"),
            Resource::Link(LinkKind::Veth {
                peer_ns: "y".into(),
                peer: "w".into(),
            }),
        );
        cyclic.insert(ResourceId::namespace("x"), Resource::Namespace);
        cyclic.insert(
            ResourceId::new("x", Kind::Sysctl, "net.ipv4.conf.v.forwarding"),
            Resource::Sysctl { value: "1".into() },
        );
        cyclic.insert(
            ResourceId::new("x", Kind::Sysctl, "net.ipv4.conf.default.forwarding"),
            Resource::Sysctl { value: "1".into() },
        );
        assert!(Graph::new(&cyclic).order().is_ok());
    }

    #[test]
    fn addresses_wait_for_the_sysctls_that_govern_them() {
        let text = "name: t\npods:\n  a:\n    interfaces: { eth0: { addresses: [\"fd00::1/64\"] }, eth1: {} }\n    sysctls:\n      net.ipv6.conf.all.disable_ipv6: \"0\"\n      net.ipv6.conf.eth0.disable_ipv6: \"0\"\n      net.ipv6.conf.eth1.disable_ipv6: \"0\"\n      net.ipv4.ip_forward: \"1\"\nlinks:\n  - endpoints: [a:eth0, a:eth1]\n";
        let spec = crate::load::parse(&SourceFile::new("t.yaml", text)).unwrap();
        let graph = Graph::new(&expand(&spec, &Mode::Lab).resources);
        let address = ResourceId::new("a", Kind::Address, "eth0 fd00::1");
        let deps: Vec<String> = graph
            .dependencies(&address)
            .filter(|id| id.kind == Kind::Sysctl)
            .map(|id| id.name.clone())
            .collect();
        assert!(deps.contains(&"net.ipv6.conf.all.disable_ipv6".to_string()));
        assert!(deps.contains(&"net.ipv6.conf.eth0.disable_ipv6".to_string()));
        assert!(!deps.contains(&"net.ipv6.conf.eth1.disable_ipv6".to_string()));
        assert!(!deps.contains(&"net.ipv4.ip_forward".to_string()));
        assert!(graph.order().is_ok());
    }

    #[test]
    fn per_interface_sysctls_name_their_interface() {
        assert_eq!(
            sysctl_interface("net.ipv4.conf.eth0.rp_filter"),
            Some("eth0")
        );
        assert_eq!(sysctl_interface("net.ipv6.conf.all.forwarding"), None);
        assert_eq!(sysctl_interface("net.ipv4.ip_forward"), None);
    }

    #[test]
    fn drawings_have_every_node() {
        let graph = seed_graph();
        let dot = graph.to_dot();
        let mermaid = graph.to_mermaid();
        assert!(dot.starts_with("digraph") && dot.contains("cluster") && dot.contains("->"));
        assert!(mermaid.starts_with("flowchart LR") && mermaid.contains("-->"));
        assert_eq!(
            mermaid.matches("[\"").count(),
            graph.graph.node_count() + graph.by_namespace().len()
        );
    }
}

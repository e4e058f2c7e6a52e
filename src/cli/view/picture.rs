//! `netloom graph`: a picture of the network as the file describes it —
//! hosts as clusters, bridges and pods inside them, veths as edges
//! labelled with interface names and addresses, the lab's underlay switch
//! and the VXLAN overlays. Drawn as DOT, mermaid, or SVG laid out by
//! netloom itself (`svg`: no graphviz needed).

use std::fmt::Write;

use crate::model::Mode;
use crate::model::expand::{self, bridge_ifname, pod_namespace, underlay_interface};
use crate::spec::{Interface, OwnerKind, Parsed, Sp, Topology};

/// One thing in the picture.
#[derive(Debug)]
pub(super) struct Node {
    id: String,
    pub(super) label: String,
    /// The host cluster it is drawn in (`None`: between hosts).
    pub(super) host: Option<String>,
    pub(super) shape: &'static str,
}

#[derive(Debug)]
pub(super) struct Edge {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) label: String,
    /// A link's two ends (`from`'s, then `to`'s), which `label` joins.
    pub(super) ends: Option<[String; 2]>,
    pub(super) dashed: bool,
}

/// The network of one file, in one mode.
#[derive(Debug)]
pub struct Picture {
    pub(super) topology: String,
    /// Host clusters, in file order (the machine itself when the file has none).
    pub(super) hosts: Vec<String>,
    pub(super) nodes: Vec<Node>,
    pub(super) edges: Vec<Edge>,
}

/// The cluster of the machine netloom runs on, when the file has no hosts.
pub(super) const THIS_MACHINE: &str = "this machine";

fn addresses_of(addresses: &[Parsed<crate::spec::IfaceAddr>]) -> Vec<String> {
    addresses
        .iter()
        .filter_map(|a| a.ok())
        .map(|a| a.0.to_string())
        .collect()
}

/// `eth0 10.0.0.2/24`: an interface and its addresses.
fn end_label(ifname: &str, settings: Option<&Interface>) -> String {
    let mut label = ifname.to_string();
    for address in settings.map_or(Vec::new(), |s| addresses_of(&s.addresses)) {
        label.push(' ');
        label.push_str(&address);
    }
    label
}

impl Picture {
    /// The picture of `spec`; with `--host`, only that host's part.
    pub fn new(spec: &Topology, mode: &Mode) -> Picture {
        let only = match mode {
            Mode::Lab => None,
            Mode::Host { name, .. } => Some(name.as_str()),
        };
        let in_scope = |host: &Option<String>| only.is_none() || host.as_deref() == only;
        let placement = |explicit: Option<&Sp<String>>| match expand::placement(spec, explicit) {
            Some(host) => Some(host.to_string()),
            None if spec.hosts.is_empty() => Some(THIS_MACHINE.to_string()),
            None => None,
        };
        let mut picture = Picture {
            topology: spec.name.value.clone(),
            hosts: Vec::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        if spec.hosts.is_empty() {
            picture.hosts.push(THIS_MACHINE.to_string());
        }
        let underlay_switch = spec.hosts.values().any(|h| h.underlay.is_some()) && only.is_none();
        if underlay_switch {
            picture.node("underlay", "underlay switch".into(), None, "hexagon");
        }
        for (name, host) in &spec.hosts {
            if !in_scope(&Some(name.value.clone())) {
                continue;
            }
            picture.hosts.push(name.value.clone());
            let id = format!("host:{name}");
            picture.node(
                &id,
                format!("host {name}"),
                Some(name.value.clone()),
                "box3d",
            );
            if let Some(underlay) = host.underlay.as_ref().and_then(|u| u.ok()) {
                let label = format!("{} {}", underlay_interface(host), underlay.0);
                if underlay_switch {
                    picture.edge("underlay", &id, label, false);
                } else {
                    picture.nodes.last_mut().expect("just added").label += &format!("\n{label}");
                }
            }
            if let Some(cidr) = host.pod_cidr.as_ref().and_then(|c| c.ok()) {
                picture.nodes.last_mut().expect("just added").label +=
                    &format!("\npods {}", cidr.0);
            }
        }
        for (key, bridge) in &spec.bridges {
            let host = placement(bridge.host.as_ref());
            if !in_scope(&host) {
                continue;
            }
            let mut label = format!("bridge {}", bridge_ifname(key, bridge));
            if bridge_ifname(key, bridge) != key.as_str() {
                label.push_str(&format!(" ({key})"));
            }
            for address in addresses_of(&bridge.addresses) {
                label.push_str(&format!("\n{address}"));
            }
            let id = format!("bridge:{key}");
            picture.node(&id, label, host.clone(), "box");
            if let Some(host) = host.filter(|h| spec.hosts.contains_key(h.as_str())) {
                picture.edge(&format!("host:{host}"), &id, String::new(), true);
            }
        }
        for (name, pod) in &spec.pods {
            let host = placement(pod.host.as_ref());
            if !in_scope(&host) {
                continue;
            }
            let mut label = format!("pod {name}");
            if pod_namespace(name, pod) != name.as_str() {
                label.push_str(&format!("\nnetns {}", pod_namespace(name, pod)));
            }
            let id = format!("pod:{name}");
            picture.node(&id, label, host, "ellipse");
            for (ifname, settings) in &pod.interfaces {
                if let Some(bridge) = &settings.bridge {
                    let label = end_label(ifname, Some(settings));
                    picture.edge(&format!("bridge:{bridge}"), &id, label, false);
                }
            }
        }
        for link in &spec.links {
            let ends: Vec<_> = link.endpoints.iter().filter_map(|e| e.ok()).collect();
            let [a, b] = ends[..] else { continue };
            let node_of = |owner: &str| match spec.owner_kind(owner) {
                Some(OwnerKind::Pod) => format!("pod:{owner}"),
                Some(OwnerKind::Bridge) => format!("bridge:{owner}"),
                Some(OwnerKind::Host) => format!("host:{owner}"),
                None => owner.to_string(),
            };
            let settings = |owner: &str, ifname: &str| match spec.owner_kind(owner) {
                Some(OwnerKind::Pod) => spec.pods.get(owner)?.interfaces.get(ifname),
                Some(OwnerKind::Host) => spec.hosts.get(owner)?.interfaces.get(ifname),
                _ => None,
            };
            let (from, to) = (node_of(&a.owner), node_of(&b.owner));
            if !picture.has(&from) || !picture.has(&to) {
                continue;
            }
            let ends = [
                end_label(&a.ifname, settings(&a.owner, &a.ifname)),
                end_label(&b.ifname, settings(&b.owner, &b.ifname)),
            ];
            picture.edge(&from, &to, format!("{} — {}", ends[0], ends[1]), false);
            picture.edges.last_mut().expect("just added").ends = Some(ends);
        }
        for (name, overlay) in &spec.overlays {
            let id = format!("overlay:{name}");
            let members: Vec<String> = overlay
                .bridges
                .iter()
                .map(|b| format!("bridge:{b}"))
                .filter(|b| picture.has(b))
                .collect();
            if members.is_empty() {
                continue;
            }
            let label = format!("overlay {name}\nVXLAN vni {}", overlay.vni.value);
            picture.node(&id, label, None, "octagon");
            for member in members {
                // The overlay's node names it: its edges need no label.
                picture.edge(&id, &member, String::new(), true);
            }
        }
        picture
    }

    fn node(&mut self, id: &str, label: String, host: Option<String>, shape: &'static str) {
        self.nodes.push(Node {
            id: id.to_string(),
            label,
            host,
            shape,
        });
    }

    fn edge(&mut self, from: &str, to: &str, label: String, dashed: bool) {
        self.edges.push(Edge {
            from: from.to_string(),
            to: to.to_string(),
            label,
            ends: None,
            dashed,
        });
    }

    fn has(&self, id: &str) -> bool {
        self.nodes.iter().any(|n| n.id == id)
    }

    /// The short id a node goes by in DOT and mermaid.
    fn key(&self, id: &str) -> String {
        let index = self.nodes.iter().position(|n| n.id == id).unwrap_or(0);
        format!("n{index}")
    }

    fn nodes_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (usize, &'a Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.host.as_deref() == Some(host))
    }

    fn nodes_between(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.host.as_ref().is_none_or(|h| !self.hosts.contains(h)))
    }

    /// Graphviz DOT, hosts as clusters.
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "graph netloom {{\n  label={};\n  node [fontname=\"sans-serif\"];\n  edge [fontname=\"sans-serif\", fontsize=10];\n",
            dot_string(&format!("topology {}", self.topology))
        );
        for (index, host) in self.hosts.iter().enumerate() {
            let _ = writeln!(out, "  subgraph cluster_{index} {{");
            let title = if host == THIS_MACHINE {
                host.clone()
            } else {
                format!("host {host}")
            };
            let _ = writeln!(out, "    label={};", dot_string(&title));
            for (i, node) in self.nodes_on(host) {
                let _ = writeln!(out, "    {};", dot_node(i, node));
            }
            out.push_str("  }\n");
        }
        for (i, node) in self.nodes_between() {
            let _ = writeln!(out, "  {};", dot_node(i, node));
        }
        for edge in &self.edges {
            let _ = writeln!(
                out,
                "  {} -- {} [label={}{}];",
                self.key(&edge.from),
                self.key(&edge.to),
                dot_string(&edge.label),
                if edge.dashed { ", style=dashed" } else { "" }
            );
        }
        out.push_str("}\n");
        out
    }

    /// A mermaid flowchart, hosts as subgraphs.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TB\n");
        for (index, host) in self.hosts.iter().enumerate() {
            let title = if host == THIS_MACHINE {
                host.clone()
            } else {
                format!("host {host}")
            };
            let _ = writeln!(out, "  subgraph h{index}[\"{}\"]", mermaid_text(&title));
            for (i, node) in self.nodes_on(host) {
                let _ = writeln!(out, "    {}", mermaid_node(i, node));
            }
            out.push_str("  end\n");
        }
        for (i, node) in self.nodes_between() {
            let _ = writeln!(out, "  {}", mermaid_node(i, node));
        }
        for edge in &self.edges {
            let line = if edge.dashed { "-.-" } else { "---" };
            let (from, to) = (self.key(&edge.from), self.key(&edge.to));
            if edge.label.is_empty() {
                let _ = writeln!(out, "  {from} {line} {to}");
            } else {
                let _ = writeln!(
                    out,
                    "  {from} {line}|\"{}\"| {to}",
                    mermaid_text(&edge.label)
                );
            }
        }
        out
    }

    /// An SVG drawing, laid out by netloom itself (no graphviz needed).
    pub fn to_svg(&self) -> String {
        super::svg::render(self)
    }

    /// The position of the node with this id.
    pub(super) fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}

fn dot_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

fn dot_node(index: usize, node: &Node) -> String {
    format!(
        "n{index} [label={}, shape={}]",
        dot_string(&node.label),
        node.shape
    )
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', "<br/>")
}

fn mermaid_node(index: usize, node: &Node) -> String {
    let label = mermaid_text(&node.label);
    match node.shape {
        "ellipse" => format!("n{index}([\"{label}\"])"),
        "hexagon" | "octagon" => format!("n{index}{{{{\"{label}\"}}}}"),
        _ => format!("n{index}[\"{label}\"]"),
    }
}

//! What a walk needs from the file: the pod it starts in, the address it
//! goes to, the namespaces of this machine with the names the file gives
//! them, and (host mode) the other hosts by underlay address.

use std::net::IpAddr;

use super::{Place, RemoteHost, Walk};
use crate::expect;
use crate::model::Mode;
use crate::model::expand::{pod_namespace, underlay_namespace};
use crate::spec::Topology;

/// Why a walk cannot start.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    #[error("no pod `{0}` in the file (FROM is a pod)")]
    UnknownPod(String),
    #[error("pod `{pod}` runs on host {host}, not on this one: run `netloom path` there")]
    Elsewhere { pod: String, host: String },
    #[error("`{0}` is neither a pod of the file nor an address")]
    UnknownTarget(String),
    #[error("pod `{0}` has no address to go to")]
    NoAddress(String),
}

/// The walk from pod `from` to `to` (a pod: its first IPv4 address, else
/// its first IPv6 one; or an address).
pub fn walk_for(spec: &Topology, mode: &Mode, from: &str, to: &str) -> Result<Walk, WalkError> {
    let (name, pod) = spec
        .pods
        .get_key_value(from)
        .ok_or_else(|| WalkError::UnknownPod(from.to_string()))?;
    if let (Mode::Host { name, .. }, Some(host)) = (mode, &pod.host)
        && host.as_str() != name
    {
        return Err(WalkError::Elsewhere {
            pod: from.to_string(),
            host: host.value.clone(),
        });
    }
    let target = match spec.pods.get(to) {
        Some(target) => {
            expect::first_address(target).ok_or_else(|| WalkError::NoAddress(to.to_string()))?
        }
        None => to
            .parse::<IpAddr>()
            .map_err(|_| WalkError::UnknownTarget(to.to_string()))?,
    };
    Ok(Walk {
        from: pod_namespace(name, pod).to_string(),
        to: target,
        places: places(spec, mode),
        remote_hosts: remote_hosts(spec, mode),
    })
}

/// The namespaces of this machine the file knows, named as the file does.
fn places(spec: &Topology, mode: &Mode) -> Vec<Place> {
    let place = |ns: String, node: &str| Place {
        ns,
        node: node.to_string(),
    };
    let mut places = Vec::new();
    match mode {
        Mode::Lab => {
            for host in spec.hosts.keys() {
                places.push(place(host.value.clone(), host));
            }
            if spec.hosts.values().any(|h| h.underlay.is_some()) {
                places.push(place(underlay_namespace(&spec.name), "underlay switch"));
            }
            if spec.hosts.is_empty() {
                places.push(place(String::new(), "this machine"));
            }
        }
        Mode::Host { name, .. } => {
            let node = if name.is_empty() {
                "this machine"
            } else {
                name
            };
            places.push(place(String::new(), node));
        }
    }
    for (name, pod) in &spec.pods {
        let here = match (mode, &pod.host) {
            (Mode::Host { name: this, .. }, Some(host)) => host.as_str() == this,
            _ => true,
        };
        if here {
            places.push(place(pod_namespace(name, pod).to_string(), name));
        }
    }
    places
}

/// In host mode, the other hosts of the file by underlay address.
fn remote_hosts(spec: &Topology, mode: &Mode) -> Vec<RemoteHost> {
    let Mode::Host { name: this, .. } = mode else {
        return Vec::new();
    };
    spec.hosts
        .iter()
        .filter(|(name, _)| name.as_str() != this)
        .filter_map(|(name, host)| {
            let underlay = host.underlay.as_ref()?.ok()?.0.addr();
            Some(RemoteHost {
                underlay,
                name: name.value.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Topology {
        let source = crate::diagnostics::SourceFile::new("t.yaml", text.to_string());
        crate::load::parse(&source).expect("the test file parses")
    }

    const LAB: &str = "name: lab
hosts:
  n1: { underlay: 192.168.0.1/24 }
  n2: { underlay: 192.168.0.2/24 }
bridges:
  br1: { host: n1 }
  br2: { host: n2 }
pods:
  web: { host: n1, netns: web-ns, interfaces: { eth0: { bridge: br1, addresses: [fd00::2/64, 10.0.0.2/24] } } }
  db: { host: n2, interfaces: { eth0: { bridge: br2, addresses: [10.0.1.3/24] } } }
";

    fn node_names(walk: &Walk) -> Vec<(String, String)> {
        walk.places
            .iter()
            .map(|p| (p.ns.clone(), p.node.clone()))
            .collect()
    }

    #[test]
    fn in_lab_mode_every_namespace_is_here() {
        let walk = walk_for(&spec(LAB), &Mode::Lab, "web", "db").unwrap();
        assert_eq!(walk.from, "web-ns");
        assert_eq!(walk.to, "10.0.1.3".parse::<IpAddr>().unwrap());
        let named = |ns: &str, node: &str| (ns.to_string(), node.to_string());
        assert_eq!(
            node_names(&walk),
            [
                named("n1", "n1"),
                named("n2", "n2"),
                named("lab-underlay", "underlay switch"),
                named("web-ns", "web"),
                named("db", "db"),
            ]
        );
        assert!(walk.remote_hosts.is_empty());
    }

    #[test]
    fn in_host_mode_this_machine_is_the_host_and_the_others_are_remote() {
        let on_n1 = Mode::Host {
            name: "n1".to_string(),
            underlay_mtu: None,
        };
        let walk = walk_for(&spec(LAB), &on_n1, "web", "10.0.1.3").unwrap();
        let nodes: Vec<String> = walk.places.iter().map(|p| p.node.clone()).collect();
        assert_eq!(nodes, ["n1", "web"]);
        assert_eq!(
            walk.remote_hosts,
            [RemoteHost {
                underlay: "192.168.0.2".parse().unwrap(),
                name: "n2".to_string()
            }]
        );
        assert_eq!(
            walk_for(&spec(LAB), &on_n1, "db", "web").unwrap_err(),
            WalkError::Elsewhere {
                pod: "db".to_string(),
                host: "n2".to_string()
            }
        );
    }

    #[test]
    fn unknown_pods_and_targets_are_errors() {
        let lab = spec(LAB);
        assert_eq!(
            walk_for(&lab, &Mode::Lab, "nope", "db").unwrap_err(),
            WalkError::UnknownPod("nope".to_string())
        );
        assert_eq!(
            walk_for(&lab, &Mode::Lab, "web", "nope").unwrap_err(),
            WalkError::UnknownTarget("nope".to_string())
        );
        // The first IPv4 address, though an IPv6 one comes first.
        let back = walk_for(&lab, &Mode::Lab, "db", "web").unwrap();
        assert_eq!(back.to, "10.0.0.2".parse::<IpAddr>().unwrap());
    }
}

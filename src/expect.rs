//! The file's `expect` list, resolved into the probes `netloom check` runs
//! (docs/FORMAT.md, "Expectation"): from which namespace, to which address,
//! by which method, and where a temporary listener may be started.
//!
//! Pure. Expects a validated topology (like `model::expand`): an entry
//! validation would have rejected is skipped here, never trusted.

use std::net::IpAddr;

use crate::model::Mode;
use crate::model::expand::pod_namespace;
use crate::spec::{Pod, Sp, Topology};

/// How reachability is proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// An ICMP echo must be answered.
    Echo,
    /// A TCP handshake on this port must complete.
    Tcp { port: u16 },
}

/// One expectation, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Its position in the file's `expect` list.
    pub index: usize,
    /// The pod the traffic starts in, and its namespace.
    pub from: String,
    pub from_ns: String,
    /// `to` as the file writes it: a pod name or an address.
    pub to: String,
    pub target: IpAddr,
    /// The namespace of the target pod when it is on this machine: where
    /// netloom may start a temporary listener for a TCP check.
    pub serve_in: Option<String>,
    pub method: Method,
    /// Whether the target must be reachable (`reach: false`: must not be).
    pub reach: bool,
}

/// The expectations this machine runs: all of them in lab mode, in host
/// mode those whose `from` pod is on this host.
pub fn resolve(spec: &Topology, mode: &Mode) -> Vec<Check> {
    spec.expect
        .iter()
        .enumerate()
        .filter_map(|(index, expectation)| {
            let (from, from_pod) = spec.pods.get_key_value(expectation.from.as_str())?;
            if !is_here(spec, from_pod, mode) {
                return None;
            }
            let to = expectation.to.as_str();
            let (target, target_pod) = match spec.pods.get_key_value(to) {
                Some((name, pod)) => {
                    let chosen = match &expectation.address {
                        Some(address) => address.ok()?.0,
                        None => first_address(pod)?,
                    };
                    (chosen, Some((name, pod)))
                }
                None => {
                    let address: IpAddr = to.parse().ok()?;
                    (address, pod_with_address(spec, address))
                }
            };
            let serve_in = target_pod
                .filter(|(_, pod)| is_here(spec, pod, mode))
                .map(|(name, pod)| pod_namespace(name, pod).to_string());
            Some(Check {
                index,
                from: from.value.clone(),
                from_ns: pod_namespace(from, from_pod).to_string(),
                to: to.to_string(),
                target,
                serve_in,
                method: match &expectation.port {
                    Some(port) => Method::Tcp { port: port.value },
                    None => Method::Echo,
                },
                reach: expectation.reach.as_ref().is_none_or(|reach| reach.value),
            })
        })
        .collect()
}

/// Whether a pod runs on this machine in `mode`. Without hosts, every pod
/// is on the machine itself; a pod without `host:` is on the only host.
fn is_here(spec: &Topology, pod: &Pod, mode: &Mode) -> bool {
    match mode {
        Mode::Lab => true,
        Mode::Host { name, .. } => {
            let host = match &pod.host {
                Some(host) => Some(host.as_str()),
                None if spec.hosts.len() == 1 => spec.hosts.keys().next().map(|h| h.as_str()),
                None => None,
            };
            spec.hosts.is_empty() || host == Some(name.as_str())
        }
    }
}

/// The pod's first IPv4 address in file order, else its first IPv6 one.
pub(crate) fn first_address(pod: &Pod) -> Option<IpAddr> {
    let addresses: Vec<IpAddr> = pod
        .interfaces
        .values()
        .flat_map(|interface| &interface.addresses)
        .filter_map(|address| address.ok())
        .map(|address| address.0.addr())
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
}

/// The pod that has `address` on one of its interfaces.
fn pod_with_address(spec: &Topology, address: IpAddr) -> Option<(&Sp<String>, &Pod)> {
    spec.pods.iter().find(|(_, pod)| {
        pod.interfaces
            .values()
            .flat_map(|interface| &interface.addresses)
            .filter_map(|a| a.ok())
            .any(|a| a.0.addr() == address)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Topology {
        let source = crate::diagnostics::SourceFile::new("t.yaml", text.to_string());
        crate::load::parse(&source).expect("the test file parses")
    }

    const TWO_HOSTS: &str = "name: t
hosts:
  n1: { underlay: 192.168.0.1/24 }
  n2: { underlay: 192.168.0.2/24 }
bridges:
  br1: { host: n1 }
  br2: { host: n2 }
pods:
  web:
    host: n1
    netns: web-ns
    interfaces:
      eth0: { bridge: br1, addresses: [fd00::2/64, 10.0.0.2/24] }
  db:
    host: n2
    interfaces:
      eth0: { bridge: br2, addresses: [fd00::3/64] }
      eth1: { bridge: br2, addresses: [10.0.1.3/24, 10.0.1.4/24] }
  v6:
    host: n2
    interfaces:
      eth0: { bridge: br2, addresses: [fd00::9/64] }
expect:
  - { from: web, to: db }
  - { from: web, to: db, address: fd00::3, port: 5432 }
  - { from: db, to: 10.0.0.2, reach: false }
  - { from: web, to: v6 }
  - { from: web, to: 192.0.2.1 }
";

    #[test]
    fn a_pod_target_is_its_first_ipv4_address_unless_one_is_picked() {
        let checks = resolve(&spec(TWO_HOSTS), &Mode::Lab);
        let targets: Vec<String> = checks.iter().map(|c| c.target.to_string()).collect();
        // db: its first IPv4 address in file order, though an IPv6 one comes first.
        assert_eq!(
            targets,
            ["10.0.1.3", "fd00::3", "10.0.0.2", "fd00::9", "192.0.2.1"]
        );
        assert_eq!(checks[0].from_ns, "web-ns");
        assert_eq!(checks[0].method, Method::Echo);
        assert_eq!(checks[1].method, Method::Tcp { port: 5432 });
        assert!(checks[0].reach);
        assert!(!checks[2].reach);
        assert_eq!(checks[2].index, 2);
    }

    #[test]
    fn listeners_go_only_to_pods_of_this_machine() {
        let checks = resolve(&spec(TWO_HOSTS), &Mode::Lab);
        // An address target that is a pod's is that pod's.
        assert_eq!(checks[2].serve_in.as_deref(), Some("web-ns"));
        assert_eq!(checks[1].serve_in.as_deref(), Some("db"));
        // An address of no pod has nobody to serve it.
        assert_eq!(checks[4].serve_in, None);

        let on_n1 = Mode::Host {
            name: "n1".to_string(),
            underlay_mtu: None,
        };
        let checks = resolve(&spec(TWO_HOSTS), &on_n1);
        assert!(checks.iter().all(|c| c.from == "web"), "{checks:#?}");
        assert_eq!(checks.len(), 4);
        // db runs on n2: its port must already be served there.
        assert_eq!(checks[1].serve_in, None);
    }

    #[test]
    fn host_mode_runs_only_the_expectations_from_its_own_pods() {
        let on_n2 = Mode::Host {
            name: "n2".to_string(),
            underlay_mtu: None,
        };
        let checks = resolve(&spec(TWO_HOSTS), &on_n2);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].from, "db");
        assert_eq!(checks[0].serve_in, None, "web is on n1");
    }

    #[test]
    fn without_hosts_every_pod_is_on_this_machine() {
        let text = "name: s
bridges: { br0: { addresses: [10.0.0.1/24] } }
pods:
  a: { interfaces: { eth0: { bridge: br0, addresses: [10.0.0.2/24] } } }
  b: { interfaces: { eth0: { bridge: br0, addresses: [10.0.0.3/24] } } }
expect:
  - { from: a, to: b, port: 80 }
  - { from: a, to: 10.0.0.1 }
";
        let here = Mode::Host {
            name: String::new(),
            underlay_mtu: None,
        };
        for mode in [Mode::Lab, here] {
            let checks = resolve(&spec(text), &mode);
            assert_eq!(checks.len(), 2);
            assert_eq!(checks[0].serve_in.as_deref(), Some("b"));
            // The bridge's address: no pod has it.
            assert_eq!(checks[1].serve_in, None);
        }
    }
}

//! Every shipped topology file (examples/, topologies/) applied for real,
//! one sandbox each: it converges, `status` is clean, the pods' namespaces
//! and addresses are there (read with `ip -j`), and `destroy` leaves
//! nothing behind.

mod common;
mod support;

use std::collections::BTreeSet;

use common::{Sandbox, addresses, apply_converged, assert_exit, assert_ok, root};
use support::{assert_nothing_left, namespaces};

/// A pod interface and its declared addresses, sorted.
struct Interface {
    ns: String,
    ifname: String,
    addresses: Vec<String>,
}

/// The namespaces a file creates in lab mode, and its pod interfaces,
/// from the file.
fn declared(file: &str) -> (BTreeSet<String>, Vec<Interface>) {
    let path = root().join(file);
    let source = netloom::load::read_source(&path.to_string_lossy()).expect("readable");
    let topology = netloom::load::parse(&source).expect("valid");
    let mut spaces = BTreeSet::new();
    let mut interfaces = Vec::new();
    for (name, pod) in &topology.pods {
        let ns = pod
            .netns
            .as_ref()
            .map_or(name.to_string(), |n| n.to_string());
        spaces.insert(ns.clone());
        for (ifname, interface) in &pod.interfaces {
            let mut addrs: Vec<String> = interface
                .addresses
                .iter()
                .map(|a| a.ok().expect("parsed").0.to_string())
                .collect();
            addrs.sort();
            interfaces.push(Interface {
                ns: ns.clone(),
                ifname: ifname.to_string(),
                addresses: addrs,
            });
        }
    }
    for host in topology.hosts.keys() {
        spaces.insert(host.to_string());
    }
    if !topology.hosts.is_empty() {
        spaces.insert(format!("{}-underlay", topology.name));
    }
    (spaces, interfaces)
}

fn applies_converges_and_destroys(file: &str) {
    let Some(sandbox) = Sandbox::new() else {
        return;
    };
    apply_converged(&sandbox, file);

    let (spaces, interfaces) = declared(file);
    assert_eq!(
        namespaces(&sandbox).into_iter().collect::<BTreeSet<_>>(),
        spaces,
        "{file}: the namespaces"
    );
    for Interface {
        ns,
        ifname,
        addresses: want,
    } in interfaces
    {
        let mut have = addresses(&sandbox, &ns, &ifname);
        have.sort();
        assert_eq!(have, want, "{file}: addresses of {ns}/{ifname}");
    }

    assert_exit(&sandbox.netloom(&["status", file]), 0);
    assert_ok(&sandbox.netloom(&["destroy", file]));
    assert_nothing_left(&sandbox);
}

macro_rules! shipped {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                applies_converges_and_destroys($file);
            }
        )*

        /// Every file of the two directories has its test above.
        #[test]
        fn every_shipped_file_is_applied_here() {
            let mut found = Vec::new();
            for dir in ["examples", "topologies"] {
                for entry in std::fs::read_dir(root().join(dir)).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    if name.ends_with(".yaml") || name.ends_with(".yml") {
                        found.push(format!("{dir}/{name}"));
                    }
                }
            }
            found.sort();
            let mut listed = vec![$($file.to_string()),*];
            listed.sort();
            assert_eq!(found, listed, "add the new file to shipped! in tests/examples_apply.rs");
        }
    };
}

shipped! {
    example_bridge_shorthand => "examples/bridge-shorthand.yaml",
    example_dual_stack => "examples/dual-stack.yaml",
    example_expectations => "examples/expectations.yaml",
    example_host_gw => "examples/host-gw.yaml",
    example_mac_mtu => "examples/mac-mtu.yaml",
    example_pod_to_pod => "examples/pod-to-pod.yaml",
    example_rate => "examples/rate.yaml",
    example_route_tables => "examples/route-tables.yaml",
    example_seed => "examples/seed.yaml",
    example_sysctls => "examples/sysctls.yaml",
    example_vxlan => "examples/vxlan.yaml",
    topology_k8s_host_gw => "topologies/k8s-host-gw.yaml",
    topology_k8s_vxlan => "topologies/k8s-vxlan.yaml",
    topology_lab3 => "topologies/lab3.yaml",
    topology_seed => "topologies/seed.yaml",
}

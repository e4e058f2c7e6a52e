//! Snapshots of the diagnostics of representative bad files, as a user
//! sees them on a terminal (without colour).

use crate::diagnostics::{Diagnostics, SourceFile};

/// Snapshots the rendered diagnostics of a file, with the file as the
/// snapshot's description.
macro_rules! assert_rendered {
    ($text:expr) => {
        let text: &str = $text;
        insta::with_settings!({ description => text, omit_expression => true }, {
            insta::assert_snapshot!(rendered(text));
        });
    };
}

fn rendered(text: &str) -> String {
    let source = SourceFile::new("bad.yaml", text);
    let topology = crate::load::parse(&source).expect("parses");
    let problems = super::validate(&topology);
    assert!(!problems.is_empty(), "the file is valid");
    Diagnostics::new(source, problems).render(false)
}

#[test]
fn several_errors_are_reported_together_in_file_order() {
    assert_rendered!(
        r#"name: My_Lab
hosts:
  node1: { underlay: 192.168.100.11/24, pod_cidr: 10.244.1.0/24 }
  node2: { underlay: 192.168.100.12/24, pod_cidr: 10.244.2.0/24 }
bridges:
  cbr-node1: { host: node1, ifname: cbr0, addresses: [10.244.1.1/24] }
  cbr-node2: { host: node2, ifname: cbr0, addresses: [10.244.2.1/24], mtu: 9000000 }
pods:
  web:
    host: node1
    interfaces:
      eth0: { bridge: cbr-nod1, addresses: [10.244.1.10/24] }
      eth1: { addresses: [10.244.1.1/24] }
    routes:
      - { to: default, via: 10.244.9.1 }
  db:
    host: node2
    interfaces:
      eth0: { bridge: cbr-node2, addresses: [10.244.3.20/24, 10.244.2.300/24] }
links:
  - endpoints: [web:eth1, db:eth1]
expect:
  - { from: web, to: dbb, port: 5432 }
"#
    );
}

#[test]
fn misspelt_references_suggest_the_closest_name() {
    assert_rendered!(
        r#"name: refs
hosts:
  node1: {}
bridges:
  test0: { host: nod1 }
pods:
  test:
    interfaces:
      eth0: { addresses: [10.0.0.2/24] }
links:
  - endpoints: [test:eth0, tset0:testveth0]
"#
    );
}

#[test]
fn routes_that_cannot_work() {
    assert_rendered!(
        r#"name: routes
bridges:
  br0: { addresses: [10.0.0.1/24] }
pods:
  web:
    interfaces:
      eth0: { bridge: br0, addresses: [10.0.0.2/24, "fd00::2/64"] }
    routes:
      - { to: default, dev: eth0 }
      - { to: 10.96.0.0/12, via: 10.9.0.1 }
      - { to: "fd01::/64", via: "fe80::1" }
      - { to: 10.97.0.0/16, via: 10.0.0.1 }
      - { to: 10.97.0.0/16, via: 10.0.0.3 }
"#
    );
}

#[test]
fn kernel_names_that_collide() {
    assert_rendered!(
        r#"name: names
bridges:
  br0: {}
  br1: { ifname: veth04a782c5 }
pods:
  web: { netns: shared, interfaces: { eth0: { bridge: br0 } } }
  db: { netns: shared }
  cache: {}
links:
  - endpoints: [cache:lo, br0:p0]
"#
    );
}

#[test]
fn overlays_and_host_gw_without_what_they_need() {
    assert_rendered!(
        r#"name: cluster
routing: host-gw
hosts:
  n1: { underlay: 192.168.1.11/24, pod_cidr: 10.244.1.0/24 }
  n2: { underlay: 192.168.2.12/24 }
bridges:
  b1: { host: n1 }
  b2: { host: n1 }
overlays:
  vx1: { vni: 0, bridges: [b1, b2] }
"#
    );
}

//! Edits that make a veth anew while one of its ends keeps its (namespace,
//! name) — tests/transitions/NAME.before.yaml then NAME.after.yaml — on
//! the real kernel: the second apply converges on its first try (exit 0,
//! verified), with the kept end up and addressed, and nothing is left to do.

mod common;

use common::{Sandbox, addresses, apply_converged, assert_exit, assert_ok, link};

fn transitions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::root().join("tests/transitions"))
        .expect("tests/transitions")
        .filter_map(|entry| {
            let name = entry.expect("an entry").file_name().into_string().ok()?;
            name.strip_suffix(".before.yaml").map(String::from)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_veth_made_anew_under_a_kept_name_converges_in_one_apply() {
    let names = transitions();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        let Some(sandbox) = Sandbox::new() else {
            return;
        };
        let before = format!("tests/transitions/{name}.before.yaml");
        let after = format!("tests/transitions/{name}.after.yaml");
        apply_converged(&sandbox, &before);
        assert_ok(&sandbox.netloom(&["apply", &after]));
        assert_exit(
            &sandbox.netloom(&["plan", "--detailed-exitcode", &after]),
            0,
        );
        // Every pair keeps pod `web`'s eth0, with its address and up.
        let eth0 = link(&sandbox, "web", "eth0");
        assert!(
            eth0["flags"]
                .as_array()
                .is_some_and(|flags| flags.iter().any(|f| f == "UP")),
            "{name}: {eth0}"
        );
        assert!(
            !addresses(&sandbox, "web", "eth0").is_empty(),
            "{name}: eth0 has no address"
        );
    }
}

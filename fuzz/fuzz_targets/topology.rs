//! Any bytes as a topology file: load, validate, then (if valid) expand in
//! every mode and plan against an empty kernel and against a kernel made
//! from the file's own objects, some missing, some changed, some foreign.
//! Nothing may panic, loop or blow up; a valid file's plan against its own
//! objects must be empty.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use netloom::model::{
    Desired, Kind, LinkKind, Mode, Observed, ROUTE_PROTOCOL, Resource, ResourceId, Resources,
    expand, mark,
};
use netloom::plan::{Context, diff};
use netloom::{load, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = load::source_from_bytes("fuzz.yaml", data.to_vec()) else {
        return;
    };
    let topology = match load::parse(&source) {
        Ok(topology) => topology,
        Err(diagnostics) => {
            // Rendering points into the file: spans must stay inside it.
            let _ = diagnostics.render(false);
            return;
        }
    };
    let problems = validate::validate(&topology);
    if !problems.is_empty() {
        let _ = netloom::diagnostics::Diagnostics::new(source, problems).render(false);
        return;
    }
    let hosts = topology.hosts.keys().map(|name| Mode::Host {
        name: name.to_string(),
        underlay_mtu: Some(1500),
    });
    for mode in std::iter::once(Mode::Lab).chain(hosts) {
        let desired = expand(&topology, &mode);
        let none = BTreeMap::new();
        plan_against(&desired, &Observed::default(), &none);
        // As the state record of a run that made it all would claim it.
        let claimed: BTreeMap<ResourceId, String> = desired
            .resources
            .keys()
            .map(|id| (id.clone(), desired.topology.clone()))
            .collect();
        let own = as_made_by_netloom(desired.resources.clone());
        let plan = plan_against(&desired, &own, &claimed);
        if let Some(plan) = plan {
            assert!(
                plan.is_empty() && plan.conflicts.is_empty(),
                "a kernel holding exactly the file's objects needs no change: {:?} {:?}",
                plan.changes.first(),
                plan.conflicts.first()
            );
        }
        plan_against(&desired, &generated(&desired, data), &claimed);
        plan_against(&desired, &generated(&desired, data), &none);
    }
});

/// The plan of `desired` over `observed`; `None` when the objects cannot
/// be ordered (which `diff` reports as a cycle, not a panic).
fn plan_against(
    desired: &Desired,
    observed: &Observed,
    claims: &BTreeMap<ResourceId, String>,
) -> Option<netloom::plan::Plan> {
    let ctx = Context {
        topology: &desired.topology,
        claims,
        adopt: false,
    };
    diff(&desired.resources, observed, &ctx).ok()
}

/// A kernel made from the file's objects, each one kept, dropped, changed
/// or marked as another topology's, as the input's bytes decide.
fn generated(desired: &Desired, data: &[u8]) -> Observed {
    let mut observed = Observed::default();
    for (i, (id, resource)) in desired.resources.iter().enumerate() {
        let choice = data.get(i % data.len().max(1)).copied().unwrap_or(0) % 5;
        let resource = match (choice, resource) {
            (0, _) => continue,
            (1, Resource::Mtu { mtu }) => Resource::Mtu { mtu: mtu / 2 + 68 },
            (1, Resource::Up { up }) => Resource::Up { up: !up },
            (1, Resource::Alias { .. }) => Resource::Alias {
                alias: mark("someone-else", &id.name),
            },
            (2, Resource::Alias { .. }) => Resource::Alias {
                alias: "not a mark".to_string(),
            },
            (3, Resource::Route(route)) => {
                let mut route = route.clone();
                route.via = None;
                route.dev = Some("eth9".to_string());
                Resource::Route(route)
            }
            _ => resource.clone(),
        };
        observed.resources.insert(id.clone(), resource);
    }
    let mut observed = as_made_by_netloom(observed.resources);
    observed.resources.insert(
        ResourceId::link("", "foreign0"),
        Resource::Link(LinkKind::Bridge),
    );
    observed
}

/// A kernel holding these objects as netloom makes them: its routes carry
/// netloom's protocol.
fn as_made_by_netloom(resources: Resources) -> Observed {
    let route_protocols = resources
        .keys()
        .filter(|id| id.kind == Kind::Route)
        .map(|id| (id.clone(), ROUTE_PROTOCOL))
        .collect();
    Observed {
        resources,
        route_protocols,
        ..Observed::default()
    }
}

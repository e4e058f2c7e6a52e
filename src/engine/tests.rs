//! The engine against the in-memory kernel: no root, no netlink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::fake::FakeKernel;
use super::saved;
use super::*;
use crate::diagnostics::SourceFile;
use crate::model::{Action, Kind, LinkKind, Observed, Resource, ResourceId};
use crate::state::Record;

fn topology(file: &str) -> Topology {
    let text = std::fs::read_to_string(format!("examples/{file}")).unwrap();
    parse(file, &text)
}

fn parse(name: &str, text: &str) -> Topology {
    let topology = crate::load::parse(&SourceFile::new(name, text)).unwrap();
    assert!(crate::validate::validate(&topology).is_empty(), "{text}");
    topology
}

/// A state dir of its own for each test, removed when it ends.
struct TempState(PathBuf);

impl TempState {
    fn new(name: &str) -> TempState {
        let dir =
            std::env::temp_dir().join(format!("netloom-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempState(dir)
    }

    fn record(&self, topology: &str) -> Option<Record> {
        let records = StateDir::new(&self.0).records(topology, &|_| None).unwrap();
        records.get(topology).cloned()
    }
}

impl Drop for TempState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine(kernel: FakeKernel, state: &TempState, mode: Mode) -> Engine<FakeKernel> {
    let options = Options {
        mode,
        adopt: false,
        state_dir: state.0.clone(),
        lock_timeout: Duration::from_secs(1),
    };
    Engine::with_kernel(kernel, options)
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: usize) {}
    fn advance(&self, _: &Change) {}
    fn finish(&self) {}
}

fn apply(engine: &Engine<FakeKernel>, topology: &Topology) -> Execution {
    block_on(engine.apply(topology, false, &Quiet)).unwrap()
}

/// Cancels the stop token once `after` changes are done, as a signal
/// arriving mid-apply does.
struct StopAfter {
    after: usize,
    done: std::cell::Cell<usize>,
    stop: tokio_util::sync::CancellationToken,
}

impl Progress for StopAfter {
    fn start(&self, _: usize) {}
    fn advance(&self, _: &Change) {
        self.done.set(self.done.get() + 1);
        if self.done.get() == self.after {
            self.stop.cancel();
        }
    }
    fn finish(&self) {}
}

#[test]
fn a_stopped_apply_finishes_what_runs_records_it_and_the_next_apply_finishes() {
    let state = TempState::new("stopped");
    let stop = tokio_util::sync::CancellationToken::new();
    let mut engine = engine(FakeKernel::new(), &state, Mode::Lab);
    engine.stop_on(stop.clone());
    let topology = topology("pod-to-pod.yaml");
    let progress = StopAfter {
        after: 3,
        done: Default::default(),
        stop: stop.clone(),
    };
    let run = block_on(engine.apply(&topology, false, &progress)).unwrap();
    assert!(run.interrupted && !run.succeeded());
    assert!(run.failure.is_none());
    let done: Vec<&Change> = run
        .plan
        .changes
        .iter()
        .zip(&run.done)
        .filter(|(_, d)| **d)
        .map(|(c, _)| c)
        .collect();
    assert!(
        done.len() >= 3 && done.len() < run.plan.changes.len(),
        "{}",
        done.len()
    );
    // Every change started was finished: the writes are exactly the done ones.
    let writes = engine.kernel().writes();
    assert_eq!(writes.len(), done.len());
    // What was made is the topology's in its record.
    let record = state
        .record("pod-to-pod")
        .expect("a record of the stopped run");
    for change in done.iter().filter(|c| c.id.kind == Kind::Namespace) {
        assert!(
            record.all_namespaces().contains(&change.id.ns),
            "{}",
            change.id
        );
    }
    // The next apply (no signal this time) does only the rest.
    engine.stop_on(tokio_util::sync::CancellationToken::new());
    let next = apply(&engine, &topology);
    assert!(next.succeeded(), "{:#?}", next.unverified);
    assert_eq!(next.plan.changes.len(), run.plan.changes.len() - done.len());
    assert!(apply(&engine, &topology).plan.is_empty(), "nothing is left");
}

#[test]
fn a_stop_before_executing_changes_nothing() {
    let state = TempState::new("stopped-early");
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    let mut engine = engine(FakeKernel::new(), &state, Mode::Lab);
    engine.stop_on(stop);
    let run = block_on(engine.apply(&topology("seed.yaml"), false, &Quiet)).unwrap();
    assert!(run.interrupted && !run.plan.is_empty());
    assert!(engine.kernel().writes().is_empty());
}

/// The ids of the namespaces a record claims to have created.
fn claimed_namespaces(record: &Record) -> Vec<&ResourceId> {
    let created = record.created.iter();
    created.filter(|id| id.kind == Kind::Namespace).collect()
}

#[test]
fn an_apply_converges_and_every_change_runs_after_its_prerequisites() {
    for file in [
        "seed.yaml",
        "pod-to-pod.yaml",
        "dual-stack.yaml",
        "mac-mtu.yaml",
        "vxlan.yaml",
    ] {
        let state = TempState::new(&format!("converges-{file}"));
        let engine = engine(FakeKernel::new(), &state, Mode::Lab);
        let topology = topology(file);
        let run = apply(&engine, &topology);
        assert!(run.succeeded(), "{file}: {:#?}", run.unverified);
        assert!(run.done.iter().all(|done| *done), "{file}");
        let writes = engine.kernel().writes();
        assert_eq!(writes.len(), run.plan.changes.len(), "{file}");
        let position = |i: usize| {
            let change = &run.plan.changes[i];
            writes
                .iter()
                .position(|w| w.action == change.action && w.id == change.id)
                .unwrap()
        };
        for (i, prerequisites) in run.plan.prerequisites.iter().enumerate() {
            for &j in prerequisites {
                assert!(
                    position(j) < position(i),
                    "{file}: {} ran before {}",
                    run.plan.changes[i].id,
                    run.plan.changes[j].id
                );
            }
        }
        // Read back once more: nothing left to do.
        let again = block_on(engine.plan(&topology)).unwrap();
        assert!(again.plan.is_empty(), "{file}: {:#?}", again.plan.changes);
    }
}

#[test]
fn a_no_op_makes_no_write_and_leaves_the_record_alone() {
    let state = TempState::new("no-op");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let topology = topology("seed.yaml");
    apply(&engine, &topology);
    let writes = engine.kernel().writes().len();
    let record = state.0.join("seed.json");
    let saved = std::fs::metadata(&record).unwrap().modified().unwrap();
    let run = apply(&engine, &topology);
    assert!(run.succeeded() && run.plan.is_empty());
    assert_eq!(engine.kernel().writes().len(), writes, "a no-op wrote");
    assert_eq!(
        std::fs::metadata(&record).unwrap().modified().unwrap(),
        saved
    );
}

#[test]
fn the_first_failure_stops_new_work_and_says_what_was_done() {
    let state = TempState::new("first-failure");
    let kernel = FakeKernel::new();
    // The namespace: everything in it waits for it.
    kernel.fail_on(ResourceId::namespace("test"));
    let engine = engine(kernel, &state, Mode::Lab);
    let run = apply(&engine, &topology("seed.yaml"));
    let (failed, err) = run.failure.as_ref().expect("a failure");
    assert_eq!(run.plan.changes[*failed].id, ResourceId::namespace("test"));
    assert!(err.to_string().contains("namespace test"), "{err}");
    assert!(!run.succeeded());
    assert!(!run.done[*failed]);
    let writes = engine.kernel().writes();
    assert!(
        writes.len() < run.plan.changes.len(),
        "work went on after the failure"
    );
    // Done means written; nothing waiting for the namespace ran.
    for (i, change) in run.plan.changes.iter().enumerate() {
        let written = writes
            .iter()
            .any(|w| w.id == change.id && w.action == change.action);
        assert_eq!(run.done[i], written && i != *failed, "{}", change.id);
        if change.id.ns == "test" && change.id.kind != Kind::Namespace {
            assert!(!written, "{} ran without its namespace", change.id);
        }
    }
    // The record keeps what was done, unsettled; the journal is gone.
    let record = state.record("seed").expect("a record");
    assert!(record.created.contains(&ResourceId::link("", "test0")));
    assert!(!state.0.join("seed.journal").exists());
}

#[test]
fn verify_catches_a_kernel_that_ignores_a_change_and_the_record_stays_unsettled() {
    let state = TempState::new("ignored");
    let kernel = FakeKernel::new();
    let route = ResourceId::new("test", Kind::Route, "0.0.0.0/0 metric 0");
    kernel.ignore(route.clone());
    let engine = engine(kernel, &state, Mode::Lab);
    let run = apply(&engine, &topology("seed.yaml"));
    assert!(run.failure.is_none());
    assert!(!run.succeeded());
    let unverified: Vec<(Action, &ResourceId)> =
        run.unverified.iter().map(|c| (c.action, &c.id)).collect();
    assert_eq!(unverified, [(Action::Create, &route)]);
    // Not settled: the claims of the run are kept as they were noted.
    let record = state.record("seed").expect("a record");
    assert_eq!(
        claimed_namespaces(&record),
        [&ResourceId::namespace("test")]
    );
}

#[test]
fn a_verified_run_settles_the_record() {
    let state = TempState::new("settled");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    assert!(apply(&engine, &topology("seed.yaml")).succeeded());
    let record = state.record("seed").expect("a record");
    // Settled: the namespaces it made; no claim the marks already make.
    assert!(claimed_namespaces(&record).is_empty());
    assert_eq!(record.namespaces.iter().collect::<Vec<_>>(), ["test"]);
}

#[test]
fn destroy_removes_everything_and_waits_for_what_a_namespace_takes_along() {
    let state = TempState::new("destroy");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let topology = topology("seed.yaml");
    apply(&engine, &topology);
    let run = block_on(engine.destroy(DestroyTarget::Name("seed"), false, &Quiet)).unwrap();
    assert!(run.succeeded(), "{:#?}", run.unverified);
    let namespace_delete = run
        .plan
        .changes
        .iter()
        .find(|c| c.id == ResourceId::namespace("test"))
        .expect("the namespace is deleted");
    assert_eq!(
        namespace_delete.takes_along,
        [ResourceId::link("", "testveth0")]
    );
    assert!(
        engine.kernel().live().resources.is_empty(),
        "{:#?}",
        engine.kernel().live().resources
    );
    assert_eq!(state.record("seed"), None, "an empty record is removed");
}

#[test]
fn a_veth_that_outlives_its_peers_namespace_fails_the_deletion() {
    let state = TempState::new("teardown");
    let kernel = FakeKernel::new();
    let engine = engine(kernel, &state, Mode::Lab);
    let topology = topology("seed.yaml");
    apply(&engine, &topology);
    // The kernel says yes to deleting the namespace, and keeps it.
    engine.kernel().ignore(ResourceId::namespace("test"));
    let run = block_on(engine.destroy(DestroyTarget::File(&topology), false, &Quiet)).unwrap();
    let (failed, err) = run.failure.as_ref().expect("the teardown times out");
    assert_eq!(run.plan.changes[*failed].id, ResourceId::namespace("test"));
    assert!(!run.done[*failed]);
    assert!(err.to_string().contains("testveth0"), "{err}");
}

/// `ip netns delete` returns before the kernel has taken the namespace's
/// veths along: an apply right after it waits for their far ends to go
/// instead of taking one for a foreign veth in the way.
#[test]
fn an_apply_right_after_a_namespace_is_deleted_by_hand_makes_it_again() {
    let state = TempState::new("hand-deleted");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let topology = topology("pod-to-pod.yaml");
    assert!(apply(&engine, &topology).succeeded());
    let before = engine.kernel().live();
    engine.kernel().delete_namespace_by_hand("p2p-left");
    let lonely = engine.kernel().live().resources;
    assert!(
        lonely
            .values()
            .any(|r| matches!(r, Resource::Link(LinkKind::Other { name }) if name == "veth")),
        "a far end is left alone for a while"
    );
    let run = apply(&engine, &topology);
    assert!(run.plan.conflicts.is_empty(), "{:?}", run.plan.conflicts);
    assert!(run.succeeded());
    assert_eq!(engine.kernel().live().resources, before.resources);
}

#[test]
fn every_operation_lets_go_of_the_kernel_at_its_end() {
    let state = TempState::new("release");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let topology = topology("seed.yaml");
    apply(&engine, &topology);
    assert_eq!(engine.kernel().releases(), 1);
    block_on(engine.status(&topology)).unwrap();
    assert_eq!(engine.kernel().releases(), 2);
}

#[test]
fn host_mode_needs_the_files_underlay_on_this_machine() {
    let state = TempState::new("host");
    let host = |name: &str| Mode::Host {
        name: name.to_string(),
        underlay_mtu: None,
    };
    let topology = topology("vxlan.yaml");
    let engine = engine(FakeKernel::new(), &state, host("vx1"));
    let err = block_on(engine.plan(&topology)).err().expect("no underlay");
    assert!(err.to_string().contains("there is no interface"), "{err}");

    let engine = self::engine(FakeKernel::new(), &state, host("nowhere"));
    let err = block_on(engine.plan(&topology))
        .err()
        .expect("no such host");
    assert!(matches!(err, EngineError::UnknownHost(_)), "{err}");
}

#[test]
fn the_scheduler_refuses_changes_that_wait_on_each_other() {
    let change = |name: &str| Change {
        action: Action::Create,
        id: ResourceId::new("", Kind::Sysctl, name),
        from: None,
        to: Some(Resource::Sysctl { value: "1".into() }),
        takes_along: Vec::new(),
    };
    let plan = Plan {
        changes: vec![change("a"), change("b"), change("c")],
        prerequisites: vec![vec![], vec![2], vec![1]],
        conflicts: Vec::new(),
    };
    let kernel = FakeKernel::new();
    let result = block_on(scheduler::run(
        &kernel,
        &plan,
        &tokio_util::sync::CancellationToken::new(),
        |_, _| Ok(()),
        &Quiet,
    ));
    let Err(EngineError::Cycle(cycle)) = result else {
        panic!("a cycle ran: {result:?}");
    };
    assert_eq!(
        cycle.0,
        [plan.changes[1].id.clone(), plan.changes[2].id.clone()]
    );
    assert_eq!(kernel.writes().len(), 1, "only the free change ran");
}

/// This machine as host `host` of a file: an underlay `eth0` with the
/// address the file gives it, MTU 9000, and IP forwarding off.
fn real_host(address: &str) -> FakeKernel {
    let mut live = Observed::default();
    let mut add = |kind, name: &str, resource| {
        live.resources
            .insert(ResourceId::new("", kind, name), resource);
    };
    add(
        Kind::Link,
        "eth0",
        Resource::Link(crate::model::LinkKind::Other {
            name: "device".into(),
        }),
    );
    add(Kind::Mtu, "eth0", Resource::Mtu { mtu: 9000 });
    let (name, address) = Resource::address("eth0", address.parse().unwrap());
    add(Kind::Address, &name, address);
    add(
        Kind::Sysctl,
        "net.ipv4.ip_forward",
        Resource::Sysctl { value: "0".into() },
    );
    FakeKernel::holding(live)
}

fn host(name: &str) -> Mode {
    Mode::Host {
        name: name.to_string(),
        underlay_mtu: None,
    }
}

#[test]
fn host_mode_follows_the_underlay_mtu_and_leaves_the_underlay_alone() {
    let state = TempState::new("host-mtu");
    let engine = engine(real_host("192.168.70.11/24"), &state, host("vx1"));
    let run = apply(&engine, &topology("vxlan.yaml"));
    assert!(run.succeeded(), "{:#?}", run.unverified);
    let live = engine.kernel().live().resources;
    assert_eq!(
        live[&ResourceId::new("", Kind::Mtu, "vx70")],
        Resource::Mtu { mtu: 8950 },
        "the VXLAN MTU is the underlay's less 50"
    );
    let writes = engine.kernel().writes();
    let touched: Vec<&ResourceId> = writes
        .iter()
        .map(|w| &w.id)
        .filter(|id| id.ns.is_empty() && id.ifname() == Some("eth0"))
        .collect();
    assert!(touched.is_empty(), "the underlay was changed: {touched:?}");
}

#[test]
fn a_repair_follows_an_underlay_mtu_changed_since_the_file_was_expanded() {
    let state = TempState::new("host-mtu-repair");
    let engine = engine(real_host("192.168.70.11/24"), &state, host("vx1"));
    let topology = topology("vxlan.yaml");
    assert!(apply(&engine, &topology).succeeded());
    let expansion = block_on(engine.expand(&topology)).unwrap();
    let underlay_mtu = ResourceId::new("", Kind::Mtu, "eth0");
    let change = Change {
        action: Action::Update,
        id: underlay_mtu,
        from: Some(Resource::Mtu { mtu: 9000 }),
        to: Some(Resource::Mtu { mtu: 1500 }),
        takes_along: Vec::new(),
    };
    block_on(engine.kernel().execute(&change)).unwrap();
    // The event names the underlay only; the VXLAN's MTU follows it all
    // the same, as a full apply would make it.
    let touched = Touched {
        namespaces: BTreeMap::from([(String::new(), Some(BTreeSet::from(["eth0".to_string()])))]),
    };
    let run = block_on(engine.repair(&topology, &expansion, &touched, &Quiet)).unwrap();
    assert!(run.succeeded(), "{:#?}", run.plan);
    assert_eq!(
        engine.kernel().live().resources[&ResourceId::new("", Kind::Mtu, "vx70")],
        Resource::Mtu { mtu: 1450 }
    );
    assert!(apply(&engine, &topology).plan.is_empty());
}

#[test]
fn destroy_restores_the_values_a_topology_replaced() {
    let state = TempState::new("restore");
    let engine = engine(real_host("192.168.60.11/24"), &state, host("h1"));
    let topology = parse(
        "forwarding.yaml",
        "name: fwd\nhosts:\n  h1: { underlay: 192.168.60.11/24, forwarding: true }\n",
    );
    let forwarding = ResourceId::new("", Kind::Sysctl, "net.ipv4.ip_forward");
    assert!(apply(&engine, &topology).succeeded());
    assert_eq!(
        engine.kernel().live().resources[&forwarding],
        Resource::Sysctl { value: "1".into() }
    );
    assert_eq!(state.record("fwd").unwrap().replaced[&forwarding], "0");
    let run = block_on(engine.destroy(DestroyTarget::File(&topology), false, &Quiet)).unwrap();
    assert!(run.succeeded(), "{:#?}", run.unverified);
    assert_eq!(
        engine.kernel().live().resources[&forwarding],
        Resource::Sysctl { value: "0".into() }
    );
    assert_eq!(state.record("fwd"), None);
}

#[test]
fn a_failed_write_half_way_leaves_the_earlier_ones_done_and_the_next_run_finishes() {
    let state = TempState::new("half-way");
    let kernel = FakeKernel::new();
    kernel.fail_write(5);
    let engine = engine(kernel, &state, Mode::Lab);
    let topology = topology("pod-to-pod.yaml");
    let run = apply(&engine, &topology);
    let (failed, _) = run.failure.as_ref().expect("the fifth write fails");
    let writes = engine.kernel().writes();
    assert_eq!(run.plan.changes[*failed].id, writes[4].id);
    // What had started finished; what was done is what was written, bar
    // the failed one; nothing else started.
    let done = run.done.iter().filter(|done| **done).count();
    assert_eq!(done, writes.len() - 1);
    assert!(done < run.plan.changes.len() - 1, "new work started");
    // The next run starts from what is there and makes exactly the rest.
    let again = apply(&engine, &topology);
    assert!(again.succeeded(), "{:#?}", again.unverified);
    let rest = |changes: &[Change], done: &[bool]| {
        let mut rest: Vec<(Action, ResourceId)> = changes
            .iter()
            .zip(done)
            .filter(|(_, done)| !**done)
            .map(|(c, _)| (c.action, c.id.clone()))
            .collect();
        rest.sort();
        rest
    };
    let nothing_done = vec![false; again.plan.changes.len()];
    assert_eq!(
        rest(&again.plan.changes, &nothing_done),
        rest(&run.plan.changes, &run.done)
    );
}

#[test]
fn a_repair_looks_only_at_its_namespaces_and_mends_what_drifted_there() {
    let state = TempState::new("repair");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    // Three pods on one bridge in this machine's namespace.
    let topology = topology("expectations.yaml");
    apply(&engine, &topology);
    let record = state.record(&topology.name);
    // Drift: a pod's address vanishes, as `ip addr flush` would make it.
    let (id, address) = engine
        .kernel()
        .live()
        .resources
        .into_iter()
        .find(|(id, _)| id.kind == Kind::Address && id.ns == "exp-client")
        .expect("the client has addresses");
    let flush = Change {
        action: Action::Delete,
        id: id.clone(),
        from: Some(address),
        to: None,
        takes_along: Vec::new(),
    };
    block_on(engine.kernel().execute(&flush)).unwrap();
    let writes = engine.kernel().writes().len();

    // Another pod is in order, and so is the bridge's side it is joined
    // to: nothing to do there, nothing written.
    let expansion = block_on(engine.expand(&topology)).unwrap();
    let elsewhere = Touched::anywhere_in(["exp-server".to_string()]);
    let run = block_on(engine.repair(&topology, &expansion, &elsewhere, &Quiet)).unwrap();
    assert!(run.succeeded() && run.plan.is_empty(), "{:?}", run.plan);
    assert_eq!(engine.kernel().writes().len(), writes);

    // Where it drifted, exactly the address comes back, and the record
    // (which describes the whole topology) is left as it was.
    let there = Touched::anywhere_in([id.ns.clone()]);
    let run = block_on(engine.repair(&topology, &expansion, &there, &Quiet)).unwrap();
    assert!(run.succeeded());
    let planned: Vec<_> = run.plan.changes.iter().map(|c| (c.action, &c.id)).collect();
    assert_eq!(planned, [(Action::Create, &id)]);
    assert_eq!(engine.kernel().writes().len(), writes + 1);
    assert_eq!(state.record(&topology.name), record);
    assert!(apply(&engine, &topology).plan.is_empty());
}

#[test]
fn a_repair_reads_the_bridge_namespace_only_for_the_port_an_event_named() {
    let state = TempState::new("repair-port");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    // Three pods whose veths end on a bridge in this machine's namespace.
    let topology = topology("expectations.yaml");
    apply(&engine, &topology);
    let expansion = block_on(engine.expand(&topology)).unwrap();
    let port_of = |pod: &str| {
        expansion
            .desired
            .resources
            .iter()
            .find_map(|(id, resource)| match resource {
                Resource::Link(crate::model::LinkKind::Veth { peer_ns, .. })
                    if id.ns.is_empty() && peer_ns == pod =>
                {
                    Some(id.name.clone())
                }
                _ => None,
            })
            .expect("each pod has a port on the bridge")
    };
    let port = port_of("exp-client");
    // Drift: the port leaves the bridge (`ip link set PORT nomaster`), and
    // the pod's end loses an address.
    let live = engine.kernel().live().resources;
    let drop_object = |id: ResourceId| {
        let from = live.get(&id).cloned();
        assert!(from.is_some(), "{id} is there");
        let change = Change {
            action: Action::Delete,
            id,
            from,
            to: None,
            takes_along: Vec::new(),
        };
        block_on(engine.kernel().execute(&change)).unwrap();
    };
    let master = ResourceId::new("", Kind::Master, port.clone());
    let address = live
        .keys()
        .find(|id| id.kind == Kind::Address && id.ns == "exp-client")
        .expect("the client has addresses")
        .clone();
    drop_object(master.clone());
    drop_object(address.clone());
    let observations = engine.kernel().observations().len();

    // The events name the port and the pod's eth0.
    let named = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
    let touched = Touched {
        namespaces: BTreeMap::from([
            (String::new(), named(&[port.as_str()])),
            ("exp-client".to_string(), named(&["eth0"])),
        ]),
    };
    let run = block_on(engine.repair(&topology, &expansion, &touched, &Quiet)).unwrap();
    assert!(run.succeeded(), "{:?}", run.plan);
    let mut planned: Vec<_> = run.plan.changes.iter().map(|c| (c.action, &c.id)).collect();
    planned.sort();
    assert_eq!(
        planned,
        [(Action::Create, &master), (Action::Create, &address)]
    );

    // Read (and read back) in part: that port and that eth0, with the
    // loopbacks; not the other pods, nor the other ports.
    let reads = &engine.kernel().partial_reads()[observations..];
    assert_eq!(reads.len(), 2, "one reading, one read-back");
    let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    for read in reads {
        let expected = BTreeMap::from([
            (String::new(), names(&[port.as_str(), "lo"])),
            ("exp-client".to_string(), names(&["eth0", "lo"])),
        ]);
        assert_eq!(read, &expected);
    }
    for namespaces in &engine.kernel().observations()[observations..] {
        assert_eq!(namespaces, &names(&["", "exp-client"]));
    }
    // A whole reading agrees: nothing else was left to do.
    assert!(apply(&engine, &topology).plan.is_empty());
}

#[test]
fn a_repair_reading_in_part_leaves_what_it_did_not_read_alone() {
    let state = TempState::new("repair-unread");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let topology = topology("expectations.yaml");
    apply(&engine, &topology);
    let expansion = block_on(engine.expand(&topology)).unwrap();
    // The bridge's own address goes, but the event names another port
    // (as if the address event was lost): the part read does not show
    // the bridge, so the repair neither misses nor touches it.
    let live = engine.kernel().live().resources;
    let (bridge_address, from) = live
        .iter()
        .find(|(id, _)| id.kind == Kind::Address && id.ns.is_empty())
        .map(|(id, r)| (id.clone(), r.clone()))
        .expect("the bridge has an address");
    let flush = Change {
        action: Action::Delete,
        id: bridge_address.clone(),
        from: Some(from),
        to: None,
        takes_along: Vec::new(),
    };
    block_on(engine.kernel().execute(&flush)).unwrap();
    let writes = engine.kernel().writes().len();
    let touched = Touched {
        namespaces: BTreeMap::from([(String::new(), Some(BTreeSet::from(["lo".to_string()])))]),
    };
    let run = block_on(engine.repair(&topology, &expansion, &touched, &Quiet)).unwrap();
    assert!(run.succeeded() && run.plan.is_empty(), "{:?}", run.plan);
    assert_eq!(engine.kernel().writes().len(), writes);
    // An event about it, or the full resync, brings it back.
    let about_it = Touched {
        namespaces: BTreeMap::from([(String::new(), Some(BTreeSet::from(["exp0".to_string()])))]),
    };
    let run = block_on(engine.repair(&topology, &expansion, &about_it, &Quiet)).unwrap();
    let planned: Vec<_> = run.plan.changes.iter().map(|c| (c.action, &c.id)).collect();
    assert_eq!(planned, [(Action::Create, &bridge_address)]);
    assert!(apply(&engine, &topology).plan.is_empty());
}

#[test]
fn an_interfaces_settings_share_a_request_but_up_waits_for_the_rest() {
    let state = TempState::new("folded");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    assert!(apply(&engine, &topology("seed.yaml")).succeeded());
    let requests = engine.kernel().settings_requests();
    let kinds_of = |ns: &str, ifname: &str| -> Vec<Vec<Kind>> {
        requests
            .iter()
            .filter(|ids| ids[0].ns == ns && ids[0].name == ifname)
            .map(|ids| ids.iter().map(|id| id.kind).collect())
            .collect()
    };
    for ids in &requests {
        assert!(
            ids.iter()
                .all(|id| (&id.ns, &id.name) == (&ids[0].ns, &ids[0].name)),
            "one interface per request: {ids:?}"
        );
    }
    // The loopback's mark and state together; eth0 gets its mark and
    // address generation first, and goes up on its own after them.
    assert_eq!(kinds_of("test", "lo"), [vec![Kind::Alias, Kind::Up]]);
    assert_eq!(
        kinds_of("test", "eth0"),
        [vec![Kind::Alias, Kind::LinkLocal], vec![Kind::Up]]
    );
}

#[test]
fn verify_reads_back_only_the_namespaces_the_plan_touched() {
    let state = TempState::new("verify-part");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    // Three pods on one bridge in this machine's namespace.
    let topology = topology("expectations.yaml");
    apply(&engine, &topology);
    let record = state.record(&topology.name);
    // Drift: one pod's address vanishes.
    let (id, address) = engine
        .kernel()
        .live()
        .resources
        .into_iter()
        .find(|(id, _)| id.kind == Kind::Address && id.ns == "exp-client")
        .expect("the client has addresses");
    let drift = Change {
        action: Action::Delete,
        id: id.clone(),
        from: Some(address),
        to: None,
        takes_along: Vec::new(),
    };
    block_on(engine.kernel().execute(&drift)).unwrap();

    let run = apply(&engine, &topology);
    assert!(run.succeeded());
    let planned: Vec<_> = run.plan.changes.iter().map(|c| (c.action, &c.id)).collect();
    assert_eq!(planned, [(Action::Create, &id)]);
    let observations = engine.kernel().observations();
    let (first, verify) = (&observations[observations.len() - 2], observations.last());
    assert!(
        first.contains("exp-server") && first.contains(""),
        "{first:?}"
    );
    assert_eq!(
        verify,
        Some(&std::collections::BTreeSet::from(
            ["exp-client".to_string()]
        ))
    );
    // The record still describes the whole topology.
    assert_eq!(state.record(&topology.name), record);
}

/// `pods` pods on one bridge, as benches/scale.rs lays them out.
fn pods_on_a_bridge(pods: usize) -> Topology {
    let mut text =
        "name: many\nbridges:\n  br0:\n    addresses: [10.100.0.1/16]\npods:\n".to_string();
    for pod in 0..pods {
        text.push_str(&format!(
            "  p{pod}:\n    interfaces:\n      eth0: {{ bridge: br0, addresses: [10.100.{}.{}/16] }}\n    routes: [{{ to: default, via: 10.100.0.1 }}]\n",
            (pod + 2) / 256,
            (pod + 2) % 256,
        ));
    }
    parse("many.yaml", &text)
}

#[test]
fn verify_in_slices_reports_every_change_the_kernel_ignored_once() {
    let pods = super::reconcile::VERIFY_SLICE + 6;
    let topology = pods_on_a_bridge(pods);
    // The host end of the pod read last ("p9" sorts after "p69").
    let names = TempState::new("slices-names");
    let planned = apply(&engine(FakeKernel::new(), &names, Mode::Lab), &topology).plan;
    let host_end = planned
        .changes
        .iter()
        .find_map(|c| match &c.to {
            Some(Resource::Link(LinkKind::Veth { peer_ns, .. })) if peer_ns == "p9" => {
                Some(c.id.name.clone())
            }
            _ => None,
        })
        .expect("p9's veth");

    let state = TempState::new("slices");
    let kernel = FakeKernel::new();
    // One object in the first slice, the port of a pod in the last: read
    // whole in the first, by name again in the last.
    let route = ResourceId::new("p0", Kind::Route, "0.0.0.0/0 metric 0");
    let port_up = ResourceId::new("", Kind::Up, host_end);
    kernel.ignore(route.clone());
    kernel.ignore(port_up.clone());
    let engine = engine(kernel, &state, Mode::Lab);
    let run = apply(&engine, &topology);
    assert!(run.failure.is_none() && !run.succeeded());
    let mut unverified: Vec<&ResourceId> = run.unverified.iter().map(|c| &c.id).collect();
    unverified.sort();
    assert_eq!(unverified, [&port_up, &route]);
    // Read back in slices, none larger than one and the ports it reaches.
    let observations = engine.kernel().observations();
    let verify = &observations[1..];
    assert_eq!(verify.len(), 2, "{verify:?}");
    let read: usize = verify.iter().map(|slice| slice.len()).sum();
    assert_eq!(
        read,
        pods + 2,
        "every namespace once, and the bridge's again"
    );
    assert!(
        verify
            .iter()
            .all(|slice| slice.len() <= super::reconcile::VERIFY_SLICE + 1)
    );
}

/// The (before, after) pairs of tests/transitions: edits that keep one
/// end of a veth at its (namespace, name) while the pair itself is made
/// anew, by name.
fn transitions() -> Vec<(String, Topology, Topology)> {
    let mut names: Vec<String> = std::fs::read_dir("tests/transitions")
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".before.yaml").map(String::from)
        })
        .collect();
    names.sort();
    let read = |path: String| {
        let text = std::fs::read_to_string(&path).unwrap();
        let topology = crate::load::parse(&SourceFile::new(&path, text)).unwrap();
        let problems = crate::validate::validate(&topology);
        assert!(problems.is_empty(), "{path}: {problems:#?}");
        topology
    };
    names
        .into_iter()
        .map(|name| {
            let before = read(format!("tests/transitions/{name}.before.yaml"));
            let after = read(format!("tests/transitions/{name}.after.yaml"));
            (name, before, after)
        })
        .collect()
}

/// One apply converges whatever end of a veth keeps its place: the end
/// that is born again gets its address, routes, state and settings back
/// in the same run (before: verify failed, the pod was offline until a
/// second apply).
#[test]
fn a_veth_made_anew_under_a_kept_name_converges_in_one_apply() {
    let transitions = transitions();
    assert_eq!(transitions.len(), 5);
    for (what, before, after) in &transitions {
        let state = TempState::new("rebirth");
        let engine = engine(FakeKernel::new(), &state, Mode::Lab);
        assert!(apply(&engine, before).succeeded(), "{what}: before");
        let run = apply(&engine, after);
        assert!(
            run.succeeded(),
            "{what}: {:#?}",
            run.unverified
                .iter()
                .map(|c| format!("{:?} {}", c.action, c.id))
                .collect::<Vec<_>>()
        );
        let again = block_on(engine.plan(after)).unwrap();
        assert!(again.plan.is_empty(), "{what}: {:#?}", again.plan.changes);
    }
}

/// `forwarding: true` dropped from a real host's entry: forwarding goes
/// back to the value it replaced at once, not only on destroy, and the
/// record has nothing left to restore.
#[test]
fn a_host_setting_the_file_drops_goes_back_to_the_value_it_replaced() {
    let state = TempState::new("unset-host");
    let engine = engine(real_host("192.168.60.11/24"), &state, host("h1"));
    let with = parse(
        "forwarding.yaml",
        "name: fwd\nhosts:\n  h1: { underlay: 192.168.60.11/24, forwarding: true }\n",
    );
    let without = parse(
        "forwarding.yaml",
        "name: fwd\nhosts:\n  h1: { underlay: 192.168.60.11/24 }\n",
    );
    let forwarding = ResourceId::new("", Kind::Sysctl, "net.ipv4.ip_forward");
    assert!(apply(&engine, &with).succeeded());
    let status = block_on(engine.status(&without)).unwrap().1;
    assert!(
        status
            .iter()
            .any(|s| s.id == forwarding && s.state == status::State::Drifted),
        "status sees the value to restore"
    );
    let run = apply(&engine, &without);
    assert!(run.succeeded(), "{:#?}", run.unverified);
    assert_eq!(
        engine.kernel().live().resources[&forwarding],
        Resource::Sysctl { value: "0".into() }
    );
    // Nothing left to restore: the record is gone (an empty one is removed).
    assert_eq!(state.record("fwd"), None);
    assert!(block_on(engine.plan(&without)).unwrap().plan.is_empty());
}

/// A pod sysctl the file drops goes back to the kernel's default: what a
/// namespace made just now reads (the per-interface key: its `default`
/// sibling's).
#[test]
fn a_pod_sysctl_the_file_drops_goes_back_to_the_kernels_default() {
    let state = TempState::new("unset-pod");
    let kernel = FakeKernel::new();
    kernel.set_fresh_sysctl("net.ipv4.ip_forward", "0");
    kernel.set_fresh_sysctl("net.ipv4.conf.default.rp_filter", "0");
    let engine = engine(kernel, &state, Mode::Lab);
    let pod = |sysctls: &str| {
        parse(
            "sysctls.yaml",
            &format!(
                "name: sys\nbridges:\n  br0: {{}}\npods:\n  web:\n    interfaces:\n      eth0: {{ bridge: br0 }}\n    sysctls: {{ {sysctls} }}\n"
            ),
        )
    };
    let with = pod("net.ipv4.ip_forward: \"1\", net.ipv4.conf.eth0.rp_filter: \"2\"");
    let without = pod("");
    assert!(apply(&engine, &with).succeeded());
    let run = apply(&engine, &without);
    assert!(run.succeeded(), "{:#?}", run.unverified);
    let live = engine.kernel().live().resources;
    for key in ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.rp_filter"] {
        assert_eq!(
            live[&ResourceId::new("web", Kind::Sysctl, key)],
            Resource::Sysctl { value: "0".into() },
            "{key}"
        );
    }
    let record = state.record("sys").unwrap();
    for key in ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.rp_filter"] {
        let id = ResourceId::new("web", Kind::Sysctl, key);
        assert!(!record.created.contains(&id), "{record:#?}");
    }
    assert!(block_on(engine.plan(&without)).unwrap().plan.is_empty());
}

/// A real host that does not forward, under a file that routes through
/// it without saying `forwarding`: plan, apply and status warn with the
/// fix. Not when the file sets it, nor in lab mode.
#[test]
fn host_mode_warns_when_routing_needs_forwarding_the_host_lacks() {
    let text = std::fs::read_to_string("topologies/k8s-host-gw.yaml").unwrap();
    let shipped = parse("k8s-host-gw.yaml", &text);
    let unset = parse("k8s-host-gw.yaml", &text.replace(", forwarding: true", ""));
    let kernel = real_host("192.168.100.11/24");
    let warning = |topology: &Topology, mode: &Mode| {
        block_on(host::forwarding_warning(&kernel, topology, mode)).unwrap()
    };
    let warned = warning(&unset, &host("node1")).expect("a warning");
    assert!(
        warned.contains("net.ipv4.ip_forward is 0")
            && warned.contains("set `forwarding: true` on host `node1`"),
        "{warned}"
    );
    assert_eq!(warning(&shipped, &host("node1")), None);
    assert_eq!(warning(&unset, &Mode::Lab), None);
    let vxlan = std::fs::read_to_string("topologies/k8s-vxlan.yaml").unwrap();
    let vxlan = parse("k8s-vxlan.yaml", &vxlan.replace(", forwarding: true", ""));
    let kernel = real_host("192.168.200.11/24");
    let warned = block_on(host::forwarding_warning(&kernel, &vxlan, &host("worker1"))).unwrap();
    assert!(warned.is_some_and(|w| w.contains("an overlay")));
}

/// A sysctl the kernel lacks or cannot write stops the run before any
/// change (it used to fail half way, after the namespace was made).
#[test]
fn a_sysctl_the_kernel_cannot_set_stops_the_run_before_any_change() {
    let state = TempState::new("bad-sysctl");
    let kernel = FakeKernel::new();
    kernel.refuse_sysctl("net.ipv4.ip_forwardd", "this kernel has no such sysctl");
    let engine = engine(kernel, &state, Mode::Lab);
    let topology = parse(
        "typo.yaml",
        "name: typo\npods:\n  web:\n    sysctls: { net.ipv4.ip_forwardd: \"1\" }\n",
    );
    let Err(err) = block_on(engine.apply(&topology, false, &Quiet)) else {
        panic!("a sysctl the kernel lacks was accepted");
    };
    assert!(
        err.to_string()
            .contains("`net.ipv4.ip_forwardd` in netns web: this kernel has no such sysctl"),
        "{err}"
    );
    assert!(engine.kernel().writes().is_empty());
    assert!(
        block_on(engine.plan(&topology)).is_err(),
        "plan says so too"
    );
}

#[test]
fn a_failed_runs_half_made_namespace_is_claimed_and_destroyed() {
    // The kernel makes the namespace, then the run hits EMFILE: the run
    // failed, but the namespace exists, unmarked.
    let state = TempState::new("failed-run");
    let kernel = FakeKernel::new();
    let made = ResourceId::namespace("test");
    kernel.fail_after(made.clone());
    let engine = engine(kernel, &state, Mode::Lab);
    let seed = topology("seed.yaml");
    let failed = apply(&engine, &seed);
    let (_, error) = failed.failure.as_ref().expect("the run fails");
    assert!(error.to_string().contains("RLIMIT_NOFILE"), "{error}");
    assert!(engine.kernel().namespace_exists("test"));

    // Claimable by the next run, which finishes the job; destroy removes it.
    let live = engine.kernel().live();
    let engine = self::engine(FakeKernel::holding(live), &state, Mode::Lab);
    let next = apply(&engine, &seed);
    assert!(next.plan.conflicts.is_empty(), "{:#?}", next.plan.conflicts);
    assert!(next.succeeded(), "{:#?}", next.unverified);
    let destroyed = block_on(engine.destroy(DestroyTarget::Name("seed"), false, &Quiet)).unwrap();
    assert!(destroyed.succeeded());
    assert!(!engine.kernel().namespace_exists("test"));
}

/// A run killed right after logging the create of namespace `test` (and
/// before its done line): the journal it leaves, and when it went quiet.
fn journal_of_a_kill_while_creating_test(state: &TempState) -> std::time::SystemTime {
    let mut journal = StateDir::new(&state.0).journal("seed").unwrap();
    let create = Change {
        action: Action::Create,
        id: ResourceId::namespace("test"),
        from: None,
        to: Some(Resource::Namespace),
        takes_along: Vec::new(),
    };
    journal
        .log(&create, crate::state::Moment::Starting)
        .unwrap();
    drop(journal);
    let path = state.0.join("seed.journal");
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// A kernel holding an unmarked namespace `test` that appeared at `time`.
fn kernel_with_unmarked_test(time: std::time::SystemTime) -> FakeKernel {
    let mut live = crate::model::Observed::default();
    live.resources
        .insert(ResourceId::namespace("test"), Resource::Namespace);
    let kernel = FakeKernel::holding(live);
    kernel.set_namespace_made_at("test", time);
    kernel
}

#[test]
fn a_journal_entry_alone_never_makes_a_newcomer_netlooms() {
    let state = TempState::new("journal-no-proof");
    let quiet = journal_of_a_kill_while_creating_test(&state);
    // Someone else makes a namespace under that name, unmarked, a minute
    // after the killed run went quiet.
    let later = quiet + Duration::from_secs(60);
    let engine = engine(kernel_with_unmarked_test(later), &state, Mode::Lab);
    let run = apply(&engine, &topology("seed.yaml"));
    assert!(
        run.plan
            .conflicts
            .iter()
            .any(|conflict| conflict.id == ResourceId::namespace("test")),
        "taken over: {:#?}",
        run.plan.changes
    );
    assert!(
        engine.kernel().writes().is_empty(),
        "{:#?}",
        engine.kernel().writes()
    );
    // Nothing here is seed's: destroy --name says so, and deletes nothing.
    let destroyed = block_on(engine.destroy(DestroyTarget::Name("seed"), false, &Quiet));
    assert!(
        matches!(destroyed, Err(EngineError::UnknownTopology(_))),
        "{destroyed:?}"
    );
    assert!(
        engine.kernel().namespace_exists("test"),
        "destroy deleted it"
    );
}

#[test]
fn an_atomic_apply_whose_read_back_differs_is_undone() {
    let state = TempState::new("atomic-unverified");
    let kernel = FakeKernel::new();
    let route = ResourceId::new("test", Kind::Route, "0.0.0.0/0 metric 0");
    kernel.ignore(route);
    let engine = engine(kernel, &state, Mode::Lab);
    let before = engine.kernel().live().resources;
    let keep = std::future::ready(Ok(()));
    let run = block_on(engine.apply_atomic(&topology("seed.yaml"), &Quiet, keep)).unwrap();
    assert!(run.failure.is_none() && !run.unverified.is_empty());
    let rollback = run.rollback.as_ref().expect("rolled back");
    assert!(
        rollback.why.contains("did not read back"),
        "{}",
        rollback.why
    );
    assert!(rollback.restored());
    assert!(!run.succeeded());
    assert_eq!(engine.kernel().live().resources, before);
    assert_eq!(state.record("seed"), None, "the record before: none");
}

#[test]
fn an_atomic_apply_its_check_or_confirmation_rejects_is_undone_and_one_it_keeps_stays() {
    let state = TempState::new("atomic-keep");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let seed = topology("seed.yaml");
    let before = engine.kernel().live().resources;
    let rejected = std::future::ready(Err("1 of the file's expectations failed".to_string()));
    let run = block_on(engine.apply_atomic(&seed, &Quiet, rejected)).unwrap();
    assert!(run.failure.is_none() && run.unverified.is_empty());
    assert!(run.rollback.as_ref().is_some_and(|r| r.restored()));
    assert!(!run.succeeded());
    assert_eq!(engine.kernel().live().resources, before);

    let kept = std::future::ready(Ok(()));
    let run = block_on(engine.apply_atomic(&seed, &Quiet, kept)).unwrap();
    assert!(run.succeeded() && run.rollback.is_none());
    // A no-op has nothing to undo: what decides is not even asked.
    let writes = engine.kernel().writes().len();
    let never = async { panic!("a no-op asked whether to keep it") };
    let run = block_on(engine.apply_atomic(&seed, &Quiet, never)).unwrap();
    assert!(run.succeeded() && run.plan.is_empty());
    assert_eq!(engine.kernel().writes().len(), writes);
}

#[test]
fn rollback_without_a_changing_run_says_so() {
    let state = TempState::new("no-rollback");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let err = block_on(engine.rollback(&topology("seed.yaml"), &Quiet)).unwrap_err();
    assert!(matches!(err, EngineError::NothingToRollBack(ref name) if name == "seed"));
}

/// `plan --out` then `apply PLANFILE`: the saved plan, through its JSON.
fn saved_plan(engine: &Engine<FakeKernel>, topology: &Topology, name: &str) -> SavedPlan {
    let snapshot = block_on(engine.plan(topology)).unwrap();
    let source = SourceFile::new(name, "(the file)");
    let json = engine.saved_plan(&snapshot, &source).to_json();
    assert!(saved::is_plan_file(&json));
    SavedPlan::from_json(&json).unwrap()
}

#[test]
fn a_fresh_saved_plan_does_exactly_what_it_shows_and_what_apply_does() {
    let topology = topology("pod-to-pod.yaml");
    let state = TempState::new("saved-fresh");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let saved = saved_plan(&engine, &topology, "pod-to-pod.yaml");
    let run = block_on(engine.apply_saved(&topology, &saved, false, &Quiet)).unwrap();
    assert!(run.succeeded(), "{:#?}", run.unverified);
    let shown: Vec<(Action, &ResourceId)> = saved
        .changes
        .iter()
        .map(|saved| (saved.change.action, &saved.change.id))
        .collect();
    let writes = engine.kernel().writes();
    let mut written: Vec<(Action, &ResourceId)> =
        writes.iter().map(|w| (w.action, &w.id)).collect();
    let mut expected = shown.clone();
    written.sort();
    expected.sort();
    assert_eq!(written, expected, "wrote something the plan did not show");
    // The same kernel and record as a plain apply.
    let plain_state = TempState::new("saved-fresh-plain");
    let plain = engine_with_plain_apply(&plain_state, &topology);
    assert_eq!(
        engine.kernel().live().resources,
        plain.kernel().live().resources
    );
    assert_eq!(state.record("pod-to-pod"), plain_state.record("pod-to-pod"));
}

fn engine_with_plain_apply(state: &TempState, topology: &Topology) -> Engine<FakeKernel> {
    let engine = engine(FakeKernel::new(), state, Mode::Lab);
    assert!(apply(&engine, topology).succeeded());
    engine
}

#[test]
fn a_saved_plan_is_refused_once_the_kernel_changed_and_nothing_is_written() {
    let topology = topology("pod-to-pod.yaml");
    let state = TempState::new("saved-stale");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    apply(&engine, &topology);
    // A change by hand to one object after the plan was made.
    let (id, mtu) = engine
        .kernel()
        .live()
        .resources
        .into_iter()
        .find(|(id, _)| id.kind == Kind::Mtu)
        .unwrap();
    let saved = saved_plan(&engine, &topology, "pod-to-pod.yaml");
    let by_hand = Change {
        action: Action::Update,
        id: id.clone(),
        from: Some(mtu),
        to: Some(Resource::Mtu { mtu: 1280 }),
        takes_along: Vec::new(),
    };
    block_on(engine.kernel().execute(&by_hand)).unwrap();
    let before = engine.kernel().live().resources;
    let writes = engine.kernel().writes().len();
    let err = block_on(engine.apply_saved(&topology, &saved, false, &Quiet)).unwrap_err();
    let EngineError::StalePlan(differences) = &err else {
        panic!("{err}");
    };
    assert_eq!(
        differences,
        &[format!("the kernel: {id} changed from 1500 to 1280")]
    );
    assert_eq!(engine.kernel().writes().len(), writes, "a stale plan wrote");
    assert_eq!(engine.kernel().live().resources, before);
}

#[test]
fn a_saved_plan_is_refused_once_a_state_record_changed() {
    let topology = topology("pod-to-pod.yaml");
    let state = TempState::new("saved-record");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let saved = saved_plan(&engine, &topology, "pod-to-pod.yaml");
    let mut other = Record::new("other");
    other.namespaces.insert("elsewhere".to_string());
    StateDir::new(&state.0).save(&other).unwrap();
    let err = block_on(engine.apply_saved(&topology, &saved, false, &Quiet)).unwrap_err();
    assert!(
        err.to_string()
            .contains("the state record of topology other changed"),
        "{err}"
    );
    assert!(engine.kernel().writes().is_empty());
}

#[test]
fn a_plan_file_of_an_unknown_version_or_edited_is_refused() {
    let topology = topology("pod-to-pod.yaml");
    let state = TempState::new("saved-version");
    let engine = engine(FakeKernel::new(), &state, Mode::Lab);
    let snapshot = block_on(engine.plan(&topology)).unwrap();
    let json = engine
        .saved_plan(&snapshot, &SourceFile::new("f", "t"))
        .to_json();
    let future = json.replacen("\"netloom-plan\": 1", "\"netloom-plan\": 2", 1);
    assert!(matches!(
        SavedPlan::from_json(&future),
        Err(PlanFileError::UnknownVersion { found: 2 })
    ));
    let edited = json.replacen("\"adopt\": false", "\"adopt\": true", 1);
    assert_ne!(edited, json);
    assert!(matches!(
        SavedPlan::from_json(&edited),
        Err(PlanFileError::Altered)
    ));
    // A topology is never taken for a plan, in YAML or in JSON.
    assert!(!saved::is_plan_file("name: lab\npods: {}\n"));
    assert!(!saved::is_plan_file("{\"name\": \"netloom-plan\"}"));
}

#[test]
fn a_namespace_that_appeared_while_the_killed_run_was_creating_it_is_its() {
    let state = TempState::new("journal-in-flight");
    let quiet = journal_of_a_kill_while_creating_test(&state);
    // The kernel made it just as the run was killed: its create was in
    // flight, its done line never written. The kernel's clock says so.
    let engine = engine(kernel_with_unmarked_test(quiet), &state, Mode::Lab);
    let run = apply(&engine, &topology("seed.yaml"));
    assert!(run.plan.conflicts.is_empty(), "{:#?}", run.plan.conflicts);
    assert!(run.succeeded(), "{:#?}", run.unverified);
    let destroyed = block_on(engine.destroy(DestroyTarget::Name("seed"), false, &Quiet)).unwrap();
    assert!(destroyed.succeeded());
    assert!(!engine.kernel().namespace_exists("test"));
}

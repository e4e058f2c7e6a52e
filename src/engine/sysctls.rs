//! Sysctls a plan would write are checked against the running kernel
//! before anything is touched (docs/FORMAT.md, "Pod"): a key it does not
//! have (`net.ipv4.ip_forwardd`) or cannot write would otherwise fail half
//! way through an apply. Keys of this machine's namespace are checked
//! there; the others in a namespace made just for that, like those netloom
//! creates (an interface's key by its `default` sibling, the interface
//! being perhaps not made yet).

use std::collections::BTreeSet;

use super::restore::default_key;
use super::{EngineError, KernelPort};
use crate::kernel::{KernelError, namespace_label};
use crate::model::{Action, Kind};
use crate::plan::Plan;

pub(super) async fn check<K: KernelPort>(kernel: &K, plan: &Plan) -> Result<(), EngineError> {
    let written = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete && c.id.kind == Kind::Sysctl);
    let (mut own, mut fresh): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for change in written {
        let id = &change.id;
        if id.ns.is_empty() {
            own.push((id.name.clone(), id.name.clone(), id.ns.clone()));
        } else {
            fresh.push((default_key(&id.name), id.name.clone(), id.ns.clone()));
        }
    }
    let mut problems = Vec::new();
    for (keys, in_fresh) in [(own, false), (fresh, true)] {
        if keys.is_empty() {
            continue;
        }
        let asked: BTreeSet<String> = keys.iter().map(|(asked, _, _)| asked.clone()).collect();
        let asked: Vec<String> = asked.into_iter().collect();
        let answers = kernel
            .unwritable_sysctls(&asked, in_fresh)
            .await
            .map_err(|err| KernelError::new("check the sysctls to set".to_string(), err))?;
        for (asked, key, ns) in &keys {
            let why = answers
                .iter()
                .find(|(k, _)| k == asked)
                .and_then(|(_, w)| w.as_ref());
            if let Some(why) = why {
                problems.push(format!("`{key}` in {}: {why}", namespace_label(ns)));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Sysctls(problems))
    }
}

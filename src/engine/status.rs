//! `status`: how each declared object, and each extra owned one, compares
//! with the kernel. Pure: a classification of a snapshot.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Snapshot;
use crate::model::{Action, Resource, ResourceId};

/// How one object compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    InSync,
    Drifted,
    Missing,
    Extra,
}

impl State {
    /// How a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            State::InSync => "in sync",
            State::Drifted => "drifted",
            State::Missing => "missing",
            State::Extra => "extra",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ObjectStatus {
    pub id: ResourceId,
    pub state: State,
    pub desired: Option<Resource>,
    pub live: Option<Resource>,
}

/// Every declared object and every extra owned one, with how it compares.
pub fn object_statuses(snapshot: &Snapshot) -> Vec<ObjectStatus> {
    let mut planned: BTreeMap<&ResourceId, Vec<Action>> = BTreeMap::new();
    for change in &snapshot.plan.changes {
        planned.entry(&change.id).or_default().push(change.action);
    }
    let conflicted: BTreeSet<&ResourceId> = snapshot.plan.conflicts.iter().map(|c| &c.id).collect();
    let live = &snapshot.observed.resources;
    let mut statuses = Vec::new();
    for (id, want) in &snapshot.desired.resources {
        let have = live.get(id).filter(|_| !conflicted.contains(id));
        let state = match (have, planned.get(id)) {
            (None, _) => State::Missing,
            (Some(_), Some(_)) => State::Drifted,
            (Some(_), None) => State::InSync,
        };
        statuses.push(ObjectStatus {
            id: id.clone(),
            state,
            desired: Some(want.clone()),
            live: have.cloned(),
        });
    }
    for change in &snapshot.plan.changes {
        if change.action == Action::Delete && !snapshot.desired.resources.contains_key(&change.id) {
            statuses.push(ObjectStatus {
                id: change.id.clone(),
                state: State::Extra,
                desired: None,
                live: change.from.clone(),
            });
        }
    }
    statuses
}

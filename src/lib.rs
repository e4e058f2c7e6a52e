//! netloom: declarative Linux container networking.
//!
//! The pipeline (docs/DESIGN.md): file ─load─> Spec ─validate─> Spec
//! ─expand─> Desired ─diff(Observed)─> Plan ─execute─> kernel ─observe─>
//! verify. One module per stage or concern; imports only go down this
//! list's layers (`cli` > `engine` > `plan`, `state`, `kernel` > `model` >
//! `spec`), never in a cycle.
//!
//! - `spec`, `load`, `validate`, `diagnostics`: the file format, its
//!   parsing with source spans, its rules, and how problems are shown
//! - `model`: the vocabulary every layer shares (resources, changes,
//!   marks, derived names) and `expand` (Spec -> Desired)
//! - `graph`: dependencies between resources, the one topological sort
//! - `plan`: Desired vs Observed -> an ordered plan and its conflicts
//! - `state`: the state dir (lock, records, journals)
//! - `kernel`: the real kernel over rtnetlink
//! - `expect`, `probe`: the file's expectations and the real traffic that
//!   checks them (`check`)
//! - `path`: a packet's walk through the live kernel's reads (`path`)
//! - `engine`: reconcile, scheduler and the rest over `engine::KernelPort`
//! - `cli`: one file per command; `main.rs` only calls `cli::run`

pub mod cli;
pub mod diagnostics;
pub mod engine;
pub mod expect;
pub mod graph;
pub mod kernel;
pub mod load;
pub mod logging;
pub mod model;
pub mod path;
pub mod plan;
pub mod probe;
pub mod spec;
pub mod state;
pub mod validate;
pub mod watch;

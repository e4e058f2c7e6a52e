//! netloom: declarative Linux container networking.
//!
//! The pipeline (docs/DESIGN.md): file ─load─> Spec ─validate─> Spec ─expand─>
//! Desired ─diff(Observed)─> Plan ─execute─> kernel ─observe─> verify.
//! Each module below is one stage; `main.rs` only wires them to the CLI.

pub mod cli;
pub mod diagnostics;
pub mod engine;
pub mod graph;
pub mod kernel;
pub mod load;
pub mod logging;
pub mod model;
pub mod plan;
pub mod spec;
pub mod state;
pub mod validate;

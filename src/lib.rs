//! netloom: declarative Linux container networking.
//!
//! The pipeline (DESIGN.md): file ─load─> Spec ─validate─> Spec ─expand─>
//! Desired ─diff(Observed)─> Plan ─execute─> kernel ─observe─> verify.
//! Each module below is one stage; `main.rs` only wires them to the CLI.

pub mod diagnostics;
pub mod load;
pub mod spec;
pub mod model;
pub mod graph;

//! Every command's first step: read, parse and validate the topology file,
//! or say why it cannot be used.

use std::sync::Arc;

use super::Output;
use super::error;
use crate::diagnostics::{Diagnostics, SourceFile};
use crate::spec::Topology;
use crate::{load, validate};

/// Why a topology could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Read(#[from] load::ReadError),
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Reads, parses and validates a topology file.
pub fn read_topology(file: &str) -> Result<Topology, TopologyError> {
    topology_from_source(load::read_source(file)?)
}

/// Parses and validates a file already read.
pub fn topology_from_source(source: Arc<SourceFile>) -> Result<Topology, TopologyError> {
    let topology = load::parse(&source)?;
    let problems = validate::validate(&topology);
    if problems.is_empty() {
        Ok(topology)
    } else {
        Err(Diagnostics::new(source, problems).into())
    }
}

/// The validated topology, or `None` once its problems are reported (as
/// the JSON error document too, with `--output json`).
pub fn topology_or_report(file: &str, output: Output) -> Option<Topology> {
    reported(file, output, read_topology(file))
}

/// The file's content, or `None` once why it cannot be read is reported.
pub fn source_or_report(file: &str, output: Output) -> Option<Arc<SourceFile>> {
    let read = load::read_source(file).map_err(TopologyError::from);
    reported(file, output, read)
}

/// The validated topology of a file already read, or `None` once its
/// problems are reported.
pub fn parsed_or_report(file: &str, source: Arc<SourceFile>, output: Output) -> Option<Topology> {
    reported(file, output, topology_from_source(source))
}

fn reported<T>(file: &str, output: Output, result: Result<T, TopologyError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            if output == Output::Json {
                println!("{:#}", error::topology_error_document(file, &err));
            }
            report_topology_error(&err);
            None
        }
    }
}

/// Prints why a topology could not be used, for a human.
pub fn report_topology_error(err: &TopologyError) {
    match err {
        TopologyError::Read(err) => eprintln!("error: {err}"),
        TopologyError::Invalid(diagnostics) => {
            eprint!("{}", diagnostics.render(crate::logging::colour_on_stderr()));
            eprintln!("error: {diagnostics}");
        }
    }
}

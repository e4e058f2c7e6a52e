//! `netloom graph FILE`: a picture of the network (`--objects`: the
//! dependency graph of the kernel objects).

use std::process::ExitCode;

use super::topology::{read_topology, report_topology_error};
use super::view::picture::Picture;
use super::{GraphFormat, exit};
use crate::engine::EngineError;
use crate::graph::Graph;
use crate::model::{self, Mode};

pub fn run(file: &str, format: GraphFormat, objects: bool, host: Option<String>) -> ExitCode {
    let topology = match read_topology(file) {
        Ok(topology) => topology,
        Err(err) => {
            report_topology_error(&err);
            return exit::failure();
        }
    };
    if let Some(name) = host.as_deref()
        && !topology.hosts.contains_key(name)
    {
        // As `plan --host` says it: the same words, the same exit code.
        eprintln!("error: {}", EngineError::UnknownHost(name.to_string()));
        return exit::failure();
    }
    let mode = Mode::from_host_flag(host);
    if !objects {
        let picture = Picture::new(&topology, &mode);
        match format {
            GraphFormat::Dot => print!("{}", picture.to_dot()),
            GraphFormat::Mermaid => print!("{}", picture.to_mermaid()),
            GraphFormat::Svg => print!("{}", picture.to_svg()),
        }
        return exit::success();
    }
    let desired = model::expand(&topology, &mode);
    let graph = Graph::new(&desired.resources);
    if let Err(cycle) = graph.order() {
        eprintln!("error: {cycle}");
        return exit::failure();
    }
    match format {
        GraphFormat::Dot => print!("{}", graph.to_dot()),
        GraphFormat::Mermaid => print!("{}", graph.to_mermaid()),
        GraphFormat::Svg => {
            eprintln!("error: `--format svg` draws the network; with --objects use dot or mermaid");
            return exit::usage();
        }
    }
    exit::success()
}

//! `netloom exec FILE POD [-- CMD...]`: run a command, or a shell, inside
//! a pod or a lab host. Exits with the command's code as shells do, and
//! 125 when netloom itself fails (docs/CLI.md).

use std::process::ExitCode;

use super::topology::{read_topology, report_topology_error};
use super::{KernelArgs, Output, block_on, error, exit};
use crate::spec::Topology;

pub fn run(file: &str, place: &str, command: &[String], kernel: &KernelArgs) -> ExitCode {
    let topology = match read_topology(file) {
        Ok(topology) => topology,
        Err(err) => {
            report_topology_error(&err);
            return exit::exec_failure();
        }
    };
    let lab_hosts = kernel.host.is_none();
    let places = places(&topology, lab_hosts);
    if !places.contains(&place) {
        let what = if lab_hosts && !topology.hosts.is_empty() {
            "a pod or lab host"
        } else {
            "a pod"
        };
        eprintln!(
            "error: `{place}` is not {what} of topology `{}`",
            topology.name
        );
        if let Some(help) = suggestion(place, &places) {
            eprintln!("  help: {help}");
        }
        return exit::exec_failure();
    }
    let engine = match kernel.engine(false) {
        Ok(engine) => engine,
        Err(err) => {
            error::fail(&err, Output::Human);
            return exit::exec_failure();
        }
    };
    let ns = match block_on(engine.place_namespace(&topology, place)) {
        Ok(Some(ns)) => ns,
        Ok(None) => {
            eprintln!(
                "error: `{place}` is in the file but not on this machine: its namespace is missing or not topology `{}`'s",
                topology.name
            );
            eprintln!("  help: run `netloom apply {file}` first");
            return exit::exec_failure();
        }
        Err(err) => {
            error::fail(&err, Output::Human);
            return exit::exec_failure();
        }
    };
    let command = if command.is_empty() {
        vec![interactive_shell()]
    } else {
        command.to_vec()
    };
    match engine.run_command(&ns, &command) {
        Ok(status) => exit::of_command(status),
        Err(err) => {
            eprintln!(
                "error: cannot run `{}` in `{place}`: {err}",
                command.join(" ")
            );
            exit::of_unstartable_command(&err)
        }
    }
}

/// What `exec` can enter: the pods, and in lab mode the hosts.
fn places(topology: &Topology, lab_hosts: bool) -> Vec<&str> {
    let pods = topology.pods.keys().map(|name| name.as_str());
    let hosts = topology.hosts.keys().map(|name| name.as_str());
    pods.chain(hosts.filter(|_| lab_hosts)).collect()
}

/// The user's shell, as `su` and `docker exec -it` users expect; else sh.
fn interactive_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".to_string())
}

/// A help line for a name that is not there: the closest name if it looks
/// like a typo, else the names there are (a few).
fn suggestion(wanted: &str, places: &[&str]) -> Option<String> {
    let limit = (wanted.chars().count() / 3).max(1);
    let closest = places
        .iter()
        .map(|name| (strsim::osa_distance(wanted, name), name))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance);
    if let Some((_, name)) = closest {
        return Some(format!("did you mean `{name}`?"));
    }
    match places.len() {
        0 => None,
        1..=8 => {
            let names: Vec<String> = places.iter().map(|name| format!("`{name}`")).collect();
            Some(format!(
                "the file's pods and hosts are {}",
                names.join(", ")
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::suggestion;

    #[test]
    fn a_typo_gets_the_closest_name_and_a_stranger_the_list() {
        let places = ["web", "db", "node1"];
        assert_eq!(
            suggestion("wbe", &places).as_deref(),
            Some("did you mean `web`?")
        );
        assert_eq!(
            suggestion("node2", &places).as_deref(),
            Some("did you mean `node1`?")
        );
        assert_eq!(
            suggestion("cache", &places).as_deref(),
            Some("the file's pods and hosts are `web`, `db`, `node1`")
        );
        assert_eq!(suggestion("x", &[]), None);
    }
}

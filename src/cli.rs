//! The command line (CLI.md): argument types, and the dispatch from each
//! command to the pipeline stage that does it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::diagnostics::Diagnostics;
use crate::graph::Graph;
use crate::model::{self, Mode};
use crate::spec::Topology;
use crate::{commands, load, validate};

/// Exit code of a usage error: never "changes pending" (2).
pub const EXIT_USAGE: u8 = 64;

/// Declarative Linux container networking: namespaces, bridges, veths,
/// addresses, routes and VXLAN from one YAML file, reconciled over netlink.
#[derive(Debug, Parser)]
#[command(name = "netloom", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More logging (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less logging.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check a topology file; changes nothing, needs no root.
    Validate {
        /// The topology file (`-` reads standard input).
        file: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the dependency graph of a topology's kernel objects.
    Graph {
        /// The topology file (`-` reads standard input).
        file: String,
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
        /// Draw only this host's objects, as `--host` would apply them.
        #[arg(long)]
        host: Option<String>,
    },
    /// Read the live kernel, diff it against the file, print the ordered
    /// changes and any conflicts. Changes nothing.
    Plan {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Take over unowned objects in the way instead of reporting conflicts.
        #[arg(long)]
        adopt: bool,
        /// Exit 2 when there are changes to make (0: nothing to do).
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Make the kernel match the file, then read it back and verify.
    Apply {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Take over unowned objects in the way instead of stopping.
        #[arg(long)]
        adopt: bool,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Delete every object the topology owns and restore the values it replaced.
    Destroy {
        /// The topology file; or use --name.
        #[arg(required_unless_present = "name", conflicts_with = "name")]
        file: Option<String>,
        /// Destroy by topology name, from the state record alone.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Desired vs live, object by object: in sync, drifted, missing, extra.
    Status {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run a command inside one of the topology's pods.
    Exec {
        /// The topology file.
        file: String,
        /// The pod.
        pod: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Print the JSON Schema of the topology file format.
    Schema,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Options shared by every command that talks to the kernel.
#[derive(Debug, Args)]
pub struct KernelArgs {
    /// Host mode: apply only this host's objects, in this namespace.
    #[arg(long)]
    pub host: Option<String>,
    /// Where netloom keeps its lock and state records.
    #[arg(long, env = "NETLOOM_STATE_DIR", default_value = "/run/netloom")]
    pub state_dir: PathBuf,
    /// How long to wait for another run's lock, in seconds.
    #[arg(long, default_value_t = 30)]
    pub lock_timeout: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    #[default]
    Dot,
    Mermaid,
}

/// Parses the arguments; a usage error exits 64, help and version 0.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|err| {
        let _ = err.print();
        if err.use_stderr() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        }
    })
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { file, output } => validate_command(&file, output),
        Command::Graph { file, format, host } => graph_command(&file, format, host),
        Command::Plan {
            file,
            kernel,
            adopt,
            detailed_exitcode,
            output,
        } => commands::plan(&file, &kernel, adopt, detailed_exitcode, output),
        Command::Apply {
            file,
            kernel,
            adopt,
            dry_run,
            output,
        } => commands::apply(&file, &kernel, adopt, dry_run, output),
        Command::Destroy {
            file,
            name,
            kernel,
            dry_run,
            output,
        } => commands::destroy(file.as_deref(), name.as_deref(), &kernel, dry_run, output),
        Command::Status {
            file,
            kernel,
            output,
        } => commands::status(&file, &kernel, output),
        Command::Exec {
            file,
            pod,
            command,
            kernel,
        } => commands::exec(&file, &pod, &command, &kernel),
        Command::Schema => {
            println!("{}", schema_json());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "netloom",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// The JSON Schema of the file format, as committed in `schemas/`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Topology);
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

/// Why a topology could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Read(#[from] load::ReadError),
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Reads, parses and validates a topology file: every command's first step.
pub fn read_topology(file: &str) -> Result<Topology, TopologyError> {
    let source = load::read_source(file)?;
    let topology = load::parse(&source)?;
    let problems = validate::validate(&topology);
    if problems.is_empty() {
        Ok(topology)
    } else {
        Err(Diagnostics::new(source, problems).into())
    }
}

/// Prints why a topology could not be used, for a human.
pub fn report_topology_error(err: &TopologyError) {
    match err {
        TopologyError::Read(err) => eprintln!("error: {err}"),
        TopologyError::Invalid(diagnostics) => {
            eprint!("{}", diagnostics.render(color_on_stderr()));
            eprintln!("error: {diagnostics}");
        }
    }
}

fn color_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn validate_command(file: &str, output: Output) -> ExitCode {
    let result = read_topology(file);
    if output == Output::Json {
        let diagnostics = match &result {
            Err(TopologyError::Invalid(d)) => serde_json::to_value(d.to_json()),
            Err(TopologyError::Read(err)) => Ok(serde_json::json!([{
                "file": file, "line": 0, "column": 0, "message": err.to_string(), "help": null
            }])),
            Ok(_) => Ok(serde_json::json!([])),
        }
        .expect("diagnostics serialize");
        let doc = serde_json::json!({
            "version": 1,
            "valid": result.is_ok(),
            "diagnostics": diagnostics,
        });
        println!("{doc:#}");
    }
    match result {
        Ok(topology) => {
            if output == Output::Human {
                let shown = if file == "-" { "<stdin>" } else { file };
                println!("{shown}: valid ({})", summary(&topology));
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            if output == Output::Human {
                report_topology_error(&err);
            }
            ExitCode::FAILURE
        }
    }
}

/// "1 bridge, 2 pods, 1 link" — what a file declares, in brief.
fn summary(topology: &Topology) -> String {
    let counts = [
        (topology.hosts.len(), "host"),
        (topology.bridges.len(), "bridge"),
        (topology.pods.len(), "pod"),
        (topology.links.len(), "link"),
        (topology.overlays.len(), "overlay"),
        (topology.expect.len(), "expectation"),
    ];
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if parts.is_empty() {
        "empty".to_string()
    } else {
        parts.join(", ")
    }
}

fn graph_command(file: &str, format: GraphFormat, host: Option<String>) -> ExitCode {
    let topology = match read_topology(file) {
        Ok(topology) => topology,
        Err(err) => {
            report_topology_error(&err);
            return ExitCode::FAILURE;
        }
    };
    let mode = match host {
        Some(name) => Mode::Host {
            name,
            underlay_mtu: None,
        },
        None => Mode::Lab,
    };
    let desired = model::expand(&topology, &mode);
    let graph = Graph::new(&desired.resources);
    if let Err(cycle) = graph.order() {
        eprintln!("error: {cycle}");
        return ExitCode::FAILURE;
    }
    match format {
        GraphFormat::Dot => print!("{}", graph.to_dot()),
        GraphFormat::Mermaid => print!("{}", graph.to_mermaid()),
    }
    ExitCode::SUCCESS
}

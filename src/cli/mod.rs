//! The command line (docs/CLI.md): the clap types, and the dispatch to one
//! file per command. Each command file reads its arguments, runs the
//! engine, reports (human or JSON, via `report`) and picks its exit code
//! (from `exit`, the only place that names one).

mod apply;
mod check;
mod completions;
mod confirm;
mod destroy;
mod error;
mod exec;
pub mod exit;
mod graph;
mod interrupt;
mod man;
mod path;
mod plan;
mod progress;
pub mod report;
mod rollback;
mod schema;
mod status;
mod topology;
mod validate;
pub mod view;
mod watch;

pub use schema::schema_json;
pub use topology::{TopologyError, read_topology};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Engine, EngineError, Options};
use crate::model::Mode;

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
    /// Draw the network: hosts, bridges, pods, links, overlays.
    Graph {
        /// The topology file (`-` reads standard input).
        file: String,
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
        /// Draw the kernel objects' dependency graph instead.
        #[arg(long)]
        objects: bool,
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
        /// Also save the plan to PLANFILE, for `apply PLANFILE`.
        #[arg(long, value_name = "PLANFILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        view: ViewArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Make the kernel match the file, then read it back and verify.
    Apply {
        /// The topology file (`-` reads standard input), or a plan saved by
        /// `plan --out`: carried out exactly, or refused if the kernel changed.
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Take over unowned objects in the way instead of stopping.
        #[arg(long)]
        adopt: bool,
        /// Print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: exit 2 when there are changes to make.
        #[arg(long, requires = "dry_run")]
        detailed_exitcode: bool,
        #[command(flatten)]
        view: ViewArgs,
        /// Then run the file's `expect` list (exit 1 if one fails).
        #[arg(long, conflicts_with = "dry_run")]
        check: bool,
        /// Undo the apply if it fails half way (a change refused, a failed
        /// read-back) or, with --check, if an expectation fails: restore
        /// the state found at the start, and read it back.
        #[arg(long, conflicts_with = "dry_run")]
        atomic: bool,
        /// Apply, then wait SECONDS for Enter (on a terminal) or `netloom
        /// confirm FILE`; undo the apply without one (exit 1). Implies --atomic.
        #[arg(long, value_name = "SECONDS", value_parser = seconds, conflicts_with = "dry_run")]
        confirm: Option<f64>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Restore the state found at the start of the topology's last changing
    /// run (apply, destroy, a watch repair), then read it back and verify.
    Rollback {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        view: ViewArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Keep the changes of an `apply --confirm` waiting on this topology
    /// (exit 1 if none is waiting).
    Confirm {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Run the file's `expect` list with real traffic from inside the pods.
    Check {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Seconds each check may take.
        #[arg(long, default_value_t = DEFAULT_CHECK_TIMEOUT, value_parser = seconds)]
        timeout: f64,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Walk a packet from pod FROM to TO (a pod or an address) through the
    /// live kernel, hop by hop.
    Path {
        /// The topology file (`-` reads standard input).
        file: String,
        /// The pod the packet starts in.
        from: String,
        /// A pod (its first IPv4 address, else its first IPv6 one) or an address.
        to: String,
        /// With --probe: a TCP handshake on this port instead of an ICMP echo.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// Also send one real packet and say whether it agrees with the walk.
        #[arg(long)]
        probe: bool,
        /// Seconds the probe may take.
        #[arg(long, default_value_t = DEFAULT_CHECK_TIMEOUT, value_parser = seconds)]
        timeout: f64,
        #[command(flatten)]
        kernel: KernelArgs,
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
        #[command(flatten)]
        view: ViewArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Desired vs live, object by object: in sync, drifted, missing, extra.
    Status {
        /// The topology file (`-` reads standard input).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        /// List every object, in sync or not (default: only what differs).
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run a command inside one of the topology's pods or lab hosts;
    /// without a command, an interactive shell ($SHELL, else /bin/sh).
    /// Exits with the command's code; 126 not executable, 127 not found,
    /// 128+N killed by signal N, 125 netloom's own failure.
    Exec {
        /// The topology file.
        file: String,
        /// The pod (or, without --host, a lab host).
        pod: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Apply, then keep the kernel matching the file: re-apply when it
    /// changes, repair drift as it happens. Runs until SIGINT/SIGTERM.
    Watch {
        /// The topology file (a path: it is watched, through symlinks).
        file: String,
        #[command(flatten)]
        kernel: KernelArgs,
        /// Seconds between full resyncs, the safety net for changes that
        /// send no kernel event.
        #[arg(long, value_name = "SECONDS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..))]
        resync: u64,
        /// Serve Prometheus metrics (/metrics) and health (/healthz) on
        /// this address, e.g. 127.0.0.1:9211.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
        /// Log lines as text, or as one JSON object each (for log shippers).
        #[arg(long, value_enum, default_value_t)]
        log_format: LogFormat,
        /// On SIGINT/SIGTERM, destroy the topology before exiting (by
        /// default the network stays).
        #[arg(long)]
        destroy_on_exit: bool,
    },
    /// Print the JSON Schema of the topology file format.
    Schema,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `netloom man > netloom.1`.
    Man {
        /// Instead, write one page per command into DIR (netloom.1,
        /// netloom-apply.1, ...), making DIR if need be.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// How human output shows a plan or a run.
#[derive(Clone, Copy, Debug, Args)]
pub struct ViewArgs {
    /// List every kernel object instead of grouping by the file's objects.
    #[arg(long)]
    pub objects: bool,
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
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    #[default]
    Dot,
    Mermaid,
    /// An SVG picture, laid out by netloom itself.
    Svg,
}

/// How long one check (or a `path --probe`) may take, in seconds.
const DEFAULT_CHECK_TIMEOUT: f64 = 3.0;

/// The time each expectation of `apply --check` may take.
fn check_timeout() -> Duration {
    Duration::from_secs_f64(DEFAULT_CHECK_TIMEOUT)
}

/// A positive number of seconds, at most an hour.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!(
            "`{text}` is not a number of seconds between 0 and 3600"
        )),
    }
}

/// Parses the arguments; a usage error exits 64, help and version 0.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|err| {
        let _ = err.print();
        if err.use_stderr() {
            exit::usage()
        } else {
            exit::success()
        }
    })
}

impl Cli {
    /// How the command wants its logs (`watch` has its own flag).
    pub fn log_style(&self) -> crate::logging::Style {
        match &self.command {
            Command::Watch { log_format, .. } => crate::logging::Style {
                json: *log_format == LogFormat::Json,
                watch: true,
            },
            _ => crate::logging::Style::default(),
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { file, output } => validate::run(&file, output),
        Command::Graph {
            file,
            format,
            objects,
            host,
        } => graph::run(&file, format, objects, host),
        Command::Plan {
            file,
            kernel,
            adopt,
            detailed_exitcode,
            out,
            view,
            output,
        } => plan::run(
            &file,
            &kernel,
            adopt,
            plan::PlanArgs {
                detailed_exitcode,
                out,
            },
            view,
            output,
        ),
        Command::Apply {
            file,
            kernel,
            adopt,
            dry_run,
            detailed_exitcode,
            view,
            check,
            atomic,
            confirm,
            output,
        } => apply::run(
            &file,
            &kernel,
            adopt,
            check,
            apply::Transaction {
                atomic,
                confirm: confirm.map(Duration::from_secs_f64),
            },
            apply::RunView {
                dry_run,
                detailed_exitcode,
                view,
                output,
            },
        ),
        Command::Rollback {
            file,
            kernel,
            view,
            output,
        } => rollback::run(&file, &kernel, view, output),
        Command::Confirm { file, kernel } => confirm::run(&file, &kernel),
        Command::Check {
            file,
            kernel,
            timeout,
            output,
        } => check::run(&file, &kernel, Duration::from_secs_f64(timeout), output),
        Command::Path {
            file,
            from,
            to,
            port,
            probe,
            timeout,
            kernel,
            output,
        } => {
            let args = path::PathArgs {
                from: &from,
                to: &to,
                port,
                probe,
                timeout: Duration::from_secs_f64(timeout),
            };
            path::run(&file, &args, &kernel, output)
        }
        Command::Destroy {
            file,
            name,
            kernel,
            dry_run,
            view,
            output,
        } => destroy::run(
            file.as_deref(),
            name.as_deref(),
            &kernel,
            apply::RunView {
                dry_run,
                detailed_exitcode: false,
                view,
                output,
            },
        ),
        Command::Status {
            file,
            kernel,
            all,
            output,
        } => status::run(&file, &kernel, all, output),
        Command::Exec {
            file,
            pod,
            command,
            kernel,
        } => exec::run(&file, &pod, &command, &kernel),
        Command::Watch {
            file,
            kernel,
            resync,
            metrics,
            log_format: _,
            destroy_on_exit,
        } => watch::run(
            watch::WatchArgs {
                file,
                resync: Duration::from_secs(resync),
                metrics,
                destroy_on_exit,
            },
            &kernel,
        ),
        Command::Schema => schema::run(),
        Command::Completions { shell } => completions::run(shell),
        Command::Man { dir } => man::run(dir.as_deref()),
    }
}

impl KernelArgs {
    /// The engine these flags ask for: `--host` decides the mode here,
    /// and only here.
    fn engine(&self, adopt: bool) -> Result<Engine, EngineError> {
        self.engine_in(Mode::from_host_flag(self.host.clone()), adopt)
    }

    /// The engine for a mode decided elsewhere (a saved plan's).
    fn engine_in(&self, mode: Mode, adopt: bool) -> Result<Engine, EngineError> {
        Engine::new(Options {
            mode,
            adopt,
            state_dir: self.state_dir.clone(),
            lock_timeout: Duration::from_secs(self.lock_timeout),
        })
    }
}

/// Runs one async slice of the pipeline on a single-threaded runtime:
/// netlink is I/O bound and the kernel serialises most writes anyway.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

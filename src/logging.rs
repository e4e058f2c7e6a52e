//! Logs go to stderr through tracing; `-v`/`-q` move the level. Colour
//! only on a terminal, and never with NO_COLOR (https://no-color.org).

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The target of `watch`'s one line per reconcile.
pub const WATCH_TARGET: &str = "netloom::watch";

/// How a command wants its logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// One JSON object per line, for log shippers (`watch --log-format json`).
    pub json: bool,
    /// `watch`: its per-reconcile lines show at the default level too.
    pub watch: bool,
}

/// Warnings by default; `-v` info, `-vv` debug (phases, namespaces),
/// `-vvv` trace (each request); `-q` errors only, `-qq` nothing.
pub fn init(verbose: u8, quiet: u8, style: Style) {
    let level = match 2 + i16::from(verbose) - i16::from(quiet) {
        ..=0 => return,
        1 => Level::ERROR,
        2 => Level::WARN,
        3 => Level::INFO,
        4 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let mut filter = Targets::new().with_default(level);
    if style.watch {
        // Levels order by verbosity: the larger is the more verbose.
        filter = filter.with_target(WATCH_TARGET, level.max(Level::INFO));
    }
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    if style.json {
        registry.with(layer.json().flatten_event(true)).init();
    } else {
        registry.with(layer).init();
    }
}

/// Whether what netloom writes to stderr may be coloured.
pub fn colour_on_stderr() -> bool {
    colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    )
}

/// Colour needs a terminal, and NO_COLOR set to anything but "" turns it off.
fn colour_allowed(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour_allowed;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some("".into())));
        assert!(!colour_allowed(true, Some("1".into())));
        assert!(!colour_allowed(false, None));
    }
}

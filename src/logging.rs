//! Logs go to stderr through tracing; `-v`/`-q` move the level. Colour
//! only on a terminal, and never with NO_COLOR (https://no-color.org).

use std::io::IsTerminal;

use tracing::Level;

/// Warnings by default; `-v` info, `-vv` debug (phases, namespaces),
/// `-vvv` trace (each request); `-q` errors only, `-qq` nothing.
pub fn init(verbose: u8, quiet: u8) {
    let level = match 2 + i16::from(verbose) - i16::from(quiet) {
        ..=0 => None,
        1 => Some(Level::ERROR),
        2 => Some(Level::WARN),
        3 => Some(Level::INFO),
        4 => Some(Level::DEBUG),
        _ => Some(Level::TRACE),
    };
    if let Some(level) = level {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_ansi(colour_on_stderr())
            .with_target(false)
            .init();
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

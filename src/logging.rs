//! Logs go to stderr through tracing; `-v`/`-q` move the level.

use tracing::Level;

/// Warnings by default; each `-v` adds a level, each `-q` removes one.
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
            .with_target(false)
            .init();
    }
}

//! SIGINT and SIGTERM during `apply` and `destroy` (docs/CLI.md): the
//! first cancels the engine's stop token, so that no new change starts and
//! those under way finish and are recorded; a second stops at once, as a
//! kill would (the journal lets the next run recover).
//!
//! The signals are awaited on a thread of their own: the run's thread may
//! be blocked (waiting for the state dir's lock) when one arrives.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// A signal that stops a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// 128+N, as shells report a process that signal N stopped.
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from((128 + self.number()) as u8)
    }

    fn number(self) -> i32 {
        match self {
            StopSignal::Interrupt => libc::SIGINT,
            StopSignal::Terminate => libc::SIGTERM,
        }
    }
}

/// Listens for SIGINT and SIGTERM for the rest of the process.
pub struct Interrupt {
    stop: CancellationToken,
    received: Arc<OnceLock<StopSignal>>,
}

impl Interrupt {
    /// Starts listening; `verb` (`apply`, `destroy`) names the run in what
    /// is said on a signal.
    pub fn listen(verb: &'static str) -> std::io::Result<Interrupt> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered before returning: from here on a signal is ours.
        let (mut interrupt, mut terminate) = runtime.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })?;
        let stop = CancellationToken::new();
        let received = Arc::new(OnceLock::new());
        let (token, first) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            runtime.block_on(async move {
                loop {
                    let signal = tokio::select! {
                        _ = interrupt.recv() => StopSignal::Interrupt,
                        _ = terminate.recv() => StopSignal::Terminate,
                    };
                    let name = signal.name();
                    if first.set(signal).is_ok() {
                        eprintln!(
                            "{name}: stopping once the changes under way are done (again to stop at once)"
                        );
                        token.cancel();
                    } else {
                        eprintln!(
                            "{name} again: stopping now; the next `netloom {verb}` recovers and finishes it"
                        );
                        std::process::exit(128 + signal.number());
                    }
                }
            })
        });
        Ok(Interrupt { stop, received })
    }

    /// The token the engine stops on.
    pub fn stop(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// The first signal, if one came.
    pub fn received(&self) -> Option<StopSignal> {
        self.received.get().copied()
    }
}

//! Real traffic from inside a namespace: an ICMP echo, a TCP handshake, and
//! a temporary TCP listener for a target where nothing listens.
//!
//! A socket belongs for its whole life to the network namespace of the
//! thread that opened it. So every probe is in two steps: `open` runs on a
//! thread already in the namespace (a namespace worker: the caller provides
//! it), and the exchange that waits (`echo`, `handshake`) runs on any
//! thread, so that a slow check does not hold the namespace's worker and
//! checks from one pod can run side by side.

pub mod icmp;
pub mod listener;
pub mod run;
pub mod tcp;

use std::fmt;
use std::io;

pub use icmp::EchoSocket;
pub use listener::Listener;
pub use tcp::TcpProbe;

/// Why a probe got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No route to the target (ENETUNREACH).
    NoRoute,
    /// The target answered with a reset: nothing listens on that port.
    Refused,
    /// No answer in time.
    TimedOut,
    /// The target or its network is unreachable (EHOSTUNREACH: no neighbour
    /// answered, or a router said so).
    Unreachable,
    /// The pod the traffic starts in has no namespace here: nothing was
    /// sent, so this proves nothing, not even `reach: false`.
    NotApplied { namespace: String },
    /// Anything else the kernel said.
    Error(String),
}

impl Failure {
    /// The failure an error of a send, receive or connect stands for.
    pub fn from_io(err: &io::Error) -> Failure {
        match err.raw_os_error() {
            Some(libc::ENETUNREACH) => Failure::NoRoute,
            Some(libc::ECONNREFUSED) => Failure::Refused,
            Some(libc::EHOSTUNREACH | libc::EHOSTDOWN) => Failure::Unreachable,
            Some(libc::ETIMEDOUT) => Failure::TimedOut,
            _ if err.kind() == io::ErrorKind::TimedOut => Failure::TimedOut,
            _ => Failure::Error(err.to_string()),
        }
    }

    /// The short name used in tables and JSON (`no-route`, `refused`...).
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::NoRoute => "no-route",
            Failure::Refused => "refused",
            Failure::TimedOut => "timed-out",
            Failure::Unreachable => "unreachable",
            Failure::NotApplied { .. } => "not-applied",
            Failure::Error(_) => "error",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoRoute => f.write_str("no route"),
            Failure::Refused => f.write_str("refused"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Unreachable => f.write_str("unreachable"),
            Failure::NotApplied { namespace } => write!(
                f,
                "not applied: no namespace `{namespace}` (run `netloom apply` first)"
            ),
            Failure::Error(message) => f.write_str(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_map_to_the_reasons_users_read() {
        let errno = io::Error::from_raw_os_error;
        assert_eq!(
            Failure::from_io(&errno(libc::ENETUNREACH)),
            Failure::NoRoute
        );
        assert_eq!(
            Failure::from_io(&errno(libc::ECONNREFUSED)),
            Failure::Refused
        );
        assert_eq!(
            Failure::from_io(&errno(libc::EHOSTUNREACH)),
            Failure::Unreachable
        );
        assert_eq!(Failure::from_io(&errno(libc::ETIMEDOUT)), Failure::TimedOut);
        assert_eq!(
            Failure::from_io(&io::Error::from(io::ErrorKind::TimedOut)),
            Failure::TimedOut
        );
        assert!(matches!(
            Failure::from_io(&errno(libc::EPERM)),
            Failure::Error(_)
        ));
        assert_eq!(Failure::NoRoute.to_string(), "no route");
        assert_eq!(Failure::TimedOut.reason(), "timed-out");
    }
}

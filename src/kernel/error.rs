//! Errors of kernel operations: what was attempted, and why the kernel said no.
//!
//! rtnetlink 0.24 reports a kernel refusal as `rtnetlink::Error::NetlinkError(ErrorMessage)`;
//! `ErrorMessage::code` holds the *negative* errno (`-17` for EEXIST) and
//! `ErrorMessage::to_io()` turns it into an `io::Error` (kind `AlreadyExists`,
//! `raw_os_error() == Some(17)`). The kernel's extack text is not kept.
//! `rtnetlink::Error::RequestFailed` means the connection task is gone.

use std::{fmt, io};

/// A kernel operation that failed: `op` says what was attempted ("create bridge
/// br0 in netns pod1"), `source` is the errno (or the I/O error) behind it.
#[derive(Debug)]
pub struct KernelError {
    pub op: String,
    pub source: io::Error,
}

pub type Result<T> = std::result::Result<T, KernelError>;

impl KernelError {
    /// The errno, when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno() {
            Some(errno) => write!(f, "{}: {}", self.op, explain(errno, &self.source)),
            None => write!(f, "{}: {}", self.op, self.source),
        }
    }
}

impl std::error::Error for KernelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A short explanation of the errnos netlink writes commonly return, in the
/// words of the operation rather than of the syscall.
fn explain(errno: i32, source: &io::Error) -> String {
    let why = match errno {
        libc::EEXIST => "it already exists",
        libc::ENODEV => "no such interface",
        libc::ENOENT => "no such object",
        libc::ESRCH => "no such route",
        libc::EADDRNOTAVAIL => "no such address on that interface",
        libc::EBUSY => "resource busy (name or index in use, or a dump already running)",
        libc::EINVAL => "the kernel rejected a value (bad MTU, bad combination, ...)",
        libc::ERANGE => "a value is out of range (e.g. an interface name over 15 bytes)",
        libc::ENETUNREACH => "the gateway is not reachable from any interface",
        libc::ENOTCONN => "the device cannot be brought up yet",
        libc::EPERM => "permission denied (needs CAP_NET_ADMIN)",
        // Root gets EACCES from netlink when the object's own settings
        // forbid the change, not for lack of a capability (that is EPERM).
        libc::EACCES => "refused by the interface's settings (e.g. IPv6 disabled on it)",
        libc::EOPNOTSUPP => "not supported by this kernel or device",
        _ => return source.to_string(),
    };
    format!("{why} ({source})")
}

/// Turns an rtnetlink error into an `io::Error` carrying the errno.
pub fn to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        rtnetlink::Error::RequestFailed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "netlink connection closed")
        }
        other => io::Error::other(other.to_string()),
    }
}

/// Attaches the description of the attempted operation to an error.
pub trait Context<T> {
    fn op(self, describe: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, rtnetlink::Error> {
    fn op(self, describe: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| KernelError {
            op: describe(),
            source: to_io(e),
        })
    }
}

impl<T> Context<T> for io::Result<T> {
    fn op(self, describe: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| KernelError {
            op: describe(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::ErrorMessage;

    use super::*;

    fn netlink_error(errno: i32) -> rtnetlink::Error {
        let mut msg = ErrorMessage::default();
        msg.code = NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(msg)
    }

    #[test]
    fn eexist_is_mapped_to_a_clear_message() {
        let err = Err::<(), _>(netlink_error(libc::EEXIST))
            .op(|| "create bridge br0".into())
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert_eq!(err.source.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            err.to_string(),
            "create bridge br0: it already exists (File exists (os error 17))"
        );
    }

    #[test]
    fn enodev_keeps_its_errno() {
        let err = Err::<(), _>(netlink_error(libc::ENODEV))
            .op(|| "set mtu of ifindex 99".into())
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENODEV));
        assert!(
            err.to_string()
                .starts_with("set mtu of ifindex 99: no such interface")
        );
    }

    #[test]
    fn eacces_is_not_called_a_missing_capability() {
        let err = Err::<(), _>(netlink_error(libc::EACCES))
            .op(|| "add address fd00::1/64 to ifindex 2".into())
            .unwrap_err();
        assert!(!err.to_string().contains("CAP_NET_ADMIN"), "{err}");
        assert!(err.to_string().contains("IPv6 disabled"), "{err}");
    }

    #[test]
    fn closed_connection_has_no_errno() {
        let err = Err::<(), _>(rtnetlink::Error::RequestFailed)
            .op(|| "dump links".into())
            .unwrap_err();
        assert_eq!(err.errno(), None);
        assert_eq!(err.to_string(), "dump links: netlink connection closed");
    }
}

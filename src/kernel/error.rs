//! Errors of kernel operations: what was attempted, and why the kernel said no.
//!
//! rtnetlink 0.24 reports a kernel refusal as `rtnetlink::Error::NetlinkError(ErrorMessage)`;
//! `ErrorMessage::code` holds the *negative* errno (`-17` for EEXIST) and
//! `ErrorMessage::to_io()` turns it into an `io::Error` (kind `AlreadyExists`,
//! `raw_os_error() == Some(17)`). What the kernel said besides (its extended
//! ack) is in the rest of the message: see `extack`.
//! `rtnetlink::Error::RequestFailed` means the connection task is gone.

use std::{fmt, io};

use super::extack::ExtAck;

/// A kernel operation that failed: `op` says what was attempted ("create bridge
/// br0 in netns pod1"), `source` is the errno (or the I/O error) behind it,
/// `ack` what the kernel said about it (boxed: errors travel in every
/// `Result` of the engine, and are rare).
#[derive(Debug)]
pub struct KernelError {
    pub op: String,
    pub source: io::Error,
    pub ack: Option<Box<ExtAck>>,
}

pub type Result<T> = std::result::Result<T, KernelError>;

impl KernelError {
    pub fn new(op: String, source: io::Error) -> KernelError {
        KernelError {
            op,
            source,
            ack: None,
        }
    }

    /// The errno, when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ack = self.ack.as_ref();
        let attribute = ack.and_then(|a| a.attribute.as_ref());
        let message = ack.and_then(|a| a.message.as_deref());
        write!(f, "{}: ", self.op)?;
        let explained = match (attribute, self.errno()) {
            (Some(attribute), _) => {
                write!(
                    f,
                    "the kernel rejected {} = {}",
                    attribute.name, attribute.value
                )?;
                true
            }
            (None, Some(libc::EMFILE)) => {
                write!(f, "{}", open_file_limit_hit())?;
                true
            }
            (None, Some(errno)) => match explain(errno, message.is_some()) {
                Some(why) => {
                    write!(f, "{why}")?;
                    true
                }
                None => false,
            },
            (None, None) => false,
        };
        if let Some(message) = message {
            write!(f, "{}{message}", if explained { ": " } else { "" })?;
        }
        if let Some(missing) = ack.and_then(|a| a.missing.as_deref()) {
            write!(f, " (it needs {missing})")?;
        }
        if explained || message.is_some() {
            write!(f, " ({})", self.source)
        } else {
            write!(f, "{}", self.source)
        }
    }
}

impl std::error::Error for KernelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A short explanation of the errnos netlink writes commonly return, in the
/// words of the operation rather than of the syscall. `kernel_says`: the
/// kernel's own sentence follows, so no guess at the cause is needed.
/// Which limit EMFILE means, its value, and how to raise it: netloom holds
/// a few descriptors for every namespace it works in.
fn open_file_limit_hit() -> String {
    use nix::sys::resource::{Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => {
            format!("the open-file limit (RLIMIT_NOFILE = {soft}) was hit: raise it (`ulimit -n`)")
        }
        Err(_) => "the open-file limit (RLIMIT_NOFILE) was hit: raise it (`ulimit -n`)".into(),
    }
}

fn explain(errno: i32, kernel_says: bool) -> Option<&'static str> {
    Some(match errno {
        libc::EEXIST => "it already exists",
        libc::ENODEV => "no such interface",
        libc::ENOENT => "no such object",
        libc::ESRCH => "no such route",
        libc::EADDRNOTAVAIL => "no such address on that interface",
        libc::EBUSY => "resource busy (name or index in use, or a dump already running)",
        libc::EINVAL if kernel_says => "the kernel rejected a value",
        libc::EINVAL => "the kernel rejected a value (bad MTU, bad combination, ...)",
        libc::ERANGE => "a value is out of range (e.g. an interface name over 15 bytes)",
        libc::ENETUNREACH => "the gateway is not reachable from any interface",
        libc::ENOTCONN => "the device cannot be brought up yet",
        libc::EPERM => "permission denied (needs CAP_NET_ADMIN)",
        // Root gets EACCES from netlink when the object's own settings
        // forbid the change, not for lack of a capability (that is EPERM).
        libc::EACCES => "refused by the interface's settings (e.g. IPv6 disabled on it)",
        libc::EOPNOTSUPP => "not supported by this kernel or device",
        libc::ENFILE => "the system-wide open-file limit (fs.file-max) was hit",
        _ => return None,
    })
}

/// Turns an rtnetlink error into an `io::Error` carrying the errno, and
/// what the kernel said about it. No variant is shown as a struct dump.
fn to_io(err: rtnetlink::Error) -> (io::Error, Option<Box<ExtAck>>) {
    use rtnetlink::Error as E;
    let other = |text: &str| io::Error::new(io::ErrorKind::InvalidData, text.to_string());
    match err {
        E::NetlinkError(msg) => (msg.to_io(), ExtAck::parse(&msg.header).map(Box::new)),
        E::RequestFailed => (
            io::Error::new(io::ErrorKind::BrokenPipe, "netlink connection closed"),
            None,
        ),
        E::UnexpectedMessage(_) => (
            other("the kernel answered with an unexpected message"),
            None,
        ),
        E::NamespaceError(text) => (io::Error::other(text), None),
        E::InvalidHardwareAddress(_) => (other("the kernel sent an invalid MAC address"), None),
        E::InvalidIp(_) | E::InvalidAddress(..) => {
            (other("the kernel sent an invalid IP address"), None)
        }
        E::InvalidNla(text) => (io::Error::other(format!("invalid attribute: {text}")), None),
    }
}

/// Attaches the description of the attempted operation to an error.
pub trait Context<T> {
    fn op(self, describe: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, rtnetlink::Error> {
    fn op(self, describe: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| {
            let (source, ack) = to_io(e);
            KernelError {
                op: describe(),
                source,
                ack,
            }
        })
    }
}

impl<T> Context<T> for io::Result<T> {
    fn op(self, describe: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| KernelError::new(describe(), source))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::ErrorMessage;

    use super::*;
    use crate::kernel::extack::tests as extack;

    fn netlink_error(errno: i32) -> rtnetlink::Error {
        with_ack(errno, Vec::new())
    }

    /// A refusal whose payload after the errno is `payload`.
    fn with_ack(errno: i32, payload: Vec<u8>) -> rtnetlink::Error {
        let mut msg = ErrorMessage::default();
        msg.code = NonZeroI32::new(-errno);
        msg.header = payload;
        rtnetlink::Error::NetlinkError(msg)
    }

    #[test]
    fn a_rejected_value_is_named_with_the_kernels_words() {
        let payload = extack::payload(
            16,
            16,
            &extack::link_request(),
            &[
                extack::message("mtu greater than device maximum"),
                extack::offset(44),
            ],
        );
        let err = Err::<(), _>(with_ack(libc::EINVAL, payload))
            .op(|| "set mtu 70000 on eth0".into())
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert_eq!(
            err.to_string(),
            "set mtu 70000 on eth0: the kernel rejected IFLA_MTU = 70000: \
             mtu greater than device maximum (Invalid argument (os error 22))"
        );
    }

    #[test]
    fn the_kernels_words_replace_the_guess() {
        let payload = extack::payload(
            24,
            12,
            &[],
            &[extack::message("Nexthop has invalid gateway")],
        );
        let err = Err::<(), _>(with_ack(libc::EINVAL, payload))
            .op(|| "add route 10.96.0.0/12 via 10.0.0.255".into())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "add route 10.96.0.0/12 via 10.0.0.255: the kernel rejected a value: \
             Nexthop has invalid gateway (Invalid argument (os error 22))"
        );
        // An errno without an explanation of its own.
        let payload = extack::payload(16, 16, &[], &[extack::message("the reason")]);
        let err = Err::<(), _>(with_ack(libc::ENOSPC, payload))
            .op(|| "create veth a".into())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "create veth a: the reason (No space left on device (os error 28))"
        );
    }

    #[test]
    fn no_error_is_a_struct_dump() {
        let unexpected =
            rtnetlink::Error::UnexpectedMessage(netlink_packet_core::NetlinkMessage::from(
                netlink_packet_route::RouteNetlinkMessage::NewLink(Default::default()),
            ));
        let err = Err::<(), _>(unexpected)
            .op(|| "dump links".into())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dump links: the kernel answered with an unexpected message"
        );
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

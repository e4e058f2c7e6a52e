//! An ICMP echo made by netloom itself, not a spawned `ping`.
//!
//! It first tries the unprivileged ICMP socket (`SOCK_DGRAM` with
//! `IPPROTO_ICMP`/`IPPROTO_ICMPV6`), which the kernel allows to the groups in
//! `net.ipv4.ping_group_range`; a namespace starts with that range empty
//! ("1 0"), so netloom (root) usually falls back to a raw socket, which
//! needs CAP_NET_RAW. Either way the socket is connected to the target, so
//! the kernel hands it only what comes from there (a raw socket) and reports
//! the ICMP errors about its echoes (host unreachable) as receive errors.
//! Replies are checked against the request: identifier, sequence number
//! and payload.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use super::Failure;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// While no reply came, a new request (next sequence number) goes out after
/// this, then after twice as long each time: one lost to a neighbour that
/// was being resolved, or sent before an address was usable, does not fail
/// the check, and a router answering each with an ICMP error is not pushed
/// into its rate limit (which would turn "no route" into "timed out").
const FIRST_RESEND: Duration = Duration::from_millis(250);
/// Large enough for any reply to our small requests, IPv4 header included.
const RECEIVE_BUFFER: usize = 1500;

/// Which kind of ICMP socket an echo went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// The unprivileged ICMP socket: the kernel sets the identifier and the
    /// checksums, and delivers only replies with that identifier.
    Datagram,
    /// A raw socket: every ICMP packet from the target arrives (IPv4 ones
    /// with their IP header), to be matched here.
    Raw,
}

/// An ICMP socket connected to one target.
pub struct EchoSocket {
    socket: Socket,
    kind: SocketKind,
    target: IpAddr,
    /// The echo identifier: the socket's port (datagram) or one of ours (raw).
    id: u16,
}

impl EchoSocket {
    /// Opens an ICMP socket towards `target` in the calling thread's
    /// network namespace: run it on a thread inside the pod. Connecting it
    /// already fails without a route.
    pub fn open(target: IpAddr) -> Result<EchoSocket, Failure> {
        EchoSocket::connect(target).map_err(|err| Failure::from_io(&err))
    }

    fn connect(target: IpAddr) -> io::Result<EchoSocket> {
        let (domain, protocol) = match target {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(socket) => (socket, SocketKind::Datagram),
            // Outside ping_group_range (EACCES), or a kernel without ICMP sockets.
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EPROTONOSUPPORT)
                ) =>
            {
                (
                    Socket::new(domain, Type::RAW, Some(protocol))?,
                    SocketKind::Raw,
                )
            }
            Err(err) => return Err(err),
        };
        // Without IP_RECVERR the kernel reports to an ICMP socket only the
        // "fatal" errors (port unreachable): a router's net or host
        // unreachable would read as a timeout.
        match target {
            IpAddr::V4(_) => setsockopt(&socket, sockopt::Ipv4RecvErr, &true)?,
            IpAddr::V6(_) => setsockopt(&socket, sockopt::Ipv6RecvErr, &true)?,
        }
        socket.connect(&SocketAddr::new(target, 0).into())?;
        let id = match kind {
            // Connecting bound the socket: its port is the identifier the
            // kernel puts in every request.
            SocketKind::Datagram => socket
                .local_addr()?
                .as_socket()
                .map(|local| local.port())
                .ok_or_else(|| io::Error::other("an ICMP socket without a local address"))?,
            SocketKind::Raw => raw_identifier(),
        };
        Ok(EchoSocket {
            socket,
            kind,
            target,
            id,
        })
    }

    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// Sends echo requests until one is answered or `timeout` has passed;
    /// returns the round trip of the answered request. Runs on any thread.
    /// A failure is the last error the kernel reported (no route,
    /// unreachable), else "timed out".
    pub fn echo(&self, timeout: Duration) -> Result<Duration, Failure> {
        let deadline = Instant::now() + timeout;
        let payload = nonce();
        let mut sent: Vec<(u16, Instant)> = Vec::new();
        let mut last_error = None;
        let mut buffer = [0u8; RECEIVE_BUFFER];
        let mut resend_after = FIRST_RESEND;
        while Instant::now() < deadline {
            let sequence = sent.len() as u16 + 1;
            let request = echo_request(self.target.is_ipv6(), self.id, sequence, &payload);
            // Taken before the send: between namespaces of one machine the
            // kernel may deliver the echo and queue its answer inside `send`.
            let sent_at = Instant::now();
            match self.socket.send(&request) {
                Ok(_) => sent.push((sequence, sent_at)),
                // Kept until the deadline: a route or address may not be
                // usable yet right after an apply.
                Err(err) => last_error = Some(Failure::from_io(&err)),
            }
            let resend_at = (Instant::now() + resend_after).min(deadline);
            resend_after *= 2;
            loop {
                let wait = resend_at.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break;
                }
                self.socket
                    .set_read_timeout(Some(wait))
                    .map_err(|err| Failure::from_io(&err))?;
                match (&self.socket).read(&mut buffer) {
                    Ok(len) => {
                        let reply = parse_reply(&buffer[..len], self.target, self.kind);
                        let answered = reply
                            .filter(|r| r.id == self.id && r.payload == payload)
                            .and_then(|r| sent.iter().find(|(seq, _)| *seq == r.sequence));
                        if let Some((_, at)) = answered {
                            return Ok(at.elapsed());
                        }
                    }
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    // An ICMP error about one of our requests.
                    Err(err) => last_error = Some(Failure::from_io(&err)),
                }
            }
        }
        Err(last_error.unwrap_or(Failure::TimedOut))
    }
}

/// Identifiers for raw echoes: distinct per process and per echo, so that
/// concurrent checks (each of whose raw sockets sees every reply from its
/// target) never take each other's replies.
fn raw_identifier() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A payload no other echo carries: the reply must bring it back.
fn nonce() -> [u8; 16] {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut payload = [0u8; 16];
    payload[..8].copy_from_slice(&nanos.to_be_bytes());
    payload[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    payload[12..14].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    payload
}

/// An echo request: type, code, checksum, identifier, sequence, payload.
/// The IPv4 checksum is computed here (a raw socket sends it as is); for
/// ICMPv6 the kernel always computes it (it covers a pseudo-header).
fn echo_request(ipv6: bool, id: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let kind = if ipv6 {
        ECHO_REQUEST_V6
    } else {
        ECHO_REQUEST_V4
    };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(payload);
    if !ipv6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo reply's identifying fields.
#[derive(Debug, PartialEq, Eq)]
struct Reply<'a> {
    id: u16,
    sequence: u16,
    payload: &'a [u8],
}

/// Reads an echo reply from what a socket of `kind` received; anything
/// else (another ICMP type, an IPv4 packet from elsewhere) is `None`.
fn parse_reply(received: &[u8], target: IpAddr, kind: SocketKind) -> Option<Reply<'_>> {
    let (icmp, reply_type) = match (target, kind) {
        (IpAddr::V4(target), SocketKind::Raw) => {
            // A raw IPv4 socket gets the IP header too: skip it, after
            // checking the packet came from the target.
            let header_len = usize::from(received.first()? & 0x0f) * 4;
            let source: [u8; 4] = received.get(12..16)?.try_into().ok()?;
            if source != target.octets() {
                return None;
            }
            (received.get(header_len..)?, ECHO_REPLY_V4)
        }
        (IpAddr::V4(_), SocketKind::Datagram) => (received, ECHO_REPLY_V4),
        (IpAddr::V6(_), _) => (received, ECHO_REPLY_V6),
    };
    if icmp.len() < 8 || icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    Some(Reply {
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        sequence: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: &icmp[8..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_request_carries_a_valid_checksum() {
        let request = echo_request(false, 0x1234, 7, b"abcd");
        assert_eq!(&request[..2], &[ECHO_REQUEST_V4, 0]);
        assert_eq!(&request[4..8], &[0x12, 0x34, 0, 7]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&request), 0);
        // An odd length is padded with a zero byte.
        let odd = echo_request(false, 1, 1, b"abc");
        assert_eq!(checksum(&odd), 0);
    }

    #[test]
    fn an_ipv6_request_leaves_the_checksum_to_the_kernel() {
        let request = echo_request(true, 1, 2, b"xy");
        assert_eq!(
            request,
            vec![ECHO_REQUEST_V6, 0, 0, 0, 0, 1, 0, 2, b'x', b'y']
        );
    }

    /// A reply as a raw IPv4 socket sees it: a 20-byte IP header first.
    fn raw_v4_reply(source: [u8; 4], icmp: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        packet.extend_from_slice(&source);
        packet.extend_from_slice(&[10, 0, 0, 2]);
        packet.extend_from_slice(icmp);
        packet
    }

    #[test]
    fn replies_are_matched_by_type_source_identifier_and_sequence() {
        let target: IpAddr = "10.0.0.1".parse().unwrap();
        let mut icmp = echo_request(false, 9, 3, b"nonce");
        icmp[0] = ECHO_REPLY_V4;
        let reply = Reply {
            id: 9,
            sequence: 3,
            payload: b"nonce",
        };
        assert_eq!(
            parse_reply(&raw_v4_reply([10, 0, 0, 1], &icmp), target, SocketKind::Raw),
            Some(reply)
        );
        assert_eq!(
            parse_reply(&icmp, target, SocketKind::Datagram).map(|r| r.sequence),
            Some(3)
        );
        // From another address.
        assert_eq!(
            parse_reply(&raw_v4_reply([10, 0, 0, 9], &icmp), target, SocketKind::Raw),
            None
        );
        // Our own request, seen by a raw socket pinging itself, is no reply.
        let request = echo_request(false, 9, 3, b"nonce");
        assert_eq!(
            parse_reply(
                &raw_v4_reply([10, 0, 0, 1], &request),
                target,
                SocketKind::Raw
            ),
            None
        );
        // Truncated.
        assert_eq!(parse_reply(&icmp[..6], target, SocketKind::Datagram), None);
    }

    #[test]
    fn ipv6_replies_have_no_ip_header_on_either_socket() {
        let target: IpAddr = "fd00::1".parse().unwrap();
        let mut icmp = echo_request(true, 4, 5, b"p");
        icmp[0] = ECHO_REPLY_V6;
        for kind in [SocketKind::Raw, SocketKind::Datagram] {
            let reply = parse_reply(&icmp, target, kind).expect("a reply");
            assert_eq!((reply.id, reply.sequence, reply.payload), (4, 5, &b"p"[..]));
        }
    }

    #[test]
    fn identifiers_and_payloads_differ_between_echoes() {
        assert_ne!(raw_identifier(), raw_identifier());
        assert_ne!(nonce(), nonce());
    }
}

//! One rtnetlink handle per network namespace.
//!
//! A netlink socket belongs for its whole life to the namespace its thread
//! was in when it was opened. So: on a dedicated thread, enter the namespace,
//! open the connection (with the tokio runtime entered, so the socket
//! registers with its reactor), return; then run the connection task on
//! tokio like any other.

use std::io;

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::Handle;
use rtnetlink::sys::AsyncSocket;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns it: every
/// namespace handle holds a netlink socket, and thousands of pods need
/// thousands of descriptors.
pub fn raise_fd_limit() -> io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Opens an rtnetlink connection in the calling thread's namespace (a
/// namespace worker's), registered with the given tokio runtime. The caller
/// spawns the connection task; every request made through the handle acts
/// in that namespace, and dropping every clone of it closes the socket.
///
/// The socket has `NETLINK_GET_STRICT_CHK` on: the kernel rejects unknown
/// attributes in requests and filters dumps by the header fields it is given
/// (route table, fdb port), like iproute2 does. And `NETLINK_EXT_ACK`, as
/// iproute2 has: a refusal then says why in the kernel's words, and which
/// attribute of the request it was about (see `extack`).
pub fn connect_here(runtime: &tokio::runtime::Handle) -> io::Result<(Connection, Handle)> {
    // The socket registers with the reactor of the runtime entered here.
    let _runtime = runtime.enter();
    let (mut connection, handle, _unsolicited) = rtnetlink::new_connection_with_strict_check()?;
    connection.socket_mut().socket_ref().set_ext_ack(true)?;
    Ok((connection, handle))
}

/// The task that drives one namespace's netlink socket.
pub type Connection = rtnetlink::proto::Connection<RouteNetlinkMessage>;

/// Sends one request with the given netlink flags and collects what the
/// kernel answers: nothing for an acknowledged write, the entries of a dump,
/// the echoed object for a write sent with `NLM_F_ECHO`. A kernel refusal is
/// returned as `rtnetlink::Error::NetlinkError`.
///
/// For requests rtnetlink has no builder for (fdb append, tbf, nsid) or
/// whose answer its builders drop.
pub async fn request(
    handle: &Handle,
    message: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>, rtnetlink::Error> {
    let mut request = NetlinkMessage::from(message);
    request.header.flags = flags;
    let mut responses = handle.clone().request(request)?;
    let mut answer = Vec::new();
    while let Some(response) = responses.next().await {
        match response.payload {
            NetlinkPayload::InnerMessage(inner) => answer.push(inner),
            NetlinkPayload::Error(err) => return Err(rtnetlink::Error::NetlinkError(err)),
            _ => {}
        }
    }
    Ok(answer)
}

/// Runs a dump on a socket of its own, opened in the calling thread's
/// namespace (a namespace worker's), and decodes each message as it
/// arrives: at most one datagram's messages are ever held. Keeps what
/// `decode` makes of each answer (`None`: skipped).
///
/// A dump through a `Handle` is not: its connection task reads the whole
/// answer into its channel before the requester runs, and a host
/// namespace's link dump (a message per pod, each decoded into some
/// thirty attributes) is the largest thing netloom holds at a thousand
/// pods.
pub fn dump_here<T>(
    request: RouteNetlinkMessage,
    mut decode: impl FnMut(RouteNetlinkMessage) -> Option<T>,
) -> io::Result<Vec<T>> {
    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer};
    use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.set_netlink_get_strict_chk(true)?;
    socket.set_ext_ack(true)?;
    let mut message = NetlinkMessage::from(request);
    message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.sequence_number = 1;
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    socket.send(&bytes, 0)?;
    let invalid = |err| io::Error::new(io::ErrorKind::InvalidData, format!("{err}"));
    let mut decoded = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut rest = &datagram[..];
        while !rest.is_empty() {
            let length = NetlinkBuffer::new_checked(rest).map_err(invalid)?.length() as usize;
            let answer = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..length])
                .map_err(invalid)?;
            match answer.payload {
                NetlinkPayload::InnerMessage(inner) => decoded.extend(decode(inner)),
                NetlinkPayload::Done(_) => return Ok(decoded),
                NetlinkPayload::Error(err) => return Err(err.to_io()),
                _ => {}
            }
            // Messages are 4-byte aligned within a datagram.
            rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        }
    }
}

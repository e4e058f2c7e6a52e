//! A temporary TCP listener for a target pod where nothing listens on the
//! checked port: started before the check, stopped after, and proven gone.
//!
//! It never accepts: the kernel completes the handshake of a listening
//! socket by itself (the connection waits in the accept queue), which is
//! all a check needs. Closing the listener resets what is queued.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Room for the handshakes of concurrent checks towards one target.
const BACKLOG: i32 = 128;
/// How long a closed listener may take to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(1);

/// A listening socket netloom started in a pod.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    address: SocketAddr,
}

impl Listener {
    /// Starts listening on `address` in the calling thread's namespace (run
    /// it on a thread inside the target pod), unless something there holds
    /// that port already: then `None`, and the check goes to what is there.
    pub fn start_unless_served(address: SocketAddr) -> io::Result<Option<Listener>> {
        let Some(socket) = bind(address)? else {
            return Ok(None);
        };
        socket.listen(BACKLOG)?;
        Ok(Some(Listener { socket, address }))
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes the listener, then proves the port free again by binding it
    /// (in the calling thread's namespace: run it inside the target pod).
    /// A process forked elsewhere in this one holds a copy of every
    /// descriptor until its exec closes it (they are all close-on-exec), so
    /// the listener may outlive the close for a moment: the proof waits up
    /// to `GONE_WITHIN` for it.
    pub fn stop(self) -> io::Result<()> {
        let address = self.address;
        drop(self.socket);
        let deadline = Instant::now() + GONE_WITHIN;
        while bind(address)?.is_none() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "the temporary listener on {address} is still there after closing it"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

/// A TCP socket bound to `address`, or `None` when the port is taken there
/// (EADDRINUSE: a listener, on that address or the wildcard one, or a bound
/// socket). SO_REUSEADDR, so that connections left in TIME_WAIT by earlier
/// checks do not count.
fn bind(address: SocketAddr) -> io::Result<Option<Socket>> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    match socket.bind(&address.into()) {
        Ok(()) => Ok(Some(socket)),
        Err(err) if err.raw_os_error() == Some(libc::EADDRINUSE) => Ok(None),
        Err(err) => Err(err),
    }
}

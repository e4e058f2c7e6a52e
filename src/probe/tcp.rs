//! A TCP handshake towards a target port, bounded in time.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::Failure;

/// A TCP socket opened in a pod's namespace, not yet connected.
pub struct TcpProbe {
    socket: Socket,
    target: SocketAddr,
}

impl TcpProbe {
    /// Opens the socket in the calling thread's network namespace: run it
    /// on a thread inside the pod.
    pub fn open(target: SocketAddr) -> io::Result<TcpProbe> {
        let socket = Socket::new(
            Domain::for_address(target),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        Ok(TcpProbe { socket, target })
    }

    /// Completes the handshake within `timeout` (on any thread) and returns
    /// how long it took; the connection is closed at once.
    pub fn handshake(self, timeout: Duration) -> Result<Duration, Failure> {
        let started = Instant::now();
        self.socket
            .connect_timeout(&self.target.into(), timeout)
            .map(|()| started.elapsed())
            .map_err(|err| Failure::from_io(&err))
    }
}

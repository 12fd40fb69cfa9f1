//! The publishing socket: one ZeroMQ message per frame on an XPUB socket (a PUB socket that
//! also sees subscriptions, so a caller can wait for its subscribers before sending; to a
//! subscriber it is indistinguishable from the 2013 PUB socket).

use std::time::{Duration, Instant};

use frame_proto::Packet;
use prost::Message;

use crate::GeneratorError;
use crate::run_loop::FrameSink;

/// Default send high-water mark: frames queued per subscriber before PUB drops (about 1,000
/// seconds of a 100-zone host; a subscriber that far behind loses frames, and the archiver
/// counts the gap from the sequence numbers).
pub const DEFAULT_SNDHWM: i32 = 100_000;

/// A bound XPUB socket.
pub struct Publisher {
    socket: zmq::Socket,
    endpoint: String,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("endpoint", &self.endpoint).finish()
    }
}

impl Publisher {
    /// Binds `endpoint` (e.g. `tcp://127.0.0.1:7211`, `inproc://name`).
    pub fn bind(ctx: &zmq::Context, endpoint: &str, sndhwm: i32) -> Result<Self, GeneratorError> {
        let err = |what| move |source| GeneratorError::Zmq { what, endpoint: endpoint.to_owned(), source };
        let socket = ctx.socket(zmq::XPUB).map_err(err("create socket for"))?;
        socket.set_sndhwm(sndhwm).map_err(err("set SNDHWM on"))?;
        // At exit, give queued frames up to 5 s to reach subscribers.
        socket.set_linger(5_000).map_err(err("set LINGER on"))?;
        socket.bind(endpoint).map_err(err("bind"))?;
        Ok(Self { socket, endpoint: endpoint.to_owned(), buf: Vec::with_capacity(4096) })
    }

    /// How long, at exit, queued frames may take to reach subscribers (ZMQ_LINGER).
    pub fn set_linger(&self, linger: Duration) -> Result<(), GeneratorError> {
        let ms = i32::try_from(linger.as_millis()).unwrap_or(i32::MAX);
        self.socket
            .set_linger(ms)
            .map_err(|source| GeneratorError::Zmq { what: "set LINGER on", endpoint: self.endpoint.clone(), source })
    }

    /// The endpoint this socket is bound to (with the real port if `:0` was asked for... as
    /// ZeroMQ reports it).
    pub fn endpoint(&self) -> String {
        self.socket.get_last_endpoint().ok().and_then(Result::ok).unwrap_or_else(|| self.endpoint.clone())
    }

    /// Waits until `n` subscriptions have arrived or `timeout` passed; returns how many came.
    pub fn wait_for_subscribers(&self, n: usize, timeout: Duration) -> Result<usize, GeneratorError> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        while seen < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ready = self
                .socket
                .poll(zmq::POLLIN, left.as_millis().min(i64::MAX as u128) as i64)
                .map_err(|source| GeneratorError::Zmq { what: "poll", endpoint: self.endpoint.clone(), source })?;
            if ready > 0 {
                let msg = self
                    .socket
                    .recv_bytes(0)
                    .map_err(|source| GeneratorError::Zmq { what: "receive subscription on", endpoint: self.endpoint.clone(), source })?;
                if msg.first() == Some(&1) {
                    seen += 1;
                }
            }
        }
        Ok(seen)
    }
}

impl FrameSink for Publisher {
    fn send(&mut self, packet: &Packet) -> Result<(), GeneratorError> {
        self.buf.clear();
        packet.encode(&mut self.buf).map_err(|source| GeneratorError::Encode { zone: packet.name.clone(), source })?;
        self.socket
            .send(&self.buf[..], 0)
            .map_err(|source| GeneratorError::Zmq { what: "send to", endpoint: self.endpoint.clone(), source })
    }
}

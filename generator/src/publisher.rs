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
        self.socket.set_linger(ms).map_err(|source| GeneratorError::Zmq {
            what: "set LINGER on",
            endpoint: self.endpoint.clone(),
            source,
        })
    }

    /// Whether a full queue blocks the sender (`true`) or drops the frame for that
    /// subscriber (`false`, ZeroMQ's PUB default). A simulated run (a backfill) blocks, so
    /// a subscriber slower than the run loses nothing; a live generator drops, so one slow
    /// subscriber never stalls sampling (the archiver counts the gap from sequence numbers).
    /// ZMQ_XPUB_NODROP, set through the raw socket: zmq 0.10 has no setter for it.
    pub fn set_block_when_full(&mut self, block: bool) -> Result<(), GeneratorError> {
        let value: std::ffi::c_int = block.into();
        set_int_option(&mut self.socket, zmq_sys::ZMQ_XPUB_NODROP as std::ffi::c_int, value).map_err(|errno| {
            GeneratorError::Zmq {
                what: "set XPUB_NODROP on",
                endpoint: self.endpoint.clone(),
                source: zmq::Error::from_raw(errno),
            }
        })
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
                let msg = self.socket.recv_bytes(0).map_err(|source| GeneratorError::Zmq {
                    what: "receive subscription on",
                    endpoint: self.endpoint.clone(),
                    source,
                })?;
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
        self.socket.send(&self.buf[..], 0).map_err(|source| GeneratorError::Zmq {
            what: "send to",
            endpoint: self.endpoint.clone(),
            source,
        })
    }
}

/// `zmq_setsockopt` of an int option on `socket`; on failure, ZeroMQ's errno.
#[allow(unsafe_code)]
fn set_int_option(socket: &mut zmq::Socket, option: std::ffi::c_int, value: std::ffi::c_int) -> Result<(), i32> {
    let ptr = socket.as_mut_ptr();
    // SAFETY: `ptr` is the live socket owned by `socket` (borrowed mutably for the call);
    // the option value is a plain int read by libzmq during the call only, with its size.
    // zmq_errno reads this thread's errno, set by the call just made.
    unsafe {
        if zmq_sys::zmq_setsockopt(ptr, option, (&raw const value).cast(), std::mem::size_of::<std::ffi::c_int>()) == 0 {
            Ok(())
        } else {
            Err(zmq_sys::zmq_errno())
        }
    }
}

//! Receiving frames: one ZeroMQ SUB socket per generator endpoint, polled together, so every
//! message is known to come from its endpoint (the host of a 2013 frame).

use std::time::Duration;

use crate::ArchiverError;

/// Kernel receive buffer asked for each TCP connection (4 MiB: a burst of a few thousand
/// frames while the archiver flushes does not stall the sender).
pub const DEFAULT_RCVBUF: i32 = 4 << 20;

/// SUB sockets, one per endpoint.
pub struct Subscriber {
    sockets: Vec<(zmq::Socket, String)>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sockets.iter().map(|(_, e)| e)).finish()
    }
}

impl Subscriber {
    /// Connects one SUB socket to each endpoint (ZeroMQ reconnects by itself if a generator
    /// is not up yet or restarts).
    pub fn connect(ctx: &zmq::Context, endpoints: &[String], rcvhwm: i32) -> Result<Self, ArchiverError> {
        let mut sockets = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let err = |what| {
                let endpoint = endpoint.clone();
                move |source| ArchiverError::Zmq { what, endpoint, source }
            };
            let s = ctx.socket(zmq::SUB).map_err(err("create socket for"))?;
            s.set_rcvhwm(rcvhwm).map_err(err("set RCVHWM for"))?;
            if endpoint.starts_with("tcp://") {
                s.set_rcvbuf(DEFAULT_RCVBUF).map_err(err("set RCVBUF for"))?;
            }
            s.set_reconnect_ivl(100).map_err(err("set RECONNECT_IVL for"))?;
            s.set_reconnect_ivl_max(5_000).map_err(err("set RECONNECT_IVL_MAX for"))?;
            s.set_subscribe(b"").map_err(err("subscribe to"))?;
            s.connect(endpoint).map_err(err("connect to"))?;
            sockets.push((s, endpoint.clone()));
        }
        Ok(Self { sockets })
    }

    /// The endpoints, in socket order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.sockets.iter().map(|(_, e)| e.as_str())
    }

    /// Waits up to `timeout` for messages, then hands each available message (at most
    /// `max` in all) to `on_message(endpoint_index, bytes)`; returns how many were handed.
    pub fn receive(
        &self,
        timeout: Duration,
        max: usize,
        mut on_message: impl FnMut(usize, &[u8]),
    ) -> Result<usize, ArchiverError> {
        let mut items: Vec<zmq::PollItem<'_>> = self.sockets.iter().map(|(s, _)| s.as_poll_item(zmq::POLLIN)).collect();
        let ready = match zmq::poll(&mut items, timeout.as_millis().min(i64::MAX as u128) as i64) {
            Ok(n) => n,
            // A signal (SIGTERM) interrupted the wait: the caller checks its stop flag.
            Err(zmq::Error::EINTR) => return Ok(0),
            Err(source) => return Err(ArchiverError::Zmq { what: "poll", endpoint: "all".into(), source }),
        };
        if ready == 0 {
            return Ok(0);
        }
        let mut handed = 0;
        let mut msg = zmq::Message::new();
        for (i, (socket, endpoint)) in self.sockets.iter().enumerate() {
            while handed < max {
                match socket.recv(&mut msg, zmq::DONTWAIT) {
                    Ok(()) => {
                        on_message(i, &msg);
                        handed += 1;
                    }
                    Err(zmq::Error::EAGAIN) => break,
                    Err(zmq::Error::EINTR) => break,
                    Err(source) => return Err(ArchiverError::Zmq { what: "receive from", endpoint: endpoint.clone(), source }),
                }
            }
        }
        Ok(handed)
    }
}

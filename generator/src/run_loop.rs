//! The sampling loop: every interval, sample the source, stamp each frame (host, sequence
//! number, run id, interval) and hand it to a sink. Real time or simulated time.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use frame_proto::Packet;

use crate::GeneratorError;
use crate::source::StatSource;

/// How long a waiting loop sleeps at most before it looks at a [`Stop::flag`] stop again (a
/// stop that can wake the loop, [`Stop::new`], is seen at once): one set while it waits is
/// seen within this. It was 100 ms: ten wake-ups a second cost this VM about 9% of a live
/// sample.
pub const STOP_SEEN_WITHIN: Duration = Duration::from_millis(500);

/// What tells a run to stop. Made with [`Stop::new`], it wakes a waiting loop at once
/// (a socket pair the loop sleeps on, to which a stop writes a byte, also from a signal
/// handler), so a run at one sample a second wakes once a sample; made with [`Stop::flag`],
/// it is a flag set elsewhere (the archiver's own) that the loop looks at every
/// [`STOP_SEEN_WITHIN`].
#[derive(Debug, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    /// The end the loop sleeps on, and the end a stop writes to.
    wake: Option<Arc<(UnixStream, UnixStream)>>,
}

impl Stop {
    /// A stop that wakes the loop.
    pub fn new() -> std::io::Result<Self> {
        let (sleeper, waker) = UnixStream::pair()?;
        // A stop never waits for the loop: a full socket has woken it already.
        waker.set_nonblocking(true)?;
        Ok(Self { flag: Arc::new(AtomicBool::new(false)), wake: Some(Arc::new((sleeper, waker))) })
    }

    /// A stop that is `flag`, set elsewhere.
    pub fn flag(flag: Arc<AtomicBool>) -> Self {
        Self { flag, wake: None }
    }

    /// Makes each of `signals` stop the run (the flag set first, then the loop woken).
    pub fn on_signals(&self, signals: &[std::ffi::c_int]) -> std::io::Result<()> {
        for &signal in signals {
            signal_hook::flag::register(signal, Arc::clone(&self.flag))?;
            if let Some(wake) = &self.wake {
                signal_hook::low_level::pipe::register(signal, wake.1.try_clone()?)?;
            }
        }
        Ok(())
    }

    /// Stops the run.
    pub fn request(&self) {
        self.flag.store(true, Ordering::Relaxed);
        if let Some(wake) = &self.wake {
            match (&wake.1).write(&[1]) {
                Ok(_) => {}
                // Full: the loop has a byte to wake on already.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => tracing::warn!(error = %e, "cannot wake the sampling loop; it stops at its next sample"),
            }
        }
    }

    /// The flag a stop sets (for loops of their own that look at it).
    pub fn shared_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    /// Whether the run is to stop.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Sleeps for `time`, or until a stop where it wakes the loop.
    fn sleep(&self, time: Duration) {
        let Some(wake) = &self.wake else {
            std::thread::sleep(time.min(STOP_SEEN_WITHIN));
            return;
        };
        // A timeout of zero is refused (it would mean none).
        if let Err(e) = wake.0.set_read_timeout(Some(time.max(Duration::from_micros(1)))) {
            tracing::warn!(error = %e, "cannot sleep on the stop socket; sleeping without it");
            std::thread::sleep(time.min(STOP_SEEN_WITHIN));
            return;
        }
        match (&wake.0).read(&mut [0u8; 1]) {
            // A byte: a stop (its flag, set first, ends the loop).
            Ok(_) => {}
            // The time up, or a signal (the loop looks at the flag and sleeps again).
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot sleep on the stop socket; sleeping without it");
                std::thread::sleep(time.min(STOP_SEEN_WITHIN));
            }
        }
    }
}

/// Where frames go: the publisher, a printer, or an in-process consumer.
pub trait FrameSink {
    /// Sends one frame.
    fn send(&mut self, packet: &Packet) -> Result<(), GeneratorError>;
}

/// When samples are taken.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Interval between samples.
    pub interval: Duration,
    /// `Some(start_us)`: simulated time from `start_us`, as fast as possible (or at `pace`).
    pub simulate_from_us: Option<i64>,
    /// Simulated time only: run at this many times real time (10.0: ten simulated seconds
    /// a second) instead of as fast as possible.
    pub pace: Option<f64>,
    /// Stop after this many intervals.
    pub count: Option<u64>,
}

/// What stamps the frames of one generator run.
#[derive(Debug, Clone)]
pub struct FrameStamp {
    /// The host identity put in every frame.
    pub host: String,
    /// This run's id (its start time in µs).
    pub run_id: u64,
    /// Next sequence number.
    pub next_seq: u64,
}

impl FrameStamp {
    /// A stamp for a run starting now.
    pub fn new(host: &str) -> Self {
        Self { host: host.to_owned(), run_id: now_us().max(0) as u64, next_seq: 0 }
    }

    /// Stamps one frame.
    pub fn stamp(&mut self, packet: &mut Packet, interval: Duration) {
        packet.host = Some(self.host.clone());
        packet.seq = Some(self.next_seq);
        packet.run_id = Some(self.run_id);
        packet.interval_ms = Some(interval.as_millis().min(u32::MAX as u128) as u32);
        self.next_seq += 1;
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Runs until `stop` is set or `schedule.count` intervals are done; returns frames sent.
///
/// A failed sample is logged and skipped (the next interval tries again); a failed send ends
/// the run with the error.
pub fn run(
    source: &mut dyn StatSource,
    stamp: &mut FrameStamp,
    sink: &mut dyn FrameSink,
    schedule: Schedule,
    stop: &Stop,
) -> Result<u64, GeneratorError> {
    let interval_us = schedule.interval.as_micros() as i64;
    let mut sent = 0;
    let mut n = 0u64;
    let mut next_tick = Instant::now();
    let started = Instant::now();
    while !stop.requested() && schedule.count.is_none_or(|c| n < c) {
        let time_us = match schedule.simulate_from_us {
            Some(start) => {
                if let Some(pace) = schedule.pace {
                    // Sample n is due at n intervals of simulated time, divided by the pace.
                    let due = started + schedule.interval.mul_f64(n as f64 / pace);
                    let now = Instant::now();
                    if now < due {
                        stop.sleep(due - now);
                        continue;
                    }
                }
                start + n as i64 * interval_us
            }
            None => {
                let now = Instant::now();
                if now < next_tick {
                    stop.sleep(next_tick - now);
                    continue;
                }
                next_tick += schedule.interval;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + schedule.interval; // fell behind: skip, don't burst
                }
                now_us()
            }
        };
        n += 1;
        match source.sample(time_us, interval_us) {
            Ok(mut frames) => {
                for frame in &mut frames {
                    stamp.stamp(frame, schedule.interval);
                    sink.send(frame)?;
                    sent += 1;
                }
                source.recycle(frames);
            }
            Err(e) => tracing::warn!(source = source.name(), error = %e, "sample failed; skipping this interval"),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source of one empty frame a sample.
    struct Empty;

    impl StatSource for Empty {
        fn name(&self) -> &'static str {
            "empty"
        }

        fn sample(&mut self, _time_us: i64, _interval_us: i64) -> Result<Vec<Packet>, GeneratorError> {
            Ok(vec![Packet::default()])
        }
    }

    struct Counted(u64);

    impl FrameSink for Counted {
        fn send(&mut self, _packet: &Packet) -> Result<(), GeneratorError> {
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn a_stop_ends_a_run_waiting_for_its_next_sample_and_one_before_ends_it_at_once() {
        // An hour between samples: the run ends only because the stop wakes it.
        let schedule = Schedule { interval: Duration::from_secs(3600), simulate_from_us: None, pace: None, count: None };
        for stop in [Stop::new().unwrap(), Stop::flag(Arc::new(AtomicBool::new(false)))] {
            let requester = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    stop.request();
                })
            };
            let mut sink = Counted(0);
            let sent = run(&mut Empty, &mut FrameStamp::new("h"), &mut sink, schedule, &stop).unwrap();
            requester.join().unwrap();
            assert_eq!((sent, sink.0), (1, 1), "one sample, then the wait a stop ended");
            assert_eq!(run(&mut Empty, &mut FrameStamp::new("h"), &mut sink, schedule, &stop).unwrap(), 0);
        }
    }
}

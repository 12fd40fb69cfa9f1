//! The sampling loop: every interval, sample the source, stamp each frame (host, sequence
//! number, run id, interval) and hand it to a sink. Real time or simulated time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use frame_proto::Packet;

use crate::GeneratorError;
use crate::source::StatSource;

/// How long a waiting loop sleeps at most before it looks at `stop` again: a stop set while
/// it waits is seen within this (one set during a sample, after that sample and its
/// sending). It was 100 ms: ten wake-ups a second cost this VM about 9% of a live sample.
pub const STOP_SEEN_WITHIN: Duration = Duration::from_millis(500);

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
    stop: &AtomicBool,
) -> Result<u64, GeneratorError> {
    let interval_us = schedule.interval.as_micros() as i64;
    let mut sent = 0;
    let mut n = 0u64;
    let mut next_tick = Instant::now();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && schedule.count.is_none_or(|c| n < c) {
        let time_us = match schedule.simulate_from_us {
            Some(start) => {
                if let Some(pace) = schedule.pace {
                    // Sample n is due at n intervals of simulated time, divided by the pace.
                    let due = started + schedule.interval.mul_f64(n as f64 / pace);
                    let now = Instant::now();
                    if now < due {
                        std::thread::sleep((due - now).min(STOP_SEEN_WITHIN));
                        continue;
                    }
                }
                start + n as i64 * interval_us
            }
            None => {
                let now = Instant::now();
                if now < next_tick {
                    std::thread::sleep((next_tick - now).min(STOP_SEEN_WITHIN));
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
            Ok(frames) => {
                for mut frame in frames {
                    stamp.stamp(&mut frame, schedule.interval);
                    sink.send(&frame)?;
                    sent += 1;
                }
            }
            Err(e) => tracing::warn!(source = source.name(), error = %e, "sample failed; skipping this interval"),
        }
    }
    Ok(sent)
}

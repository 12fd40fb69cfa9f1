//! The seam between the sampling loop and a platform: a [`StatSource`] turns "now" into one
//! frame per zone. Sources fill the statistics (the 2013 fields; on Linux also the container
//! and host tables, fields 19-26); the loop stamps host, sequence number
//! and run id. Sources must not block for long or touch sockets.

use frame_proto::Packet;

use crate::GeneratorError;

/// Something that samples statistics, one [`Packet`] per zone per call.
pub trait StatSource: Send {
    /// A short name for logs (`linux`, `synthetic`, `illumos`).
    fn name(&self) -> &'static str;

    /// Samples every zone at `time_us` (µs since the epoch; real or simulated time). The
    /// interval since the previous call is `interval_us`; counters of per-interval meaning
    /// (CPU samples, faults) cover that interval.
    fn sample(&mut self, time_us: i64, interval_us: i64) -> Result<Vec<Packet>, GeneratorError>;

    /// The frames of the last sample, handed back once sent: a source may write the next
    /// sample's frames into their memory (the default drops them).
    fn recycle(&mut self, frames: Vec<Packet>) {
        drop(frames);
    }
}

/// The 2013 sampling rate: DTrace `profile-4999`. Busy time is expressed in these ticks on
/// every source, so `usage / ticks` is a fraction of one core whatever the platform.
pub const TICKS_PER_SECOND: u64 = 4999;

/// Converts a duration in nanoseconds to 4999 Hz ticks (saturating).
pub fn ns_to_ticks(ns: u64) -> u32 {
    u32::try_from((ns as u128 * TICKS_PER_SECOND as u128 / 1_000_000_000) as u64).unwrap_or(u32::MAX)
}

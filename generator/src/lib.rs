//! The generator: samples statistics per zone and publishes one frame per zone per interval.
//!
//! Owns the statistic sources ([`source::StatSource`]: [`synthetic`], [`linux`], and
//! [`illumos`] over the `illumos_stats` crate), the publishing socket ([`publisher::Publisher`]) and the sampling loop
//! ([`run`]). It must not know how frames are stored: the archiver and the 2013 collector
//! both read what it sends.

pub mod cli;
pub mod config;
pub mod illumos;
pub mod linux;
pub mod publisher;
pub mod source;
pub mod synthetic;

pub mod run_loop;

pub use config::{GeneratorConfig, SourceKind};

// Used by the integration tests only.
pub use run_loop::{FrameSink, FrameStamp, Schedule, Stop, now_us, run};
#[cfg(test)]
use tempfile as _;
// The generator binary's allocator (set in `main.rs`, for that binary only: the archiver
// that embeds this library keeps its own).
use mimalloc as _;

/// Errors of the generator; each names what failed (endpoint, file, zone).
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// A ZeroMQ call failed.
    #[error("zeromq: {what} {endpoint}: {source}")]
    Zmq {
        /// What was being done.
        what: &'static str,
        /// The endpoint concerned.
        endpoint: String,
        /// The error.
        #[source]
        source: zmq::Error,
    },
    /// Reading a statistic failed in a way that stops the source (not a vanished process).
    #[error("reading {path}: {message}")]
    Read {
        /// The file or interface read.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The illumos source failed (kstat, DTrace, or a recorded snapshot).
    #[error("illumos source: {0}")]
    Illumos(#[from] illumos_stats::IllumosError),
    /// Invalid settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A frame of a zone could not be encoded (its encoded size would not fit the buffer).
    #[error("encoding the frame of zone {zone:?}: {source}")]
    Encode {
        /// The frame's zone.
        zone: String,
        /// What prost reported.
        #[source]
        source: prost::EncodeError,
    },
}

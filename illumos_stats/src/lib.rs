//! The illumos source of the generator: what the 2013 generator collected on SmartOS, from
//! the same places (`../shared/spec/legacy-system.md`), as the same frames.
//!
//! Two seams keep the platform out of the logic: [`kstat::KstatReader`] (live: libkstat via
//! `kstat-rs`) and [`aggregate::AggregateReader`] (live: libdtrace via our `dtrace-sys`,
//! running the programs of `d-scripts/generator/`, embedded by [`d_programs`]). Both deliver
//! plain records; [`frames`] turns them into frames without touching either library, and is
//! tested on any platform by replaying snapshots in the recorded format ([`recording`]; the
//! test fixtures were composed in that format, not recorded on a host). Everything here
//! compiles everywhere; off illumos the live readers answer [`IllumosError::Unsupported`].
//!
//! This crate must not publish, schedule or store frames: the generator's loop does that.

pub mod aggregate;
pub mod d_programs;
pub mod frames;
pub mod kstat;
pub mod recording;
pub mod sampler;

pub use sampler::IllumosSampler;

// Used by the integration tests only.
#[cfg(test)]
use {prost as _, tempfile as _};

/// Errors of the illumos source; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum IllumosError {
    /// The library does not exist on this platform (not illumos).
    #[error("{0} is only available on illumos")]
    Unsupported(&'static str),
    /// A libkstat call failed.
    #[error("kstat: {what}: {message}")]
    Kstat {
        /// The call or kstat.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// A libdtrace call failed.
    #[error("dtrace: {what}: {message}")]
    Dtrace {
        /// The call or D program.
        what: String,
        /// libdtrace's message.
        message: String,
    },
    /// Something every snapshot needs is missing.
    #[error("missing {what}")]
    Missing {
        /// What.
        what: String,
    },
    /// A snapshot file (`kstat -p` text or aggregation JSON Lines) could not be read, parsed
    /// or written.
    #[error("fixture {what}: {message}")]
    Fixture {
        /// The file or line.
        what: String,
        /// What went wrong.
        message: String,
    },
}

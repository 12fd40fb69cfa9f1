//! A small, safe consumer of illumos libdtrace (`libdtrace(3LIB)`): open a handle, set
//! options, compile D programs from strings, enable them, start tracing, and once per
//! interval take a snapshot of the aggregations, walk their records and clear them.
//!
//! No `dtrace-sys` crate exists on the registry; this one covers only what an aggregating
//! consumer needs. All `unsafe` code — the `extern "C"` declarations, the C structures they
//! pass, and every call — is in one module, `consumer`, with a `SAFETY` note per block.
//!
//! On illumos the crate links `libdtrace`. Elsewhere the same declarations are backed by stub
//! functions that fail the way libdtrace fails when it cannot open (so every line of the
//! safe layer is compiled and type-checked on Linux, and [`Consumer::open`] answers
//! [`Error::Unsupported`]). Decoding a walk record is plain pointer reading over the C
//! layout; its unit tests build that layout in memory, so they run anywhere.
//!
//! This crate must not know what the D programs mean: it hands back
//! [`AggregateRecord`]s as libdtrace delivers them.

mod consumer;
mod record;

pub use consumer::{Consumer, Program, TraceStatus};
pub use record::{
    AggregateRecord, AggregateValue, Key, QUANTIZE_BUCKETS, QUANTIZE_ZERO_BUCKET, quantize_bounds, quantize_bucket_value,
};

/// Errors of the consumer. libdtrace's own message is kept as it printed it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libdtrace does not exist on this platform (not illumos).
    #[error("libdtrace is only available on illumos")]
    Unsupported,
    /// A libdtrace call failed.
    #[error("{call}: {message}")]
    Call {
        /// The libdtrace function.
        call: &'static str,
        /// `dtrace_errmsg()` of the error.
        message: String,
    },
    /// An argument cannot cross into C (it holds a NUL byte).
    #[error("{what} holds a NUL byte")]
    Nul {
        /// The argument.
        what: &'static str,
    },
}

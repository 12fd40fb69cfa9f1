//! The archiver: subscribes to generators and writes what it accepts into the archive.
//!
//! Owns the ingest path: receiving frames ([`subscriber`]), checking them ([`admission`], from
//! `frame_proto`), turning them into Arrow columns ([`rows`]) held in [`buffers`], publishing
//! them through the flush journal ([`publish`], [`parquet_file`]), merging files
//! ([`compaction`], [`seal`], [`day_compaction`]), summarising days ([`rollup`]), all tied together behind the write-ahead log (the `wal` crate) by
//! [`archive_writer`], with named stages tests can stop at ([`write_step`]); and the service
//! loop with periodic flushes, a status file and a clean shutdown ([`service`]). The
//! archive's layout itself belongs to `archive_layout`; this crate must not invent paths.

pub mod archive_writer;
pub mod buffers;
pub mod check;
pub mod compaction;
pub mod config;
pub mod day_compaction;
pub mod memory_budget;
pub mod parquet_file;
pub mod publish;
pub mod retention;
pub mod rollup;
pub mod rows;
pub mod seal;
pub mod service;
pub mod side_files;
pub mod subscriber;
pub mod write_step;

pub use config::ArchiverConfig;
/// The admission rules live beside the frame decoder (no Arrow, fuzzed alone).
pub use frame_proto::admission;

// The binary's error type at its edge; the library itself returns `ArchiverError`.
use anyhow as _;
// Used by the integration tests only.
#[cfg(test)]
use {bytes as _, chrono as _, crc32fast as _, proptest as _, prost as _, query as _, tempfile as _, tokio as _};

use std::path::PathBuf;

/// Errors of the archiver; each names the file, endpoint or zone concerned.
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// A filesystem call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding Parquet failed.
    #[error("parquet {path}: {source}")]
    Parquet {
        /// The file concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    /// Building Arrow arrays failed.
    #[error("arrow, {context}: {source}")]
    Arrow {
        /// What was being built.
        context: String,
        /// The error.
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    /// A ZeroMQ call failed.
    #[error("zeromq: {what} {endpoint}: {source}")]
    Zmq {
        /// What was being done.
        what: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The error.
        #[source]
        source: zmq::Error,
    },
    /// Another archiver holds the archive.
    #[error("archive {0} is locked by another archiver (its _archiver/lock)")]
    Locked(PathBuf),
    /// Invalid settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    /// Listing the archive or reading its format failed.
    #[error(transparent)]
    Layout(#[from] archive_layout::LayoutError),
    /// The catalog could not be read or written.
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// Building, writing or reading a value index failed.
    #[error(transparent)]
    ValueIndex(#[from] value_index::ValueIndexError),
    /// A state file of the archiver holds something it never writes.
    #[error("corrupt state file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A step of the write path failed (an injected failure in tests).
    #[error("write step {step:?} failed: {source}")]
    Step {
        /// The step.
        step: write_step::WriteStep,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The writer cannot tell what is on disk any more and refuses to go on; a restart
    /// recovers from the journal and the log.
    #[error("archive writer stopped: {0}")]
    Poisoned(String),
    /// Buffered rows could not be published before exiting (they stay in the log and are
    /// published at the next start).
    #[error(
        "could not publish {rows} buffered rows at shutdown (they stay in the write-ahead log for the next start): {last_error}"
    )]
    ShutdownPublish {
        /// Rows left.
        rows: usize,
        /// The last error seen.
        last_error: String,
    },
    /// Every row was published at shutdown, but merging files failed (they stay as they are,
    /// readable; a later run merges a partition only if it publishes into it again).
    #[error("compacting at shutdown failed (every row is published, in more files than usual): {last_error}")]
    ShutdownCompaction {
        /// The last error seen.
        last_error: String,
    },
    /// The embedded generator stopped by itself (an error, or a panic of its thread).
    #[error("embedded generator stopped: {0}")]
    EmbeddedGeneratorStopped(String),
    /// The embedded generator failed.
    #[error("embedded generator: {0}")]
    Generator(#[from] generator::GeneratorError),
}

//! The archiver: subscribes to generators and writes what it accepts into the archive.
//!
//! Owns the ingest path: receiving frames ([`subscriber`]), checking them ([`admission`]),
//! turning them into Arrow columns ([`rows`]), publishing and compacting Parquet files
//! ([`archive_writer`], [`parquet_file`]) behind a write-ahead log ([`wal`]), and the service loop that ties them together with
//! periodic flushes, a status file and a clean shutdown ([`service`]). The archive's layout
//! itself belongs to `archive_layout`; this crate must not invent paths.

pub mod admission;
pub mod archive_writer;
pub mod config;
pub mod parquet_file;
pub mod rows;
pub mod service;
pub mod subscriber;
pub mod wal;

pub use config::ArchiverConfig;

// The binary's error type at its edge; the library itself returns `ArchiverError`.
use anyhow as _;
// Used by the integration tests only.
#[cfg(test)]
use {bytes as _, proptest as _};

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
    /// The embedded generator failed.
    #[error("embedded generator: {0}")]
    Generator(#[from] generator::GeneratorError),
}

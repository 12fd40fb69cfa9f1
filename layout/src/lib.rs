//! The archive's on-disk contract, in one place for the archiver and for `dq`.
//!
//! Owns what `../shared/spec/archive.md` promises users: which tables exist and their Arrow
//! schemas ([`Table`]), how a zone and a sample time map to a hive-style partition directory
//! ([`PartitionKey`]), and how a Parquet file inside it is named ([`ParquetFilePath`]),
//! including which files a compacted file supersedes. Every path is built *and* parsed here.
//! It must not do I/O beyond listing directories, nor know about frames or SQL.

mod partition;
mod path;
mod table;

pub use partition::{Granularity, PartitionKey};
pub use path::{FileId, ParquetFilePath, escape_partition_value, live_files, unescape_partition_value};
pub use table::{ColumnType, Table};

/// Errors of path parsing and archive listing; each names the input that failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A path inside the archive does not follow the layout.
    #[error("not an archive path: {path}: {reason}")]
    BadPath {
        /// The offending path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Unknown table name.
    #[error("unknown table {0:?} (tables: zone, cpu, mem, net, disk, process, callfreq, cpuqueue, zonename)")]
    UnknownTable(String),
    /// Listing a directory failed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

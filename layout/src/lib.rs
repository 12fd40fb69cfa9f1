//! The archive's on-disk contract, in one place for the archiver and for `dq`.
//!
//! Owns what `docs/archive.md` (the archive contract) promises users: which tables exist and their Arrow
//! schemas ([`Table`]), how a zone and a sample time map to a hive-style partition directory
//! ([`PartitionKey`]), and how a Parquet file inside it is named ([`ParquetFilePath`]),
//! including which files a compacted file supersedes, and the rollup tables beside them
//! ([`RollupLevel`]). Every path is built *and* parsed here.
//! It also owns walking an archive ([`listing`]) and its format version ([`format`]). It must
//! not do I/O beyond listing directories and reading the format file, nor know about frames
//! or SQL.

pub mod format;
pub mod listing;
mod partition;
mod path;
mod rollup;
mod runs;
mod table;

pub use partition::{
    DAY_US, Granularity, HOUR_US, MAX_ZONE_DIR_VALUE, PartitionDir, PartitionKey, is_bounded_zone_dir_value, table_dir_name,
    zone_dir_value,
};
pub use path::{FileId, ParquetFilePath, WriterId, escape_partition_value, live_files, side_file_of, unescape_partition_value};
pub use rollup::{RollupAggregate, RollupColumn, RollupLevel, counter_step};
pub use runs::{ListedRun, RUNS_DIR, RunKey, RunPath, STATE_DIR, ZoneRowRange, list_runs, zone_file_covers_run};
pub use table::{ColumnKind, ColumnType, IndexKind, Table};

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
    #[error("unknown table {0:?} (tables: zone, cpu, mem, net, disk, process, callfreq, cpuqueue, zonename, frame)")]
    UnknownTable(String),
    /// The archive's format file is not what this crate writes.
    #[error("archive format file {}: {reason}", format::FORMAT_FILE)]
    BadFormatFile {
        /// What is wrong.
        reason: &'static str,
    },
    /// The archive was written by a newer format than this build reads.
    #[error("archive format version {version} is newer than this build reads ({supported}); upgrade")]
    TooNew {
        /// The archive's version.
        version: u32,
        /// The newest this build reads.
        supported: u32,
    },
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

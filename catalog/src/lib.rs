//! The archive's catalog: every published file and every flush run, with its table, zone,
//! period, time range, rows, bytes and per-column min/max, in `_archiver/catalog/`.
//!
//! The archiver (one writer, holding the archive's lock) records each change in the same
//! step that publishes or removes files ([`CatalogWriter::commit`]): an entry is added once
//! its file is in place, and removed before its file is deleted, so at each commit point the
//! catalog names exactly the files there are (a crash between the two leaves a file the
//! catalog does not name yet, which recovery adds, or one it no longer names, which recovery
//! deletes: files are leaked, never named while missing). Readers ([`Snapshot::read`]) see
//! one commit or the next, never half of one: `dq` plans from a snapshot without walking
//! directories or opening footers, and answers latest-sample questions from it.
//!
//! The catalog is a convenience, never the only record: the archive stays plain Parquet
//! that any reader globs, and [`scan_archive`] rebuilds the catalog from the files
//! ([`check`] says where the two differ). Entries come from each file's footer
//! ([`entry_of_file`]), the one place that reads them.
//!
//! This crate must not decide what is published or when; it records what the archiver did.

mod footer;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;

use archive_layout::{FileId, Granularity, Table};
use serde::{Deserialize, Serialize};

pub use footer::{Difference, check, entry_of_file, entry_of_file_with, entry_of_run, run_zone_rows, scan_archive};
pub use store::{CATALOG_DIR, CHECKPOINT_LOG_BYTES, CatalogWriter, Snapshot, TableFilter};

/// Errors of the catalog; each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A filesystem call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A catalog file is not what this crate writes.
    #[error("catalog file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A data file's footer could not be read.
    #[error("cannot read the footer of {path}: {source}")]
    Footer {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said.
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    /// A data file's path or footer does not follow the archive layout.
    #[error(transparent)]
    Layout(#[from] archive_layout::LayoutError),
}

/// A minimum or maximum of a column, as its footer states it (in JSON: a number or a
/// string; read without buffering, which an untagged enum would do for every value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Stat {
    /// An unsigned integer column.
    U64(u64),
    /// A signed column (time).
    I64(i64),
    /// A string column (only when the footer's value is exact, not truncated).
    Str(String),
}

impl<'de> Deserialize<'de> for Stat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Stat;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Stat, E> {
                Ok(Stat::U64(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Stat, E> {
                Ok(if v >= 0 { Stat::U64(v as u64) } else { Stat::I64(v) })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Stat, E> {
                Ok(Stat::Str(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Stat, E> {
                Ok(Stat::Str(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What a file's footer says of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Smallest non-null value, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Stat>,
    /// Largest non-null value, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Stat>,
    /// Null values, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls: Option<u64>,
}

/// One published file (a zone's file in its partition) or one flush run (rows of many
/// zones of one table and period, under `_archiver/runs/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the archive root, `/`-separated: the entry's key.
    pub path: String,
    /// The table's name.
    pub table: String,
    /// The zone of a zone file; `None` for a run (its zones are in its footer, see
    /// [`run_zone_rows`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The period: `hour` or `day`.
    pub period: String,
    /// First microsecond of the period (UTC).
    pub period_start_us: i64,
    /// Earliest sample time (µs) in the file; `None` when it has no rows.
    pub min_time_us: Option<i64>,
    /// Latest sample time (µs) in the file.
    pub max_time_us: Option<i64>,
    /// Rows.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Per value column (and `host`), what the footer says; empty for runs. Names of
    /// columns no table has are dropped when read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "deserialize_columns")]
    pub columns: BTreeMap<&'static str, ColumnStats>,
    /// What the file's value index says (its tails' bounds and key sets), when a side file
    /// describing the file was there as the entry was made; `None` for runs, rollups and
    /// files without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<value_index::Summary>,
}

impl Entry {
    /// Whether it is a flush run.
    pub fn is_run(&self) -> bool {
        self.zone.is_none()
    }

    /// Its table.
    pub fn table(&self) -> Option<Table> {
        Table::from_name(&self.table).ok()
    }

    /// Its period's length.
    pub fn granularity(&self) -> Option<Granularity> {
        Granularity::from_name(&self.period)
    }

    /// One past the last microsecond of its period.
    pub fn period_end_us(&self) -> Option<i64> {
        Some(self.granularity()?.period_end(self.period_start_us))
    }

    /// Its writer and sequence numbers, from its file name.
    pub fn file_id(&self) -> Option<FileId> {
        FileId::parse_file_name(self.path.rsplit('/').next()?)
    }
}

/// A file no longer in the catalog but still on disk until `after_us` (wall clock, µs since
/// the epoch), so that a reader that planned with it can finish: a compaction's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// Path relative to the archive root, `/`-separated.
    pub retired: String,
    /// When it may be deleted.
    pub after_us: i64,
}

/// The name of a column some table has (or `host`), as the layout spells it.
pub fn known_column(name: &str) -> Option<&'static str> {
    if name == "host" {
        return Some("host");
    }
    Table::ALL.iter().flat_map(|t| t.value_columns().iter().map(|(n, _)| *n)).find(|n| *n == name)
}

/// Reads `columns` without allocating a string per column name (a catalog holds thousands
/// of entries of a dozen columns each, and `dq` reads it for every statement).
fn deserialize_columns<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<&'static str, ColumnStats>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<&'static str, ColumnStats>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of column statistics")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let stats: ColumnStats = map.next_value()?;
                if let Some(k) = known_column(&key) {
                    out.insert(k, stats);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor)
}

/// One change to the catalog, recorded as a whole or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    /// Entries added (an entry whose path is already there replaces it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<Entry>,
    /// Paths removed (a path not there is ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Files to delete later (usually also in `remove`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retire: Vec<Retired>,
    /// Retired files now deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
}

impl Edit {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.retire.is_empty() && self.deleted.is_empty()
    }
}

/// A path relative to the archive root as the catalog keys it (`/`-separated).
pub fn catalog_path(relative: &std::path::Path) -> String {
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

//! Writing and reading the archive's Parquet files.
//!
//! Owns the encoding of each column (the figures behind the choices are in
//! `docs/archive-layout.md`) and the publish protocol: write to a hidden temporary file in
//! the partition directory, fsync it, rename it into place, fsync the directory. A reader
//! therefore sees a file complete or not at all. Every published file carries the archive's
//! key-value metadata (`archive_layout::format::file_metadata`: format version, table, whole
//! zone name, period, writer). Must not decide *what* goes in a file.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use archive_layout::format::{file_metadata, keys, run_metadata};
use archive_layout::{ColumnType, ParquetFilePath, RollupLevel, RunPath, Table, ZoneRowRange};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder, WriterVersion};
use datafusion::parquet::schema::types::ColumnPath;

use crate::ArchiverError;

/// The page compression of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at a level (1..=22).
    Zstd(i32),
    /// LZ4 (the Parquet `LZ4_RAW` codec).
    Lz4Raw,
    /// Snappy.
    Snappy,
    /// No compression.
    Uncompressed,
}

/// How the writer encodes and compresses.
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    /// Page compression.
    pub codec: Codec,
    /// Each column's encoding as measured best for sealed files ([`sealed_encoding`]);
    /// otherwise DELTA_BINARY_PACKED for every integer column.
    pub per_column: bool,
}

/// How one column of a sealed file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnEncoding {
    /// A dictionary page and RLE indices (few distinct values).
    Dictionary,
    /// DELTA_BINARY_PACKED (counters, slowly moving values, sorted times).
    Delta,
    /// PLAIN (what zstd alone compresses best: mostly constant or zero).
    Plain,
}

/// The encoding of `column` of `table` in sealed files: per column, the smallest of
/// dictionary, DELTA_BINARY_PACKED and PLAIN at zstd 9 on an hour of 10 zones x 16 cores x
/// 20 processes of the synthetic source (most zone files agreeing; `docs/archive-layout.md`
/// has the figures and the script). BYTE_STREAM_SPLIT would save 0.009 bytes a value more,
/// but the DuckDB CLI 1.5 refuses it on integer columns, so it is not used. Every reader
/// the docs promise reads each of these (`archiver/tests/readers.rs`).
pub fn sealed_encoding(table: Table, column: &str) -> ColumnEncoding {
    use ColumnEncoding::{Delta, Dictionary, Plain};
    match (table, column) {
        (_, "time") => Delta,
        (_, "host" | "zone") => Dictionary,
        (Table::Callfreq, "bucket_ns")
        | (Table::Disk, "harderror" | "softerror" | "tranerror" | "instance" | "nread" | "nwritten")
        | (Table::Mem, "freemem" | "nalloc_calls" | "nfree_calls" | "physmem" | "pp_kernel")
        | (Table::Net, "ierrors" | "oerrors" | "ipackets" | "opackets" | "instance")
        | (Table::Process, "pid")
        | (Table::Zone, "ticks")
        | (Table::Zonename, "zonename") => Plain,
        (Table::Callfreq, "value" | "name")
        | (Table::Cpuqueue, "length" | "amount")
        | (Table::Mem, "maj_fault" | "pgin")
        | (Table::Process, "cpu" | "usage" | "execname")
        | (Table::Zone, "threads" | "processes") => Dictionary,
        _ => match table.value_columns().iter().find(|(n, _)| *n == column) {
            Some((_, ColumnType::Utf8)) => Dictionary,
            _ => Delta,
        },
    }
}

impl Encoder {
    /// For the runs a flush writes: fast.
    pub const FLUSH: Encoder = Encoder { codec: Codec::Lz4Raw, per_column: false };
    /// For sealed files, which stay for months: smaller.
    pub const COMPACT: Encoder = Encoder { codec: Codec::Zstd(9), per_column: true };

    /// Writer properties for one table.
    ///
    /// - runs: `time` and integer columns DELTA_BINARY_PACKED, strings dictionary.
    /// - sealed files: each column as [`sealed_encoding`] says.
    /// - every column zstd; rows sorted by time; page statistics (for pruning inside a
    ///   file) on `time`, `zone`, the series keys and the integer columns, chunk statistics
    ///   only on `host` and the other strings (one or a few values a file: nothing to prune
    ///   page by page).
    pub fn properties(&self, table: Table) -> Result<WriterProperties, ArchiverError> {
        Ok(self.builder(table, None)?.build())
    }

    fn builder(&self, table: Table, rollup: Option<RollupLevel>) -> Result<WriterPropertiesBuilder, ArchiverError> {
        let compression = match self.codec {
            Codec::Zstd(level) => Compression::ZSTD(
                ZstdLevel::try_new(level).map_err(|e| ArchiverError::Config(format!("zstd level {level}: {e}")))?,
            ),
            Codec::Lz4Raw => Compression::LZ4_RAW,
            Codec::Snappy => Compression::SNAPPY,
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        };
        let mut b = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(compression)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(1 << 20))
            .set_sorting_columns(Some(vec![SortingColumn { column_idx: 0, descending: false, nulls_first: false }]))
            .set_created_by(concat!("archiver ", env!("CARGO_PKG_VERSION")).to_owned());
        if rollup.is_some() {
            // A rollup (a file per zone and day: 24 or 1,440 rows of some 60 columns, where
            // the footer outweighs the data): integers DELTA_BINARY_PACKED, strings (host,
            // zone, keys) dictionary; statistics only per file and only on `time`, `host`,
            // `zone` and the keys (what readers prune on), no offset index.
            let schema = table.rollup_schema();
            let keys = table.rollup_key_columns();
            b = b.set_statistics_enabled(EnabledStatistics::Chunk).set_offset_index_disabled(true);
            for field in schema.fields() {
                let name = field.name().as_str();
                let col = ColumnPath::from(name);
                if field.data_type() != &datafusion::arrow::datatypes::DataType::Utf8 {
                    b = b
                        .set_column_dictionary_enabled(col.clone(), false)
                        .set_column_encoding(col.clone(), Encoding::DELTA_BINARY_PACKED);
                }
                let series = ["time", "host", "zone"].contains(&name) || keys.iter().any(|(k, _)| *k == name);
                if !series {
                    b = b.set_column_statistics_enabled(col, EnabledStatistics::None);
                }
            }
            return Ok(b);
        }
        if !self.per_column {
            let time = ColumnPath::from("time");
            b = b.set_column_dictionary_enabled(time.clone(), false).set_column_encoding(time, Encoding::DELTA_BINARY_PACKED);
            for (name, ty) in table.value_columns() {
                if *ty != ColumnType::Utf8 {
                    let col = ColumnPath::from(*name);
                    b = b
                        .set_column_dictionary_enabled(col.clone(), false)
                        .set_column_encoding(col, Encoding::DELTA_BINARY_PACKED);
                }
            }
            return Ok(b);
        }
        let keys = table.series_key_columns();
        let columns = ["time", "host", "zone"].into_iter().chain(table.value_columns().iter().map(|(n, _)| *n));
        for name in columns {
            let col = ColumnPath::from(name);
            b = match sealed_encoding(table, name) {
                ColumnEncoding::Dictionary => b.set_column_dictionary_enabled(col.clone(), true),
                ColumnEncoding::Delta => b
                    .set_column_dictionary_enabled(col.clone(), false)
                    .set_column_encoding(col.clone(), Encoding::DELTA_BINARY_PACKED),
                ColumnEncoding::Plain => {
                    b.set_column_dictionary_enabled(col.clone(), false).set_column_encoding(col.clone(), Encoding::PLAIN)
                }
            };
            let string = name == "host" || table.value_columns().iter().any(|(n, t)| *n == name && *t == ColumnType::Utf8);
            if string && name != "zone" && !keys.contains(&name) {
                b = b.set_column_statistics_enabled(col, EnabledStatistics::Chunk);
            }
        }
        Ok(b)
    }

    /// Encodes `batches` of `table` as one Parquet file into `out`; returns `out`.
    pub fn write<W: std::io::Write + Send>(&self, out: W, table: Table, batches: &[RecordBatch]) -> Result<W, ParquetError> {
        self.write_with_metadata(out, table, None, Vec::new(), &mut batches.iter().cloned().map(Ok))
    }

    /// [`Encoder::write`] of `table` (or of its rollup at `rollup`) with key-value metadata
    /// in the file's footer, taking the batches one at a time (a merge hands them out as it
    /// goes).
    pub fn write_with_metadata<W: std::io::Write + Send>(
        &self,
        out: W,
        table: Table,
        rollup: Option<RollupLevel>,
        metadata: Vec<(String, String)>,
        batches: &mut dyn Iterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<W, ParquetError> {
        let mut props = self.builder(table, rollup).map_err(|e| ParquetError::General(e.to_string()))?;
        if !metadata.is_empty() {
            props = props.set_key_value_metadata(Some(metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()));
        }
        let props = props.build();
        let schema = if rollup.is_some() { table.rollup_schema() } else { table.schema() };
        let mut writer = ArrowWriter::try_new(out, schema, Some(props))?;
        for batch in batches {
            writer.write(&batch?)?;
        }
        writer.into_inner()
    }

    /// Writes `batches` to `path`'s temporary name and fsyncs it (not published: the caller
    /// renames it). Returns the bytes written; on error the temporary file is removed.
    pub fn write_temp(&self, root: &Path, path: &ParquetFilePath, batches: &[RecordBatch]) -> Result<u64, ArchiverError> {
        self.write_temp_from(root, path, &mut batches.iter().cloned().map(Ok))
    }

    /// Writes a run (rows of one table and period, ordered by zone then time) to its
    /// temporary name and fsyncs it; the flush journal renames it. Returns the bytes written;
    /// on error the temporary file is removed.
    pub fn write_run_temp(&self, root: &Path, run: &RunPath, batches: &[RecordBatch]) -> Result<u64, ArchiverError> {
        let mut metadata = run_metadata(run);
        metadata.push((keys::ZONE_ROWS.to_owned(), ZoneRowRange::encode(&zone_row_ranges(batches))));
        self.write_fsynced(&run.temp_path(root), (run.key.table, None), metadata, &mut batches.iter().cloned().map(Ok))
    }

    fn write_fsynced(
        &self,
        temp: &Path,
        (table, rollup): (Table, Option<RollupLevel>),
        metadata: Vec<(String, String)>,
        batches: &mut dyn Iterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<u64, ArchiverError> {
        let temp = temp.to_owned();
        let dir = temp.parent().unwrap_or(Path::new(".")).to_owned();
        let result = (|| {
            create_dir_durably(&dir)?;
            let file = File::create(&temp).map_err(|source| ArchiverError::Io { what: "create", path: temp.clone(), source })?;
            let buffered = self
                .write_with_metadata(BufWriter::with_capacity(1 << 16, file), table, rollup, metadata, batches)
                .map_err(|source| ArchiverError::Parquet { path: temp.clone(), source })?;
            let file = buffered.into_inner().map_err(|e| ArchiverError::Io {
                what: "flush",
                path: temp.clone(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(|source| ArchiverError::Io { what: "fsync", path: temp.clone(), source })?;
            file.metadata().map(|m| m.len()).map_err(|source| ArchiverError::Io { what: "stat", path: temp.clone(), source })
        })();
        if result.is_err() {
            remove_litter(&temp);
        }
        result
    }

    /// Writes `batches` (all of `path.key.table`'s schema) as one published file under
    /// `root`: temporary file, fsync, rename, directory fsync. Returns the bytes written.
    /// On error no file is published and the temporary file is removed.
    pub fn publish(&self, root: &Path, path: &ParquetFilePath, batches: &[RecordBatch]) -> Result<u64, ArchiverError> {
        self.publish_from(root, path, &mut batches.iter().cloned().map(Ok))
    }

    /// [`Encoder::publish`] of batches taken one at a time (a [`crate::rows::TimeMerge`]).
    pub fn publish_from(
        &self,
        root: &Path,
        path: &ParquetFilePath,
        batches: &mut dyn Iterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<u64, ArchiverError> {
        let len = self.write_temp_from(root, path, batches)?;
        self.publish_temp(root, path)?;
        Ok(len)
    }

    /// Writes batches taken one at a time to `path`'s temporary name and fsyncs it (the
    /// first half of [`Encoder::publish_from`], for a caller that decides afterwards whether
    /// to publish it or remove it). On error the temporary file is removed.
    pub fn write_temp_from(
        &self,
        root: &Path,
        path: &ParquetFilePath,
        batches: &mut dyn Iterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<u64, ArchiverError> {
        self.write_fsynced(&path.temp_path(root), (path.key.table, path.key.rollup), file_metadata(path), batches)
    }

    /// Renames `path`'s temporary file (written by [`Encoder::write_temp_from`]) into place
    /// and fsyncs its directory.
    pub fn publish_temp(&self, root: &Path, path: &ParquetFilePath) -> Result<(), ArchiverError> {
        let (temp, final_path) = (path.temp_path(root), path.absolute_path(root));
        if let Err(source) = fs::rename(&temp, &final_path) {
            remove_litter(&temp);
            return Err(ArchiverError::Io { what: "rename into place", path: final_path, source });
        }
        sync_dir(final_path.parent().unwrap_or(root))
    }
}

/// Where each zone's rows are in a run's batches (ordered by zone, then time) and their time
/// range: what the run's footer records ([`archive_layout::format::keys::ZONE_ROWS`]).
pub fn zone_row_ranges(batches: &[RecordBatch]) -> Vec<ZoneRowRange> {
    let mut out: Vec<ZoneRowRange> = Vec::new();
    let mut row = 0u64;
    for batch in batches {
        let time = batch.column(0).as_primitive::<TimestampMicrosecondType>().values();
        let zone = batch.column(2).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let (z, t) = (zone.value(i), time[i]);
            match out.last_mut() {
                Some(r) if r.zone == z => {
                    r.rows += 1;
                    r.min_time_us = r.min_time_us.min(t);
                    r.max_time_us = r.max_time_us.max(t);
                }
                _ => out.push(ZoneRowRange { zone: z.to_owned(), first_row: row, rows: 1, min_time_us: t, max_time_us: t }),
            }
            row += 1;
        }
    }
    out
}

/// Removes a temporary file after a failure; a file that cannot be removed is only litter
/// (a hidden name no reader globs), so it is reported, not returned.
pub(crate) fn remove_litter(temp: &Path) {
    match fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %temp.display(), error = %e, "cannot remove a temporary file"),
    }
}

/// Creates `dir` and any missing parents, fsyncing the parent of each directory it creates,
/// so that a new partition directory survives a power loss once a file in it is published.
pub fn create_dir_durably(dir: &Path) -> Result<(), ArchiverError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(source) => return Err(ArchiverError::Io { what: "create partition directory", path: dir.to_owned(), source }),
    }
    sync_dir(dir.parent().unwrap_or(Path::new(".")))
}

/// Removes the published data file at `path` and its value index (`archive_layout::
/// side_file_of`), the side file first (a crash in between leaves a data file without an
/// index, which readers read as it is, never an orphaned index); whether the data file was
/// there (`what` names the removal in errors).
pub fn remove_data_file(path: &Path, what: &'static str) -> Result<bool, ArchiverError> {
    if let Some(side) = archive_layout::side_file_of(path) {
        match fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ArchiverError::Io { what: "remove value index", path: side, source }),
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ArchiverError::Io { what, path: path.to_owned(), source }),
    }
}

/// Replaces `path` with `bytes`, durably and atomically: `PATH.tmp` written and fsynced,
/// renamed over `path`, the directory fsynced. A reader (or a restart) sees the old content
/// or the new, never a torn file. For the archiver's small state files.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ArchiverError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let io = |what, source| ArchiverError::Io { what, path: tmp.clone(), source };
    let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
    std::io::Write::write_all(&mut f, bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    fs::rename(&tmp, path).map_err(|source| ArchiverError::Io { what: "rename into place", path: path.to_owned(), source })?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The text of the state file `path` (an intent), `None` if there is none: no interrupted
/// work to finish.
pub fn read_intent(path: &Path) -> Result<Option<String>, ArchiverError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ArchiverError::Io { what: "read", path: path.to_owned(), source }),
    }
}

/// Removes the state file `path` if it is there, durably (its directory fsynced): an
/// intent or journal whose work is done.
pub fn remove_durably(path: &Path) -> Result<(), ArchiverError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ArchiverError::Io { what: "remove", path: path.to_owned(), source }),
    }
}

/// Wall-clock time in microseconds since the epoch (0 before it).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// fsyncs a directory, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), ArchiverError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| ArchiverError::Io {
        what: "fsync directory",
        path: dir.to_owned(),
        source,
    })
}

/// Reads a whole published file.
pub fn read_file(path: &Path) -> Result<Vec<RecordBatch>, ArchiverError> {
    let file = File::open(path).map_err(|source| ArchiverError::Io { what: "open", path: path.to_owned(), source })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|source| ArchiverError::Parquet { path: path.to_owned(), source })?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| ArchiverError::Parquet { path: path.to_owned(), source: e.into() })
}

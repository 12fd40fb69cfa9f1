//! Rollups: a zone's day of one table, summarised per series into one row per minute
//! (`TABLE_1m`) and per hour (`TABLE_1h`) (columns: `archive_layout::RollupLevel`'s docs and
//! `docs/archive.md`). Computed from a sealed day file (the output of a day compaction, or
//! of sealing a day partition) and published under the day file's own name in the rollup
//! partitions, so a rollup file names the raw file it summarises, and a later day file of
//! the same day (late rows merged) supersedes the earlier rollup files as it supersedes the
//! earlier day file. The caller records the rollup files in the same catalog edit as the day
//! file: `dq` sees a day with its rollups or without them, never half.
//!
//! A counter's increase in a bucket counts from the series' sample before the bucket: for
//! the first bucket of a day, that is the `_last` of the previous day's hourly rollup, when
//! there is one (so the increase of a long range is the sum of its buckets across days).
//!
//! Memory: the day file is read in batches; a bucket's accumulators per series are kept
//! until the end (a day of 1-minute buckets: 1,440 rows per series). Must not touch the
//! catalog (the caller records), the log or the runs.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive_layout::listing::partition_files;
use archive_layout::{
    ColumnKind, ColumnType, Granularity, ParquetFilePath, RollupAggregate, RollupLevel, Table, WriterId, counter_step, live_files,
};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, UInt32Array, UInt32Builder,
    UInt64Array, UInt64Builder,
};
use datafusion::arrow::datatypes::{TimestampMicrosecondType, UInt32Type, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::ArchiverError;
use crate::parquet_file::Encoder;

/// The rollup files of one day file: published (or found published) and the rollup files
/// of this writer they supersede. The minute level is left out where it would not
/// summarise (at most about one sample a minute per series).
#[derive(Debug, Default)]
pub struct PublishedRollups {
    /// The rollup files (one per level), in place.
    pub files: Vec<ParquetFilePath>,
    /// Older rollup files of the same day and zone they replace (still on disk).
    pub superseded: Vec<ParquetFilePath>,
}

impl PublishedRollups {
    /// The catalog entries of the rollup files (from their footers).
    pub fn entries(&self, root: &Path) -> Result<Vec<catalog::Entry>, ArchiverError> {
        self.files.iter().map(|f| Ok(catalog::entry_of_file(root, f)?)).collect()
    }

    /// The catalog paths of the rollup files they replace.
    pub fn superseded_paths(&self) -> impl Iterator<Item = String> + '_ {
        self.superseded.iter().map(|p| catalog::catalog_path(&p.relative_path()))
    }
}

/// Publishes the rollups of `raw_file` (a zone's day or month of one table), unless they are
/// in place already (a repeat after a crash); see the module docs.
pub fn publish_rollups(
    root: &Path,
    encoder: &Encoder,
    writer: WriterId,
    raw_file: &ParquetFilePath,
) -> Result<PublishedRollups, ArchiverError> {
    let key = &raw_file.key;
    let mut out = PublishedRollups::default();
    if !key.table.has_rollups() || key.rollup.is_some() || key.granularity == Granularity::Hour {
        return Ok(out);
    }
    let files: Vec<ParquetFilePath> =
        RollupLevel::ALL.iter().map(|l| ParquetFilePath::new(key.rollup_of(*l), raw_file.id)).collect();
    // The hourly file is written last: once it is there, the period's rollups are.
    if !files.iter().any(|f| f.key.rollup == Some(RollupLevel::Hour) && f.absolute_path(root).exists()) {
        let previous = previous_counters(root, writer, raw_file)?;
        let path = raw_file.absolute_path(root);
        for file in &files {
            let Some(level) = file.key.rollup else { continue };
            let mut stream = RollupStream::new(&path, key.table, &key.zone, level, previous.clone())?;
            encoder.write_temp_from(root, file, &mut stream)?;
            // A level whose rows would not summarise (a sample a minute or slower: about a
            // row per bucket) is not written; the raw rows answer at that resolution.
            if level == RollupLevel::Minute && stream.rows_out * 2 > stream.rows_in {
                crate::parquet_file::remove_litter(&file.temp_path(root));
                continue;
            }
            encoder.publish_temp(root, file)?;
        }
    }
    out.files = files.into_iter().filter(|f| f.absolute_path(root).exists()).collect();
    for file in &out.files {
        for (id, _) in partition_files(root, &file.key)? {
            if id.writer == writer && id != file.id && file.id.covers(&id) {
                out.superseded.push(ParquetFilePath::new(file.key.clone(), id));
            }
        }
    }
    Ok(out)
}

/// Per series (by [`series_key`]), its counters' last values (`None` where NULL), from the
/// hourly rollup of this writer holding the day before `raw_file`'s period, if there is one
/// (its last row of each series).
fn previous_counters(
    root: &Path,
    writer: WriterId,
    raw_file: &ParquetFilePath,
) -> Result<HashMap<Vec<u8>, Vec<Option<u64>>>, ArchiverError> {
    let table = raw_file.key.table;
    let mut out = HashMap::new();
    let counters: Vec<&str> = counter_columns(table).map(|(n, _)| n).collect();
    if counters.is_empty() {
        return Ok(out);
    }
    // The day before the period's first: its hourly rollup is in its day partition or, once
    // its month was compacted, in its month partition (which covers the day's).
    let before = raw_file.key.start_us - 1;
    let mut candidates: Vec<ParquetFilePath> = Vec::new();
    for g in [Granularity::Month, Granularity::Day] {
        let mut prev = raw_file.key.rollup_of(RollupLevel::Hour);
        (prev.granularity, prev.start_us) = (g, g.period_start(before));
        let ours: Vec<_> = partition_files(root, &prev)?.into_iter().map(|(id, _)| id).filter(|id| id.writer == writer).collect();
        for id in live_files(ours) {
            if !candidates.iter().any(|c| c.id.covers(&id)) {
                candidates.push(ParquetFilePath::new(prev.clone(), id));
            }
        }
    }
    let Some(prev) = candidates.into_iter().max_by_key(|p| (p.id.hi, p.key.granularity == Granularity::Month)) else {
        return Ok(out);
    };
    let (prev, id) = (prev.key, prev.id);
    let path = ParquetFilePath::new(prev, id).absolute_path(root);
    let mut key = Vec::new();
    for batch in read_batches(&path)? {
        let batch = batch?;
        // A month's rollup holds days after the one before `raw_file` too (a late day
        // compacted inside a compacted month): only the buckets before it count.
        let batch = match batch.column_by_name("time").and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>()) {
            Some(time) => {
                let before = time.values().partition_point(|t| *t < raw_file.key.start_us);
                batch.slice(0, before)
            }
            None => return Err(ArchiverError::Corrupt { path, reason: "a rollup without its time column" }),
        };
        let keys = key_arrays(&batch, table);
        let host = batch.column_by_name("host").map(|a| a.as_string::<i32>());
        let lasts: Vec<Option<&ArrayRef>> = counters.iter().map(|c| batch.column_by_name(&format!("{c}_last"))).collect();
        for row in 0..batch.num_rows() {
            series_key(&mut key, host, &keys, row);
            let values = lasts.iter().map(|a| a.and_then(|a| u64_at(a, row))).collect();
            out.insert(key.clone(), values);
        }
    }
    Ok(out)
}

fn counter_columns(table: Table) -> impl Iterator<Item = (&'static str, ColumnType)> {
    table.value_columns().iter().copied().filter(move |(n, _)| table.column_kind(n) == Some(ColumnKind::Counter))
}

fn read_batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch, ArchiverError>> + use<>, ArchiverError> {
    let file = File::open(path).map_err(|source| ArchiverError::Io { what: "open", path: path.to_owned(), source })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|source| ArchiverError::Parquet { path: path.to_owned(), source })?;
    let path = path.to_owned();
    Ok(reader.map(move |b| b.map_err(|e| ArchiverError::Parquet { path: path.clone(), source: e.into() })))
}

/// The key columns of `table` in `batch` (absent ones as `None`).
fn key_arrays(batch: &RecordBatch, table: Table) -> Vec<Option<&ArrayRef>> {
    table.rollup_key_columns().iter().map(|(n, _)| batch.column_by_name(n)).collect()
}

/// Encodes a row's series (host and key values) into `out`: the map key, and the order of
/// a bucket's rows in the output.
fn series_key(out: &mut Vec<u8>, host: Option<&StringArray>, keys: &[Option<&ArrayRef>], row: usize) {
    out.clear();
    let string = |out: &mut Vec<u8>, s: Option<&str>| match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(s.as_bytes());
            out.push(0xff); // not in UTF-8: ends the string
        }
    };
    string(out, host.map(|h| h.value(row)));
    for k in keys {
        match k {
            Some(a) if a.is_valid(row) => match a.as_string_opt::<i32>() {
                Some(s) => string(out, Some(s.value(row))),
                None => {
                    out.push(1);
                    out.extend_from_slice(&u64_at(a, row).unwrap_or(0).to_be_bytes());
                }
            },
            _ => out.push(0),
        }
    }
}

/// A `UInt32` or `UInt64` value as `u64` (`None` when NULL or of another type).
fn u64_at(a: &ArrayRef, row: usize) -> Option<u64> {
    if a.is_null(row) {
        return None;
    }
    if let Some(v) = a.as_primitive_opt::<UInt64Type>() {
        return Some(v.value(row));
    }
    a.as_primitive_opt::<UInt32Type>().map(|v| u64::from(v.value(row)))
}

/// One value column's figures in one bucket of one series.
#[derive(Debug, Clone, Copy, Default)]
struct ValueAcc {
    min: u64,
    max: u64,
    sum: u64,
    count: u32,
    last: Option<u64>,
    increase: u64,
    resets: u32,
    stepped: bool,
}

#[derive(Debug, Clone)]
struct BucketAcc {
    bucket: i64,
    series: u32,
    samples: u32,
    values: Vec<ValueAcc>,
}

/// One level's open buckets: (bucket start, series) -> index, and the accumulators.
type LevelBuckets = (HashMap<(i64, u32), usize>, Vec<BucketAcc>);

/// A series: its key (encoded), host and key values.
struct Series {
    key: Vec<u8>,
    host: String,
    keys: Vec<Option<KeyValue>>,
    /// Per value column, the last value seen (counters' steps start from it).
    last: Vec<Option<u64>>,
}

#[derive(Debug, Clone)]
enum KeyValue {
    U(u64),
    S(String),
}

/// One rollup level of a raw file (a day or a month of one zone and table, rows in time
/// order), as batches: read in batches, summarised per series and bucket, a batch out each
/// time the input passes an hour (minute level) or a day (hour level), so what is held is
/// one hour's or one day's buckets whatever the file's length.
struct RollupStream {
    path: PathBuf,
    input: Box<dyn Iterator<Item = Result<RecordBatch, ArchiverError>>>,
    table: Table,
    zone: String,
    level: RollupLevel,
    /// The value columns: (name, type, kind).
    values: Vec<(&'static str, ColumnType, ColumnKind)>,
    series: Vec<Series>,
    index: HashMap<Vec<u8>, u32>,
    previous: HashMap<Vec<u8>, Vec<Option<u64>>>,
    buckets: LevelBuckets,
    /// Start of the hour (minute level) or day (hour level) the open buckets are in.
    open: Option<i64>,
    /// A batch the last span ended inside, and where the next span starts in it.
    pending: Option<(RecordBatch, usize)>,
    done: bool,
    /// Raw rows read and rollup rows given out so far.
    rows_in: usize,
    rows_out: usize,
}

impl RollupStream {
    fn new(
        path: &Path,
        table: Table,
        zone: &str,
        level: RollupLevel,
        previous: HashMap<Vec<u8>, Vec<Option<u64>>>,
    ) -> Result<Self, ArchiverError> {
        let values = table
            .value_columns()
            .iter()
            .filter_map(|(n, t)| match table.column_kind(n) {
                Some(ColumnKind::Key) | None => None,
                Some(k) => Some((*n, *t, k)),
            })
            .collect();
        Ok(Self {
            path: path.to_owned(),
            input: Box::new(read_batches(path)?),
            table,
            zone: zone.to_owned(),
            level,
            values,
            series: Vec::new(),
            index: HashMap::new(),
            previous,
            buckets: LevelBuckets::default(),
            open: None,
            pending: None,
            done: false,
            rows_in: 0,
            rows_out: 0,
        })
    }

    /// The span whose buckets are given out together.
    fn span_start(&self, t: i64) -> i64 {
        match self.level {
            RollupLevel::Minute => Granularity::Hour.period_start(t),
            RollupLevel::Hour => Granularity::Day.period_start(t),
        }
    }

    /// The open buckets as a batch (sorted by bucket, then series), emptied.
    fn take_open(&mut self) -> Result<Option<RecordBatch>, ArchiverError> {
        let (index, mut accs) = std::mem::take(&mut self.buckets);
        drop(index);
        if accs.is_empty() {
            return Ok(None);
        }
        let series = &self.series;
        accs.sort_by(|a, b| (a.bucket, &series[a.series as usize].key).cmp(&(b.bucket, &series[b.series as usize].key)));
        self.rows_out += accs.len();
        rollup_batch(self.table, &self.zone, &self.values, &self.series, &accs).map(Some)
    }

    /// Adds rows `from..` of `batch` until the span changes; returns where it stopped.
    fn add(&mut self, batch: &RecordBatch, from: usize) -> Result<usize, ArchiverError> {
        let Some(time) = batch.column_by_name("time").and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>()) else {
            return Err(ArchiverError::Corrupt { path: self.path.clone(), reason: "no time column" });
        };
        let host = batch.column_by_name("host").map(|a| a.as_string::<i32>());
        let keys = key_arrays(batch, self.table);
        let cols: Vec<Option<&ArrayRef>> = self.values.iter().map(|(n, _, _)| batch.column_by_name(n)).collect();
        let mut key = Vec::new();
        for row in from..batch.num_rows() {
            let t = time.value(row);
            let span = self.span_start(t);
            match self.open {
                Some(open) if open != span => return Ok(row),
                None => self.open = Some(span),
                Some(_) => {}
            }
            self.rows_in += 1;
            series_key(&mut key, host, &keys, row);
            let s = match self.index.get(key.as_slice()) {
                Some(s) => *s,
                None => {
                    let mut last = vec![None; self.values.len()];
                    if let Some(prev) = self.previous.get(&key) {
                        let counters = self.values.iter().enumerate().filter(|(_, (_, _, k))| *k == ColumnKind::Counter);
                        for ((slot, _), v) in counters.zip(prev) {
                            last[slot] = *v;
                        }
                    }
                    self.series.push(Series {
                        key: key.clone(),
                        host: host.map(|h| h.value(row).to_owned()).unwrap_or_default(),
                        keys: keys
                            .iter()
                            .map(|a| {
                                let a = a.filter(|a| a.is_valid(row))?;
                                Some(match a.as_string_opt::<i32>() {
                                    Some(s) => KeyValue::S(s.value(row).to_owned()),
                                    None => KeyValue::U(u64_at(a, row)?),
                                })
                            })
                            .collect(),
                        last,
                    });
                    let s = (self.series.len() - 1) as u32;
                    self.index.insert(key.clone(), s);
                    s
                }
            };
            let bucket = self.level.bucket_start(t);
            let (idx, accs) = &mut self.buckets;
            let slot = *idx.entry((bucket, s)).or_insert_with(|| {
                accs.push(BucketAcc { bucket, series: s, samples: 0, values: vec![ValueAcc::default(); self.values.len()] });
                accs.len() - 1
            });
            let acc = &mut accs[slot];
            acc.samples += 1;
            let ser = &mut self.series[s as usize];
            for (j, (_, ty, kind)) in self.values.iter().enumerate() {
                let Some(v) = cols[j].and_then(|a| u64_at(a, row)) else { continue };
                let step = match (kind, ser.last[j]) {
                    (ColumnKind::Counter, Some(p)) => Some(counter_step(p, v, if *ty == ColumnType::U32 { 32 } else { 64 })),
                    _ => None,
                };
                ser.last[j] = Some(v);
                let acc = &mut acc.values[j];
                if acc.count == 0 {
                    (acc.min, acc.max) = (v, v);
                }
                acc.min = acc.min.min(v);
                acc.max = acc.max.max(v);
                acc.sum = acc.sum.saturating_add(v);
                acc.count += 1;
                acc.last = Some(v);
                if let Some((add, reset)) = step {
                    acc.increase = acc.increase.saturating_add(add);
                    acc.resets += u32::from(reset);
                    acc.stepped = true;
                }
            }
        }
        Ok(batch.num_rows())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArchiverError> {
        loop {
            let (batch, from) = match self.pending.take() {
                Some(p) => p,
                None if self.done => return Ok(None),
                None => match self.input.next().transpose()? {
                    Some(batch) => (batch, 0),
                    None => {
                        self.done = true;
                        return self.take_open();
                    }
                },
            };
            let stop = self.add(&batch, from)?;
            if stop < batch.num_rows() {
                // The span changed at `stop`: give out the finished one, then go on from there.
                self.pending = Some((batch, stop));
                self.open = None;
                if let Some(out) = self.take_open()? {
                    return Ok(Some(out));
                }
            }
        }
    }
}

impl Iterator for RollupStream {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().map_err(|e| ArrowError::ExternalError(Box::new(e))).transpose()
    }
}

fn rollup_batch(
    table: Table,
    zone: &str,
    values: &[(&'static str, ColumnType, ColumnKind)],
    series: &[Series],
    accs: &[BucketAcc],
) -> Result<RecordBatch, ArchiverError> {
    let n = accs.len();
    let mut columns: Vec<ArrayRef> = Vec::new();
    columns.push(Arc::new(TimestampMicrosecondArray::from_iter_values(accs.iter().map(|a| a.bucket)).with_timezone("UTC")));
    columns.push(Arc::new(StringArray::from_iter_values(accs.iter().map(|a| series[a.series as usize].host.as_str()))));
    columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(zone, n))));
    for (k, (_, ty)) in table.rollup_key_columns().iter().enumerate() {
        let key = |a: &BucketAcc| series[a.series as usize].keys[k].as_ref();
        let array: ArrayRef = match ty {
            ColumnType::Utf8 => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                for a in accs {
                    match key(a) {
                        Some(KeyValue::S(s)) => b.append_value(s),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::U32 => Arc::new(
                accs.iter()
                    .map(|a| match key(a) {
                        Some(KeyValue::U(v)) => u32::try_from(*v).ok(),
                        _ => None,
                    })
                    .collect::<UInt32Array>(),
            ),
            ColumnType::U64 => Arc::new(
                accs.iter()
                    .map(|a| match key(a) {
                        Some(KeyValue::U(v)) => Some(*v),
                        _ => None,
                    })
                    .collect::<UInt64Array>(),
            ),
        };
        columns.push(array);
    }
    columns.push(Arc::new(UInt32Array::from_iter_values(accs.iter().map(|a| a.samples))));
    for c in table.rollup_columns() {
        let Some(j) = values.iter().position(|(n, _, _)| *n == c.source) else {
            return Err(ArchiverError::Config(format!("rollup column {} has no source", c.name)));
        };
        let pick = |v: &ValueAcc| -> Option<u64> {
            let any = v.count > 0;
            match c.aggregate {
                RollupAggregate::Min => any.then_some(v.min),
                RollupAggregate::Max => any.then_some(v.max),
                RollupAggregate::Sum => any.then_some(v.sum),
                RollupAggregate::Count => Some(u64::from(v.count)),
                RollupAggregate::Last => v.last,
                RollupAggregate::Increase => v.stepped.then_some(v.increase),
                RollupAggregate::Resets => v.stepped.then_some(u64::from(v.resets)),
            }
        };
        let wide = matches!(c.data_type(), datafusion::arrow::datatypes::DataType::UInt64);
        let array: ArrayRef = if wide {
            let mut b = UInt64Builder::with_capacity(n);
            for a in accs {
                b.append_option(pick(&a.values[j]));
            }
            Arc::new(b.finish())
        } else {
            let mut b = UInt32Builder::with_capacity(n);
            for a in accs {
                b.append_option(pick(&a.values[j]).map(|v| v as u32));
            }
            Arc::new(b.finish())
        };
        columns.push(array);
    }
    RecordBatch::try_new(table.rollup_schema(), columns)
        .map_err(|source| ArchiverError::Arrow { context: format!("building the rollup of {table} for {zone}"), source })
}

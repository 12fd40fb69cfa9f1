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
use std::path::Path;
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

/// Publishes the rollups of the day file `day_file` (a zone's day of one table), unless
/// they are in place already (a repeat after a crash); see the module docs.
pub fn publish_rollups(
    root: &Path,
    encoder: &Encoder,
    writer: WriterId,
    day_file: &ParquetFilePath,
) -> Result<PublishedRollups, ArchiverError> {
    let key = &day_file.key;
    let mut out = PublishedRollups::default();
    if !key.table.has_rollups() || key.rollup.is_some() || key.granularity != Granularity::Day {
        return Ok(out);
    }
    let files: Vec<ParquetFilePath> =
        RollupLevel::ALL.iter().map(|l| ParquetFilePath::new(key.rollup_of(*l), day_file.id)).collect();
    // The hourly file is written last: once it is there, the day's rollups are.
    if !files.iter().any(|f| f.key.rollup == Some(RollupLevel::Hour) && f.absolute_path(root).exists()) {
        let previous = previous_counters(root, writer, day_file)?;
        let (rows, batches) = summarise(&day_file.absolute_path(root), key.table, &key.zone, previous)?;
        for (file, batch) in files.iter().zip(batches) {
            // A level whose rows would not summarise (a sample a minute or slower: about a
            // row per bucket) is not written; the raw rows answer at that resolution.
            if file.key.rollup == Some(RollupLevel::Minute) && batch.num_rows() * 2 > rows {
                continue;
            }
            encoder.publish(root, file, &[batch])?;
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
/// previous day's hourly rollup of this writer, if there is one.
fn previous_counters(
    root: &Path,
    writer: WriterId,
    day_file: &ParquetFilePath,
) -> Result<HashMap<Vec<u8>, Vec<Option<u64>>>, ArchiverError> {
    let table = day_file.key.table;
    let mut out = HashMap::new();
    let counters: Vec<&str> = counter_columns(table).map(|(n, _)| n).collect();
    if counters.is_empty() {
        return Ok(out);
    }
    let mut prev = day_file.key.rollup_of(RollupLevel::Hour);
    prev.start_us -= Granularity::Day.period_us();
    let ours: Vec<_> = partition_files(root, &prev)?.into_iter().map(|(id, _)| id).filter(|id| id.writer == writer).collect();
    let Some(id) = live_files(ours).into_iter().max_by_key(|id| id.hi) else { return Ok(out) };
    let path = ParquetFilePath::new(prev, id).absolute_path(root);
    let mut key = Vec::new();
    for batch in read_batches(&path)? {
        let batch = batch?;
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

/// One level's buckets: (bucket start, series) -> index, and the accumulators.
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

/// Reads `path` (a day file of `table`, rows in time order) and returns its rows and its
/// rollup batches, one per [`RollupLevel::ALL`].
fn summarise(
    path: &Path,
    table: Table,
    zone: &str,
    previous: HashMap<Vec<u8>, Vec<Option<u64>>>,
) -> Result<(usize, Vec<RecordBatch>), ArchiverError> {
    let mut rows = 0usize;
    let values: Vec<(&'static str, ColumnType, ColumnKind)> = table
        .value_columns()
        .iter()
        .filter_map(|(n, t)| match table.column_kind(n) {
            Some(ColumnKind::Key) | None => None,
            Some(k) => Some((*n, *t, k)),
        })
        .collect();
    let counter_slots: Vec<usize> =
        values.iter().enumerate().filter(|(_, (_, _, k))| *k == ColumnKind::Counter).map(|(i, _)| i).collect();
    let mut series: Vec<Series> = Vec::new();
    let mut index: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut buckets: [LevelBuckets; 2] = Default::default();
    let mut key = Vec::new();
    for batch in read_batches(path)? {
        let batch = batch?;
        let time = batch.column_by_name("time").and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>());
        let Some(time) = time else {
            return Err(ArchiverError::Corrupt { path: path.to_owned(), reason: "no time column" });
        };
        let host = batch.column_by_name("host").map(|a| a.as_string::<i32>());
        let keys = key_arrays(&batch, table);
        rows += batch.num_rows();
        let cols: Vec<Option<&ArrayRef>> = values.iter().map(|(n, _, _)| batch.column_by_name(n)).collect();
        for row in 0..batch.num_rows() {
            series_key(&mut key, host, &keys, row);
            let s = match index.get(key.as_slice()) {
                Some(s) => *s,
                None => {
                    let mut last = vec![None; values.len()];
                    if let Some(prev) = previous.get(&key) {
                        for (slot, v) in counter_slots.iter().zip(prev) {
                            last[*slot] = *v;
                        }
                    }
                    series.push(Series {
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
                    index.insert(key.clone(), (series.len() - 1) as u32);
                    (series.len() - 1) as u32
                }
            };
            let t = time.value(row);
            let slots: [usize; 2] = std::array::from_fn(|l| {
                let bucket = RollupLevel::ALL[l].bucket_start(t);
                let (idx, accs) = &mut buckets[l];
                *idx.entry((bucket, s)).or_insert_with(|| {
                    accs.push(BucketAcc { bucket, series: s, samples: 0, values: vec![ValueAcc::default(); values.len()] });
                    accs.len() - 1
                })
            });
            for l in 0..2 {
                buckets[l].1[slots[l]].samples += 1;
            }
            let ser = &mut series[s as usize];
            for (j, (_, ty, kind)) in values.iter().enumerate() {
                let Some(v) = cols[j].and_then(|a| u64_at(a, row)) else { continue };
                let step = match (kind, ser.last[j]) {
                    (ColumnKind::Counter, Some(p)) => Some(counter_step(p, v, if *ty == ColumnType::U32 { 32 } else { 64 })),
                    _ => None,
                };
                ser.last[j] = Some(v);
                for l in 0..2 {
                    let acc = &mut buckets[l].1[slots[l]].values[j];
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
        }
    }
    let mut out = Vec::with_capacity(2);
    for (_, mut accs) in buckets {
        accs.sort_by(|a, b| (a.bucket, &series[a.series as usize].key).cmp(&(b.bucket, &series[b.series as usize].key)));
        out.push(rollup_batch(table, zone, &values, &series, &accs)?);
    }
    Ok((rows, out))
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

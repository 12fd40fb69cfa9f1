//! Building a data file's index: one pass over its indexed columns finds each measured
//! column's tail bounds and each key column's values; a second pass over all its columns
//! copies the rows inside a tail. Memory is bounded by the tails (at most
//! [`tail_rows_per_end`] values per end and column are tracked) and the key sets, never the
//! file: both passes stream the file a batch at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use archive_layout::{ColumnType, IndexKind, Table};
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use roaring::RoaringBitmap;

use crate::side_file::{DataFileIdentity, Section, SideFile, TailRef};
use crate::{KeyCodes, Summary, Tail, ValueIndexError, key_code_of_str};

/// Rows a tail may hold at each end of one column in a file of `rows` rows: 0.1% of them,
/// at least 2. A condition matching more of a file than that reads the file itself.
pub fn tail_rows_per_end(rows: u64) -> u64 {
    (rows / 1000).max(2)
}

const BATCH_ROWS: usize = 8192;

/// A streamed index's rows that may be in a tail are pruned once more than this (and than
/// four times what its tails can hold); small in tests, so that they prune.
const PRUNE_FLOOR_ROWS: usize = if cfg!(test) { 64 } else { 2 * BATCH_ROWS };

/// Tail rows below which a side file keeps them in one section.
const ONE_SECTION_BELOW_ROWS: usize = 512;

/// The most extreme values of one end of a column, with their counts: at the end, the tail
/// is every value but the least extreme kept, which is the tail's bound.
#[derive(Debug)]
struct TailEnd {
    /// Values kept, counted; ordered so that the least extreme is first.
    kept: BTreeMap<u64, u64>,
    total: u64,
    budget: u64,
}

impl TailEnd {
    fn new(budget: u64) -> Self {
        Self { kept: BTreeMap::new(), total: 0, budget }
    }

    /// Sees `key` (a value mapped so that larger is more extreme).
    fn see(&mut self, key: u64) {
        // Invariant: `kept` holds every value seen that is at least its first key, counted.
        // Once more rows are kept than a tail holds, a value below the first key can be
        // neither in the tail nor its bound.
        if self.total > self.budget && self.kept.first_key_value().is_some_and(|(&least, _)| key < least) {
            return;
        }
        *self.kept.entry(key).or_insert(0) += 1;
        self.total += 1;
        while let Some((&least, &n)) = self.kept.first_key_value() {
            if self.total - n > self.budget {
                self.kept.remove(&least);
                self.total -= n;
            } else {
                break;
            }
        }
    }

    /// The bound (a key): rows more extreme than it are the tail. `None`: everything seen
    /// fits in a tail (no bound excludes anything), or nothing was seen.
    fn bound(&self) -> Option<u64> {
        (self.total > self.budget).then(|| self.kept.first_key_value().map(|(&k, _)| k)).flatten()
    }
}

#[derive(Debug)]
enum Tracker {
    Tails {
        top: TailEnd,
        bottom: TailEnd,
    },
    /// `None`: the column has a type the set cannot code; no set is kept.
    Keys(Option<RoaringBitmap>),
}

/// The numbers of a `UInt32` or `UInt64` column as `u64`, `None` for a NULL.
fn numbers(array: &dyn Array) -> Option<Box<dyn Iterator<Item = Option<u64>> + '_>> {
    if let Some(a) = array.as_primitive_opt::<UInt32Type>() {
        return Some(Box::new(a.iter().map(|v| v.map(u64::from))));
    }
    array.as_primitive_opt::<UInt64Type>().map(|a| Box::new(a.iter()) as Box<dyn Iterator<Item = Option<u64>>>)
}

fn parquet_err(path: &Path) -> impl Fn(datafusion::parquet::errors::ParquetError) -> ValueIndexError + '_ {
    move |source| ValueIndexError::Parquet { path: path.to_owned(), source }
}

/// A reader of `columns` (all if `None`) of the file at `path`, and the file's rows.
fn reader(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<(datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader, u64), ValueIndexError> {
    let file = File::open(path).map_err(|source| ValueIndexError::Io { what: "open", path: path.to_owned(), source })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err(path))?.with_batch_size(BATCH_ROWS);
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let builder = match columns {
        None => builder,
        Some(names) => {
            let schema = builder.schema();
            let roots: Vec<usize> = names.iter().filter_map(|n| schema.index_of(n).ok()).collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
    };
    Ok((builder.build().map_err(parquet_err(path))?, rows))
}

/// The first pass: each measured column's tail ends and each key column's set, a batch at
/// a time.
struct FirstPass {
    indexed: Vec<(&'static str, ColumnType, IndexKind)>,
    trackers: Vec<Tracker>,
}

/// A tail of one column: its name, whether it is the top one, and its bound.
type TailBound = (&'static str, bool, u64);

impl FirstPass {
    /// `None` if `table` has no indexed column.
    fn new(table: Table, rows: u64) -> Option<Self> {
        let indexed: Vec<(&'static str, ColumnType, IndexKind)> = table.indexed_columns().collect();
        if indexed.is_empty() {
            return None;
        }
        let budget = tail_rows_per_end(rows);
        let trackers = indexed
            .iter()
            .map(|(_, _, kind)| match kind {
                IndexKind::Tails => Tracker::Tails { top: TailEnd::new(budget), bottom: TailEnd::new(budget) },
                IndexKind::KeySet => Tracker::Keys(Some(RoaringBitmap::new())),
            })
            .collect();
        Some(Self { indexed, trackers })
    }

    fn see(&mut self, batch: &RecordBatch) {
        for ((name, ty, _), tracker) in self.indexed.iter().zip(self.trackers.iter_mut()) {
            let Some(array) = batch.column_by_name(name) else { continue };
            match tracker {
                Tracker::Tails { top, bottom } => {
                    for v in numbers(array.as_ref()).into_iter().flatten().flatten() {
                        top.see(v);
                        bottom.see(u64::MAX - v);
                    }
                }
                Tracker::Keys(Some(set)) => {
                    // Coded as a reader codes a literal: by the column's type in the table.
                    let known = match ty {
                        ColumnType::Utf8 => array.as_string_opt::<i32>().map(|strings| {
                            set.extend(strings.iter().flatten().map(key_code_of_str));
                        }),
                        ColumnType::U32 => {
                            array.as_primitive_opt::<UInt32Type>().map(|values| set.extend(values.iter().flatten()))
                        }
                        ColumnType::U64 => array.as_primitive_opt::<UInt64Type>().map(|values| {
                            set.extend(values.iter().flatten().filter_map(|v| crate::key_code_of_u64(v, false)));
                        }),
                    };
                    // A column stored as another type than the table's (a foreign writer's):
                    // no set, rather than one that would wrongly say a value is absent.
                    if known.is_none() {
                        *tracker = Tracker::Keys(None);
                    }
                }
                Tracker::Keys(None) => {}
            }
        }
    }

    /// Which rows of `batch` may still be in a tail once every row is seen: those strictly
    /// more extreme than an end's least kept value (the bound can only move outwards from
    /// it), every row with a value at an end that has not kept more than its budget yet.
    fn may_be_in_a_tail(&self, batch: &RecordBatch) -> Vec<bool> {
        let mut maybe = vec![false; batch.num_rows()];
        for ((name, _, _), tracker) in self.indexed.iter().zip(&self.trackers) {
            let Tracker::Tails { top, bottom } = tracker else { continue };
            let Some(array) = batch.column_by_name(name) else { continue };
            // The bound so far: the least extreme value kept once more values were seen than
            // a tail holds (the final bound is it or a more extreme one).
            let (above, below) = (top.bound(), bottom.bound().map(|k| u64::MAX - k));
            for (m, v) in maybe.iter_mut().zip(numbers(array.as_ref()).into_iter().flatten()) {
                if let Some(v) = v {
                    *m |= above.is_none_or(|a| v > a) || below.is_none_or(|b| v < b);
                }
            }
        }
        maybe
    }

    /// The summary (tail bounds and ends, key sets) and the tails the second pass copies.
    fn finish(self) -> (Summary, Vec<TailBound>) {
        let mut summary = Summary::default();
        let mut bounds: Vec<(&'static str, Tail)> = Vec::new();
        for ((name, _, _), tracker) in self.indexed.iter().zip(self.trackers) {
            match tracker {
                Tracker::Tails { top, bottom } => {
                    let tail = Tail {
                        above: top.bound(),
                        below: bottom.bound().map(|k| u64::MAX - k),
                        max: top.kept.last_key_value().map(|(&k, _)| k),
                        min: bottom.kept.last_key_value().map(|(&k, _)| u64::MAX - k),
                    };
                    if tail.above.is_some() || tail.below.is_some() || tail.max.is_some() {
                        summary.tails.insert((*name).to_owned(), tail);
                        bounds.push((name, tail));
                    }
                }
                Tracker::Keys(Some(set)) => {
                    summary.keys.insert((*name).to_owned(), KeyCodes(set));
                }
                Tracker::Keys(None) => {}
            }
        }
        let tails = bounds
            .iter()
            .flat_map(|(name, t)| [t.above.map(|a| (*name, true, a)), t.below.map(|b| (*name, false, b))].into_iter().flatten())
            .collect();
        (summary, tails)
    }
}

/// Builds the index of the `table` zone file at `data`: `None` if the table has no indexed
/// column. The file is read twice, a batch at a time.
pub fn build_side_file(table: Table, data: &Path) -> Result<Option<SideFile>, ValueIndexError> {
    let names: Vec<&str> = table.indexed_columns().map(|(name, _, _)| name).collect();
    if names.is_empty() {
        return Ok(None);
    }
    let identity = DataFileIdentity::of(data)?;
    // Pass 1: tail bounds and key sets.
    let (indexed_columns, rows) = reader(data, Some(&names))?;
    let Some(mut first) = FirstPass::new(table, rows) else { return Ok(None) };
    for batch in indexed_columns {
        first.see(&batch.map_err(|source| ValueIndexError::Arrow { path: data.to_owned(), source })?);
    }
    let (summary, tails) = first.finish();
    // Pass 2: the rows inside a tail, every column.
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, ValueIndexError>>> = if tails.is_empty() {
        Box::new(std::iter::empty())
    } else {
        Box::new(reader(data, None)?.0.map(|b| b.map_err(|source| ValueIndexError::Arrow { path: data.to_owned(), source })))
    };
    side_file(data, identity, summary, &tails, batches).map(Some)
}

/// The index of a data file built from its rows as they are written, so that the file is
/// not read again (but for its footer, to tie the index to it): the same side file as
/// [`build_side_file`] gives of that file. It keeps the rows that may be in a tail so far
/// (a superset, pruned as the tails' bounds move outwards), at most a few times the tails'
/// rows and a batch.
pub struct StreamedIndex {
    first: FirstPass,
    /// The rows the file is to have (its tails' budget depends on them).
    rows: u64,
    /// The rows seen.
    seen: u64,
    /// Rows that may be in a tail, in the file's order.
    candidates: Vec<RecordBatch>,
    candidate_rows: usize,
    /// The first batch that could not be filtered.
    failed: Option<datafusion::arrow::error::ArrowError>,
}

impl std::fmt::Debug for StreamedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedIndex").field("rows", &self.rows).field("seen", &self.seen).finish_non_exhaustive()
    }
}

impl StreamedIndex {
    /// An index of a `table` file of `rows` rows; `None` if the table has no indexed column.
    pub fn new(table: Table, rows: u64) -> Option<Self> {
        let first = FirstPass::new(table, rows)?;
        Some(Self { first, rows, seen: 0, candidates: Vec::new(), candidate_rows: 0, failed: None })
    }

    /// Sees the next batch written to the file.
    pub fn see(&mut self, batch: &RecordBatch) {
        self.seen += batch.num_rows() as u64;
        self.first.see(batch);
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.keep_candidates(batch) {
            self.failed = Some(e);
        }
    }

    fn keep_candidates(&mut self, batch: &RecordBatch) -> Result<(), datafusion::arrow::error::ArrowError> {
        let maybe = self.first.may_be_in_a_tail(batch);
        let n = maybe.iter().filter(|&&m| m).count();
        if n > 0 {
            let kept =
                if n == batch.num_rows() { batch.clone() } else { filter_record_batch(batch, &BooleanArray::from(maybe))? };
            self.candidate_rows += kept.num_rows();
            self.candidates.push(kept);
        }
        // Pruned again once they are well above what the tails can hold.
        let tails = self.first.trackers.iter().filter(|t| matches!(t, Tracker::Tails { .. })).count();
        let limit = (4 * 2 * tails * tail_rows_per_end(self.rows) as usize).max(PRUNE_FLOOR_ROWS);
        if self.candidate_rows > limit {
            let mut pruned = Vec::with_capacity(self.candidates.len());
            for b in std::mem::take(&mut self.candidates) {
                let maybe = self.first.may_be_in_a_tail(&b);
                if maybe.iter().any(|&m| m) {
                    pruned.push(filter_record_batch(&b, &BooleanArray::from(maybe))?);
                }
            }
            self.candidate_rows = pruned.iter().map(RecordBatch::num_rows).sum();
            self.candidates = pruned;
        }
        Ok(())
    }

    /// The side file of the data file now written at `data` (its footer is read to tie the
    /// index to it). Fails if the rows seen are not the rows announced.
    pub fn finish(self, data: &Path) -> Result<SideFile, ValueIndexError> {
        if let Some(source) = self.failed {
            return Err(ValueIndexError::Arrow { path: data.to_owned(), source });
        }
        if self.seen != self.rows {
            return Err(ValueIndexError::RowsNotAnnounced { path: data.to_owned(), announced: self.rows, seen: self.seen });
        }
        let identity = DataFileIdentity::of(data)?;
        let (summary, tails) = self.first.finish();
        side_file(data, identity, summary, &tails, self.candidates.into_iter().map(Ok))
    }
}

/// The side file of `data` from its summary and, in the file's order, batches holding every
/// row inside a tail (and maybe others): the second pass. Each tail row goes in the section
/// of its first tail (in the order of `tails`), each section noting every tail its rows are
/// in.
fn side_file(
    data: &Path,
    identity: DataFileIdentity,
    mut summary: Summary,
    tails: &[TailBound],
    batches: impl Iterator<Item = Result<RecordBatch, ValueIndexError>>,
) -> Result<SideFile, ValueIndexError> {
    let mut sections: Vec<(Vec<RecordBatch>, std::collections::BTreeSet<usize>)> =
        (0..tails.len()).map(|_| (Vec::new(), std::collections::BTreeSet::new())).collect();
    for batch in batches {
        let batch = batch?;
        let n = batch.num_rows();
        // in_tail[t][row]
        let mut in_tail = vec![vec![false; n]; tails.len()];
        for (t, (name, top, bound)) in tails.iter().enumerate() {
            let Some(array) = batch.column_by_name(name) else { continue };
            for (i, v) in numbers(array.as_ref()).into_iter().flatten().enumerate() {
                if let Some(v) = v {
                    in_tail[t][i] = if *top { v > *bound } else { v < *bound };
                }
            }
        }
        let mut first: Vec<Option<usize>> = vec![None; n];
        for (i, f) in first.iter_mut().enumerate() {
            *f = (0..tails.len()).find(|&t| in_tail[t][i]);
        }
        for (s, (batches, holds)) in sections.iter_mut().enumerate() {
            let keep: Vec<bool> = first.iter().map(|f| *f == Some(s)).collect();
            if !keep.iter().any(|&k| k) {
                continue;
            }
            for (i, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
                holds.extend((0..tails.len()).filter(|&t| in_tail[t][i]));
            }
            let kept = filter_record_batch(&batch, &BooleanArray::from(keep))
                .map_err(|source| ValueIndexError::Arrow { path: data.to_owned(), source })?;
            batches.push(kept);
        }
    }
    // A small side file is one section: each section costs a Parquet footer and pages
    // (about 1.5 KB for a few rows), more than reading its neighbours' rows.
    let total: usize = sections.iter().flat_map(|(b, _)| b.iter().map(RecordBatch::num_rows)).sum();
    if total < ONE_SECTION_BELOW_ROWS {
        let mut all = (Vec::new(), std::collections::BTreeSet::new());
        for (batches, holds) in std::mem::take(&mut sections) {
            all.0.extend(batches);
            all.1.extend(holds);
        }
        sections.push(all);
    }
    let mut out_sections = Vec::new();
    for (batches, holds) in sections {
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if rows == 0 {
            continue;
        }
        let tails_held = holds.iter().map(|&t| TailRef { column: tails[t].0.to_owned(), top: tails[t].1 }).collect();
        out_sections.push(Section { tails: tails_held, rows, parquet: encode_tail(data, &batches)? });
    }
    summary.tail_rows = out_sections.iter().map(|s| s.rows).sum();
    Ok(SideFile { identity, summary, sections: out_sections })
}

/// The tail rows as Parquet bytes (empty when there are none).
fn encode_tail(data: &Path, batches: &[RecordBatch]) -> Result<bytes::Bytes, ValueIndexError> {
    let Some(first) = batches.first() else { return Ok(bytes::Bytes::new()) };
    // Small: no statistics (the side file is read whole), no Arrow schema (a reader knows
    // the table's), LZ4 (a reader creates a zstd context per column chunk, which costs more
    // than decoding a tail) and dictionaries only when there is enough to gain.
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let compression = if rows >= 64 { Compression::LZ4_RAW } else { Compression::UNCOMPRESSED };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_dictionary_enabled(rows >= 64)
        // Read whole: no offset index, no name of the writer (each costs bytes per file).
        .set_offset_index_disabled(true)
        .set_created_by(String::new());
    // Numbers delta-encoded: tail rows are in time order and their values close together
    // (below 64 rows plain costs less than delta's block headers).
    for field in first.schema().fields().iter().filter(|_| rows >= 64) {
        if field.data_type().is_integer() || matches!(field.data_type(), DataType::Timestamp(..)) {
            let column = ColumnPath::from(field.name().as_str());
            props = props
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
        }
    }
    let props = props.build();
    let options = ArrowWriterOptions::new().with_properties(props).with_skip_arrow_metadata(true);
    let mut writer =
        ArrowWriter::try_new_with_options(Vec::new(), Arc::clone(&first.schema()), options).map_err(parquet_err(data))?;
    for b in batches {
        writer.write(b).map_err(parquet_err(data))?;
    }
    Ok(bytes::Bytes::from(writer.into_inner().map_err(parquet_err(data))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bound found by streaming equals the one found by sorting everything.
    fn bound_by_sorting(values: &[u64], budget: u64) -> Option<u64> {
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        for &v in values {
            *counts.entry(v).or_insert(0) += 1;
        }
        let mut taken = 0;
        for (&v, &n) in counts.iter().rev() {
            if taken + n > budget {
                return Some(v);
            }
            taken += n;
        }
        None
    }

    proptest! {
        #[test]
        fn the_streamed_bound_is_the_sorted_one(values in proptest::collection::vec(0u64..40, 0..300), budget in 1u64..20) {
            let mut end = TailEnd::new(budget);
            for &v in &values {
                end.see(v);
            }
            let bound = end.bound();
            prop_assert_eq!(bound, bound_by_sorting(&values, budget));
            // The tail (values above the bound) fits, and taking the bound too would not.
            if let Some(b) = bound {
                let above = values.iter().filter(|&&v| v > b).count() as u64;
                let at_or_above = values.iter().filter(|&&v| v >= b).count() as u64;
                prop_assert!(above <= budget && at_or_above > budget);
            } else {
                prop_assert!(values.len() as u64 <= budget);
            }
        }
    }

    #[test]
    fn a_tail_holds_at_most_a_thousandth_and_at_least_two_rows() {
        assert_eq!(tail_rows_per_end(0), 2);
        assert_eq!(tail_rows_per_end(100_000), 100);
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray, UInt32Array};
    use proptest::prelude::*;

    /// A `process` file of `usage` and `pid` values (NULL where `None`).
    fn write_process_file(dir: &Path, usage: &[Option<u32>], pid: &[u32]) -> std::path::PathBuf {
        let schema = Table::Process.schema();
        let batch = process_batch(usage, pid);
        let path = dir.join("00000001-0000000000000001-0000000000000001.parquet");
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(300)).build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    /// The rows of [`write_process_file`].
    fn process_batch(usage: &[Option<u32>], pid: &[u32]) -> RecordBatch {
        let schema = Table::Process.schema();
        let n = usage.len();
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from_iter_values((0..n as i64).map(|i| i * 1000)).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["h"; n])),
                Arc::new(StringArray::from(vec!["z"; n])),
                Arc::new(UInt32Array::from(pid.to_vec())),
                Arc::new(StringArray::from_iter_values(pid.iter().map(|p| format!("exec{}", p % 5)))),
                Arc::new(UInt32Array::from(usage.to_vec())),
                Arc::new(UInt32Array::from(vec![0u32; n])),
            ],
        )
        .unwrap()
    }

    /// Every row of a side file's sections, section by section, as one batch each.
    fn section_rows(side: &SideFile) -> Vec<(Vec<TailRef>, RecordBatch)> {
        side.sections
            .iter()
            .map(|s| {
                let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(s.parquet.clone())
                    .unwrap()
                    .build()
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let rows = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
                (s.tails.clone(), rows)
            })
            .collect()
    }

    fn decode_section(parquet: &bytes::Bytes) -> Vec<u32> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(parquet.clone()).unwrap().build().unwrap();
        reader
            .flat_map(|b| {
                b.unwrap().column_by_name("usage").unwrap().as_primitive::<UInt32Type>().iter().flatten().collect::<Vec<_>>()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_side_file_holds_exactly_the_rows_beyond_its_bounds(
            usage in proptest::collection::vec(proptest::option::weighted(0.9, 0u32..60), 1..1500),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let pid: Vec<u32> = (0..usage.len() as u32).map(|i| 100 + i % 37).collect();
            let data = write_process_file(dir.path(), &usage, &pid);
            let side = build_side_file(Table::Process, &data).unwrap().unwrap();
            prop_assert!(side.describes(&data).unwrap());
            let budget = tail_rows_per_end(usage.len() as u64);
            let tail = side.summary.tails.get("usage").copied().unwrap_or_default();
            let in_tail = |v: u32| tail.above.is_some_and(|a| u64::from(v) > a) || tail.below.is_some_and(|b| u64::from(v) < b);
            let expected: Vec<u32> = usage.iter().flatten().copied().filter(|&v| in_tail(v)).collect();
            let above = usage.iter().flatten().filter(|&&v| tail.above.is_some_and(|a| u64::from(v) > a)).count() as u64;
            let below = usage.iter().flatten().filter(|&&v| tail.below.is_some_and(|b| u64::from(v) < b)).count() as u64;
            prop_assert!(above <= budget && below <= budget);
            prop_assert_eq!(tail.max, usage.iter().flatten().max().map(|&v| u64::from(v)));
            prop_assert_eq!(tail.min, usage.iter().flatten().min().map(|&v| u64::from(v)));
            let batches = side.tail_batches(Path::new("x.vidx")).unwrap();
            let mut got: Vec<u32> = batches
                .iter()
                .flat_map(|b| b.column_by_name("usage").unwrap().as_primitive::<UInt32Type>().iter().flatten().collect::<Vec<_>>())
                .collect();
            got.sort_unstable();
            let mut expected = expected;
            expected.sort_unstable();
            prop_assert_eq!(got, expected);
            // Each section lists its own tail first and holds only rows of the tails it lists.
            for s in &side.sections {
                let first = &s.tails[0];
                prop_assert_eq!(&first.column, "usage");
                for v in decode_section(&s.parquet) {
                    let top = tail.above.is_some_and(|a| u64::from(v) > a);
                    let bottom = tail.below.is_some_and(|b| u64::from(v) < b);
                    prop_assert!((top && s.tails.iter().any(|t| t.top)) || (bottom && s.tails.iter().any(|t| !t.top)));
                }
            }
            prop_assert_eq!(side.summary.tail_rows as usize, usage.iter().flatten().filter(|&&v| in_tail(v)).count());
            for p in &pid {
                prop_assert!(side.summary.keys["pid"].0.contains(*p));
            }
            prop_assert!(!side.summary.keys["pid"].0.contains(99));
            let first_exec = format!("exec{}", pid[0] % 5);
            prop_assert!(side.summary.keys["execname"].0.contains(crate::key_code_of_str(&first_exec)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Built from the rows as they are written, in batches of any size, the side file is
        /// the one built by reading the file.
        #[test]
        fn the_index_streamed_while_writing_is_the_one_built_from_the_file(
            usage in proptest::collection::vec(proptest::option::weighted(0.9, 0u32..60), 1..4000),
            cuts in proptest::collection::vec(1usize..700, 1..12),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let pid: Vec<u32> = (0..usage.len() as u32).map(|i| 100 + i % 37).collect();
            let data = write_process_file(dir.path(), &usage, &pid);
            let batch = process_batch(&usage, &pid);
            let mut streamed = StreamedIndex::new(Table::Process, usage.len() as u64).unwrap();
            let (mut at, mut cut) = (0, 0);
            while at < batch.num_rows() {
                let n = cuts[cut % cuts.len()].min(batch.num_rows() - at);
                streamed.see(&batch.slice(at, n));
                at += n;
                cut += 1;
            }
            let streamed = streamed.finish(&data).unwrap();
            let built = build_side_file(Table::Process, &data).unwrap().unwrap();
            prop_assert_eq!(&streamed.identity, &built.identity);
            prop_assert_eq!(&streamed.summary, &built.summary);
            prop_assert_eq!(section_rows(&streamed), section_rows(&built));
        }
    }

    #[test]
    fn a_streamed_index_of_other_rows_than_announced_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let usage: Vec<Option<u32>> = (0..500).map(|i| Some(i % 97)).collect();
        let data = write_process_file(dir.path(), &usage, &vec![1; 500]);
        let mut streamed = StreamedIndex::new(Table::Process, 501).unwrap();
        streamed.see(&process_batch(&usage, &vec![1; 500]));
        assert!(matches!(streamed.finish(&data), Err(ValueIndexError::RowsNotAnnounced { announced: 501, seen: 500, .. })));
    }

    #[test]
    fn a_side_file_of_a_rewritten_data_file_no_longer_describes_it() {
        let dir = tempfile::tempdir().unwrap();
        let usage: Vec<Option<u32>> = (0..500).map(|i| Some(i % 97)).collect();
        let data = write_process_file(dir.path(), &usage, &vec![1; 500]);
        let side = build_side_file(Table::Process, &data).unwrap().unwrap();
        let other: Vec<Option<u32>> = (0..500).map(|i| Some(i % 89)).collect();
        write_process_file(dir.path(), &other, &vec![1; 500]);
        assert!(!side.describes(&data).unwrap());
    }
}

#[cfg(test)]
mod section_tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array, new_null_array};

    /// A `mem` file of `rows` rows whose `rss` and `swap` move together (so rows sit in
    /// both columns' tails), the other columns NULL.
    fn write_mem_file(dir: &Path, rows: usize) -> std::path::PathBuf {
        let schema = Table::Mem.schema();
        let mut state = 7u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut rss, mut swap) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        for _ in 0..rows {
            let v = next() % 1_000_000;
            rss.push(v);
            // Mostly the same order as rss, sometimes not.
            swap.push(if next() % 4 == 0 { next() % 1_000_000 } else { v / 2 });
        }
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "time" => Arc::new(TimestampMicrosecondArray::from_iter_values(0..rows as i64).with_timezone("UTC")),
                    "host" | "zone" => Arc::new(StringArray::from(vec!["z"; rows])),
                    "rss" => Arc::new(UInt64Array::from(rss.clone())),
                    "swap" => Arc::new(UInt64Array::from(swap.clone())),
                    "maj_fault" => Arc::new(UInt32Array::from(vec![0u32; rows])),
                    _ => new_null_array(f.data_type(), rows),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let path = dir.join("00000001-0000000000000001-0000000000000001.parquet");
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    #[test]
    fn a_tails_rows_are_all_in_the_sections_that_list_it_each_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = write_mem_file(dir.path(), 300_000);
        let side = build_side_file(Table::Mem, &data).unwrap().unwrap();
        assert!(side.sections.len() > 1, "enough tail rows for a section per tail: {}", side.sections.len());
        // (time, rss, swap) of each section's rows: time is unique.
        let rows_of = |s: &Section| -> Vec<(i64, u64, u64)> {
            ParquetRecordBatchReaderBuilder::try_new(s.parquet.clone())
                .unwrap()
                .build()
                .unwrap()
                .flat_map(|b| {
                    let b = b.unwrap();
                    let t = b
                        .column_by_name("time")
                        .unwrap()
                        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                        .clone();
                    let r = b.column_by_name("rss").unwrap().as_primitive::<UInt64Type>().clone();
                    let w = b.column_by_name("swap").unwrap().as_primitive::<UInt64Type>().clone();
                    (0..b.num_rows()).map(move |i| (t.value(i), r.value(i), w.value(i))).collect::<Vec<_>>()
                })
                .collect()
        };
        let mut all = Vec::new();
        for s in &side.sections {
            all.extend(rows_of(s));
        }
        let total = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), total, "each row once");
        assert_eq!(total as u64, side.summary.tail_rows);
        let in_tail = |t: &TailRef, (_, rss, swap): (i64, u64, u64)| {
            let v = if t.column == "rss" { rss } else { swap };
            let tail = side.summary.tails[&t.column];
            if t.top { tail.above.is_some_and(|a| v > a) } else { tail.below.is_some_and(|b| v < b) }
        };
        let tails: Vec<TailRef> = side.sections.iter().flat_map(|s| s.tails.clone()).collect();
        let mut shared = 0;
        for t in &tails {
            let listed: Vec<(i64, u64, u64)> = side.sections.iter().filter(|s| s.tails.contains(t)).flat_map(rows_of).collect();
            let want = all.iter().filter(|r| in_tail(t, **r)).count();
            let got = listed.iter().filter(|r| in_tail(t, **r)).count();
            assert_eq!(got, want, "every row of {t:?} is in a section listing it");
            shared += listed.iter().filter(|r| !side.sections.iter().any(|s| s.tails[0] == *t && rows_of(s).contains(r))).count();
        }
        assert!(shared > 0, "some rows are in two tails (the case this test is for)");
    }
}

#[cfg(test)]
mod foreign_type_tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn a_key_column_stored_as_another_type_gets_no_set_rather_than_a_wrong_one() {
        let dir = tempfile::tempdir().unwrap();
        // `pid` written as UInt64 (the table says UInt32) by some other writer.
        let fields: Vec<Field> = Table::Process
            .schema()
            .fields()
            .iter()
            .map(|f| if f.name() == "pid" { Field::new("pid", DataType::UInt64, true) } else { f.as_ref().clone() })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let n = 100;
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from_iter_values(0..n).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["h"; n as usize])),
                Arc::new(StringArray::from(vec!["z"; n as usize])),
                Arc::new(UInt64Array::from_iter_values((0..n as u64).map(|i| 100 + i % 3))),
                Arc::new(StringArray::from(vec!["sh"; n as usize])),
                Arc::new(UInt32Array::from_iter_values(0..n as u32)),
                Arc::new(UInt32Array::from(vec![0u32; n as usize])),
            ],
        )
        .unwrap();
        let path = dir.path().join("00000001-0000000000000001-0000000000000001.parquet");
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let side = build_side_file(Table::Process, &path).unwrap().unwrap();
        assert!(!side.summary.keys.contains_key("pid"), "no pid set: a reader codes 101 as a u32");
        assert!(side.summary.keys.contains_key("execname"));
        assert!(side.summary.tails.contains_key("usage"));
    }
}

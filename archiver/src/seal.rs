//! Sealing: when a period is over, every zone's rows in the period's runs (see
//! [`archive_layout::RunKey`]) become one file in the zone's partition, encoded once more
//! (for good); then the runs are removed. The policy (which periods are due, a pure function
//! over what the writer knows, tested without files) and the work (through a durable intent,
//! so a failure or a crash at any step is finished by the next attempt or at restart).
//!
//! Per zone, a seal merges the rows of every run not yet covered for that zone with the
//! files this writer already has in the zone's partition (late rows, or an earlier seal),
//! sorts them by time (stable) and publishes one file whose range covers all of them
//! ([`archive_layout::zone_file_covers_run`]): publishing it is that zone's commit point,
//! and a zone whose partition already covers every run is skipped, so a repeated seal never
//! stores a row twice. Runs are removed only once every zone is sealed.
//!
//! Memory: zones are sealed in groups whose decoded rows stay under the sealer's budget
//! (estimated from the runs' own metadata); each group reads only its zones' rows of each
//! run (runs are ordered by zone). Must not touch the log or the buffers.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use archive_layout::listing::partition_files;
use archive_layout::{
    FileId, Granularity, ListedRun, ParquetFilePath, PartitionKey, RunKey, Table, WriterId, list_runs, live_files,
    zone_file_covers_run,
};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use datafusion::parquet::file::metadata::PageIndexPolicy;

use catalog::{CatalogWriter, Edit, catalog_path};

use crate::ArchiverError;
use crate::parquet_file::{Encoder, read_file, read_intent, remove_durably, sync_dir, write_atomically};
use crate::rollup::publish_rollups;
use crate::rows::TimeMerge;
use crate::write_step::WriteStep;

/// Where the intent lives, under the state directory.
pub const INTENT_FILE: &str = "seal.intent";

/// What the writer knows of the runs of one (table, period) it wrote in this process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunState {
    /// The flush cycle that last wrote a run of it (0: runs found on disk at start).
    pub last_flush_cycle: u64,
}

/// The (table, period)s due for sealing: the newest sample the writer has seen (any zone)
/// is past the period's end, and the last flush brought it nothing new (so a host a few
/// seconds behind the others still lands in the runs, not in a late seal). Sorted.
pub fn pick_due(runs: &HashMap<RunKey, RunState>, latest_sample: Option<i64>, flush_cycle: u64) -> Vec<RunKey> {
    let mut due: Vec<RunKey> = runs
        .iter()
        .filter(|(key, state)| state.last_flush_cycle < flush_cycle && latest_sample.is_some_and(|t| t >= key.end_us()))
        .map(|(k, _)| *k)
        .collect();
    due.sort();
    due
}

/// What one seal did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SealOutcome {
    /// Zone files published.
    pub zones: usize,
    /// Runs removed.
    pub runs: usize,
    /// Zone files removed because a sealed file superseded them.
    pub replaced: usize,
}

/// One zone's slices of the runs: (run index, first row, rows).
type Slices = Vec<(usize, usize, usize)>;

/// The catalog a seal records its changes in (`None`: an archive whose catalog is rebuilt
/// once recovery is done).
type CatalogSlot = Option<CatalogWriter>;

/// Commits `edit` to the catalog, if the archive has one open (see [`CatalogSlot`]).
pub(crate) fn record(catalog: &mut CatalogSlot, edit: Edit) -> Result<(), ArchiverError> {
    match catalog {
        Some(c) => Ok(c.commit(&edit)?),
        None => Ok(()),
    }
}

/// Seals periods; one per writer.
#[derive(Debug)]
pub struct Sealer {
    root: PathBuf,
    intent_path: PathBuf,
    writer: WriterId,
    encoder: Encoder,
    /// Decoded bytes a group of zones may take.
    budget_bytes: usize,
    /// Whether sealed files get a value index ([`crate::side_files`]).
    value_indexes: bool,
}

impl Sealer {
    /// A sealer of `writer`'s runs in the archive at `root` (state in `state_dir`), encoding
    /// with `encoder`, holding at most about `budget_bytes` of decoded rows at a time.
    pub fn new(root: &Path, state_dir: &Path, writer: WriterId, encoder: Encoder, budget_bytes: usize) -> Self {
        Self {
            root: root.to_owned(),
            intent_path: state_dir.join(INTENT_FILE),
            writer,
            encoder,
            budget_bytes,
            value_indexes: true,
        }
    }

    /// Whether sealed files get a value index (on unless turned off).
    pub fn with_value_indexes(mut self, on: bool) -> Self {
        self.value_indexes = on;
        self
    }

    /// Every (table, period) this writer has runs of on disk (at start: left by an earlier
    /// run of the archiver, to seal when due).
    pub fn runs_on_disk(&self) -> Result<Vec<RunKey>, ArchiverError> {
        let mut keys = Vec::new();
        for table in Table::ALL {
            for r in list_runs(&self.root, table, |_, _| true)? {
                if r.run.id.writer == self.writer && keys.last() != Some(&r.run.key) {
                    keys.push(r.run.key);
                }
            }
        }
        Ok(keys)
    }

    /// Finishes a seal that a failure or a crash interrupted (its intent is still there) by
    /// sealing the period again. An intent that cannot be read or parsed is an error naming
    /// it: it is written atomically, so it is never torn.
    pub fn settle(
        &self,
        step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>,
        catalog: &mut CatalogSlot,
    ) -> Result<(), ArchiverError> {
        let Some(text) = read_intent(&self.intent_path)? else { return Ok(()) };
        let key = parse_intent(&text)
            .ok_or_else(|| ArchiverError::Corrupt { path: self.intent_path.clone(), reason: "not a seal intent" })?;
        tracing::warn!(table = %key.table, start_us = key.start_us, "finishing an interrupted seal");
        self.seal(key, step, catalog)?;
        Ok(())
    }

    /// Seals `key`: see the module docs.
    pub fn seal(
        &self,
        key: RunKey,
        step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>,
        catalog: &mut CatalogSlot,
    ) -> Result<SealOutcome, ArchiverError> {
        let runs: Vec<ListedRun> = list_runs(&self.root, key.table, |start, _| start == key.start_us)?
            .into_iter()
            .filter(|r| r.run.key == key && r.run.id.writer == self.writer)
            .collect();
        let mut outcome = SealOutcome::default();
        if runs.is_empty() {
            return self.remove_intent().map(|()| outcome);
        }
        write_atomically(&self.intent_path, intent_text(&key).as_bytes())?;
        step(WriteStep::SealIntentWritten)?;

        let zones = self.zone_slices(&runs)?;
        let row_bytes = decoded_row_bytes(key.table);
        // A group holds its zones' rows once; merging a zone adds a chunk of rows (and a copy
        // of a part that was not in time order, which the margin of one zone covers).
        let mut group: Vec<(&String, &Slices)> = Vec::new();
        let (mut group_bytes, mut largest) = (0usize, 0usize);
        let zones: Vec<(&String, &Slices)> = zones.iter().collect();
        let zone_bytes = |zone: &str, s: &Slices| s.iter().map(|(_, _, n)| n).sum::<usize>() * (row_bytes + zone.len());
        for (i, (zone, slices)) in zones.iter().enumerate() {
            let bytes = zone_bytes(zone, slices);
            group.push((zone, slices));
            group_bytes += bytes;
            largest = largest.max(bytes);
            let last = i + 1 == zones.len();
            let next = zones.get(i + 1).map_or(0, |(z, s)| zone_bytes(z, s));
            if last || group_bytes + next + largest.max(next) > self.budget_bytes {
                self.seal_group(&key, &runs, &group, &mut outcome, step, catalog)?;
                group.clear();
                (group_bytes, largest) = (0, 0);
            }
        }
        // Every zone of every run is now in its partition: the runs go, from the catalog
        // first (a catalog never names a file that is gone).
        record(
            catalog,
            Edit {
                add: Vec::new(),
                remove: runs.iter().map(|r| catalog_path(&r.run.relative_path())).collect(),
                ..Edit::default()
            },
        )?;
        step(WriteStep::SealRunsUncatalogued)?;
        for r in &runs {
            match fs::remove_file(&r.path) {
                Ok(()) => outcome.runs += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ArchiverError::Io { what: "remove sealed run", path: r.path.clone(), source }),
            }
        }
        let dir = self.root.join(key.relative_dir());
        sync_dir(&dir)?;
        step(WriteStep::SealRunsRemoved)?;
        // The period's directory, if nothing else is in it (a run written meanwhile stays).
        if fs::remove_dir(&dir).is_ok() {
            sync_dir(dir.parent().unwrap_or(&self.root))?;
        }
        self.remove_intent()?;
        Ok(outcome)
    }

    /// Per zone (in the runs' order), its rows in each run.
    fn zone_slices(&self, runs: &[ListedRun]) -> Result<BTreeMap<String, Slices>, ArchiverError> {
        let mut zones: BTreeMap<String, Slices> = BTreeMap::new();
        for (i, r) in runs.iter().enumerate() {
            // The run's footer says where each zone's rows are (runs of format version 3 do
            // not: their zone column is read).
            if let Some(ranges) = catalog::run_zone_rows(&r.path)? {
                for z in ranges {
                    let slices = match zones.get_mut(&z.zone) {
                        Some(s) => s,
                        None => zones.entry(z.zone.clone()).or_default(),
                    };
                    slices.push((i, z.first_row as usize, z.rows as usize));
                }
                continue;
            }
            let builder = open(&r.path, false)?;
            let mask = ProjectionMask::leaves(builder.parquet_schema(), [2]);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(64 * 1024)
                .build()
                .map_err(|source| ArchiverError::Parquet { path: r.path.clone(), source })?;
            let mut row = 0usize;
            for batch in reader {
                let batch = batch.map_err(|e| ArchiverError::Parquet { path: r.path.clone(), source: e.into() })?;
                let zone = batch.column(0).as_string::<i32>();
                let mut start = 0;
                while start < zone.len() {
                    let z = zone.value(start);
                    let mut end = start + 1;
                    while end < zone.len() && zone.value(end) == z {
                        end += 1;
                    }
                    let slices = match zones.get_mut(z) {
                        Some(s) => s,
                        None => zones.entry(z.to_owned()).or_default(),
                    };
                    // A zone continuing across batch boundaries extends its slice.
                    match slices.last_mut() {
                        Some((run, first, n)) if *run == i && *first + *n == row + start => *n += end - start,
                        _ => slices.push((i, row + start, end - start)),
                    }
                    start = end;
                }
                row += zone.len();
            }
        }
        Ok(zones)
    }

    fn seal_group(
        &self,
        key: &RunKey,
        runs: &[ListedRun],
        group: &[(&String, &Slices)],
        outcome: &mut SealOutcome,
        step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>,
        catalog: &mut CatalogSlot,
    ) -> Result<(), ArchiverError> {
        // Which zones still need their rows of which runs.
        // (zone, its live files of this writer, its slices of runs those files do not cover)
        let mut todo: Vec<(&String, Vec<FileId>, Slices)> = Vec::new();
        for (zone, slices) in group {
            let partition = key.partition(zone);
            // A file a day or month file covers is a compaction's input, kept for a grace
            // period: its rows are in the covering file, never merged again.
            let days = archive_layout::listing::covering_files(&self.root, &partition)?;
            let ours: Vec<FileId> = partition_files(&self.root, &partition)?
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| id.writer == self.writer && !days.iter().any(|d| d.covers(id)))
                // A file retention removed (deleted after its grace period) is not merged back.
                .filter(|id| {
                    let path = catalog_path(&ParquetFilePath::new(partition.clone(), *id).relative_path());
                    !catalog.as_ref().is_some_and(|c| c.is_retired(&path))
                })
                .collect();
            let live = live_files(ours.clone());
            let uncovered: Vec<(usize, usize, usize)> = slices
                .iter()
                .copied()
                .filter(|(r, _, _)| !live.iter().any(|f| zone_file_covers_run(f, &runs[*r].run.id)))
                .collect();
            if uncovered.is_empty() {
                // Sealed already (a repeated seal): the catalog may not name the zone's file
                // yet, and superseded files a crash left may remain.
                let superseded: Vec<FileId> = ours.into_iter().filter(|id| !live.contains(id)).collect();
                let mut add = Vec::with_capacity(live.len());
                let mut remove = superseded_paths(&partition, &superseded);
                let mut old_rollups = Vec::new();
                for id in &live {
                    let file = ParquetFilePath::new(partition.clone(), *id);
                    add.push(crate::side_files::entry_with_index(
                        &self.root,
                        &file,
                        self.value_indexes,
                        crate::side_files::Written::Before,
                    )?);
                    let rollups = publish_rollups(&self.root, &self.encoder, self.writer, &file)?;
                    add.extend(rollups.entries(&self.root)?);
                    remove.extend(rollups.superseded_paths());
                    old_rollups.extend(rollups.superseded);
                }
                // Out of the catalog first, then deleted (the catalog never names a file
                // that is gone).
                record(catalog, Edit { add, remove, ..Edit::default() })?;
                self.remove_superseded(&partition, &superseded, outcome)?;
                self.remove_rollups(&old_rollups)?;
            } else {
                todo.push((zone, ours, uncovered));
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        // Read each run once for the whole group: only the rows of the group's zones.
        let mut per_run: BTreeMap<usize, Vec<(usize, usize, usize)>> = BTreeMap::new(); // run -> (todo index, first, rows)
        for (t, (_, _, slices)) in todo.iter().enumerate() {
            for (r, first, n) in slices {
                per_run.entry(*r).or_default().push((t, *first, *n));
            }
        }
        // Per run, its selected rows as one batch; per zone, where its rows are in those
        // (batch, offset, rows). Slices are cut only when the zone is merged: kept for every
        // (zone, run) pair, their array headers alone took 100 MiB for 1,000 zones.
        let mut run_rows: Vec<RecordBatch> = Vec::with_capacity(per_run.len());
        let mut parts: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); todo.len()];
        for (r, mut wanted) in per_run {
            wanted.sort_by_key(|(_, first, _)| *first);
            let mut selectors = Vec::with_capacity(wanted.len() * 2);
            let mut at = 0;
            for (_, first, n) in &wanted {
                if *first > at {
                    selectors.push(RowSelector::skip(first - at));
                }
                selectors.push(RowSelector::select(*n));
                at = first + n;
            }
            let path = &runs[r].path;
            let selected: usize = wanted.iter().map(|(_, _, n)| n).sum();
            let reader = open(path, true)?
                .with_row_selection(RowSelection::from(selectors))
                .with_batch_size(selected.max(1))
                .build()
                .map_err(|source| ArchiverError::Parquet { path: path.clone(), source })?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ArchiverError::Parquet { path: path.clone(), source: e.into() })?;
            let all = concat_batches(&key.table.schema(), &batches)
                .map_err(|source| ArchiverError::Arrow { context: format!("reading {}", path.display()), source })?;
            let mut offset = 0;
            for (t, _, n) in wanted {
                parts[t].push((run_rows.len(), offset, n));
                offset += n;
            }
            run_rows.push(all);
        }
        for ((zone, ours, uncovered), parts) in todo.into_iter().zip(parts) {
            let live = live_files(ours.clone());
            let mut batches: Vec<RecordBatch> = parts.iter().map(|(b, offset, n)| run_rows[*b].slice(*offset, *n)).collect();
            let partition = key.partition(zone);
            for id in &live {
                batches.extend(read_file(&ParquetFilePath::new(partition.clone(), *id).absolute_path(&self.root))?);
            }
            let lo = live.iter().map(|f| f.lo).chain(uncovered.iter().map(|(r, _, _)| runs[*r].run.id.lo)).min().unwrap_or(0);
            let hi = live.iter().map(|f| f.hi).chain(uncovered.iter().map(|(r, _, _)| runs[*r].run.id.hi)).max().unwrap_or(0);
            // The value index is built from the rows as they are written (not by reading
            // the file back).
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let mut index = if self.value_indexes { value_index::StreamedIndex::new(key.table, rows) } else { None };
            let mut merge = TimeMerge::new(batches).map_err(|source| ArchiverError::Arrow {
                context: format!("sealing {}", partition.relative_dir().display()),
                source,
            })?;
            let out = ParquetFilePath::new(partition.clone(), FileId { writer: self.writer, lo, hi });
            let mut written = merge.by_ref().inspect(|batch| {
                if let (Ok(batch), Some(index)) = (batch, index.as_mut()) {
                    index.see(batch);
                }
            });
            self.encoder.publish_from(&self.root, &out, &mut written)?;
            drop(merge);
            outcome.zones += 1;
            step(WriteStep::SealZonePublished)?;
            // A day partition's file gets its rollups (an hour partition's day gets them when
            // it is compacted).
            let rollups = publish_rollups(&self.root, &self.encoder, self.writer, &out)?;
            if !rollups.files.is_empty() {
                step(WriteStep::RollupsPublished)?;
            }
            // Every older file of this writer in the partition is inside the new range.
            let superseded: Vec<FileId> = ours.into_iter().filter(|id| out.id.supersedes(id)).collect();
            let mut add = vec![crate::side_files::entry_with_streamed_index(&self.root, &out, self.value_indexes, index)?];
            if add[0].index.is_some() {
                step(WriteStep::ValueIndexWritten)?;
            }
            add.extend(rollups.entries(&self.root)?);
            let mut remove = superseded_paths(&partition, &superseded);
            remove.extend(rollups.superseded_paths());
            record(catalog, Edit { add, remove, ..Edit::default() })?;
            step(WriteStep::SealZoneCatalogued)?;
            self.remove_superseded(&partition, &superseded, outcome)?;
            self.remove_rollups(&rollups.superseded)?;
        }
        Ok(())
    }

    fn remove_superseded(
        &self,
        partition: &PartitionKey,
        ids: &[FileId],
        outcome: &mut SealOutcome,
    ) -> Result<(), ArchiverError> {
        for id in ids {
            let path = ParquetFilePath::new(partition.clone(), *id).absolute_path(&self.root);
            if crate::parquet_file::remove_data_file(&path, "remove superseded file")? {
                outcome.replaced += 1;
            }
        }
        if !ids.is_empty() {
            sync_dir(&self.root.join(partition.relative_dir()))?;
        }
        Ok(())
    }

    /// Deletes rollup files a newer day file's rollups replaced (no longer in the catalog).
    fn remove_rollups(&self, files: &[ParquetFilePath]) -> Result<(), ArchiverError> {
        for f in files {
            let path = f.absolute_path(&self.root);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ArchiverError::Io { what: "remove superseded rollup", path, source }),
            }
        }
        Ok(())
    }

    fn remove_intent(&self) -> Result<(), ArchiverError> {
        remove_durably(&self.intent_path)
    }
}

fn superseded_paths(partition: &PartitionKey, ids: &[FileId]) -> Vec<String> {
    ids.iter().map(|id| catalog_path(&ParquetFilePath::new(partition.clone(), *id).relative_path())).collect()
}

/// What a row of `table` takes decoded (Arrow), but its zone name's bytes: time, each value
/// column (a string as an offset and 16 bytes), the host (an offset and 32 bytes) and the
/// zone's offset. The encoded size says little: a delta-encoded time takes a few bits.
fn decoded_row_bytes(table: Table) -> usize {
    let values: usize = table
        .value_columns()
        .iter()
        .map(|(_, ty)| match ty {
            archive_layout::ColumnType::U32 => 4,
            archive_layout::ColumnType::U64 => 8,
            archive_layout::ColumnType::Utf8 => 4 + 16,
        })
        .sum();
    8 + values + (4 + 32) + 4
}

fn open(path: &Path, page_index: bool) -> Result<ParquetRecordBatchReaderBuilder<File>, ArchiverError> {
    let file = File::open(path).map_err(|source| ArchiverError::Io { what: "open", path: path.to_owned(), source })?;
    ParquetRecordBatchReaderBuilder::try_new_with_options(
        file,
        ArrowReaderOptions::new().with_page_index_policy(if page_index {
            PageIndexPolicy::Optional
        } else {
            PageIndexPolicy::Skip
        }),
    )
    .map_err(|source| ArchiverError::Parquet { path: path.to_owned(), source })
}

fn intent_text(key: &RunKey) -> String {
    format!("{}\t{}\t{}\n", key.table.name(), key.granularity.name(), key.start_us)
}

fn parse_intent(text: &str) -> Option<RunKey> {
    let mut f = text.trim_end_matches('\n').split('\t');
    let table = Table::from_name(f.next()?).ok()?;
    let granularity: Granularity = f.next()?.parse().ok()?;
    let start_us: i64 = f.next()?.parse().ok()?;
    (f.next().is_none() && granularity.period_start(start_us) == start_us).then_some(RunKey { table, start_us, granularity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hour: i64) -> RunKey {
        RunKey::for_sample(Table::Cpu, hour * 3_600_000_000, Granularity::Hour)
    }

    #[test]
    fn due_once_the_clock_is_past_and_the_last_flush_left_it_alone() {
        let mut runs = HashMap::new();
        runs.insert(key(0), RunState { last_flush_cycle: 4 });
        runs.insert(key(1), RunState { last_flush_cycle: 5 });
        runs.insert(key(2), RunState { last_flush_cycle: 0 });
        let t = Some(2 * 3_600_000_000 + 1);
        assert_eq!(pick_due(&runs, t, 5), vec![key(0)], "hour 1 was flushed into by this cycle, hour 2 is open");
        assert_eq!(pick_due(&runs, Some(3 * 3_600_000_000), 6), vec![key(0), key(1), key(2)]);
        assert!(pick_due(&runs, None, 9).is_empty(), "no clock yet (after a restart, before any frame)");
    }

    #[test]
    fn intent_round_trips() {
        for k in [key(5), RunKey::for_sample(Table::Process, 86_400_000_000 * 3, Granularity::Day)] {
            assert_eq!(parse_intent(&intent_text(&k)), Some(k));
        }
        assert_eq!(parse_intent("cpu\thour\t5"), None, "not a period start");
        assert_eq!(parse_intent("cpu\thour"), None);
    }
}

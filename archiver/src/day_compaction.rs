//! Day and month compaction: once a day is older than a configurable age, each zone's hour
//! files of it (per table) merge into one file in the zone's day partition (`date=D/`,
//! beside the `hour=H/` directories); once a month is, its day files merge into one file in
//! the zone's month partition (`month=YYYY-MM/`). Both go through an intent and the
//! catalog, so a year of 5 zones at a sample a minute is some 2,700 files (rollups
//! included) instead of 400,000. The policies ([`pick_days`], [`pick_months`]) are pure functions over catalog
//! entries, tested without files; the work ([`DayCompactor`], which does both) is
//! repeatable.
//!
//! The day file's range covers the numbers of every file it merges, so it supersedes them
//! (`archive_layout::listing` hides an hour file a day file of its date covers): publishing
//! it is the commit point for a reader that lists directories; the catalog edit that adds it
//! and removes its inputs is the commit point for `dq`. The inputs are not deleted then but
//! *retired*: deleted once `grace` has passed, so a reader that planned with them finishes.
//! A plain glob started in that window reads the day twice (the limit `docs/operations.md`
//! states). Late rows for a compacted day are sealed into an hour file again (never merged
//! with an input kept for the grace period) and merged at the next compaction of that day.
//!
//! Memory: the inputs are streamed in time order, one file at a time; files whose time
//! ranges overlap (late rows, a second writer) are merged as streams, one batch of each at
//! a time. Must not touch the log, the buffers or the runs.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use archive_layout::listing::partition_files;
use archive_layout::{
    DAY_US, FileId, Granularity, HOUR_US, ParquetFilePath, PartitionKey, RollupLevel, Table, WriterId, live_files,
};
use catalog::{CatalogWriter, Edit, Entry, Retired, catalog_path};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::ArchiverError;
use crate::parquet_file::{Encoder, now_us, read_intent, remove_durably, write_atomically};
use crate::rollup::publish_rollups;
use crate::rows::{BatchStream, StreamTimeMerge};
use crate::seal::record;
use crate::write_step::WriteStep;

/// Where the intent lives, under the state directory.
pub const INTENT_FILE: &str = "day.intent";

/// One zone's day or month of one table: what one compaction merges into one file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompactionGroup {
    /// First microsecond of the day or month (UTC).
    pub start_us: i64,
    /// The table.
    pub table: Table,
    /// The zone.
    pub zone: String,
    /// `Day` or `Month`.
    pub granularity: Granularity,
}

impl CompactionGroup {
    /// The day `start_us` of `table` for `zone`.
    pub fn day(start_us: i64, table: Table, zone: &str) -> Self {
        Self { start_us, table, zone: zone.to_owned(), granularity: Granularity::Day }
    }

    /// The month starting at `month_start_us` of `table` for `zone`.
    pub fn month(month_start_us: i64, table: Table, zone: &str) -> Self {
        Self { start_us: month_start_us, table, zone: zone.to_owned(), granularity: Granularity::Month }
    }

    fn day_key(&self) -> PartitionKey {
        PartitionKey {
            table: self.table,
            rollup: None,
            zone: self.zone.clone(),
            start_us: self.start_us,
            granularity: self.granularity,
        }
    }

    /// The finer partitions inside it: a day's hours; a month's days and their hours.
    fn finer_keys(&self) -> Vec<PartitionKey> {
        let own = self.day_key();
        let hours = |day: i64| {
            (0..24).map(move |h| PartitionKey { start_us: day + h * HOUR_US, granularity: Granularity::Hour, ..self.day_key() })
        };
        match self.granularity {
            Granularity::Month => {
                let mut out = Vec::new();
                let mut day = own.start_us;
                while day < own.end_us() {
                    out.push(PartitionKey { start_us: day, granularity: Granularity::Day, ..own.clone() });
                    out.extend(hours(day));
                    day += DAY_US;
                }
                out
            }
            _ => hours(own.start_us).collect(),
        }
    }
}

/// The days to compact, oldest first, at most `limit`: every (table, zone, day) that ends at
/// or before `before_us` and has an hour file, or more than one day file, or one day file
/// without its hourly rollup (compacted by an archiver older than rollups: compacting it
/// again only adds them); a day that still has runs (a period not sealed yet) waits.
pub fn pick_days<'a>(entries: impl IntoIterator<Item = &'a Entry>, before_us: i64, limit: usize) -> Vec<CompactionGroup> {
    let day = |us: i64| Granularity::Day.period_start(us);
    // (day, table) with runs; (day, table, zone) -> (hour files, day files); the hourly
    // rollup files' (day, table, zone).
    let mut with_runs = std::collections::BTreeSet::new();
    let mut files: BTreeMap<(i64, Table, String), (usize, usize)> = BTreeMap::new();
    let mut rolled_up = std::collections::BTreeSet::new();
    let mut compacted_months = std::collections::BTreeSet::new();
    for e in entries {
        if let (Some((table, RollupLevel::Hour)), Some(zone)) = (RollupLevel::parse_table_name(&e.table), &e.zone) {
            if e.granularity() == Some(Granularity::Day) {
                rolled_up.insert((day(e.period_start_us), table, zone.clone()));
            }
            continue;
        }
        let (Some(table), Some(g)) = (e.table(), e.granularity()) else { continue };
        match &e.zone {
            None => {
                with_runs.insert((day(e.period_start_us), table));
            }
            // A month compaction's output: its days are done; late rows for them go into
            // the month again (a month compaction merges hour files too), never into a day
            // file beside it (whose rollups would overlap the month's).
            Some(zone) if g == Granularity::Month => {
                compacted_months.insert((e.period_start_us, table, zone.clone()));
            }
            Some(zone) => {
                let counts = files.entry((day(e.period_start_us), table, zone.clone())).or_default();
                match g {
                    Granularity::Hour => counts.0 += 1,
                    _ => counts.1 += 1,
                }
            }
        }
    }
    files
        .into_iter()
        .filter(|(key, (hours, days))| {
            let (d, table, zone) = key;
            let unrolled = table.has_rollups() && !rolled_up.contains(key);
            !compacted_months.contains(&(Granularity::Month.period_start(*d), *table, zone.clone()))
                && d + archive_layout::DAY_US <= before_us
                && !with_runs.contains(&(*d, *table))
                && (*hours > 0 || *days > 1 || unrolled)
        })
        .take(limit)
        .map(|((start_us, table, zone), _)| CompactionGroup::day(start_us, table, &zone))
        .collect()
}

/// The months to compact, oldest first, while their raw files take at most `budget_bytes`
/// together (at least one), and whether more are due: every (table, zone, month) that ends
/// at or before `before_us`, whose raw files take at most `max_bytes` together (or that has
/// a month file already: late rows go back into it), and that has
/// a day or hour file, or more than one month file, or one month file without its hourly
/// rollup; a month that still has runs waits. A month over `max_bytes` keeps its day files
/// (they are large enough that their count does not matter; merging them would hold the
/// writer for long), and so do the tables `for_table` refuses (kept too short a time).
pub fn pick_months<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    before_us: i64,
    max_bytes: u64,
    for_table: impl Fn(Table) -> bool,
    budget_bytes: u64,
) -> (Vec<CompactionGroup>, bool) {
    let month = |us: i64| Granularity::Month.period_start(us);
    #[derive(Default)]
    struct Found {
        finer: usize,
        months: usize,
        bytes: u64,
    }
    let mut with_runs = std::collections::BTreeSet::new();
    let mut files: BTreeMap<(i64, Table, String), Found> = BTreeMap::new();
    let mut rolled_up = std::collections::BTreeSet::new();
    for e in entries {
        if let (Some((table, RollupLevel::Hour)), Some(zone)) = (RollupLevel::parse_table_name(&e.table), &e.zone) {
            if e.granularity() == Some(Granularity::Month) {
                rolled_up.insert((e.period_start_us, table, zone.clone()));
            }
            continue;
        }
        let (Some(table), Some(g)) = (e.table(), e.granularity()) else { continue };
        match &e.zone {
            None => {
                with_runs.insert((month(e.period_start_us), table));
            }
            Some(zone) => {
                let found = files.entry((month(e.period_start_us), table, zone.clone())).or_default();
                found.bytes += e.bytes;
                match g {
                    Granularity::Month => found.months += 1,
                    _ => found.finer += 1,
                }
            }
        }
    }
    let mut due = files.into_iter().filter(|(key, found)| {
        let (m, table, _) = key;
        let unrolled = table.has_rollups() && !rolled_up.contains(key);
        Granularity::Month.period_end(*m) <= before_us
            && for_table(*table)
            && !with_runs.contains(&(*m, *table))
            // A month already compacted takes its late rows back whatever its size.
            && (found.bytes <= max_bytes || found.months > 0)
            && (found.finer > 0 || found.months > 1 || unrolled)
    });
    let mut picked = Vec::new();
    let mut spent = 0u64;
    for ((start, table, zone), found) in due.by_ref() {
        if !picked.is_empty() && spent.saturating_add(found.bytes) > budget_bytes {
            return (picked, true);
        }
        spent = spent.saturating_add(found.bytes);
        picked.push(CompactionGroup::month(start, table, &zone));
    }
    (picked, false)
}

/// What one compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DayOutcome {
    /// Files merged (and retired).
    pub inputs: usize,
    /// Whether a day file was published.
    pub published: bool,
}

/// Compacts days of one writer's files.
#[derive(Debug)]
pub struct DayCompactor {
    root: PathBuf,
    intent_path: PathBuf,
    writer: WriterId,
    encoder: Encoder,
    grace: Duration,
    /// Whether day and month files get a value index ([`crate::side_files`]).
    value_indexes: bool,
}

impl DayCompactor {
    /// A compactor of `writer`'s files in the archive at `root` (state in `state_dir`),
    /// encoding with `encoder`, keeping inputs `grace` after they are replaced.
    pub fn new(root: &Path, state_dir: &Path, writer: WriterId, encoder: Encoder, grace: Duration) -> Self {
        Self { root: root.to_owned(), intent_path: state_dir.join(INTENT_FILE), writer, encoder, grace, value_indexes: true }
    }

    /// Whether day and month files get a value index (on unless turned off).
    pub fn with_value_indexes(mut self, on: bool) -> Self {
        self.value_indexes = on;
        self
    }

    /// Finishes a compaction a failure or a crash interrupted (its intent is there).
    pub fn settle(
        &self,
        step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>,
        catalog: &mut Option<CatalogWriter>,
    ) -> Result<(), ArchiverError> {
        let Some(text) = read_intent(&self.intent_path)? else { return Ok(()) };
        let group = parse_intent(&text)
            .ok_or_else(|| ArchiverError::Corrupt { path: self.intent_path.clone(), reason: "not a day compaction intent" })?;
        tracing::warn!(table = %group.table, zone = %group.zone, start_us = group.start_us, "finishing an interrupted day compaction");
        self.compact(&group, step, catalog)?;
        Ok(())
    }

    /// Compacts `group`: see the module docs.
    pub fn compact(
        &self,
        group: &CompactionGroup,
        step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>,
        catalog: &mut Option<CatalogWriter>,
    ) -> Result<DayOutcome, ArchiverError> {
        let month = group.granularity == Granularity::Month;
        let [intent_written, published, rollups_published, catalogued] = if month {
            [
                WriteStep::MonthIntentWritten,
                WriteStep::MonthPublished,
                WriteStep::MonthRollupsPublished,
                WriteStep::MonthCatalogued,
            ]
        } else {
            [WriteStep::DayIntentWritten, WriteStep::DayPublished, WriteStep::RollupsPublished, WriteStep::DayCatalogued]
        };
        write_atomically(&self.intent_path, intent_text(group).as_bytes())?;
        step(intent_written)?;
        let day_key = group.day_key();
        let retired = |p: &ParquetFilePath| catalog.as_ref().is_some_and(|c| c.is_retired(&catalog_path(&p.relative_path())));
        // Ours in the group's own partition, but those retired (removed by retention, or
        // replaced by a coarser compaction and kept for their grace period): the live ones
        // are inputs; one another of them supersedes (the earlier output of a compaction
        // repeated after a crash before its catalog edit) is retired with the inputs; one a
        // coarser file of ours covers is that one's input, never merged again.
        let own: Vec<FileId> = partition_files(&self.root, &day_key)?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id.writer == self.writer && !retired(&ParquetFilePath::new(day_key.clone(), *id)))
            .collect();
        let coarser: Vec<FileId> = archive_layout::listing::covering_files(&self.root, &day_key)?
            .into_iter()
            .filter(|c| c.writer == self.writer)
            .collect();
        let days: Vec<FileId> = live_files(own.clone()).into_iter().filter(|id| !coarser.iter().any(|c| c.covers(id))).collect();
        let superseded_own: Vec<ParquetFilePath> =
            own.iter().filter(|id| !days.contains(id)).map(|id| ParquetFilePath::new(day_key.clone(), *id)).collect();
        // Every file of ours in the finer partitions (hours; for a month, days and hours):
        // those a coarser one covers (inputs of an earlier compaction, retired) and those
        // none does (to merge). Within a directory, a file another one there supersedes is
        // not an input either.
        let mut found: Vec<ParquetFilePath> = Vec::new();
        for key in group.finer_keys() {
            let ids: Vec<FileId> =
                partition_files(&self.root, &key)?.into_iter().map(|(id, _)| id).filter(|id| id.writer == self.writer).collect();
            for id in live_files(ids) {
                let path = ParquetFilePath::new(key.clone(), id);
                if retired(&path) {
                    // Removed by retention (or retired by an earlier compaction), deleted
                    // after its grace period: not an input.
                    continue;
                }
                found.push(path);
            }
        }
        // Sequence numbers are the writer's, across every period: a file covers another only
        // if its period holds the other's (a day file of late Nov 27 rows may span the
        // number of a Nov 28 hour file).
        let holds = |c: &ParquetFilePath, p: &ParquetFilePath| {
            c.key.granularity > p.key.granularity && c.key.granularity.period_start(p.key.start_us) == c.key.start_us
        };
        let is_covered = |p: &ParquetFilePath| {
            days.iter().any(|d| d.covers(&p.id)) || found.iter().any(|c| holds(c, p) && c.id != p.id && c.id.covers(&p.id))
        };
        let (mut covered, finer): (Vec<ParquetFilePath>, Vec<ParquetFilePath>) = found.iter().cloned().partition(is_covered);
        covered.extend(superseded_own);
        let mut outcome = DayOutcome::default();
        let mut inputs: Vec<ParquetFilePath> = days.iter().map(|id| ParquetFilePath::new(day_key.clone(), *id)).collect();
        inputs.extend(finer);
        // The rollups of the inputs and covered files that a day has (a month's inputs):
        // replaced by the output's.
        let mut old_rollups: Vec<String> = Vec::new();
        for p in inputs.iter().chain(covered.iter()).filter(|p| p.key.granularity == Granularity::Day && p.key != day_key) {
            for level in RollupLevel::ALL {
                let r = ParquetFilePath::new(p.key.rollup_of(level), p.id);
                if r.absolute_path(&self.root).exists() {
                    old_rollups.push(catalog_path(&r.relative_path()));
                }
            }
        }
        let retire_after = now_us().saturating_add(self.grace.as_micros() as i64);
        if inputs.len() <= 1 && inputs.iter().all(|p| p.key.granularity == group.granularity) {
            // Done already (a repeat after a crash): make sure the rollups are there and the
            // catalog says so.
            let mut add = Vec::new();
            let mut gone: Vec<String> = covered.iter().map(|p| catalog_path(&p.relative_path())).collect();
            gone.extend(old_rollups);
            for p in &inputs {
                add.push(crate::side_files::entry_with_index(
                    &self.root,
                    p,
                    self.value_indexes,
                    crate::side_files::Written::Before,
                )?);
                let rollups = publish_rollups(&self.root, &self.encoder, self.writer, p)?;
                add.extend(rollups.entries(&self.root)?);
                gone.extend(rollups.superseded_paths());
            }
            let retire = gone.iter().map(|p| Retired { retired: p.clone(), after_us: retire_after }).collect();
            record(catalog, Edit { add, remove: gone, retire, ..Edit::default() })?;
            return self.remove_intent().map(|()| outcome);
        }
        // Inputs in time order, with their ranges from their footers.
        let mut timed = Vec::with_capacity(inputs.len());
        for p in inputs {
            let e = catalog::entry_of_file_with(&self.root, &p, None)?;
            timed.push((e.min_time_us.unwrap_or(i64::MAX), e.max_time_us.unwrap_or(i64::MIN), p));
        }
        timed.sort_by_key(|(lo, hi, _)| (*lo, *hi));
        let lo = timed.iter().map(|(_, _, p)| p.id.lo).min().unwrap_or(0);
        let hi = timed.iter().map(|(_, _, p)| p.id.hi).max().unwrap_or(0);
        let out = ParquetFilePath::new(day_key.clone(), FileId { writer: self.writer, lo, hi });
        // Groups of inputs whose time ranges overlap (usually each alone).
        let mut clusters: VecDeque<Vec<PathBuf>> = VecDeque::new();
        let mut reach = i64::MIN;
        for (lo, hi, p) in &timed {
            let path = p.absolute_path(&self.root);
            match clusters.back_mut() {
                Some(c) if *lo <= reach => c.push(path),
                _ => clusters.push_back(vec![path]),
            }
            reach = reach.max(*hi);
        }
        let mut batches = DayInputs { clusters, current: None };
        self.encoder.publish_from(&self.root, &out, &mut batches)?;
        outcome.published = true;
        outcome.inputs = timed.len();
        step(published)?;
        let rollups = publish_rollups(&self.root, &self.encoder, self.writer, &out)?;
        step(rollups_published)?;
        let replaced: Vec<String> = timed
            .iter()
            .map(|(_, _, p)| p)
            .chain(covered.iter())
            .filter(|p| **p != out)
            .map(|p| catalog_path(&p.relative_path()))
            .chain(rollups.superseded_paths())
            .chain(old_rollups)
            .collect();
        let retire = replaced.iter().map(|p| Retired { retired: p.clone(), after_us: retire_after }).collect();
        let mut add =
            vec![crate::side_files::entry_with_index(&self.root, &out, self.value_indexes, crate::side_files::Written::Now)?];
        if add[0].index.is_some() {
            step(WriteStep::ValueIndexWritten)?;
        }
        add.extend(rollups.entries(&self.root)?);
        record(catalog, Edit { add, remove: replaced, retire, ..Edit::default() })?;
        step(catalogued)?;
        self.remove_intent()?;
        Ok(outcome)
    }

    fn remove_intent(&self) -> Result<(), ArchiverError> {
        remove_durably(&self.intent_path)
    }
}

/// The rows of a day's inputs in time order: each cluster of overlapping files merged, a
/// lone file streamed in batches.
struct DayInputs {
    clusters: VecDeque<Vec<PathBuf>>,
    current: Option<BatchStream>,
}

fn external(e: ArchiverError) -> ArrowError {
    ArrowError::ExternalError(Box::new(e))
}

impl DayInputs {
    fn read(path: &Path) -> Result<BatchStream, ArchiverError> {
        let file = File::open(path).map_err(|source| ArchiverError::Io { what: "open", path: path.to_owned(), source })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(|source| ArchiverError::Parquet { path: path.to_owned(), source })?;
        Ok(Box::new(reader))
    }

    fn open(files: Vec<PathBuf>) -> Result<BatchStream, ArchiverError> {
        if let [path] = files.as_slice() {
            return Self::read(path);
        }
        // Overlapping files (late rows, a second writer) are merged as streams: one batch of
        // each at a time, even when one of them is a whole month.
        let streams = files.iter().map(|p| Self::read(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(StreamTimeMerge::new(streams)))
    }
}

impl Iterator for DayInputs {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(it) = &mut self.current {
                match it.next() {
                    Some(item) => return Some(item),
                    None => self.current = None,
                }
            }
            let files = self.clusters.pop_front()?;
            match Self::open(files) {
                Ok(it) => self.current = Some(it),
                Err(e) => return Some(Err(external(e))),
            }
        }
    }
}

/// The intent names the start `day_start_us`, as it did before months existed.
fn intent_text(g: &CompactionGroup) -> String {
    serde_json::json!({"table": g.table.name(), "zone": g.zone, "day_start_us": g.start_us, "period": g.granularity.name()})
        .to_string()
}

fn parse_intent(text: &str) -> Option<CompactionGroup> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let table = Table::from_name(v["table"].as_str()?).ok()?;
    let start_us = v["day_start_us"].as_i64()?;
    let zone = v["zone"].as_str()?.to_owned();
    // An intent of an archiver older than month compaction names no period: a day.
    let granularity = match v.get("period") {
        None => Granularity::Day,
        Some(p) => Granularity::from_name(p.as_str()?).filter(|g| *g != Granularity::Hour)?,
    };
    (granularity.period_start(start_us) == start_us).then_some(CompactionGroup { start_us, table, zone, granularity })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;
    const HOUR: i64 = 3_600_000_000;

    fn entry(table: &str, zone: Option<&str>, period: &str, start: i64) -> Entry {
        Entry {
            path: format!("{table}/{zone:?}/{period}/{start}"),
            table: table.into(),
            zone: zone.map(str::to_owned),
            period: period.into(),
            period_start_us: start,
            min_time_us: Some(start),
            max_time_us: Some(start + 1),
            rows: 1,
            bytes: 1,
            columns: Default::default(),
            index: None,
        }
    }

    #[test]
    fn old_days_with_hour_files_are_picked_oldest_first_and_days_with_runs_wait() {
        let d0 = 20_000 * DAY;
        let entries = vec![
            entry("cpu", Some("a"), "hour", d0 + 3 * HOUR),
            entry("cpu", Some("a"), "hour", d0 + 4 * HOUR),
            entry("cpu", Some("b"), "day", d0),
            entry("cpu_1h", Some("b"), "day", d0),
            entry("mem", Some("a"), "hour", d0 + DAY),
            entry("mem", None, "hour", d0 + DAY + 5 * HOUR),
            entry("cpu", Some("a"), "day", d0 + DAY),
            entry("cpu_1h", Some("a"), "day", d0 + DAY),
            entry("cpu", Some("b"), "hour", d0 + 2 * DAY),
        ];
        let picked = pick_days(&entries, d0 + 2 * DAY, 10);
        assert_eq!(
            picked,
            vec![CompactionGroup::day(d0, Table::Cpu, "a")],
            "b's day 0 is one day file; day 1 of mem has a run; day 2 is too young"
        );
        // A day compacted before rollups existed is picked to get them.
        let mut unrolled = entries.clone();
        unrolled.retain(|e| e.table != "cpu_1h");
        assert_eq!(pick_days(&unrolled, d0 + 2 * DAY, 10)[1], CompactionGroup::day(d0, Table::Cpu, "b"));
        let mut two = entries.clone();
        two.push(entry("cpu", Some("a"), "day", d0 + DAY));
        let picked = pick_days(&two, d0 + 3 * DAY, 10);
        assert_eq!(picked.len(), 3, "{picked:?}");
        assert_eq!(picked[1], CompactionGroup::day(d0 + DAY, Table::Cpu, "a"), "two day files (late rows compacted again)");
        assert_eq!(pick_days(&two, d0 + 3 * DAY, 1).len(), 1);
        let month = Granularity::Month.period_start(d0);
        let compacted = [entry("cpu", Some("a"), "month", month), entry("cpu_1h", Some("a"), "month", month)];
        assert_eq!(pick_days(&compacted, d0 + 3 * DAY, 10), vec![], "a month file's days are done");
        let late = [compacted[0].clone(), compacted[1].clone(), entry("cpu", Some("a"), "hour", d0 + HOUR)];
        assert_eq!(pick_days(&late, d0 + 3 * DAY, 10), vec![], "late rows of a compacted month wait for the month");
        let due = Granularity::Month.period_end(month);
        assert_eq!(pick_months(&late, due, 1_000_000, |_| true, 100).0, vec![CompactionGroup::month(month, Table::Cpu, "a")]);
        assert_eq!(pick_months(&late, due, 0, |_| true, 100).0.len(), 1, "back into its month, whatever the month's size");
        assert!(pick_days(&entries, d0 + DAY - 1, 10).is_empty());
    }

    #[test]
    fn small_finished_months_are_picked_and_big_or_open_ones_wait() {
        let nov = Granularity::Month.period_start(20_415 * DAY); // 2025-11-24
        let dec = Granularity::Month.period_end(nov);
        let jan = Granularity::Month.period_end(dec);
        let mut entries = vec![
            entry("cpu", Some("a"), "day", nov),
            entry("cpu", Some("a"), "day", nov + DAY),
            entry("cpu", Some("a"), "hour", nov + 2 * DAY + HOUR),
            entry("mem", Some("a"), "day", nov),
            entry("mem", None, "hour", nov + 29 * DAY + 23 * HOUR),
            entry("cpu", Some("b"), "month", nov),
            entry("cpu_1h", Some("b"), "month", nov),
            entry("cpu", Some("c"), "month", nov),
            entry("cpu", Some("a"), "day", dec),
        ];
        let (picked, more) = pick_months(&entries, jan - 1, 10, |_| true, 100);
        assert!(!more);
        assert_eq!(
            picked,
            vec![CompactionGroup::month(nov, Table::Cpu, "a"), CompactionGroup::month(nov, Table::Cpu, "c")],
            "a: day and hour files; b: done; c: no hourly rollup; mem: a run; December: not over"
        );
        assert_eq!(pick_months(&entries, dec - 1, 10, |_| true, 100).0, vec![], "November ends at `dec`: due from `dec`");
        assert_eq!(
            pick_months(&entries, dec, 10, |_| true, 3),
            (vec![CompactionGroup::month(nov, Table::Cpu, "a")], true),
            "a's 3 bytes fill a budget of 3; c is left for the next flush"
        );
        assert_eq!(pick_months(&entries, dec, 10, |_| true, 1).0.len(), 1, "one at least, whatever the budget");
        assert_eq!(pick_months(&entries, jan, 10, |_| true, 100).0.len(), 3, "December is over at `jan`");
        assert_eq!(pick_months(&entries, dec, 10, |t| t != Table::Cpu, 100).0, vec![], "cpu kept too short a time");
        assert_eq!(
            pick_months(&entries, dec, 2, |_| true, 100).0,
            vec![CompactionGroup::month(nov, Table::Cpu, "c")],
            "a's 3 bytes are over 2"
        );
        entries.push(entry("cpu", Some("b"), "month", nov));
        assert_eq!(pick_months(&entries, dec, 10, |_| true, 100).0.len(), 3, "two month files of b (a late day merged twice)");
        let zonename = [entry("zonename", Some("g"), "month", nov)];
        assert_eq!(pick_months(&zonename, dec, 10, |_| true, 100).0, vec![], "no rollups to make");
    }

    #[test]
    fn a_month_holds_its_days_and_their_hours() {
        let nov = Granularity::Month.period_start(20_415 * DAY);
        let keys = CompactionGroup::month(nov, Table::Cpu, "a").finer_keys();
        assert_eq!(keys.len(), 30 * 25);
        assert_eq!(keys.iter().filter(|k| k.granularity == Granularity::Day).count(), 30);
        assert!(keys.iter().all(|k| Granularity::Month.period_start(k.start_us) == nov));
        assert_eq!(CompactionGroup::day(nov, Table::Cpu, "a").finer_keys().len(), 24);
    }

    #[test]
    fn intent_round_trips() {
        let g = CompactionGroup::day(19_000 * DAY, Table::Process, "a\tb\n\"c\"");
        assert_eq!(parse_intent(&intent_text(&g)), Some(g.clone()));
        assert_eq!(parse_intent("{\"table\":\"cpu\",\"zone\":\"a\",\"day_start_us\":5}"), None);
        let old = intent_text(&g).replace(",\"period\":\"day\"", "");
        assert!(!old.contains("period"), "{old}");
        assert_eq!(parse_intent(&old), Some(g), "an older archiver's intent is a day's");
        let m = CompactionGroup::month(Granularity::Month.period_start(19_000 * DAY), Table::Cpu, "z");
        assert_eq!(parse_intent(&intent_text(&m)), Some(m.clone()));
        assert_eq!(parse_intent(&intent_text(&m).replace("month", "hour")), None);
    }
}

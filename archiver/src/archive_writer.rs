//! The archive directory as the archiver writes it: the one writer that ties the log, the
//! row buffers, publishing and compaction together, and keeps them consistent.
//!
//! Rows are buffered per (host, zone, period) ([`crate::buffers`]). A flush publishes one
//! run per buffered (table, period), whatever the number of zones and hosts
//! ([`archive_layout::RunKey`]), through the flush journal ([`crate::publish`]), whose commit
//! line is the single commit point: before it nothing is visible and the rows stay
//! buffered; after it the in-memory state has moved on, and what is left to do (renames,
//! log trimming) is finished by the next call or by restart, never redone. Once a period
//! is over, sealing ([`crate::seal`]) merges each zone's rows of its runs into one file in
//! the zone's partition, once. So a row is encoded twice before its period's file is
//! final. Every step passes a [`WriteStep`] hook, so tests can fail or crash the writer there.
//!
//! The state directory `_archiver/` holds the lock, the writer id, the file sequence, the
//! journal, the seal intent, the runs and the log (`wal/`, owned by the `wal` crate). Must
//! not touch sockets or decode frames.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use archive_layout::format::{FORMAT_FILE, format_file_text, read_format_version};
use archive_layout::{FileId, Granularity, RunKey, RunPath, WriterId};
use catalog::{CatalogWriter, Edit};
use frame_proto::Packet;
use wal::{FsyncPolicy, Wal, WalReader, WalRecord};

use crate::ArchiverError;
use crate::buffers::{PendingBatch, RowBuffers};
use crate::compaction::Compactor;
use crate::day_compaction::{DayCompactor, pick_days, pick_months};
use crate::parquet_file::{Encoder, sync_dir, write_atomically};
use crate::publish::{FlushJournal, JournalState};
use crate::seal::{RunState, SealOutcome, Sealer, pick_due};
use crate::write_step::{StepHook, WriteStep};

/// The directory under the archive root that holds the archiver's own state.
pub use archive_layout::STATE_DIR;

/// How the writer behaves; see the archiver's flags for the user-facing side.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Period of one partition.
    pub granularity: Granularity,
    /// Flush when this many rows are buffered, whatever the timer says.
    pub max_buffered_rows: usize,
    /// Flush when the buffered rows take this many bytes (the buffers' share of the memory
    /// budget, see [`crate::memory_budget`]).
    pub max_buffered_bytes: usize,
    /// Decoded rows a seal holds at a time (it seals zones in groups that fit).
    pub seal_budget_bytes: usize,
    /// Encoding of flush runs.
    pub flush_encoder: Encoder,
    /// Encoding of sealed files.
    pub compact_encoder: Encoder,
    /// Days whose end is at least this far behind the newest sample are compacted into one
    /// file per zone and table (`None`: never).
    pub compact_days_after: Option<std::time::Duration>,
    /// Months whose end is at least this far behind the newest sample are compacted into
    /// one file per zone and table, where their raw files take at most
    /// `month_file_max_bytes` (`None`: never).
    pub compact_months_after: Option<std::time::Duration>,
    /// The most bytes of raw files one month compaction merges (a month over it keeps its
    /// day files).
    pub month_file_max_bytes: u64,
    /// Bytes of raw files month compactions merge per flush (at least one month).
    pub month_bytes_per_flush: u64,
    /// How long a compaction's inputs stay on disk after the catalog dropped them.
    pub retire_grace: std::time::Duration,
    /// Day groups (zone, table, day) compacted at most per flush.
    pub days_per_flush: usize,
    /// Which published files leave the archive, by age and disk budget.
    pub retention: crate::retention::RetentionPolicy,
    /// When the write-ahead log is forced to disk.
    pub fsync: FsyncPolicy,
    /// Start a new log segment past this size.
    pub wal_segment_bytes: u64,
    /// Whether sealed, day and month files get a value index beside them
    /// ([`crate::side_files`]); `--value-indexes off` turns it off.
    pub value_indexes: bool,
    /// Called at every step of the write path (tests only; `None` in service).
    pub step_hook: Option<Arc<dyn StepHook + Sync>>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            granularity: Granularity::Hour,
            max_buffered_rows: 1_000_000,
            max_buffered_bytes: crate::memory_budget::shares(crate::memory_budget::DEFAULT_MIB << 20, 1).buffered_bytes,
            seal_budget_bytes: crate::memory_budget::shares(crate::memory_budget::DEFAULT_MIB << 20, 1).seal_bytes,
            flush_encoder: Encoder::FLUSH,
            compact_encoder: Encoder::COMPACT,
            compact_days_after: Some(std::time::Duration::from_secs(48 * 3600)),
            compact_months_after: Some(std::time::Duration::from_secs(72 * 3600)),
            month_file_max_bytes: 64 << 20,
            month_bytes_per_flush: 64 << 20,
            retire_grace: std::time::Duration::from_secs(60),
            days_per_flush: 16,
            retention: crate::retention::RetentionPolicy::default(),
            fsync: FsyncPolicy::Every(std::time::Duration::from_millis(1000)),
            wal_segment_bytes: 64 << 20,
            value_indexes: true,
            step_hook: None,
        }
    }
}

/// A batch only partly logged: its first `accepted` frames are accepted, the rest are not.
#[derive(Debug)]
pub struct LogError {
    /// Frames at the head of the batch that were logged.
    pub accepted: usize,
    /// What failed.
    pub error: ArchiverError,
}

/// Counters of what the writer did, for the periodic log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Files published by flushes.
    pub files_flushed: u64,
    /// Rows in those files.
    pub rows_flushed: u64,
    /// Bytes of those files.
    pub bytes_flushed: u64,
    /// (table, period)s sealed.
    pub compactions: u64,
    /// Zone files published by seals.
    pub files_sealed: u64,
    /// Runs removed by seals.
    pub runs_sealed: u64,
    /// Files removed because a sealed file replaced them.
    pub files_replaced: u64,
    /// (table, zone, day)s compacted into a day file.
    pub days_compacted: u64,
    /// (table, zone, month)s compacted into a month file.
    pub months_compacted: u64,
    /// Retired files (a day compaction's inputs) deleted after their grace period.
    pub retired_deleted: u64,
    /// Files retention removed from the catalog (deleted after the grace period).
    pub files_expired: u64,
    /// Their bytes.
    pub bytes_expired: u64,
    /// Flushes or compactions that failed (and are retried).
    pub publish_errors: u64,
    /// Replayed log records the admission rules refused, kept in the log's `rejected.wal`.
    pub replay_rejected: u64,
}

/// Hands out publish sequence numbers, never reusing one even across restarts or a clock
/// that steps back: numbers are reserved in blocks in `_archiver/file-seq` (replaced
/// atomically) before use. A file that cannot be read as a number is an error, never 0.
#[derive(Debug)]
struct FileSeq {
    next: u64,
    reserved_to: u64,
    path: PathBuf,
}

impl FileSeq {
    const BLOCK: u64 = 1 << 20;

    fn open(state_dir: &Path) -> Result<Self, ArchiverError> {
        let path = state_dir.join("file-seq");
        let stored = match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| ArchiverError::Corrupt { path: path.clone(), reason: "not a sequence number" })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(ArchiverError::Io { what: "read", path, source }),
        };
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let mut seq = Self { next: stored.max(now_us), reserved_to: 0, path };
        seq.reserve()?;
        Ok(seq)
    }

    fn reserve(&mut self) -> Result<(), ArchiverError> {
        let to = self.next + Self::BLOCK;
        write_atomically(&self.path, format!("{to}\n").as_bytes())?;
        self.reserved_to = to;
        Ok(())
    }

    fn take(&mut self) -> Result<u64, ArchiverError> {
        if self.next >= self.reserved_to {
            self.reserve()?;
        }
        let seq = self.next;
        self.next += 1;
        Ok(seq)
    }
}

fn hook_step(hook: Option<&Arc<dyn StepHook + Sync>>, step: WriteStep) -> Result<(), ArchiverError> {
    match hook {
        Some(hook) => hook.at(step).map_err(|source| ArchiverError::Step { step, source }),
        None => Ok(()),
    }
}

/// This archive's writer id, created at the first start (`_archiver/writer-id`).
fn writer_id(state_dir: &Path) -> Result<WriterId, ArchiverError> {
    let path = state_dir.join("writer-id");
    match fs::read_to_string(&path) {
        Ok(text) => text.parse().map_err(|_| ArchiverError::Corrupt { path, reason: "not a writer id (8 hex digits)" }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
            h.write_u32(std::process::id());
            let id = WriterId((h.finish() as u32).max(1));
            write_atomically(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(source) => Err(ArchiverError::Io { what: "read", path, source }),
    }
}

/// Writes an archive directory. One per archive: a lock file keeps a second archiver out.
#[derive(Debug)]
pub struct ArchiveWriter {
    root: PathBuf,
    state_dir: PathBuf,
    options: WriterOptions,
    writer: WriterId,
    buffers: RowBuffers,
    /// Batches taken from the buffers by a flush that did not reach its commit point.
    pending: Vec<PendingBatch>,
    runs: HashMap<RunKey, RunState>,
    flush_cycle: u64,
    seq: FileSeq,
    stats: WriterStats,
    wal: Wal,
    compactor: Compactor,
    sealer: Sealer,
    days: DayCompactor,
    /// The day of the newest sample when days were last looked for, and whether that look
    /// left days to do.
    days_checked: Option<((i64, i64), bool)>,
    /// The hour of the newest sample when retention last looked.
    retention_checked: Option<i64>,
    /// The archive's catalog (`None` only while opening an archive that has none yet).
    catalog: Option<CatalogWriter>,
    /// Set when the outcome of a commit is unknown: nothing more may be done in this process.
    poisoned: Option<String>,
    _lock: File,
}

impl ArchiveWriter {
    /// Opens (creating) the archive at `root`, taking its lock, and brings it to a state
    /// where every accepted frame is either published once or in the log to replay: an
    /// interrupted flush is finished or undone, an interrupted compaction finished.
    pub fn open(root: &Path, options: WriterOptions) -> Result<Self, ArchiverError> {
        let state_dir = root.join(STATE_DIR);
        fs::create_dir_all(&state_dir).map_err(|source| ArchiverError::Io {
            what: "create archive directory",
            path: state_dir.clone(),
            source,
        })?;
        let lock_path = state_dir.join("lock");
        let lock = File::create(&lock_path).map_err(|source| ArchiverError::Io {
            what: "create lock",
            path: lock_path.clone(),
            source,
        })?;
        lock.try_lock().map_err(|_| ArchiverError::Locked(root.to_owned()))?;
        if read_format_version(root)? < archive_layout::format::FORMAT_VERSION || !root.join(FORMAT_FILE).exists() {
            write_atomically(&root.join(FORMAT_FILE), format_file_text().as_bytes())?;
        }
        let writer = writer_id(&state_dir)?;
        let wal = Wal::open(&state_dir.join("wal"), options.fsync, options.wal_segment_bytes)?;
        let compactor = Compactor::new(root, &state_dir, writer, options.compact_encoder);
        let sealer = Sealer::new(root, &state_dir, writer, options.compact_encoder, options.seal_budget_bytes)
            .with_value_indexes(options.value_indexes);
        let days = DayCompactor::new(root, &state_dir, writer, options.compact_encoder, options.retire_grace)
            .with_value_indexes(options.value_indexes);
        // The files are the truth: a catalog that is missing or cannot be read is rebuilt
        // from them once recovery is done (and after an older version's compaction, which
        // never recorded its changes).
        let catalog = match CatalogWriter::open(root) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the catalog cannot be read; it is rebuilt from the files");
                None
            }
        };
        let legacy_compaction = state_dir.join(crate::compaction::INTENT_FILE).exists();
        let mut this = Self {
            days,
            days_checked: None,
            retention_checked: None,
            catalog,
            wal,
            compactor,
            sealer,
            writer,
            root: root.to_owned(),
            seq: FileSeq::open(&state_dir)?,
            state_dir,
            buffers: RowBuffers::new(options.granularity),
            options,
            pending: Vec::new(),
            runs: HashMap::new(),
            flush_cycle: 0,
            stats: WriterStats::default(),
            poisoned: None,
            _lock: lock,
        };
        this.settle_journal(true)?;
        this.settle_compaction()?;
        if this.catalog.is_none() || legacy_compaction {
            this.rebuild_catalog()?;
        }
        // Runs an earlier process left: sealed when due (or at shutdown).
        for key in this.sealer.runs_on_disk()? {
            this.runs.insert(key, RunState { last_flush_cycle: 0 });
        }
        // The newest sample stored so far, so what was due when an earlier process stopped
        // (seals, compactions, retention) is done at the next flush, not once new frames
        // come.
        let stored = catalog::Snapshot::read(root)?.and_then(|s| s.entries().filter_map(|e| e.max_time_us).max());
        if let Some(latest) = stored {
            this.buffers.note_sample(latest);
        }
        Ok(this)
    }

    /// Replaces the catalog with one built from the files (every footer is read).
    pub fn rebuild_catalog(&mut self) -> Result<(), ArchiverError> {
        let started = std::time::Instant::now();
        let entries = catalog::scan_archive(&self.root)?;
        let files = entries.len();
        self.catalog = Some(CatalogWriter::create(&self.root, entries)?);
        tracing::info!(files, seconds = started.elapsed().as_secs_f64(), "built the catalog from the files");
        Ok(())
    }

    /// The archive root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This writer's id (in every file name it publishes).
    pub fn writer_id(&self) -> WriterId {
        self.writer
    }

    /// What the writer did so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Why the writer refuses to go on, if it does.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    fn check_poisoned(&self) -> Result<(), ArchiverError> {
        match &self.poisoned {
            Some(why) => Err(ArchiverError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn step(&self, step: WriteStep) -> Result<(), ArchiverError> {
        hook_step(self.options.step_hook.as_ref(), step)
    }

    /// The log records left by the previous run, to replay before accepting new frames.
    pub fn replay(&self) -> Result<WalReader, ArchiverError> {
        Ok(self.wal.replay()?)
    }

    /// Keeps a replayed record that the admission rules now refuse (see
    /// [`wal::Wal::keep_rejected`]) and counts it (once, however often it is replayed).
    pub fn keep_rejected(&mut self, record: &WalRecord) -> Result<(), ArchiverError> {
        if self.wal.keep_rejected(record)? {
            self.stats.replay_rejected += 1;
        }
        Ok(())
    }

    /// Marks the end of replay (a step tests can stop at).
    pub fn replay_buffered(&self) -> Result<(), ArchiverError> {
        self.step(WriteStep::ReplayBuffered)
    }

    /// Appends frames to the write-ahead log (one write per segment); they count as accepted
    /// once this returns, and must then be [`ArchiveWriter::append`]ed. On error, the first
    /// `accepted` frames of the batch were logged (and are accepted), the rest were not.
    pub fn log<'a>(&mut self, records: impl IntoIterator<Item = (i64, &'a str, &'a [u8])>) -> Result<usize, LogError> {
        self.check_poisoned().map_err(|error| LogError { accepted: 0, error })?;
        self.wal.append(records).map_err(|e| LogError { accepted: e.accepted, error: e.error.into() })
    }

    /// Applies the fsync policy's timer (call now and then when idle).
    pub fn sync_log(&mut self) -> Result<(), ArchiverError> {
        Ok(self.wal.sync()?)
    }

    /// Rows accepted and not yet published.
    pub fn buffered_rows(&self) -> usize {
        self.buffers.rows() + self.pending.iter().map(|p| p.batch.num_rows()).sum::<usize>()
    }

    /// Bytes of rows accepted and not yet published (buffered, or in batches a failed flush
    /// left).
    pub fn buffered_bytes(&self) -> usize {
        self.buffers.bytes() + self.pending.iter().map(|p| p.batch.get_array_memory_size()).sum::<usize>()
    }

    /// Whether the buffers have reached their row or byte limit and should be flushed now.
    pub fn wants_flush(&self) -> bool {
        self.buffered_rows() >= self.options.max_buffered_rows || self.buffered_bytes() >= self.options.max_buffered_bytes
    }

    /// Whether the rows held are past twice the byte limit (flushes are failing): the
    /// service stops reading until a flush succeeds, so memory does not grow.
    pub fn over_budget(&self) -> bool {
        self.buffered_bytes() >= 2 * self.options.max_buffered_bytes
    }

    /// Buffers the rows of one (already admitted and logged) frame from `host`; returns
    /// rows added.
    pub fn append(&mut self, host: &str, packet: &Packet) -> usize {
        self.buffers.append(host, packet)
    }

    /// Publishes every buffered row as files; returns the number of files published.
    ///
    /// First finishes (or undoes) whatever an earlier flush left. Then the log is rotated, so
    /// every buffered row is in a segment up to the rotation point, and the files are
    /// published as one unit through the journal: journal written, each file written and
    /// fsynced under its temporary name, commit line (the commit point), renames, log
    /// segments removed, journal removed. An error before the commit point publishes
    /// nothing and keeps every row for the next call; an error after it leaves the rest to
    /// the next call or to restart, and the rows are never published again.
    pub fn flush(&mut self) -> Result<usize, ArchiverError> {
        self.check_poisoned()?;
        let result = self.flush_inner();
        if result.is_err() {
            self.stats.publish_errors += 1;
        }
        result
    }

    fn flush_inner(&mut self) -> Result<usize, ArchiverError> {
        self.settle_journal(false)?;
        self.flush_cycle += 1;
        let through = self.wal.rotate()?;
        self.buffers.finish_into(&mut self.pending)?;
        self.step(WriteStep::FlushBatchesReady)?;
        if self.pending.is_empty() {
            // Every row of the segments up to `through` is published.
            self.wal.remove_through(through)?;
            return Ok(0);
        }

        let mut paths = Vec::with_capacity(self.pending.len());
        for p in &self.pending {
            paths.push(RunPath { key: p.run, id: FileId::single(self.writer, self.seq.take()?) });
        }
        let journal = FlushJournal::new(&self.root, &self.state_dir, through, &paths);
        if let Err(e) = journal.begin().and_then(|()| self.step(WriteStep::FlushJournalWritten)) {
            return Err(self.roll_back_after(&journal, e));
        }
        let mut written = Vec::with_capacity(paths.len());
        for (p, path) in self.pending.iter().zip(&paths) {
            let wrote = self.options.flush_encoder.write_run_temp(&self.root, path, std::slice::from_ref(&p.batch));
            match wrote.and_then(|bytes| self.step(WriteStep::FlushTempWritten).map(|()| bytes)) {
                Ok(bytes) => written.push(bytes),
                Err(e) => return Err(self.roll_back_after(&journal, e)),
            }
        }
        // The temporary files' names must be durable before the commit names them: after a
        // power loss a committed journal must find them (their directories, if new, were
        // made durable when created).
        let mut dirs: Vec<&Path> = journal.pairs.iter().filter_map(|(tmp, _)| tmp.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            if let Err(e) = sync_dir(&self.root.join(dir)) {
                return Err(self.roll_back_after(&journal, e));
            }
        }
        if let Err(e) = journal.commit() {
            // Whether the commit line reached the disk is unknown. Undo it: the journal is
            // removed before anything else, so if that works the flush never happened.
            return Err(match journal.roll_back() {
                Ok(()) => e,
                Err(undo) => self.poison(format!(
                    "flush commit failed ({e}) and could not be undone ({undo}); restart to recover from the journal"
                )),
            });
        }

        // The commit point: from here the flush is done as far as memory is concerned.
        let published = paths.len();
        for ((p, path), bytes) in self.pending.drain(..).zip(paths).zip(written) {
            self.stats.files_flushed += 1;
            self.stats.rows_flushed += p.batch.num_rows() as u64;
            self.stats.bytes_flushed += bytes;
            self.runs.entry(path.key).or_default().last_flush_cycle = self.flush_cycle;
        }
        self.step(WriteStep::FlushCommitted)?;
        self.roll_forward(&journal)?;
        Ok(published)
    }

    /// Rolls back an uncommitted flush after `error`; returns the error to report.
    fn roll_back_after(&mut self, journal: &FlushJournal, error: ArchiverError) -> ArchiverError {
        if let Err(undo) = journal.roll_back() {
            // The journal stays; the next flush (or restart) rolls it back again.
            tracing::error!(error = %undo, "cannot roll back a failed flush yet; retried before the next flush");
        }
        error
    }

    fn poison(&mut self, why: String) -> ArchiverError {
        tracing::error!(reason = %why, "the archive writer stops");
        self.poisoned = Some(why.clone());
        ArchiverError::Poisoned(why)
    }

    /// Completes a committed flush: renames, log trimming, journal removal. Repeatable.
    fn roll_forward(&mut self, journal: &FlushJournal) -> Result<(), ArchiverError> {
        journal.rename_all()?;
        self.step(WriteStep::FlushRenamed)?;
        if let Some(catalog) = self.catalog.as_mut() {
            let mut add = Vec::with_capacity(journal.pairs.len());
            for (_, relative) in &journal.pairs {
                add.push(catalog::entry_of_run(&self.root, &RunPath::parse_relative(relative)?)?);
            }
            catalog.commit(&Edit { add, ..Edit::default() })?;
        }
        self.step(WriteStep::FlushCatalogued)?;
        self.wal.remove_through(journal.through)?;
        self.step(WriteStep::FlushLogTrimmed)?;
        journal.remove()
    }

    /// Finishes or undoes the flush a journal on disk describes (left by a failure in this
    /// process, or by a crash when `at_start`).
    fn settle_journal(&mut self, at_start: bool) -> Result<(), ArchiverError> {
        let Some(state) = FlushJournal::read(&self.root, &self.state_dir)? else { return Ok(()) };
        if at_start {
            self.step(WriteStep::RecoveryJournalFound)?;
        }
        match state {
            JournalState::Committed(journal) => {
                tracing::warn!(files = journal.pairs.len(), "completing a flush interrupted after its commit");
                self.roll_forward(&journal)
            }
            JournalState::Uncommitted(journal) => {
                tracing::warn!(
                    files = journal.pairs.len(),
                    "undoing a flush interrupted before its commit; its rows are still buffered or in the log"
                );
                journal.roll_back()
            }
        }
    }

    fn settle_compaction(&mut self) -> Result<(), ArchiverError> {
        let hook = self.options.step_hook.clone();
        self.compactor.settle(&mut |s| hook_step(hook.as_ref(), s))?;
        self.sealer.settle(&mut |s| hook_step(hook.as_ref(), s), &mut self.catalog)?;
        self.days.settle(&mut |s| hook_step(hook.as_ref(), s), &mut self.catalog)
    }

    /// Seals the (table, period)s that are due (see [`crate::seal::pick_due`]); returns how many.
    /// Then compacts the days that are due ([`crate::day_compaction::pick_days`]) and
    /// deletes retired files whose grace period is over.
    pub fn seal_due(&mut self) -> Result<usize, ArchiverError> {
        let due = pick_due(&self.runs, self.buffers.latest_sample(), self.flush_cycle);
        // A seal of a day already old enough to compact (its last hour, or late rows) makes
        // that day due; a seal of recent hours cannot, so the catalog is not read again for it.
        let old_day = match (self.options.compact_days_after, self.buffers.latest_sample()) {
            (Some(age), Some(latest)) => {
                let before = latest.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX));
                due.iter().any(|k| Granularity::Day.period_start(k.start_us) + archive_layout::DAY_US <= before)
            }
            _ => false,
        };
        let sealed = self.seal_keys(due)?;
        if sealed > 0 && old_day {
            self.days_checked = None;
        }
        if sealed > 0 && self.options.retention.disk_budget_bytes.is_some() {
            // New files count against the disk budget.
            self.retention_checked = None;
        }
        self.guarded(|w| w.compact_days_due().and_then(|()| w.apply_retention()).and_then(|()| w.reap_retired(false)))?;
        Ok(sealed)
    }

    /// Seals every (table, period) with runs, open ones included (at shutdown), applies the
    /// retention policy and deletes every retired file, grace period or not: left until the
    /// next start, a compaction's inputs would make a plain glob read their rows twice (a
    /// reader still reading one when the archiver stops fails; `dq` plans again).
    pub fn seal_all(&mut self) -> Result<usize, ArchiverError> {
        let mut keys: Vec<RunKey> = self.runs.keys().copied().collect();
        keys.sort();
        let sealed = self.seal_keys(keys)?;
        self.retention_checked = None;
        self.guarded(|w| w.apply_retention().and_then(|()| w.reap_retired(true)))?;
        Ok(sealed)
    }

    fn guarded(&mut self, work: impl FnOnce(&mut Self) -> Result<(), ArchiverError>) -> Result<(), ArchiverError> {
        self.check_poisoned()?;
        let result = work(self);
        if result.is_err() {
            self.stats.publish_errors += 1;
        }
        result
    }

    /// Compacts up to `days_per_flush` days and then, once no day is left, up to
    /// `month_bytes_per_flush` of months that are due; looks for them when the newest sample minus either age passed midnight,
    /// after a seal of an old day, or when the last look left some.
    fn compact_days_due(&mut self) -> Result<(), ArchiverError> {
        let Some(latest) = self.buffers.latest_sample() else { return Ok(()) };
        let behind = |age: Option<std::time::Duration>| {
            age.map(|age| latest.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX)))
        };
        let (days_before, months_before) = (behind(self.options.compact_days_after), behind(self.options.compact_months_after));
        if days_before.is_none() && months_before.is_none() {
            return Ok(());
        }
        // A new day or month can be due only once `before` passes midnight.
        let midnight = |b: Option<i64>| b.map_or(i64::MIN, |b| Granularity::Day.period_start(b));
        let today = (midnight(days_before), midnight(months_before));
        if self.days_checked.is_some_and(|(day, more)| day == today && !more) {
            return Ok(());
        }
        // Never while a seal or a flush is half done (their intent or journal is there).
        self.settle_journal(false)?;
        self.settle_compaction()?;
        let Some(snapshot) = catalog::Snapshot::read(&self.root)? else { return Ok(()) };
        let day_limit = self.options.days_per_flush.max(1);
        // Another writer's files (an archive that changed hands) are its to compact: picking
        // them would find nothing of ours to do, every time.
        let writer = self.writer;
        let ours = move |e: &&catalog::Entry| e.zone.is_none() || e.file_id().is_none_or(|id| id.writer == writer);
        let days = days_before.map(|b| pick_days(snapshot.entries().filter(ours), b, day_limit)).unwrap_or_default();
        let days_left = days.len() == day_limit;
        // Months once every due day is done (a month merges its day files), in the same
        // flush, from the catalog as the days left it (read again only if they changed it).
        let snapshot = if days.is_empty() {
            Some(snapshot)
        } else {
            drop(snapshot);
            self.compact_groups(&days)?;
            if months_before.is_some() && !days_left { catalog::Snapshot::read(&self.root)? } else { None }
        };
        let (months, months_left) = match (months_before, snapshot) {
            (Some(b), Some(snapshot)) if !days_left => {
                let o = &self.options;
                let for_table = |t| o.retention.keeps_months_of(t);
                pick_months(snapshot.entries().filter(ours), b, o.month_file_max_bytes, for_table, o.month_bytes_per_flush)
            }
            _ => (Vec::new(), false),
        };
        self.compact_groups(&months)?;
        self.days_checked = Some((today, days_left || months_left));
        Ok(())
    }

    fn compact_groups(&mut self, groups: &[crate::day_compaction::CompactionGroup]) -> Result<(), ArchiverError> {
        for group in groups {
            let hook = self.options.step_hook.clone();
            let outcome = self.days.compact(group, &mut |s| hook_step(hook.as_ref(), s), &mut self.catalog)?;
            if outcome.published {
                match group.granularity {
                    Granularity::Month => self.stats.months_compacted += 1,
                    _ => self.stats.days_compacted += 1,
                }
            }
        }
        Ok(())
    }

    /// Removes the files the retention policy says are past their age (or over the disk
    /// budget) from the catalog, retiring them (deleted after the grace period); looks once
    /// per hour of sample time and after each seal. The log says what went.
    fn apply_retention(&mut self) -> Result<(), ArchiverError> {
        let (Some(latest), false) = (self.buffers.latest_sample(), self.options.retention.keeps_everything()) else {
            return Ok(());
        };
        let hour = Granularity::Hour.period_start(latest);
        if self.retention_checked == Some(hour) || self.catalog.is_none() {
            return Ok(());
        }
        let Some(snapshot) = catalog::Snapshot::read(&self.root)? else { return Ok(()) };
        let expired = crate::retention::pick_expired(snapshot.entries(), &self.options.retention, latest);
        self.retention_checked = Some(hour);
        if expired.is_empty() {
            return Ok(());
        }
        let bytes: u64 = expired.iter().map(|e| e.bytes).sum();
        let oldest = expired.iter().map(|e| e.period_start_us).min().unwrap_or(0);
        let newest = expired.iter().filter_map(|e| e.period_end_us()).max().unwrap_or(0);
        let paths: Vec<String> = expired.iter().map(|e| e.path.clone()).collect();
        drop(snapshot);
        let now = crate::parquet_file::now_us();
        let after_us = now.saturating_add(self.options.retire_grace.as_micros() as i64);
        let retire = paths.iter().map(|p| catalog::Retired { retired: p.clone(), after_us }).collect();
        let files = paths.len();
        crate::seal::record(&mut self.catalog, Edit { remove: paths, retire, ..Edit::default() })?;
        self.stats.files_expired += files as u64;
        self.stats.bytes_expired += bytes;
        let rfc =
            |us: i64| chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_default();
        tracing::info!(files, bytes, from = %rfc(oldest), to = %rfc(newest), "retention: files removed (deleted after the grace period)");
        Ok(())
    }

    /// Deletes the retired files whose grace period is over (and the hour, date and month
    /// directories they leave empty), then records that in the catalog.
    fn reap_retired(&mut self, grace_or_not: bool) -> Result<(), ArchiverError> {
        let now = if grace_or_not { i64::MAX } else { crate::parquet_file::now_us() };
        let due = match &self.catalog {
            Some(c) => c.retired_due(now),
            None => return Ok(()),
        };
        if due.is_empty() {
            return Ok(());
        }
        let mut dirs = std::collections::BTreeSet::new();
        for path in &due {
            let file = self.root.join(path);
            if crate::parquet_file::remove_data_file(&file, "remove retired file")? {
                self.stats.retired_deleted += 1;
            }
            if let Some(dir) = file.parent() {
                dirs.insert(dir.to_owned());
            }
        }
        // Deepest first, so a date directory is looked at after its hours.
        for dir in dirs.iter().rev().filter(|d| d.is_dir()) {
            sync_dir(dir)?;
            // An hour, date or month directory left empty goes too (a zone directory stays);
            // then its date directory, if that is left empty.
            let mut dir = dir.as_path();
            while dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| ["hour=", "date=", "month="].iter().any(|p| n.starts_with(p)))
                && fs::remove_dir(dir).is_ok()
            {
                let parent = dir.parent().unwrap_or(&self.root);
                sync_dir(parent)?;
                dir = parent;
            }
        }
        self.step(WriteStep::RetiredDeleted)?;
        crate::seal::record(&mut self.catalog, Edit { deleted: due, ..Edit::default() })?;
        Ok(())
    }

    fn seal_keys(&mut self, keys: Vec<RunKey>) -> Result<usize, ArchiverError> {
        self.check_poisoned()?;
        // Never seal while a committed flush is half done: finish it first.
        let result = self.settle_journal(false).and_then(|()| self.settle_compaction()).and_then(|()| self.seal_each(keys));
        if result.is_err() {
            self.stats.publish_errors += 1;
        }
        result
    }

    fn seal_each(&mut self, keys: Vec<RunKey>) -> Result<usize, ArchiverError> {
        let mut done = 0;
        for key in keys {
            let hook = self.options.step_hook.clone();
            let SealOutcome { zones, runs, replaced } =
                self.sealer.seal(key, &mut |s| hook_step(hook.as_ref(), s), &mut self.catalog)?;
            self.runs.remove(&key);
            self.stats.files_sealed += zones as u64;
            self.stats.runs_sealed += runs as u64;
            self.stats.files_replaced += replaced as u64;
            self.stats.compactions += 1;
            done += 1;
        }
        Ok(done)
    }
}

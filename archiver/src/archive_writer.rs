//! The archive directory as the archiver writes it: buffering rows per partition, flushing
//! them into published Parquet files, and compacting a partition's files into one.
//!
//! Rows are buffered per (host, zone, period). A flush (every `flush_interval`, or when the
//! buffer holds too many rows) publishes one small file per buffered (table, host, zone,
//! period). A partition is compacted into a single file once it is *sealed* (its period has
//! ended by the zone's own sample clock and the last flush brought it nothing new), when it
//! has gathered too many files, and at shutdown. Must not touch sockets or decode frames.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use archive_layout::{FileId, Granularity, ParquetFilePath, PartitionKey, live_files};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use frame_proto::Packet;

use crate::ArchiverError;
use crate::parquet_file::{Encoder, read_file, sync_dir};
use crate::rows::ZoneRows;
use crate::wal::{FsyncPolicy, Wal};

/// The directory under the archive root that holds the archiver's own state (never data).
pub const STATE_DIR: &str = "_archiver";

/// How the writer behaves; see the archiver's flags for the user-facing side.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Period of one partition.
    pub granularity: Granularity,
    /// Flush when this many rows are buffered, whatever the timer says (bounds memory).
    pub max_buffered_rows: usize,
    /// Compact a partition that has gathered more files than this, even if still open.
    pub max_files_per_partition: usize,
    /// Encoding of flushed files.
    pub flush_encoder: Encoder,
    /// Encoding of compacted files.
    pub compact_encoder: Encoder,
    /// When the write-ahead log is forced to disk.
    pub fsync: FsyncPolicy,
    /// Start a new log segment past this size.
    pub wal_segment_bytes: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            granularity: Granularity::Hour,
            max_buffered_rows: 1_000_000,
            max_files_per_partition: 32,
            flush_encoder: Encoder::FLUSH,
            compact_encoder: Encoder::COMPACT,
            fsync: FsyncPolicy::Every(std::time::Duration::from_millis(1000)),
            wal_segment_bytes: 64 << 20,
        }
    }
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
    /// Partitions compacted.
    pub compactions: u64,
    /// Files removed because a compacted file replaced them.
    pub files_replaced: u64,
    /// Publish attempts that failed (and were retried).
    pub publish_errors: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Files published into it by this run (it may hold older ones too).
    files_this_run: usize,
    /// The flush cycle that last published into it.
    last_flush_cycle: u64,
}

/// Hands out publish sequence numbers, never reusing one even across restarts or a clock
/// that steps back: numbers are reserved in blocks in `_archiver/file-seq` before use.
#[derive(Debug)]
struct FileSeq {
    next: u64,
    reserved_to: u64,
    file: File,
    path: PathBuf,
}

impl FileSeq {
    const BLOCK: u64 = 1 << 20;

    fn open(state_dir: &Path) -> Result<Self, ArchiverError> {
        let path = state_dir.join("file-seq");
        let io = |what, source| ArchiverError::Io { what, path: path.clone(), source };
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| io("open", e))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| io("read", e))?;
        let stored: u64 = text.trim().parse().unwrap_or(0);
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let mut seq = Self { next: stored.max(now_us), reserved_to: 0, file, path };
        seq.reserve()?;
        Ok(seq)
    }

    fn reserve(&mut self) -> Result<(), ArchiverError> {
        let to = self.next + Self::BLOCK;
        let io = |what, source| ArchiverError::Io { what, path: self.path.clone(), source };
        self.file.set_len(0).map_err(|e| io("truncate", e))?;
        self.file.rewind().map_err(|e| io("seek", e))?;
        self.file.write_all(format!("{to}\n").as_bytes()).map_err(|e| io("write", e))?;
        self.file.sync_data().map_err(|e| io("fsync", e))?;
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

/// A finished batch waiting to be published.
#[derive(Debug)]
struct PendingFile {
    key: PartitionKey,
    batch: RecordBatch,
}

/// Rows buffered for one host: zone -> period start -> rows.
type HostBuffers = HashMap<Box<str>, BTreeMap<i64, ZoneRows>>;

/// Writes an archive directory. One per archive: a lock file keeps a second archiver out.
#[derive(Debug)]
pub struct ArchiveWriter {
    root: PathBuf,
    options: WriterOptions,
    buffers: HashMap<Box<str>, HostBuffers>,
    pending: VecDeque<PendingFile>,
    buffered_rows: usize,
    partitions: HashMap<PartitionKey, PartitionState>,
    latest_sample_per_zone: HashMap<Box<str>, i64>,
    flush_cycle: u64,
    seq: FileSeq,
    stats: WriterStats,
    wal: Wal,
    replay: Vec<u64>,
    _lock: File,
}

impl ArchiveWriter {
    /// Opens (creating) the archive at `root`, taking its lock.
    pub fn open(root: &Path, options: WriterOptions) -> Result<Self, ArchiverError> {
        let state_dir = root.join(STATE_DIR);
        fs::create_dir_all(&state_dir)
            .map_err(|source| ArchiverError::Io { what: "create archive directory", path: state_dir.clone(), source })?;
        let lock_path = state_dir.join("lock");
        let lock = File::create(&lock_path).map_err(|source| ArchiverError::Io { what: "create lock", path: lock_path.clone(), source })?;
        lock.try_lock().map_err(|_| ArchiverError::Locked(root.to_owned()))?;
        recover_flush_journal(root)?;
        recover_compaction(root, &options.compact_encoder)?;
        let (wal, replay) = Wal::open(&state_dir.join("wal"), options.fsync, options.wal_segment_bytes)?;
        Ok(Self {
            wal,
            replay,
            root: root.to_owned(),
            seq: FileSeq::open(&state_dir)?,
            options,
            buffers: HashMap::new(),
            pending: VecDeque::new(),
            buffered_rows: 0,
            partitions: HashMap::new(),
            latest_sample_per_zone: HashMap::new(),
            flush_cycle: 0,
            stats: WriterStats::default(),
            _lock: lock,
        })
    }

    /// The archive root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the writer did so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Log segments left by the previous run, to replay before accepting new frames.
    pub fn take_replay_segments(&mut self) -> (PathBuf, Vec<u64>) {
        (self.wal.dir().to_owned(), std::mem::take(&mut self.replay))
    }

    /// Appends frames to the write-ahead log (one write); they count as accepted once this
    /// returns, and must then be [`ArchiveWriter::append`]ed.
    pub fn log<'a>(&mut self, records: impl IntoIterator<Item = (i64, &'a str, &'a [u8])>) -> Result<usize, ArchiverError> {
        self.wal.append(records)
    }

    /// Applies the fsync policy's timer (call now and then when idle).
    pub fn sync_log(&mut self) -> Result<(), ArchiverError> {
        self.wal.sync()
    }

    /// Rows waiting for the next flush.
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// Whether the buffer has reached its row limit and should be flushed now.
    pub fn wants_flush(&self) -> bool {
        self.buffered_rows >= self.options.max_buffered_rows
    }

    /// Buffers the rows of one (already validated) frame from `host`; returns rows added.
    pub fn append(&mut self, host: &str, packet: &Packet) -> usize {
        let t = packet.sample_time_us();
        let period = self.options.granularity.period_start(t);
        let zones = match self.buffers.get_mut(host) {
            Some(z) => z,
            None => self.buffers.entry(host.into()).or_default(),
        };
        let periods = match zones.get_mut(packet.name.as_str()) {
            Some(p) => p,
            None => zones.entry(packet.name.as_str().into()).or_default(),
        };
        let added = periods.entry(period).or_default().append(packet, t);
        self.buffered_rows += added;
        match self.latest_sample_per_zone.get_mut(packet.name.as_str()) {
            Some(latest) => *latest = (*latest).max(t),
            None => {
                self.latest_sample_per_zone.insert(packet.name.as_str().into(), t);
            }
        }
        added
    }

    /// Publishes every buffered row as files; returns the number of files published.
    ///
    /// The log is rotated first, so every buffered row is in a segment up to the rotation
    /// point. The files are then published as one unit through a journal
    /// (`_archiver/flush.journal`): (1) the journal lists every temporary and final path, (2)
    /// each file is written and fsynced under its temporary name, (3) a `commit` line is
    /// appended and fsynced, (4) the files are renamed into place and their directories
    /// fsynced, (5) the log segments up to the rotation point are removed, (6) the journal is
    /// removed. A crash before (3) rolls back (temporaries deleted, log replayed); after it,
    /// rolls forward (renames completed, log segments removed): each row is published
    /// exactly once. On an error before (3) (disk full, permissions, file-size limit) the
    /// batches stay queued for the next call and nothing is published.
    pub fn flush(&mut self) -> Result<usize, ArchiverError> {
        self.flush_cycle += 1;
        let through = self.wal.rotate()?;
        for (host, zones) in self.buffers.drain() {
            for (zone, periods) in zones {
                for (period, mut rows) in periods {
                    let batches = rows
                        .finish(&host, &zone)
                        .map_err(|source| ArchiverError::Arrow { context: format!("zone {zone:?} of host {host:?}"), source })?;
                    self.pending.extend(batches.into_iter().map(|(table, batch)| PendingFile {
                        key: PartitionKey { table, zone: zone.to_string(), start_us: period, granularity: self.options.granularity },
                        batch,
                    }));
                }
            }
        }
        if self.pending.is_empty() {
            self.wal.remove_through(through)?;
            return Ok(0);
        }
        let result = self.publish_pending(through);
        if result.is_err() {
            self.stats.publish_errors += 1;
        }
        result
    }

    fn publish_pending(&mut self, through: u64) -> Result<usize, ArchiverError> {
        let mut paths = Vec::with_capacity(self.pending.len());
        for file in &self.pending {
            paths.push(ParquetFilePath::new(file.key.clone(), FileId::single(self.seq.take()?)));
        }
        let journal = Journal::new(&self.root, through, &paths);
        journal.begin()?;
        let mut written = Vec::with_capacity(paths.len());
        for (file, path) in self.pending.iter().zip(&paths) {
            match self.options.flush_encoder.write_temp(&self.root, path, std::slice::from_ref(&file.batch)) {
                Ok(bytes) => written.push(bytes),
                Err(e) => {
                    journal.roll_back();
                    return Err(e);
                }
            }
        }
        journal.commit()?;
        journal.roll_forward()?;
        self.wal.remove_through(through)?;
        journal.finish()?;

        let published = paths.len();
        for ((file, path), bytes) in self.pending.drain(..).zip(paths).zip(written) {
            let rows = file.batch.num_rows();
            self.buffered_rows = self.buffered_rows.saturating_sub(rows);
            self.stats.files_flushed += 1;
            self.stats.rows_flushed += rows as u64;
            self.stats.bytes_flushed += bytes;
            let state = self.partitions.entry(path.key).or_default();
            state.files_this_run += 1;
            state.last_flush_cycle = self.flush_cycle;
        }
        Ok(published)
    }

    /// Compacts the partitions that are sealed or have too many files; returns how many.
    pub fn compact_due(&mut self) -> Result<usize, ArchiverError> {
        let due: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(key, state)| {
                let sealed = state.last_flush_cycle < self.flush_cycle
                    && self.latest_sample_per_zone.get(key.zone.as_str()).is_some_and(|&t| t >= key.end_us());
                (sealed && state.files_this_run > 1) || state.files_this_run > self.options.max_files_per_partition
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.compact_keys(due)
    }

    /// Compacts every partition this run wrote more than one file into (at shutdown).
    pub fn compact_all(&mut self) -> Result<usize, ArchiverError> {
        let keys: Vec<PartitionKey> =
            self.partitions.iter().filter(|(_, s)| s.files_this_run > 1).map(|(k, _)| k.clone()).collect();
        self.compact_keys(keys)
    }

    fn compact_keys(&mut self, mut keys: Vec<PartitionKey>) -> Result<usize, ArchiverError> {
        keys.sort();
        let mut done = 0;
        for key in keys {
            let intent = self.root.join(STATE_DIR).join(COMPACTION_INTENT);
            fs::write(&intent, key.relative_dir().to_string_lossy().as_bytes())
                .map_err(|source| ArchiverError::Io { what: "write", path: intent.clone(), source })?;
            let replaced = compact_partition(&self.root, &key, &self.options.compact_encoder)?;
            let _ = fs::remove_file(&intent);
            self.stats.files_replaced += replaced as u64;
            if replaced > 0 {
                self.stats.compactions += 1;
                done += 1;
            }
            // A sealed partition is done with; forget it so memory stays flat over months.
            let sealed = self.latest_sample_per_zone.get(key.zone.as_str()).is_some_and(|&t| t >= key.end_us());
            if sealed {
                self.partitions.remove(&key);
            } else if let Some(state) = self.partitions.get_mut(&key) {
                state.files_this_run = 1;
            }
        }
        Ok(done)
    }
}

const JOURNAL: &str = "flush.journal";
const COMPACTION_INTENT: &str = "compaction.intent";

/// The flush journal (see [`ArchiveWriter::flush`]).
#[derive(Debug)]
struct Journal {
    root: PathBuf,
    path: PathBuf,
    through: u64,
    pairs: Vec<(PathBuf, PathBuf)>,
}

impl Journal {
    fn new(root: &Path, through: u64, paths: &[ParquetFilePath]) -> Self {
        let pairs = paths
            .iter()
            .map(|p| {
                let tmp = p.temp_path(root);
                let rel_tmp = tmp.strip_prefix(root).map(Path::to_owned).unwrap_or(tmp);
                (rel_tmp, p.relative_path())
            })
            .collect();
        Self { root: root.to_owned(), path: root.join(STATE_DIR).join(JOURNAL), through, pairs }
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> ArchiverError + '_ {
        move |source| ArchiverError::Io { what, path: self.path.clone(), source }
    }

    fn begin(&self) -> Result<(), ArchiverError> {
        let mut text = format!("through {}\n", self.through);
        for (tmp, fin) in &self.pairs {
            text.push_str(&format!("{}\t{}\n", tmp.display(), fin.display()));
        }
        let mut f = File::create(&self.path).map_err(self.io("create"))?;
        f.write_all(text.as_bytes()).map_err(self.io("write"))?;
        f.sync_all().map_err(self.io("fsync"))?;
        sync_dir(&self.root.join(STATE_DIR))
    }

    fn commit(&self) -> Result<(), ArchiverError> {
        let mut f = OpenOptions::new().append(true).open(&self.path).map_err(self.io("open"))?;
        f.write_all(b"commit\n").map_err(self.io("write"))?;
        f.sync_all().map_err(self.io("fsync"))
    }

    fn roll_back(&self) {
        for (tmp, _) in &self.pairs {
            let _ = fs::remove_file(self.root.join(tmp));
        }
        let _ = fs::remove_file(&self.path);
    }

    fn roll_forward(&self) -> Result<(), ArchiverError> {
        let mut dirs = std::collections::BTreeSet::new();
        for (tmp, fin) in &self.pairs {
            let (tmp, fin) = (self.root.join(tmp), self.root.join(fin));
            match fs::rename(&tmp, &fin) {
                Ok(()) => {}
                // Already renamed before a crash.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && fin.exists() => {}
                Err(source) => return Err(ArchiverError::Io { what: "rename into place", path: fin, source }),
            }
            if let Some(d) = fin.parent() {
                dirs.insert(d.to_owned());
            }
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), ArchiverError> {
        fs::remove_file(&self.path).map_err(self.io("remove"))
    }

    /// Reads a journal left by a crash: (through, pairs, committed).
    fn read(root: &Path) -> Result<Option<(Self, bool)>, ArchiverError> {
        let path = root.join(STATE_DIR).join(JOURNAL);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ArchiverError::Io { what: "read", path, source }),
        };
        let mut through = None;
        let mut pairs = Vec::new();
        let mut committed = false;
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("through ") {
                through = n.parse().ok();
            } else if line == "commit" {
                committed = true;
            } else if let Some((tmp, fin)) = line.split_once('\t') {
                pairs.push((PathBuf::from(tmp), PathBuf::from(fin)));
            }
        }
        let Some(through) = through else {
            // Torn while being written: nothing was published from it.
            return Ok(Some((Self { root: root.to_owned(), path, through: 0, pairs }, false)));
        };
        Ok(Some((Self { root: root.to_owned(), path, through, pairs }, committed)))
    }
}

/// Finishes or undoes a flush that a crash interrupted.
fn recover_flush_journal(root: &Path) -> Result<(), ArchiverError> {
    let Some((journal, committed)) = Journal::read(root)? else { return Ok(()) };
    if committed {
        tracing::warn!(files = journal.pairs.len(), "completing a flush interrupted after its commit");
        journal.roll_forward()?;
        let wal_dir = root.join(STATE_DIR).join("wal");
        for n in crate::wal::list_segments(&wal_dir)?.into_iter().filter(|n| *n <= journal.through) {
            let p = wal_dir.join(format!("{n:016x}.wal"));
            fs::remove_file(&p).map_err(|source| ArchiverError::Io { what: "remove log segment", path: p, source })?;
        }
        sync_dir(&wal_dir)?;
        journal.finish()
    } else {
        tracing::warn!(files = journal.pairs.len(), "undoing a flush interrupted before its commit; its rows are replayed from the log");
        journal.roll_back();
        Ok(())
    }
}

/// Finishes a compaction that a crash interrupted: removes its temporary file and the
/// files its output supersedes, or merges again if the output was never published.
fn recover_compaction(root: &Path, encoder: &Encoder) -> Result<(), ArchiverError> {
    let intent = root.join(STATE_DIR).join(COMPACTION_INTENT);
    let Ok(rel) = fs::read_to_string(&intent) else { return Ok(()) };
    if let Ok(key) = PartitionKey::parse_relative_dir(Path::new(&rel)) {
        let dir = root.join(key.relative_dir());
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp")) {
                let _ = fs::remove_file(entry.path());
            }
        }
        tracing::warn!(partition = %rel, "finishing a compaction interrupted by a crash");
        compact_partition(root, &key, encoder)?;
    }
    fs::remove_file(&intent).map_err(|source| ArchiverError::Io { what: "remove", path: intent, source })
}

/// Lists the published files of one partition directory (live or superseded).
pub fn list_partition(root: &Path, key: &PartitionKey) -> Result<Vec<FileId>, ArchiverError> {
    let dir = root.join(key.relative_dir());
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ArchiverError::Io { what: "list partition", path: dir, source }),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ArchiverError::Io { what: "list partition", path: dir.clone(), source })?;
        if let Some(id) = entry.file_name().to_str().and_then(FileId::parse_file_name) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Merges a partition's live files into one file sorted by time, publishes it, then removes
/// every file it supersedes. Returns the number of files removed (0: nothing to do).
fn compact_partition(root: &Path, key: &PartitionKey, encoder: &Encoder) -> Result<usize, ArchiverError> {
    let all = list_partition(root, key)?;
    let live = live_files(all.clone());
    if live.len() < 2 {
        // Still remove superseded leftovers (a crash after publishing a compacted file).
        return remove_superseded(root, key, &all, &live);
    }
    let mut batches = Vec::new();
    for id in &live {
        batches.extend(read_file(&ParquetFilePath::new(key.clone(), *id).absolute_path(root))?);
    }
    let schema = key.table.schema();
    let merged = concat_batches(&schema, &batches).map_err(|source| ArchiverError::Arrow { context: format!("compacting {}", key.relative_dir().display()), source })?;
    drop(batches);
    let order = sort_to_indices(merged.column(0), Some(SortOptions::default()), None)
        .and_then(|order| take_record_batch(&merged, &order))
        .map_err(|source| ArchiverError::Arrow { context: format!("sorting {}", key.relative_dir().display()), source })?;
    let lo = live.iter().map(|id| id.lo).min().unwrap_or(0);
    let hi = live.iter().map(|id| id.hi).max().unwrap_or(0);
    // Covering exactly the inputs' range: no other file can have a number inside it, since
    // numbers are unique and every file of the directory with one is an input.
    let out = ParquetFilePath::new(key.clone(), FileId { lo, hi });
    encoder.publish(root, &out, &[order])?;
    let now_live = vec![out.id];
    remove_superseded(root, key, &all, &now_live)
}

fn remove_superseded(root: &Path, key: &PartitionKey, all: &[FileId], live: &[FileId]) -> Result<usize, ArchiverError> {
    let keep: HashSet<&FileId> = live.iter().collect();
    let mut removed = 0;
    for id in all.iter().filter(|id| !keep.contains(id)) {
        let path = ParquetFilePath::new(key.clone(), *id).absolute_path(root);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ArchiverError::Io { what: "remove compacted input", path, source }),
        }
    }
    if removed > 0 {
        sync_dir(&root.join(key.relative_dir()))?;
    }
    Ok(removed)
}

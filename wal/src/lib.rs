//! The write-ahead log: every accepted frame is appended here before it counts as accepted,
//! and stays until the Parquet files holding its rows are durable.
//!
//! Segments are files `_archiver/wal/{n:016x}.wal` of records:
//!
//! ```text
//! magic "ZWAL" | payload length u32 LE | crc32 of payload u32 LE | payload
//! payload = version u8 (1) | receive time i64 LE (µs) | host length u16 LE | host | frame bytes
//! ```
//!
//! The receive time and the endpoint's host are logged with the raw frame so that replay
//! makes exactly the decisions the live path made. A flush *rotates* the log (new frames go
//! to a new segment) and, once its files are published, removes every segment up to the
//! rotation point. On start the remaining segments are replayed. A torn last record (a crash
//! mid-append) fails its length or checksum and is dropped; a corrupt record in the middle is
//! reported and skipped: to the end its header claims if a valid record starts there, else
//! to the next magic whose checksum holds ([`next_record`]). A failed append is cut back
//! (see [`Wal::append`]), so a segment holds only whole batches' records, torn tail aside.
//!
//! fsync policy ([`FsyncPolicy`]): a process crash never loses an appended record (it is in
//! the kernel's page cache once `write` returns); the policy decides what a power loss or
//! kernel crash may take.
//!
//! The log alone owns its directory: segment names, rotation, removal, replay, and the
//! `rejected.wal` file where replayed records that the archiver no longer admits are kept
//! ([`Wal::keep_rejected`]). It must not know what a frame means.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors of the log; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A filesystem call on the log failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A record larger than [`MAX_RECORD`] (replay would refuse it, so it is never written).
    #[error("log record of {bytes} bytes exceeds the limit of {MAX_RECORD} bytes")]
    TooLarge {
        /// The record's payload size.
        bytes: usize,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io { what, path: path.to_owned(), source }
}

/// fsyncs a directory, so a create, rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

/// A failed [`Wal::append`].
#[derive(Debug, thiserror::Error)]
#[error("{error} ({accepted} records of the batch were appended before it)")]
pub struct AppendError {
    /// How many records at the head of the batch were appended (and are accepted).
    pub accepted: usize,
    /// What failed.
    #[source]
    pub error: WalError,
}

/// Name of the file in the log directory holding records kept by [`Wal::keep_rejected`].
pub const REJECTED_FILE: &str = "rejected.wal";

const MAGIC: &[u8; 4] = b"ZWAL";
const HEADER: usize = 12;
const VERSION: u8 = 1;
/// Largest payload a record may have; [`Wal::append`] refuses larger ones (the archiver's
/// frame size limit stays below it).
pub const MAX_RECORD: usize = 64 << 20;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch of frames: a power loss loses nothing accepted. Slowest.
    Always,
    /// At most this long after a batch (default 1000 ms): a power loss may lose the frames of
    /// that last stretch.
    Every(Duration),
    /// Never (the kernel writes back on its own, typically within 30 s): a power loss may lose
    /// that much. A process crash loses nothing under any policy.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            ms => ms
                .trim_end_matches("ms")
                .parse::<u64>()
                .map(|ms| FsyncPolicy::Every(Duration::from_millis(ms)))
                .map_err(|_| format!("{s:?}: expected always, never, or milliseconds")),
        }
    }
}

/// One logged frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// When the archiver received it (µs since the epoch).
    pub recv_us: i64,
    /// The host part of the endpoint it came from.
    pub endpoint_host: String,
    /// The frame as received.
    pub frame: Vec<u8>,
}

/// Appends one record in the log's format to `buf`.
pub fn encode_record(buf: &mut Vec<u8>, recv_us: i64, endpoint_host: &str, frame: &[u8]) {
    let host = &endpoint_host.as_bytes()[..endpoint_host.len().min(u16::MAX as usize)];
    let payload_len = 1 + 8 + 2 + host.len() + frame.len();
    let start = buf.len();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(VERSION);
    buf.extend_from_slice(&recv_us.to_le_bytes());
    buf.extend_from_slice(&(host.len() as u16).to_le_bytes());
    buf.extend_from_slice(host);
    buf.extend_from_slice(frame);
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The appending side of the log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment: u64,
    file: File,
    len: u64,
    max_segment_bytes: u64,
    policy: FsyncPolicy,
    last_sync: Instant,
    unsynced: bool,
    /// A failed append could not be cut back: start a new segment before the next one.
    damaged: bool,
    /// The records of `rejected.wal`, once read.
    rejected: Option<Vec<WalRecord>>,
    buf: Vec<u8>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.wal"))
}

/// The segments in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(WalError::Io { what: "list log", path: dir.to_owned(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list log", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else { continue };
        if stem.len() != 16 {
            continue;
        }
        if let Ok(n) = u64::from_str_radix(stem, 16) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Wal {
    /// Opens the log in `dir`, starting a new segment after the existing ones (which stay
    /// until [`Wal::remove_through`] removes them; [`Wal::segments_to_replay`] lists them).
    pub fn open(dir: &Path, policy: FsyncPolicy, max_segment_bytes: u64) -> Result<Self, WalError> {
        fs::create_dir_all(dir).map_err(io_err("create log directory", dir))?;
        let existing = list_segments(dir)?;
        let next = existing.last().map_or(1, |n| n + 1);
        let file = Self::create_segment(dir, next)?;
        Ok(Self {
            dir: dir.to_owned(),
            segment: next,
            file,
            len: 0,
            max_segment_bytes: max_segment_bytes.max(1024),
            policy,
            last_sync: Instant::now(),
            unsynced: false,
            damaged: false,
            rejected: None,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    fn create_segment(dir: &Path, n: u64) -> Result<File, WalError> {
        let path = segment_path(dir, n);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err("create log segment", &path))?;
        sync_dir(dir)?;
        Ok(file)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments written before this log was opened and not yet removed, oldest first:
    /// what a start must replay.
    pub fn segments_to_replay(&self) -> Result<Vec<u64>, WalError> {
        Ok(list_segments(&self.dir)?.into_iter().filter(|n| *n < self.segment).collect())
    }

    /// A reader over [`Wal::segments_to_replay`].
    pub fn replay(&self) -> Result<WalReader, WalError> {
        Ok(WalReader::new(&self.dir, self.segments_to_replay()?))
    }

    /// Appends records (group commit: one `write` per segment they land in); they are
    /// accepted once this returns `Ok`. A batch larger than what is left of the segment is
    /// split across segments, so no segment grows past its size by more than one record.
    ///
    /// On error, the records written whole into earlier segments before the failing write
    /// are accepted ([`AppendError::accepted`], a prefix of the batch); the rest are not, and
    /// the failing segment is cut back to where their write began, so that none of them is
    /// replayed. If even that fails, the next append starts a new segment; records of the
    /// failed write that reached the disk whole may then be replayed after a crash (stored,
    /// though counted as not accepted).
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = (i64, &'a str, &'a [u8])>) -> Result<usize, AppendError> {
        self.buf.clear();
        let (mut accepted, mut in_buf) = (0, 0);
        let fail = |accepted, error| AppendError { accepted, error };
        if self.damaged {
            self.start_next_segment().map_err(|e| fail(0, e))?;
        }
        let sync_now = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Every(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        for (recv_us, host, frame) in records {
            let payload = 11 + host.len().min(u16::MAX as usize) + frame.len();
            if payload > MAX_RECORD {
                // Never write what replay would refuse: the records before it are written,
                // this one and the rest of the batch are not accepted.
                if in_buf > 0 {
                    self.write_part(sync_now).map_err(|e| fail(accepted, e))?;
                    accepted += in_buf;
                }
                return Err(fail(accepted, WalError::TooLarge { bytes: payload }));
            }
            let before = self.buf.len();
            encode_record(&mut self.buf, recv_us, host, frame);
            if in_buf > 0 && self.len + self.buf.len() as u64 > self.max_segment_bytes {
                // Write what fits (durably: the segment is closed), then go on in a new one.
                let tail = self.buf.split_off(before);
                self.write_part(true).map_err(|e| fail(accepted, e))?;
                accepted += in_buf;
                in_buf = 0;
                self.start_next_segment().map_err(|e| fail(accepted, e))?;
                self.buf = tail;
            }
            in_buf += 1;
        }
        if in_buf == 0 {
            return Ok(accepted);
        }
        self.write_part(sync_now).map_err(|e| fail(accepted, e))?;
        accepted += in_buf;
        if self.len >= self.max_segment_bytes {
            if let Err(e) = self.start_next_segment() {
                // Every record is in; start the new segment before the next append instead.
                tracing::warn!(error = %e, "cannot start a new log segment yet; retried at the next append");
                self.damaged = true;
            }
        }
        Ok(accepted)
    }

    /// Writes the buffer to the current segment (and fsyncs it if `sync`); on any error cuts
    /// the segment back to where this write began, so none of its records is replayed.
    fn write_part(&mut self, sync: bool) -> Result<(), WalError> {
        let start = self.len;
        let written = self.buf.len() as u64;
        let path = segment_path(&self.dir, self.segment);
        let mut result = self.file.write_all(&self.buf).map_err(io_err("append to log", &path));
        self.buf.clear();
        if result.is_ok() {
            self.len += written;
            self.unsynced = true;
            if sync {
                result = self.sync();
            }
        }
        if result.is_err() {
            if let Err(e) = self.file.set_len(start) {
                tracing::error!(segment = %path.display(), error = %e, "cannot cut a failed append back; the next append starts a new segment");
                self.damaged = true;
            }
            self.len = start;
        }
        result
    }

    /// Forces appended records to disk.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.unsynced {
            self.file.sync_data().map_err(io_err("fsync log", &segment_path(&self.dir, self.segment)))?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn start_next_segment(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let next = self.segment + 1;
        self.file = Self::create_segment(&self.dir, next)?;
        self.segment = next;
        self.len = 0;
        self.damaged = false;
        Ok(())
    }

    /// Closes the current segment and starts the next; returns the closed segment's number:
    /// every record appended so far is in a segment up to it.
    pub fn rotate(&mut self) -> Result<u64, WalError> {
        let closed = self.segment;
        if self.len == 0 && !self.damaged {
            return Ok(closed - 1); // nothing in the current segment: keep using it
        }
        self.start_next_segment()?;
        Ok(closed)
    }

    /// Removes every segment numbered up to `through` (their rows are durable in Parquet),
    /// never the one being appended to. Removing what is already gone is not an error, so
    /// this can be repeated after a failure.
    pub fn remove_through(&mut self, through: u64) -> Result<usize, WalError> {
        let mut removed = 0;
        for n in list_segments(&self.dir)?.into_iter().filter(|n| *n <= through && *n != self.segment) {
            let path = segment_path(&self.dir, n);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(WalError::Io { what: "remove log segment", path, source }),
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Keeps a replayed record that the archiver no longer admits (its rules changed between
    /// runs, for example a lower size limit): appended, fsynced, to [`REJECTED_FILE`] in the
    /// log directory, in the log's own format, before its segment may be removed.
    /// A record already kept (a crash before its segment was removed replays it again) is
    /// not kept twice; returns whether it was kept now.
    pub fn keep_rejected(&mut self, record: &WalRecord) -> Result<bool, WalError> {
        let kept = match &mut self.rejected {
            Some(kept) => kept,
            None => self.rejected.insert(WalReader::rejected(&self.dir)?),
        };
        if kept.contains(record) {
            return Ok(false);
        }
        kept.push(record.clone());
        let path = self.dir.join(REJECTED_FILE);
        let mut buf = Vec::with_capacity(HEADER + 11 + record.endpoint_host.len() + record.frame.len());
        encode_record(&mut buf, record.recv_us, &record.endpoint_host, &record.frame);
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err("open", &path))?;
        f.write_all(&buf).map_err(io_err("append to", &path))?;
        f.sync_data().map_err(io_err("fsync", &path))?;
        sync_dir(&self.dir)?;
        Ok(true)
    }
}

/// What replaying found wrong.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayDamage {
    /// Segments whose last record was cut short (dropped).
    pub torn_tails: u64,
    /// Corrupt records skipped in the middle of a segment.
    pub corrupt_records: u64,
}

/// Parses the record at `pos`: `Ok(Some((record, next_pos)))`, `Ok(None)` if the bytes
/// there are not a valid record, `Err(())` if they run past the end.
fn parse_at(data: &[u8], pos: usize) -> Result<Option<(WalRecord, usize)>, ()> {
    let Some(header) = data.get(pos..pos.checked_add(HEADER).ok_or(())?) else { return Err(()) };
    if &header[..4] != MAGIC {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if !(11..=MAX_RECORD).contains(&len) {
        return Ok(None);
    }
    let end = pos + HEADER + len;
    let Some(payload) = data.get(pos + HEADER..end) else { return Err(()) };
    if crc32fast::hash(payload) != crc || payload[0] != VERSION {
        return Ok(None);
    }
    let recv_us =
        i64::from_le_bytes([payload[1], payload[2], payload[3], payload[4], payload[5], payload[6], payload[7], payload[8]]);
    let host_len = u16::from_le_bytes([payload[9], payload[10]]) as usize;
    let Some(host) = payload.get(11..11 + host_len) else { return Ok(None) };
    let endpoint_host = String::from_utf8_lossy(host).into_owned();
    let frame = payload[11 + host_len..].to_vec();
    Ok(Some((WalRecord { recv_us, endpoint_host, frame }, end)))
}

/// Reads the next record of one segment's bytes from `*pos`, skipping a corrupt record by
/// searching for the next one that checks out and dropping a torn tail; counts both in
/// `damage`. `None` once the segment is used up. Every call advances `*pos`.
pub fn next_record(data: &[u8], pos: &mut usize, damage: &mut ReplayDamage, segment: u64) -> Option<WalRecord> {
    while *pos < data.len() {
        match parse_at(data, *pos) {
            Ok(Some((record, next))) => {
                *pos = next;
                return Some(record);
            }
            bad => {
                // A torn tail (the length runs past the end: a crash mid-append) or a corrupt
                // record. If the header is intact and a record starts where it says it ends,
                // go on there; otherwise look for the next record that checks out (None: the
                // rest is a torn tail or garbage, dropped). The search also runs past a torn
                // length so that a length corrupted in the middle of a segment does not cost
                // the records after it; its price is that bytes inside a damaged record that
                // happen to form a whole record (a sender could craft such a frame) are
                // replayed as one, and still go through the admission rules.
                let claimed_end = data
                    .get(*pos..*pos + 8)
                    .filter(|h| &h[..4] == MAGIC)
                    .map(|h| *pos + HEADER + u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize)
                    .filter(|&end| matches!(parse_at(data, end), Ok(Some(_))));
                let from = *pos + 1;
                let next_good = claimed_end.or_else(|| {
                    (from..data.len().saturating_sub(3))
                        .filter(|&p| &data[p..p + 4] == MAGIC)
                        .find(|&p| matches!(parse_at(data, p), Ok(Some(_))))
                });
                match next_good {
                    Some(p) => {
                        damage.corrupt_records += 1;
                        tracing::error!(segment, offset = *pos, skipped_bytes = p - *pos, "corrupt log record skipped");
                        *pos = p;
                    }
                    None => {
                        damage.torn_tails += 1;
                        let cut_short = matches!(bad, Err(()));
                        tracing::warn!(segment, offset = *pos, bytes = data.len() - *pos, cut_short, "torn log tail dropped");
                        *pos = data.len();
                    }
                }
            }
        }
    }
    None
}

/// Reads the records of given segments, oldest first, one segment in memory at a time.
#[derive(Debug)]
pub struct WalReader {
    dir: PathBuf,
    segments: std::vec::IntoIter<u64>,
    data: Vec<u8>,
    pos: usize,
    segment: Option<u64>,
    /// What was found wrong so far.
    pub damage: ReplayDamage,
}

impl WalReader {
    /// A reader over `segments` of `dir`.
    pub fn new(dir: &Path, segments: Vec<u64>) -> Self {
        Self {
            dir: dir.to_owned(),
            segments: segments.into_iter(),
            data: Vec::new(),
            pos: 0,
            segment: None,
            damage: ReplayDamage::default(),
        }
    }

    /// A reader over the records kept by [`Wal::keep_rejected`] in `dir`.
    pub fn rejected(dir: &Path) -> Result<Vec<WalRecord>, WalError> {
        let path = dir.join(REJECTED_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WalError::Io { what: "read", path, source }),
        };
        let (mut pos, mut damage, mut out) = (0, ReplayDamage::default(), Vec::new());
        while let Some(r) = next_record(&data, &mut pos, &mut damage, u64::MAX) {
            out.push(r);
        }
        Ok(out)
    }
}

impl Iterator for WalReader {
    type Item = Result<WalRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(segment) = self.segment {
                if let Some(record) = next_record(&self.data, &mut self.pos, &mut self.damage, segment) {
                    return Some(Ok(record));
                }
            }
            let n = self.segments.next()?;
            let path = segment_path(&self.dir, n);
            self.data.clear();
            if let Err(source) = File::open(&path).and_then(|mut f| f.read_to_end(&mut self.data)) {
                return Some(Err(WalError::Io { what: "read log segment", path, source }));
            }
            self.segment = Some(n);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn records(dir: &Path, segments: Vec<u64>) -> (Vec<WalRecord>, ReplayDamage) {
        let mut r = WalReader::new(dir, segments);
        let out = r.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
        (out, r.damage)
    }

    #[test]
    fn round_trip_rotation_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), FsyncPolicy::Always, 1 << 20).unwrap();
        assert!(wal.segments_to_replay().unwrap().is_empty());
        wal.append([(1, "h", &b"one"[..]), (2, "h2", &b"two"[..])]).unwrap();
        let r = wal.rotate().unwrap();
        wal.append([(3, "h", &b"three"[..])]).unwrap();
        drop(wal);
        let mut wal = Wal::open(dir.path(), FsyncPolicy::Never, 1 << 20).unwrap();
        let old = wal.segments_to_replay().unwrap();
        assert_eq!(old.len(), 2);
        let (got, damage) = records(dir.path(), old.clone());
        assert_eq!(
            got.iter().map(|r| (r.recv_us, r.frame.as_slice())).collect::<Vec<_>>(),
            [(1, &b"one"[..]), (2, b"two"), (3, b"three")]
        );
        assert_eq!(got[1].endpoint_host, "h2");
        assert_eq!(damage, ReplayDamage::default());
        wal.remove_through(r).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 2, "segment after r and the new one remain");
        assert_eq!(wal.remove_through(r).unwrap(), 0, "removing again is not an error");
    }

    #[test]
    fn torn_tail_and_corrupt_middle() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), FsyncPolicy::Never, 1 << 20).unwrap();
        for i in 0..5u8 {
            wal.append([(i64::from(i), "h", &[i; 20][..])]).unwrap();
        }
        let seg = wal.segment;
        drop(wal);
        let path = segment_path(dir.path(), seg);
        let mut data = fs::read(&path).unwrap();
        let rec = data.len() / 5;
        data[rec + HEADER + 12] ^= 0xff; // corrupt record 1's payload
        data.truncate(data.len() - 7); // tear record 4
        fs::write(&path, &data).unwrap();
        let (got, damage) = records(dir.path(), vec![seg]);
        assert_eq!(got.iter().map(|r| r.recv_us).collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(damage, ReplayDamage { torn_tails: 1, corrupt_records: 1 });
    }

    #[test]
    fn size_rotation_and_policy_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), FsyncPolicy::Every(Duration::from_millis(5)), 1024).unwrap();
        for _ in 0..10 {
            wal.append([(0, "h", &[7u8; 300][..])]).unwrap();
        }
        assert!(list_segments(dir.path()).unwrap().len() >= 3);
        assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
        assert_eq!("250".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Every(Duration::from_millis(250))));
        assert_eq!("250ms".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Every(Duration::from_millis(250))));
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }

    #[test]
    fn rejected_records_are_kept_apart_from_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), FsyncPolicy::Never, 1 << 20).unwrap();
        let rec = WalRecord { recv_us: 9, endpoint_host: "e".into(), frame: b"bad".to_vec() };
        let other = WalRecord { recv_us: 10, ..rec.clone() };
        assert!(wal.keep_rejected(&rec).unwrap());
        assert!(!wal.keep_rejected(&rec).unwrap(), "kept once");
        assert!(wal.keep_rejected(&other).unwrap());
        assert_eq!(WalReader::rejected(dir.path()).unwrap(), vec![rec.clone(), other.clone()]);
        drop(wal);
        let mut wal = Wal::open(dir.path(), FsyncPolicy::Never, 1 << 20).unwrap();
        assert_eq!(wal.segments_to_replay().unwrap(), vec![1], "rejected.wal is not a segment (1 is the first run's, empty)");
        assert!(!wal.keep_rejected(&rec).unwrap(), "a later run does not keep it again");
    }

    proptest! {
        #[test]
        fn any_records_round_trip(recs in proptest::collection::vec((any::<i64>(), "\\PC{0,10}", proptest::collection::vec(any::<u8>(), 0..64)), 0..20)) {
            let mut buf = Vec::new();
            for (t, h, f) in &recs {
                encode_record(&mut buf, *t, h, f);
            }
            let (mut pos, mut damage, mut got) = (0, ReplayDamage::default(), Vec::new());
            while let Some(r) = next_record(&buf, &mut pos, &mut damage, 0) {
                got.push((r.recv_us, r.endpoint_host, r.frame));
            }
            prop_assert_eq!(got, recs);
            prop_assert_eq!(damage, ReplayDamage::default());
        }

        #[test]
        fn any_bytes_end_in_records_or_damage(data in proptest::collection::vec(any::<u8>(), 0..512), splice in any::<bool>()) {
            let mut data = data;
            if splice {
                // Valid records around garbage, so resynchronisation is exercised.
                let mut good = Vec::new();
                encode_record(&mut good, 1, "h", b"frame");
                data.splice(0..0, good.iter().copied());
                data.extend_from_slice(&good);
            }
            let (mut pos, mut damage, mut n) = (0, ReplayDamage::default(), 0);
            let mut last = 0;
            while let Some(_r) = next_record(&data, &mut pos, &mut damage, 0) {
                prop_assert!(pos > last || n == 0);
                last = pos;
                n += 1;
                prop_assert!(n <= data.len());
            }
            prop_assert_eq!(pos, data.len());
            if splice {
                prop_assert!(n >= 2);
            }
        }
    }
}

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
//! reported and skipped by searching for the next magic whose checksum holds.
//!
//! fsync policy ([`FsyncPolicy`]): a process crash never loses an appended record (it is in
//! the kernel's page cache once `write` returns); the policy decides what a power loss or
//! kernel crash may take.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ArchiverError;

const MAGIC: &[u8; 4] = b"ZWAL";
const HEADER: usize = 12;
const VERSION: u8 = 1;
/// Largest payload a record may have (a frame is at most the admission limit).
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
    buf: Vec<u8>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.wal"))
}

/// The segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, ArchiverError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(ArchiverError::Io { what: "list log", path: dir.to_owned(), source }),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else { continue };
        if let Ok(n) = u64::from_str_radix(stem, 16) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Wal {
    /// Opens the log in `dir`, starting a new segment after the existing ones (which are
    /// left for [`WalReader`] to replay). Returns the log and the segments to replay.
    pub fn open(dir: &Path, policy: FsyncPolicy, max_segment_bytes: u64) -> Result<(Self, Vec<u64>), ArchiverError> {
        fs::create_dir_all(dir).map_err(|source| ArchiverError::Io { what: "create log directory", path: dir.to_owned(), source })?;
        let existing = list_segments(dir)?;
        let next = existing.last().map_or(1, |n| n + 1);
        let file = Self::create_segment(dir, next)?;
        let wal = Self {
            dir: dir.to_owned(),
            segment: next,
            file,
            len: 0,
            max_segment_bytes: max_segment_bytes.max(1024),
            policy,
            last_sync: Instant::now(),
            unsynced: false,
            buf: Vec::with_capacity(1 << 16),
        };
        Ok((wal, existing))
    }

    fn create_segment(dir: &Path, n: u64) -> Result<File, ArchiverError> {
        let path = segment_path(dir, n);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ArchiverError::Io { what: "create log segment", path: path.clone(), source })?;
        crate::parquet_file::sync_dir(dir)?;
        Ok(file)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends records (group commit: one `write` per segment they land in); they are
    /// accepted once this returns. A batch larger than what is left of the segment is split
    /// across segments, so no segment grows past its size by more than one record. On
    /// error the batch is not accepted (what was written of it is replayed at the next
    /// start, or is a torn tail that replay drops: the segment is rotated so that nothing
    /// follows it).
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = (i64, &'a str, &'a [u8])>) -> Result<usize, ArchiverError> {
        self.buf.clear();
        let mut n = 0;
        for (recv_us, host, frame) in records {
            let host = &host.as_bytes()[..host.len().min(u16::MAX as usize)];
            let payload_len = 1 + 8 + 2 + host.len() + frame.len();
            if !self.buf.is_empty() && self.len + (self.buf.len() + HEADER + payload_len) as u64 > self.max_segment_bytes {
                self.write_buf()?;
                self.rotate()?;
            }
            let start = self.buf.len();
            self.buf.extend_from_slice(MAGIC);
            self.buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
            self.buf.extend_from_slice(&[0; 4]);
            self.buf.push(VERSION);
            self.buf.extend_from_slice(&recv_us.to_le_bytes());
            self.buf.extend_from_slice(&(host.len() as u16).to_le_bytes());
            self.buf.extend_from_slice(host);
            self.buf.extend_from_slice(frame);
            let crc = crc32fast::hash(&self.buf[start + HEADER..]);
            self.buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        self.write_buf()?;
        match self.policy {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Every(d) if self.last_sync.elapsed() >= d => self.sync()?,
            _ => {}
        }
        if self.len >= self.max_segment_bytes {
            self.rotate()?;
        }
        Ok(n)
    }

    fn write_buf(&mut self) -> Result<(), ArchiverError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.file.write_all(&self.buf) {
            let path = segment_path(&self.dir, self.segment);
            self.buf.clear();
            // Whatever part was written is a torn tail; start a fresh segment after it.
            self.len += 1;
            let _ = self.rotate();
            return Err(ArchiverError::Io { what: "append to log", path, source });
        }
        self.len += self.buf.len() as u64;
        self.unsynced = true;
        self.buf.clear();
        Ok(())
    }

    /// Forces appended records to disk.
    pub fn sync(&mut self) -> Result<(), ArchiverError> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|source| ArchiverError::Io { what: "fsync log", path: segment_path(&self.dir, self.segment), source })?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Closes the current segment and starts the next; returns the closed segment's number:
    /// every record appended so far is in a segment up to it.
    pub fn rotate(&mut self) -> Result<u64, ArchiverError> {
        let closed = self.segment;
        if self.len == 0 {
            return Ok(closed - 1); // nothing in the current segment: keep using it
        }
        self.sync()?;
        self.file = Self::create_segment(&self.dir, closed + 1)?;
        self.segment = closed + 1;
        self.len = 0;
        Ok(closed)
    }

    /// Removes every segment numbered up to `through` (their rows are durable in Parquet).
    pub fn remove_through(&mut self, through: u64) -> Result<usize, ArchiverError> {
        let mut removed = 0;
        for n in list_segments(&self.dir)?.into_iter().filter(|n| *n <= through && *n != self.segment) {
            let path = segment_path(&self.dir, n);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ArchiverError::Io { what: "remove log segment", path, source }),
            }
        }
        if removed > 0 {
            crate::parquet_file::sync_dir(&self.dir)?;
        }
        Ok(removed)
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
        Self { dir: dir.to_owned(), segments: segments.into_iter(), data: Vec::new(), pos: 0, segment: None, damage: ReplayDamage::default() }
    }

    /// Parses the record at `pos`: `Ok(Some((record, next_pos)))`, `Ok(None)` if the bytes
    /// there are not a valid record, `Err(())` if they run past the end.
    fn parse_at(data: &[u8], pos: usize) -> Result<Option<(WalRecord, usize)>, ()> {
        if data.len() < pos + HEADER {
            return Err(());
        }
        if &data[pos..pos + 4] != MAGIC {
            return Ok(None);
        }
        let len = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 8], data[pos + 9], data[pos + 10], data[pos + 11]]);
        if len > MAX_RECORD || len < 11 {
            return Ok(None);
        }
        let end = pos + HEADER + len;
        if end > data.len() {
            return Err(());
        }
        let payload = &data[pos + HEADER..end];
        if crc32fast::hash(payload) != crc || payload[0] != VERSION {
            return Ok(None);
        }
        let recv_us = i64::from_le_bytes(payload[1..9].try_into().map_err(|_| ())?);
        let host_len = u16::from_le_bytes([payload[9], payload[10]]) as usize;
        if 11 + host_len > payload.len() {
            return Ok(None);
        }
        let endpoint_host = String::from_utf8_lossy(&payload[11..11 + host_len]).into_owned();
        let frame = payload[11 + host_len..].to_vec();
        Ok(Some((WalRecord { recv_us, endpoint_host, frame }, end)))
    }
}

impl Iterator for WalReader {
    type Item = Result<WalRecord, ArchiverError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.segment.is_none() || self.pos >= self.data.len() {
                let n = self.segments.next()?;
                let path = segment_path(&self.dir, n);
                self.data.clear();
                if let Err(source) = File::open(&path).and_then(|mut f| f.read_to_end(&mut self.data)) {
                    return Some(Err(ArchiverError::Io { what: "read log segment", path, source }));
                }
                self.segment = Some(n);
                self.pos = 0;
                continue;
            }
            match Self::parse_at(&self.data, self.pos) {
                Ok(Some((record, next))) => {
                    self.pos = next;
                    return Some(Ok(record));
                }
                bad => {
                    // Look for the next record that checks out. None: the rest is a torn
                    // tail (or garbage at the end); some: skip a corrupt record.
                    let from = self.pos + 1;
                    let next_good = (from..self.data.len().saturating_sub(3))
                        .filter(|&p| &self.data[p..p + 4] == MAGIC)
                        .find(|&p| matches!(Self::parse_at(&self.data, p), Ok(Some(_))));
                    let segment = self.segment.unwrap_or(0);
                    match next_good {
                        Some(p) => {
                            self.damage.corrupt_records += 1;
                            tracing::error!(segment, offset = self.pos, skipped_bytes = p - self.pos, "corrupt log record skipped");
                            self.pos = p;
                        }
                        None => {
                            self.damage.torn_tails += 1;
                            let cut_short = matches!(bad, Err(()));
                            tracing::warn!(segment, offset = self.pos, bytes = self.data.len() - self.pos, cut_short, "torn log tail dropped");
                            self.pos = self.data.len();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(dir: &Path, segments: Vec<u64>) -> (Vec<WalRecord>, ReplayDamage) {
        let mut r = WalReader::new(dir, segments);
        let out = r.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
        (out, r.damage)
    }

    #[test]
    fn round_trip_rotation_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, old) = Wal::open(dir.path(), FsyncPolicy::Always, 1 << 20).unwrap();
        assert!(old.is_empty());
        wal.append([(1, "h", &b"one"[..]), (2, "h2", &b"two"[..])]).unwrap();
        let r = wal.rotate().unwrap();
        wal.append([(3, "h", &b"three"[..])]).unwrap();
        drop(wal);
        let (mut wal, old) = Wal::open(dir.path(), FsyncPolicy::Never, 1 << 20).unwrap();
        assert_eq!(old.len(), 2);
        let (got, damage) = records(dir.path(), old.clone());
        assert_eq!(got.iter().map(|r| (r.recv_us, r.frame.as_slice())).collect::<Vec<_>>(), [(1, &b"one"[..]), (2, b"two"), (3, b"three")]);
        assert_eq!(got[1].endpoint_host, "h2");
        assert_eq!(damage, ReplayDamage::default());
        wal.remove_through(r).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 2, "segment after r and the new one remain");
    }

    #[test]
    fn torn_tail_and_corrupt_middle() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), FsyncPolicy::Never, 1 << 20).unwrap();
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
        let (mut wal, _) = Wal::open(dir.path(), FsyncPolicy::Every(Duration::from_millis(5)), 1024).unwrap();
        for _ in 0..10 {
            wal.append([(0, "h", &[7u8; 300][..])]).unwrap();
        }
        assert!(list_segments(dir.path()).unwrap().len() >= 3);
        assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
        assert_eq!("250".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Every(Duration::from_millis(250))));
        assert_eq!("250ms".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Every(Duration::from_millis(250))));
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}

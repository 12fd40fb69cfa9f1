//! The catalog on disk: `_archiver/catalog/checkpoint-N.jsonl` holds every entry as of
//! checkpoint `N` (written whole under a temporary name, fsynced, renamed: never torn), and
//! `log-N.jsonl` every edit since, one line each (`CRC32 JSON`, appended and fsynced: the
//! edit's commit point). A reader takes the newest checkpoint and replays its log up to the
//! last whole line; a torn last line (a crash while appending) is no edit, and the writer
//! cuts it before appending again. When the log grows past [`CHECKPOINT_LOG_BYTES`] the
//! writer folds it into checkpoint `N+1` and starts `log-N+1`, then removes the older pair.
//!
//! Beside each checkpoint, `checkpoint-N.index` says where each table's entries are in it
//! (byte ranges), so a reader of a few tables ([`Snapshot::read_tables`]) reads only those
//! ranges and the log; an index whose length does not match its checkpoint is ignored.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use archive_layout::{STATE_DIR, Table};

use crate::{CatalogError, Edit, Entry, Retired};

/// The catalog's directory under the archiver's state directory.
pub const CATALOG_DIR: &str = "catalog";

/// The log is folded into a new checkpoint past this size.
pub const CHECKPOINT_LOG_BYTES: u64 = 1 << 20;

const VERSION: u64 = 1;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CatalogError + 'a {
    move |source| CatalogError::Io { what, path: path.to_owned(), source }
}

fn catalog_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join(CATALOG_DIR)
}

fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("checkpoint-{seq:016x}.jsonl"))
}

/// Where each table's entries are in checkpoint `seq` (written before the checkpoint is
/// renamed into place, so a checkpoint's index is there or was never written).
fn index_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("checkpoint-{seq:016x}.index"))
}

/// A checkpoint's index: its length, and per table the byte ranges of its entries' lines
/// (entries are written in path order, so a table's are one range, its runs' another).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CheckpointIndex {
    bytes: u64,
    tables: BTreeMap<String, Vec<(u64, u64)>>,
}

impl CheckpointIndex {
    fn add(&mut self, table: &str, start: u64, end: u64) {
        let ranges = self.tables.entry(table.to_owned()).or_default();
        match ranges.last_mut() {
            Some((_, e)) if *e == start => *e = end,
            _ => ranges.push((start, end)),
        }
    }
}

fn log_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("log-{seq:016x}.jsonl"))
}

/// The checkpoint numbers in `dir`, ascending (none if it does not exist).
fn checkpoints(dir: &Path) -> Result<Vec<u64>, CatalogError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut seqs = Vec::new();
    for e in rd {
        let e = e.map_err(io("list", dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_prefix("checkpoint-").and_then(|n| n.strip_suffix(".jsonl")) {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn sync_dir(dir: &Path) -> Result<(), CatalogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync directory", dir))
}

fn corrupt(path: &Path, reason: impl Into<String>) -> CatalogError {
    CatalogError::Corrupt { path: path.to_owned(), reason: reason.into() }
}

/// The catalog as of one commit: every entry, by path.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    entries: BTreeMap<String, Entry>,
    /// Files out of the catalog, to delete after a time (see [`Retired`]).
    retired: BTreeMap<String, i64>,
}

impl Snapshot {
    /// Reads the catalog of the archive at `root`; `None` if it has none. A checkpoint
    /// replaced while being read (the writer folded its log) is read again, a few times.
    pub fn read(root: &Path) -> Result<Option<Snapshot>, CatalogError> {
        Self::read_filtered(root, None)
    }

    /// [`Snapshot::read`] keeping only the entries of the tables `tables` names (raw or
    /// rollup): a reader of one table skips parsing the others' (a year of 5 zones holds
    /// some 40,000 entries). Lines of other tables are counted, and the log's checksums
    /// checked, but not parsed, so a damaged entry of another table goes unnoticed here
    /// (the archiver reads everything at start and rebuilds).
    pub fn read_tables(root: &Path, tables: &TableFilter) -> Result<Option<Snapshot>, CatalogError> {
        Self::read_filtered(root, Some(tables))
    }

    fn read_filtered(root: &Path, filter: Option<&TableFilter>) -> Result<Option<Snapshot>, CatalogError> {
        let dir = catalog_dir(root);
        let mut last_error = None;
        for _ in 0..5 {
            let Some(&seq) = checkpoints(&dir)?.last() else { return Ok(None) };
            match Self::read_at(&dir, seq, filter) {
                Ok((snapshot, _)) => return Ok(Some(snapshot)),
                Err(CatalogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    last_error = Some(source);
                }
                Err(e) => return Err(e),
            }
        }
        Err(CatalogError::Io {
            what: "read (replaced five times while reading)",
            path: dir,
            source: last_error.unwrap_or_else(|| std::io::Error::other("")),
        })
    }

    /// Checkpoint `seq` and its log; also returns the bytes of the log's whole lines.
    fn read_at(dir: &Path, seq: u64, filter: Option<&TableFilter>) -> Result<(Snapshot, u64), CatalogError> {
        let path = checkpoint_path(dir, seq);
        let file = File::open(&path).map_err(io("open", &path))?;
        let indexed = match filter {
            Some(f) => Self::read_indexed(dir, seq, &file, f)?,
            None => None,
        };
        let mut snapshot = match indexed {
            Some(entries) => Snapshot { entries, retired: BTreeMap::new() },
            None => Self::read_checkpoint(&path, file, filter)?,
        };
        let (edits, whole) = read_log(&log_path(dir, seq), filter)?;
        for edit in edits {
            snapshot.apply(edit, filter);
        }
        Ok((snapshot, whole))
    }

    /// The whole checkpoint at `path` (checked line by line and against its end line); with
    /// a filter, only its tables' entries are parsed and kept, and no retired file.
    fn read_checkpoint(path: &Path, file: File, filter: Option<&TableFilter>) -> Result<Snapshot, CatalogError> {
        let mut entries = BTreeMap::new();
        let mut retired = BTreeMap::new();
        let mut lines = BufReader::with_capacity(1 << 16, file).lines();
        let header = lines.next().transpose().map_err(io("read", path))?.unwrap_or_default();
        if header != format!("{{\"catalog\":{VERSION}}}") {
            return Err(corrupt(path, format!("header {header:?} is not catalog version {VERSION}")));
        }
        let mut ended = None;
        let (mut entry_lines, mut retired_lines) = (0usize, 0usize);
        for line in lines {
            let line = line.map_err(io("read", path))?;
            if ended.is_some() {
                return Err(corrupt(path, "lines after the end line"));
            }
            if let Some(count) = line.strip_prefix("{\"end\":").and_then(|n| n.strip_suffix('}')) {
                ended = Some(count.parse::<usize>().map_err(|_| corrupt(path, "bad end line"))?);
                continue;
            }
            if line.starts_with("{\"retired\":") {
                retired_lines += 1;
                if filter.is_none() {
                    let r: Retired = serde_json::from_str(&line).map_err(|e| corrupt(path, format!("retired file: {e}")))?;
                    retired.insert(r.retired, r.after_us);
                }
                continue;
            }
            entry_lines += 1;
            if filter.is_some_and(|f| !f.may_concern(line.as_bytes())) {
                continue;
            }
            let entry: Entry = serde_json::from_str(&line).map_err(|e| corrupt(path, format!("entry {entry_lines}: {e}")))?;
            if filter.is_none_or(|f| f.keeps(&entry.table)) {
                entries.insert(entry.path.clone(), entry);
            }
        }
        if ended != Some(entry_lines + retired_lines) {
            return Err(corrupt(
                path,
                format!("truncated: {entry_lines} entries and {retired_lines} retired files, end line {ended:?}"),
            ));
        }
        Ok(Snapshot { entries, retired })
    }

    /// The entries of the tables `filter` names, read from their byte ranges only, if the
    /// checkpoint has an index that matches its length (`None`: read it whole).
    fn read_indexed(
        dir: &Path,
        seq: u64,
        file: &File,
        filter: &TableFilter,
    ) -> Result<Option<BTreeMap<String, Entry>>, CatalogError> {
        use std::os::unix::fs::FileExt;
        let index_path = index_path(dir, seq);
        let index: CheckpointIndex = match fs::read(&index_path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(i) => i,
                Err(_) => return Ok(None),
            },
            Err(_) => return Ok(None),
        };
        let path = checkpoint_path(dir, seq);
        let len = file.metadata().map_err(io("stat", &path))?.len();
        if len != index.bytes {
            return Ok(None);
        }
        let mut entries = BTreeMap::new();
        let mut buf = Vec::new();
        for name in &filter.names {
            for (start, end) in index.tables.get(name).map_or(&[][..], Vec::as_slice) {
                let n = usize::try_from(end.saturating_sub(*start)).map_err(|_| corrupt(&index_path, "bad range"))?;
                buf.resize(n, 0);
                file.read_exact_at(&mut buf, *start).map_err(io("read", &path))?;
                for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let entry: Entry =
                        serde_json::from_slice(line).map_err(|e| corrupt(&path, format!("entry at byte {start}: {e}")))?;
                    if &entry.table != name {
                        return Err(corrupt(&index_path, format!("{} is not an entry of {name}", entry.path)));
                    }
                    entries.insert(entry.path.clone(), entry);
                }
            }
        }
        Ok(Some(entries))
    }

    fn apply(&mut self, edit: Edit, filter: Option<&TableFilter>) {
        for path in edit.remove {
            self.entries.remove(&path);
        }
        for entry in edit.add {
            if filter.is_none_or(|f| f.keeps(&entry.table)) {
                self.entries.insert(entry.path.clone(), entry);
            }
        }
        for r in edit.retire {
            self.retired.insert(r.retired, r.after_us);
        }
        for path in edit.deleted {
            self.retired.remove(&path);
        }
    }

    /// Files out of the catalog still to delete, with when they may be.
    pub fn retired(&self) -> impl Iterator<Item = (&str, i64)> {
        self.retired.iter().map(|(p, t)| (p.as_str(), *t))
    }

    /// Every entry, by path.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entries of `table`.
    pub fn of_table(&self, table: Table) -> impl Iterator<Item = &Entry> {
        self.of_table_named(table.name())
    }

    /// The entries of the table (raw or rollup) named `name`.
    pub fn of_table_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.values().filter(move |e| e.table == name)
    }

    /// The entry of `path` (relative, `/`-separated), if any.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The edits of a log, up to its last whole line, and the bytes those lines take. A missing
/// log has none. A torn last line is left out; a bad line followed by more is corruption.
fn read_log(path: &Path, filter: Option<&TableFilter>) -> Result<(Vec<Edit>, u64), CatalogError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(io("read", path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io("open", path)(e)),
    }
    let mut edits = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(end) = bytes[at..].iter().position(|&b| b == b'\n').map(|n| at + n) else { break };
        let json = checked_json(&bytes[at..end]);
        let parsed = match json {
            Some(json) if filter.is_some_and(|f| !f.may_concern(json)) => Some(None),
            Some(json) => serde_json::from_slice::<Edit>(json).ok().map(Some),
            None => None,
        };
        match parsed {
            Some(Some(edit)) => edits.push(edit),
            Some(None) => {}
            None if end + 1 == bytes.len() => break,
            None => return Err(corrupt(path, format!("bad edit at byte {at}, followed by more"))),
        }
        at = end + 1;
    }
    Ok((edits, at as u64))
}

/// A log line's JSON, if its checksum is right.
fn checked_json(line: &[u8]) -> Option<&[u8]> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    (crc32fast::hash(json) == crc && line[8] == b' ').then_some(json)
}

/// The tables a reader wants from the catalog ([`Snapshot::read_tables`]).
#[derive(Debug, Clone)]
pub struct TableFilter {
    names: Vec<String>,
    /// Per table, what a line that adds or removes one of its files contains: its
    /// `"table":"NAME"` field, or a path starting with `NAME/` or holding `/runs/NAME/`.
    markers: Vec<memchr::memmem::Finder<'static>>,
}

impl TableFilter {
    /// The tables (raw or rollup) named `names`.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let markers = names
            .iter()
            .flat_map(|n| [format!("\"table\":\"{n}\""), format!("\"{n}/"), format!("/runs/{n}/")])
            .map(|m| memchr::memmem::Finder::new(m.as_bytes()).into_owned())
            .collect();
        Self { names, markers }
    }

    /// Whether a line may add or remove an entry of a wanted table (false positives only
    /// cost a parse).
    fn may_concern(&self, line: &[u8]) -> bool {
        self.markers.iter().any(|m| m.find(line).is_some())
    }

    fn keeps(&self, table: &str) -> bool {
        self.names.iter().any(|n| n == table)
    }
}

fn log_line(edit: &Edit) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(edit)?;
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// Appends edits to the catalog of one archive; the archiver holds the only one.
#[derive(Debug)]
pub struct CatalogWriter {
    dir: PathBuf,
    seq: u64,
    log: File,
    log_path: PathBuf,
    /// Bytes of whole lines in the log: where the next edit goes.
    log_len: u64,
    /// Files out of the catalog still to delete (path -> when).
    retired: BTreeMap<String, i64>,
}

impl CatalogWriter {
    /// Opens the catalog of the archive at `root` for appending; `None` if it has none
    /// (build one with [`CatalogWriter::create`]). A torn last edit is cut off.
    pub fn open(root: &Path) -> Result<Option<Self>, CatalogError> {
        let dir = catalog_dir(root);
        let Some(&seq) = checkpoints(&dir)?.last() else { return Ok(None) };
        // Read whole: proves the checkpoint and the log are readable before appending.
        let (snapshot, whole) = Snapshot::read_at(&dir, seq, None)?;
        let log_path = log_path(&dir, seq);
        let log = OpenOptions::new().create(true).write(true).truncate(false).open(&log_path).map_err(io("open", &log_path))?;
        let len = log.metadata().map_err(io("stat", &log_path))?.len();
        if len > whole {
            tracing::warn!(path = %log_path.display(), bytes = len - whole, "cutting a torn catalog edit (a crash while appending)");
            log.set_len(whole).map_err(io("truncate", &log_path))?;
            log.sync_all().map_err(io("fsync", &log_path))?;
        }
        Ok(Some(Self { dir, seq, log, log_path, log_len: whole, retired: snapshot.retired }))
    }

    /// Writes a new catalog for the archive at `root` holding exactly `entries` (a rebuild,
    /// or a checkpoint), replacing any older one.
    pub fn create(root: &Path, entries: impl IntoIterator<Item = Entry>) -> Result<Self, CatalogError> {
        Self::create_with_retired(root, entries, BTreeMap::new())
    }

    fn create_with_retired(
        root: &Path,
        entries: impl IntoIterator<Item = Entry>,
        retired: BTreeMap<String, i64>,
    ) -> Result<Self, CatalogError> {
        let dir = catalog_dir(root);
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        sync_dir(dir.parent().unwrap_or(root))?;
        let older = checkpoints(&dir)?;
        let seq = older.last().map_or(1, |s| s + 1);
        let path = checkpoint_path(&dir, seq);
        let temp = dir.join(format!(".checkpoint-{seq:016x}.tmp"));
        let file = File::create(&temp).map_err(io("create", &temp))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut count = 0usize;
        let mut index = CheckpointIndex::default();
        let write = |out: &mut BufWriter<File>, at: &mut u64, line: &[u8]| {
            *at += line.len() as u64 + 1;
            out.write_all(line).and_then(|()| out.write_all(b"\n"))
        };
        let mut at = 0u64;
        write(&mut out, &mut at, format!("{{\"catalog\":{VERSION}}}").as_bytes()).map_err(io("write", &temp))?;
        let mut seen = std::collections::HashSet::new();
        for entry in entries {
            if !seen.insert(entry.path.clone()) {
                continue;
            }
            let line = serde_json::to_vec(&entry).map_err(|e| corrupt(&temp, e.to_string()))?;
            let start = at;
            write(&mut out, &mut at, &line).map_err(io("write", &temp))?;
            index.add(&entry.table, start, at);
            count += 1;
        }
        for (path, after_us) in &retired {
            let line = serde_json::to_vec(&Retired { retired: path.clone(), after_us: *after_us })
                .map_err(|e| corrupt(&temp, e.to_string()))?;
            write(&mut out, &mut at, &line).map_err(io("write", &temp))?;
            count += 1;
        }
        write(&mut out, &mut at, format!("{{\"end\":{count}}}").as_bytes()).map_err(io("write", &temp))?;
        let file = out.into_inner().map_err(|e| io("write", &temp)(e.into_error()))?;
        file.sync_all().map_err(io("fsync", &temp))?;
        // The index, in place before its checkpoint (a reader trusts it only if the lengths
        // agree; a stale index of an earlier attempt at this number is replaced).
        index.bytes = at;
        let index_file = index_path(&dir, seq);
        let index_temp = dir.join(format!(".checkpoint-{seq:016x}.index.tmp"));
        let index_bytes = serde_json::to_vec(&index).map_err(|e| corrupt(&index_temp, e.to_string()))?;
        let mut f = File::create(&index_temp).map_err(io("create", &index_temp))?;
        f.write_all(&index_bytes).and_then(|()| f.sync_all()).map_err(io("write", &index_temp))?;
        fs::rename(&index_temp, &index_file).map_err(io("rename into place", &index_file))?;
        // The empty log first, so the checkpoint never appears without it.
        let log_path = log_path(&dir, seq);
        let log = OpenOptions::new().create(true).write(true).truncate(true).open(&log_path).map_err(io("create", &log_path))?;
        log.sync_all().map_err(io("fsync", &log_path))?;
        fs::rename(&temp, &path).map_err(io("rename into place", &path))?;
        sync_dir(&dir)?;
        // The new pair is the catalog now; the older pairs go (a reader in the middle of one
        // reads again).
        for old in older {
            for p in [checkpoint_path(&dir, old), self::log_path(&dir, old), index_path(&dir, old)] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("remove", &p)(e)),
                }
            }
        }
        sync_dir(&dir)?;
        Ok(Self { dir, seq, log, log_path, log_len: 0, retired })
    }

    /// Records `edit` (durably: its commit point); folds the log into a new checkpoint when
    /// it has grown past [`CHECKPOINT_LOG_BYTES`]. On error the edit is not recorded (a
    /// partly written line is cut before the next edit).
    pub fn commit(&mut self, edit: &Edit) -> Result<(), CatalogError> {
        if edit.is_empty() {
            return Ok(());
        }
        let line = log_line(edit).map_err(|e| corrupt(&self.log_path, e.to_string()))?;
        let written = (|| {
            use std::io::{Seek, SeekFrom};
            self.log.seek(SeekFrom::Start(self.log_len))?;
            self.log.write_all(&line)?;
            self.log.sync_data()
        })();
        if let Err(e) = written {
            // Whatever reached the file past `log_len` is no edit; cut it now if possible
            // (else at the next open).
            if let Err(cut) = self.log.set_len(self.log_len) {
                tracing::warn!(path = %self.log_path.display(), error = %cut, "cannot cut a failed catalog edit");
            }
            return Err(io("append", &self.log_path)(e));
        }
        self.log_len += line.len() as u64;
        for r in &edit.retire {
            self.retired.insert(r.retired.clone(), r.after_us);
        }
        for path in &edit.deleted {
            self.retired.remove(path);
        }
        if self.log_len > CHECKPOINT_LOG_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Folds the log into a new checkpoint (holds the whole catalog in memory meanwhile).
    pub fn checkpoint(&mut self) -> Result<(), CatalogError> {
        let (snapshot, _) = Snapshot::read_at(&self.dir, self.seq, None)?;
        let root = self.dir.parent().and_then(Path::parent).unwrap_or(&self.dir).to_owned();
        *self = Self::create_with_retired(&root, snapshot.entries.into_values(), snapshot.retired)?;
        Ok(())
    }

    /// Retired files whose time has come at `now_us` (wall clock, µs).
    pub fn retired_due(&self, now_us: i64) -> Vec<String> {
        self.retired.iter().filter(|(_, t)| **t <= now_us).map(|(p, _)| p.clone()).collect()
    }

    /// Whether `path` is retired (out of the catalog, not yet deleted).
    pub fn is_retired(&self, path: &str) -> bool {
        self.retired.contains_key(path)
    }

    /// The current checkpoint's number.
    pub fn checkpoint_seq(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, rows: u64) -> Entry {
        Entry {
            path: path.into(),
            table: "cpu".into(),
            zone: Some("z".into()),
            period: "hour".into(),
            period_start_us: 0,
            min_time_us: Some(1),
            max_time_us: Some(2),
            rows,
            bytes: 10,
            columns: Default::default(),
            index: None,
        }
    }

    fn paths(root: &Path) -> Vec<(String, u64)> {
        Snapshot::read(root).unwrap().unwrap().entries().map(|e| (e.path.clone(), e.rows)).collect()
    }

    #[test]
    fn edits_replay_over_the_checkpoint_and_a_torn_last_edit_is_no_edit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(Snapshot::read(root).unwrap().is_none());
        assert!(CatalogWriter::open(root).unwrap().is_none());
        let mut w = CatalogWriter::create(root, [entry("a", 1), entry("b", 2)]).unwrap();
        w.commit(&Edit { add: vec![entry("c", 3), entry("a", 4)], remove: vec!["b".into()], ..Edit::default() }).unwrap();
        assert_eq!(paths(root), vec![("a".into(), 4), ("c".into(), 3)]);
        // A crash in the middle of the next edit.
        let log = log_path(&catalog_dir(root), w.checkpoint_seq());
        let whole = fs::read(&log).unwrap();
        let next = log_line(&Edit { add: vec![entry("d", 5)], remove: vec![], ..Edit::default() }).unwrap();
        fs::write(&log, [&whole[..], &next[..next.len() - 3]].concat()).unwrap();
        drop(w);
        assert_eq!(paths(root), vec![("a".into(), 4), ("c".into(), 3)], "the torn edit is not read");
        let mut w = CatalogWriter::open(root).unwrap().unwrap();
        assert_eq!(fs::read(&log).unwrap(), whole, "and cut when the writer opens");
        w.commit(&Edit { add: vec![entry("e", 6)], remove: vec![], ..Edit::default() }).unwrap();
        assert_eq!(paths(root), vec![("a".into(), 4), ("c".into(), 3), ("e".into(), 6)]);
    }

    #[test]
    fn a_read_of_some_tables_holds_exactly_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let of = |table: &str, path: &str| Entry { table: table.into(), ..entry(path, 1) };
        let mut w = CatalogWriter::create(
            root,
            [of("cpu", "cpu/zone=a/1"), of("cpu_1m", "cpu_1m/zone=a/1"), of("cpuqueue", "cpuqueue/zone=a/1")],
        )
        .unwrap();
        w.commit(&Edit {
            add: vec![of("cpu", "_archiver/runs/cpu/hour-0/2"), of("mem", "mem/zone=a/2")],
            remove: vec!["cpuqueue/zone=a/1".into()],
            ..Edit::default()
        })
        .unwrap();
        w.commit(&Edit { remove: vec!["cpu/zone=a/1".into()], ..Edit::default() }).unwrap();
        let same_as_full = |when: &str| {
            let full = Snapshot::read(root).unwrap().unwrap();
            for tables in [vec!["cpu"], vec!["cpu_1m", "mem"], vec!["cpuqueue"], vec![]] {
                let some = Snapshot::read_tables(root, &TableFilter::new(tables.clone())).unwrap().unwrap();
                let want: Vec<&Entry> = full.entries().filter(|e| tables.contains(&e.table.as_str())).collect();
                assert_eq!(some.entries().collect::<Vec<_>>(), want, "{when}: {tables:?}");
            }
        };
        same_as_full("log over the first checkpoint");
        let cpu = Snapshot::read_tables(root, &TableFilter::new(["cpu"])).unwrap().unwrap();
        assert_eq!(cpu.entries().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["_archiver/runs/cpu/hour-0/2"]);
        // Folded into a checkpoint with an index (read by byte ranges), then more edits.
        w.checkpoint().unwrap();
        let dir = catalog_dir(root);
        let seq = w.checkpoint_seq();
        assert!(index_path(&dir, seq).exists() && !index_path(&dir, seq - 1).exists());
        same_as_full("indexed checkpoint");
        w.commit(&Edit { add: vec![of("cpu", "cpu/zone=b/3")], remove: vec!["mem/zone=a/2".into()], ..Edit::default() }).unwrap();
        same_as_full("log over the indexed checkpoint");
        // An index that does not match its checkpoint is not trusted.
        fs::write(index_path(&dir, seq), br#"{"bytes":1,"tables":{"cpu":[[0,1]]}}"#).unwrap();
        same_as_full("mismatched index");
        fs::write(index_path(&dir, seq), b"not json").unwrap();
        same_as_full("unreadable index");
    }

    #[test]
    fn a_bad_edit_in_the_middle_is_corruption_not_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut w = CatalogWriter::create(root, [entry("a", 1)]).unwrap();
        w.commit(&Edit { add: vec![entry("b", 1)], remove: vec![], ..Edit::default() }).unwrap();
        w.commit(&Edit { add: vec![entry("c", 1)], remove: vec![], ..Edit::default() }).unwrap();
        let log = log_path(&catalog_dir(root), w.checkpoint_seq());
        let mut bytes = fs::read(&log).unwrap();
        bytes[12] ^= 1;
        fs::write(&log, bytes).unwrap();
        let err = Snapshot::read(root).unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains("log-"), "{err}");
        assert!(CatalogWriter::open(root).is_err(), "the writer refuses to append after it");
    }

    #[test]
    fn a_checkpoint_folds_the_log_and_removes_the_older_pair() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut w = CatalogWriter::create(root, [entry("a", 1)]).unwrap();
        for i in 0..50 {
            w.commit(&Edit {
                add: vec![entry(&format!("f{i:02}"), i)],
                remove: vec![format!("f{:02}", i.saturating_sub(1))],
                ..Edit::default()
            })
            .unwrap();
        }
        let before = paths(root);
        let first = w.checkpoint_seq();
        w.checkpoint().unwrap();
        assert_eq!(w.checkpoint_seq(), first + 1);
        assert_eq!(paths(root), before);
        assert_eq!(before, vec![("a".into(), 1), ("f49".into(), 49)]);
        let names: Vec<String> =
            fs::read_dir(catalog_dir(root)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 3, "checkpoint, its index and its log: {names:?}");
        w.commit(&Edit { add: vec![entry("g", 7)], remove: vec!["a".into()], ..Edit::default() }).unwrap();
        assert_eq!(paths(root), vec![("f49".into(), 49), ("g".into(), 7)]);
    }

    #[test]
    fn retired_files_survive_a_checkpoint_and_a_reopen_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut w = CatalogWriter::create(root, [entry("a", 1), entry("b", 1)]).unwrap();
        let retire = vec![Retired { retired: "a".into(), after_us: 10 }, Retired { retired: "b".into(), after_us: 20 }];
        w.commit(&Edit { add: vec![entry("ab", 2)], remove: vec!["a".into(), "b".into()], retire, ..Edit::default() }).unwrap();
        assert_eq!(w.retired_due(15), vec!["a".to_owned()]);
        w.checkpoint().unwrap();
        let w = CatalogWriter::open(root).unwrap().unwrap();
        assert_eq!(w.retired_due(25), vec!["a".to_owned(), "b".to_owned()]);
        let mut w = w;
        w.commit(&Edit { deleted: vec!["a".into()], ..Edit::default() }).unwrap();
        let s = Snapshot::read(root).unwrap().unwrap();
        assert_eq!(s.retired().collect::<Vec<_>>(), vec![("b", 20)]);
        assert_eq!(s.entries().map(|e| e.path.as_str()).collect::<Vec<_>>(), vec!["ab"]);
    }

    #[test]
    fn a_truncated_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w = CatalogWriter::create(root, [entry("a", 1), entry("b", 1)]).unwrap();
        let path = checkpoint_path(&catalog_dir(root), w.checkpoint_seq());
        let text = fs::read_to_string(&path).unwrap();
        let cut: Vec<&str> = text.lines().take(2).collect();
        fs::write(&path, cut.join("\n") + "\n").unwrap();
        assert!(Snapshot::read(root).unwrap_err().to_string().contains("truncated"));
    }
}

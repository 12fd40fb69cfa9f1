//! Parquet file paths: partition directory + `{writer:08x}-{lo:016x}-{hi:016x}.parquet`.
//!
//! Every archiver (writer) has an id of its own ([`WriterId`]) and gives every file it
//! publishes a fresh, ever-increasing sequence number. A file written by a flush covers one
//! number (`lo == hi`); a file written by compaction covers the range of the files it merged.
//! A file whose range lies inside another file's range, in the same directory and of the same
//! writer, is *superseded*: its rows are in the larger file. Readers ([`live_files`]) skip
//! superseded files, so the moment between publishing a compacted file and deleting its
//! inputs never shows a row twice to them, and a crash in that moment leaves nothing to
//! repair but deleting the inputs. Files of different writers never supersede each other,
//! so that archivers can later share an archive without one's file hiding another's (today
//! the archiver's lock allows one writer per archive).
//!
//! Archives of format version 1 named files `{lo:016x}-{hi:016x}.parquet`; those still
//! parse, as files of the reserved writer id 0.

use std::path::{Path, PathBuf};

use crate::{LayoutError, PartitionKey};

/// Which archiver wrote a file: a non-zero 32-bit id, kept in the archiver's state
/// directory (0 is reserved for files of format version 1, which carry no writer id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriterId(pub u32);

impl WriterId {
    /// Files named before writer ids existed.
    pub const LEGACY: WriterId = WriterId(0);
}

impl std::fmt::Display for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl std::str::FromStr for WriterId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match u32::from_str_radix(s, 16) {
            Ok(n) if s.len() == 8 && n != 0 => Ok(WriterId(n)),
            _ => Err(format!("{s:?} is not a writer id (8 hex digits, not all zero)")),
        }
    }
}

/// The writer and range of publish sequence numbers a file covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// The archiver that wrote it.
    pub writer: WriterId,
    /// Lowest sequence number covered.
    pub lo: u64,
    /// Highest sequence number covered (`>= lo`).
    pub hi: u64,
}

impl FileId {
    /// A file written by one flush.
    pub fn single(writer: WriterId, seq: u64) -> Self {
        Self { writer, lo: seq, hi: seq }
    }

    /// Whether `self` holds every row of `other` (and is not `other`).
    pub fn supersedes(&self, other: &FileId) -> bool {
        self != other && self.writer == other.writer && self.lo <= other.lo && other.hi <= self.hi
    }

    /// Whether `self`'s range holds `other`'s (same writer; equal ranges included): how a
    /// day file supersedes the hour files of its date, which live in other directories and
    /// may carry the same numbers (a day merged from one hour file).
    pub fn covers(&self, other: &FileId) -> bool {
        self.writer == other.writer && self.lo <= other.lo && other.hi <= self.hi
    }

    /// The file name, `{writer:08x}-{lo:016x}-{hi:016x}.parquet`.
    pub fn file_name(&self) -> String {
        if self.writer == WriterId::LEGACY {
            return format!("{:016x}-{:016x}.parquet", self.lo, self.hi);
        }
        format!("{}-{:016x}-{:016x}.parquet", self.writer, self.lo, self.hi)
    }

    /// The name of the file's value index: `_` and its file name ending `.vidx`. Readers
    /// that take a directory (pyarrow datasets, Spark, Hive) skip names starting with `_`,
    /// and a `*.parquet` glob does not match it.
    pub fn side_file_name(&self) -> String {
        let name = self.file_name();
        format!("_{}.vidx", name.strip_suffix(".parquet").unwrap_or(&name))
    }

    /// Parses a published file name (either form); `None` for anything else, temporary
    /// files included.
    pub fn parse_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".parquet")?;
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok()).flatten()
        };
        let mut parts = stem.split('-');
        let (writer, lo, hi) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(lo), Some(hi), None, None) => (WriterId::LEGACY, hex(lo, 16)?, hex(hi, 16)?),
            (Some(w), Some(lo), Some(hi), None) => {
                let w = u32::try_from(hex(w, 8)?).ok()?;
                if w == 0 {
                    return None;
                }
                (WriterId(w), hex(lo, 16)?, hex(hi, 16)?)
            }
            _ => return None,
        };
        (lo <= hi).then_some(Self { writer, lo, hi })
    }
}

/// The value index of the data file at `data_file` (a `.parquet` path): same directory,
/// named as [`FileId::side_file_name`] says; `None` for a path that is not a Parquet file's.
pub fn side_file_of(data_file: &Path) -> Option<PathBuf> {
    let stem = data_file.file_name()?.to_str()?.strip_suffix(".parquet")?;
    Some(data_file.with_file_name(format!("_{stem}.vidx")))
}

/// Keeps the files no other file in the list supersedes (see the module docs).
pub fn live_files(mut ids: Vec<FileId>) -> Vec<FileId> {
    // Per writer, widest ranges first: a file is live unless an already kept (wider) one of
    // its writer covers it.
    ids.sort_by_key(|id| (id.writer, id.lo, std::cmp::Reverse(id.hi)));
    ids.dedup();
    let mut live: Vec<FileId> = Vec::with_capacity(ids.len());
    let mut covered: Option<(WriterId, u64)> = None;
    for id in ids {
        if covered.is_some_and(|(w, hi)| w == id.writer && id.hi <= hi) {
            continue;
        }
        covered = Some(match covered {
            Some((w, hi)) if w == id.writer => (w, hi.max(id.hi)),
            _ => (id.writer, id.hi),
        });
        live.push(id);
    }
    live
}

/// The path of one published Parquet file.
///
/// ```
/// use archive_layout::{FileId, Granularity, ParquetFilePath, PartitionKey, Table, WriterId};
/// let key = PartitionKey::for_sample(Table::Net, "global", 1_764_000_000_000_000, Granularity::Hour);
/// let path = ParquetFilePath::new(key, FileId::single(WriterId(0xab), 7));
/// let rel = path.relative_path();
/// assert_eq!(rel.to_str().unwrap(),
///     "net/zone=global/date=2025-11-24/hour=16/000000ab-0000000000000007-0000000000000007.parquet");
/// assert_eq!(ParquetFilePath::parse_relative(&rel).unwrap(), path);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParquetFilePath {
    /// The partition the file belongs to.
    pub key: PartitionKey,
    /// The sequence numbers it covers.
    pub id: FileId,
}

impl ParquetFilePath {
    /// A file of `key` covering `id`.
    pub fn new(key: PartitionKey, id: FileId) -> Self {
        Self { key, id }
    }

    /// Path relative to the archive root.
    pub fn relative_path(&self) -> PathBuf {
        self.key.relative_dir().join(self.id.file_name())
    }

    /// Path under `root`.
    pub fn absolute_path(&self, root: &Path) -> PathBuf {
        root.join(self.relative_path())
    }

    /// Where the file is written before it is renamed into place: same directory, a hidden
    /// name that no reader's `*.parquet` glob matches.
    pub fn temp_path(&self, root: &Path) -> PathBuf {
        root.join(self.key.relative_dir()).join(format!(".{}.tmp", self.id.file_name()))
    }

    /// The value index of the file (`value_index` crate): same directory, named as
    /// [`FileId::side_file_name`] says, so no reader takes it for data.
    pub fn side_file_path(&self, root: &Path) -> PathBuf {
        root.join(self.key.relative_dir()).join(self.id.side_file_name())
    }

    /// Where the value index is written before it is renamed into place (a hidden name).
    pub fn side_file_temp_path(&self, root: &Path) -> PathBuf {
        root.join(self.key.relative_dir()).join(format!(".{}.tmp", self.id.side_file_name()))
    }

    /// Parses a path relative to the archive root.
    pub fn parse_relative(path: &Path) -> Result<Self, LayoutError> {
        let bad = |reason| LayoutError::BadPath { path: path.display().to_string(), reason };
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| bad("no file name"))?;
        let id = FileId::parse_file_name(name).ok_or_else(|| bad("not a published file name"))?;
        let dir = path.parent().ok_or_else(|| bad("no partition directory"))?;
        Ok(Self { key: PartitionKey::parse_relative_dir(dir)?, id })
    }
}

/// Characters hive escapes in partition values, plus every control character and `~` (which
/// marks the bounded form of a long zone name, see [`crate::zone_dir_value`]).
fn needs_escape(b: u8) -> bool {
    b < 0x20
        || matches!(
            b,
            b'"' | b'#' | b'%' | b'\'' | b'*' | b'/' | b':' | b'=' | b'?' | b'\\' | 0x7f | b'{' | b'[' | b']' | b'^' | b'~'
        )
}

/// Escapes a partition value the way hive does (`%XX`, upper-case hex), so that it is one
/// safe path component whatever it holds. The empty string and the names `.` and `..`
/// would not be, so they are escaped too (`%2E`; the empty name becomes a lone `%`).
///
/// ```
/// use archive_layout::{escape_partition_value, unescape_partition_value};
/// assert_eq!(escape_partition_value("a/b:c"), "a%2Fb%3Ac");
/// assert_eq!(escape_partition_value(".."), "%2E%2E");
/// assert_eq!(unescape_partition_value("a%2Fb%3Ac").unwrap(), "a/b:c");
/// ```
pub fn escape_partition_value(value: &str) -> String {
    if value.is_empty() {
        return "%".to_owned(); // a lone '%' is never produced by escaping a non-empty name
    }
    if value == "." || value == ".." {
        return "%2E".repeat(value.len());
    }
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if ch.is_ascii() && needs_escape(ch as u8) {
            out.push_str(&format!("%{:02X}", ch as u8));
        } else {
            out.push(ch);
        }
    }
    out
}

/// Inverse of [`escape_partition_value`]; `None` for a malformed escape.
pub fn unescape_partition_value(value: &str) -> Option<String> {
    if value == "%" {
        return Some(String::new());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Granularity, Table};
    use proptest::prelude::*;

    #[test]
    fn compacted_file_supersedes_its_inputs_only() {
        let w = WriterId(1);
        let a = FileId::single(w, 3);
        let b = FileId::single(w, 5);
        let c = FileId { writer: w, lo: 3, hi: 5 };
        let later = FileId::single(w, 9);
        assert!(c.supersedes(&a) && c.supersedes(&b) && !c.supersedes(&later) && !c.supersedes(&c));
        assert_eq!(live_files(vec![a, later, b, c]), vec![c, later]);
        assert_eq!(live_files(vec![a, b]), vec![a, b]);
        // A compaction of compactions.
        let d = FileId { writer: w, lo: 1, hi: 9 };
        assert_eq!(live_files(vec![a, b, c, later, d]), vec![d]);
        // Another writer's files are never hidden by ours, whatever their numbers.
        let other = FileId::single(WriterId(2), 4);
        let legacy = FileId { writer: WriterId::LEGACY, lo: 4, hi: 4 };
        assert!(!d.supersedes(&other) && !d.supersedes(&legacy));
        assert_eq!(live_files(vec![d, other, legacy]), vec![legacy, d, other]);
    }

    #[test]
    fn a_side_file_is_named_so_no_reader_takes_it_for_data_and_no_listing_for_a_file() {
        let p = ParquetFilePath::new(
            PartitionKey::for_sample(crate::Table::Cpu, "z", 0, crate::Granularity::Hour),
            FileId::single(WriterId(0xab), 7),
        );
        let side = p.side_file_path(Path::new("/a"));
        assert_eq!(side.file_name().unwrap(), "_000000ab-0000000000000007-0000000000000007.vidx");
        assert_eq!(side_file_of(&p.absolute_path(Path::new("/a"))), Some(side.clone()));
        assert_eq!(side_file_of(&side), None);
        assert_eq!(FileId::parse_file_name(side.file_name().unwrap().to_str().unwrap()), None);
        assert!(p.side_file_temp_path(Path::new("/a")).file_name().unwrap().to_str().unwrap().starts_with('.'));
    }

    #[test]
    fn version_1_names_still_parse_and_foreign_names_do_not() {
        let id = FileId::parse_file_name("0000000000000003-0000000000000005.parquet").unwrap();
        assert_eq!(id, FileId { writer: WriterId::LEGACY, lo: 3, hi: 5 });
        assert_eq!(id.file_name(), "0000000000000003-0000000000000005.parquet");
        for bad in [
            "00000000-0000000000000003-0000000000000003.parquet",
            "0000000000000005-0000000000000003.parquet",
            "x.parquet",
            "+000000000000003-0000000000000003.parquet",
            "0000000a-3-3.parquet",
        ] {
            assert_eq!(FileId::parse_file_name(bad), None, "{bad}");
        }
        assert_eq!("0000abcd".parse::<WriterId>(), Ok(WriterId(0xabcd)));
        assert!("00000000".parse::<WriterId>().is_err() && "abc".parse::<WriterId>().is_err());
    }

    #[test]
    fn temp_files_are_not_published_names() {
        let key = PartitionKey::for_sample(Table::Cpu, "z", 0, Granularity::Hour);
        let p = ParquetFilePath::new(key, FileId::single(WriterId(1), 1));
        let tmp = p.temp_path(Path::new("/a"));
        assert!(FileId::parse_file_name(tmp.file_name().unwrap().to_str().unwrap()).is_none());
        assert!(!tmp.to_str().unwrap().ends_with(".parquet"));
        assert_eq!(tmp.parent(), p.absolute_path(Path::new("/a")).parent());
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_is_one_component(value in "\\PC{0,30}|[./%=:]{0,5}|\\x00{0,3}") {
            let escaped = escape_partition_value(&value);
            prop_assert!(!escaped.contains('/') && !escaped.contains('\0'));
            prop_assert!(escaped != "." && escaped != ".." && !escaped.is_empty());
            prop_assert_eq!(unescape_partition_value(&escaped).unwrap(), value);
        }

        #[test]
        fn file_names_round_trip(writer in any::<u32>(), lo in any::<u64>(), len in 0u64..1000) {
            let id = FileId { writer: WriterId(writer), lo, hi: lo.saturating_add(len) };
            prop_assert_eq!(FileId::parse_file_name(&id.file_name()), Some(id));
        }

        #[test]
        fn live_files_keeps_exactly_the_uncovered(ranges in proptest::collection::vec((0u32..3, 0u64..50, 0u64..5), 0..12)) {
            let ids: Vec<FileId> = ranges.iter().map(|&(w, lo, len)| FileId { writer: WriterId(w), lo, hi: lo + len }).collect();
            let live = live_files(ids.clone());
            for id in &ids {
                let covered = ids.iter().any(|o| o.supersedes(id));
                prop_assert_eq!(live.contains(id), !covered, "{:?} in {:?}", id, ids);
            }
        }
    }
}

//! Parquet file paths: partition directory + `{lo:016x}-{hi:016x}.parquet`.
//!
//! Every file the archiver publishes gets a fresh, ever-increasing sequence number. A file
//! written by a flush covers one number (`lo == hi`); a file written by compaction covers
//! the range of the files it merged. A file whose range lies inside another file's range in
//! the same directory is *superseded*: its rows are in the larger file. Readers
//! ([`live_files`]) skip superseded files, so the moment between publishing a compacted file
//! and deleting its inputs never shows a row twice, and a crash in that moment leaves
//! nothing to repair but deleting the inputs.

use std::path::{Path, PathBuf};

use crate::{LayoutError, PartitionKey};

/// The range of publish sequence numbers a file covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Lowest sequence number covered.
    pub lo: u64,
    /// Highest sequence number covered (`>= lo`).
    pub hi: u64,
}

impl FileId {
    /// A file written by one flush.
    pub fn single(seq: u64) -> Self {
        Self { lo: seq, hi: seq }
    }

    /// Whether `self` holds every row of `other` (and is not `other`).
    pub fn supersedes(&self, other: &FileId) -> bool {
        self != other && self.lo <= other.lo && other.hi <= self.hi
    }

    /// The file name, `{lo:016x}-{hi:016x}.parquet`.
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}.parquet", self.lo, self.hi)
    }

    /// Parses a published file name; `None` for anything else (temporary files included).
    pub fn parse_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".parquet")?;
        let (lo, hi) = stem.split_once('-')?;
        if lo.len() != 16 || hi.len() != 16 {
            return None;
        }
        let lo = u64::from_str_radix(lo, 16).ok()?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        (lo <= hi).then_some(Self { lo, hi })
    }
}

/// Keeps the files no other file in the list supersedes (see the module docs).
pub fn live_files(mut ids: Vec<FileId>) -> Vec<FileId> {
    // Widest ranges first: a file is live unless an already kept (wider) one covers it.
    ids.sort_by_key(|id| (id.lo, std::cmp::Reverse(id.hi)));
    ids.dedup();
    let mut live: Vec<FileId> = Vec::with_capacity(ids.len());
    let mut covered_to: Option<u64> = None;
    for id in ids {
        if covered_to.is_some_and(|hi| id.hi <= hi) {
            continue;
        }
        covered_to = Some(covered_to.map_or(id.hi, |hi| hi.max(id.hi)));
        live.push(id);
    }
    live
}

/// The path of one published Parquet file.
///
/// ```
/// use archive_layout::{FileId, Granularity, ParquetFilePath, PartitionKey, Table};
/// let key = PartitionKey::for_sample(Table::Net, "global", 1_764_000_000_000_000, Granularity::Hour);
/// let path = ParquetFilePath::new(key, FileId::single(7));
/// let rel = path.relative_path();
/// assert_eq!(rel.to_str().unwrap(),
///     "net/zone=global/date=2025-11-24/hour=16/0000000000000007-0000000000000007.parquet");
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

    /// Parses a path relative to the archive root.
    pub fn parse_relative(path: &Path) -> Result<Self, LayoutError> {
        let bad = |reason| LayoutError::BadPath { path: path.display().to_string(), reason };
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| bad("no file name"))?;
        let id = FileId::parse_file_name(name).ok_or_else(|| bad("not a published file name"))?;
        let dir = path.parent().ok_or_else(|| bad("no partition directory"))?;
        Ok(Self { key: PartitionKey::parse_relative_dir(dir)?, id })
    }
}

/// Characters hive escapes in partition values, plus every control character.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || matches!(b, b'"' | b'#' | b'%' | b'\'' | b'*' | b'/' | b':' | b'=' | b'?' | b'\\' | 0x7f | b'{' | b'[' | b']' | b'^')
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
        let a = FileId::single(3);
        let b = FileId::single(5);
        let c = FileId { lo: 3, hi: 5 };
        let later = FileId::single(9);
        assert!(c.supersedes(&a) && c.supersedes(&b) && !c.supersedes(&later) && !c.supersedes(&c));
        assert_eq!(live_files(vec![a, later, b, c]), vec![c, later]);
        assert_eq!(live_files(vec![a, b]), vec![a, b]);
        // A compaction of compactions.
        let d = FileId { lo: 1, hi: 9 };
        assert_eq!(live_files(vec![a, b, c, later, d]), vec![d]);
    }

    #[test]
    fn temp_files_are_not_published_names() {
        let key = PartitionKey::for_sample(Table::Cpu, "z", 0, Granularity::Hour);
        let p = ParquetFilePath::new(key, FileId::single(1));
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
        fn file_names_round_trip(lo in any::<u64>(), len in 0u64..1000) {
            let id = FileId { lo, hi: lo.saturating_add(len) };
            prop_assert_eq!(FileId::parse_file_name(&id.file_name()), Some(id));
        }

        #[test]
        fn live_files_keeps_exactly_the_uncovered(ranges in proptest::collection::vec((0u64..50, 0u64..5), 0..12)) {
            let ids: Vec<FileId> = ranges.iter().map(|&(lo, len)| FileId { lo, hi: lo + len }).collect();
            let live = live_files(ids.clone());
            for id in &ids {
                let covered = ids.iter().any(|o| o.supersedes(id));
                prop_assert_eq!(live.contains(id), !covered, "{:?} in {:?}", id, ids);
            }
        }
    }
}

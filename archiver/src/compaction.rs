//! Compaction of one partition's files into one, through a durable intent. Since flushes
//! write runs and periods are sealed once ([`crate::seal`]), the writer only uses it to
//! finish a compaction that an archiver of an earlier version left interrupted (its intent,
//! format 2 or 1); it passes the seal's steps. [`pick_due`] is the policy that version used.
//!
//! A merged file covers the sequence numbers of the files it merged, so it supersedes them
//! ([`archive_layout::live_files`]): publishing it is the commit point, and removing the
//! inputs afterwards can be repeated. Only this writer's files are merged. Must not touch
//! the log or the buffers.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use archive_layout::listing::partition_files;
use archive_layout::{
    FileId, ParquetFilePath, PartitionKey, Table, WriterId, escape_partition_value, live_files, unescape_partition_value,
};

use crate::ArchiverError;
use crate::parquet_file::{Encoder, read_file, read_intent, remove_durably, sync_dir, write_atomically};
use crate::rows::TimeMerge;
use crate::write_step::WriteStep;

/// Where the intent lives, under the state directory.
pub const INTENT_FILE: &str = "compaction.intent";

/// What the writer knows of one partition it published into during this run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// Files this run published into it (it may hold older ones too, which are merged with
    /// them but not counted here).
    pub files_this_run: usize,
    /// The flush cycle that last published into it.
    pub last_flush_cycle: u64,
}

/// The partitions due for compaction: sealed ones (the zone's own sample clock has passed
/// the period's end and the last flush brought nothing new) holding more than one file of
/// this run, and any holding more than `max_files` files of this run. Sorted.
pub fn pick_due(
    partitions: &HashMap<PartitionKey, PartitionState>,
    latest_sample: impl Fn(&str) -> Option<i64>,
    flush_cycle: u64,
    max_files: usize,
) -> Vec<PartitionKey> {
    let mut due: Vec<PartitionKey> = partitions
        .iter()
        .filter(|(key, state)| {
            let sealed = state.last_flush_cycle < flush_cycle && latest_sample(&key.zone).is_some_and(|t| t >= key.end_us());
            (sealed && state.files_this_run > 1) || state.files_this_run > max_files
        })
        .map(|(k, _)| k.clone())
        .collect();
    due.sort();
    due
}

/// Whether the period of `key` is over by its zone's own clock.
pub fn is_sealed(key: &PartitionKey, latest_sample: Option<i64>) -> bool {
    latest_sample.is_some_and(|t| t >= key.end_us())
}

/// The compaction intent: the partition being merged and the merged file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Intent {
    output: ParquetFilePath,
}

impl Intent {
    fn to_text(&self) -> String {
        let k = &self.output.key;
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            k.table.name(),
            k.granularity.name(),
            k.start_us,
            escape_partition_value(&k.zone),
            self.output.id.file_name()
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut f = text.trim_end_matches('\n').split('\t');
        let table = Table::from_name(f.next()?).ok()?;
        let granularity = f.next()?.parse().ok()?;
        let start_us = f.next()?.parse().ok()?;
        let zone = unescape_partition_value(f.next()?)?;
        let id = FileId::parse_file_name(f.next()?)?;
        f.next().is_none().then_some(Intent {
            output: ParquetFilePath::new(PartitionKey { table, rollup: None, zone, start_us, granularity }, id),
        })
    }
}

/// Merges partitions; one per writer.
#[derive(Debug)]
pub struct Compactor {
    root: PathBuf,
    intent_path: PathBuf,
    writer: WriterId,
    encoder: Encoder,
}

impl Compactor {
    /// A compactor of `writer`'s files in the archive at `root` (state in `state_dir`).
    pub fn new(root: &Path, state_dir: &Path, writer: WriterId, encoder: Encoder) -> Self {
        Self { root: root.to_owned(), intent_path: state_dir.join(INTENT_FILE), writer, encoder }
    }

    /// Finishes a compaction that a failure or a crash interrupted (its intent is still
    /// there): removes its temporary output, then merges the partition again (which, if the
    /// output was published, only removes the inputs it supersedes). An intent that cannot
    /// be read or parsed is an error naming it: it is written atomically, so it is never torn.
    pub fn settle(&self, step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>) -> Result<(), ArchiverError> {
        let Some(text) = read_intent(&self.intent_path)? else { return Ok(()) };
        let Some(intent) = Intent::parse(&text) else {
            return match PartitionKey::parse_relative_dir(Path::new(text.trim_end_matches('\n'))) {
                Ok(key) => self.settle_version_1(&key),
                Err(_) => Err(ArchiverError::Corrupt { path: self.intent_path.clone(), reason: "not a compaction intent" }),
            };
        };
        tracing::warn!(partition = %intent.output.key.relative_dir().display(), "finishing an interrupted compaction");
        remove_if_present(&intent.output.temp_path(&self.root))?;
        self.compact(&intent.output.key, step)?;
        Ok(())
    }

    /// Merges the live files of `key` written by this writer into one file sorted by time
    /// (stable), publishes it, then removes every file of this writer it supersedes.
    /// Returns the number of files removed (0: nothing to do).
    pub fn compact(
        &self,
        key: &PartitionKey,
        step: &mut dyn FnMut(WriteStep) -> Result<(), ArchiverError>,
    ) -> Result<usize, ArchiverError> {
        let ours: Vec<FileId> =
            partition_files(&self.root, key)?.into_iter().map(|(id, _)| id).filter(|id| id.writer == self.writer).collect();
        let live = live_files(ours.clone());
        if live.len() < 2 {
            // Still remove superseded leftovers (a crash after publishing a merged file).
            let removed = self.remove_superseded(key, &ours, &live)?;
            self.remove_intent()?;
            return Ok(removed);
        }
        let lo = live.iter().map(|id| id.lo).min().unwrap_or(0);
        let hi = live.iter().map(|id| id.hi).max().unwrap_or(0);
        // Covering exactly the inputs' range: no other file of this writer can have a number
        // inside it, since numbers are unique and every such file of the directory is an input.
        let out = ParquetFilePath::new(key.clone(), FileId { writer: self.writer, lo, hi });
        self.write_intent(&Intent { output: out.clone() })?;
        step(WriteStep::SealIntentWritten)?;

        let mut batches = Vec::new();
        for id in &live {
            batches.extend(read_file(&ParquetFilePath::new(key.clone(), *id).absolute_path(&self.root))?);
        }
        let mut merge = TimeMerge::new(batches)
            .map_err(|source| ArchiverError::Arrow { context: format!("compacting {}", key.relative_dir().display()), source })?;
        self.encoder.publish_from(&self.root, &out, &mut merge)?;
        step(WriteStep::SealZonePublished)?;
        let removed = self.remove_superseded(key, &ours, &[out.id])?;
        step(WriteStep::SealRunsRemoved)?;
        self.remove_intent()?;
        Ok(removed)
    }

    /// An intent left by an archiver of format version 1 (the partition's path alone): its
    /// compaction is finished the way that version would have: its temporary files removed,
    /// the files its published output supersedes removed. Its files are writer 0's.
    fn settle_version_1(&self, key: &PartitionKey) -> Result<(), ArchiverError> {
        tracing::warn!(partition = %key.relative_dir().display(), "finishing a compaction interrupted under format version 1");
        let dir = self.root.join(key.relative_dir());
        let legacy: Vec<FileId> =
            partition_files(&self.root, key)?.into_iter().map(|(id, _)| id).filter(|id| id.writer == WriterId::LEGACY).collect();
        // Its temporary files (a version 1 name, hidden, `.tmp`).
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let published = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).and_then(FileId::parse_file_name);
            if published.is_some_and(|id| id.writer == WriterId::LEGACY) {
                remove_if_present(&e.path())?;
            }
        }
        let live = live_files(legacy.clone());
        self.remove_superseded(key, &legacy, &live)?;
        self.remove_intent()
    }

    fn write_intent(&self, intent: &Intent) -> Result<(), ArchiverError> {
        write_atomically(&self.intent_path, intent.to_text().as_bytes())
    }

    fn remove_intent(&self) -> Result<(), ArchiverError> {
        remove_durably(&self.intent_path)
    }

    fn remove_superseded(&self, key: &PartitionKey, all: &[FileId], live: &[FileId]) -> Result<usize, ArchiverError> {
        let mut removed = 0;
        for id in all.iter().filter(|id| !live.contains(id)) {
            let path = ParquetFilePath::new(key.clone(), *id).absolute_path(&self.root);
            if crate::parquet_file::remove_data_file(&path, "remove compacted input")? {
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.root.join(key.relative_dir()))?;
        }
        Ok(removed)
    }
}

fn remove_if_present(path: &Path) -> Result<(), ArchiverError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ArchiverError::Io { what: "remove", path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(zone: &str, hour: i64) -> PartitionKey {
        PartitionKey::for_sample(Table::Cpu, zone, hour * 3_600_000_000, archive_layout::Granularity::Hour)
    }

    #[test]
    fn picks_sealed_partitions_and_crowded_open_ones() {
        let mut p = HashMap::new();
        p.insert(key("a", 0), PartitionState { files_this_run: 2, last_flush_cycle: 4 }); // sealed, 2 files
        p.insert(key("a", 1), PartitionState { files_this_run: 3, last_flush_cycle: 5 }); // open, flushed now
        p.insert(key("b", 0), PartitionState { files_this_run: 1, last_flush_cycle: 1 }); // sealed, 1 file
        p.insert(key("b", 1), PartitionState { files_this_run: 9, last_flush_cycle: 5 }); // crowded
        p.insert(key("c", 0), PartitionState { files_this_run: 5, last_flush_cycle: 2 }); // zone clock not past
        let latest = |z: &str| match z {
            "a" | "b" => Some(3_600_000_000 + 5),
            _ => Some(3_599_999_999),
        };
        assert_eq!(pick_due(&p, latest, 5, 8), vec![key("a", 0), key("b", 1)]);
        // The same sealed partition, flushed into by this very cycle, waits.
        p.insert(key("a", 0), PartitionState { files_this_run: 2, last_flush_cycle: 5 });
        assert_eq!(pick_due(&p, latest, 5, 8), vec![key("b", 1)]);
    }

    #[test]
    fn a_version_1_intent_is_finished_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let state = root.join("_archiver");
        fs::create_dir_all(&state).unwrap();
        let key = key("global", 5);
        let legacy = |lo, hi| ParquetFilePath::new(key.clone(), FileId { writer: WriterId::LEGACY, lo, hi });
        for p in [legacy(1, 1), legacy(2, 2), legacy(1, 2)] {
            let path = p.absolute_path(root);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        fs::write(legacy(3, 4).temp_path(root), b"half").unwrap();
        fs::write(state.join(INTENT_FILE), key.relative_dir().to_string_lossy().as_bytes()).unwrap();
        let c = Compactor::new(root, &state, WriterId(9), Encoder::COMPACT);
        c.settle(&mut |_| Ok(())).unwrap();
        let left: Vec<FileId> = partition_files(root, &key).unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, vec![legacy(1, 2).id]);
        assert!(!legacy(3, 4).temp_path(root).exists() && !state.join(INTENT_FILE).exists());
    }

    #[test]
    fn intent_round_trips_any_zone() {
        for zone in ["global", "a\tb\nc", &"z".repeat(1024), "%~/"] {
            let out = ParquetFilePath::new(key(zone, 7), FileId { writer: WriterId(3), lo: 5, hi: 9 });
            let i = Intent { output: out };
            assert_eq!(Intent::parse(&i.to_text()), Some(i));
        }
        assert_eq!(Intent::parse("cpu\thour\t0\tglobal"), None);
    }
}

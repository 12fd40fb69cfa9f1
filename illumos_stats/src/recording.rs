//! Recorded snapshots: a directory of `kstat-NNNN.txt` (`kstat -p` text) and
//! `aggregates-NNNN.jsonl` (aggregation walk records) pairs, one per interval. The live
//! sampler writes them on a real host ([`Recorder`], `generator --source illumos
//! --record-illumos DIR`); tests and the generator's replay mode read such a directory back
//! ([`Recording`]) through the same seams the live readers sit behind. The test fixtures
//! (`tests/fixtures/`) are in this format but were composed by `tests/fixtures/compose.py`,
//! not recorded on a host.

use std::path::{Path, PathBuf};

use dtrace_sys::AggregateRecord;

use crate::IllumosError;
use crate::aggregate::{AggregateReader, format_aggregates_jsonl, parse_aggregates_jsonl};
use crate::kstat::{KstatReader, KstatRecord, format_kstat_p, parse_kstat_p};

fn kstat_file(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("kstat-{n:04}.txt"))
}

fn aggregates_file(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("aggregates-{n:04}.jsonl"))
}

fn fixture_error(path: &Path, e: impl std::fmt::Display) -> IllumosError {
    IllumosError::Fixture { what: path.display().to_string(), message: e.to_string() }
}

/// A loaded recording: snapshots in order. Replaying cycles through them.
#[derive(Debug, Clone)]
pub struct Recording {
    /// One kstat snapshot per interval.
    pub kstats: Vec<Vec<KstatRecord>>,
    /// One interval of aggregation records per interval (empty where its file is missing).
    pub aggregates: Vec<Vec<AggregateRecord>>,
}

impl Recording {
    /// Loads `kstat-0000.txt`, `kstat-0001.txt`, ... until one is missing, each with its
    /// `aggregates-NNNN.jsonl` if present.
    pub fn load(dir: &Path) -> Result<Self, IllumosError> {
        let mut kstats = Vec::new();
        let mut aggregates = Vec::new();
        for n in 0.. {
            let path = kstat_file(dir, n);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(fixture_error(&path, e)),
            };
            kstats.push(parse_kstat_p(&text).map_err(|e| fixture_error(&path, e))?);
            let path = aggregates_file(dir, n);
            aggregates.push(match std::fs::read_to_string(&path) {
                Ok(t) => parse_aggregates_jsonl(&t).map_err(|e| fixture_error(&path, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(fixture_error(&path, e)),
            });
        }
        if kstats.is_empty() {
            return Err(fixture_error(&kstat_file(dir, 0), "no recorded snapshot"));
        }
        Ok(Self { kstats, aggregates })
    }

    /// Readers replaying this recording, snapshot after snapshot, from the first again after
    /// the last.
    pub fn replay(self) -> (ReplayKstats, ReplayAggregates) {
        (Replay { items: self.kstats, next: 0 }, Replay { items: self.aggregates, next: 0 })
    }
}

/// Replays recorded items in order, cycling.
#[derive(Debug)]
pub struct Replay<T> {
    items: Vec<T>,
    next: usize,
}

impl<T: Clone + Default> Replay<T> {
    fn next_item(&mut self) -> T {
        let item = self.items.get(self.next % self.items.len().max(1)).cloned().unwrap_or_default();
        self.next += 1;
        item
    }
}

/// Replays recorded kstat snapshots.
pub type ReplayKstats = Replay<Vec<KstatRecord>>;

/// Replays recorded aggregation intervals.
pub type ReplayAggregates = Replay<Vec<AggregateRecord>>;

impl KstatReader for ReplayKstats {
    fn read(&mut self) -> Result<Vec<KstatRecord>, IllumosError> {
        Ok(self.next_item())
    }
}

impl AggregateReader for ReplayAggregates {
    fn collect(&mut self) -> Result<Vec<AggregateRecord>, IllumosError> {
        Ok(self.next_item())
    }
}

/// Writes each sampled interval as the next numbered pair of files in a directory.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    next: usize,
    limit: usize,
}

impl Recorder {
    /// Records up to `limit` intervals into `dir` (created if needed), numbering from 0.
    pub fn create(dir: &Path, limit: usize) -> Result<Self, IllumosError> {
        std::fs::create_dir_all(dir).map_err(|e| fixture_error(dir, e))?;
        Ok(Self { dir: dir.to_path_buf(), next: 0, limit })
    }

    /// Writes one interval; does nothing once `limit` intervals are written.
    pub fn record(&mut self, kstats: &[KstatRecord], aggregates: &[AggregateRecord]) -> Result<(), IllumosError> {
        if self.next >= self.limit {
            return Ok(());
        }
        let path = kstat_file(&self.dir, self.next);
        std::fs::write(&path, format_kstat_p(kstats)).map_err(|e| fixture_error(&path, e))?;
        let path = aggregates_file(&self.dir, self.next);
        std::fs::write(&path, format_aggregates_jsonl(aggregates)).map_err(|e| fixture_error(&path, e))?;
        self.next += 1;
        Ok(())
    }
}

//! Flush runs: what a flush publishes before a period is sealed.
//!
//! A flush writes one *run* per (table, period) it holds rows of, whatever the number of
//! zones and hosts: `_archiver/runs/{table}/{hour|day}-{start_us}/{writer}-{seq}-{seq}.parquet`,
//! rows ordered by zone, then time. Runs live under the archiver's state directory, so a
//! plain `TABLE/**/*.parquet` glob never sees them; `dq` reads them, so rows are queryable
//! within a flush interval. When the period is over, the archiver *seals* it: each zone's
//! rows from every run (and any file the zone's partition already holds) are merged into
//! one file in the zone's partition, whose [`FileId`] covers the sequence numbers of the
//! runs it took rows from. Then the runs are removed.
//!
//! The rule readers apply between those two moments ([`zone_file_covers_run`]): the rows of
//! zone Z in run R are superseded once Z's partition for R's period holds a file of R's
//! writer whose range covers R's number. So a reader that sees both never counts a row
//! twice, and a crash in between leaves nothing to repair but finishing the seal.

use std::path::{Path, PathBuf};

use crate::{FileId, Granularity, LayoutError, PartitionKey, Table};

/// The archiver's state directory under the archive root (never data a glob should read).
pub const STATE_DIR: &str = "_archiver";

/// The runs directory, under [`STATE_DIR`].
pub const RUNS_DIR: &str = "runs";

/// The (table, period) a run holds rows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKey {
    /// The table.
    pub table: Table,
    /// First microsecond of the period (UTC).
    pub start_us: i64,
    /// Length of the period.
    pub granularity: Granularity,
}

impl RunKey {
    /// The run key a sample at `time_us` falls in.
    pub fn for_sample(table: Table, time_us: i64, granularity: Granularity) -> Self {
        Self { table, start_us: granularity.period_start(time_us), granularity }
    }

    /// One past the last microsecond of the period.
    pub fn end_us(&self) -> i64 {
        self.granularity.period_end(self.start_us)
    }

    /// The partition of `zone` for the same table and period.
    pub fn partition(&self, zone: &str) -> PartitionKey {
        PartitionKey {
            table: self.table,
            rollup: None,
            zone: zone.to_owned(),
            start_us: self.start_us,
            granularity: self.granularity,
        }
    }

    fn dir_name(&self) -> String {
        format!("{}-{}", self.granularity.name(), self.start_us)
    }

    fn parse_dir_name(table: Table, name: &str) -> Option<Self> {
        let (g, start) = name.split_once('-')?;
        let granularity = match g {
            "hour" => Granularity::Hour,
            "day" => Granularity::Day,
            _ => return None,
        };
        let start_us: i64 = start.parse().ok()?;
        (granularity.period_start(start_us) == start_us).then_some(Self { table, start_us, granularity })
    }

    /// The directory of this key's runs, relative to the archive root.
    pub fn relative_dir(&self) -> PathBuf {
        Path::new(STATE_DIR).join(RUNS_DIR).join(self.table.name()).join(self.dir_name())
    }
}

/// The path of one run.
///
/// ```
/// use archive_layout::{FileId, Granularity, RunKey, RunPath, Table, WriterId};
/// let key = RunKey::for_sample(Table::Cpu, 1_764_000_000_000_000, Granularity::Hour);
/// let run = RunPath { key, id: FileId::single(WriterId(0xab), 7) };
/// assert_eq!(run.relative_path().to_str().unwrap(),
///     "_archiver/runs/cpu/hour-1764000000000000/000000ab-0000000000000007-0000000000000007.parquet");
/// assert_eq!(RunPath::parse_relative(&run.relative_path()).unwrap(), run);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunPath {
    /// Its table and period.
    pub key: RunKey,
    /// Its writer and number (`lo == hi`).
    pub id: FileId,
}

impl RunPath {
    /// Path relative to the archive root.
    pub fn relative_path(&self) -> PathBuf {
        self.key.relative_dir().join(self.id.file_name())
    }

    /// Path under `root`.
    pub fn absolute_path(&self, root: &Path) -> PathBuf {
        root.join(self.relative_path())
    }

    /// Where it is written before the flush's commit renames it into place.
    pub fn temp_path(&self, root: &Path) -> PathBuf {
        root.join(self.key.relative_dir()).join(format!(".{}.tmp", self.id.file_name()))
    }

    /// Parses [`RunPath::relative_path`]'s form.
    pub fn parse_relative(path: &Path) -> Result<Self, LayoutError> {
        let bad = |reason| LayoutError::BadPath { path: path.display().to_string(), reason };
        let parts: Vec<&str> = path.iter().map(|c| c.to_str().unwrap_or("")).collect();
        let [state, runs, table, period, name] = parts.as_slice() else { return Err(bad("not a run path")) };
        if *state != STATE_DIR || *runs != RUNS_DIR {
            return Err(bad("not under the runs directory"));
        }
        let table = Table::from_name(table)?;
        let key = RunKey::parse_dir_name(table, period).ok_or_else(|| bad("not a run period directory"))?;
        let id = FileId::parse_file_name(name).ok_or_else(|| bad("not a run file name"))?;
        Ok(Self { key, id })
    }
}

/// Whether `zone_file` (in a zone's partition of a run's period) holds that zone's rows of
/// the run `run`: same writer, and its range covers the run's number.
pub fn zone_file_covers_run(zone_file: &FileId, run: &FileId) -> bool {
    zone_file.writer == run.writer && zone_file.lo <= run.lo && run.hi <= zone_file.hi
}

/// Where one zone's rows are in a run (rows are ordered by zone, then time), and their time
/// range: what a seal reads of the run for the zone, and what a latest-sample question
/// answers from without reading rows. Kept in the run's footer ([`crate::format::keys::ZONE_ROWS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRowRange {
    /// The zone.
    pub zone: String,
    /// Its first row in the run.
    pub first_row: u64,
    /// Its rows.
    pub rows: u64,
    /// Its earliest sample time (µs).
    pub min_time_us: i64,
    /// Its latest sample time (µs).
    pub max_time_us: i64,
}

impl ZoneRowRange {
    /// The footer value for `ranges`: a JSON array of `[zone, first_row, rows, min, max]`.
    pub fn encode(ranges: &[ZoneRowRange]) -> String {
        let rows: Vec<serde_json::Value> =
            ranges.iter().map(|r| serde_json::json!([r.zone, r.first_row, r.rows, r.min_time_us, r.max_time_us])).collect();
        serde_json::Value::Array(rows).to_string()
    }

    /// Parses [`ZoneRowRange::encode`]'s text; `None` if it is not that.
    pub fn parse(text: &str) -> Option<Vec<ZoneRowRange>> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        value
            .as_array()?
            .iter()
            .map(|r| {
                let r = r.as_array()?;
                match r.as_slice() {
                    [zone, first, rows, min, max] => Some(ZoneRowRange {
                        zone: zone.as_str()?.to_owned(),
                        first_row: first.as_u64()?,
                        rows: rows.as_u64()?,
                        min_time_us: min.as_i64()?,
                        max_time_us: max.as_i64()?,
                    }),
                    _ => None,
                }
            })
            .collect()
    }
}

/// A run found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRun {
    /// Where it is.
    pub run: RunPath,
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// The runs of `table` under `root` whose period `admit(start_us, end_us)` keeps, sorted by
/// key then number. Temporary files are not runs.
pub fn list_runs(root: &Path, table: Table, admit: impl Fn(i64, i64) -> bool) -> Result<Vec<ListedRun>, LayoutError> {
    let table_dir = root.join(STATE_DIR).join(RUNS_DIR).join(table.name());
    let list_err = |path: &Path| {
        let path = path.to_owned();
        move |source| LayoutError::List { path, source }
    };
    let periods = match std::fs::read_dir(&table_dir) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>().map_err(list_err(&table_dir))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(list_err(&table_dir)(e)),
    };
    let mut out = Vec::new();
    for period in periods {
        let Some(key) = period.file_name().to_str().and_then(|n| RunKey::parse_dir_name(table, n)) else { continue };
        if !admit(key.start_us, key.end_us()) {
            continue;
        }
        for (id, size) in crate::listing::published_files(&period.path())? {
            let run = RunPath { key, id };
            out.push(ListedRun { path: run.absolute_path(root), run, size });
        }
    }
    out.sort_by_key(|r| r.run);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WriterId;

    #[test]
    fn runs_list_by_period_and_skip_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let t = 1_764_000_000_000_000;
        let w = WriterId(3);
        let hour = RunKey::for_sample(Table::Cpu, t, Granularity::Hour);
        let next = RunKey::for_sample(Table::Cpu, t + 3_600_000_000, Granularity::Hour);
        for run in [
            RunPath { key: hour, id: FileId::single(w, 2) },
            RunPath { key: hour, id: FileId::single(w, 1) },
            RunPath { key: next, id: FileId::single(w, 3) },
        ] {
            let p = run.absolute_path(root);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        std::fs::write(RunPath { key: hour, id: FileId::single(w, 4) }.temp_path(root), b"").unwrap();
        let all: Vec<(i64, u64)> =
            list_runs(root, Table::Cpu, |_, _| true).unwrap().iter().map(|r| (r.run.key.start_us, r.run.id.lo)).collect();
        assert_eq!(all, vec![(hour.start_us, 1), (hour.start_us, 2), (next.start_us, 3)]);
        let later = list_runs(root, Table::Cpu, |_, end| end > next.start_us).unwrap();
        assert_eq!(later.len(), 1);
        assert!(list_runs(root, Table::Mem, |_, _| true).unwrap().is_empty());
    }

    #[test]
    fn zone_row_ranges_round_trip() {
        let ranges = vec![
            ZoneRowRange { zone: "a\"b\tc".into(), first_row: 0, rows: 3, min_time_us: -5, max_time_us: 9 },
            ZoneRowRange { zone: "z".repeat(300), first_row: 3, rows: 1, min_time_us: 1 << 60, max_time_us: 1 << 60 },
        ];
        assert_eq!(ZoneRowRange::parse(&ZoneRowRange::encode(&ranges)), Some(ranges));
        assert_eq!(ZoneRowRange::parse("[[\"a\", 1]]"), None);
        assert_eq!(ZoneRowRange::parse("{}"), None);
    }

    #[test]
    fn a_zone_file_covers_the_runs_of_its_writer_in_its_range() {
        let w = WriterId(3);
        let sealed = FileId { writer: w, lo: 5, hi: 9 };
        assert!(zone_file_covers_run(&sealed, &FileId::single(w, 5)));
        assert!(zone_file_covers_run(&sealed, &FileId::single(w, 9)));
        assert!(!zone_file_covers_run(&sealed, &FileId::single(w, 10)));
        assert!(!zone_file_covers_run(&sealed, &FileId::single(WriterId(4), 7)));
        assert!(zone_file_covers_run(&FileId::single(w, 7), &FileId::single(w, 7)), "a seal of one run");
    }
}

//! Walking an archive: the one place that lists a table's partitions and their live files,
//! for the archiver and for `dq` alike.
//!
//! A table directory holds `zone=Z/month=M/` and `zone=Z/date=D/` directories; a month
//! directory holds the files of its month partition (a month compaction's output), a date
//! directory the files of its day partition (if any) and `hour=H/` directories holding the
//! files of hour partitions, so hour, day and month files can live in one archive and each
//! file's period is what its own directory says. Hidden entries (`.` or `_` first) are skipped. Must not
//! read files.

use std::path::{Path, PathBuf};

use crate::{FileId, Granularity, LayoutError, PartitionDir, PartitionKey, RollupLevel, Table, live_files, table_dir_name};

/// A published file found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// The partition directory it is in.
    pub dir: PartitionDir,
    /// Its writer and sequence numbers.
    pub id: FileId,
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

fn list_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + use<'_> {
    move |source| LayoutError::List { path: path.to_owned(), source }
}

fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, LayoutError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>().map_err(list_err(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(list_err(dir)(e)),
    }
}

fn visible_subdirs(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, LayoutError> {
    let mut out = Vec::new();
    for e in entries(dir)? {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        // A partition directory that cannot be told apart from a file is an error, never
        // silently left out of a listing.
        if e.file_type().map_err(list_err(&e.path()))?.is_dir() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The published files directly in `dir` (live or superseded) with their sizes. A file that
/// vanishes while being listed (a compaction removed it) is left out.
pub fn published_files(dir: &Path) -> Result<Vec<(FileId, u64)>, LayoutError> {
    let mut found = Vec::new();
    for e in entries(dir)? {
        let Some(id) = e.file_name().to_str().and_then(FileId::parse_file_name) else { continue };
        match e.metadata() {
            Ok(m) if m.is_file() => found.push((id, m.len())),
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(list_err(&e.path())(err)),
        }
    }
    found.sort();
    Ok(found)
}

/// The published files of one partition (live or superseded).
pub fn partition_files(root: &Path, key: &PartitionKey) -> Result<Vec<(FileId, u64)>, LayoutError> {
    published_files(&root.join(key.relative_dir()))
}

/// Lists the live files of `table` under `root` in the partitions `admit` keeps.
/// `admit_zone` sees a `zone=` directory's value first (see [`PartitionDir::holds_zone`]),
/// `admit` then each partition directory; a day directory is offered whole (as a day
/// partition) before its hours are listed, so a day that cannot match is skipped at once.
pub fn list_table(
    root: &Path,
    table: Table,
    admit_zone: impl Fn(&PartitionDir) -> bool,
    admit: impl Fn(&PartitionDir) -> bool,
) -> Result<Vec<ListedFile>, LayoutError> {
    list_table_dir(root, table_dir_name(table, None), admit_zone, admit)
}

/// [`list_table`] of the rollup of `table` at `level` (day partitions only).
pub fn list_rollup(
    root: &Path,
    table: Table,
    level: RollupLevel,
    admit_zone: impl Fn(&PartitionDir) -> bool,
    admit: impl Fn(&PartitionDir) -> bool,
) -> Result<Vec<ListedFile>, LayoutError> {
    list_table_dir(root, table_dir_name(table, Some(level)), admit_zone, admit)
}

fn list_table_dir(
    root: &Path,
    table_dir: &str,
    admit_zone: impl Fn(&PartitionDir) -> bool,
    admit: impl Fn(&PartitionDir) -> bool,
) -> Result<Vec<ListedFile>, LayoutError> {
    let mut out = Vec::new();
    let table_dir = root.join(table_dir);
    for zone_dir in visible_subdirs(&table_dir, "zone=")? {
        // Month files first: they supersede the day and hour files of their writer in their
        // range (a month compaction's inputs, kept for a grace period).
        let mut months: Vec<(i64, Vec<FileId>)> = Vec::new();
        for month_dir in visible_subdirs(&zone_dir, "month=")? {
            let Ok(rel) = month_dir.strip_prefix(root) else { continue };
            let Ok(month) = PartitionDir::parse_relative(rel) else { continue };
            if !admit_zone(&month) {
                break;
            }
            // Listed for covering even when `admit` leaves the month out.
            let live = live_files(published_files(&month_dir)?.into_iter().map(|(id, _)| id).collect());
            if admit(&month) {
                push_live(&month, &month_dir, &mut out, &[])?;
            }
            months.push((month.start_us, live));
        }
        for date_dir in visible_subdirs(&zone_dir, "date=")? {
            let Ok(rel) = date_dir.strip_prefix(root) else { continue };
            let Ok(day) = PartitionDir::parse_relative(rel) else { continue };
            if !admit_zone(&day) || !admit(&day) {
                continue;
            }
            let month_start = Granularity::Month.period_start(day.start_us);
            let mut covering: Vec<FileId> =
                months.iter().filter(|(start, _)| *start == month_start).flat_map(|(_, ids)| ids.iter().copied()).collect();
            let days = push_live(&day, &date_dir, &mut out, &covering)?;
            covering.extend(days);
            for hour_dir in visible_subdirs(&date_dir, "hour=")? {
                let Ok(rel) = hour_dir.strip_prefix(root) else { continue };
                let Ok(hour) = PartitionDir::parse_relative(rel) else { continue };
                debug_assert_eq!(hour.granularity, Granularity::Hour);
                if admit(&hour) {
                    push_live(&hour, &hour_dir, &mut out, &covering)?;
                }
            }
        }
    }
    Ok(out)
}

/// Pushes the live files of the partition directory `path`, but those a file of `covering`
/// supersedes (the day or month files of its period: a compaction's inputs, kept for a
/// grace period after it); returns the ids pushed.
fn push_live(
    dir: &PartitionDir,
    path: &Path,
    out: &mut Vec<ListedFile>,
    covering: &[FileId],
) -> Result<Vec<FileId>, LayoutError> {
    let found = published_files(path)?;
    let live: Vec<FileId> = live_files(found.iter().map(|(id, _)| *id).collect())
        .into_iter()
        .filter(|id| !covering.iter().any(|c| c.covers(id)))
        .collect();
    for (id, size) in found {
        if live.contains(&id) {
            out.push(ListedFile { dir: dir.clone(), id, path: path.join(id.file_name()), size });
        }
    }
    Ok(live)
}

/// The live files of the coarser partitions holding the period of `key`: for an hour, its
/// day's and its month's; for a day, its month's. They are compactions' outputs, which
/// supersede the files of their writer in their range.
pub fn covering_files(root: &Path, key: &PartitionKey) -> Result<Vec<FileId>, LayoutError> {
    let coarser: &[Granularity] = match key.granularity {
        Granularity::Hour => &[Granularity::Day, Granularity::Month],
        Granularity::Day => &[Granularity::Month],
        Granularity::Month => &[],
    };
    let mut out = Vec::new();
    for g in coarser {
        let outer = PartitionKey { granularity: *g, start_us: g.period_start(key.start_us), ..key.clone() };
        out.extend(live_files(partition_files(root, &outer)?.into_iter().map(|(id, _)| id).collect()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParquetFilePath, WriterId};

    fn touch(root: &Path, key: &PartitionKey, id: FileId) {
        let p = ParquetFilePath::new(key.clone(), id).absolute_path(root);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn hour_and_day_files_in_one_archive_and_superseded_files_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let t = 1_764_000_000_000_000;
        let w = WriterId(7);
        let hour = PartitionKey::for_sample(Table::Cpu, "a", t, Granularity::Hour);
        let day = PartitionKey::for_sample(Table::Cpu, "a", t, Granularity::Day);
        let long = PartitionKey::for_sample(Table::Cpu, &"k".repeat(1000), t, Granularity::Hour);
        touch(root, &hour, FileId::single(w, 1));
        touch(root, &hour, FileId::single(w, 2));
        touch(root, &hour, FileId { writer: w, lo: 1, hi: 2 });
        touch(root, &hour, FileId::single(WriterId(8), 1));
        touch(root, &day, FileId::single(w, 3));
        touch(root, &long, FileId::single(w, 4));
        std::fs::write(root.join("cpu/zone=a/date=2025-11-24/.x.tmp"), b"").unwrap();
        let all = list_table(root, Table::Cpu, |_| true, |_| true).unwrap();
        let mut got: Vec<(Granularity, FileId)> = all.iter().map(|f| (f.dir.granularity, f.id)).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (Granularity::Hour, FileId { writer: w, lo: 1, hi: 2 }),
                (Granularity::Hour, FileId::single(w, 4)),
                (Granularity::Hour, FileId::single(WriterId(8), 1)),
                (Granularity::Day, FileId::single(w, 3)),
            ]
        );
        let only_long = list_table(root, Table::Cpu, |d| d.holds_zone(&long.zone), |_| true).unwrap();
        assert_eq!(only_long.len(), 1);
        assert_eq!(only_long[0].dir.zone(), None, "the bounded form does not name its zone");
        let days_only = list_table(root, Table::Cpu, |_| true, |d| d.granularity == Granularity::Day).unwrap();
        assert_eq!(days_only.len(), 1);
        assert_eq!(partition_files(root, &hour).unwrap().len(), 4);
        // A day compaction's output hides the hour files of its writer in its range (kept
        // for a grace period), not those of another writer nor newer ones (late rows).
        let day_of = PartitionKey::for_sample(Table::Mem, "a", t, Granularity::Day);
        let hour_of = PartitionKey::for_sample(Table::Mem, "a", t, Granularity::Hour);
        touch(root, &hour_of, FileId { writer: w, lo: 10, hi: 12 });
        touch(root, &hour_of, FileId::single(w, 30));
        touch(root, &hour_of, FileId::single(WriterId(8), 11));
        touch(root, &day_of, FileId { writer: w, lo: 5, hi: 20 });
        let mem = || {
            let mut listed: Vec<(Granularity, FileId)> =
                list_table(root, Table::Mem, |_| true, |_| true).unwrap().iter().map(|f| (f.dir.granularity, f.id)).collect();
            listed.sort();
            listed
        };
        assert_eq!(
            mem(),
            vec![
                (Granularity::Hour, FileId::single(w, 30)),
                (Granularity::Hour, FileId::single(WriterId(8), 11)),
                (Granularity::Day, FileId { writer: w, lo: 5, hi: 20 }),
            ]
        );
        assert_eq!(covering_files(root, &hour_of).unwrap(), vec![FileId { writer: w, lo: 5, hi: 20 }]);
        // A month file hides the day and hour files of its writer in its range.
        let month_of = PartitionKey::for_sample(Table::Mem, "a", t, Granularity::Month);
        touch(root, &month_of, FileId { writer: w, lo: 1, hi: 25 });
        assert_eq!(
            mem(),
            vec![
                (Granularity::Hour, FileId::single(w, 30)),
                (Granularity::Hour, FileId::single(WriterId(8), 11)),
                (Granularity::Month, FileId { writer: w, lo: 1, hi: 25 }),
            ]
        );
        assert_eq!(covering_files(root, &hour_of).unwrap().len(), 2);
        assert_eq!(covering_files(root, &day_of).unwrap(), vec![FileId { writer: w, lo: 1, hi: 25 }]);
        let months_only = list_table(root, Table::Mem, |_| true, |d| d.granularity == Granularity::Month).unwrap();
        assert_eq!(months_only.len(), 1);
    }
}

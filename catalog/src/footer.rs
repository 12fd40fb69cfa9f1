//! Catalog entries from the files themselves: the one place that reads a data file's footer
//! for the catalog, the rebuild from a whole archive, and the comparison of the two.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use archive_layout::format::keys;
use archive_layout::listing::{list_rollup, list_table};
use archive_layout::{
    ColumnType, Granularity, ParquetFilePath, RollupLevel, RunPath, Table, ZoneRowRange, list_runs, table_dir_name,
};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::file::statistics::Statistics;

use crate::{CatalogError, ColumnStats, Entry, Snapshot, Stat, catalog_path};

fn footer(path: &Path) -> Result<(ParquetMetaData, u64), CatalogError> {
    let file = File::open(path).map_err(|source| CatalogError::Io { what: "open", path: path.to_owned(), source })?;
    let bytes = file.metadata().map_err(|source| CatalogError::Io { what: "stat", path: path.to_owned(), source })?.len();
    let reader = SerializedFileReader::new(file).map_err(|source| CatalogError::Footer { path: path.to_owned(), source })?;
    Ok((reader.metadata().clone(), bytes))
}

fn kv<'a>(meta: &'a ParquetMetaData, key: &str) -> Option<&'a str> {
    meta.file_metadata().key_value_metadata()?.iter().find(|e| e.key == key)?.value.as_deref()
}

fn period_name(g: Granularity) -> &'static str {
    g.name()
}

/// What the footer says of each column (time as signed, integers as unsigned, strings when
/// exact), over every row group.
fn column_stats(
    meta: &ParquetMetaData,
    table: Table,
    with_values: bool,
) -> (Option<i64>, Option<i64>, BTreeMap<&'static str, ColumnStats>) {
    let types: BTreeMap<&str, ColumnType> =
        table.value_columns().iter().map(|(n, t)| (*n, *t)).chain([("host", ColumnType::Utf8)]).collect();
    let mut columns: BTreeMap<&'static str, ColumnStats> = BTreeMap::new();
    let (mut min_t, mut max_t): (Option<i64>, Option<i64>) = (None, None);
    let mut unknown: std::collections::BTreeSet<String> = Default::default();
    for rg in meta.row_groups() {
        for chunk in rg.columns() {
            let name = chunk.column_descr().name();
            if name == "time" {
                if let Some(Statistics::Int64(s)) = chunk.statistics() {
                    min_t = match (min_t, s.min_opt()) {
                        (a, Some(&b)) => Some(a.map_or(b, |a| a.min(b))),
                        (a, None) => a,
                    };
                    max_t = match (max_t, s.max_opt()) {
                        (a, Some(&b)) => Some(a.map_or(b, |a| a.max(b))),
                        (a, None) => a,
                    };
                }
                continue;
            }
            if !with_values || unknown.contains(name) {
                continue;
            }
            let (Some(ty), Some(name)) = (types.get(name), crate::known_column(name)) else { continue };
            let (lo, hi, nulls) = match (ty, chunk.statistics()) {
                (ColumnType::U32, Some(Statistics::Int32(s))) => (
                    s.min_opt().map(|&v| Stat::U64(u64::from(v as u32))),
                    s.max_opt().map(|&v| Stat::U64(u64::from(v as u32))),
                    s.null_count_opt(),
                ),
                (ColumnType::U64, Some(Statistics::Int64(s))) => {
                    (s.min_opt().map(|&v| Stat::U64(v as u64)), s.max_opt().map(|&v| Stat::U64(v as u64)), s.null_count_opt())
                }
                (ColumnType::Utf8, Some(Statistics::ByteArray(s))) if s.min_is_exact() && s.max_is_exact() => (
                    s.min_opt().and_then(|v| v.as_utf8().ok()).map(|v| Stat::Str(v.to_owned())),
                    s.max_opt().and_then(|v| v.as_utf8().ok()).map(|v| Stat::Str(v.to_owned())),
                    s.null_count_opt(),
                ),
                _ => {
                    // A row group without usable statistics: nothing known of the column.
                    unknown.insert(name.to_owned());
                    columns.remove(name);
                    continue;
                }
            };
            let first = !columns.contains_key(name);
            let c = columns.entry(name).or_default();
            c.min = match (c.min.take(), lo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            c.max = match (c.max.take(), hi) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            // Known only if every row group says.
            c.nulls = if first { nulls } else { c.nulls.zip(nulls).map(|(a, b)| a + b) };
        }
    }
    (min_t, max_t, columns)
}

fn entry_from_footer(
    root: &Path,
    relative: &Path,
    (table, rollup): (Table, Option<RollupLevel>),
    zone: Option<String>,
    granularity: Granularity,
    period_start_us: i64,
    index: impl FnOnce(&Path) -> Option<value_index::Summary>,
) -> Result<Entry, CatalogError> {
    let absolute = root.join(relative);
    let (meta, bytes) = footer(&absolute)?;
    let run = zone.is_none();
    let zone = if run { None } else { kv(&meta, keys::ZONE).map(str::to_owned).or(zone) };
    let (min_time_us, max_time_us, columns) = column_stats(&meta, table, !run);
    let index = if run || rollup.is_some() { None } else { index(&absolute) };
    Ok(Entry {
        path: catalog_path(relative),
        table: table_dir_name(table, rollup).to_owned(),
        zone,
        period: period_name(granularity).to_owned(),
        period_start_us,
        min_time_us,
        max_time_us,
        rows: meta.file_metadata().num_rows().max(0) as u64,
        bytes,
        columns,
        index,
    })
}

/// The summary of the value index beside the data file at `data`, if one is there, intact
/// and describing the file as it is (anything else is no index: never trusted).
fn index_summary(data: &Path) -> Option<value_index::Summary> {
    let side = archive_layout::side_file_of(data)?;
    match value_index::SideFile::read(&side) {
        Ok(Some(f)) if f.describes(data).unwrap_or(false) => Some(f.catalog_summary()),
        Ok(Some(_)) => {
            tracing::warn!(side = %side.display(), "a value index that does not describe its data file: ignored");
            None
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "a value index that cannot be read: ignored");
            None
        }
    }
}

/// The entry of a published zone file, from its footer (its zone from the footer, where a
/// long name's directory holds only a bounded form).
pub fn entry_of_file(root: &Path, path: &ParquetFilePath) -> Result<Entry, CatalogError> {
    let k = &path.key;
    let dataset = (k.table, k.rollup);
    entry_from_footer(root, &path.relative_path(), dataset, Some(k.zone.clone()), k.granularity, k.start_us, index_summary)
}

/// [`entry_of_file`] with `index` as its value index's summary, the side file not read (its
/// writer has the summary at hand, or the caller wants none).
pub fn entry_of_file_with(
    root: &Path,
    path: &ParquetFilePath,
    index: Option<value_index::Summary>,
) -> Result<Entry, CatalogError> {
    let k = &path.key;
    let dataset = (k.table, k.rollup);
    entry_from_footer(root, &path.relative_path(), dataset, Some(k.zone.clone()), k.granularity, k.start_us, |_| index)
}

/// The entry of a flush run, from its footer.
pub fn entry_of_run(root: &Path, run: &RunPath) -> Result<Entry, CatalogError> {
    entry_from_footer(root, &run.relative_path(), (run.key.table, None), None, run.key.granularity, run.key.start_us, |_| None)
}

/// A run's zones with their rows and time ranges, from its footer; `None` for a run written
/// before runs recorded them (format version 3).
pub fn run_zone_rows(path: &Path) -> Result<Option<Vec<ZoneRowRange>>, CatalogError> {
    let (meta, _) = footer(path)?;
    match kv(&meta, keys::ZONE_ROWS) {
        None => Ok(None),
        Some(text) => ZoneRowRange::parse(text).map(Some).ok_or_else(|| CatalogError::Corrupt {
            path: path.to_owned(),
            reason: format!("{} is not a list of zone row ranges", keys::ZONE_ROWS),
        }),
    }
}

/// Every live zone file, rollup file and run of the archive at `root`, from their footers:
/// what a catalog of it holds.
pub fn scan_archive(root: &Path) -> Result<Vec<Entry>, CatalogError> {
    let mut out = Vec::new();
    for table in Table::ALL {
        let mut files = list_table(root, table, |_| true, |_| true)?;
        for level in RollupLevel::ALL.into_iter().filter(|_| table.has_rollups()) {
            files.extend(list_rollup(root, table, level, |_| true, |_| true)?);
        }
        for f in files {
            let relative = f.path.strip_prefix(root).map(Path::to_owned).unwrap_or_else(|_| f.path.clone());
            let zone = f.dir.zone().unwrap_or_default();
            let dataset = (table, f.dir.rollup);
            out.push(entry_from_footer(root, &relative, dataset, Some(zone), f.dir.granularity, f.dir.start_us, index_summary)?);
        }
        for r in list_runs(root, table, |_, _| true)? {
            out.push(entry_of_run(root, &r.run)?);
        }
    }
    Ok(out)
}

/// Where the catalog and the files differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The catalog names a file that is not there.
    Missing {
        /// The file (relative).
        path: String,
    },
    /// A file is there that the catalog does not name.
    Unlisted {
        /// The file (relative).
        path: String,
    },
    /// The catalog's entry says other than the file's footer.
    Differs {
        /// The file (relative).
        path: PathBuf,
        /// The fields that differ.
        fields: Vec<&'static str>,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing { path } => write!(f, "missing: the catalog names {path}, which is not there"),
            Difference::Unlisted { path } => write!(f, "unlisted: {path} is there, the catalog does not name it"),
            Difference::Differs { path, fields } => write!(f, "differs: {}: {}", path.display(), fields.join(", ")),
        }
    }
}

/// Compares the catalog of the archive at `root` with its files (reading every footer);
/// `None` if it has no catalog.
pub fn check(root: &Path) -> Result<Option<Vec<Difference>>, CatalogError> {
    let Some(snapshot) = Snapshot::read(root)? else { return Ok(None) };
    let disk: BTreeMap<String, Entry> = scan_archive(root)?.into_iter().map(|e| (e.path.clone(), e)).collect();
    let mut out = Vec::new();
    for entry in snapshot.entries() {
        match disk.get(&entry.path) {
            None => out.push(Difference::Missing { path: entry.path.clone() }),
            Some(found) => {
                let mut fields = Vec::new();
                let checks: [(&'static str, bool); 9] = [
                    ("table", found.table == entry.table),
                    ("zone", found.zone == entry.zone),
                    ("period", found.period == entry.period && found.period_start_us == entry.period_start_us),
                    ("min_time", found.min_time_us == entry.min_time_us),
                    ("max_time", found.max_time_us == entry.max_time_us),
                    ("rows", found.rows == entry.rows),
                    ("bytes", found.bytes == entry.bytes),
                    ("columns", found.columns == entry.columns),
                    (
                        "index",
                        match (&entry.index, &found.index) {
                            (Some(catalogued), Some(found)) => catalogued.agrees_with(found),
                            (catalogued, found) => catalogued == found,
                        },
                    ),
                ];
                for (name, same) in checks {
                    if !same {
                        fields.push(name);
                    }
                }
                if !fields.is_empty() {
                    out.push(Difference::Differs { path: PathBuf::from(&entry.path), fields });
                }
            }
        }
    }
    for path in disk.keys() {
        if snapshot.get(path).is_none() {
            out.push(Difference::Unlisted { path: path.clone() });
        }
    }
    Ok(Some(out))
}

//! The value index of each raw zone file the archiver publishes (`value_index` crate: key
//! sets and the rows of each measured column's extreme tails), written after the data file is
//! in place and before the catalog edit that publishes it, so the catalog entry carries its
//! summary. A crash in between leaves a side file no catalog entry names (the repeat rewrites
//! or keeps it; `archiver check` names a side file whose data file is gone). Side files are
//! deleted with their data files ([`crate::parquet_file::remove_data_file`]). This module
//! decides nothing about which files exist; rollup files and runs get no side file.

use std::path::Path;

use archive_layout::ParquetFilePath;
use catalog::Entry;
use value_index::SideFile;

use crate::ArchiverError;

/// Whether the data file was just written, or is being catalogued again (a repeat after a
/// crash), where a side file describing it may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Just published: any side file there is rebuilt.
    Now,
    /// Published before: a side file that describes it is kept.
    Before,
}

/// Writes the side file of the published raw zone file `path` (keeping one that describes it
/// if `written` is [`Written::Before`]); returns its summary (`None`: the table has no
/// indexed column, or `path` is a rollup's).
pub fn write_side_file(
    root: &Path,
    path: &ParquetFilePath,
    written: Written,
) -> Result<Option<value_index::Summary>, ArchiverError> {
    if path.key.rollup.is_some() {
        return Ok(None);
    }
    let data = path.absolute_path(root);
    let side_path = path.side_file_path(root);
    if written == Written::Before
        && let Ok(Some(existing)) = SideFile::read(&side_path)
        && existing.describes(&data).unwrap_or(false)
    {
        return Ok(Some(existing.catalog_summary()));
    }
    let Some(side) = value_index::build_side_file(path.key.table, &data)? else { return Ok(None) };
    write_built(root, path, &side)
}

/// Writes the side file `side` of `path`; its summary.
fn write_built(root: &Path, path: &ParquetFilePath, side: &SideFile) -> Result<Option<value_index::Summary>, ArchiverError> {
    value_index::write_side_file(side, &path.side_file_path(root), &path.side_file_temp_path(root))?;
    Ok(Some(side.catalog_summary()))
}

/// The catalog entry of the published zone file `path`, its side file written first when
/// `indexes` (the entry then carries the index summary, from the build: the side file is not
/// read back). An index is optional: one that cannot be built or written is logged and left
/// out (any side file of that name deleted), and the file is catalogued without it.
pub fn entry_with_index(root: &Path, path: &ParquetFilePath, indexes: bool, written: Written) -> Result<Entry, ArchiverError> {
    entry_with(root, path, indexes, || write_side_file(root, path, written))
}

/// The catalog entry of `path`, with the summary `side` gives when `indexes` (see
/// [`entry_with_index`]: an index that cannot be had is left out).
fn entry_with(
    root: &Path,
    path: &ParquetFilePath,
    indexes: bool,
    side: impl FnOnce() -> Result<Option<value_index::Summary>, ArchiverError>,
) -> Result<Entry, ArchiverError> {
    if !indexes {
        return Ok(catalog::entry_of_file(root, path)?);
    }
    let summary = match side() {
        Ok(summary) => summary,
        Err(e) => {
            tracing::warn!(error = %e, file = %path.relative_path().display(), "no value index for this file");
            crate::parquet_file::remove_durably(&path.side_file_path(root))?;
            None
        }
    };
    Ok(catalog::entry_of_file_with(root, path, summary)?)
}

/// [`entry_with_index`] of a raw zone file just written whose rows `streamed` saw as they
/// were written: its side file is made from them, without reading the file again but for its
/// footer. Where that fails (rows other than announced), it is built from the file as
/// [`entry_with_index`] does; `streamed` is `None` where indexes are off or the table has no
/// indexed column.
pub fn entry_with_streamed_index(
    root: &Path,
    path: &ParquetFilePath,
    indexes: bool,
    streamed: Option<value_index::StreamedIndex>,
) -> Result<Entry, ArchiverError> {
    let Some(streamed) = streamed.filter(|_| path.key.rollup.is_none()) else {
        return entry_with_index(root, path, indexes, Written::Now);
    };
    entry_with(root, path, indexes, || match streamed.finish(&path.absolute_path(root)) {
        Ok(side) => write_built(root, path, &side),
        Err(e) => {
            tracing::warn!(error = %e, file = %path.relative_path().display(), "value index built from the file instead");
            write_side_file(root, path, Written::Now)
        }
    })
}

/// What `archiver check` finds of the side files.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SideFileCheck {
    /// Raw zone files of indexed tables with no side file (indexes were off, or a crash).
    pub missing: Vec<String>,
    /// Side files that cannot be read (damaged, another version), with why.
    pub unreadable: Vec<(String, String)>,
    /// Side files that describe another file than their data file is now.
    pub stale: Vec<String>,
    /// Side files whose data file is gone.
    pub orphans: Vec<String>,
    /// Side files that describe their data file.
    pub good: usize,
}

/// Looks at the side file of every raw zone file of an indexed table in the archive at
/// `root` (from their footers: `catalog::scan_archive`), and for side files whose data file
/// is gone (walking the table directories). Paths are relative to `root`.
pub fn check_side_files(root: &Path) -> Result<SideFileCheck, ArchiverError> {
    let mut out = SideFileCheck::default();
    for path in indexed_data_files(root)? {
        let data = path.absolute_path(root);
        let side = path.side_file_path(root);
        let rel = path.relative_path().display().to_string();
        match SideFile::read(&side) {
            Ok(None) => out.missing.push(rel),
            Ok(Some(f)) => match f.describes(&data) {
                Ok(true) => out.good += 1,
                Ok(false) => out.stale.push(rel),
                Err(e) => out.unreadable.push((rel, e.to_string())),
            },
            Err(e) => out.unreadable.push((rel, e.to_string())),
        }
    }
    for side in side_files_under(root)? {
        let data = side.with_file_name(format!(
            "{}.parquet",
            side.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix('_')?.strip_suffix(".vidx")).unwrap_or("")
        ));
        if !data.is_file() {
            out.orphans.push(side.strip_prefix(root).unwrap_or(&side).display().to_string());
        }
    }
    Ok(out)
}

/// Writes every missing, unreadable or stale side file and deletes orphans (the caller holds
/// the archive's lock); returns the side files written and the files whose index could not
/// be built (named, with why; their side files deleted, so none is left wrong).
pub fn rebuild_side_files(root: &Path) -> Result<(usize, Vec<(String, String)>), ArchiverError> {
    let found = check_side_files(root)?;
    for orphan in &found.orphans {
        crate::parquet_file::remove_durably(&root.join(orphan))?;
    }
    let mut written = 0;
    let mut failed = Vec::new();
    for path in indexed_data_files(root)? {
        match write_side_file(root, &path, Written::Before) {
            Ok(_) => written += 1,
            Err(e) => {
                crate::parquet_file::remove_durably(&path.side_file_path(root))?;
                failed.push((path.relative_path().display().to_string(), e.to_string()));
            }
        }
    }
    Ok((written, failed))
}

/// The live raw zone files of tables with indexed columns.
fn indexed_data_files(root: &Path) -> Result<Vec<ParquetFilePath>, ArchiverError> {
    let mut out = Vec::new();
    for e in catalog::scan_archive(root)? {
        if e.is_run() || e.table().is_none_or(|t| t.indexed_columns().next().is_none()) {
            continue;
        }
        let Ok(path) = ParquetFilePath::parse_relative(Path::new(&e.path)) else { continue };
        if path.key.rollup.is_none() {
            out.push(path);
        }
    }
    Ok(out)
}

/// Every side file (`_*.vidx`) under the table directories of `root`.
fn side_files_under(root: &Path) -> Result<Vec<std::path::PathBuf>, ArchiverError> {
    let mut out = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for table in archive_layout::Table::ALL {
        dirs.push(root.join(table.name()));
    }
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ArchiverError::Io { what: "list", path: dir, source }),
        };
        for e in entries {
            let e = e.map_err(|source| ArchiverError::Io { what: "list", path: dir.clone(), source })?;
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if name.starts_with('_') && name.ends_with(".vidx") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

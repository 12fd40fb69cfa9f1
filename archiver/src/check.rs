//! `archiver check`: compares the archive's catalog with its files and says what differs,
//! and names the value indexes (side files) that are damaged, stale or left without their
//! data file; with `--rebuild`, rewrites those side files (and writes missing ones), deletes
//! the orphans, then replaces the catalog with one built from the files. Reads every file's
//! footer and side file; writes nothing but side files and the catalog, and only under the
//! archive's lock.

use std::io::Write;
use std::path::Path;

use crate::ArchiverError;
use crate::archive_writer::{ArchiveWriter, WriterOptions};

/// Checks (or rebuilds, then checks) the catalog of the archive at `root`, writing one line
/// per difference and a summary to `out`; returns whether the catalog matches the files.
pub fn run(root: &Path, rebuild: bool, out: &mut dyn Write) -> Result<bool, ArchiverError> {
    let io = |source| ArchiverError::Io { what: "write", path: "standard output".into(), source };
    if !root.is_dir() {
        return Err(ArchiverError::Config(format!("archive {} does not exist", root.display())));
    }
    if rebuild {
        // Opening the writer takes the lock and finishes whatever a crash left, so the
        // catalog is built from files at a commit point.
        let mut writer = ArchiveWriter::open(root, WriterOptions::default())?;
        let (written, failed) = crate::side_files::rebuild_side_files(root)?;
        for (path, why) in &failed {
            writeln!(out, "value index not built: of {path}: {why}").map_err(io)?;
        }
        writeln!(out, "{written} value indexes written or kept, {} could not be built", failed.len()).map_err(io)?;
        writer.rebuild_catalog()?;
    }
    let Some(differences) = catalog::check(root)? else {
        writeln!(
            out,
            "no catalog: {} has none yet (the archiver builds it when it starts; or run `archiver check --rebuild`)",
            root.display()
        )
        .map_err(io)?;
        return Ok(false);
    };
    for d in &differences {
        writeln!(out, "{d}").map_err(io)?;
    }
    let sides = crate::side_files::check_side_files(root)?;
    for (path, why) in &sides.unreadable {
        writeln!(out, "value index unreadable: of {path}: {why}").map_err(io)?;
    }
    for path in &sides.stale {
        writeln!(out, "value index stale: of {path} (it describes another file)").map_err(io)?;
    }
    for path in &sides.orphans {
        writeln!(out, "value index orphaned: {path} (its data file is gone)").map_err(io)?;
    }
    let bad_sides = sides.unreadable.len() + sides.stale.len() + sides.orphans.len();
    writeln!(
        out,
        "value indexes: {} describe their files, {} files have none, {bad_sides} to rewrite or delete{}",
        sides.good,
        sides.missing.len(),
        if bad_sides + sides.missing.len() > 0 {
            " (`archiver check --rebuild` writes them; dq never uses a bad one)"
        } else {
            ""
        }
    )
    .map_err(io)?;
    let entries = catalog::Snapshot::read(root)?.map_or(0, |s| s.len());
    if differences.is_empty() {
        writeln!(out, "the catalog's {entries} entries match the files").map_err(io)?;
    } else {
        writeln!(out, "{} differences between the catalog ({entries} entries) and the files; `archiver check --rebuild` rebuilds it from the files", differences.len()).map_err(io)?;
    }
    Ok(differences.is_empty() && bad_sides == 0)
}

//! `archiver check`: compares the archive's catalog with its files and says what differs;
//! with `--rebuild`, replaces the catalog with one built from the files. Reads every file's
//! footer; writes nothing but the catalog, and only under the archive's lock.

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
    let entries = catalog::Snapshot::read(root)?.map_or(0, |s| s.len());
    if differences.is_empty() {
        writeln!(out, "the catalog's {entries} entries match the files").map_err(io)?;
    } else {
        writeln!(out, "{} differences between the catalog ({entries} entries) and the files; `archiver check --rebuild` rebuilds it from the files", differences.len()).map_err(io)?;
    }
    Ok(differences.is_empty())
}

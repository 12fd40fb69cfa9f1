//! The flush journal: how a set of files becomes visible as one unit, and how a flush that a
//! failure or a crash interrupted is finished or undone.
//!
//! `_archiver/flush.journal` lists, for one flush, the log segment the flushed rows are held
//! up to (`through N`) and every `temporary<TAB>final` path. Its `commit` line is the flush's
//! single commit point:
//! - before it, nothing is visible: an interrupted flush is *rolled back* (journal removed
//!   first, then its temporary files), and its rows are still buffered (a failure) or in the
//!   log (a crash);
//! - after it, the flush is decided: it is *rolled forward* (renames completed, log segments
//!   up to `through` removed, journal removed) by the next flush or at restart, and never
//!   redone. Every step of rolling forward can be repeated.
//!
//! Must not decide what goes into a file, nor touch the log except through `wal::Wal`.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use archive_layout::RunPath;

use crate::ArchiverError;
use crate::parquet_file::sync_dir;

/// Where the journal lives, under the state directory.
pub const JOURNAL_FILE: &str = "flush.journal";

/// One flush's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushJournal {
    root: PathBuf,
    path: PathBuf,
    /// The last log segment whose rows this flush publishes.
    pub through: u64,
    /// (temporary, final) paths relative to the archive root.
    pub pairs: Vec<(PathBuf, PathBuf)>,
}

/// What a journal found on disk says.
#[derive(Debug)]
pub enum JournalState {
    /// Written through its commit line: roll forward.
    Committed(FlushJournal),
    /// Not committed (or torn while being written): roll back.
    Uncommitted(FlushJournal),
}

impl FlushJournal {
    /// A journal for publishing the runs `paths` of the archive at `root`, whose state
    /// directory is `state_dir`, holding rows of log segments up to `through`.
    pub fn new(root: &Path, state_dir: &Path, through: u64, paths: &[RunPath]) -> Self {
        let pairs = paths
            .iter()
            .map(|p| {
                let tmp = p.temp_path(root);
                let rel_tmp = tmp.strip_prefix(root).map(Path::to_owned).unwrap_or(tmp);
                (rel_tmp, p.relative_path())
            })
            .collect();
        Self { root: root.to_owned(), path: state_dir.join(JOURNAL_FILE), through, pairs }
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> ArchiverError + '_ {
        move |source| ArchiverError::Io { what, path: self.path.clone(), source }
    }

    /// Writes the journal (durably). Refuses to replace a journal already there: that one
    /// must be settled first.
    pub fn begin(&self) -> Result<(), ArchiverError> {
        let mut text = format!("through {}\n", self.through);
        for (tmp, fin) in &self.pairs {
            text.push_str(&format!("{}\t{}\n", tmp.display(), fin.display()));
        }
        let mut f = OpenOptions::new().write(true).create_new(true).open(&self.path).map_err(self.io("create"))?;
        f.write_all(text.as_bytes()).map_err(self.io("write"))?;
        f.sync_all().map_err(self.io("fsync"))?;
        sync_dir(self.path.parent().unwrap_or(&self.root))
    }

    /// Appends and fsyncs the commit line: the commit point.
    pub fn commit(&self) -> Result<(), ArchiverError> {
        let mut f = OpenOptions::new().append(true).open(&self.path).map_err(self.io("open"))?;
        f.write_all(b"commit\n").map_err(self.io("write"))?;
        f.sync_all().map_err(self.io("fsync"))
    }

    /// Undoes an uncommitted flush: removes the journal first (so that no later reading can
    /// take it for committed), then the temporary files. If the journal cannot be removed the
    /// error is returned and the temporary files are left for the next attempt.
    pub fn roll_back(&self) -> Result<(), ArchiverError> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ArchiverError::Io { what: "remove", path: self.path.clone(), source }),
        }
        sync_dir(self.path.parent().unwrap_or(&self.root))?;
        for (tmp, _) in &self.pairs {
            let tmp = self.root.join(tmp);
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Harmless litter (a hidden name no reader globs); say so and go on.
                Err(e) => {
                    tracing::warn!(path = %tmp.display(), error = %e, "cannot remove the temporary file of a rolled-back flush")
                }
            }
        }
        Ok(())
    }

    /// Renames every file into place and fsyncs their directories; repeatable.
    pub fn rename_all(&self) -> Result<(), ArchiverError> {
        let mut dirs = BTreeSet::new();
        for (tmp, fin) in &self.pairs {
            let (tmp, fin) = (self.root.join(tmp), self.root.join(fin));
            match fs::rename(&tmp, &fin) {
                Ok(()) => {}
                // Already renamed by an earlier attempt.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && fin.exists() => {}
                Err(source) => return Err(ArchiverError::Io { what: "rename into place", path: fin, source }),
            }
            if let Some(d) = fin.parent() {
                dirs.insert(d.to_owned());
            }
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        Ok(())
    }

    /// Removes the journal once everything it names is done.
    pub fn remove(&self) -> Result<(), ArchiverError> {
        match fs::remove_file(&self.path) {
            Ok(()) => sync_dir(self.path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ArchiverError::Io { what: "remove", path: self.path.clone(), source }),
        }
    }

    /// Reads the journal left in `state_dir`, if any.
    pub fn read(root: &Path, state_dir: &Path) -> Result<Option<JournalState>, ArchiverError> {
        let path = state_dir.join(JOURNAL_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ArchiverError::Io { what: "read", path, source }),
        };
        let mut through = None;
        let mut pairs = Vec::new();
        let mut committed = false;
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("through ") {
                through = n.parse().ok();
            } else if line == "commit" {
                committed = true;
            } else if let Some((tmp, fin)) = line.split_once('\t') {
                pairs.push((PathBuf::from(tmp), PathBuf::from(fin)));
            }
        }
        let journal = Self { root: root.to_owned(), path, through: through.unwrap_or(0), pairs };
        // A commit line is only ever appended to a whole journal (written and fsynced before).
        Ok(Some(match (committed, through) {
            (true, Some(_)) => JournalState::Committed(journal),
            (true, None) => {
                return Err(ArchiverError::Corrupt {
                    path: journal.path,
                    reason: "committed flush journal without its `through` line",
                });
            }
            _ => JournalState::Uncommitted(journal),
        }))
    }
}

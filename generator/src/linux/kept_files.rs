//! The files the Linux source reads, kept open from one sample to the next and read again
//! from their start (`pread` at offset 0): a cgroup or `/proc` file is written by the kernel
//! on each read, so an open one answers afresh, and a read costs one system call instead of
//! an `open`, a `read` and a `close` (on this project's 2-core VM: 3.7 µs against 8.7 µs for
//! `/proc/PID/stat`, 5.4 µs against 12.6 µs for a cgroup file).
//!
//! Owns those file descriptors and nothing else. It must not answer from a file whose object
//! is gone: the kernel's files (procfs, sysfs, cgroup v1 and v2) fail a read once their
//! process or cgroup is gone (`ESRCH`, `ENODEV`), and a file on any other file system (a
//! composed tree, tests, the benchmark) is trusted only while its directory is as it was
//! when the file was opened (same inode and modification time, looked up once a directory
//! and sample: a file removed, created or renamed in it changes that time, one rewritten in
//! place does not and needs no check); either way the path is opened again. Because the
//! kernel stamps directories with a clock of a few milliseconds, a change right after
//! another could leave that time as it was: a plain file is kept open only once its
//! directory has not changed for [`PLAIN_DIR_SETTLED_SECS`] seconds (before that it is
//! opened, read and closed at each read). It must not keep a file that [`KEEP_UNREAD_SAMPLES`] samples in a
//! row did not read (a zone or process that went away leaves nothing open after that), nor
//! more files than its budget (half the process's open-file limit): beyond it, files are
//! opened, read and closed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::cgroup::{FlatFile, MAX_FILE_BYTES};

/// `f_type` of the file systems whose files the kernel writes on each read and whose reads
/// fail once their object is gone: procfs, sysfs, cgroup v1, cgroup v2.
const KERNEL_FILE_SYSTEMS: [u64; 4] = [0x9fa0, 0x6265_6572, 0x0027_e0eb, 0x6367_7270];

/// A file no sample read for this many samples in a row is closed: files read once every
/// ten samples (a zone's limits, a process's cgroups) stay open between their reads.
pub const KEEP_UNREAD_SAMPLES: u64 = 10;

/// A plain file system's file is kept open only once its directory's modification time is
/// at least this many seconds old (see the module's paragraph).
pub const PLAIN_DIR_SETTLED_SECS: i64 = 2;

/// At most this many files are kept open, whatever the open-file limit.
pub const MAX_KEPT_FILES: usize = 32_768;

/// The source's open files, shared by its readers (a clone is the same set).
#[derive(Debug, Clone)]
pub struct KeptFiles(Arc<Mutex<Kept>>);

/// Paths hashed as bytes (`Path`'s own `Hash` walks its components, and SipHash over
/// 100-byte cgroup paths was a tenth of the source's user time).
type ByPath<V> = std::collections::HashMap<OsString, V, foldhash::fast::RandomState>;

/// A directory of a plain file system as it was (see the module's paragraph).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirState {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
}

#[derive(Debug)]
struct Kept {
    files: ByPath<KeptFile>,
    /// Directories looked up in this sample (`None`: gone).
    dirs: ByPath<Option<DirState>>,
    /// Where files are read into (reused: one allocation a read, for the text).
    buffer: Vec<u8>,
    /// The most files kept open.
    budget: usize,
    /// The sample being taken (see [`KeptFiles::end_sample`]).
    sample: u64,
}

#[derive(Debug)]
struct KeptFile {
    file: File,
    /// `None` on a kernel file system (its reads fail once its object is gone); else its
    /// directory as it was before the file was opened.
    plain_dir: Option<DirState>,
    /// The last sample that read it.
    read_in: u64,
}

impl KeptFiles {
    /// An empty set keeping at most `budget` files open.
    pub fn new(budget: usize) -> Self {
        Self(Arc::new(Mutex::new(Kept {
            files: ByPath::default(),
            dirs: ByPath::default(),
            buffer: Vec::new(),
            budget,
            sample: 0,
        })))
    }

    /// An empty set whose budget is half the process's open-file limit (at most
    /// [`MAX_KEPT_FILES`]), after raising that limit's soft value to its hard one (at most
    /// 65,536), as Go programs such as node_exporter do at start: systemd starts services
    /// with a soft limit of 1,024 and a hard one of 524,288.
    pub fn with_open_file_limit() -> Self {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let hard = limit.maximum.unwrap_or(u64::MAX).min(65_536);
        let soft = match limit.current {
            Some(soft) if soft < hard => {
                // Not raised (a container's seccomp profile, say): the soft limit stands.
                match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: limit.maximum }) {
                    Ok(()) => hard,
                    Err(_) => soft,
                }
            }
            Some(soft) => soft,
            None => hard,
        };
        Self::new(usize::try_from(soft / 2).unwrap_or(MAX_KEPT_FILES).min(MAX_KEPT_FILES))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file at `path`, whole (up to [`MAX_FILE_BYTES`]; bytes that are not UTF-8 become
    /// U+FFFD), read until a read returns nothing; `None` if it cannot be opened or read.
    /// Kept open for the next sample while the budget allows.
    pub fn text(&self, path: &Path) -> Option<String> {
        self.read(path, Ends::AtEmptyRead)
    }

    /// [`text`](Self::text) of a file the kernel writes whole in each read (a cgroup
    /// interface file; a `/proc` file made by `single_open`: `PID/stat`, `PID/cgroup`,
    /// `pressure/*`, `loadavg`), or a plain file: a read shorter than asked is its end, which
    /// saves a read a file. Not for a file of many records (`mountinfo`, `vmstat`,
    /// `net/dev`), which the kernel may hand out in short reads before its end.
    pub fn text_whole_in_one_read(&self, path: &Path) -> Option<String> {
        self.read(path, Ends::AtShortRead)
    }

    fn read(&self, path: &Path, ends: Ends) -> Option<String> {
        let mut guard = self.lock();
        let Kept { files, dirs, buffer, budget, sample } = &mut *guard;
        let key: &OsStr = path.as_os_str();
        if let Some(k) = files.get_mut(key) {
            k.read_in = *sample;
            // A file of a plain file system removed or replaced would still read its old
            // bytes: trusted while its directory is unchanged.
            let current = match k.plain_dir {
                None => true,
                Some(was) => dir_state(dirs, path) == Some(was),
            };
            if current && read_from_start(&k.file, buffer, ends).is_some() {
                return Some(text_of(buffer));
            }
            files.remove(key);
        }
        let file = File::open(path).ok()?;
        read_from_start(&file, buffer, ends)?;
        if files.len() < *budget {
            if rustix::fs::fstatfs(&file).is_ok_and(|s| KERNEL_FILE_SYSTEMS.contains(&(s.f_type as u64))) {
                files.insert(key.to_owned(), KeptFile { file, plain_dir: None, read_in: *sample });
            } else if let Some(dir) = dir_state(dirs, path).filter(|d| settled(*d)) {
                // Looked up after the open: a change in between is too recent to be settled.
                files.insert(key.to_owned(), KeptFile { file, plain_dir: Some(dir), read_in: *sample });
            }
        }
        Some(text_of(buffer))
    }

    /// The single number in the file at `path`; `None` if missing, unparsable, `max`, or
    /// cgroup v1's "no limit".
    pub fn number(&self, path: &Path) -> Option<u64> {
        super::cgroup::parse_limit(&self.text(path)?)
    }

    /// The flat-keyed file at `path` (`memory.stat`, `cpu.stat`).
    pub fn flat(&self, path: &Path) -> Option<FlatFile> {
        self.text(path).map(FlatFile::from)
    }

    /// Ends a sample: closes every file that this sample and the
    /// [`KEEP_UNREAD_SAMPLES`]` - 1` before it did not read.
    pub fn end_sample(&self) {
        let mut kept = self.lock();
        let sample = kept.sample;
        kept.files.retain(|_, k| sample - k.read_in < KEEP_UNREAD_SAMPLES);
        kept.dirs.clear();
        kept.sample += 1;
    }

    /// The paths of the files open, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.lock().files.keys().map(PathBuf::from).collect();
        paths.sort();
        paths
    }
}

/// The directory of `path` as it is now (looked up once a sample); `None` if it is gone.
fn dir_state(dirs: &mut ByPath<Option<DirState>>, path: &Path) -> Option<DirState> {
    let dir = path.parent()?;
    if let Some(state) = dirs.get(dir.as_os_str()) {
        return *state;
    }
    let state = std::fs::metadata(dir).ok().map(|m| DirState {
        dev: m.dev(),
        ino: m.ino(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    });
    dirs.insert(dir.as_os_str().to_owned(), state);
    state
}

/// Whether a plain directory last changed [`PLAIN_DIR_SETTLED_SECS`] or more ago (by the
/// wall clock, which stamps it): a later change gets another time.
fn settled(dir: DirState) -> bool {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(now).is_ok_and(|now| now - dir.mtime >= PLAIN_DIR_SETTLED_SECS)
}

/// Where a file ends (see [`KeptFiles::text_whole_in_one_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// Where a read returns nothing.
    AtEmptyRead,
    /// Where a read returns less than asked.
    AtShortRead,
}

/// Reads `file` from its start to its end (up to [`MAX_FILE_BYTES`]) into `buffer`.
fn read_from_start(file: &File, buffer: &mut Vec<u8>, ends: Ends) -> Option<()> {
    buffer.resize(buffer.capacity().max(4096), 0);
    let mut len = 0;
    loop {
        if len == buffer.len() {
            if len as u64 >= MAX_FILE_BYTES {
                break;
            }
            buffer.resize((len * 2).min(MAX_FILE_BYTES as usize), 0);
        }
        let asked = buffer.len() - len;
        match file.read_at(&mut buffer[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if n < asked && ends == Ends::AtShortRead {
                    break;
                }
            }
            Err(_) => {
                if buffer.capacity() > 64 << 10 {
                    *buffer = Vec::new();
                }
                buffer.clear();
                return None;
            }
        }
    }
    buffer.truncate(len);
    Some(())
}

/// The bytes read as text: bytes that are not UTF-8 (a process name cut by the kernel
/// inside a character, a cgroup named with any bytes) become U+FFFD rather than losing
/// the file. A buffer grown past 64 KiB by a large file is let go.
fn text_of(buffer: &mut Vec<u8>) -> String {
    let text = match std::str::from_utf8(buffer) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(buffer).into_owned(),
    };
    if buffer.capacity() > 64 << 10 {
        *buffer = Vec::new();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dates `dir`'s modification time back, as if it had not changed for a while.
    fn settle(dir: &Path) {
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        File::open(dir).unwrap().set_modified(past).unwrap();
    }

    #[test]
    fn a_kept_file_reads_afresh_and_one_not_read_for_ten_samples_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("cpu.stat"), dir.path().join("memory.stat"));
        std::fs::write(&a, "usage_usec 1\n").unwrap();
        std::fs::write(&b, "anon 1\n").unwrap();
        settle(dir.path());
        let files = KeptFiles::new(10);
        assert_eq!(files.text(&a).as_deref(), Some("usage_usec 1\n"));
        assert_eq!(files.flat(&b).and_then(|f| f.get("anon")), Some(1));
        files.end_sample();
        assert_eq!(files.paths().len(), 2);
        // Rewritten in place (as the kernel's files are on each read): the new bytes.
        std::fs::write(&a, "usage_usec 22\n").unwrap();
        assert_eq!(files.flat(&a).and_then(|f| f.get("usage_usec")), Some(22));
        for _ in 1..KEEP_UNREAD_SAMPLES {
            files.end_sample();
        }
        assert_eq!(files.paths().len(), 2, "the 9 samples since its read did not read memory.stat");
        files.end_sample();
        assert_eq!(files.paths().len(), 1, "10 did: closed");
        assert_eq!(files.paths(), std::slice::from_ref(&a));
        for _ in 0..KEEP_UNREAD_SAMPLES {
            files.end_sample();
        }
        assert!(files.paths().is_empty());
    }

    #[test]
    fn a_removed_or_replaced_file_is_never_read_from_its_old_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("docker-1.scope");
        std::fs::create_dir(&zone).unwrap();
        let path = zone.join("memory.current");
        std::fs::write(&path, "100\n").unwrap();
        let files = KeptFiles::new(10);
        // A directory changed just now: read, not kept (a change within its clock's tick
        // could go unseen).
        assert_eq!(files.number(&path), Some(100));
        assert!(files.paths().is_empty());
        settle(&zone);
        files.end_sample(); // (directories are looked up once a sample)
        assert_eq!(files.number(&path), Some(100));
        assert_eq!(files.paths().len(), 1);
        files.end_sample();
        // The cgroup goes away between two samples: no stale 100.
        std::fs::remove_dir_all(&zone).unwrap();
        assert_eq!(files.number(&path), None);
        assert!(files.paths().is_empty());
        files.end_sample();
        // Back under the same path, then replaced by a rename: the new file each time.
        std::fs::create_dir(&zone).unwrap();
        std::fs::write(&path, "200\n").unwrap();
        settle(&zone);
        assert_eq!(files.number(&path), Some(200));
        assert_eq!(files.paths().len(), 1);
        files.end_sample();
        let new = zone.join("new");
        std::fs::write(&new, "300\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(files.number(&path), Some(300));
        files.end_sample();
        // Rewritten in place, its directory unchanged: read afresh from the kept file.
        settle(&zone);
        assert_eq!(files.number(&path), Some(300));
        std::fs::write(&path, "400\n").unwrap();
        assert_eq!(files.number(&path), Some(400));
        assert_eq!(files.paths().len(), 1);
    }

    #[test]
    fn a_process_that_exited_is_not_read_from_its_kept_stat() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let files = KeptFiles::new(10);
        assert!(files.text(&path).is_some_and(|t| t.contains("(sleep)")));
        assert!(
            files.lock().files.get(path.as_os_str()).is_some_and(|k| k.plain_dir.is_none()),
            "procfs is a kernel file system"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(files.text(&path), None, "reaped: the kept descriptor fails and the path is gone");
    }

    #[test]
    fn a_file_of_many_records_is_read_to_its_end_and_a_long_one_past_a_full_read() {
        // smaps: a record per mapping (many KiB for a test binary), handed out by the kernel
        // in reads shorter than asked before its end; stopping at a short read would cut it.
        let files = KeptFiles::new(10);
        let smaps = Path::new("/proc/self/smaps");
        let whole = files.text(smaps).unwrap();
        assert!(whole.len() > 3 * 4096 && whole.ends_with('\n'), "{} bytes", whole.len());
        assert!(files.text_whole_in_one_read(smaps).unwrap().len() < whole.len() / 2);
        // A file longer than one read (8 KiB of a plain file): full reads go on.
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("memory.stat");
        let text: String = (0..600).map(|n| format!("key{n} {n}\n")).collect();
        std::fs::write(&long, &text).unwrap();
        settle(dir.path());
        assert_eq!(files.text_whole_in_one_read(&long).as_deref(), Some(text.as_str()));
        assert_eq!(files.text_whole_in_one_read(&long).as_deref(), Some(text.as_str()), "and again, kept open");
    }

    #[test]
    fn beyond_the_budget_files_are_read_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeptFiles::new(2);
        for n in 0..5 {
            std::fs::write(dir.path().join(n.to_string()), format!("{n}\n")).unwrap();
        }
        settle(dir.path());
        for n in 0..5 {
            assert_eq!(files.number(&dir.path().join(n.to_string())), Some(n));
        }
        assert_eq!(files.paths().len(), 2);
    }

    #[test]
    fn a_file_is_read_up_to_the_bound_and_odd_bytes_survive() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_FILE_BYTES as usize + 10]).unwrap();
        let files = KeptFiles::new(10);
        assert_eq!(files.text(&big).map(|t| t.len()), Some(MAX_FILE_BYTES as usize));
        let odd = dir.path().join("odd");
        std::fs::write(&odd, b"name caf\xc3\nanon 7\n").unwrap();
        let flat = files.flat(&odd).unwrap();
        assert_eq!(flat.get("anon"), Some(7));
    }
}

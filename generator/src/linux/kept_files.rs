//! The files the Linux source reads, kept open from one sample to the next and read again
//! from their start (`pread` at offset 0): a cgroup or `/proc` file is written by the kernel
//! on each read, so an open one answers afresh, and a read costs one system call instead of
//! an `open`, a `read` and a `close` (on this project's 2-core VM: 3.7 µs against 8.7 µs for
//! `/proc/PID/stat`, 5.4 µs against 12.6 µs for a cgroup file).
//!
//! Owns those file descriptors and nothing else. It must not answer from a file whose object
//! is gone: the kernel's files (procfs, sysfs, cgroup v1 and v2) fail a read once their
//! process or cgroup is gone (`ESRCH`, `ENODEV`), and a file on any other file system (a
//! composed tree, tests, the benchmark) is watched with inotify for a change of its link
//! count: a file removed, or replaced by another renamed over it or by its directory made
//! again, loses its name and is dropped (the events are read once a sample, at its first
//! read: a file replaced during a sample is read afresh from the next sample on; one
//! rewritten in place needs nothing). Where it cannot be watched (inotify's limit on
//! watches reached), its link count is looked up at each read. Either way the path is
//! opened again. What neither sees, on a plain file system only: a directory renamed away
//! with its files and another made at its path (the renamed files keep their names). It
//! must not keep a file that [`KEEP_UNREAD_SAMPLES`] samples in a row did not read (a zone
//! or process that went away leaves nothing open after that), nor more files than its
//! budget (half the process's open-file limit): beyond it, files are opened, read and
//! closed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::unix::fs::FileExt;

use rustix::fd::OwnedFd;
use rustix::fs::inotify;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::cgroup::{FlatFile, MAX_FILE_BYTES};

/// `f_type` of the file systems whose files the kernel writes on each read and whose reads
/// fail once their object is gone: procfs, sysfs, cgroup v1, cgroup v2.
const KERNEL_FILE_SYSTEMS: [u64; 4] = [0x9fa0, 0x6265_6572, 0x0027_e0eb, 0x6367_7270];

/// A file no sample read for this many samples in a row is closed: files read once every
/// ten samples (a zone's limits, a process's cgroups) stay open between their reads.
pub const KEEP_UNREAD_SAMPLES: u64 = 10;

/// At most this many files are kept open, whatever the open-file limit.
pub const MAX_KEPT_FILES: usize = 32_768;

/// The source's open files, shared by its readers (a clone is the same set).
#[derive(Debug, Clone)]
pub struct KeptFiles(Arc<Mutex<Kept>>);

/// Paths hashed as bytes (`Path`'s own `Hash` walks its components, and SipHash over
/// 100-byte cgroup paths was a tenth of the source's user time).
type ByPath<V> = std::collections::HashMap<OsString, V, foldhash::fast::RandomState>;

#[derive(Debug)]
struct Kept {
    files: FileTable,
    /// Where files are read into (reused, at its length: one allocation a read, for the
    /// text).
    buffer: Vec<u8>,
    /// The most files kept open.
    budget: usize,
    /// The sample being taken (see [`KeptFiles::end_sample`]).
    sample: u64,
    /// Where a path below a directory is put together (reused).
    joined: PathBuf,
    /// The kept plain files' watch (made when the first is kept).
    watch: Option<Watch>,
    /// The watch of the files read only when modified (made when the first is asked for).
    modified: Option<Watch>,
    /// The sample whose watch events were read.
    events_read_in: Option<u64>,
    /// Reads from files (tests count them).
    #[cfg(test)]
    reads: usize,
}

/// The kept files by path, each in a slot of its own where a [`FileHandle`] finds it again
/// without its path (a cgroup file's is some 100-150 bytes, put together, hashed and
/// compared at each read: 8% of a live sample's CPU on the benchmark's tree by `perf`, with
/// 700 zone files a sample).
#[derive(Debug, Default)]
struct FileTable {
    by_path: ByPath<usize>,
    slots: slab::Slab<KeptFile>,
    /// The id the next file kept gets (a slot is reused; an id never is).
    next_id: u64,
}

/// Names a kept file for [`KeptFiles::parse_whole_in_one_read_below_by`]: its slot and its
/// id there. A file closed since, or another kept in its slot, is not found by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHandle {
    slot: usize,
    id: u64,
}

impl FileTable {
    fn get(&self, key: &OsStr) -> Option<&KeptFile> {
        self.by_path.get(key).map(|&slot| &self.slots[slot])
    }

    fn get_mut(&mut self, key: &OsStr) -> Option<&mut KeptFile> {
        self.by_path.get(key).map(|&slot| &mut self.slots[slot])
    }

    fn contains_key(&self, key: &OsStr) -> bool {
        self.by_path.contains_key(key)
    }

    fn len(&self) -> usize {
        self.by_path.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    fn keys(&self) -> impl Iterator<Item = &OsString> {
        self.by_path.keys()
    }

    fn iter(&self) -> impl Iterator<Item = (&OsString, &KeptFile)> {
        self.by_path.iter().map(|(key, &slot)| (key, &self.slots[slot]))
    }

    /// Keeps `file` at `key` (in place of any kept there) with an id of its own.
    fn insert(&mut self, key: OsString, mut file: KeptFile) {
        file.id = self.next_id;
        self.next_id += 1;
        if let Some(old) = self.by_path.insert(key, self.slots.insert(file)) {
            self.slots.remove(old);
        }
    }

    fn remove(&mut self, key: &OsStr) -> Option<KeptFile> {
        self.by_path.remove(key).map(|slot| self.slots.remove(slot))
    }

    /// The handle of the file kept at `key`.
    fn handle(&self, key: &OsStr) -> Option<FileHandle> {
        self.by_path.get(key).map(|&slot| FileHandle { slot, id: self.slots[slot].id })
    }

    /// The file `handle` names, if it is still kept.
    fn by_handle(&mut self, handle: FileHandle) -> Option<&mut KeptFile> {
        self.slots.get_mut(handle.slot).filter(|k| k.id == handle.id)
    }
}

#[derive(Debug)]
struct KeptFile {
    /// Its id in the [`FileTable`] (given there).
    id: u64,
    file: File,
    /// How it is known to be the file at its path still.
    check: Check,
    /// The last sample that read it.
    read_in: u64,
    /// A file read only when modified ([`KeptFiles::parse_when_modified_below`]): its text
    /// as last read, valid while the watch descriptor kept with it has had no event.
    unmodified_text: Option<(i32, Box<str>)>,
}

/// How a kept file is known to be the file at its path still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// A kernel file system's: its reads fail once its object is gone.
    Kernel,
    /// A plain file watched under this watch descriptor: an event drops it.
    Watched(i32),
    /// A plain file that could not be watched: its link count is looked up at each read.
    LinkCount,
}

/// An inotify instance watching kept files' inodes: the plain files' for a change of their
/// link count (`IN_ATTRIB`: removed, renamed over) or a move; the files read only when
/// modified for that too and for a modification.
#[derive(Debug)]
struct Watch {
    /// The instance (`None`: it could not be made; every plain file is checked by its link
    /// count, every file read only when modified is read each time).
    fd: Option<OwnedFd>,
    /// The events watched.
    flags: inotify::WatchFlags,
    /// Kept files by watch descriptor (two paths to one inode share one).
    paths: std::collections::HashMap<i32, Vec<OsString>, foldhash::fast::RandomState>,
    /// Where events are read into.
    buffer: Vec<MaybeUninit<u8>>,
}

impl Watch {
    fn new(flags: inotify::WatchFlags) -> Self {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok();
        Self { fd, flags, paths: Default::default(), buffer: vec![MaybeUninit::uninit(); 16 << 10] }
    }

    /// The watch of the kept plain files.
    fn plain() -> Self {
        Self::new(inotify::WatchFlags::ATTRIB | inotify::WatchFlags::MOVE_SELF | inotify::WatchFlags::DELETE_SELF)
    }

    /// The watch of the files read only when modified.
    fn modified() -> Self {
        Self::new(
            inotify::WatchFlags::MODIFY
                | inotify::WatchFlags::ATTRIB
                | inotify::WatchFlags::MOVE_SELF
                | inotify::WatchFlags::DELETE_SELF,
        )
    }

    /// Watches the inode at `path` for `key`; its watch descriptor.
    fn add(&mut self, path: &Path, key: &OsStr) -> Option<i32> {
        let wd = inotify::add_watch(self.fd.as_ref()?, path, self.flags).ok()?;
        self.paths.entry(wd).or_default().push(key.to_owned());
        Some(wd)
    }

    /// Watches the plain file just opened at `path` as `key`; its check.
    fn watch(&mut self, path: &Path, file: &File, key: &OsStr) -> Option<Check> {
        let flags = self.flags;
        let wd = self.fd.as_ref().and_then(|fd| inotify::add_watch(fd, path, flags).ok());
        // Replaced between the open and the watch, the path's new inode is watched and this
        // one has no name: not kept (read again at the next read).
        if !has_a_name(file) {
            if let Some(wd) = wd {
                self.forget_if_unused(wd);
            }
            return None;
        }
        let Some(wd) = wd else { return Some(Check::LinkCount) };
        self.paths.entry(wd).or_default().push(key.to_owned());
        Some(Check::Watched(wd))
    }

    /// Removes the watch `wd` where no kept file uses it.
    fn forget_if_unused(&mut self, wd: i32) {
        if self.paths.get(&wd).is_none_or(Vec::is_empty) {
            self.paths.remove(&wd);
            if let Some(fd) = &self.fd
                && let Err(e) = inotify::remove_watch(fd, wd)
            {
                // The kernel removed it already (its inode freed): nothing left to do.
                tracing::trace!(wd, error = %e, "inotify watch already gone");
            }
        }
    }

    /// Forgets `key`, kept under `wd`.
    fn forget(&mut self, wd: i32, key: &OsStr) {
        if let Some(keys) = self.paths.get_mut(&wd) {
            keys.retain(|k| k != key);
        }
        self.forget_if_unused(wd);
    }

    /// The kept paths whose inodes had an event since the last call (every watched path if
    /// events were lost); their watches are removed.
    fn changed(&mut self) -> Vec<OsString> {
        let Some(fd) = &self.fd else { return Vec::new() };
        let mut changed_wds = Vec::new();
        let mut overflow = false;
        let mut reader = inotify::Reader::new(fd, &mut self.buffer);
        // Bounded: the events queued now (the reader stops at EAGAIN).
        while let Ok(event) = reader.next() {
            if event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW) {
                overflow = true;
            } else {
                changed_wds.push(event.wd());
            }
        }
        if overflow {
            changed_wds = self.paths.keys().copied().collect();
        }
        let mut changed = Vec::new();
        for wd in changed_wds {
            if let Some(keys) = self.paths.remove(&wd) {
                changed.extend(keys);
                self.forget_if_unused(wd);
            }
        }
        changed
    }
}

/// Whether an open plain file still has a name (a link count above zero).
fn has_a_name(file: &File) -> bool {
    rustix::fs::fstat(file).is_ok_and(|st| st.st_nlink > 0)
}

impl KeptFiles {
    /// An empty set keeping at most `budget` files open.
    pub fn new(budget: usize) -> Self {
        Self(Arc::new(Mutex::new(Kept {
            files: FileTable::default(),
            buffer: Vec::new(),
            budget,
            sample: 0,
            joined: PathBuf::new(),
            watch: None,
            modified: None,
            events_read_in: None,
            #[cfg(test)]
            reads: 0,
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
        self.lock().read(path, Ends::AtEmptyRead, str::to_owned)
    }

    /// [`text`](Self::text) handed to `parse` in the read buffer, without a copy of its own.
    /// `parse` runs with the set locked: it must not read through these files.
    pub fn parse<T>(&self, path: &Path, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.lock().read(path, Ends::AtEmptyRead, parse)
    }

    /// [`text`](Self::text) of a file the kernel writes whole in each read (a cgroup
    /// interface file; a `/proc` file made by `single_open`: `PID/stat`, `PID/cgroup`,
    /// `pressure/*`, `loadavg`), or a plain file: a read shorter than asked is its end, which
    /// saves a read a file. Not for a file of many records (`mountinfo`, `vmstat`,
    /// `net/dev`), which the kernel may hand out in short reads before its end.
    pub fn text_whole_in_one_read(&self, path: &Path) -> Option<String> {
        self.parse_whole_in_one_read(path, str::to_owned)
    }

    /// [`text_whole_in_one_read`](Self::text_whole_in_one_read) handed to `parse` in the
    /// read buffer (as [`parse`](Self::parse)).
    pub fn parse_whole_in_one_read<T>(&self, path: &Path, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.lock().read(path, Ends::AtShortRead, parse)
    }

    /// [`parse_whole_in_one_read`](Self::parse_whole_in_one_read) of the file `rel` below
    /// `dir`, without building its path anew at each read.
    pub fn parse_whole_in_one_read_below<T>(&self, dir: &Path, rel: &str, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.below(dir, rel, |kept, path| kept.read(path, Ends::AtShortRead, parse))
    }

    /// [`parse_whole_in_one_read_below`](Self::parse_whole_in_one_read_below) through
    /// `handle`: the file it names is read without its path put together and looked up;
    /// where it names none (its first read, the file closed since, or not kept: the budget),
    /// by its path, and `handle` then names the file kept there. A handle is for one path:
    /// the caller keeps it with the directory and `rel` it was had for.
    pub fn parse_whole_in_one_read_below_by<X: FileText + ?Sized, T>(
        &self,
        handle: &mut Option<FileHandle>,
        dir: &Path,
        rel: &str,
        parse: impl FnOnce(&X) -> T,
    ) -> Option<T> {
        self.through(handle, parse, |handle, parse| self.below(dir, rel, |kept, path| kept.read_naming(path, handle, parse)))
    }

    /// [`parse_whole_in_one_read_below_by`](Self::parse_whole_in_one_read_below_by) of the
    /// file at `path`.
    pub fn parse_whole_in_one_read_by<X: FileText + ?Sized, T>(
        &self,
        handle: &mut Option<FileHandle>,
        path: &Path,
        parse: impl FnOnce(&X) -> T,
    ) -> Option<T> {
        self.through(handle, parse, |handle, parse| self.lock().read_naming(path, handle, parse))
    }

    /// `parse` of the file `handle` names; where it names none or its read fails, `by_path`
    /// (a failed read is read again by path, which closes the file if it is gone).
    fn through<X: FileText + ?Sized, T, P: FnOnce(&X) -> T>(
        &self,
        handle: &mut Option<FileHandle>,
        parse: P,
        by_path: impl FnOnce(&mut Option<FileHandle>, P) -> Option<T>,
    ) -> Option<T> {
        match self.read_through(handle, parse) {
            Ok(parsed) => Some(parsed),
            Err(parse) => by_path(handle, parse),
        }
    }

    /// The file `handle` names read and handed to `parse`; `parse` back where it names no
    /// kept file or the read failed.
    fn read_through<X: FileText + ?Sized, T, P: FnOnce(&X) -> T>(&self, handle: &Option<FileHandle>, parse: P) -> Result<T, P> {
        let Some(h) = *handle else { return Err(parse) };
        let mut guard = self.lock();
        let kept = &mut *guard;
        kept.read_events_once_a_sample();
        match kept.read_by_handle(h) {
            Some(len) => Ok(parse_text(&mut kept.buffer, len, parse)),
            None => Err(parse),
        }
    }

    /// [`parse_whole_in_one_read_below`](Self::parse_whole_in_one_read_below) of a file the
    /// kernel reports modifications of to inotify (cgroup v2's `memory.events`, `pids.events`,
    /// `cgroup.events`: "a value change in this file generates a file modified event"): read
    /// only when a modification was reported since its last read, else its text as last read
    /// is handed to `parse` again. The events are read at a sample's first read, and the
    /// kernel may report a change some milliseconds after it (cgroup v2 sends at most one
    /// notification a file each 10 ms, later ones when that time is up): a change in that
    /// window before a sample shows a sample later. A file whose watch cannot
    /// be had (inotify's limits) is read each time.
    pub fn parse_when_modified_below<T>(&self, dir: &Path, rel: &str, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.below(dir, rel, |kept, path| kept.read_when_modified(path, parse))
    }

    /// [`parse_whole_in_one_read_below`](Self::parse_whole_in_one_read_below) of a file
    /// read once in a long while (a process's `cgroup`, read at its first sight and when it
    /// moves): not kept open after the read (a kept file is read as kept).
    pub fn parse_whole_in_one_read_below_unkept<T>(&self, dir: &Path, rel: &str, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.below(dir, rel, |kept, path| kept.read_and_keep(path, Ends::AtShortRead, false, parse))
    }

    /// [`parse_when_modified_below`](Self::parse_when_modified_below) through `handle` (as
    /// [`parse_whole_in_one_read_below_by`](Self::parse_whole_in_one_read_below_by)): the
    /// text as last read of the file it names, while no modification was reported.
    pub fn parse_when_modified_below_by<T>(
        &self,
        handle: &mut Option<FileHandle>,
        dir: &Path,
        rel: &str,
        parse: impl FnOnce(&str) -> T,
    ) -> Option<T> {
        if let Some(h) = *handle {
            let mut guard = self.lock();
            let kept = &mut *guard;
            kept.read_events_once_a_sample();
            let sample = kept.sample;
            if let Some(k) = kept.files.by_handle(h)
                && let Some((_, text)) = &k.unmodified_text
            {
                k.read_in = sample;
                return Some(parse(text));
            }
        }
        self.below(dir, rel, |kept, path| {
            let parsed = kept.read_when_modified(path, parse);
            *handle = kept.files.handle(path.as_os_str());
            parsed
        })
    }

    /// Whether the file `handle` names is one read only when modified (see
    /// [`parse_when_modified_below`](Self::parse_when_modified_below)) with no modification
    /// reported since its last read: its text as last read stands, and so does what the
    /// caller parsed of it then. Counts as a read of it in this sample.
    pub fn unmodified_by(&self, handle: Option<FileHandle>) -> bool {
        let Some(h) = handle else { return false };
        let mut guard = self.lock();
        let kept = &mut *guard;
        kept.read_events_once_a_sample();
        let sample = kept.sample;
        match kept.files.by_handle(h) {
            Some(k) if k.unmodified_text.is_some() => {
                k.read_in = sample;
                true
            }
            _ => false,
        }
    }

    /// `read` of the path of `rel` below `dir`, put together in the set's reused buffer.
    fn below<T>(&self, dir: &Path, rel: &str, read: impl FnOnce(&mut Kept, &Path) -> T) -> T {
        let mut guard = self.lock();
        let mut path = std::mem::take(&mut guard.joined);
        path.as_mut_os_string().clear();
        path.push(dir);
        path.push(rel);
        let parsed = read(&mut guard, &path);
        guard.joined = path;
        parsed
    }

    /// The single number in the cgroup file at `path` (read as
    /// [`text_whole_in_one_read`](Self::text_whole_in_one_read)); `None` if missing,
    /// unparsable, `max`, or cgroup v1's "no limit".
    pub fn number(&self, path: &Path) -> Option<u64> {
        self.parse_whole_in_one_read(path, super::cgroup::parse_limit).flatten()
    }

    /// The flat-keyed cgroup file at `path` (cgroup v1's `memory.stat`, `cpuacct.stat`; read as
    /// [`text_whole_in_one_read`](Self::text_whole_in_one_read)).
    pub fn flat(&self, path: &Path) -> Option<FlatFile> {
        self.parse_whole_in_one_read(path, |t| FlatFile::from(t))
    }

    /// Ends a sample: closes every file that this sample and the
    /// [`KEEP_UNREAD_SAMPLES`]` - 1` before it did not read.
    pub fn end_sample(&self) {
        let mut guard = self.lock();
        let sample = guard.sample;
        let unread: Vec<OsString> =
            guard.files.iter().filter(|(_, k)| sample - k.read_in >= KEEP_UNREAD_SAMPLES).map(|(key, _)| key.clone()).collect();
        for key in unread {
            guard.forget(&key);
        }
        guard.sample += 1;
    }

    /// The paths of the files open, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.lock().files.keys().map(PathBuf::from).collect();
        paths.sort();
        paths
    }
}

impl Kept {
    /// The file at `path`, read to where `ends` says and handed to `parse`; kept open if the
    /// budget allows.
    fn read<X: FileText + ?Sized, T>(&mut self, path: &Path, ends: Ends, parse: impl FnOnce(&X) -> T) -> Option<T> {
        self.read_and_keep(path, ends, true, parse)
    }

    /// [`read`](Self::read), keeping the file open only with `keep`.
    fn read_and_keep<X: FileText + ?Sized, T>(
        &mut self,
        path: &Path,
        ends: Ends,
        keep: bool,
        parse: impl FnOnce(&X) -> T,
    ) -> Option<T> {
        self.read_events_once_a_sample();
        let key: &OsStr = path.as_os_str();
        match self.read_kept(key, ends) {
            Some(Some(len)) => return Some(parse_text(&mut self.buffer, len, parse)),
            Some(None) => self.forget_gone(key),
            None => {}
        }
        let file = open(path)?;
        let len = read_from_start(&file, &mut self.buffer, ends)?;
        if keep {
            self.keep(path, file);
        }
        Some(parse_text(&mut self.buffer, len, parse))
    }

    /// The file at `path` (a file the kernel writes whole in each read) handed to `parse`:
    /// read when inotify reported a modification of it since it was last read (or it was
    /// not read before), else its text as last read again.
    fn read_when_modified<T>(&mut self, path: &Path, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.read_events_once_a_sample();
        let key: &OsStr = path.as_os_str();
        if let Some(k) = self.files.get_mut(key)
            && let Some((_, text)) = &k.unmodified_text
        {
            k.read_in = self.sample;
            return Some(parse(text));
        }
        if !self.files.contains_key(key) {
            let file = open(path)?;
            self.keep(path, file);
        }
        // Not kept (the budget): read as any file, each time.
        let Some(k) = self.files.get(key) else { return self.read(path, Ends::AtShortRead, parse) };
        // Watched before it is read, through its descriptor (the inode read, whatever is at
        // its path now): a modification after the read is reported.
        let through_fd = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&k.file)));
        let wd = self.modified.get_or_insert_with(Watch::modified).add(&through_fd, key);
        let Some(Some(len)) = self.read_kept(key, Ends::AtShortRead) else {
            if let (Some(wd), Some(watch)) = (wd, self.modified.as_mut()) {
                watch.forget(wd, key);
            }
            self.forget_gone(key);
            return self.read(path, Ends::AtShortRead, parse);
        };
        // As `parse_text` hands it: bytes that are not UTF-8 become U+FFFD.
        let text: Box<str> = String::from_utf8_lossy(&self.buffer[..len]).into();
        let parsed = parse(&text);
        let_go_if_large(&mut self.buffer);
        if let (Some(wd), Some(k)) = (wd, self.files.get_mut(key)) {
            k.unmodified_text = Some((wd, text));
        }
        Some(parsed)
    }

    /// [`read`](Self::read) of a file the kernel writes whole in each read, `handle` then
    /// naming the file kept at `path` (none where it is not kept).
    fn read_naming<X: FileText + ?Sized, T>(
        &mut self,
        path: &Path,
        handle: &mut Option<FileHandle>,
        parse: impl FnOnce(&X) -> T,
    ) -> Option<T> {
        let parsed = self.read(path, Ends::AtShortRead, parse);
        *handle = self.files.handle(path.as_os_str());
        parsed
    }

    /// Reads the kept file `handle` names (a file the kernel writes whole in each read) from
    /// its start: its length; `None` if it is not kept, not current any more, or its read
    /// failed.
    fn read_by_handle(&mut self, handle: FileHandle) -> Option<usize> {
        let sample = self.sample;
        let k = self.files.by_handle(handle)?;
        let current = k.check != Check::LinkCount || has_a_name(&k.file);
        if !current {
            return None;
        }
        k.read_in = sample;
        #[cfg(test)]
        {
            self.reads += 1;
        }
        read_from_start(&k.file, &mut self.buffer, Ends::AtShortRead)
    }

    /// Reads the kept file `key` from its start: `None` if it is not kept, `Some(None)` if it
    /// is not current any more (its object gone, or a plain file without a name).
    fn read_kept(&mut self, key: &OsStr, ends: Ends) -> Option<Option<usize>> {
        let k = self.files.get_mut(key)?;
        k.read_in = self.sample;
        // A file of a plain file system removed or replaced would still read its old bytes:
        // trusted while it has a name.
        let current = k.check != Check::LinkCount || has_a_name(&k.file);
        #[cfg(test)]
        {
            self.reads += 1;
        }
        Some(if current { read_from_start(&k.file, &mut self.buffer, ends) } else { None })
    }

    /// Keeps `file`, just opened at `path` and read, if the budget allows and it can be
    /// known to stay the file at its path (see [`Check`]).
    fn keep(&mut self, path: &Path, file: File) {
        if self.files.len() >= self.budget {
            return;
        }
        let key = path.as_os_str();
        let check = if rustix::fs::fstatfs(&file).is_ok_and(|s| KERNEL_FILE_SYSTEMS.contains(&(s.f_type as u64))) {
            Some(Check::Kernel)
        } else {
            self.watch.get_or_insert_with(Watch::plain).watch(path, &file, key)
        };
        if let Some(check) = check {
            self.files.insert(key.to_owned(), KeptFile { id: 0, file, check, read_in: self.sample, unmodified_text: None });
        }
    }

    /// Closes the kept file `key` and removes its watches.
    fn forget(&mut self, key: &OsStr) {
        let Some(k) = self.files.remove(key) else { return };
        if let (Check::Watched(wd), Some(watch)) = (k.check, self.watch.as_mut()) {
            watch.forget(wd, key);
        }
        if let (Some((wd, _)), Some(watch)) = (k.unmodified_text, self.modified.as_mut()) {
            watch.forget(wd, key);
        }
    }

    /// Closes the kept file `key`, whose read failed. A kernel file fails once its process
    /// or cgroup is gone: so are the other files of its directory, which are closed too (a
    /// file read only when modified may not be read again before its cgroup is made anew).
    fn forget_gone(&mut self, key: &OsStr) {
        let kernel = self.files.get(key).is_some_and(|k| k.check == Check::Kernel);
        self.forget(key);
        let Some(dir) = Path::new(key).parent().filter(|_| kernel) else { return };
        let siblings: Vec<OsString> = self.files.keys().filter(|k| Path::new(k).parent() == Some(dir)).cloned().collect();
        for sibling in siblings {
            self.forget(&sibling);
        }
    }

    /// Once a sample, at its first read: drops the kept plain files removed or replaced,
    /// and the texts of the files read only when modified that were modified, since the
    /// events were last read.
    fn read_events_once_a_sample(&mut self) {
        if self.events_read_in == Some(self.sample) {
            return;
        }
        self.events_read_in = Some(self.sample);
        if let Some(watch) = self.watch.as_mut() {
            for key in watch.changed() {
                // Its plain watch went with the event; a modification watch goes with it.
                if let Some(KeptFile { unmodified_text: Some((wd, _)), .. }) = self.files.remove(key.as_os_str())
                    && let Some(modified) = self.modified.as_mut()
                {
                    modified.forget(wd, &key);
                }
            }
        }
        if let Some(watch) = self.modified.as_mut() {
            for key in watch.changed() {
                if let Some(k) = self.files.get_mut(key.as_os_str()) {
                    k.unmodified_text = None;
                }
            }
        }
    }
}

/// Opens `path` to read, without updating its access time where the process may (its owner
/// or a holder of `CAP_FOWNER`; on a plain file system that update is a tenth of a read's
/// cost, the kernel's own files have none).
fn open(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32);
    match options.open(path) {
        Ok(file) => Some(file),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => File::open(path).ok(),
        Err(_) => None,
    }
}

/// Where a file ends (see [`KeptFiles::text_whole_in_one_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// Where a read returns nothing.
    AtEmptyRead,
    /// Where a read returns less than asked.
    AtShortRead,
}

/// Reads `file` from its start to its end (up to [`MAX_FILE_BYTES`]) into `buffer`; the
/// length read. The buffer keeps its length between reads (only a larger file grows it), so
/// a read does not clear it first.
fn read_from_start(file: &File, buffer: &mut Vec<u8>, ends: Ends) -> Option<usize> {
    if buffer.len() < 4096 {
        buffer.resize(4096, 0);
    }
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
                let_go_if_large(buffer);
                return None;
            }
        }
    }
    Some(len)
}

/// A buffer grown past 64 KiB by a large file is let go.
fn let_go_if_large(buffer: &mut Vec<u8>) {
    if buffer.len() > 64 << 10 {
        *buffer = Vec::new();
    }
}

/// How a kept file's bytes are handed to its parser: as text (`str`) or as read (`[u8]`).
pub trait FileText {
    /// `parse` of `bytes`, handed as `Self`.
    fn hand<T>(bytes: &[u8], parse: impl FnOnce(&Self) -> T) -> T;
}

/// As text: bytes that are not UTF-8 (a process name cut by the kernel inside a character,
/// a cgroup named with any bytes) become U+FFFD rather than losing the file.
impl FileText for str {
    fn hand<T>(bytes: &[u8], parse: impl FnOnce(&str) -> T) -> T {
        match std::str::from_utf8(bytes) {
            Ok(text) => parse(text),
            Err(_) => parse(&String::from_utf8_lossy(bytes)),
        }
    }
}

/// As read, for the parsers of the kernel's ASCII formats read for every zone each sample
/// (`cpu.stat`, `memory.stat`, `io.stat`, the pressure files), which need no UTF-8 check (it
/// was 4% of a sample's instructions) and treat a byte that is not ASCII as the U+FFFD it
/// would have become: not a key, not a digit.
impl FileText for [u8] {
    fn hand<T>(bytes: &[u8], parse: impl FnOnce(&[u8]) -> T) -> T {
        parse(bytes)
    }
}

/// The first `len` bytes read handed to `parse` (see [`FileText`]).
fn parse_text<X: FileText + ?Sized, T>(buffer: &mut Vec<u8>, len: usize, parse: impl FnOnce(&X) -> T) -> T {
    let parsed = X::hand(&buffer[..len], parse);
    let_go_if_large(buffer);
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_reads_its_own_file_while_it_is_kept_and_its_path_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1\n").unwrap();
        std::fs::write(&b, "2\n").unwrap();
        let files = KeptFiles::new(10);
        let read_a = |h: &mut Option<FileHandle>| files.parse_whole_in_one_read_below_by(h, dir.path(), "a", str::to_owned);
        let mut handle = None;
        assert_eq!(read_a(&mut handle).as_deref(), Some("1\n"));
        let first = handle.expect("kept: a handle");
        // Read through it (the kept file, rewritten in place): one read, the new bytes.
        std::fs::write(&a, "11\n").unwrap();
        let before = files.lock().reads;
        assert_eq!(read_a(&mut handle).as_deref(), Some("11\n"));
        assert_eq!((files.lock().reads, handle), (before + 1, Some(first)));
        // Closed after samples that did not read it, and `b` kept in its slot since: the
        // handle does not read `b`; `a` is read by its path and kept anew.
        for _ in 0..=KEEP_UNREAD_SAMPLES {
            files.end_sample();
        }
        assert!(files.paths().is_empty());
        assert_eq!(files.text(&b).as_deref(), Some("2\n"));
        assert_eq!(read_a(&mut handle).as_deref(), Some("11\n"));
        assert_ne!(handle, Some(first));
        // Replaced by another file renamed over it: the new file's bytes.
        std::fs::write(dir.path().join("new"), "3\n").unwrap();
        std::fs::rename(dir.path().join("new"), &a).unwrap();
        files.end_sample();
        assert_eq!(read_a(&mut handle).as_deref(), Some("3\n"));
        // Removed: nothing, and no handle.
        std::fs::remove_file(&a).unwrap();
        files.end_sample();
        assert_eq!(read_a(&mut handle), None);
        assert_eq!(handle, None);
        assert_eq!(files.paths(), [b]);
    }

    #[test]
    fn a_kept_file_reads_afresh_and_one_not_read_for_ten_samples_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("cpu.stat"), dir.path().join("memory.stat"));
        std::fs::write(&a, "usage_usec 1\n").unwrap();
        std::fs::write(&b, "anon 1\n").unwrap();
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

    /// The changes a composed tree sees between two samples, and what is read after each.
    fn removed_and_replaced_files_between_samples(files: &KeptFiles) {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("docker-1.scope");
        std::fs::create_dir(&zone).unwrap();
        let path = zone.join("memory.current");
        std::fs::write(&path, "100\n").unwrap();
        assert_eq!(files.number(&path), Some(100));
        assert_eq!(files.paths().len(), 1);
        files.end_sample();
        // The cgroup goes away between two samples: no stale 100.
        std::fs::remove_dir_all(&zone).unwrap();
        assert_eq!(files.number(&path), None);
        assert!(files.paths().is_empty());
        files.end_sample();
        // Back under the same path at once (same second), twice, then replaced by a rename:
        // the new file each time.
        std::fs::create_dir(&zone).unwrap();
        std::fs::write(&path, "200\n").unwrap();
        assert_eq!(files.number(&path), Some(200));
        files.end_sample();
        std::fs::remove_dir_all(&zone).unwrap();
        std::fs::create_dir(&zone).unwrap();
        std::fs::write(&path, "250\n").unwrap();
        assert_eq!(files.number(&path), Some(250));
        assert_eq!(files.paths().len(), 1);
        files.end_sample();
        let new = zone.join("new");
        std::fs::write(&new, "300\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(files.number(&path), Some(300));
        files.end_sample();
        // Rewritten in place: read afresh from the kept file, within a sample too.
        std::fs::write(&path, "400\n").unwrap();
        assert_eq!(files.number(&path), Some(400));
        std::fs::write(&path, "500\n").unwrap();
        assert_eq!(files.number(&path), Some(500));
        assert_eq!(files.paths().len(), 1);
        files.end_sample();
        // Removed alone, its directory left as it is: gone.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(files.number(&path), None);
        assert!(files.paths().is_empty());
    }

    #[test]
    fn a_removed_or_replaced_file_is_never_read_from_its_old_descriptor() {
        let files = KeptFiles::new(10);
        removed_and_replaced_files_between_samples(&files);
        let kept = files.lock();
        let watch = kept.watch.as_ref().expect("plain files were kept: watched");
        assert!(watch.fd.is_some(), "inotify is there");
        assert!(watch.paths.is_empty(), "every watch was removed with its file");
    }

    #[test]
    fn without_inotify_a_plain_file_is_checked_by_its_link_count() {
        let files = KeptFiles::new(10);
        files.lock().watch = Some(Watch { fd: None, ..Watch::plain() });
        removed_and_replaced_files_between_samples(&files);
    }

    #[test]
    fn a_process_that_exited_is_not_read_from_its_kept_stat() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let files = KeptFiles::new(10);
        assert!(files.text(&path).is_some_and(|t| t.contains("(sleep)")));
        assert!(
            files.lock().files.get(path.as_os_str()).is_some_and(|k| k.check == Check::Kernel),
            "procfs is a kernel file system"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(files.text(&path), None, "reaped: the kept descriptor fails and the path is gone");
    }

    #[test]
    fn a_file_read_when_modified_is_read_again_only_after_a_modification() {
        for through_handle in [false, true] {
            file_read_when_modified_is_read_again_only_after_a_modification(through_handle);
        }
    }

    /// By its path, or through a handle (had at its first read, then kept).
    fn file_read_when_modified_is_read_again_only_after_a_modification(through_handle: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.events");
        std::fs::write(&path, "oom 1\n").unwrap();
        let files = KeptFiles::new(10);
        let handle = std::cell::Cell::new(None);
        let read = |files: &KeptFiles| {
            if !through_handle {
                return files.parse_when_modified_below(dir.path(), "memory.events", str::to_owned);
            }
            let mut h = handle.get();
            let text = files.parse_when_modified_below_by(&mut h, dir.path(), "memory.events", str::to_owned);
            handle.set(h);
            text
        };
        let reads = |files: &KeptFiles| files.lock().reads;
        assert_eq!(read(&files).as_deref(), Some("oom 1\n"));
        assert_eq!(handle.get().is_some(), through_handle, "kept: a handle");
        files.end_sample();
        let before = reads(&files);
        for _ in 0..3 {
            assert_eq!(read(&files).as_deref(), Some("oom 1\n"));
            files.end_sample();
        }
        assert_eq!(reads(&files), before, "not modified: not read");
        // Rewritten in place: read again from the next sample on, then not again.
        std::fs::write(&path, "oom 2\n").unwrap();
        assert_eq!(read(&files).as_deref(), Some("oom 2\n"));
        files.end_sample();
        let before = reads(&files);
        assert_eq!(read(&files).as_deref(), Some("oom 2\n"));
        assert_eq!(reads(&files), before);
        files.end_sample();
        // Replaced by a rename, then removed.
        let next = dir.path().join("next");
        std::fs::write(&next, "oom 3\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(read(&files).as_deref(), Some("oom 3\n"));
        files.end_sample();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read(&files), None);
        files.end_sample();
        // Not read for ten samples: closed, and its watches gone with it.
        std::fs::write(&path, "oom 4\n").unwrap();
        assert_eq!(read(&files).as_deref(), Some("oom 4\n"));
        for _ in 0..KEEP_UNREAD_SAMPLES + 1 {
            files.end_sample();
        }
        let kept = files.lock();
        assert!(kept.files.is_empty());
        assert!(kept.modified.as_ref().is_some_and(|w| w.fd.is_some() && w.paths.is_empty()));
        assert!(kept.watch.as_ref().is_some_and(|w| w.paths.is_empty()));
    }

    #[test]
    fn without_a_watch_a_file_read_when_modified_is_read_each_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.events"), "oom 1\n").unwrap();
        let files = KeptFiles::new(10);
        files.lock().modified = Some(Watch { fd: None, ..Watch::modified() });
        for _ in 0..3 {
            let before = files.lock().reads;
            let text = files.parse_when_modified_below(dir.path(), "memory.events", str::to_owned);
            assert_eq!(text.as_deref(), Some("oom 1\n"));
            assert_eq!(files.lock().reads, before + 1, "read, not its text as last read");
            files.end_sample();
        }
    }

    #[test]
    fn a_kernel_file_read_when_modified_is_not_answered_once_its_directory_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let dir = PathBuf::from(format!("/proc/{}", child.id()));
        let files = KeptFiles::new(10);
        let cgroup = || files.parse_when_modified_below(&dir, "cgroup", str::to_owned);
        let first = cgroup();
        assert!(first.is_some());
        assert!(files.text(&dir.join("stat")).is_some());
        files.end_sample();
        assert_eq!(cgroup(), first, "unmodified: its text as last read");
        assert!(files.lock().files.get(dir.join("cgroup").as_os_str()).is_some_and(|k| k.unmodified_text.is_some()));
        child.kill().unwrap();
        child.wait().unwrap();
        files.end_sample();
        // The process's other file fails first (as a zone's memory.stat before its
        // memory.events): the directory's files are closed, the text is not handed out.
        assert_eq!(files.text(&dir.join("stat")), None);
        assert_eq!(cgroup(), None);
        assert!(files.paths().is_empty());
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

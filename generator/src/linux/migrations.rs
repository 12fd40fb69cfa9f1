//! Which processes moved to another cgroup since the last sample, from the kernel's own
//! account. After its birth (where the source reads its cgroups anyway), a process changes
//! groups only when its pid is written to a group's `cgroup.procs` or `cgroup.threads` (v2)
//! or `tasks` (v1), or when a group is renamed; each of these is a write to a file or a
//! directory that inotify reports. This watches every group directory of the hierarchies it
//! is given (for groups made, renamed or removed) and those files in each (for writes), and
//! answers with the pids now in each group written to or made since it was last asked. A
//! removed group's watches are ended here when its parent reports it removed: the kernel
//! does not end the watches of a removed cgroup's files, which would otherwise stay (and
//! count against the host's limit) for good.
//!
//! Owns its inotify instance and what it watches; it reads no process's files. It must not
//! answer "nothing moved" when it cannot know: lost events (the kernel's queue overflowed)
//! and renamed groups answer [`Moved::Everything`], and when a watch cannot be added (the
//! host's `max_user_watches` reached) it gives up for good: [`MigrationWatch::moved`]
//! answers `None` from then on (events of that call may be lost with it), and the caller
//! reads every process's cgroups at once, then on a schedule, as without it. What it does not see: moves within a hierarchy it was not given (the
//! source gives it v2's and v1's `cpu`, `cpuacct`, `memory`, `blkio`, `pids` and `cpuset`,
//! not v1's named `systemd` one, whose paths no figure uses), and, on a file system that is not a real
//! cgroup hierarchy (a composed tree in tests), anything but the writes made to its files.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};

/// The files whose writes move a process (or a thread) into their group.
const MEMBERSHIP_FILES: [&str; 3] = ["cgroup.procs", "cgroup.threads", "tasks"];

/// What moved since the last call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// The pids now in the groups written to or made (sorted, without repeats; empty when
    /// none was).
    Pids(Vec<u32>),
    /// Unknown: events were lost or a group was renamed; every process's cgroups must be
    /// read again.
    Everything,
}

/// What a watch descriptor watches.
#[derive(Debug, Clone)]
enum Watched {
    /// A group's directory: groups made, renamed or removed below it.
    Group(PathBuf),
    /// A membership file of the group in this directory.
    Membership(PathBuf),
}

impl Watched {
    fn group(&self) -> &Path {
        match self {
            Watched::Group(dir) | Watched::Membership(dir) => dir,
        }
    }
}

/// The watch of the hierarchies (see the module's text).
#[derive(Debug)]
pub struct MigrationWatch {
    roots: Vec<PathBuf>,
    /// `None` once given up.
    fd: Option<OwnedFd>,
    watched: HashMap<i32, Watched>,
    /// The watches of each group (its directory's and its files'), removed with the group:
    /// the kernel does not end the watches of a removed cgroup's files by itself (they hold
    /// its inodes), so each would stay for good.
    by_group: HashMap<PathBuf, Vec<i32>>,
    buffer: Vec<MaybeUninit<u8>>,
    /// The most watches it adds; beyond, it gives up.
    max_watches: usize,
    /// Groups made since the last call whose pids are to be read.
    made: Vec<PathBuf>,
}

impl MigrationWatch {
    /// Watches every group below each of `roots` (the hierarchies' mount points; a root
    /// that is not there is left out). `None` where inotify cannot be had, no root is there,
    /// or the groups need more than `max_watches` watches or the host allows.
    pub fn new(roots: Vec<PathBuf>, max_watches: usize) -> Option<Self> {
        let mut roots: Vec<PathBuf> = roots.into_iter().filter(|r| r.is_dir()).collect();
        roots.sort();
        roots.dedup();
        if roots.is_empty() {
            return None;
        }
        let mut watch = MigrationWatch {
            roots,
            fd: None,
            watched: HashMap::new(),
            by_group: HashMap::new(),
            buffer: Vec::new(),
            max_watches,
            made: Vec::new(),
        };
        watch.start().then_some(watch)
    }

    /// How many watches it holds (tests).
    pub fn watches(&self) -> usize {
        self.watched.len()
    }

    /// How many watches it holds of the group at `dir` (tests).
    pub fn watches_of(&self, dir: &Path) -> usize {
        self.by_group.get(dir).map_or(0, Vec::len)
    }

    /// (Re)starts: a new inotify instance and every group below the roots watched; false
    /// (and given up) if that fails.
    fn start(&mut self) -> bool {
        self.watched.clear();
        self.by_group.clear();
        self.made.clear();
        self.fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok();
        if self.buffer.is_empty() {
            self.buffer = vec![MaybeUninit::uninit(); 16 << 10];
        }
        let roots = self.roots.clone();
        let whole = self.fd.is_some() && roots.iter().all(|root| self.watch_tree(root, false));
        if !whole {
            self.give_up();
        }
        whole
    }

    fn give_up(&mut self) {
        self.fd = None;
        self.watched.clear();
        self.by_group.clear();
        self.made.clear();
    }

    /// Watches the group at `dir` and every group below it; with `made`, each is noted to
    /// have its pids read (a group made since the last call: pids may have been written to
    /// it before its watch). False if a watch could not be added (a group removed meanwhile
    /// is no failure).
    fn watch_tree(&mut self, dir: &Path, made: bool) -> bool {
        let mut pending = vec![dir.to_owned()];
        while let Some(dir) = pending.pop() {
            let flags =
                WatchFlags::CREATE | WatchFlags::DELETE | WatchFlags::MOVED_FROM | WatchFlags::MOVED_TO | WatchFlags::ONLYDIR;
            match self.add(&dir, flags, Watched::Group(dir.clone())) {
                Some(true) => {}
                Some(false) => continue,
                None => return false,
            }
            if !self.watch_membership_files(&dir) {
                return false;
            }
            if made {
                self.made.push(dir.clone());
            }
            // Groups are directories; the interface files are not.
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
        true
    }

    /// Watches the membership files the group at `dir` has; false on a failure (no room).
    fn watch_membership_files(&mut self, dir: &Path) -> bool {
        MEMBERSHIP_FILES
            .iter()
            .all(|name| self.add(&dir.join(name), WatchFlags::MODIFY, Watched::Membership(dir.to_owned())).is_some())
    }

    /// Watches `path` as `what`: `Some(true)` added, `Some(false)` not there (removed
    /// meanwhile, or a file the group does not have), `None` a failure (no room).
    fn add(&mut self, path: &Path, flags: WatchFlags, what: Watched) -> Option<bool> {
        if self.watched.len() >= self.max_watches {
            return None;
        }
        match inotify::add_watch(self.fd.as_ref()?, path, flags) {
            Ok(wd) => {
                let group = what.group().to_owned();
                if self.watched.insert(wd, what).is_none() {
                    self.by_group.entry(group).or_default().push(wd);
                }
                Some(true)
            }
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Some(false),
            Err(_) => None,
        }
    }

    /// Ends the watches of the removed group at `dir`.
    fn forget_group(&mut self, dir: &Path) {
        let Some(fd) = self.fd.as_ref() else { return };
        for wd in self.by_group.remove(dir).unwrap_or_default() {
            self.watched.remove(&wd);
            if let Err(e) = inotify::remove_watch(fd, wd) {
                // Ended by the kernel already (a plain file system's removed file).
                tracing::trace!(wd, error = %e, "inotify watch already gone");
            }
        }
    }

    /// What moved since the last call; `None` if it has given up (see the module's text).
    pub fn moved(&mut self) -> Option<Moved> {
        let fd = self.fd.as_ref()?;
        let mut written: Vec<PathBuf> = Vec::new();
        let mut made: Vec<PathBuf> = Vec::new();
        let mut files_made: Vec<PathBuf> = Vec::new();
        let mut gone: Vec<i32> = Vec::new();
        let mut removed: Vec<PathBuf> = Vec::new();
        let mut everything = false;
        let mut reader = inotify::Reader::new(fd, &mut self.buffer);
        // The events queued now (the reader stops at EAGAIN); bounded so a host writing
        // without pause cannot keep a sample here.
        for _ in 0..65_536 {
            let Ok(event) = reader.next() else { break };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                everything = true;
                continue;
            }
            if flags.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF) {
                gone.push(event.wd());
                continue;
            }
            match self.watched.get(&event.wd()) {
                Some(Watched::Membership(dir)) => written.push(dir.clone()),
                Some(Watched::Group(dir)) if flags.contains(ReadFlags::ISDIR) => {
                    let below = event.file_name().map(|name| dir.join(OsStr::from_bytes(name.to_bytes())));
                    if flags.intersects(ReadFlags::MOVED_FROM | ReadFlags::MOVED_TO) {
                        everything = true;
                    } else if flags.contains(ReadFlags::DELETE) {
                        removed.extend(below);
                    } else {
                        made.extend(below);
                    }
                }
                // A membership file made in a group (the kernel makes a group with its
                // files; a composed tree may write them later): watched, and read.
                Some(Watched::Group(dir)) => {
                    let name = event.file_name().map(|n| OsStr::from_bytes(n.to_bytes()));
                    if name.is_some_and(|n| MEMBERSHIP_FILES.iter().any(|f| OsStr::new(f) == n)) {
                        files_made.push(dir.clone());
                    }
                }
                _ => {}
            }
        }
        for wd in gone {
            if let Some(what) = self.watched.remove(&wd)
                && let Some(wds) = self.by_group.get_mut(what.group())
            {
                wds.retain(|w| *w != wd);
            }
        }
        for group in removed {
            self.forget_group(&group);
        }
        if everything {
            // A renamed group's watches name its old path: all watched again.
            return if self.start() { Some(Moved::Everything) } else { None };
        }
        for dir in files_made {
            if !self.watch_membership_files(&dir) {
                self.give_up();
                return None;
            }
            written.push(dir);
        }
        for dir in made {
            if !self.watch_tree(&dir, true) {
                self.give_up();
                return None;
            }
        }
        written.append(&mut self.made);
        written.sort();
        written.dedup();
        let mut pids: Vec<u32> = written.iter().flat_map(|dir| pids_in(dir)).collect();
        pids.sort_unstable();
        pids.dedup();
        Some(Moved::Pids(pids))
    }
}

/// The pids in the group at `dir` (its `cgroup.procs`; none if it cannot be read).
fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.split_ascii_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{MigrationWatch, Moved};
    use std::fs;

    #[test]
    fn writes_to_membership_files_groups_made_and_renamed_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cgroup");
        let a = root.join("system.slice/a.service");
        fs::create_dir_all(&a).unwrap();
        fs::write(a.join("cgroup.procs"), "").unwrap();
        fs::write(root.join("cgroup.procs"), "1\n").unwrap();
        let mut watch = MigrationWatch::new(vec![root.clone(), dir.path().join("not-there")], 1000).unwrap();
        // Three groups (root, system.slice, a.service) and the two procs files there.
        assert_eq!(watch.watches(), 5);
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![])), "nothing written");
        // A pid written to a group: the pids the group lists now.
        fs::write(a.join("cgroup.procs"), "700\n42\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![42, 700])));
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![])), "reported once");
        // What is not a pid in the file is left out, the rest taken.
        fs::write(a.join("cgroup.procs"), "12\nnot-a-pid\n-3\n\n99999999999\n13\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![12, 13])));
        // A group made with groups below it and pids in them before their watches.
        let b = root.join("system.slice/b.slice/c.scope");
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("cgroup.procs"), "900\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![900])));
        fs::write(b.join("cgroup.procs"), "901\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![901])), "the new group is watched");
        // A membership file made later in a group (a composed tree's way): watched and read.
        let d = root.join("system.slice/d.service");
        fs::create_dir_all(&d).unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![])));
        fs::write(d.join("cgroup.procs"), "5\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![5])));
        fs::write(d.join("cgroup.procs"), "6\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![6])));
        // A group renamed: every process's groups may have changed; watched again whole.
        fs::rename(&a, root.join("system.slice/renamed.service")).unwrap();
        assert_eq!(watch.moved(), Some(Moved::Everything));
        fs::write(root.join("system.slice/renamed.service/cgroup.procs"), "77\n").unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![77])));
        // Groups removed: their watches go (a cgroup's would stay for good otherwise),
        // nothing is reported.
        let before = watch.watches();
        fs::remove_dir_all(root.join("system.slice/renamed.service")).unwrap();
        fs::remove_dir_all(root.join("system.slice/b.slice")).unwrap();
        assert_eq!(watch.moved(), Some(Moved::Pids(vec![])));
        // renamed.service (2), b.slice (1), c.scope (2).
        assert_eq!(watch.watches(), before - 5);
    }

    #[test]
    fn without_room_for_every_watch_it_gives_up_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        fs::write(root.join("cgroup.procs"), "").unwrap();
        assert!(MigrationWatch::new(vec![root.clone()], 1).is_none(), "two watches needed");
        assert!(MigrationWatch::new(vec![dir.path().join("none")], 10).is_none(), "no hierarchy");
        let mut watch = MigrationWatch::new(vec![root.clone()], 4).unwrap();
        // Groups made beyond the room: given up, and from then on no answer, never "none
        // moved".
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        assert_eq!(watch.moved(), None);
        fs::write(root.join("cgroup.procs"), "1\n").unwrap();
        assert_eq!(watch.moved(), None);
    }
}

//! The Linux source: the host as zone `global` from `/proc`, and one zone per cgroup that
//! holds processes, from `/sys/fs/cgroup` (v2, v1 or hybrid).
//!
//! Every field's origin and unit is listed in `docs/statistics.md`. Busy time is converted
//! to 4999 Hz ticks so that `usage / ticks` means the same as on illumos. Per-interval
//! fields (CPU usage, faults) are differences between two samples, so the first sample of a
//! run leaves them absent. Processes vanish mid-scan: any per-pid read that fails skips that
//! pid, never the sample; a cgroup or host file that is missing or unreadable leaves its
//! fields absent (NULL), never 0. All paths are below `root`, so tests run on composed trees.
//!
//! Besides the 2013 fields, frames carry the container and host tables (`cpu_time`,
//! `pressure`, `memory`, `io`, `link`, `system`, `filesystem`, `zone_info`). Zones get
//! readable names ([`zone_name`]); which zones are reported is [`ZoneFilter`]'s business.
//! State kept between samples is per zone present in the last sample and per process seen
//! in it: a zone or process that goes away leaves nothing behind. Every file is read
//! through [`kept_files`], which keeps it open between samples and closes it once ten
//! samples in a row did not read it.

pub mod cgroup;
pub mod host;
pub mod kept_files;
pub mod migrations;
pub mod process_clock;
pub mod spare_frames;
pub mod zone_name;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use foldhash::{HashMap, HashMapExt, HashSet};

use frame_proto::Packet;
use frame_proto::packet::{self, Cpu, Cpuqueue, Disk, Mem, Net, Process};
use procfs::net::{DeviceStatus, InterfaceDeviceStatus};
use procfs::{DiskStats, ExplicitSystemInfo, FromRead, FromReadSI, KernelStats, Meminfo};
use regex::Regex;

use crate::GeneratorError;
use crate::source::{StatSource, ns_to_ticks};
use cgroup::{CgroupMounts, DeviceIo, Dir, Membership};
use kept_files::{FileHandle, KeptFiles};
use migrations::{MigrationWatch, Moved};
use process_clock::ProcessClocks;
use spare_frames::{Refill, text};
use zone_name::ZoneIdentity;

/// How zones are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ZoneNaming {
    /// Readable names: `docker/3f2a1b4c5d6e`, `k8s/POD-UID/3f2a1b4c5d6e`, `nginx.service`.
    #[default]
    Readable,
    /// The cgroup path without its leading `/` (what generators before this one sent).
    Path,
}

/// Which zones are reported: include and exclude patterns (regular expressions, each
/// matched against the zone's name and its cgroup path) and a cap on their number.
#[derive(Debug, Clone)]
pub struct ZoneFilter {
    /// A zone is reported only if one of these matches (none: every zone).
    pub include: Vec<Regex>,
    /// A zone is not reported if one of these matches.
    pub exclude: Vec<Regex>,
    /// At most this many zones besides `global`; past it, zones reported in the previous
    /// sample are kept first, then new ones in name order (the rest counted in
    /// `system.zones_dropped`).
    pub max_zones: usize,
}

impl Default for ZoneFilter {
    fn default() -> Self {
        Self { include: Vec::new(), exclude: Vec::new(), max_zones: 1000 }
    }
}

impl ZoneFilter {
    /// Whether a zone of this name and path passes the patterns.
    pub fn admits(&self, name: &str, path: &str) -> bool {
        let matches = |r: &Regex| r.is_match(name) || r.is_match(path);
        (self.include.is_empty() || self.include.iter().any(matches)) && !self.exclude.iter().any(matches)
    }
}

/// Options of the Linux source.
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    /// Filesystem root holding `proc/` and `sys/` (`/` on a live host).
    pub root: PathBuf,
    /// Busiest processes reported per zone.
    pub top_processes: usize,
    /// How zones are named.
    pub naming: ZoneNaming,
    /// Which zones are reported.
    pub filter: ZoneFilter,
    /// A zone's `zone_info` row is sent with its first frame and then every this many
    /// samples (so every hour file holds one at the default interval).
    pub zone_info_every: u64,
}

impl Default for LinuxOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            top_processes: 20,
            naming: ZoneNaming::Readable,
            filter: ZoneFilter::default(),
            zone_info_every: 60,
        }
    }
}

/// A zone of one sample: its name, cgroup path, identity and member processes.
#[derive(Debug)]
struct SampledZone<'a> {
    name: String,
    path: &'a str,
    identity: &'a ZoneIdentity,
    members: Vec<&'a ProcSample>,
}

#[derive(Debug, Clone)]
struct ProcSample {
    pid: u32,
    /// Its command name (in place: an idle process's sample is its last one again, copied
    /// each sample without touching a heap allocation of its own).
    comm: Comm,
    cpu_ticks: u64,
    processor: Option<u32>,
    threads: u32,
    /// Its cgroups (shared with the membership cache).
    membership: Arc<Membership>,
    /// CPU ticks since the previous sample; `None` for a process seen for the first time
    /// (or a pid reused by another process).
    ran_ticks: Option<u64>,
}

impl ProcSample {
    /// The zone's cgroup path (leading `/`); `None` for the host's root cgroup.
    fn cgroup_path(&self) -> Option<&str> {
        self.membership.zone_path()
    }
}

/// A process's command name: in place up to 23 bytes (a process's name is at most 15; a
/// kernel thread's full name in `/proc/PID/stat` can be longer, 31 bytes on this project's
/// VM), else shared.
#[derive(Debug, Clone)]
enum Comm {
    Inline { len: u8, bytes: [u8; 23] },
    Long(Arc<str>),
}

impl From<String> for Comm {
    fn from(name: String) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= 23 => {
                let mut bytes = [0; 23];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                Comm::Inline { len, bytes }
            }
            _ => Comm::Long(Arc::from(name)),
        }
    }
}

impl Comm {
    fn as_str(&self) -> &str {
        match self {
            // Made from a whole `String`, so its bytes are UTF-8 up to `len`.
            Comm::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Comm::Long(name) => name,
        }
    }
}

/// `PID/NAME` below `/proc`, put together on the stack: a process's files are read without
/// an allocation for their path.
struct PidFile {
    bytes: [u8; 32],
    len: usize,
}

impl PidFile {
    /// `PID/NAME` (`NAME` cut to fit 32 bytes; the source's names are a few bytes).
    fn new(pid: u32, name: &str) -> Self {
        let mut digits = [0u8; 10];
        let (mut n, mut start) = (pid, digits.len());
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = &digits[start..];
        let name = &name.as_bytes()[..name.len().min(31 - digits.len())];
        let mut bytes = [0u8; 32];
        bytes[..digits.len()].copy_from_slice(digits);
        bytes[digits.len()] = b'/';
        bytes[digits.len() + 1..][..name.len()].copy_from_slice(name);
        PidFile { bytes, len: digits.len() + 1 + name.len() }
    }
}

impl std::ops::Deref for PidFile {
    type Target = str;

    fn deref(&self) -> &str {
        // ASCII digits and a name cut at a byte: UTF-8 unless the cut split a character,
        // which the source's names (`stat`, `cgroup`) cannot.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// Where a zone keeps its CPU time (see `LinuxSource::cpu_signal`): one for each cgroup
/// (kept by its key, `v2:PATH` or `v1:PATH`), shared by its processes, with what the process
/// scan learnt of it.
#[derive(Debug)]
struct CpuSignal {
    /// v2 `cpu.stat` (µs, `usage_usec`) or v1 `cpuacct.usage` (ns).
    file: PathBuf,
    /// Which of the two.
    v2: bool,
    /// What the process scan found.
    scan: Mutex<SignalScan>,
}

/// What the process scan found of a zone's CPU time.
#[derive(Debug, Default)]
struct SignalScan {
    /// The sample that read it last.
    read_in: Option<u64>,
    /// The time then.
    now: Option<u64>,
    /// Whether it moved since the sample before (true where that is not known).
    moved: bool,
    /// The time at the last sample, where it is a baseline (no process of the zone read
    /// before it).
    baseline: Option<u64>,
    /// The last sample that read a process of the zone before its time.
    read_first_in: Option<u64>,
    /// The v2 `cpu.stat` it was read from, for the zone's frame of the same sample.
    cpu_stat: Option<cgroup::CpuStat>,
    /// The kept file it is read from.
    file: Option<FileHandle>,
}

impl CpuSignal {
    fn scan(&self) -> std::sync::MutexGuard<'_, SignalScan> {
        self.scan.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A process as last read.
#[derive(Debug)]
struct ProcState {
    /// The process's start time (clock ticks since boot): a reused pid is another process.
    starttime: u64,
    /// Its figures and cgroups as last read.
    last: ProcSample,
    /// Its network namespace's inode, once looked up for a zone (a process rarely changes
    /// namespaces after its start: looked up again with its cgroups).
    netns: Option<u64>,
    /// Where its zone keeps its CPU time, found when its cgroups were read.
    signal: Option<Arc<CpuSignal>>,
    /// The last sample that listed it (state of a process no longer listed is dropped).
    listed_in: u64,
    /// The inode of its `/proc` entry when last listed: a pid listed with another is a new
    /// process.
    ino: u64,
    /// The run time of all its threads (ns, from its CPU clock: [`process_clock`]) read just
    /// before its `stat` was last read: while the clock shows the same, no thread of it ran,
    /// and its `stat` as last read stands (looked at where no cheaper signal says so: in the
    /// host's root cgroup, and in a zone whose CPU time moved). `None` where the clocks
    /// cannot be used or did not read.
    ran: Option<u64>,
}

impl ProcState {
    /// Its sample as last read, standing for this one in `sample`, where its CPU clock read
    /// now shows its run time as its `stat` was last read (it did not run since). Else the
    /// run time read now, for [`LinuxSource::read_now`]: `None` where the process has no such
    /// signal, `Some(None)` where the clock did not read.
    fn stands_unless_it_ran(
        &mut self,
        clocks: Option<ProcessClocks>,
        pid: u32,
        sample: u64,
    ) -> Result<ProcSample, Option<Option<u64>>> {
        let (Some(clocks), Some(before)) = (clocks, self.ran) else { return Err(None) };
        let now = clocks.cpu_ns(pid);
        if now == Some(before) { Ok(self.stands(sample)) } else { Err(Some(now)) }
    }

    /// Its sample as last read, standing for this one (it did not run since): listed in
    /// `sample`, no CPU over the interval.
    fn stands(&mut self, sample: u64) -> ProcSample {
        self.listed_in = sample;
        ProcSample { ran_ticks: Some(0), ..self.last.clone() }
    }
}

/// A process's `/proc/PID/cgroup` is read when it is first seen (a pid whose `/proc` entry
/// is another inode than before is a new process) and again when the kernel reports it
/// moved (see [`migrations`]): at the next sample. Where the hierarchies cannot be watched,
/// it is read again once every this many samples (spread by pid) instead (reading the file
/// for every process every second was a third of the source's system calls), and a process
/// moved to another cgroup is counted in its old zone for at most this many samples. A
/// process's network namespace is looked up again on this schedule either way.
pub const MEMBERSHIP_REFRESH_SAMPLES: u64 = 10;

/// Where the hierarchies are watched, each process's cgroups are read again once every this
/// many samples all the same (spread by pid): a move the watch cannot see (none is known)
/// is counted in the old zone for at most this long.
pub const MEMBERSHIP_BACKSTOP_SAMPLES: u64 = 300;

/// The most inotify watches of the hierarchies (three a group at most): beyond, processes'
/// cgroups are read on [`MEMBERSHIP_REFRESH_SAMPLES`]'s schedule.
pub const MAX_MIGRATION_WATCHES: usize = 60_000;

/// Per-zone state kept between samples.
#[derive(Debug, Default, Clone)]
struct ZonePrev {
    percpu_ns: Vec<u64>,
    usage_us: Option<u64>,
    majflt: Option<u64>,
    /// Samples since the zone's `zone_info` row was last sent (`None`: never sent).
    since_info: Option<u64>,
    /// The zone's limits as last read.
    limits: Option<Limits>,
    /// Its v2 files read every sample.
    files: ZoneFiles,
}

/// Handles of a v2 zone's files read every sample ([`FileHandle`]: read without their paths
/// put together and looked up), for the directory they were had for.
#[derive(Debug, Default, Clone)]
struct ZoneFiles {
    dir: PathBuf,
    cpu_stat: Option<FileHandle>,
    memory_stat: Option<FileHandle>,
    memory_current: Option<FileHandle>,
    memory_events: Option<FileHandle>,
    /// `memory.events` as last parsed: it stands while the file had no modification.
    memory_events_parsed: Option<cgroup::MemoryEvents>,
    io_stat: Option<FileHandle>,
    pressure: [Option<FileHandle>; 3],
}

impl ZoneFiles {
    /// `self` if it is `dir`'s, else none yet for `dir`.
    fn of(self, dir: Option<&Path>) -> Self {
        match dir {
            Some(dir) if dir == self.dir => self,
            Some(dir) => ZoneFiles { dir: dir.to_owned(), ..ZoneFiles::default() },
            None => ZoneFiles::default(),
        }
    }
}

/// A zone's limits: read when the zone is first seen and then once every
/// [`LIMITS_REFRESH_SAMPLES`] samples (spread by zone), since they change only when an
/// operator or orchestrator sets them; a changed limit shows within that many samples. Of
/// these, the memory limits (`memory.max`, `memory.high`, `memory.swap.max`), which only a
/// write to them changes, are read again only after inotify reported one.
#[derive(Debug, Default, Clone)]
struct Limits {
    /// The effective CPU quota (the tightest up the tree).
    quota: Option<cgroup::CpuQuota>,
    /// `cpu.weight`, or v1 `cpu.shares` converted.
    weight: Option<u32>,
    /// `memory.max` / v1 `memory.limit_in_bytes`.
    memory_max: Option<u64>,
    /// `memory.high` (v2 only).
    memory_high: Option<u64>,
    /// `memory.swap.max` / v1 `memory.memsw.limit_in_bytes` minus the memory limit.
    swap_max: Option<u64>,
    /// A v2 zone's `cgroup.controllers` (the controllers its parent enables for it); `None`
    /// where it cannot be read. Without `memory` or `io` there, the zone has no v2 files of
    /// that controller (a hybrid host's v2 groups have none) and they are not tried.
    v2_controllers: Option<V2Controllers>,
}

/// The controllers of a v2 `cgroup.controllers` the source reads files of (looked up
/// twice a zone each sample: parsed once, when the limits are read).
#[derive(Debug, Default, Clone, Copy)]
struct V2Controllers {
    cpu: bool,
    memory: bool,
    io: bool,
}

impl V2Controllers {
    fn parse(text: &str) -> Self {
        let mut found = Self::default();
        for controller in text.split_whitespace() {
            match controller {
                "cpu" => found.cpu = true,
                "memory" => found.memory = true,
                "io" => found.io = true,
                _ => {}
            }
        }
        found
    }
}

impl Limits {
    /// Whether the zone's v2 files of `controller` may be there (see `v2_controllers`).
    fn v2_has(&self, controller: fn(&V2Controllers) -> bool) -> bool {
        self.v2_controllers.as_ref().is_none_or(controller)
    }
}

/// How often a zone's limits are read again, in samples.
pub const LIMITS_REFRESH_SAMPLES: u64 = 10;

/// The Linux source.
#[derive(Debug)]
pub struct LinuxSource {
    opts: LinuxOptions,
    proc_dir: PathBuf,
    mounts: CgroupMounts,
    system: ExplicitSystemInfo,
    prev_core_busy: Vec<u64>,
    prev_vm: Option<(u64, u64, u64)>,
    prev_zone: HashMap<String, ZonePrev>,
    host_since_info: Option<u64>,
    /// Whether the host had swap at its last `meminfo` (`SwapTotal` above 0); without it,
    /// no cgroup has any swapped out and `memory.swap.current` is not read.
    host_has_swap: bool,
    /// The generator's and pid 1's network namespaces and the sample they were looked up
    /// in (see `host_namespaces`).
    host_namespaces: Option<(u64, Option<u64>, Option<u64>)>,
    /// The host's pressure files (`/proc/pressure/*`).
    host_pressure_files: [Option<FileHandle>; 3],
    /// CPU quotas of cgroup directories, emptied at each sample.
    quota_cache: HashMap<std::ffi::OsString, Option<cgroup::CpuQuota>>,
    /// The last sample's frames, handed back once sent: the next sample's zone frames are
    /// written into their memory ([`spare_frames`]).
    spare_frames: Vec<Packet>,
    /// Each cgroup's CPU-time signal by its key, shared by the processes of that cgroup
    /// (dropped with the last of them).
    signals: HashMap<String, Weak<CpuSignal>>,
    /// Memberships by the text of `/proc/PID/cgroup`, shared by the processes with that
    /// text (dropped with the last of them): a zone's processes are grouped by which one
    /// they share.
    memberships: HashMap<String, Weak<Membership>>,
    /// The processes of the last sample as last read.
    procs: HashMap<u32, ProcState>,
    /// Samples taken.
    samples: u64,
    /// Every file the source reads, kept open from one sample to the next.
    files: KeptFiles,
    /// `/proc`, kept open to list its processes.
    proc_listing: ProcListing,
    /// The hierarchies watched for processes moved between groups (`None`: not watched;
    /// every process's cgroups are read on a schedule).
    migrations: Option<MigrationWatch>,
    /// The processes' CPU clocks, where `/proc` is this process's pid namespace's (`None`
    /// elsewhere: a process's `stat` is then read wherever its zone's CPU time moved, and
    /// every sample in the host's root cgroup).
    clocks: Option<ProcessClocks>,
}

/// `/proc` kept open and listed again from its start at each sample, into a buffer kept
/// between samples (`std::fs::read_dir` opened it each sample and allocated twice an
/// entry), unless nothing says a process was made or reaped since the last listing: for the
/// kernel's procfs, its `loadavg` (see [`ProcessesMark`]); for a composed tree's `/proc` on
/// another file system (tests, the benchmark's tree), its directory's change time (see
/// [`DirectoryMark`]).
#[derive(Debug, Default)]
struct ProcListing {
    dir: Option<rustix::fd::OwnedFd>,
    buffer: Vec<std::mem::MaybeUninit<u8>>,
    /// The last listing's pids with their entries' inodes, handed back by the scan for the
    /// next (not grown afresh).
    pids: Vec<ListedPid>,
    /// Whether the open directory is the kernel's procfs, whose `loadavg` tells of every
    /// process made or reaped (a composed tree's does not: its directory's times do).
    kernel: bool,
    /// What said nothing changed just before the last complete listing (`None`: list next
    /// time).
    listed_at: Option<ListingMark>,
    /// Samples whose listing was skipped (for tests).
    skipped: u64,
    /// Tests: a composed tree's `/proc` taken for the kernel's (its `loadavg` written by the
    /// test).
    #[cfg(test)]
    take_for_kernel: bool,
}

/// What a listing of `/proc` holds by while it is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListingMark {
    Kernel(ProcessesMark),
    Directory(DirectoryMark),
}

/// A composed `/proc`'s directory as `fstat` gives it: its modification and change times
/// (nanoseconds), which any entry made, removed or renamed in it moves. Taken only once
/// both are [`DIRECTORY_SETTLE`] older than the clock: a change made later gets a later
/// time, so the mark differs, even where the file system's times are coarse (its clock
/// ticks finer than that, and it is this host's: a network file system's server clock is
/// not, and a `/proc` there is not what this is for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirectoryMark {
    modified_ns: i128,
    changed_ns: i128,
}

/// How much older than the clock a directory's times must be to be its mark.
const DIRECTORY_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

impl DirectoryMark {
    /// The mark of the open directory `dir`, if its times are settled: more than `settle`
    /// before now.
    fn settled(dir: &rustix::fd::OwnedFd, settle: std::time::Duration) -> Option<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
        // A directory removed lists nothing more, whatever its times say.
        let st = rustix::fs::fstat(dir).ok().filter(|st| st.st_nlink > 0)?;
        let ns = |sec: i64, nsec: u64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        #[allow(clippy::useless_conversion, reason = "the stat fields' types differ between targets")]
        let mark = Self {
            modified_ns: ns(st.st_mtime.into(), st.st_mtime_nsec as u64),
            changed_ns: ns(st.st_ctime.into(), st.st_ctime_nsec as u64),
        };
        let settled_before = i128::try_from(now.saturating_sub(settle).as_nanos()).ok()?;
        (mark.modified_ns.max(mark.changed_ns) < settled_before).then_some(mark)
    }
}

/// What `/proc/loadavg` says of the processes: the number of threads on the host
/// (`nr_threads`, lowered when a process or thread is reaped) and the last pid handed out
/// in the reader's pid namespace (moved by every process or thread made in it or in a
/// namespace below it: for a reader in the initial namespace, every one made). While both
/// are as they were, no pid appeared in or left any `/proc`: a listing made after the mark
/// was read still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessesMark {
    threads: u32,
    last_pid: u32,
}

/// A pid as `/proc` lists it, with the inode of its entry: the kernel makes a new one for a
/// new process (its old entry is flushed when a process is reaped), so a pid reused between
/// two listings comes with another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListedPid {
    pid: u32,
    ino: u64,
}

impl ProcessesMark {
    fn of(load: &procfs::LoadAverage) -> Self {
        Self { threads: load.max, last_pid: load.latest_pid }
    }
}

impl ProcListing {
    /// The process ids in `proc_dir` now; none if it cannot be listed. `mark` is what
    /// `proc_dir`'s `loadavg` said just now (read before this call): when the directory is
    /// the kernel's and it is what it said before the last listing, or the directory is
    /// another file system's and its [`DirectoryMark`] is as it was then, that listing is
    /// handed out again. Hand the list back to `pids` when done with it.
    fn pids(&mut self, proc_dir: &Path, mark: Option<ProcessesMark>) -> Vec<ListedPid> {
        self.pids_settled_after(proc_dir, mark, DIRECTORY_SETTLE)
    }

    /// [`pids`](Self::pids), taking a composed directory's times for its mark once they are
    /// `settle` old.
    fn pids_settled_after(
        &mut self,
        proc_dir: &Path,
        mark: Option<ProcessesMark>,
        settle: std::time::Duration,
    ) -> Vec<ListedPid> {
        use rustix::fs::{RawDir, SeekFrom, seek};
        let mut pids = std::mem::take(&mut self.pids);
        if self.dir.is_none() {
            self.open(proc_dir);
        }
        // Taken before the listing: a change after it moves the mark.
        let now = match &self.dir {
            Some(_) if self.kernel => mark.map(ListingMark::Kernel),
            Some(fd) => DirectoryMark::settled(fd, settle).map(ListingMark::Directory),
            None => None,
        };
        if now.is_some() && now == self.listed_at {
            self.skipped += 1;
            return pids;
        }
        self.listed_at = None;
        pids.clear();
        // Listed again from its start; opened again if that fails.
        if self.dir.as_ref().is_some_and(|fd| seek(fd, SeekFrom::Start(0)).is_err()) {
            self.open(proc_dir);
        }
        let Some(fd) = self.dir.as_ref() else { return pids };
        if self.buffer.is_empty() {
            self.buffer.resize(64 << 10, std::mem::MaybeUninit::uninit());
        }
        let mut listing = RawDir::new(fd, &mut self.buffer);
        while let Some(entry) = listing.next() {
            let Ok(entry) = entry else {
                // Listed in part: the next sample opens it again.
                self.dir = None;
                break;
            };
            if let Some(pid) = std::str::from_utf8(entry.file_name().to_bytes()).ok().and_then(|n| n.parse().ok()) {
                pids.push(ListedPid { pid, ino: entry.ino() });
            }
        }
        // Listed whole (a failed listing cleared `dir`): it holds while the mark does.
        if self.dir.is_some() {
            self.listed_at = now;
        }
        pids
    }

    /// Opens `proc_dir` (anew) and finds whether it is the kernel's procfs.
    fn open(&mut self, proc_dir: &Path) {
        use rustix::fs::{Mode, OFlags, open};
        self.listed_at = None;
        self.dir = open(proc_dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
        let procfs = |fd: &rustix::fd::OwnedFd| rustix::fs::fstatfs(fd).is_ok_and(|st| st.f_type as u64 == PROC_SUPER_MAGIC);
        self.kernel = self.dir.as_ref().is_some_and(procfs) && in_the_initial_pid_namespace(proc_dir) || self.taken_for_kernel();
    }

    fn taken_for_kernel(&self) -> bool {
        #[cfg(test)]
        return self.take_for_kernel;
        #[cfg(not(test))]
        false
    }
}

/// The host's files a sample reads before the zones' frames, for the `global` frame too.
struct EarlyHostReads {
    /// `loadavg`, read before the process listing it may spare.
    load: Option<procfs::LoadAverage>,
    /// `diskstats`, whose device names the zones' I/O rows use.
    diskstats: Vec<procfs::DiskStat>,
}

/// `f_type` of procfs.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// The inode of the initial pid namespace (the kernel's `PROC_PID_INIT_INO`).
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// Whether this process is in the initial pid namespace, by `proc_dir/self/ns/pid`. There,
/// `loadavg`'s last pid moves with every process or thread made on the host, in any
/// namespace; in a namespace of its own, only with those made in it or below it, while the
/// thread count is the host's: a process reaped in `proc_dir` while one is made outside
/// would leave both figures as they were. So a listing is handed out again only here.
fn in_the_initial_pid_namespace(proc_dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(proc_dir.join("self/ns/pid")).is_ok_and(|m| m.ino() == INITIAL_PID_NAMESPACE)
}

impl LinuxSource {
    /// Opens the source: finds the cgroup mounts below `opts.root`.
    pub fn new(opts: LinuxOptions) -> Result<Self, GeneratorError> {
        let proc_dir = opts.root.join("proc");
        let mountinfo_path = proc_dir.join("self/mountinfo");
        let mountinfo = std::fs::read_to_string(&mountinfo_path)
            .map_err(|e| GeneratorError::Read { path: mountinfo_path.display().to_string(), message: e.to_string() })?;
        let mounts = CgroupMounts::parse(&mountinfo, &opts.root);
        let roots = mounts.v2.iter().chain(mounts.v1.values()).cloned().collect();
        let migrations = MigrationWatch::new(roots, MAX_MIGRATION_WATCHES);
        let clocks = ProcessClocks::for_proc_dir(&proc_dir);
        let live = opts.root == Path::new("/");
        let system = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: if live { procfs::ticks_per_second() } else { 100 },
            page_size: if live { procfs::page_size() } else { 4096 },
            is_little_endian: cfg!(target_endian = "little"),
        };
        Ok(Self {
            opts,
            proc_dir,
            mounts,
            system,
            prev_core_busy: Vec::new(),
            prev_vm: None,
            prev_zone: HashMap::new(),
            host_since_info: None,
            host_has_swap: true,
            host_namespaces: None,
            host_pressure_files: [None; 3],
            quota_cache: HashMap::new(),
            spare_frames: Vec::new(),
            signals: HashMap::new(),
            memberships: HashMap::new(),
            procs: HashMap::new(),
            samples: 0,
            files: KeptFiles::with_open_file_limit(),
            proc_listing: ProcListing::default(),
            migrations,
            clocks,
        })
    }

    /// Entries of state kept between samples (processes of the last sample, their cgroups'
    /// memberships and CPU-time signals, zones of the last sample), for tests that zones and
    /// processes that went away left nothing behind.
    pub fn state_entries(&self) -> usize {
        self.procs.len() + self.signals.len() + self.memberships.len() + self.prev_zone.len()
    }

    /// The files kept open now (for tests that a zone or process that went away left none
    /// open), sorted.
    pub fn open_files(&self) -> Vec<PathBuf> {
        self.files.paths()
    }

    /// The pids of the processes the last sample knew, sorted (for tests that a process
    /// made or reaped between samples shows in the next).
    pub fn processes_known(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.procs.keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    /// How many inotify watches of the group at `dir` the source holds to see processes
    /// moved into it (`None`: moves are not watched), for tests.
    pub fn migration_watches_of(&self, dir: &Path) -> Option<usize> {
        self.migrations.as_ref().map(|m| m.watches_of(dir))
    }

    /// Samples that handed out the last listing of `/proc` again (see `ProcessesMark`).
    pub fn listings_spared(&self) -> u64 {
        self.proc_listing.skipped
    }

    fn read_err(path: &Path, e: impl std::fmt::Display) -> GeneratorError {
        GeneratorError::Read { path: path.display().to_string(), message: e.to_string() }
    }

    /// The `/proc` file `rel` read through the kept files and parsed; `None` if it cannot
    /// be read or parsed.
    fn proc_file<T: FromRead>(&self, rel: &str) -> Option<T> {
        self.files.parse(&self.proc_dir.join(rel), |t| T::from_read(t.as_bytes()).ok()).flatten()
    }

    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(1_000_000_000) / self.system.ticks_per_second.max(1)
    }

    /// Reads one process's `stat` and `cgroup` files below an open `/proc`: its start time
    /// and its sample; `None` if it exited meanwhile.
    fn read_process(&mut self, proc_dir: &Dir, pid: u32, membership: Option<Arc<Membership>>) -> Option<(u64, ProcSample)> {
        let stat = proc_dir.parse(&PidFile::new(pid, "stat"), |t| procfs::process::Stat::from_read(t.as_bytes()).ok())??;
        let membership = match membership {
            Some(m) => m,
            None => self.read_membership(proc_dir, pid)?,
        };
        let sample = ProcSample {
            pid,
            comm: Comm::from(stat.comm),
            cpu_ticks: stat.utime + stat.stime,
            processor: stat.processor.and_then(|c| u32::try_from(c).ok()),
            threads: u32::try_from(stat.num_threads).unwrap_or(0),
            membership,
            ran_ticks: None,
        };
        Some((stat.starttime, sample))
    }

    /// A process's cgroups, from its `/proc/PID/cgroup`: kept open only where it is read on a
    /// schedule (moves not watched), else read at first sight and when the process moves.
    fn read_membership(&mut self, proc_dir: &Dir, pid: u32) -> Option<Arc<Membership>> {
        let file = PidFile::new(pid, "cgroup");
        if self.migrations.is_some() {
            proc_dir.parse_unkept(&file, |t| self.membership(t))
        } else {
            proc_dir.parse(&file, |t| self.membership(t))
        }
    }

    /// The membership of `/proc/PID/cgroup` text, shared with every process of the same.
    fn membership(&mut self, text: &str) -> Arc<Membership> {
        if let Some(m) = self.memberships.get(text).and_then(Weak::upgrade) {
            return m;
        }
        let m = Arc::new(Membership::parse(text));
        self.memberships.insert(text.to_owned(), Arc::downgrade(&m));
        m
    }

    /// Reads a process now with its `known` cgroups (its own are read where `known` is
    /// `None` or the pid turns out reused), records it with its CPU since the last read, and
    /// notes on its zone's CPU-time signal when it may have been read before that time was
    /// (`before_signal`, or its cgroups just read). `run_time`: its run time read just now,
    /// if it was (see [`ProcState::stands_unless_it_ran`]).
    fn read_now(
        &mut self,
        proc_dir: &Dir,
        listed: ListedPid,
        known: Option<Arc<Membership>>,
        before_signal: bool,
        run_time: Option<Option<u64>>,
    ) -> Option<ProcSample> {
        let ListedPid { pid, ino } = listed;
        // Its run time first (before its `stat`: if it runs in between, the next sample sees
        // it moved).
        let ran = match run_time {
            Some(now) => now,
            None => self.clocks.and_then(|c| c.cpu_ns(pid)),
        };
        let previous = self.procs.get(&pid).map(|s| (s.starttime, s.last.cpu_ticks, s.netns, s.signal.clone()));
        let mut cgroups_read = known.is_none();
        let (mut starttime, mut sample) = self.read_process(proc_dir, pid, known)?;
        if !cgroups_read && previous.as_ref().map(|p| p.0) != Some(starttime) {
            // A reused pid: the new process's cgroups are its own.
            (starttime, sample) = self.read_process(proc_dir, pid, None)?;
            cgroups_read = true;
        }
        let same = previous.filter(|p| p.0 == starttime);
        sample.ran_ticks = same.as_ref().map(|p| sample.cpu_ticks.saturating_sub(p.1));
        // What was found from its cgroups holds while they are the ones last read.
        let (netns, signal) = match same.filter(|_| !cgroups_read) {
            Some((_, _, netns, signal)) => (netns, signal),
            None => (None, self.cpu_signal(&sample.membership)),
        };
        if let Some(signal) = signal.as_ref().filter(|_| before_signal || cgroups_read) {
            signal.scan().read_first_in = Some(self.samples);
        }
        self.procs.insert(pid, ProcState { starttime, last: sample.clone(), netns, signal, listed_in: self.samples, ino, ran });
        Some(sample)
    }

    /// The directory of the zone's group in v1 controller `controller`: only where that
    /// group is the zone's own (same path). On a hybrid host a v2 zone's v1 groups are often
    /// an ancestor (`user.slice` beside `user.slice/.../session-3.scope`) or the root, whose
    /// figures are not the zone's.
    fn own_v1_dir(&self, m: &Membership, controller: &str) -> Option<PathBuf> {
        let zone = m.zone_path()?;
        let p = m.v1.get(controller).filter(|p| p.as_str() == zone)?;
        self.mounts.v1_dir(controller, p)
    }

    /// Where a process's zone keeps its CPU time: a key, the file, and whether it is v2's
    /// `cpu.stat` (µs) or v1's `cpuacct.usage` (ns); the one signal of that cgroup. `None`
    /// for the host's root cgroup or without CPU accounting.
    fn cpu_signal(&mut self, m: &Membership) -> Option<Arc<CpuSignal>> {
        let (key, file, v2) = if let Some(p) = m.v2.as_deref().filter(|p| *p != "/" && m.zone_path() == Some(*p)) {
            (format!("v2:{p}"), self.mounts.v2_dir(p)?.join("cpu.stat"), true)
        } else {
            let dir = self.own_v1_dir(m, "cpuacct")?;
            (format!("v1:{}", dir.display()), dir.join("cpuacct.usage"), false)
        };
        if let Some(signal) = self.signals.get(&key).and_then(Weak::upgrade) {
            return Some(signal);
        }
        let signal = Arc::new(CpuSignal { file, v2, scan: Mutex::default() });
        self.signals.insert(key, Arc::downgrade(&signal));
        Some(signal)
    }

    /// Every process's CPU time, threads, last CPU and cgroups. `/proc/PID/cgroup` is read
    /// as [`MEMBERSHIP_REFRESH_SAMPLES`] says. `/proc/PID/stat` is read for a new process,
    /// for one in the host's root cgroup, and for a process of a zone whose CPU time moved
    /// since the last sample, but not where its CPU clock did not move ([`process_clock`]:
    /// it did not run); a process of a zone whose CPU time did not move did not run,
    /// so its figures as last read stand (reading `stat` of 1,000 processes costs
    /// about 10 ms of CPU on a 2-core VM, twice the whole source's budget at one sample a
    /// second). Files are read through the kept files (open from one sample to the next).
    fn scan_processes(&mut self, mark: Option<ProcessesMark>) -> Vec<ProcSample> {
        let pids = self.proc_listing.pids(&self.proc_dir, mark);
        let proc_dir = Dir::new(&self.files, &self.proc_dir);
        let mut out = Vec::with_capacity(pids.len());
        let samples = self.samples;
        let clocks = self.clocks;
        // Processes moved to other groups since the last sample, where that is known. A watch
        // that gave up (its events of this call lost with it) is dropped: every process's
        // cgroups are read now, then on the schedule.
        let moved = match self.migrations.as_mut().map(MigrationWatch::moved) {
            Some(None) => {
                self.migrations = None;
                Some(Moved::Everything)
            }
            found => found.flatten(),
        };
        for &listed in &pids {
            let pid = listed.pid;
            // On a schedule spread over the samples by pid: a process's namespace is looked
            // up again, and its cgroups read again where moves are not watched.
            let scheduled = (samples + u64::from(pid)).is_multiple_of(MEMBERSHIP_REFRESH_SAMPLES);
            let due = match &moved {
                None => scheduled,
                Some(Moved::Everything) => true,
                Some(Moved::Pids(pids)) => {
                    pids.binary_search(&pid).is_ok() || (samples + u64::from(pid)).is_multiple_of(MEMBERSHIP_BACKSTOP_SAMPLES)
                }
            };
            // Most processes: known, in a zone, nothing due, their zone's CPU time unmoved
            // (its signal read at the first of its processes listed): their figures stand,
            // with their state looked up once.
            if !due
                && !scheduled
                && let Some(state) = self.procs.get_mut(&pid).filter(|s| s.ino == listed.ino)
                && state.last.cgroup_path().is_some()
                && state.signal.as_deref().is_some_and(|signal| !Self::zone_time_moved(&self.files, signal, samples))
            {
                out.push(state.stands(samples));
                continue;
            }
            // Its cgroups and its zone's CPU-time signal as last read, in one lookup; none
            // for a pid whose entry is another inode (another process).
            let (mut known, signal) = match self.procs.get(&pid).filter(|state| state.ino == listed.ino) {
                Some(state) => (Some(Arc::clone(&state.last.membership)), state.signal.clone()),
                None => (None, None),
            };
            if due && known.is_some() {
                let now = self.read_membership(&proc_dir, pid);
                known = known.filter(|m| now.as_ref().is_some_and(|now| Arc::ptr_eq(now, m)));
            }
            if scheduled && let Some(state) = self.procs.get_mut(&pid) {
                state.netns = None;
            }
            // Cgroups unchanged (the signal found with them holds): its zone's time first,
            // then, where that moved, its own run time.
            if known.as_ref().is_some_and(|m| m.zone_path().is_some()) {
                let zone_moved = signal.as_deref().is_none_or(|signal| Self::zone_time_moved(&self.files, signal, samples));
                let standing = match self.procs.get_mut(&pid) {
                    Some(state) if !zone_moved => Ok(state.stands(samples)),
                    Some(state) => state.stands_unless_it_ran(clocks, pid, samples),
                    None => Err(None),
                };
                match standing {
                    Ok(sample) => out.push(sample),
                    Err(run_time) => out.extend(self.read_now(&proc_dir, listed, known, false, run_time)),
                }
                continue;
            }
            // In the root cgroup, and it has not run since its `stat` was read: its figures
            // stand. Else (new, moved to other cgroups, or in the root cgroup and it ran): read
            // now.
            let standing = match self.procs.get_mut(&pid).filter(|_| known.is_some()) {
                Some(state) => state.stands_unless_it_ran(clocks, pid, samples),
                None => Err(None),
            };
            match standing {
                Ok(sample) => out.push(sample),
                Err(run_time) => out.extend(self.read_now(&proc_dir, listed, known, true, run_time)),
            }
        }
        // A zone's time read now is the next sample's baseline, unless a process of the
        // zone was read before it (it may have run in between: all of the zone is read again
        // next sample) or it was not read.
        for signal in self.signals.values().filter_map(Weak::upgrade) {
            let mut scan = signal.scan();
            scan.baseline = scan.now.filter(|_| scan.read_in == Some(samples) && scan.read_first_in != Some(samples));
        }
        self.proc_listing.pids = pids;
        out
    }

    /// Whether a zone's CPU time moved since its baseline (the last sample's, where that is
    /// one; true where it cannot be read): read at the first of its processes listed in a
    /// sample, before any of them is read, and the same answer for the others.
    fn zone_time_moved(files: &KeptFiles, signal: &CpuSignal, samples: u64) -> bool {
        let mut scan = signal.scan();
        if scan.read_in != Some(samples) {
            let (now, cpu_stat) = if signal.v2 {
                let stat = files.parse_whole_in_one_read_by(&mut scan.file, &signal.file, cgroup::CpuStat::parse_bytes);
                (stat.and_then(|s| s.usage_us), stat)
            } else {
                (files.number(&signal.file), None)
            };
            scan.moved = now.is_none() || now != scan.baseline;
            scan.now = now;
            scan.cpu_stat = cpu_stat;
            scan.read_in = Some(samples);
        }
        scan.moved
    }

    /// The busiest processes of `procs`, with CPU over the interval in 4999 Hz ticks, written
    /// in the memory of `spare` (the last sample's rows): of those that ran in the interval,
    /// and those seen for the first time (their CPU over it not known: usage NULL, after the
    /// others). A process that did not run has no row, as in 2013, where a process was
    /// reported only when the 4999 Hz profile found it on a core.
    fn busiest(&self, procs: &[&ProcSample], spare: Vec<Process>) -> Vec<Process> {
        let mut with_delta: Vec<(u64, &ProcSample)> =
            procs.iter().filter(|p| p.ran_ticks != Some(0)).map(|p| (p.ran_ticks.unwrap_or(0), *p)).collect();
        with_delta.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.pid.cmp(&b.1.pid)));
        let mut rows = Refill::new(spare);
        for (delta, p) in with_delta.into_iter().take(self.opts.top_processes) {
            let old = rows.old();
            rows.push(Process {
                pid: Some(p.pid),
                execname: Some(text(old.execname, p.comm.as_str())),
                usage: p.ran_ticks.map(|_| ns_to_ticks(self.ticks_to_ns(delta))),
                cpu: p.processor,
            });
        }
        rows.done()
    }

    /// The network namespace whose counters `global` reports: the one `proc/net/dev` shows,
    /// the generator's own (`proc/self/ns/net`; `proc/1/ns/net` where that cannot be read,
    /// as in composed trees); and pid 1's (the host's, when the generator runs in a
    /// namespace of its own with the host's pids). A zone in either has no network rows of
    /// its own. Looked up every [`LIMITS_REFRESH_SAMPLES`] samples: neither process changes
    /// namespaces in practice.
    fn host_namespaces(&mut self) -> (Option<u64>, Option<u64>) {
        if let Some((read_in, own, pid1)) = self.host_namespaces
            && self.samples - read_in < LIMITS_REFRESH_SAMPLES
        {
            return (own, pid1);
        }
        let pid1 = host::namespace_inode(&self.proc_dir.join("1/ns/net"));
        let own = host::namespace_inode(&self.proc_dir.join("self/ns/net")).or(pid1);
        self.host_namespaces = Some((self.samples, own, pid1));
        (own, pid1)
    }

    /// The network namespace of process `pid` (its inode): as looked up before, else now.
    fn netns_of(&mut self, pid: u32) -> Option<u64> {
        if let Some(ns) = self.procs.get(&pid).and_then(|s| s.netns) {
            return Some(ns);
        }
        let ns = host::namespace_inode(&self.proc_dir.join(pid.to_string()).join("ns/net"));
        if let Some(state) = self.procs.get_mut(&pid) {
            state.netns = ns;
        }
        ns
    }

    fn ticks_to_us(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(1_000_000) / self.system.ticks_per_second.max(1)
    }

    /// Whether the zone's `zone_info` row is due in this sample (its first, then every
    /// `zone_info_every` samples); counts the sample.
    fn info_due(since: &mut Option<u64>, every: u64) -> bool {
        let due = since.is_none_or(|n| n + 1 >= every.max(1));
        *since = Some(if due { 0 } else { since.unwrap_or(0) + 1 });
        due
    }

    fn global_frame(
        &mut self,
        time_us: i64,
        procs: &[ProcSample],
        zones: &[&str],
        dropped: usize,
        early: &EarlyHostReads,
        own_netns: Option<u64>,
    ) -> Result<Packet, GeneratorError> {
        let stat_path = self.proc_dir.join("stat");
        // The host's files are kept open too (opening them again each sample was a twentieth
        // of a live sample's cost).
        let stat_text = self.files.text(&stat_path).ok_or_else(|| Self::read_err(&stat_path, "cannot be read"))?;
        let stat = <KernelStats as FromReadSI>::from_read(stat_text.as_bytes(), &self.system)
            .map_err(|e| Self::read_err(&stat_path, e))?;
        let busy: Vec<u64> = stat
            .cpu_time
            .iter()
            .map(|c| c.user + c.nice + c.system + c.irq.unwrap_or(0) + c.softirq.unwrap_or(0) + c.steal.unwrap_or(0))
            .collect();
        let cpu = busy
            .iter()
            .enumerate()
            .map(|(core, &b)| Cpu {
                core: Some(core as u32),
                usage: self.prev_core_busy.get(core).map(|&prev| ns_to_ticks(self.ticks_to_ns(b.saturating_sub(prev)))),
            })
            .collect();
        self.prev_core_busy = busy;
        let total = &stat.total;
        let cpu_time = packet::CpuTime {
            user_us: Some(self.ticks_to_us(total.user + total.nice)),
            system_us: Some(self.ticks_to_us(total.system + total.irq.unwrap_or(0) + total.softirq.unwrap_or(0))),
            iowait_us: total.iowait.map(|t| self.ticks_to_us(t)),
            ..Default::default()
        };

        let page = self.system.page_size.max(1);
        let meminfo_path = self.proc_dir.join("meminfo");
        let meminfo = self.files.text(&meminfo_path).ok_or_else(|| Self::read_err(&meminfo_path, "cannot be read"))?;
        let mi = Meminfo::from_read(meminfo.as_bytes()).map_err(|e| Self::read_err(&meminfo_path, e))?;
        self.host_has_swap = mi.swap_total > 0;
        // `vmstat`'s 180 lines split as a flat file (procfs's `VmStat` made a map of them:
        // two allocations a line, each sample); the counters read here are never negative.
        let vm = self.files.parse(&self.proc_dir.join("vmstat"), |t| cgroup::FlatFile::from(t)).unwrap_or_default();
        let vm_get = |k: &str| vm.get(k);
        let nalloc: Option<u64> = {
            let s: u64 = vm.entries().filter(|(k, _)| k.starts_with("pgalloc_")).filter_map(|(_, v)| v).sum();
            (s > 0).then_some(s)
        };
        let faults = (vm_get("pgmajfault"), vm_get("pgfault"), vm_get("pswpin"));
        let delta = |now: Option<u64>, prev: Option<u64>| Some(u32::try_from(now?.saturating_sub(prev?)).unwrap_or(u32::MAX));
        let (pmaj, pall, ppgin) = self.prev_vm.map_or((None, None, None), |(a, b, c)| (Some(a), Some(b), Some(c)));
        let mem = Mem {
            rss: Some(mi.mem_total.saturating_sub(mi.mem_available.unwrap_or(mi.mem_free))),
            physcap: Some(mi.mem_total),
            swap: Some(mi.swap_total.saturating_sub(mi.swap_free)),
            swapcap: Some(mi.swap_total),
            physmem: Some(mi.mem_total / page),
            pp_kernel: Some((mi.slab + mi.kernel_stack.unwrap_or(0) + mi.page_tables.unwrap_or(0)) / page),
            freemem: Some(mi.mem_free / page),
            nalloc_calls: nalloc,
            nfree_calls: vm_get("pgfree"),
            maj_fault: delta(faults.0, pmaj),
            as_fault: delta(faults.1, pall),
            pgin: delta(faults.2, ppgin),
        };
        if let (Some(a), Some(b), Some(c)) = faults {
            self.prev_vm = Some((a, b, c));
        }
        let usage = mi.mem_total.saturating_sub(mi.mem_free);
        let memory = packet::Memory {
            usage: Some(usage),
            working_set: mi.inactive_file.map(|i| usage.saturating_sub(i)),
            anon: mi.anon_pages,
            file: Some(mi.buffers + mi.cached),
            shmem: mi.shmem,
            kernel: mi.kernel_stack.zip(mi.page_tables).map(|(k, p)| mi.slab + k + p),
            slab: Some(mi.slab),
            inactive_file: mi.inactive_file,
            limit: Some(mi.mem_total),
            swap: Some(mi.swap_total.saturating_sub(mi.swap_free)),
            swap_limit: Some(mi.swap_total),
            ..Default::default()
        };

        let (net, link) = read_net_dev(&self.files, &self.proc_dir.join("net/dev"), own_netns);
        let (disk, io) = self.host_disks(&early.diskstats);
        let proc_dir = Dir::new(&self.files, &self.proc_dir);
        let mut system =
            host::system_row(&proc_dir, early.load.as_ref(), stat.procs_running, stat.procs_blocked, vm_get("oom_kill"));
        system.zones_seen = Some(u32::try_from(zones.len() + dropped).unwrap_or(u32::MAX));
        system.zones_dropped = Some(u32::try_from(dropped).unwrap_or(u32::MAX));
        let filesystem = self
            .files
            .text(&self.proc_dir.join("self/mountinfo"))
            .map(|m| host::filesystem_rows(&m, &self.opts.root))
            .unwrap_or_default();
        let zone_info = Self::info_due(&mut self.host_since_info, self.opts.zone_info_every).then(|| packet::ZoneInfo {
            cgroup_path: Some("/".to_owned()),
            kind: Some("host".to_owned()),
            ..Default::default()
        });
        let all: Vec<&ProcSample> = procs.iter().collect();
        Ok(Packet {
            name: "global".to_owned(),
            time: (time_us.max(0) / 1_000_000) as u64,
            threads: Some(procs.iter().map(|p| p.threads).sum()),
            processes: Some(procs.len() as u32),
            cpu,
            mem: vec![mem],
            net,
            disk,
            process: self.busiest(&all, Vec::new()),
            zonename: std::iter::once("global").chain(zones.iter().copied()).map(str::to_owned).collect(),
            cpuqueue: vec![Cpuqueue { core: None, length: stat.procs_running, amount: Some(1) }],
            cpu_time: vec![cpu_time],
            pressure: host::pressure_rows(
                &Dir::new(&self.files, &self.proc_dir.join("pressure")),
                false,
                &mut self.host_pressure_files,
                Vec::new(),
            ),
            memory: vec![memory],
            io,
            link,
            system: vec![system],
            filesystem,
            zone_info: zone_info.into_iter().collect(),
            ..Default::default()
        })
    }

    /// Whole disks from `/proc/diskstats` (those listed in `/sys/block`, minus loop and ram
    /// devices): for `disk`, cumulative bytes, operations, busy time (`rtime`) and the
    /// time-weighted queue length (`rlentime`), as illumos' `kstat_io` reports them; for
    /// `io`, the same devices with discards, read, write and discard times and I/Os in flight.
    fn host_disks(&self, stats: &[procfs::DiskStat]) -> (Vec<Disk>, Vec<packet::Io>) {
        let sys_block = self.opts.root.join("sys/block");
        let ms = |v: u64| v.saturating_mul(1_000_000);
        stats
            .iter()
            .filter(|d| !d.name.starts_with("loop") && !d.name.starts_with("ram") && sys_block.join(&d.name).exists())
            .cloned()
            .map(|d| {
                let io = packet::Io {
                    instance: d.name.clone(),
                    rbytes: Some(d.sectors_read.saturating_mul(512)),
                    wbytes: Some(d.sectors_written.saturating_mul(512)),
                    rios: Some(d.reads),
                    wios: Some(d.writes),
                    dbytes: d.sectors_discarded.map(|s| s.saturating_mul(512)),
                    dios: d.discards,
                    read_ns: Some(ms(d.time_reading)),
                    write_ns: Some(ms(d.time_writing)),
                    discard_ns: d.time_discarding.map(ms),
                    in_progress: Some(u32::try_from(d.in_progress).unwrap_or(u32::MAX)),
                    busy_ns: Some(ms(d.time_in_progress)),
                };
                let disk = Disk {
                    instance: d.name,
                    nread: Some(d.sectors_read * 512),
                    nwritten: Some(d.sectors_written * 512),
                    reads: Some(d.reads as u32),
                    writes: Some(d.writes as u32),
                    rtime: Some(d.time_in_progress * 1_000_000),
                    wtime: None,
                    rlentime: Some(d.weighted_time_in_progress * 1_000_000),
                    wlentime: None,
                    harderror: None,
                    softerror: None,
                    tranerror: None,
                };
                (disk, io)
            })
            .unzip()
    }

    /// Device names by `MAJ:MIN`, from the `/proc/diskstats` the host's rows were built from.
    fn device_names(stats: &[procfs::DiskStat]) -> HashMap<String, String> {
        stats.iter().map(|d| (format!("{}:{}", d.major, d.minor), d.name.clone())).collect()
    }

    /// The quota of one cgroup directory, read once a sample (zones share ancestors).
    fn quota_of(&mut self, dir: &Path, v2: bool) -> Option<cgroup::CpuQuota> {
        if let Some(q) = self.quota_cache.get(dir.as_os_str()) {
            return *q;
        }
        let q = if v2 {
            self.files.parse_whole_in_one_read_below(dir, "cpu.max", cgroup::parse_cpu_max).flatten()
        } else {
            cgroup::read_v1_quota(&Dir::new(&self.files, dir))
        };
        self.quota_cache.insert(dir.as_os_str().to_owned(), q);
        q
    }

    /// A zone's limits, read now (see [`Limits`]).
    fn zone_limits(&mut self, m: &Membership, v2: Option<&Dir>, v1_memory: Option<&Path>) -> Limits {
        if let Some(dir) = v2 {
            let path = dir.path();
            let top = self.mounts.v2.clone().unwrap_or_else(|| path.to_owned());
            let mut limits =
                Limits { v2_controllers: dir.parse("cgroup.controllers", V2Controllers::parse), ..Limits::default() };
            if limits.v2_has(|c| c.cpu) {
                limits.quota = cgroup::effective_quota(path, &top, |d| self.quota_of(d, true));
                limits.weight = dir.number("cpu.weight").and_then(|w| u32::try_from(w).ok());
            }
            if limits.v2_has(|c| c.memory) {
                // Only a write changes these (inotify reports it): a `pread` each only then.
                // After `cpu.stat`, read this sample (a cgroup gone fails that read).
                limits.memory_max = dir.number_when_modified("memory.max");
                limits.memory_high = dir.number_when_modified("memory.high");
                limits.swap_max = dir.number_when_modified("memory.swap.max");
            }
            return limits;
        }
        let cpu_dir = self.own_v1_dir(m, "cpu");
        let quota = match &cpu_dir {
            Some(d) => {
                let top = self.mounts.v1.get("cpu").cloned().unwrap_or_else(|| d.clone());
                cgroup::effective_quota(d, &top, |d| self.quota_of(d, false))
            }
            None => None,
        };
        let memory_max = v1_memory.and_then(|d| self.files.number(&d.join("memory.limit_in_bytes")));
        Limits {
            quota,
            weight: cpu_dir.and_then(|d| self.files.number(&d.join("cpu.shares"))).map(cgroup::shares_to_weight),
            memory_max,
            memory_high: None,
            v2_controllers: None,
            // memsw is memory + swap; swap alone is the difference.
            swap_max: v1_memory
                .and_then(|d| self.files.number(&d.join("memory.memsw.limit_in_bytes")))
                .zip(memory_max)
                .map(|(a, b)| a.saturating_sub(b)),
        }
    }

    /// `cpu_time` of a zone: v2 `cpu.stat` (passed in, read once); else v1 `cpuacct.stat`
    /// and `cpu.stat`; limits from `limits`.
    fn zone_cpu_time(&self, m: &Membership, v2: Option<&cgroup::CpuStat>, limits: &Limits) -> Option<packet::CpuTime> {
        let quota = limits.quota;
        if let Some(st) = v2 {
            return Some(packet::CpuTime {
                user_us: st.user_us,
                system_us: st.system_us,
                periods: st.periods,
                throttled_periods: st.throttled_periods,
                throttled_us: st.throttled_us,
                quota_us: quota.map(|q| q.quota_us),
                period_us: quota.map(|q| q.period_us),
                limit_millicores: quota.map(cgroup::CpuQuota::millicores),
                weight: limits.weight,
                iowait_us: None,
            });
        }
        let cpu_dir = self.own_v1_dir(m, "cpu");
        let acct_dir = self.own_v1_dir(m, "cpuacct");
        if cpu_dir.is_none() && acct_dir.is_none() {
            return None;
        }
        let acct = acct_dir.and_then(|d| self.files.flat(&d.join("cpuacct.stat"))).unwrap_or_default();
        let st = cpu_dir.as_ref().and_then(|d| self.files.flat(&d.join("cpu.stat"))).unwrap_or_default();
        Some(packet::CpuTime {
            user_us: acct.get("user").map(|t| self.ticks_to_us(t)),
            system_us: acct.get("system").map(|t| self.ticks_to_us(t)),
            periods: st.get("nr_periods"),
            throttled_periods: st.get("nr_throttled"),
            throttled_us: st.get("throttled_time").map(|ns| ns / 1000),
            quota_us: quota.map(|q| q.quota_us),
            period_us: quota.map(|q| q.period_us),
            limit_millicores: quota.map(cgroup::CpuQuota::millicores),
            weight: limits.weight,
            iowait_us: None,
        })
    }

    /// `memory` of a zone and its cumulative major faults: v2 `memory.*` files (with
    /// `memory.stat` passed in, read once), else v1's. `None` without memory accounting.
    fn zone_memory(
        files: &KeptFiles,
        host_has_swap: bool,
        v2: Option<(&Dir, &cgroup::MemoryStat)>,
        handles: &mut ZoneFiles,
        v1_dir: Option<&Path>,
        limits: &Limits,
    ) -> Option<(packet::Memory, Option<u64>)> {
        if let Some((dir, st)) = v2 {
            let usage = dir.parse_by(&mut handles.memory_current, "memory.current", cgroup::parse_limit).flatten();
            // Read only when the kernel reports it modified (parsed then too). After a file
            // of the same directory (`memory.stat`, `memory.current`): a cgroup gone and made
            // again at its path fails those reads, which close its other kept files too.
            let ev = match handles.memory_events_parsed.filter(|_| files.unmodified_by(handles.memory_events)) {
                Some(ev) => ev,
                None => {
                    let ev = dir.parse_when_modified_by(&mut handles.memory_events, "memory.events", cgroup::MemoryEvents::parse);
                    handles.memory_events_parsed = ev;
                    ev.unwrap_or_default()
                }
            };
            let inactive_file = st.inactive_file;
            let memory = packet::Memory {
                usage,
                working_set: usage.zip(inactive_file).map(|(u, i)| u.saturating_sub(i)),
                anon: st.anon,
                file: st.file,
                shmem: st.shmem,
                kernel: st.kernel(),
                slab: st.slab(),
                inactive_file,
                limit: limits.memory_max,
                high: limits.memory_high,
                // No swap on the host: none swapped out (a swap device added later shows in
                // `meminfo` first, read before the zones each sample).
                swap: if host_has_swap { dir.number("memory.swap.current") } else { Some(0) },
                swap_limit: limits.swap_max,
                oom: ev.oom,
                oom_kill: ev.oom_kill,
                max_events: ev.max,
                high_events: ev.high,
            };
            return Some((memory, st.pgmajfault));
        }
        let dir = Dir::new(files, v1_dir?);
        let st = dir.flat("memory.stat")?;
        let get = |k: &str| st.get(k);
        let usage = dir.number("memory.usage_in_bytes");
        let inactive_file = get("total_inactive_file");
        let oom_control = dir.flat("memory.oom_control").unwrap_or_default();
        let memory = packet::Memory {
            usage,
            working_set: usage.zip(inactive_file).map(|(u, i)| u.saturating_sub(i)),
            anon: get("total_rss").or_else(|| get("rss")),
            file: get("total_cache"),
            shmem: get("total_shmem"),
            kernel: dir.number("memory.kmem.usage_in_bytes"),
            slab: None,
            inactive_file,
            limit: limits.memory_max,
            high: None,
            // memsw is memory + swap; swap alone is the difference.
            swap: dir.number("memory.memsw.usage_in_bytes").zip(usage).map(|(a, b)| a.saturating_sub(b)),
            swap_limit: limits.swap_max,
            oom: None,
            oom_kill: oom_control.get("oom_kill"),
            max_events: dir.number("memory.failcnt"),
            high_events: None,
        };
        Some((memory, get("total_pgmajfault").or_else(|| get("pgmajfault"))))
    }

    fn zone_frame(
        &mut self,
        zone: &SampledZone<'_>,
        time_us: i64,
        devices: &HashMap<String, String>,
        own_netns: Option<(u32, u64)>,
        spare: Packet,
    ) -> Packet {
        let members = &zone.members;
        let Some(first) = members.first() else { return Packet::default() };
        // The memory of a frame of the last sample (its lists and strings; no figure).
        let Packet {
            name: spare_name,
            mut cpu,
            mem: mut mem_rows,
            disk: spare_disk,
            process: spare_process,
            cpu_time: mut cpu_time_rows,
            pressure: spare_pressure,
            memory: mut memory_rows,
            io: spare_io,
            ..
        } = spare;
        cpu.clear();
        cpu_time_rows.clear();
        mem_rows.clear();
        memory_rows.clear();
        let m = &first.membership;
        // Taken out and put back under the same key (no new copy of the name).
        let (key, mut prev) = self.prev_zone.remove_entry(&zone.name).unwrap_or_else(|| (zone.name.clone(), ZonePrev::default()));
        let mut next = ZonePrev::default();

        // CPU: v1 cpuacct gives a per-core split (ns); v2 only a total (µs), reported as one
        // row with no core. Each cgroup file is read once a sample.
        let v2_dir = m.v2.as_deref().filter(|p| *p != "/").and_then(|p| self.mounts.v2_dir(p));
        let v2 = v2_dir.as_deref().map(|d| Dir::new(&self.files, d));
        let mut handles = std::mem::take(&mut prev.files).of(v2_dir.as_deref());
        // The `cpu.stat` the process scan read this sample, else read now.
        let samples = self.samples;
        let scanned = self.procs.get(&first.pid).and_then(|s| s.signal.as_ref()).filter(|s| s.v2).and_then(|s| {
            let mut scan = s.scan();
            scan.cpu_stat.take().filter(|_| scan.read_in == Some(samples))
        });
        let v2_cpu_stat = scanned
            .or_else(|| v2.as_ref().and_then(|d| d.parse_by(&mut handles.cpu_stat, "cpu.stat", cgroup::CpuStat::parse_bytes)));
        // The zone's limits and v2 controllers, read every LIMITS_REFRESH_SAMPLES samples
        // (spread over the samples by the zone's name).
        let v1_memory_dir = self.own_v1_dir(m, "memory");
        let spread = zone.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let due = spread.wrapping_add(self.samples).is_multiple_of(LIMITS_REFRESH_SAMPLES);
        let limits = match prev.limits.filter(|_| !due) {
            Some(limits) => limits,
            None => self.zone_limits(m, v2.as_ref(), v1_memory_dir.as_deref()),
        };
        let v2_memory_stat = v2
            .as_ref()
            .filter(|_| limits.v2_has(|c| c.memory))
            .and_then(|d| d.parse_by(&mut handles.memory_stat, "memory.stat", cgroup::MemoryStat::parse_bytes));
        let v2_io_there = limits.v2_has(|c| c.io);
        let percpu = self
            .own_v1_dir(m, "cpuacct")
            .and_then(|d| {
                self.files.parse_whole_in_one_read(&d.join("cpuacct.usage_percpu"), |t| {
                    t.split_whitespace().filter_map(|v| v.parse::<u64>().ok()).collect::<Vec<_>>()
                })
            })
            .filter(|v| !v.is_empty());
        if let Some(percpu) = percpu {
            for (core, ns) in percpu.iter().enumerate() {
                let usage = prev.percpu_ns.get(core).map(|p| ns_to_ticks(ns.saturating_sub(*p)));
                cpu.push(Cpu { core: Some(core as u32), usage });
            }
            next.percpu_ns = percpu;
        } else if let Some(st) = &v2_cpu_stat {
            let usage_us = st.usage_us;
            if let Some(now) = usage_us {
                cpu.push(Cpu {
                    core: None,
                    usage: prev.usage_us.map(|p| ns_to_ticks(now.saturating_sub(p).saturating_mul(1000))),
                });
            }
            next.usage_us = usage_us;
        }

        // Memory: v2 files when the zone is a v2 group with memory accounting, else v1 (only
        // the zone's own v1 group); the 2013 `mem` row is a part of the `memory` row.
        let v2_memory = v2.as_ref().zip(v2_memory_stat.as_ref());
        let (memory, majflt) = match Self::zone_memory(
            &self.files,
            self.host_has_swap,
            v2_memory,
            &mut handles,
            v1_memory_dir.as_deref(),
            &limits,
        ) {
            Some((memory, majflt)) => (Some(memory), majflt),
            None => (None, None),
        };
        let mem = Mem {
            rss: memory.as_ref().and_then(|m| m.anon),
            physcap: memory.as_ref().and_then(|m| m.limit),
            swap: memory.as_ref().and_then(|m| m.swap),
            swapcap: memory.as_ref().and_then(|m| m.swap_limit),
            maj_fault: majflt.zip(prev.majflt).map(|(a, b)| u32::try_from(a.saturating_sub(b)).unwrap_or(u32::MAX)),
            ..Mem::default()
        };
        next.majflt = majflt;
        let cpu_time = self.zone_cpu_time(m, v2_cpu_stat.as_ref(), &limits);
        next.limits = Some(limits);
        let pressure = match v2.as_ref() {
            Some(d) => host::pressure_rows(d, true, &mut handles.pressure, spare_pressure),
            None => Vec::new(),
        };

        // Disk I/O per device.
        let v2_io =
            v2.as_ref().filter(|_| v2_io_there).and_then(|d| d.parse_by(&mut handles.io_stat, "io.stat", cgroup::parse_io_stat));
        let io: Vec<(String, DeviceIo)> = if let Some(io) = v2_io {
            io
        } else if let Some(dir) = self.own_v1_dir(m, "blkio") {
            let b = self.files.text_whole_in_one_read(&dir.join("blkio.throttle.io_service_bytes")).unwrap_or_default();
            let o = self.files.text_whole_in_one_read(&dir.join("blkio.throttle.io_serviced")).unwrap_or_default();
            cgroup::parse_blkio(&b, &o).into_iter().collect()
        } else {
            Vec::new()
        };
        let mut io: Vec<(String, DeviceIo)> =
            io.into_iter().map(|(dev, v)| (devices.get(&dev).cloned().unwrap_or(dev), v)).collect();
        // One row a device (its first line where a file named it twice).
        io.sort_by(|a, b| a.0.cmp(&b.0));
        io.dedup_by(|later, first| later.0 == first.0);
        let (mut disk, mut io_rows) = (Refill::new(spare_disk), Refill::new(spare_io));
        for (instance, v) in &io {
            let old = disk.old();
            disk.push(Disk {
                instance: text(Some(old.instance), instance),
                nread: v.rbytes,
                nwritten: v.wbytes,
                reads: v.rios.map(|x| x as u32),
                writes: v.wios.map(|x| x as u32),
                ..Default::default()
            });
            let old = io_rows.old();
            io_rows.push(packet::Io {
                instance: text(Some(old.instance), instance),
                rbytes: v.rbytes,
                wbytes: v.wbytes,
                rios: v.rios,
                wios: v.wios,
                dbytes: v.dbytes,
                dios: v.dios,
                ..Default::default()
            });
        }

        // Network: the counters of a namespace of its own, in the one zone that owns it.
        let (net, link) = own_netns
            .map(|(pid, ns)| read_net_dev(&self.files, &self.proc_dir.join(pid.to_string()).join("net/dev"), Some(ns)))
            .unwrap_or_default();

        let mut since = prev.since_info;
        let zone_info = Self::info_due(&mut since, self.opts.zone_info_every).then(|| packet::ZoneInfo {
            cgroup_path: Some(zone.path.to_owned()),
            kind: Some(zone.identity.kind.to_owned()),
            container_id: zone.identity.container_id.clone(),
            pod_uid: zone.identity.pod_uid.clone(),
        });
        next.since_info = since;
        next.files = handles;

        self.prev_zone.insert(key, next);
        mem_rows.push(mem);
        cpu_time_rows.extend(cpu_time);
        memory_rows.extend(memory);
        Packet {
            name: text(Some(spare_name), &zone.name),
            time: (time_us.max(0) / 1_000_000) as u64,
            threads: Some(members.iter().map(|p| p.threads).sum()),
            processes: Some(members.len() as u32),
            cpu,
            mem: mem_rows,
            net,
            disk: disk.done(),
            process: self.busiest(members, spare_process),
            cpu_time: cpu_time_rows,
            pressure,
            memory: memory_rows,
            io: io_rows.done(),
            link,
            zone_info: zone_info.into_iter().collect(),
            ..Default::default()
        }
    }

    /// The zones of this sample: processes grouped by cgroup, named, filtered by the
    /// patterns, capped (zones of the previous sample first, then by name), sorted by name.
    /// Returns the zones and how many the cap left out.
    fn zones<'a>(&self, procs: &'a [ProcSample]) -> (Vec<SampledZone<'a>>, usize) {
        // Grouped by the membership they share (a pointer compared, not a path), then by
        // path (memberships that differ only in v1 groups other than the zone's share one).
        let mut by_membership: HashMap<*const Membership, Vec<&ProcSample>> = HashMap::new();
        for p in procs.iter().filter(|p| p.cgroup_path().is_some()) {
            by_membership.entry(Arc::as_ptr(&p.membership)).or_default().push(p);
        }
        let mut by_path: BTreeMap<&str, Vec<&ProcSample>> = BTreeMap::new();
        for members in by_membership.into_values() {
            let Some(path) = members.first().and_then(|p| p.cgroup_path()) else { continue };
            match by_path.entry(path) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(members);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    // In the order they were listed, as one group would have them.
                    let all = e.get_mut();
                    all.extend(members);
                    all.sort_by_key(|p| std::ptr::from_ref(*p) as usize);
                }
            }
        }
        let mut zones: Vec<SampledZone<'a>> = by_path
            .into_iter()
            .filter_map(|(path, members)| {
                // The path's identity, worked out when its membership was first read.
                let identity = members.first()?.membership.identity()?;
                let name = match self.opts.naming {
                    ZoneNaming::Readable => identity.name.clone(),
                    ZoneNaming::Path => path.trim_start_matches('/').to_owned(),
                };
                Some(SampledZone { name, path, identity, members })
            })
            .collect();
        // Two paths with one readable name (or a name that is empty or `global`): each keeps
        // its path without the leading `/`; where that still clashes (a cgroup `/global`, or
        // a path equal to another zone's readable name), its whole path, which is unique.
        for whole_path in [false, true] {
            let clashing: Vec<usize> = {
                let mut count: HashMap<&str, usize> = HashMap::new();
                zones.iter().for_each(|z| *count.entry(z.name.as_str()).or_default() += 1);
                let clashes = |n: &str| count.get(n).is_some_and(|c| *c > 1) || n.is_empty() || n == "global";
                (0..zones.len()).filter(|&i| clashes(&zones[i].name)).collect()
            };
            for i in clashing {
                let z = &mut zones[i];
                z.name = if whole_path { z.path.to_owned() } else { z.path.trim_start_matches('/').to_owned() };
            }
        }
        zones.retain(|z| self.opts.filter.admits(&z.name, z.path));
        let max = self.opts.filter.max_zones;
        let mut dropped = 0;
        if zones.len() > max {
            zones.sort_by(|a, b| {
                let (pa, pb) = (self.prev_zone.contains_key(&a.name), self.prev_zone.contains_key(&b.name));
                pb.cmp(&pa).then_with(|| a.name.cmp(&b.name))
            });
            dropped = zones.len() - max;
            zones.truncate(max);
        }
        zones.sort_by(|a, b| a.name.cmp(&b.name));
        (zones, dropped)
    }
}

/// Interfaces of a network namespace from its `net/dev`, sorted by name: the 2013 `net`
/// rows and the `link` rows (with drops and the namespace).
fn read_net_dev(files: &KeptFiles, path: &Path, netns: Option<u64>) -> (Vec<Net>, Vec<packet::Link>) {
    let dev = files.parse(path, |t| InterfaceDeviceStatus::from_read(t.as_bytes()).ok()).flatten();
    let Some(dev) = dev else { return (Vec::new(), Vec::new()) };
    let sorted: BTreeMap<String, DeviceStatus> = dev.0.into_iter().collect();
    sorted
        .into_iter()
        .map(|(name, d)| {
            let link = host::link_row(&name, &d, netns);
            let net = Net {
                instance: Some(name),
                obytes64: Some(d.sent_bytes),
                rbytes64: Some(d.recv_bytes),
                opackets: Some(d.sent_packets),
                ipackets: Some(d.recv_packets),
                oerrors: Some(d.sent_errs as u32),
                ierrors: Some(d.recv_errs as u32),
            };
            (net, link)
        })
        .unzip()
}

impl StatSource for LinuxSource {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn recycle(&mut self, frames: Vec<Packet>) {
        self.spare_frames = frames;
    }

    fn sample(&mut self, time_us: i64, interval_us: i64) -> Result<Vec<Packet>, GeneratorError> {
        let frames = self.sample_now(time_us, interval_us);
        // Files this sample did not read (a zone or process gone, a limit read every tenth
        // sample) are closed.
        self.files.end_sample();
        frames
    }
}

impl LinuxSource {
    fn sample_now(&mut self, time_us: i64, interval_us: i64) -> Result<Vec<Packet>, GeneratorError> {
        let ticks = ns_to_ticks((interval_us.max(0) as u64).saturating_mul(1000));
        self.quota_cache.clear();
        // Read before the listing, which it may spare (see `ProcessesMark`).
        let load = self.proc_file::<procfs::LoadAverage>("loadavg");
        let procs = self.scan_processes(load.as_ref().map(ProcessesMark::of));
        let (zones, dropped) = self.zones(&procs);
        let zone_names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
        let early = EarlyHostReads { load, diskstats: self.proc_file::<DiskStats>("diskstats").map(|d| d.0).unwrap_or_default() };
        let devices = Self::device_names(&early.diskstats);
        // Each network namespace other than the host's is counted once: in the zone of its
        // lowest-numbered member process (a pod's containers share one namespace).
        // Not the generator's namespace (`global` reports it), nor pid 1's (the host's, when
        // the generator runs in a namespace of its own with the host's pids).
        let (own_netns, pid1_netns) = self.host_namespaces();
        let not_a_zones: Vec<u64> = [own_netns, pid1_netns].into_iter().flatten().collect();
        let mut owner: BTreeMap<u64, (u32, usize)> = BTreeMap::new();
        for (i, z) in zones.iter().enumerate() {
            let Some(lowest) = z.members.iter().map(|p| p.pid).min() else { continue };
            let Some(ns) = self.netns_of(lowest) else { continue };
            if !not_a_zones.contains(&ns) && owner.get(&ns).is_none_or(|(pid, _)| lowest < *pid) {
                owner.insert(ns, (lowest, i));
            }
        }
        let namespace_of_zone: HashMap<usize, (u32, u64)> = owner.into_iter().map(|(ns, (pid, i))| (i, (pid, ns))).collect();
        // The zone frames in the memory of the last sample's, in the same order (zones are
        // sorted by name: a zone's frame mostly gets its own of the sample before).
        let mut spares = std::mem::take(&mut self.spare_frames).into_iter().skip(1);
        let mut frames = Vec::with_capacity(zones.len() + 1);
        frames.push(self.global_frame(time_us, &procs, &zone_names, dropped, &early, own_netns)?);
        for (i, zone) in zones.iter().enumerate() {
            let spare = spares.next().unwrap_or_default();
            frames.push(self.zone_frame(zone, time_us, &devices, namespace_of_zone.get(&i).copied(), spare));
        }
        for f in &mut frames {
            f.ticks = Some(ticks);
            f.time_us = Some(time_us.max(0) as u64);
        }
        let now = self.samples;
        self.procs.retain(|_, state| state.listed_in == now);
        self.signals.retain(|_, signal| signal.strong_count() > 0);
        self.memberships.retain(|_, m| m.strong_count() > 0);
        self.samples += 1;
        let present: HashSet<&str> = zone_names.into_iter().collect();
        self.prev_zone.retain(|z, _| present.contains(z.as_str()));
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::{Comm, ListedPid, PidFile, ProcListing, ProcessesMark};

    #[test]
    fn a_listing_is_handed_out_again_only_while_the_kernels_mark_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        for pid in ["1", "20", "self", "300"] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
        }
        let sorted = |v: Vec<ListedPid>| {
            let mut v: Vec<u32> = v.into_iter().map(|l| l.pid).collect();
            v.sort_unstable();
            v
        };
        let mark = |threads, last_pid| Some(ProcessesMark { threads, last_pid });
        let mut listing = ProcListing { take_for_kernel: true, ..ProcListing::default() };
        let pids = listing.pids(dir.path(), mark(90, 300));
        assert_eq!(sorted(pids.clone()), [1, 20, 300]);
        listing.pids = pids;
        std::fs::create_dir(dir.path().join("4000")).unwrap();
        // The mark as before the last listing: that listing again (here stale on purpose:
        // a composed tree's `loadavg` does not move with its directories).
        let pids = listing.pids(dir.path(), mark(90, 300));
        assert_eq!((sorted(pids.clone()), listing.skipped), (vec![1, 20, 300], 1));
        listing.pids = pids;
        // A pid handed out, or a thread reaped (or the mark unreadable): listed again.
        std::fs::remove_dir(dir.path().join("20")).unwrap();
        for now in [mark(90, 301), mark(89, 301), None, None] {
            let pids = listing.pids(dir.path(), now);
            assert_eq!((sorted(pids.clone()), listing.skipped), (vec![1, 300, 4000], 1), "{now:?}");
            listing.pids = pids;
        }
        // Not the kernel's procfs: the mark is not looked at; the directory's times are, once
        // settled. Changed just now, they are not: listed every time.
        let mut plain = ProcListing::default();
        for _ in 0..2 {
            let pids = plain.pids(dir.path(), mark(89, 301));
            assert_eq!(sorted(pids.clone()), [1, 300, 4000]);
            plain.pids = pids;
        }
        assert_eq!(plain.skipped, 0);
    }

    #[test]
    fn a_composed_proc_listing_is_handed_out_again_while_its_directory_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        for pid in ["7", "self", "80"] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
        }
        let pids_of = |listing: &mut ProcListing| {
            // Times settled as soon as they are past (the file system's clock ticks finer
            // than the pauses below).
            let pids = listing.pids_settled_after(dir.path(), None, std::time::Duration::ZERO);
            let mut sorted: Vec<u32> = pids.iter().map(|l| l.pid).collect();
            sorted.sort_unstable();
            listing.pids = pids;
            sorted
        };
        let pause = || std::thread::sleep(std::time::Duration::from_millis(30));
        pause();
        let mut listing = ProcListing::default();
        assert_eq!(pids_of(&mut listing), [7, 80]);
        assert_eq!((pids_of(&mut listing), listing.skipped), (vec![7, 80], 1), "unchanged: the listing again");
        // Each change moves the directory's times: a pid made, removed and made again, a
        // directory renamed over another.
        pause();
        std::fs::create_dir(dir.path().join("9")).unwrap();
        assert_eq!((pids_of(&mut listing), listing.skipped), (vec![7, 9, 80], 1));
        pause();
        std::fs::remove_dir(dir.path().join("7")).unwrap();
        std::fs::create_dir(dir.path().join("7")).unwrap();
        assert_eq!((pids_of(&mut listing), listing.skipped), (vec![7, 9, 80], 1), "listed again");
        pause();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("9")).unwrap();
        assert_eq!((pids_of(&mut listing), listing.skipped), (vec![7, 9, 80], 1));
        assert_eq!((pids_of(&mut listing), listing.skipped), (vec![7, 9, 80], 2));
        // A mark is taken only from settled times: two seconds old, here they are not.
        std::fs::create_dir(dir.path().join("10")).unwrap();
        let mut fresh = ProcListing::default();
        for _ in 0..2 {
            let pids = fresh.pids(dir.path(), None);
            assert_eq!(pids.len(), 4);
            fresh.pids = pids;
        }
        assert_eq!(fresh.skipped, 0);
        // The directory removed while open: listed as nothing (a removed directory's listing
        // fails, its link count is 0 and its path opens nothing), never the listing of before.
        pause();
        for pid in ["7", "9", "10", "80", "self"] {
            std::fs::remove_dir(dir.path().join(pid)).unwrap();
        }
        pause();
        assert_eq!((pids_of(&mut listing), listing.skipped), (vec![], 2));
        std::fs::remove_dir(dir.path()).unwrap();
        pause();
        for _ in 0..2 {
            assert_eq!((pids_of(&mut listing), listing.skipped), (vec![], 2), "listed, not handed out again");
        }
    }

    #[test]
    fn a_process_file_path_is_its_pid_and_name() {
        assert_eq!(&*PidFile::new(0, "stat"), "0/stat");
        assert_eq!(&*PidFile::new(4_194_304, "cgroup"), "4194304/cgroup");
        assert_eq!(&*PidFile::new(u32::MAX, "stat"), "4294967295/stat");
        assert_eq!(PidFile::new(u32::MAX, &"n".repeat(40)).len(), 32, "a long name is cut to fit");
    }

    #[test]
    fn a_command_name_is_kept_whole_in_place_or_shared() {
        for name in [
            "",
            "nginx",
            "kworker/u8:2-ev",
            "caf\u{e9} \u{fffd}\u{fffd}",
            "exactly-twenty-three-by",
            "a name longer than 23 bytes",
        ] {
            let comm = Comm::from(name.to_owned());
            assert_eq!(comm.as_str(), name);
            assert_eq!(matches!(comm, Comm::Inline { .. }), name.len() <= 23, "{name}");
        }
    }
}

//! A small cgroup reader for v1, v2 and hybrid hosts (no crate reads all three correctly;
//! see `docs/statistics.md`).
//!
//! Finds each controller's mount in `/proc/self/mountinfo`, reads flat-keyed and
//! nested-keyed files, and answers `None` for a missing file or key, never 0 and never an
//! error for the whole zone. `max` (no limit) and v1's "unlimited" sentinel are `None`.

use foldhash::{HashMap, HashMapExt};
use std::path::{Path, PathBuf};

use super::kept_files::{FileHandle, FileText, KeptFiles};
use super::zone_name::{self, ZoneIdentity};

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = u32::from(bytes[i + 1] - b'0') * 64 + u32::from(bytes[i + 2] - b'0') * 8 + u32::from(bytes[i + 3] - b'0');
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the hierarchies are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// The cgroup2 mount, if any (`/sys/fs/cgroup` on v2 hosts, `.../unified` on hybrid).
    pub v2: Option<PathBuf>,
    /// v1 controller name -> mount point (a mount with `cpu,cpuacct` serves both names).
    pub v1: HashMap<String, PathBuf>,
}

impl CgroupMounts {
    /// Parses `/proc/self/mountinfo` text; mount points are re-rooted under `root`.
    pub fn parse(mountinfo: &str, root: &Path) -> Self {
        let mut mounts = CgroupMounts::default();
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
            let (Some(mount_point), Some(fstype), Some(super_opts)) = (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
            else {
                continue;
            };
            let at = root.join(unescape(mount_point).trim_start_matches('/'));
            match *fstype {
                "cgroup2" => mounts.v2 = Some(at),
                "cgroup" => {
                    for opt in super_opts.split(',') {
                        if matches!(opt, "cpu" | "cpuacct" | "memory" | "blkio" | "pids" | "cpuset") {
                            mounts.v1.insert(opt.to_owned(), at.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }

    /// The directory of the cgroup at `path` (from `/proc/PID/cgroup`) in controller
    /// `controller`'s v1 hierarchy.
    pub fn v1_dir(&self, controller: &str, path: &str) -> Option<PathBuf> {
        Some(self.v1.get(controller)?.join(path.trim_start_matches('/')))
    }

    /// The directory of the v2 cgroup at `path`.
    pub fn v2_dir(&self, path: &str) -> Option<PathBuf> {
        Some(self.v2.as_ref()?.join(path.trim_start_matches('/')))
    }
}

/// A process's cgroup memberships, from `/proc/PID/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The v2 path (`0::/path`), if the v2 hierarchy is mounted.
    pub v2: Option<String>,
    /// v1 controller -> path.
    pub v1: HashMap<String, String>,
    /// What its zone is ([`zone_name::identify`] of [`zone_path`](Self::zone_path), worked
    /// out once for the processes sharing it; `None` for the root).
    identity: Option<ZoneIdentity>,
}

impl Membership {
    /// Parses `/proc/PID/cgroup` text.
    pub fn parse(text: &str) -> Self {
        let mut m = Membership::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if id == "0" && controllers.is_empty() {
                m.v2 = Some(path.to_owned());
            } else {
                for c in controllers.split(',') {
                    m.v1.insert(c.to_owned(), path.to_owned());
                }
            }
        }
        m.identity = m.zone_path().map(zone_name::identify);
        m
    }

    /// What its zone is; `None` for the root (no zone).
    pub fn identity(&self) -> Option<&ZoneIdentity> {
        self.identity.as_ref()
    }

    /// The zone this process belongs to: its v2 group when that is below the root, else its
    /// v1 `memory` group, else its `cpuacct` group; `None` for the root (the host itself).
    pub fn zone_path(&self) -> Option<&str> {
        let below_root = |p: &&String| p.as_str() != "/" && !p.is_empty();
        self.v2
            .as_ref()
            .filter(below_root)
            .or_else(|| self.v1.get("memory").filter(below_root))
            .or_else(|| self.v1.get("cpuacct").filter(below_root))
            .map(String::as_str)
    }
}

/// The most bytes read from one `/proc` or cgroup file (the largest, `memory.stat` or a
/// host's `mountinfo`, are a few KiB; a bound keeps a strange file from costing memory).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// A directory (`/proc`, a cgroup's) whose files are read through the source's
/// [`KeptFiles`], each as a file the kernel writes whole in one read
/// ([`KeptFiles::text_whole_in_one_read`]: cgroup interface files, `/proc`'s `PID/stat`,
/// `PID/cgroup`, `pressure/*`, `loadavg`, `sys/fs/file-nr`, `net/sockstat`; not
/// `mountinfo`). Holds a path, not an open directory: no system call until a file is read.
#[derive(Debug, Clone)]
pub struct Dir {
    files: KeptFiles,
    path: PathBuf,
}

impl Dir {
    /// The directory at `path`, read through `files`.
    pub fn new(files: &KeptFiles, path: &Path) -> Dir {
        Dir { files: files.clone(), path: path.to_owned() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file `rel` below the directory, whole; `None` if it cannot be read.
    pub fn text(&self, rel: &str) -> Option<String> {
        self.parse(rel, str::to_owned)
    }

    /// The file `rel` below the directory, whole, handed to `parse` in the read buffer
    /// ([`KeptFiles::parse`]: `parse` must not read through the same files); `None` if it
    /// cannot be read.
    pub fn parse<T>(&self, rel: &str, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.files.parse_whole_in_one_read_below(&self.path, rel, parse)
    }

    /// [`parse`](Self::parse) through `handle`, kept by the caller for this directory and
    /// `rel` ([`KeptFiles::parse_whole_in_one_read_below_by`]).
    pub fn parse_by<X: FileText + ?Sized, T>(
        &self,
        handle: &mut Option<FileHandle>,
        rel: &str,
        parse: impl FnOnce(&X) -> T,
    ) -> Option<T> {
        self.files.parse_whole_in_one_read_below_by(handle, &self.path, rel, parse)
    }

    /// [`parse`](Self::parse), not keeping the file open after the read (a file read once in
    /// a long while).
    pub fn parse_unkept<T>(&self, rel: &str, parse: impl FnOnce(&str) -> T) -> Option<T> {
        self.files.parse_whole_in_one_read_below_unkept(&self.path, rel, parse)
    }

    /// The file `rel` below the directory, read only when the kernel reported a modification
    /// since its last read, through `handle`, kept by the caller for this directory and `rel`
    /// ([`KeptFiles::parse_when_modified_below_by`]).
    pub fn parse_when_modified_by<T>(
        &self,
        handle: &mut Option<FileHandle>,
        rel: &str,
        parse: impl FnOnce(&str) -> T,
    ) -> Option<T> {
        self.files.parse_when_modified_below_by(handle, &self.path, rel, parse)
    }

    /// The single number in `rel`; `None` if missing, unparsable, `max`, or v1's unlimited.
    pub fn number(&self, rel: &str) -> Option<u64> {
        self.parse(rel, parse_limit).flatten()
    }

    /// [`number`](Self::number) of a file written only by a `write` to it (a limit:
    /// `memory.max`, `memory.high`, `memory.swap.max`), which inotify reports as a
    /// modification: read again only after one (or where no watch can be had), else the
    /// number as last read ([`KeptFiles::parse_when_modified_below`]). For a file of a
    /// zone's own directory, read in a sample after another file of it (a cgroup gone
    /// fails that read, which closes its other files: see `KeptFiles`).
    pub fn number_when_modified(&self, rel: &str) -> Option<u64> {
        self.files.parse_when_modified_below(&self.path, rel, parse_limit).flatten()
    }

    /// The flat-keyed file `rel`.
    pub fn flat(&self, rel: &str) -> Option<FlatFile> {
        self.parse(rel, |t| FlatFile::from(t))
    }
}

/// A single-number file's value; `None` if unparsable, `max`, or v1's unlimited.
pub(super) fn parse_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    // v1 reports "no limit" as a page-rounded i64::MAX.
    (v < (1 << 62)).then_some(v)
}

/// A flat-keyed file (`key value` per line: cgroup v1's `memory.stat`, `cpuacct.stat`, `cpu.stat`,
/// `memory.oom_control`; the host's `vmstat`),
/// split into its keys and values once (a v1 `memory.stat` is asked for a dozen keys of its
/// lines, and scanning its text for each was a tenth of the source's user time). The files
/// read for every v2 zone each sample are parsed in place by [`pick`] instead.
#[derive(Debug, Clone, Default)]
pub struct FlatFile {
    text: String,
    /// Each line's key and value (ranges of `text`: start and end of the key, end of the
    /// value after a space; the value parsed when asked for: a dozen of `memory.stat`'s 45
    /// are). Files are bounded by `MAX_FILE_BYTES`, so offsets fit in 32 bits.
    entries: Vec<[u32; 3]>,
}

impl From<&str> for FlatFile {
    fn from(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut entries = Vec::with_capacity(48);
        let mut start = 0;
        while start < bytes.len() {
            let end = bytes[start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| start + i);
            if let Some(space) = bytes[start..end].iter().position(|&b| b == b' ')
                && let (Ok(a), Ok(b), Ok(c)) = (u32::try_from(start), u32::try_from(start + space), u32::try_from(end))
            {
                entries.push([a, b, c]);
            }
            start = end + 1;
        }
        FlatFile { text: text.to_owned(), entries }
    }
}

impl FlatFile {
    /// The value of `key`; `None` if absent or not a number.
    pub fn get(&self, key: &str) -> Option<u64> {
        let [_, space, end] =
            self.entries.iter().find(|[start, space, _]| &self.text[*start as usize..*space as usize] == key)?;
        self.text[*space as usize + 1..*end as usize].trim().parse().ok()
    }

    /// Every line's key and value (`None` where the value is not a number), in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<u64>)> {
        self.entries.iter().map(|[start, space, end]| {
            (&self.text[*start as usize..*space as usize], self.text[*space as usize + 1..*end as usize].trim().parse().ok())
        })
    }
}

/// The keys [`pick`] looks for, each compared as three integers: its length and its first
/// and last eight bytes (the whole key where shorter), which tell apart keys of up to 16
/// bytes; a longer key is compared whole once those match. Comparing every line's key
/// with each of a dozen keys byte by byte was most of a `memory.stat`'s parsing.
#[derive(Debug)]
pub struct Keys<const N: usize> {
    keys: [&'static str; N],
    words: [(usize, u64, u64); N],
}

impl<const N: usize> Keys<N> {
    /// The keys, in the order [`pick`] gives their values.
    pub const fn new(keys: [&'static str; N]) -> Self {
        let mut words = [(0, 0, 0); N];
        let mut i = 0;
        while i < N {
            let key = keys[i].as_bytes();
            let (head, tail) = head_and_tail(key);
            words[i] = (key.len(), head, tail);
            i += 1;
        }
        Keys { keys, words }
    }

    /// The place of `key` among the keys, if it is one.
    fn index(&self, key: &[u8]) -> Option<usize> {
        let (head, tail) = if key.len() >= 8 {
            let word = |at: usize| key.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes);
            (word(0), word(key.len() - 8))
        } else {
            head_and_tail(key)
        };
        let len = key.len();
        self.words
            .iter()
            .zip(self.keys)
            .position(|(&(l, h, t), whole)| l == len && h == head && t == tail && (len <= 16 || whole.as_bytes() == key))
    }
}

/// A key's first and last eight bytes as little-endian numbers; for a key of fewer, its
/// bytes (both).
const fn head_and_tail(key: &[u8]) -> (u64, u64) {
    let n = if key.len() < 8 { key.len() } else { 8 };
    let (mut head, mut tail, mut i) = (0u64, 0u64, 0);
    while i < n {
        head |= (key[i] as u64) << (8 * i);
        tail |= (key[key.len() - n + i] as u64) << (8 * i);
        i += 1;
    }
    (head, tail)
}

/// The values of `keys` in a flat-keyed file's text (`KEY VALUE` lines), in one pass over
/// its lines, without copying it, and stopping once each was found (`None` where a key is
/// absent or its value is not a number; a key given twice keeps its first value). For the
/// files read for every zone each sample, where a [`FlatFile`] copy of the text was most of
/// their parsing.
pub fn pick<const N: usize>(bytes: &[u8], keys: &Keys<N>) -> [Option<u64>; N] {
    let mut values = [None; N];
    let mut seen = [false; N];
    let mut left = N;
    let mut rest = bytes;
    // Lines and keys found eight bytes at a time (`find_byte`: a line is a few dozen bytes,
    // for which a `memchr` call's set-up cost more than its search, and a byte loop more
    // still), values read as bytes (`decimal`: no UTF-8 check and `str` parse each).
    while !rest.is_empty() {
        let line_end = find_byte(rest, b'\n').unwrap_or(rest.len());
        let line = &rest[..line_end];
        rest = rest.get(line_end + 1..).unwrap_or_default();
        let Some(space) = find_byte(line, b' ') else { continue };
        let (key, value) = (&line[..space], &line[space + 1..]);
        let Some(i) = keys.index(key) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        values[i] = decimal(value);
        left -= 1;
        if left == 0 {
            break;
        }
    }
    values
}

/// The place of the first `needle` in `hay`, eight bytes at a time: a byte equal to the
/// needle is a zero byte of the word XORed with it, found by the borrow of subtracting one
/// from each byte (the lowest flagged byte is always a zero; a flag above it may be a
/// borrow's, and is not looked at).
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let x = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]) ^ pattern;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words.remainder().iter().position(|&b| b == needle).map(|i| at + i)
}

/// The unsigned decimal number `text` holds between ASCII white space (space, tab, line
/// feed, form feed, carriage return; `str::trim` also takes a vertical tab and Unicode
/// spaces, which no kernel file holds), read as `u64`'s `parse` reads one (an optional `+`,
/// then digits); `None` if it holds anything else or more than `u64::MAX`.
pub fn decimal(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii();
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |n, &b| if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None })
}

/// A struct of the values of some keys of a flat-keyed file (each `None` where absent or not
/// a number), with its `parse` by [`pick`].
macro_rules! picked_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: Option<u64>,)*
        }

        impl $name {
            pub fn parse(text: &str) -> Self {
                Self::parse_bytes(text.as_bytes())
            }

            /// [`parse`](Self::parse) of the bytes read (see `FileText`).
            pub fn parse_bytes(text: &[u8]) -> Self {
                const N: usize = [$($key),*].len();
                const KEYS: Keys<N> = Keys::new([$($key),*]);
                let mut values = pick(text, &KEYS).into_iter();
                $name { $($field: values.next().flatten(),)* }
            }
        }
    };
}

picked_values! {
    /// What the source takes of a v2 `cpu.stat`.
    CpuStat {
        usage_us: "usage_usec",
        user_us: "user_usec",
        system_us: "system_usec",
        periods: "nr_periods",
        throttled_periods: "nr_throttled",
        throttled_us: "throttled_usec",
    }
}

picked_values! {
    /// What the source takes of a v2 `memory.stat`.
    MemoryStat {
        anon: "anon",
        file: "file",
        shmem: "shmem",
        /// Since Linux 5.18; before, the sum of `kernel_stack`, `pagetables`, `percpu` and slab.
        kernel: "kernel",
        kernel_stack: "kernel_stack",
        pagetables: "pagetables",
        percpu: "percpu",
        slab: "slab",
        slab_reclaimable: "slab_reclaimable",
        slab_unreclaimable: "slab_unreclaimable",
        inactive_file: "inactive_file",
        pgmajfault: "pgmajfault",
    }
}

impl MemoryStat {
    /// Slab memory: `slab`, or its two parts where the kernel gives only those.
    pub fn slab(&self) -> Option<u64> {
        self.slab.or_else(|| Some(self.slab_reclaimable? + self.slab_unreclaimable?))
    }

    /// Kernel memory: `kernel` (Linux 5.18 on), else the parts it sums.
    pub fn kernel(&self) -> Option<u64> {
        self.kernel.or_else(|| Some(self.kernel_stack? + self.pagetables? + self.percpu? + self.slab()?))
    }
}

picked_values! {
    /// What the source takes of a v2 `memory.events`.
    MemoryEvents {
        high: "high",
        max: "max",
        oom: "oom",
        oom_kill: "oom_kill",
    }
}

/// Per-device I/O counters of one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIo {
    /// Bytes read.
    pub rbytes: Option<u64>,
    /// Bytes written.
    pub wbytes: Option<u64>,
    /// Read operations.
    pub rios: Option<u64>,
    /// Write operations.
    pub wios: Option<u64>,
    /// Bytes discarded.
    pub dbytes: Option<u64>,
    /// Discard operations.
    pub dios: Option<u64>,
}

/// Parses v2 `io.stat` (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`):
/// each device's `MAJ:MIN` and counters, in the file's order (a device the file names twice,
/// which the kernel does not, is the caller's to drop). Keys the kernel adds with `io.cost` or
/// `io.latency` debugging (`cost.usage=`, `rlat=`, ...) are not kept. Read as bytes (values
/// by [`decimal`]): `str`'s Unicode-aware splitting was most of a zone's `io.stat` cost.
pub fn parse_io_stat(text: &[u8]) -> Vec<(String, DeviceIo)> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let mut words = line.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty());
        let Some(dev) = words.next() else { continue };
        let mut io = DeviceIo::default();
        for kv in words {
            let Some(eq) = memchr::memchr(b'=', kv) else { continue };
            let v = decimal(&kv[eq + 1..]);
            match &kv[..eq] {
                b"rbytes" => io.rbytes = v,
                b"wbytes" => io.wbytes = v,
                b"rios" => io.rios = v,
                b"wios" => io.wios = v,
                b"dbytes" => io.dbytes = v,
                b"dios" => io.dios = v,
                _ => {}
            }
        }
        out.push((String::from_utf8_lossy(dev).into_owned(), io));
    }
    out
}

/// Parses v1 `blkio.throttle.io_service_bytes` and `blkio.throttle.io_serviced`
/// (`MAJ:MIN Read N` / `Write` / `Discard` lines; `Discard` since Linux 4.19), keyed by
/// `MAJ:MIN`.
pub fn parse_blkio(bytes: &str, ops: &str) -> HashMap<String, DeviceIo> {
    let mut out: HashMap<String, DeviceIo> = HashMap::new();
    for (text, is_bytes) in [(bytes, true), (ops, false)] {
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let [dev, op, n] = w.as_slice() else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            let io = out.entry((*dev).to_owned()).or_default();
            match (*op, is_bytes) {
                ("Read", true) => io.rbytes = Some(n),
                ("Write", true) => io.wbytes = Some(n),
                ("Read", false) => io.rios = Some(n),
                ("Write", false) => io.wios = Some(n),
                ("Discard", true) => io.dbytes = Some(n),
                ("Discard", false) => io.dios = Some(n),
                _ => {}
            }
        }
    }
    out
}

/// One line of a pressure file: total stall time in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// `some ... total=`: time at least one task stalled.
    pub some_us: Option<u64>,
    /// `full ... total=`: time every non-idle task stalled.
    pub full_us: Option<u64>,
}

/// Parses a PSI file (`/proc/pressure/cpu`, a cgroup's `cpu.pressure`):
/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` and the same for `full`. `None` when
/// neither line has a total (an empty or foreign file).
pub fn parse_pressure(bytes: &[u8]) -> Option<Pressure> {
    let mut p = Pressure::default();
    let mut start = 0;
    // Lines and their last field found with `memchr` (a byte loop over both was most of
    // this function's time, read for three files a zone each sample).
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |n| start + n);
        let line = bytes[start..end].trim_ascii_end();
        start = end + 1;
        // `total=` is the last field: split off by the last space, no substring search.
        let last = memchr::memrchr(b' ', line).map_or(line, |space| &line[space + 1..]);
        let total = last.strip_prefix(b"total=").and_then(decimal);
        if line.starts_with(b"some ") {
            p.some_us = total;
        } else if line.starts_with(b"full ") {
            p.full_us = total;
        }
    }
    (p.some_us.is_some() || p.full_us.is_some()).then_some(p)
}

/// A CFS bandwidth limit: `quota_us` of CPU time per `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    /// CPU time allowed per period.
    pub quota_us: u64,
    /// The period.
    pub period_us: u64,
}

impl CpuQuota {
    /// The limit in thousandths of a CPU.
    pub fn millicores(self) -> u32 {
        u32::try_from(self.quota_us.saturating_mul(1000) / self.period_us.max(1)).unwrap_or(u32::MAX)
    }

    /// Whether `self` allows less CPU than `other`.
    pub fn tighter_than(self, other: CpuQuota) -> bool {
        u128::from(self.quota_us) * u128::from(other.period_us) < u128::from(other.quota_us) * u128::from(self.period_us)
    }
}

/// Parses v2 `cpu.max` (`max 100000` or `50000 100000`); `None` for no limit.
pub fn parse_cpu_max(text: &str) -> Option<CpuQuota> {
    let mut w = text.split_whitespace();
    let quota_us = w.next()?.parse().ok()?;
    let period_us: u64 = w.next()?.parse().ok()?;
    (period_us > 0).then_some(CpuQuota { quota_us, period_us })
}

/// Reads v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` in `dir`; `None` for no limit (-1).
pub fn read_v1_quota(dir: &Dir) -> Option<CpuQuota> {
    let quota: i64 = dir.text("cpu.cfs_quota_us")?.trim().parse().ok()?;
    let period_us = dir.number("cpu.cfs_period_us")?;
    (quota > 0 && period_us > 0).then_some(CpuQuota { quota_us: quota as u64, period_us })
}

/// The tightest quota on the path from `dir` up to `top` (`dir` included, `top`, the root
/// cgroup, which has no quota, not): a container's
/// limit often sits on its pod's or slice's cgroup, not its own. `read` gives one
/// directory's quota (callers cache it: zones share their ancestors). The directories are
/// `dir`'s leading parts, cut at each `/` (a path the kernel wrote: no `.` or `..`), with
/// no path put together or walked by component (a tenth of a zone's limits read did that).
pub fn effective_quota(dir: &Path, top: &Path, mut read: impl FnMut(&Path) -> Option<CpuQuota>) -> Option<CpuQuota> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    // A path's length without trailing `/` (`/` itself kept).
    let trimmed = |b: &[u8]| b.len() - b.iter().rev().take_while(|&&c| c == b'/').count().min(b.len().saturating_sub(1));
    let path = dir.as_os_str().as_bytes();
    let top = top.as_os_str().as_bytes();
    let top = &top[..trimmed(top)];
    // Below `top`: `top`, then a `/` (in `top` itself where it is the root `/`).
    let below_top = |end: usize| end > top.len() && path.starts_with(top) && (top.ends_with(b"/") || path[top.len()] == b'/');
    let mut best: Option<CpuQuota> = None;
    let mut end = trimmed(path);
    // The root cgroup has no quota (v2 has no `cpu.max` there; v1's is -1): not read.
    while below_top(end) {
        if let Some(q) = read(Path::new(OsStr::from_bytes(&path[..end]))).filter(|q| best.is_none_or(|b| q.tighter_than(b))) {
            best = Some(q);
        }
        // The parent: up to the last `/`, less any `/` before it.
        let Some(slash) = path[..end].iter().rposition(|&c| c == b'/') else { break };
        end = trimmed(&path[..slash.max(1)]);
    }
    best
}

/// v1 `cpu.shares` (2..262144, default 1024) on v2's `cpu.weight` scale (1..10000), as runc
/// converts them (the default 1024 becomes 39, not v2's default 100; systemd's own rule,
/// shares x 100 / 1024, differs).
pub fn shares_to_weight(shares: u64) -> u32 {
    let shares = shares.clamp(2, 262_144);
    (1 + ((shares - 2) * 9999) / 262_142) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v1_and_v2_mounts_on_a_hybrid_host() {
        let m = CgroupMounts::parse(HYBRID, Path::new("/r"));
        assert_eq!(m.v2.as_deref(), Some(Path::new("/r/sys/fs/cgroup/unified")));
        assert_eq!(m.v1["cpuacct"], Path::new("/r/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m.v1["cpu"], m.v1["cpuacct"]);
        assert_eq!(m.v1_dir("memory", "/docker/abc").unwrap(), Path::new("/r/sys/fs/cgroup/memory/docker/abc"));
        assert!(!m.v1.contains_key("blkio"));
    }

    #[test]
    fn zone_is_v2_group_else_v1_memory_else_none() {
        let v2 = Membership::parse("0::/system.slice/nginx.service\n");
        assert_eq!(v2.zone_path(), Some("/system.slice/nginx.service"));
        let hybrid = Membership::parse("4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n");
        assert_eq!(hybrid.zone_path(), Some("/docker/abc"));
        assert_eq!(hybrid.v1["cpuacct"], "/docker/abc");
        assert_eq!(Membership::parse("4:memory:/\n0::/\n").zone_path(), None);
    }

    #[test]
    fn io_files() {
        let v2 = parse_io_stat(b"8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n");
        let all =
            DeviceIo { rbytes: Some(4096), wbytes: Some(8192), rios: Some(1), wios: Some(2), dbytes: Some(0), dios: Some(0) };
        assert_eq!(v2, [("8:0".to_owned(), all)]);
        // Debugging keys, a value that is no number, runs of white space, an empty line, a
        // line without a newline: in file order.
        let v2 = parse_io_stat(
            b"259:0 rbytes=1 wbytes=x rios=3  wios=4 cost.usage=9 rlat=5\n\n8:16\trbytes=+7 wbytes=18446744073709551616 dios",
        );
        assert_eq!(
            v2,
            [
                ("259:0".to_owned(), DeviceIo { rbytes: Some(1), rios: Some(3), wios: Some(4), ..DeviceIo::default() }),
                ("8:16".to_owned(), DeviceIo { rbytes: Some(7), ..DeviceIo::default() }),
            ]
        );
        assert_eq!(parse_io_stat(b""), []);
        // A byte that is not UTF-8 in a device's name: kept as U+FFFD, its counters read.
        assert_eq!(
            parse_io_stat(b"8:\xff rbytes=1\n"),
            [("8:\u{fffd}".to_owned(), DeviceIo { rbytes: Some(1), ..DeviceIo::default() })]
        );
        let v1 = parse_blkio("8:0 Read 10\n8:0 Write 20\n8:0 Discard 5\n8:0 Total 30\nTotal 30\n", "8:0 Read 1\n8:0 Write 2\n");
        assert_eq!(
            v1["8:0"],
            DeviceIo { rbytes: Some(10), wbytes: Some(20), rios: Some(1), wios: Some(2), dbytes: Some(5), dios: None }
        );
    }

    #[test]
    fn a_byte_is_found_where_it_first_is_as_a_byte_loop_finds_it() {
        // Every length up to three words and a remainder, the needle at each place, alone,
        // twice, beside bytes one above and below it (the borrow's neighbours), and 0x00 and
        // 0xff around it.
        for needle in [b'\n', b' ', 0x00, 0x01, 0x7f, 0x80, 0xff] {
            for len in 0..=27 {
                for fill in [b'a', needle.wrapping_add(1), needle.wrapping_sub(1), 0x00, 0xff] {
                    if fill == needle {
                        continue;
                    }
                    let mut hay = vec![fill; len];
                    assert_eq!(find_byte(&hay, needle), None, "{needle} in {hay:?}");
                    for at in 0..len {
                        hay.fill(fill);
                        hay[at] = needle;
                        assert_eq!(find_byte(&hay, needle), Some(at), "{needle} at {at} of {len}, fill {fill}");
                        for later in at + 1..len {
                            hay[later] = needle;
                            assert_eq!(find_byte(&hay, needle), Some(at));
                            hay[later] = fill;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_key_is_found_only_whole_whatever_its_length() {
        let keys = Keys::new(["a", "anon", "kernel_s", "kernel_stack", "slab_unreclaimable", "workingset_refault_anon"]);
        let places = |key: &str| keys.index(key.as_bytes());
        for (i, key) in keys.keys.iter().enumerate() {
            assert_eq!(places(key), Some(i), "{key}");
        }
        for other in [
            "",
            "b",
            "ano",
            "anon_",
            "Anon",
            "kernel_",
            "kernel_t",
            "kernel_stacK",
            "kernel_stack ",
            // Same length, first and last eight bytes as a key of more than 16: the middle tells.
            "slab_unrXXlaimable",
            "workingset_XXXXXXX_anon",
            "slab_unreclaimabl",
        ] {
            assert_eq!(places(other), None, "{other:?}");
        }
        // Bytes that are not ASCII, and a key's bytes with one changed at each place.
        assert_eq!(places("an\u{e9}n"), None);
        for key in keys.keys {
            for at in 0..key.len() {
                let mut changed = key.as_bytes().to_vec();
                changed[at] ^= 0x20;
                assert_eq!(keys.index(&changed), None, "{key} changed at {at}");
            }
        }
    }

    #[test]
    fn picked_keys_are_whole_keys_first_values_and_numbers_only() {
        let text = "slab_reclaimable 10\nslab_unreclaimable 20\nanon 7\nanon 8\nfile x\nkernel  5 \nshmem\n\npgmajfault 3";
        let st = MemoryStat::parse(text);
        assert_eq!(st.slab, None, "`slab` is not a prefix match");
        assert_eq!(st.slab(), Some(30));
        assert_eq!(st.anon, Some(7), "the first of a key given twice");
        assert_eq!(st.file, None, "not a number");
        assert_eq!(st.kernel, Some(5), "spaces around a value");
        assert_eq!(st.shmem, None, "a key without a value");
        assert_eq!(st.pgmajfault, Some(3), "the last line without a newline");
        assert_eq!(pick(b"", &Keys::new(["a"])), [None]);
        let cpu =
            CpuStat::parse("usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
        assert_eq!((cpu.usage_us, cpu.user_us, cpu.system_us, cpu.throttled_us), (Some(100), Some(60), Some(40), Some(0)));
        let ev = MemoryEvents::parse("low 0\nhigh 3\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n");
        assert_eq!(ev, MemoryEvents { high: Some(3), max: Some(2), oom: Some(1), oom_kill: Some(1) });
    }

    #[test]
    fn a_decimal_is_read_as_str_parse_reads_it() {
        for text in [
            "0",
            "42",
            " 42 ",
            "42\n",
            "\t7\r",
            "+5",
            "++5",
            "-1",
            "",
            " ",
            "+",
            "1 2",
            "4x",
            "x4",
            "0042",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "1.5",
            "\u{e9}1",
        ] {
            assert_eq!(decimal(text.as_bytes()), text.trim().parse::<u64>().ok(), "{text:?}");
        }
        assert_eq!(decimal(b"\xff1"), None, "not UTF-8");
    }

    #[test]
    fn pressure_files() {
        let host = b"some avg10=1.50 avg60=0.20 avg300=0.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=789\n";
        assert_eq!(parse_pressure(host), Some(Pressure { some_us: Some(123_456), full_us: Some(789) }));
        // Kernels before 5.13 have no `full` line for cpu.
        assert_eq!(
            parse_pressure(b"some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"),
            Some(Pressure { some_us: Some(5), full_us: None })
        );
        assert_eq!(parse_pressure(b""), None);
        assert_eq!(parse_pressure(b"some avg10=x total=\n"), None);
        assert_eq!(
            parse_pressure(b"some avg10=\xff total=4\nfull total=\xff5\n"),
            Some(Pressure { some_us: Some(4), full_us: None })
        );
    }

    #[test]
    fn cpu_limits() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        let half = parse_cpu_max("50000 100000\n").unwrap();
        assert_eq!(half.millicores(), 500);
        let two = CpuQuota { quota_us: 200_000, period_us: 100_000 };
        assert!(half.tighter_than(two) && !two.tighter_than(half));
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);

        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("cg");
        let pod = top.join("kubepods.slice/pod.slice");
        let ctr = pod.join("ctr.scope");
        std::fs::create_dir_all(&ctr).unwrap();
        std::fs::write(top.join("kubepods.slice/cpu.max"), "4000000 100000\n").unwrap();
        std::fs::write(pod.join("cpu.max"), "25000 100000\n").unwrap();
        std::fs::write(ctr.join("cpu.max"), "max 100000\n").unwrap();
        let read = |d: &Path| std::fs::read_to_string(d.join("cpu.max")).ok().and_then(|t| parse_cpu_max(&t));
        assert_eq!(effective_quota(&ctr, &top, read).map(CpuQuota::millicores), Some(250), "the pod's limit");
        assert_eq!(effective_quota(&top, &top, read), None);
        // Trailing and doubled `/`; a sibling whose name starts as `top`'s is not below it.
        let slashed = |p: &Path| PathBuf::from(format!("{}/", p.display()));
        assert_eq!(effective_quota(&slashed(&ctr), &slashed(&top), read).map(CpuQuota::millicores), Some(250));
        let doubled = PathBuf::from(format!("{}//ctr.scope", pod.display()));
        assert_eq!(effective_quota(&doubled, &top, read).map(CpuQuota::millicores), Some(250));
        let sibling = dir.path().join("cgX/kubepods.slice");
        std::fs::create_dir_all(&sibling).unwrap();
        std::fs::write(sibling.join("cpu.max"), "10000 100000\n").unwrap();
        assert_eq!(effective_quota(&sibling, &top, read), None, "not below top");
        // Every directory from `dir` up to `top` is read once, `top` not.
        let mut asked = Vec::new();
        effective_quota(&ctr, &top, |d| {
            asked.push(d.to_owned());
            read(d)
        });
        assert_eq!(asked, [ctr.clone(), pod.clone(), top.join("kubepods.slice")]);
        // Below the root `/`: every level but the root.
        let mut asked = Vec::new();
        effective_quota(Path::new("/a/b"), Path::new("/"), |d| {
            asked.push(d.to_owned());
            None
        });
        assert_eq!(asked, [PathBuf::from("/a/b"), PathBuf::from("/a")]);
    }
}

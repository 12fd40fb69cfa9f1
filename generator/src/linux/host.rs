//! The host's own figures for the container and host tables: pressure, load, file handles,
//! sockets, mounted file systems, network namespaces. Each reader takes `proc/` (its path or
//! an open directory) or the filesystem root and answers `None` or an empty list for a file
//! that is missing or unreadable; none of them fails a sample. Must not know about zones.

use std::path::Path;

use frame_proto::packet::{Filesystem, Pressure, System};
use procfs::LoadAverage;
use procfs::net::DeviceStatus;

use super::cgroup;
use super::kept_files::FileHandle;
use super::spare_frames::{Refill, text};

/// Pressure rows for `cpu`, `memory` and `io` from `cpu` (the host's `/proc/pressure`) or
/// `cpu.pressure` (a v2 cgroup) in `dir`: one row per resource whose file reads, written in
/// the memory of `spare` (the last sample's rows: see [`spare_frames`](super::spare_frames)).
pub fn pressure_rows(
    dir: &cgroup::Dir,
    cgroup_files: bool,
    handles: &mut [Option<FileHandle>; 3],
    spare: Vec<Pressure>,
) -> Vec<Pressure> {
    let mut rows = Refill::new(spare);
    for ((resource, cgroup_file), handle) in
        [("cpu", "cpu.pressure"), ("memory", "memory.pressure"), ("io", "io.pressure")].into_iter().zip(handles)
    {
        if let Some(Some(p)) = dir.parse_by(handle, if cgroup_files { cgroup_file } else { resource }, cgroup::parse_pressure) {
            let old = rows.old();
            rows.push(Pressure { resource: text(Some(old.resource), resource), some_us: p.some_us, full_us: p.full_us });
        }
    }
    rows.done()
}

/// The `system` row (without the zone counts): load averages from `loadavg` (read by the
/// caller: it is read before the process listing it may spare), runnable and
/// blocked threads (from `/proc/stat`, passed in), file handles from `sys/fs/file-nr`,
/// sockets from `net/sockstat`.
pub fn system_row(
    proc_dir: &cgroup::Dir,
    load: Option<&LoadAverage>,
    procs_running: Option<u32>,
    procs_blocked: Option<u32>,
    oom_kill: Option<u64>,
) -> System {
    let milli = |v: f32| (v.is_finite() && v >= 0.0).then(|| (f64::from(v) * 1000.0).round().min(f64::from(u32::MAX)) as u32);
    let file_nr = proc_dir.text("sys/fs/file-nr");
    let file_nr: Vec<u64> = file_nr.iter().flat_map(|t| t.split_whitespace().filter_map(|w| w.parse().ok())).collect();
    let (fds_used, fds_max) = match file_nr.as_slice() {
        [allocated, free, max] => (Some(allocated.saturating_sub(*free)), Some(*max)),
        _ => (None, None),
    };
    System {
        load1_milli: load.and_then(|l| milli(l.one)),
        load5_milli: load.and_then(|l| milli(l.five)),
        load15_milli: load.and_then(|l| milli(l.fifteen)),
        procs_running,
        procs_blocked,
        fds_used,
        fds_max,
        sockets_used: proc_dir.parse("net/sockstat", sockets_used).flatten(),
        oom_kill,
        zones_seen: None,
        zones_dropped: None,
    }
}

/// `sockets: used N` of `/proc/net/sockstat`.
fn sockets_used(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.starts_with("sockets:"))?;
    let mut words = line.split_whitespace().skip_while(|w| *w != "used");
    words.next()?;
    words.next()?.parse().ok()
}

/// The most `filesystem` rows a frame carries (the archiver refuses a frame with more).
pub const MAX_FILESYSTEMS: usize = 4096;

/// File system types that hold no user data (node_exporter's default exclusions).
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Whether a mount point is the system's or a container runtime's, not the operator's
/// (node_exporter's default: `/dev`, `/proc`, `/sys`, `/run/credentials/...`, and the
/// layers and volumes under `/var/lib/docker`, `/var/lib/containers/storage`,
/// `/var/lib/kubelet`).
fn system_mount_point(mp: &str) -> bool {
    ["/dev", "/proc", "/sys"].iter().any(|p| mp == *p || mp.starts_with(&format!("{p}/")))
        || ["/run/credentials/", "/var/lib/docker/", "/var/lib/containers/storage/", "/var/lib/kubelet/"]
            .iter()
            .any(|p| mp.starts_with(p))
}

/// The file systems of `mountinfo` that hold data (pseudo file systems and system or
/// container-layer mount points left out), one row per mount point (the last mount on a
/// point hides the others), sorted, with space and inodes from `statvfs` of the mount
/// point below `root`; a mount that cannot be queried (a hung network mount, a vanished
/// one) keeps its row with NULL figures. At most [`MAX_FILESYSTEMS`] rows (the first by
/// mount point), the archiver's limit per frame.
pub fn filesystem_rows(mountinfo: &str, root: &Path) -> Vec<Filesystem> {
    let mut by_point: std::collections::BTreeMap<String, (String, String)> = std::collections::BTreeMap::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
        let (Some(mp), Some(fstype), Some(source)) = (fields.get(4), fields.get(dash + 1), fields.get(dash + 2)) else {
            continue;
        };
        let mp = cgroup::unescape(mp);
        if PSEUDO_FS.contains(fstype) || system_mount_point(&mp) {
            continue;
        }
        by_point.insert(mp, ((*fstype).to_owned(), cgroup::unescape(source)));
    }
    by_point
        .into_iter()
        .take(MAX_FILESYSTEMS)
        .map(|(mountpoint, (fstype, device))| {
            let st = rustix::fs::statvfs(root.join(mountpoint.trim_start_matches('/'))).ok();
            let frsize = st.as_ref().map(|s| if s.f_frsize > 0 { s.f_frsize } else { s.f_bsize });
            Filesystem {
                size_bytes: st.as_ref().zip(frsize).map(|(s, f)| s.f_blocks.saturating_mul(f)),
                free_bytes: st.as_ref().zip(frsize).map(|(s, f)| s.f_bfree.saturating_mul(f)),
                avail_bytes: st.as_ref().zip(frsize).map(|(s, f)| s.f_bavail.saturating_mul(f)),
                files: st.as_ref().map(|s| s.f_files),
                files_free: st.as_ref().map(|s| s.f_ffree),
                mountpoint,
                device: Some(device),
                fstype: Some(fstype),
            }
        })
        .collect()
}

/// The inode number of a namespace link's target (`net:[4026531840]`).
pub fn namespace_inode(link: &Path) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let text = target.to_str()?;
    text.split_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// A `link` row from one interface of a `net/dev` file.
pub fn link_row(instance: &str, d: &DeviceStatus, netns: Option<u64>) -> frame_proto::packet::Link {
    frame_proto::packet::Link {
        instance: instance.to_owned(),
        rbytes: Some(d.recv_bytes),
        obytes: Some(d.sent_bytes),
        ipackets: Some(d.recv_packets),
        opackets: Some(d.sent_packets),
        ierrors: Some(d.recv_errs),
        oerrors: Some(d.sent_errs),
        idrops: Some(d.recv_drop),
        odrops: Some(d.sent_drop),
        netns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;

    #[test]
    fn mounts_that_hold_data_and_escaped_names() {
        let mountinfo = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw - proc proc rw
24 22 0:6 / /sys rw - sysfs sysfs rw
25 22 0:7 / /dev/shm rw - tmpfs tmpfs rw
26 22 0:8 / /run rw - tmpfs tmpfs rw
27 22 8:2 / /data\\040disk rw - xfs /dev/sdb1 rw
28 22 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
29 22 8:3 / /var/lib/docker rw - ext4 /dev/sdc1 rw
30 22 0:9 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
31 22 8:1 / /gone rw - ext4 /dev/sda1 rw
";
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("data disk")).unwrap();
        std::fs::create_dir_all(root.path().join("run")).unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/docker")).unwrap();
        let rows = filesystem_rows(mountinfo, root.path());
        let points: Vec<&str> = rows.iter().map(|r| r.mountpoint.as_str()).collect();
        assert_eq!(points, ["/", "/data disk", "/gone", "/run", "/var/lib/docker"]);
        let data = &rows[1];
        assert_eq!((data.fstype.as_deref(), data.device.as_deref()), (Some("xfs"), Some("/dev/sdb1")));
        assert!(data.size_bytes.unwrap() > 0 && data.size_bytes >= data.free_bytes && data.free_bytes >= data.avail_bytes);
        let gone = &rows[2];
        assert_eq!(
            (gone.size_bytes, gone.free_bytes, gone.files),
            (None, None, None),
            "a mount that cannot be queried is NULL, not 0"
        );
    }

    #[test]
    fn system_files_missing_or_present() {
        let dir = tempfile::tempdir().unwrap();
        let proc_dir = cgroup::Dir::new(&super::super::kept_files::KeptFiles::new(10), dir.path());
        let none = system_row(&proc_dir, None, None, None, None);
        assert_eq!((none.load1_milli, none.fds_used, none.sockets_used), (None, None, None));
        std::fs::create_dir_all(dir.path().join("sys/fs")).unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("sys/fs/file-nr"), "2048\t48\t9223372036854775807\n").unwrap();
        std::fs::write(dir.path().join("net/sockstat"), "sockets: used 321\nTCP: inuse 5 orphan 0 tw 0 alloc 7 mem 1\n").unwrap();
        let load = LoadAverage::from_read("1.50 0.25 0.00 3/456 7890\n".as_bytes()).unwrap();
        let s = system_row(&proc_dir, Some(&load), Some(3), Some(1), Some(2));
        assert_eq!((s.load1_milli, s.load5_milli, s.load15_milli), (Some(1500), Some(250), Some(0)));
        assert_eq!((s.fds_used, s.fds_max, s.sockets_used), (Some(2000), Some(9_223_372_036_854_775_807), Some(321)));
        assert_eq!((s.procs_running, s.procs_blocked, s.oom_kill), (Some(3), Some(1), Some(2)));
    }
}

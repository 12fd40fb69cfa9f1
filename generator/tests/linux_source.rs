//! The Linux source on recorded `/proc` and `/sys` trees (a hybrid v1 host and a pure v2
//! host, written here in the shapes the kernel uses), and once on this machine.
#![allow(unused_crate_dependencies)]

use std::fs;
use std::path::Path;

use frame_proto::Packet;
use generator::linux::process_clock::ProcessClocks;
use generator::linux::{LinuxOptions, LinuxSource};
use generator::source::StatSource;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn proc_stat_line(pid: u32, comm: &str, utime: u64, stime: u64, threads: u32, cpu: u32) -> String {
    // Fields 1..=39 of /proc/PID/stat; utime=14, stime=15, num_threads=20, processor=39.
    format!(
        "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 {threads} 0 100 1000000 200 \
         18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 {cpu} 0 0 0 0 0"
    )
}

/// Writes the parts of a host that change between samples.
fn write_sample(root: &Path, busy: u64, majflt: u64, percpu: [u64; 2], proc_time: u64, v2_usage: u64) {
    write(
        root,
        "proc/stat",
        &format!(
            "cpu  {t} 0 0 1000 0 0 0 0 0 0\ncpu0 {busy} 0 0 500 0 0 0 0 0 0\ncpu1 {busy2} 0 0 500 0 0 0 0 0 0\n\
             intr 0\nctxt 10\nbtime 1700000000\nprocesses 50\nprocs_running 3\nprocs_blocked 0\n",
            t = busy * 3,
            busy2 = busy * 2
        ),
    );
    write(
        root,
        "proc/vmstat",
        &format!("pgalloc_normal 1000\npgalloc_dma 10\npgfree 900\npgfault {}\npgmajfault {majflt}\npswpin 7\n", majflt * 10),
    );
    write(root, "proc/1/stat", &proc_stat_line(1, "init", 10, 10, 1, 0));
    write(root, "proc/200/stat", &proc_stat_line(200, "nginx", proc_time, 0, 4, 1));
    write(root, "proc/300/stat", &proc_stat_line(300, "web app", 5, 5, 2, 0));
    write(root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpuacct.usage_percpu", &format!("{} {} \n", percpu[0], percpu[1]));
    write(root, "sys/fs/cgroup/memory/docker/abc/memory.stat", &format!("rss 100\ntotal_rss 4096\ntotal_pgmajfault {majflt}\n"));
    write(root, "sys/fs/cgroup/unified/system.slice/web.service/cpu.stat", &format!("usage_usec {v2_usage}\nuser_usec 1\n"));
}

fn hybrid_host(root: &Path) {
    write(
        root,
        "proc/self/mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
         32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
         36 31 0:33 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    );
    write(
        root,
        "proc/meminfo",
        "MemTotal:       8000000 kB\nMemFree:        2000000 kB\nMemAvailable:   5000000 kB\nBuffers: 0 kB\nCached: 0 kB\n\
         SwapCached: 0 kB\nActive: 0 kB\nInactive: 0 kB\nSwapTotal:      1000000 kB\nSwapFree:        400000 kB\nDirty: 0 kB\n\
         Writeback: 0 kB\nMapped: 0 kB\nShmem: 0 kB\nSlab:             40000 kB\nKernelStack:      4000 kB\nPageTables:       8000 kB\n\
         CommitLimit: 0 kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\nVmallocUsed: 0 kB\nVmallocChunk: 0 kB\n",
    );
    write(
        root,
        "proc/net/dev",
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  \
         eth0:    5000      50    1    0    0     0          0         0     7000      70    2    0    0     0       0          0\n",
    );
    write(
        root,
        "proc/diskstats",
        "   7       0 loop0 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n   8       0 sda 10 0 80 5 20 0 160 6 0 7 11 0 0 0 0 0 0\n   \
         8       1 sda1 10 0 80 5 20 0 160 6 0 7 11 0 0 0 0 0 0\n",
    );
    fs::create_dir_all(root.join("sys/block/sda")).unwrap();
    fs::create_dir_all(root.join("sys/block/loop0")).unwrap();
    // pid 1: the host's root cgroups. pid 200: a docker container on v1. pid 300: a systemd
    // service on the v2 hierarchy of a hybrid host.
    write(root, "proc/1/cgroup", "4:memory:/\n3:blkio:/\n2:cpu,cpuacct:/\n0::/\n");
    write(root, "proc/200/cgroup", "4:memory:/docker/abc\n3:blkio:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n");
    write(root, "proc/300/cgroup", "4:memory:/\n3:blkio:/\n2:cpu,cpuacct:/\n0::/system.slice/web.service\n");
    write(root, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
    write(root, "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "8192\n");
    write(root, "sys/fs/cgroup/memory/docker/abc/memory.memsw.usage_in_bytes", "10240\n");
    write(
        root,
        "sys/fs/cgroup/blkio/docker/abc/blkio.throttle.io_service_bytes",
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
    );
    write(root, "sys/fs/cgroup/blkio/docker/abc/blkio.throttle.io_serviced", "8:0 Read 1\n8:0 Write 2\n");
    write(root, "sys/fs/cgroup/unified/system.slice/web.service/memory.stat", "anon 123456\npgmajfault 3\n");
    write(root, "sys/fs/cgroup/unified/system.slice/web.service/memory.max", "max\n");
    write(root, "sys/fs/cgroup/unified/system.slice/web.service/memory.swap.current", "0\n");
    write(
        root,
        "sys/fs/cgroup/unified/system.slice/web.service/io.stat",
        "8:0 rbytes=512 wbytes=1024 rios=3 wios=4 dbytes=0 dios=0\n",
    );
}

fn zone<'a>(frames: &'a [Packet], name: &str) -> &'a Packet {
    frames
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no zone {name}: {:?}", frames.iter().map(|f| &f.name).collect::<Vec<_>>()))
}

#[test]
fn hybrid_host_global_v1_and_v2_zones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    hybrid_host(root);
    write_sample(root, 100, 5, [1_000_000_000, 2_000_000_000], 100, 1_000_000);
    let mut source =
        LinuxSource::new(LinuxOptions { root: root.to_owned(), top_processes: 2, ..LinuxOptions::default() }).unwrap();
    let first = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    assert_eq!(first.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["global", "docker/abc", "web.service"]);
    let g = zone(&first, "global");
    // First sample: per-interval fields are unknown, not zero.
    assert!(g.cpu.iter().all(|c| c.usage.is_none()));
    assert_eq!(g.mem[0].maj_fault, None);

    // One second later (USER_HZ 100 in the recorded tree): core 0 busy 50 more ticks (0.5 s).
    write_sample(root, 150, 9, [1_500_000_000, 2_250_000_000], 130, 1_200_000);
    let frames = source.sample(1_764_000_001_000_000, 1_000_000).unwrap();
    let g = zone(&frames, "global");
    assert_eq!(g.ticks, Some(4999));
    assert_eq!(g.time, 1_764_000_001);
    assert_eq!(g.time_us, Some(1_764_000_001_000_000));
    assert_eq!(g.processes, Some(3));
    assert_eq!(g.threads, Some(7));
    assert_eq!(g.cpu.iter().map(|c| (c.core, c.usage)).collect::<Vec<_>>(), [(Some(0), Some(2499)), (Some(1), Some(4999))]);
    let m = &g.mem[0];
    assert_eq!(m.physcap, Some(8_000_000 * 1024));
    assert_eq!(m.rss, Some(3_000_000 * 1024));
    assert_eq!((m.swap, m.swapcap), (Some(600_000 * 1024), Some(1_000_000 * 1024)));
    assert_eq!((m.physmem, m.freemem), (Some(2_000_000), Some(500_000)));
    assert_eq!(m.pp_kernel, Some(13_000));
    assert_eq!((m.nalloc_calls, m.nfree_calls), (Some(1010), Some(900)));
    assert_eq!((m.maj_fault, m.as_fault, m.pgin), (Some(4), Some(40), Some(0)));
    assert_eq!(g.net.iter().map(|n| n.instance.as_deref().unwrap()).collect::<Vec<_>>(), ["eth0", "lo"]);
    assert_eq!(
        (g.net[0].rbytes64, g.net[0].obytes64, g.net[0].ierrors, g.net[0].oerrors),
        (Some(5000), Some(7000), Some(1), Some(2))
    );
    assert_eq!(g.disk.len(), 1, "whole disks only: {:?}", g.disk);
    let sda = &g.disk[0];
    assert_eq!(
        (sda.instance.as_str(), sda.nread, sda.nwritten, sda.reads, sda.writes),
        ("sda", Some(80 * 512), Some(160 * 512), Some(10), Some(20))
    );
    assert_eq!((sda.rtime, sda.rlentime, sda.wtime), (Some(7_000_000), Some(11_000_000), None));
    assert_eq!(g.cpuqueue.len(), 1);
    assert_eq!((g.cpuqueue[0].core, g.cpuqueue[0].length), (None, Some(3)));
    assert_eq!(g.zonename, ["global", "docker/abc", "web.service"]);
    // Busiest processes: nginx used 30 ticks (0.3 s) in the interval; the others did not run
    // (no rows, though two were asked for).
    assert_eq!(g.process.len(), 1);
    assert_eq!(
        (g.process[0].pid, g.process[0].execname.as_deref(), g.process[0].usage, g.process[0].cpu),
        (Some(200), Some("nginx"), Some(1499), Some(1))
    );

    // A v1 container: per-core CPU from cpuacct, memory from the memory controller.
    let d = zone(&frames, "docker/abc");
    assert_eq!(d.cpu.iter().map(|c| (c.core, c.usage)).collect::<Vec<_>>(), [(Some(0), Some(2499)), (Some(1), Some(1249))]);
    assert_eq!(d.mem[0].rss, Some(4096));
    assert_eq!(d.mem[0].physcap, None, "unlimited is NULL");
    assert_eq!(d.mem[0].swap, Some(2048));
    assert_eq!(d.mem[0].maj_fault, Some(4));
    assert_eq!(d.mem[0].physmem, None);
    assert_eq!(d.disk.len(), 1);
    assert_eq!((d.disk[0].instance.as_str(), d.disk[0].nread, d.disk[0].writes), ("sda", Some(4096), Some(2)));
    assert!(d.net.is_empty(), "no namespace of its own recorded: no rows");
    assert_eq!((d.processes, d.threads), (Some(1), Some(4)));
    assert!(d.zonename.is_empty() && d.cpuqueue.is_empty());

    // A v2 group: one CPU row with no core, memory.max "max" is NULL.
    let w = zone(&frames, "web.service");
    assert_eq!(w.cpu.len(), 1);
    assert_eq!((w.cpu[0].core, w.cpu[0].usage), (None, Some(999)));
    assert_eq!((w.mem[0].rss, w.mem[0].physcap, w.mem[0].swap), (Some(123_456), None, Some(0)));
    assert_eq!(
        (w.disk[0].nread, w.disk[0].nwritten, w.disk[0].reads, w.disk[0].writes),
        (Some(512), Some(1024), Some(3), Some(4))
    );
    // Its process did not run in the interval (no row now); at first sight it had one.
    assert!(w.process.is_empty());
    assert_eq!(zone(&first, "web.service").process[0].execname.as_deref(), Some("web app"));
    assert_eq!(zone(&first, "web.service").process[0].usage, None, "its CPU over an interval not known");
}

#[test]
fn a_zone_lists_its_busiest_processes_first_ties_by_pid_no_more_than_asked_and_none_that_did_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let ran = [(805, 20), (801, 10), (804, 30), (803, 0), (802, 30)];
    for (pid, _) in ran {
        process(root, pid, &format!("p{pid}"), "0::/system.slice/busy.service\n");
    }
    let cpu_stat = "sys/fs/cgroup/system.slice/busy.service/cpu.stat";
    write(root, cpu_stat, "usage_usec 1000\nuser_usec 1\nsystem_usec 1\n");
    let mut source =
        LinuxSource::new(LinuxOptions { root: root.to_owned(), top_processes: 3, ..LinuxOptions::default() }).unwrap();
    source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    // Read before their zone's time at first sight: read again at the next sample.
    for (pid, ticks) in ran {
        write(root, &format!("proc/{pid}/stat"), &proc_stat_line(pid, &format!("p{pid}"), 10 + ticks, 5, 1, 0));
    }
    write(root, cpu_stat, "usage_usec 900000\nuser_usec 1\nsystem_usec 1\n");
    let frames = source.sample(1_764_000_001_000_000, 1_000_000).unwrap();
    let rows: Vec<(Option<u32>, Option<u32>)> = zone(&frames, "busy.service").process.iter().map(|p| (p.pid, p.usage)).collect();
    // 30 ticks (0.3 s) is 1499 at 4999 Hz; 20 ticks 999.
    assert_eq!(rows, [(Some(802), Some(1499)), (Some(804), Some(1499)), (Some(805), Some(999))]);
    assert_eq!(zone(&frames, "busy.service").processes, Some(5), "all counted, three listed");
    // A second in which only 803 ran (10 ticks): the others have no rows (none ran), though
    // three are asked for; all are still counted.
    write(root, "proc/803/stat", &proc_stat_line(803, "p803", 20, 5, 1, 0));
    write(root, cpu_stat, "usage_usec 1000000\nuser_usec 1\nsystem_usec 1\n");
    let frames = source.sample(1_764_000_002_000_000, 1_000_000).unwrap();
    let rows: Vec<(Option<u32>, Option<u32>)> = zone(&frames, "busy.service").process.iter().map(|p| (p.pid, p.usage)).collect();
    assert_eq!(rows, [(Some(803), Some(499))]);
    assert_eq!(zone(&frames, "busy.service").processes, Some(5));
}

#[test]
fn a_process_vanishing_mid_scan_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    hybrid_host(root);
    write_sample(root, 100, 5, [1, 2], 100, 1);
    // A pid directory with no readable stat (the process exited between listing and reading).
    fs::create_dir_all(root.join("proc/400")).unwrap();
    write(root, "proc/401/stat", "garbage");
    let mut source =
        LinuxSource::new(LinuxOptions { root: root.to_owned(), top_processes: 20, ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    assert_eq!(zone(&frames, "global").processes, Some(3));
}

#[test]
fn this_machine() {
    if !Path::new("/proc/self/mountinfo").exists() {
        return; // not Linux
    }
    let mut source = LinuxSource::new(LinuxOptions::default()).unwrap();
    let _ = source.sample(generator::now_us(), 1_000_000).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let frames = source.sample(generator::now_us(), 200_000).unwrap();
    let g = zone(&frames, "global");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    assert!(g.cpu.len() >= cores, "{} cores listed, {cores} available", g.cpu.len());
    assert!(g.cpu.iter().all(|c| c.usage.is_some_and(|u| u <= 2 * 999)), "{:?}", g.cpu);
    assert!(g.mem[0].physcap.unwrap_or(0) > 0);
    assert!(g.processes.unwrap_or(0) >= 1);
    assert!(g.process.iter().any(|p| p.pid == Some(std::process::id())) || g.process.len() == 20);
    // The container and host tables, live.
    if Path::new("/proc/pressure/cpu").exists() {
        assert_eq!(g.pressure.iter().map(|p| p.resource.as_str()).collect::<Vec<_>>(), ["cpu", "memory", "io"]);
        assert!(g.pressure.iter().all(|p| p.some_us.is_some()), "{:?}", g.pressure);
    }
    let s = &g.system[0];
    assert!(s.load1_milli.is_some() && s.procs_running.is_some_and(|r| r >= 1) && s.fds_used.is_some_and(|f| f > 0), "{s:?}");
    let m = &g.memory[0];
    assert!(m.usage.is_some_and(|u| u > 0) && m.usage <= m.limit && m.working_set <= m.usage, "{m:?}");
    assert!(g.cpu_time[0].user_us.is_some_and(|u| u > 0));
    assert!(g.link.iter().any(|l| l.instance == "lo"));
    for f in &g.filesystem {
        assert!(f.size_bytes >= f.free_bytes && f.free_bytes >= f.avail_bytes, "{f:?}");
    }
}

// ---- Container platforms on composed trees: the shapes the kernel's cgroup-v2 and cgroup-v1
// documentation and the runtimes (Docker, containerd/Kubernetes with the systemd and cgroupfs
// drivers, systemd) give their files, written here, not recorded from real hosts. ----

const ID_A: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";
const ID_PAUSE: &str = "aaaa1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";
const ID_APP: &str = "bbbb1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";
const POD: &str = "1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

fn netns(root: &Path, pid: u32, inode: u64) {
    let dir = root.join(format!("proc/{pid}/ns"));
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(format!("net:[{inode}]"), dir.join("net")).unwrap();
}

fn net_dev(eth0_rx_drop: u64, eth0_tx_drop: u64) -> String {
    format!(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  \
         eth0:    5000      50    1 {eth0_rx_drop}    0     0          0         0     7000      70    2 {eth0_tx_drop}    0     0       0          0\n"
    )
}

fn process(root: &Path, pid: u32, comm: &str, cgroup: &str) {
    write(root, &format!("proc/{pid}/stat"), &proc_stat_line(pid, comm, 10, 5, 1, 0));
    write(root, &format!("proc/{pid}/cgroup"), cgroup);
}

/// The host's own files shared by the composed hosts.
fn host_files(root: &Path) {
    write(
        root,
        "proc/stat",
        "cpu  300 10 200 1000 40 5 5 0 0 0\ncpu0 150 5 100 500 20 2 3 0 0 0\ncpu1 150 5 100 500 20 3 2 0 0 0\n\
         intr 0\nctxt 10\nbtime 1700000000\nprocesses 50\nprocs_running 4\nprocs_blocked 2\n",
    );
    write(
        root,
        "proc/meminfo",
        "MemTotal:       8000000 kB\nMemFree:        2000000 kB\nMemAvailable:   5000000 kB\nBuffers:         100000 kB\n\
         Cached:         900000 kB\nSwapCached: 0 kB\nActive: 0 kB\nInactive: 0 kB\nActive(anon): 0 kB\nInactive(anon): 0 kB\n\
         Active(file): 0 kB\nInactive(file):  300000 kB\nSwapTotal:      1000000 kB\nSwapFree:        400000 kB\nDirty: 0 kB\n\
         Writeback: 0 kB\nAnonPages:      2500000 kB\nMapped: 0 kB\nShmem:            50000 kB\nSlab:             40000 kB\n\
         KernelStack:      4000 kB\nPageTables:       8000 kB\nCommitLimit: 0 kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\n\
         VmallocUsed: 0 kB\nVmallocChunk: 0 kB\n",
    );
    write(root, "proc/vmstat", "pgalloc_normal 1000\npgfree 900\npgfault 10\npgmajfault 1\npswpin 7\noom_kill 3\n");
    write(root, "proc/net/dev", &net_dev(4, 6));
    write(root, "proc/net/sockstat", "sockets: used 321\nTCP: inuse 5 orphan 0 tw 0 alloc 7 mem 1\n");
    write(root, "proc/loadavg", "2.50 1.25 0.75 4/456 7890\n");
    write(root, "proc/sys/fs/file-nr", "2048\t48\t9223372036854775807\n");
    // Linux 5.5 and later: discards and flushes after the 11 classic fields.
    write(root, "proc/diskstats", "   8       0 sda 10 0 80 5 20 0 160 6 1 7 11 3 0 48 9 2 4\n");
    fs::create_dir_all(root.join("sys/block/sda")).unwrap();
    for resource in ["cpu", "memory", "io"] {
        write(
            root,
            &format!("proc/pressure/{resource}"),
            &format!(
                "some avg10=1.00 avg60=0.50 avg300=0.10 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
                resource.len() * 1000
            ),
        );
    }
    process(root, 1, "systemd", "0::/init.scope\n");
    netns(root, 1, 4_026_531_840);
}

/// A cgroup v2 host (systemd driver) running a Docker container with its own network
/// namespace, a Kubernetes pod of two containers sharing one namespace (the pause container
/// and an app), with the CPU quota on the pod's slice, and a systemd service on the host's
/// network.
fn v2_host(root: &Path) {
    host_files(root);
    write(
        root,
        "proc/self/mountinfo",
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
         23 22 0:5 / /proc rw - proc proc rw\n\
         24 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
    );
    let cg = "sys/fs/cgroup";
    let docker = format!("{cg}/system.slice/docker-{ID_A}.scope");
    process(root, 500, "postgres", &format!("0::/system.slice/docker-{ID_A}.scope\n"));
    netns(root, 500, 4_026_532_500);
    write(root, "proc/500/net/dev", &net_dev(11, 12));
    write(
        root,
        &format!("{docker}/cpu.stat"),
        "usage_usec 5000000\nuser_usec 3000000\nsystem_usec 2000000\nnr_periods 100\nnr_throttled 40\nthrottled_usec 1500000\n",
    );
    write(root, &format!("{docker}/cpu.max"), "50000 100000\n");
    write(root, &format!("{docker}/cpu.weight"), "100\n");
    write(
        root,
        &format!("{docker}/cpu.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=111\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=22\n",
    );
    write(
        root,
        &format!("{docker}/memory.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=333\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=44\n",
    );
    write(
        root,
        &format!("{docker}/io.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=555\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=66\n",
    );
    write(root, &format!("{docker}/memory.current"), "500000000\n");
    write(
        root,
        &format!("{docker}/memory.stat"),
        "anon 300000000\nfile 150000000\nkernel 20000000\nkernel_stack 1000000\npagetables 2000000\nshmem 5000000\n\
         slab 15000000\ninactive_file 100000000\nactive_file 50000000\npgmajfault 9\n",
    );
    write(root, &format!("{docker}/memory.max"), "1073741824\n");
    write(root, &format!("{docker}/memory.high"), "max\n");
    write(root, &format!("{docker}/memory.events"), "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n");
    write(root, &format!("{docker}/memory.swap.current"), "0\n");
    write(root, &format!("{docker}/memory.swap.max"), "max\n");
    write(root, &format!("{docker}/io.stat"), "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=1048576 dios=3\n");

    let pod = format!("{cg}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice", POD.replace('-', "_"));
    write(root, &format!("{pod}/cpu.max"), "25000 100000\n");
    for (pid, id, comm) in [(599, ID_PAUSE, "pause"), (601, ID_APP, "app")] {
        let rel = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            POD.replace('-', "_")
        );
        process(root, pid, comm, &format!("0::{rel}\n"));
        netns(root, pid, 4_026_532_600);
        write(root, &format!("proc/{pid}/net/dev"), &net_dev(1, 2));
        write(root, &format!("{cg}{rel}/cpu.max"), "max 100000\n");
        write(
            root,
            &format!("{cg}{rel}/cpu.stat"),
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        );
    }
    process(root, 700, "nginx", "0::/system.slice/nginx.service\n");
    netns(root, 700, 4_026_531_840);
    write(root, &format!("{cg}/system.slice/nginx.service/cpu.stat"), "usage_usec 70\nuser_usec 50\nsystem_usec 20\n");
}

fn one<T: std::fmt::Debug>(v: &[T]) -> &T {
    assert_eq!(v.len(), 1, "{v:?}");
    &v[0]
}

#[test]
fn cgroup_v2_host_with_docker_kubernetes_and_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    let k8s = |id: &str| format!("k8s/{POD}/{}", &id[..12]);
    assert_eq!(
        frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["global", "docker/3f2a1b4c5d6e", "init.scope", &k8s(ID_PAUSE), &k8s(ID_APP), "nginx.service"]
    );

    // The host.
    let g = zone(&frames, "global");
    let ct = one(&g.cpu_time);
    assert_eq!((ct.user_us, ct.system_us, ct.iowait_us), (Some(3_100_000), Some(2_100_000), Some(400_000)), "USER_HZ 100");
    assert_eq!((ct.quota_us, ct.periods), (None, None));
    let pressure: Vec<_> = g.pressure.iter().map(|p| (p.resource.as_str(), p.some_us, p.full_us)).collect();
    assert_eq!(pressure, [("cpu", Some(3000), Some(7)), ("memory", Some(6000), Some(7)), ("io", Some(2000), Some(7))]);
    let m = one(&g.memory);
    assert_eq!((m.usage, m.inactive_file, m.working_set), (Some(6_000_000 * 1024), Some(300_000 * 1024), Some(5_700_000 * 1024)));
    assert_eq!((m.anon, m.file, m.shmem), (Some(2_500_000 * 1024), Some(1_000_000 * 1024), Some(50_000 * 1024)));
    assert_eq!((m.kernel, m.slab, m.limit), (Some(52_000 * 1024), Some(40_000 * 1024), Some(8_000_000 * 1024)));
    assert_eq!((m.swap, m.swap_limit, m.oom), (Some(600_000 * 1024), Some(1_000_000 * 1024), None));
    let io = one(&g.io);
    assert_eq!(
        (io.instance.as_str(), io.rbytes, io.wbytes, io.rios, io.wios),
        ("sda", Some(80 * 512), Some(160 * 512), Some(10), Some(20))
    );
    assert_eq!(
        (io.read_ns, io.write_ns, io.in_progress, io.busy_ns),
        (Some(5_000_000), Some(6_000_000), Some(1), Some(7_000_000))
    );
    assert_eq!((io.dios, io.dbytes, io.discard_ns), (Some(3), Some(48 * 512), Some(9_000_000)));
    let s = one(&g.system);
    assert_eq!((s.load1_milli, s.load5_milli, s.load15_milli), (Some(2500), Some(1250), Some(750)));
    assert_eq!((s.procs_running, s.procs_blocked, s.oom_kill), (Some(4), Some(2), Some(3)));
    assert_eq!((s.fds_used, s.sockets_used), (Some(2000), Some(321)));
    assert_eq!((s.zones_seen, s.zones_dropped), (Some(5), Some(0)));
    let eth0 = g.link.iter().find(|l| l.instance == "eth0").unwrap();
    assert_eq!((eth0.idrops, eth0.odrops, eth0.ierrors, eth0.netns), (Some(4), Some(6), Some(1), Some(4_026_531_840)));
    let fs_rows: Vec<_> = g.filesystem.iter().map(|f| (f.mountpoint.as_str(), f.fstype.as_deref())).collect();
    assert_eq!(fs_rows, [("/", Some("ext4"))], "proc and cgroup2 are not data");
    assert!(g.filesystem[0].size_bytes.unwrap() > 0, "statvfs of the tree's root");
    let info = one(&g.zone_info);
    assert_eq!((info.kind.as_deref(), info.cgroup_path.as_deref()), (Some("host"), Some("/")));

    // Docker: throttling under its own quota, pressure, memory with events, discards, its
    // own network namespace with drops.
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    let ct = one(&d.cpu_time);
    assert_eq!((ct.user_us, ct.system_us), (Some(3_000_000), Some(2_000_000)));
    assert_eq!((ct.periods, ct.throttled_periods, ct.throttled_us), (Some(100), Some(40), Some(1_500_000)));
    assert_eq!((ct.quota_us, ct.period_us, ct.limit_millicores, ct.weight), (Some(50_000), Some(100_000), Some(500), Some(100)));
    let pressure: Vec<_> = d.pressure.iter().map(|p| (p.resource.as_str(), p.some_us, p.full_us)).collect();
    assert_eq!(pressure, [("cpu", Some(111), Some(22)), ("memory", Some(333), Some(44)), ("io", Some(555), Some(66))]);
    let m = one(&d.memory);
    assert_eq!(
        (m.usage, m.working_set, m.anon, m.file),
        (Some(500_000_000), Some(400_000_000), Some(300_000_000), Some(150_000_000))
    );
    assert_eq!(
        (m.shmem, m.kernel, m.slab, m.inactive_file),
        (Some(5_000_000), Some(20_000_000), Some(15_000_000), Some(100_000_000))
    );
    assert_eq!((m.limit, m.high, m.swap, m.swap_limit), (Some(1_073_741_824), None, Some(0), None));
    assert_eq!((m.oom, m.oom_kill, m.max_events, m.high_events), (Some(2), Some(1), Some(17), Some(0)));
    let io = one(&d.io);
    assert_eq!(
        (io.instance.as_str(), io.rbytes, io.dbytes, io.dios, io.read_ns),
        ("sda", Some(4096), Some(1_048_576), Some(3), None)
    );
    let eth0 = d.link.iter().find(|l| l.instance == "eth0").unwrap();
    assert_eq!((eth0.idrops, eth0.odrops, eth0.netns), (Some(11), Some(12), Some(4_026_532_500)));
    assert_eq!(d.net.len(), 2, "the 2013 net table too");
    let info = one(&d.zone_info);
    assert_eq!(info.kind.as_deref(), Some("docker"));
    assert_eq!(info.container_id.as_deref(), Some(ID_A));
    assert_eq!(info.cgroup_path, Some(format!("/system.slice/docker-{ID_A}.scope")));

    // Kubernetes: the quota sits on the pod's slice; the pod's namespace is counted once, in
    // the zone of its lowest pid (the pause container).
    let pause = zone(&frames, &k8s(ID_PAUSE));
    let app = zone(&frames, &k8s(ID_APP));
    for z in [pause, app] {
        let ct = one(&z.cpu_time);
        assert_eq!((ct.quota_us, ct.period_us, ct.limit_millicores), (Some(25_000), Some(100_000), Some(250)), "{}", z.name);
        let info = one(&z.zone_info);
        assert_eq!((info.kind.as_deref(), info.pod_uid.as_deref()), (Some("kubernetes"), Some(POD)));
        assert!(z.pressure.is_empty() && z.memory.is_empty(), "no such files: no rows, not zeros");
    }
    assert_eq!(pause.link.len(), 2);
    assert_eq!(pause.link[0].netns, Some(4_026_532_600));
    assert!(app.link.is_empty() && app.net.is_empty(), "the shared namespace is not counted twice");

    // A systemd service on the host's network: no network rows of its own.
    let n = zone(&frames, "nginx.service");
    assert!(n.link.is_empty() && n.net.is_empty());
    assert_eq!((one(&n.cpu_time).user_us, one(&n.cpu_time).throttled_us), (Some(50), None));
    assert_eq!(one(&n.zone_info).kind.as_deref(), Some("systemd"));

    // zone_info comes again only after `zone_info_every` samples.
    let later = source.sample(1_764_000_001_000_000, 1_000_000).unwrap();
    assert!(later.iter().all(|f| f.zone_info.is_empty()));
}

/// A hybrid host: v1 controllers (Kubernetes with the cgroupfs driver) and v2 at
/// `/sys/fs/cgroup/unified` (a systemd service), no per-cgroup pressure (v1 has none).
#[test]
fn cgroup_v1_kubernetes_with_the_cgroupfs_driver_on_a_hybrid_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    host_files(root);
    write(
        root,
        "proc/self/mountinfo",
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
         32 22 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         35 22 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
         36 22 0:33 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n\
         41 22 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    );
    let rel = format!("/kubepods/burstable/pod{POD}/{ID_A}");
    process(root, 800, "java", &format!("5:memory:{rel}\n4:blkio:{rel}\n3:cpu,cpuacct:{rel}\n0::/\n"));
    let cpu = "sys/fs/cgroup/cpu,cpuacct";
    write(root, &format!("{cpu}/kubepods/burstable/pod{POD}/cpu.cfs_quota_us"), "150000\n");
    write(root, &format!("{cpu}/kubepods/burstable/pod{POD}/cpu.cfs_period_us"), "100000\n");
    write(root, &format!("{cpu}{rel}/cpu.cfs_quota_us"), "-1\n");
    write(root, &format!("{cpu}{rel}/cpu.cfs_period_us"), "100000\n");
    write(root, &format!("{cpu}{rel}/cpu.shares"), "1024\n");
    write(root, &format!("{cpu}{rel}/cpuacct.stat"), "user 250\nsystem 50\n");
    write(root, &format!("{cpu}{rel}/cpu.stat"), "nr_periods 10\nnr_throttled 3\nthrottled_time 2000000\n");
    let mem = format!("sys/fs/cgroup/memory{rel}");
    write(root, &format!("{mem}/memory.usage_in_bytes"), "2000\n");
    write(root, &format!("{mem}/memory.limit_in_bytes"), "9223372036854771712\n");
    write(root, &format!("{mem}/memory.memsw.usage_in_bytes"), "2500\n");
    write(
        root,
        &format!("{mem}/memory.stat"),
        "rss 1\ntotal_rss 1200\ntotal_cache 600\ntotal_shmem 8\ntotal_inactive_file 500\ntotal_pgmajfault 0\n",
    );
    write(root, &format!("{mem}/memory.kmem.usage_in_bytes"), "64\n");
    write(root, &format!("{mem}/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n");
    write(root, &format!("{mem}/memory.failcnt"), "9\n");
    let blk = format!("sys/fs/cgroup/blkio{rel}");
    write(
        root,
        &format!("{blk}/blkio.throttle.io_service_bytes"),
        "8:0 Read 10\n8:0 Write 20\n8:0 Discard 30\n8:0 Total 60\nTotal 60\n",
    );
    write(root, &format!("{blk}/blkio.throttle.io_serviced"), "8:0 Read 1\n8:0 Write 2\n8:0 Discard 3\n8:0 Total 6\nTotal 6\n");
    process(root, 900, "cron", "5:memory:/\n4:blkio:/\n3:cpu,cpuacct:/\n0::/system.slice/cron.service\n");
    write(root, "sys/fs/cgroup/unified/system.slice/cron.service/cpu.stat", "usage_usec 9\nuser_usec 5\nsystem_usec 4\n");
    write(root, "sys/fs/cgroup/memory/memory.stat", "total_rss 999999\ntotal_cache 1\n");
    write(root, "sys/fs/cgroup/memory/memory.usage_in_bytes", "999999\n");
    write(root, "sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes", "8:0 Read 999999\n");
    write(
        root,
        "sys/fs/cgroup/unified/system.slice/cron.service/memory.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=8\n",
    );

    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    let name = format!("k8s/{POD}/3f2a1b4c5d6e");
    assert_eq!(frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["global", "cron.service", "init.scope", &name]);
    let k = zone(&frames, &name);
    let ct = one(&k.cpu_time);
    assert_eq!((ct.user_us, ct.system_us), (Some(2_500_000), Some(500_000)), "cpuacct.stat in USER_HZ");
    assert_eq!((ct.periods, ct.throttled_periods, ct.throttled_us), (Some(10), Some(3), Some(2000)), "throttled_time is ns");
    assert_eq!(
        (ct.quota_us, ct.limit_millicores, ct.weight),
        (Some(150_000), Some(1500), Some(39)),
        "the pod's quota; shares 1024"
    );
    assert!(k.pressure.is_empty(), "cgroup v1 has no pressure files");
    let m = one(&k.memory);
    assert_eq!(
        (m.usage, m.working_set, m.anon, m.file, m.shmem, m.kernel),
        (Some(2000), Some(1500), Some(1200), Some(600), Some(8), Some(64))
    );
    assert_eq!((m.limit, m.high, m.swap, m.swap_limit), (None, None, Some(500), None));
    assert_eq!((m.oom, m.oom_kill, m.max_events, m.high_events), (None, Some(5), Some(9), None));
    let io = one(&k.io);
    assert_eq!(
        (io.rbytes, io.wbytes, io.dbytes, io.rios, io.wios, io.dios),
        (Some(10), Some(20), Some(30), Some(1), Some(2), Some(3))
    );
    assert_eq!(one(&k.zone_info).cgroup_path, Some(rel.clone()));
    // The v2 service of the hybrid host: a pressure file with only a `some` line; its v1
    // groups are the roots, the host's own figures, which are not the zone's.
    let c = zone(&frames, "cron.service");
    assert!(c.memory.is_empty() && c.io.is_empty() && c.disk.is_empty(), "{:?} {:?}", c.memory, c.io);
    assert_eq!(c.mem[0].rss, None);
    let p: Vec<_> = c.pressure.iter().map(|p| (p.resource.as_str(), p.some_us, p.full_us)).collect();
    assert_eq!(p, [("memory", Some(8), None)]);
}

#[test]
fn a_zones_memory_events_stand_until_the_file_is_modified_then_show_its_new_counters() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let events = root.join(format!("sys/fs/cgroup/system.slice/docker-{ID_A}.scope/memory.events"));
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let counters = |source: &mut LinuxSource, n: i64| {
        let frames = source.sample(1_764_000_000_000_000 + n * 1_000_000, 1_000_000).unwrap();
        let m = *one(&zone(&frames, "docker/3f2a1b4c5d6e").memory);
        (m.oom, m.oom_kill, m.max_events, m.high_events)
    };
    assert_eq!(counters(&mut source, 0), (Some(2), Some(1), Some(17), Some(0)));
    assert_eq!(counters(&mut source, 1), (Some(2), Some(1), Some(17), Some(0)), "unmodified: as last read");
    // Rewritten in place, as the kernel modifies it.
    fs::write(&events, "low 0\nhigh 4\nmax 18\noom 3\noom_kill 2\noom_group_kill 0\n").unwrap();
    assert_eq!(counters(&mut source, 2), (Some(3), Some(2), Some(18), Some(4)));
    assert_eq!(counters(&mut source, 3), (Some(3), Some(2), Some(18), Some(4)));
    // Emptied: no counters (not the ones before).
    fs::write(&events, "").unwrap();
    assert_eq!(counters(&mut source, 4), (None, None, None, None));
    fs::write(&events, "oom_kill 7\n").unwrap();
    assert_eq!(counters(&mut source, 5), (None, Some(7), None, None));
    assert_eq!(counters(&mut source, 6), (None, Some(7), None, None));
}

#[test]
fn frames_written_in_the_memory_of_the_last_ones_are_the_frames_made_anew() {
    // Two sources on one tree, one handed its sent frames back (as the run loop does): the
    // same frames at each sample while zones, processes, devices and pressure rows come and
    // go (rows fewer than before leave none of the old ones behind).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let docker_cg = format!("0::/system.slice/docker-{ID_A}.scope\n");
    let docker = root.join(format!("sys/fs/cgroup/system.slice/docker-{ID_A}.scope"));
    let opts = || LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() };
    let (mut recycling, mut fresh) = (LinuxSource::new(opts()).unwrap(), LinuxSource::new(opts()).unwrap());
    let mut t = 1_764_000_000_000_000;
    let mut both = |recycling: &mut LinuxSource, fresh: &mut LinuxSource| {
        t += 1_000_000;
        let (a, b) = (recycling.sample(t, 1_000_000).unwrap(), fresh.sample(t, 1_000_000).unwrap());
        // The host's file systems are this machine's own (`statfs`), live between the reads.
        let without_file_systems =
            |frames: &[Packet]| frames.iter().cloned().map(|f| Packet { filesystem: Vec::new(), ..f }).collect::<Vec<_>>();
        assert_eq!(without_file_systems(&a), without_file_systems(&b));
        recycling.recycle(a);
        b
    };
    both(&mut recycling, &mut fresh);
    // More rows: processes in the container, a second device.
    for pid in 1001..1004 {
        process(root, pid, &format!("worker-{pid}-with-a-long-name"), &docker_cg);
    }
    fs::write(docker.join("io.stat"), "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n8:16 rbytes=7 wbytes=8\n").unwrap();
    let frames = both(&mut recycling, &mut fresh);
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    // The three new ones (usage not known yet); the container's first process did not run.
    assert_eq!((d.process.len(), d.io.len(), d.disk.len(), d.pressure.len()), (3, 2, 2, 3));
    // Fewer rows: processes gone (one of those left ran, in the first row's memory), one
    // device, a pressure file gone, a zone gone.
    for pid in [1001, 1003, 700] {
        fs::remove_dir_all(root.join(format!("proc/{pid}"))).unwrap();
    }
    write(root, "proc/1002/stat", &proc_stat_line(1002, "worker-1002-with-a-long-name", 30, 5, 1, 0));
    fs::write(docker.join("io.stat"), "8:16 rbytes=9\n").unwrap();
    fs::remove_file(docker.join("memory.pressure")).unwrap();
    let frames = both(&mut recycling, &mut fresh);
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    assert_eq!((d.process.len(), d.io.len(), d.disk.len(), d.pressure.len()), (1, 1, 1, 2));
    assert_eq!((d.process[0].pid, d.process[0].usage), (Some(1002), Some(999)));
    assert!(!frames.iter().any(|f| f.name == "nginx.service"));
    both(&mut recycling, &mut fresh);
}

#[test]
fn bad_or_vanished_files_give_nulls_not_zeros_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let docker = root.join(format!("sys/fs/cgroup/system.slice/docker-{ID_A}.scope"));
    fs::write(docker.join("memory.current"), "garbage\n").unwrap();
    fs::write(docker.join("memory.events"), "").unwrap();
    fs::write(docker.join("cpu.pressure"), "nonsense\n").unwrap();
    fs::write(docker.join("cpu.max"), "\n").unwrap();
    fs::remove_file(docker.join("io.pressure")).unwrap();
    fs::write(root.join("proc/loadavg"), "").unwrap();
    fs::remove_file(root.join("proc/net/sockstat")).unwrap();
    fs::remove_file(root.join("proc/pressure/io")).unwrap();
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    let m = one(&d.memory);
    assert_eq!((m.usage, m.working_set, m.oom, m.oom_kill), (None, None, None, None));
    assert_eq!(m.anon, Some(300_000_000), "the rest of the zone is still read");
    assert_eq!(d.pressure.iter().map(|p| p.resource.as_str()).collect::<Vec<_>>(), ["memory"]);
    assert_eq!((one(&d.cpu_time).quota_us, one(&d.cpu_time).limit_millicores), (None, None));
    let g = zone(&frames, "global");
    assert_eq!((one(&g.system).load1_milli, one(&g.system).sockets_used), (None, None));
    assert_eq!(one(&g.system).procs_running, Some(4));
    assert_eq!(g.pressure.len(), 2);

    // The container's cgroup directory vanishes (it stopped) while its process is still listed.
    fs::remove_dir_all(&docker).unwrap();
    let frames = source.sample(1_764_000_001_000_000, 1_000_000).unwrap();
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    assert!(d.cpu_time.is_empty() && d.memory.is_empty() && d.pressure.is_empty() && d.io.is_empty());
    assert_eq!((d.mem[0].rss, d.processes), (None, Some(1)));
}

fn many_containers(root: &Path, n: u32) {
    for i in 0..n {
        let id = format!("{i:04x}{}", &ID_A[4..]);
        process(root, 1000 + i, "worker", &format!("0::/system.slice/docker-{id}.scope\n"));
    }
}

#[test]
fn zone_patterns_a_cap_and_no_state_left_by_zones_that_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    many_containers(root, 30);
    let filter = generator::linux::ZoneFilter {
        include: vec![regex::Regex::new("^docker/").unwrap(), regex::Regex::new("nginx").unwrap()],
        exclude: vec![regex::Regex::new("^docker/0001").unwrap()],
        max_zones: 10,
    };
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), filter, ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    let names: Vec<&str> = frames.iter().skip(1).map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 10);
    assert!(names.iter().all(|n| n.starts_with("docker/")), "{names:?}");
    assert!(!names.contains(&"docker/00012a1b4c5d"), "excluded");
    // 31 docker containers but the excluded one, and nginx, pass the patterns; 10 kept.
    let s = one(&zone(&frames, "global").system);
    assert_eq!((s.zones_seen, s.zones_dropped), (Some(31), Some(21)));
    assert_eq!(zone(&frames, "global").zonename.len(), 11);

    // Zones of the previous sample keep their place when new ones sort before them.
    let first: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let id = format!("{}{}", "0".repeat(16), &ID_A[16..]);
    process(root, 5000, "early", &format!("0::/docker/{id}\n"));
    let frames = source.sample(1_764_000_001_000_000, 1_000_000).unwrap();
    let again: Vec<String> = frames.iter().skip(1).map(|f| f.name.clone()).collect();
    assert_eq!(again, first, "docker/000000000000 waits for a free place");

    // Every container stops: nothing of them is kept.
    for i in 0..30 {
        fs::remove_dir_all(root.join(format!("proc/{}", 1000 + i))).unwrap();
    }
    fs::remove_dir_all(root.join("proc/500")).unwrap();
    fs::remove_dir_all(root.join("proc/5000")).unwrap();
    let before = source.state_entries();
    assert!(source.open_files().iter().any(|p| p.to_string_lossy().contains("docker-")), "their files were kept open");
    let frames = source.sample(1_764_000_002_000_000, 1_000_000).unwrap();
    assert_eq!(frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["global", "nginx.service"]);
    assert!(source.state_entries() < before);
    assert_eq!(
        source.state_entries(),
        4 + 4 + 4 + 1,
        "the 4 processes left (1, 599, 601, 700) as last read, their 4 cgroups' CPU-time signals and their 4 \
         memberships, the one zone reported"
    );
    // Nor is any of their files left open once KEEP_UNREAD_SAMPLES samples did not read them.
    for n in 1..generator::linux::kept_files::KEEP_UNREAD_SAMPLES {
        source.sample(1_764_000_002_000_000 + i64::try_from(n).unwrap() * 1_000_000, 1_000_000).unwrap();
    }
    let open = source.open_files();
    assert!(!open.is_empty());
    let gone = |p: &&std::path::PathBuf| {
        let p = p.to_string_lossy();
        p.contains("docker") || ["/proc/500/", "/proc/5000/", "/proc/10"].iter().any(|d| p.contains(d))
    };
    assert_eq!(open.iter().filter(gone).collect::<Vec<_>>(), Vec::<&std::path::PathBuf>::new());
}

#[test]
fn path_names_as_before_and_clashing_names_keep_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    // Two cgroups whose readable names would clash: both keep their paths.
    process(root, 950, "a", "0::/custom.slice/nginx.service\n");
    let mut readable = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let names: Vec<String> = readable.sample(1_764_000_000_000_000, 1_000_000).unwrap().into_iter().map(|f| f.name).collect();
    assert!(names.contains(&"system.slice/nginx.service".to_owned()) && names.contains(&"custom.slice/nginx.service".to_owned()));
    let opts = LinuxOptions { root: root.to_owned(), naming: generator::linux::ZoneNaming::Path, ..LinuxOptions::default() };
    let mut by_path = LinuxSource::new(opts).unwrap();
    let frames = by_path.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    assert!(frames.iter().any(|f| f.name == format!("system.slice/docker-{ID_A}.scope")));
    // The mapping table still says what the zone is.
    let d = zone(&frames, &format!("system.slice/docker-{ID_A}.scope"));
    assert_eq!(one(&d.zone_info).kind.as_deref(), Some("docker"));
}

#[test]
fn a_zone_whose_cpu_time_did_not_move_is_not_read_again_and_a_moved_process_follows_its_cgroup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let nginx_stat = |utime: u64| write(root, "proc/700/stat", &proc_stat_line(700, "nginx", utime, 0, 1, 0));
    let zone_cpu = |usec: u64| {
        write(
            root,
            "sys/fs/cgroup/system.slice/nginx.service/cpu.stat",
            &format!("usage_usec {usec}\nuser_usec 1\nsystem_usec 1\n"),
        )
    };
    // Its row's usage; `None`: no row (a process that did not run in the interval has none).
    let usage = |frames: &[Packet]| zone(frames, "nginx.service").process.iter().find(|p| p.pid == Some(700)).map(|p| p.usage);
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    nginx_stat(10);
    zone_cpu(1000);
    let mut t = 1_764_000_000_000_000;
    let mut sample = |source: &mut LinuxSource| {
        t += 1_000_000;
        source.sample(t, 1_000_000).unwrap()
    };
    sample(&mut source);
    // Read before its zone's CPU time at first sight, the process may have run in between:
    // the next sample reads it again whatever the zone's time says (10 ticks = 0.1 s).
    nginx_stat(20);
    assert_eq!(usage(&sample(&mut source)), Some(Some(499)));
    // The process's ticks change but its zone's CPU time does not: its stat is not read, its
    // usage stays 0 (in the kernel, a process cannot run without its cgroup's time moving):
    // no row.
    nginx_stat(70);
    assert_eq!(usage(&sample(&mut source)), None);
    // Its zone's CPU time moves: read again, and the whole 50 ticks (0.5 s at USER_HZ 100)
    // since it was last read are there.
    zone_cpu(600_000);
    assert_eq!(usage(&sample(&mut source)), Some(Some(2499)));
    zone_cpu(600_000);
    assert_eq!(usage(&sample(&mut source)), None);
    // A new process in a zone whose other processes wait on its CPU time: read before that
    // time, it cannot rely on it next sample either (it may have run in between).
    process(root, 701, "worker", "0::/system.slice/nginx.service\n");
    sample(&mut source);
    write(root, "proc/701/stat", &proc_stat_line(701, "worker", 20, 5, 1, 0));
    let frames = sample(&mut source);
    let worker = zone(&frames, "nginx.service").process.iter().find(|p| p.pid == Some(701)).and_then(|p| p.usage);
    assert_eq!(worker, Some(499), "read again: 10 ticks");
    fs::remove_dir_all(root.join("proc/701")).unwrap();

    // The process moves to another cgroup, as the kernel moves one: its pid written to the
    // group's `cgroup.procs` (which the kernel then lists it in), its `/proc/PID/cgroup`
    // saying so. Counted there at the next sample, in one zone only.
    let procs = "sys/fs/cgroup/system.slice/other.service/cgroup.procs";
    write(root, "sys/fs/cgroup/system.slice/other.service/cpu.stat", "usage_usec 5\nuser_usec 1\nsystem_usec 1\n");
    sample(&mut source);
    write(root, "proc/700/cgroup", "0::/system.slice/other.service\n");
    write(root, procs, "700\n");
    let frames = sample(&mut source);
    assert!(frames.iter().any(|f| f.name == "other.service"), "moved at the next sample");
    assert!(frames.iter().all(|f| f.name != "nginx.service"), "counted in one zone only");
    // Moved into a group made since the last sample (its writes may come before its watch):
    // there at the next sample too.
    write(root, "proc/700/cgroup", "0::/system.slice/made.service\n");
    write(root, "sys/fs/cgroup/system.slice/made.service/cgroup.procs", "700\n");
    assert!(sample(&mut source).iter().any(|f| f.name == "made.service"), "moved into a new group at the next sample");
    // A `/proc/PID/cgroup` that changes with no group written to is not what the kernel
    // does: not read again before the backstop (this is what the watch spares).
    write(root, "proc/700/cgroup", "0::/system.slice/other.service\n");
    assert!(sample(&mut source).iter().any(|f| f.name == "made.service"));

    // A pid reused by another process in another cgroup, while the old zone's CPU time does
    // not move: the new process's `/proc` entry is another (a new inode), so it is read as
    // new at the next sample.
    sample(&mut source);
    // The old entry held open while removed: a plain file system may hand a freed inode
    // number to the next directory made (the kernel's procfs numbers its entries from a
    // counter), and this one is not freed before the new entry is made.
    let old_entry = fs::File::open(root.join("proc/700")).unwrap();
    fs::remove_dir_all(root.join("proc/700")).unwrap();
    write(root, "proc/700/stat", &proc_stat_line(700, "nginx", 70, 0, 1, 0).replace(" 100 1000000 ", " 999 1000000 "));
    write(root, "proc/700/cgroup", "0::/system.slice/third.service\n");
    let frames = sample(&mut source);
    assert!(frames.iter().any(|f| f.name == "third.service"), "a reused pid is read as a new process");
    assert_eq!(zone(&frames, "third.service").process[0].usage, None, "no baseline from the old process");
    drop(old_entry);

    // A pid of the root cgroup (read every sample) reused by a process in a zone: in its
    // zone at once.
    process(root, 880, "old", "0::/\n");
    sample(&mut source);
    write(root, "proc/880/stat", &proc_stat_line(880, "new", 0, 0, 1, 0).replace(" 100 1000000 ", " 5000 1000000 "));
    write(root, "proc/880/cgroup", "0::/system.slice/fourth.service\n");
    let frames = sample(&mut source);
    let fourth = zone(&frames, "fourth.service");
    assert_eq!(fourth.process[0].usage, None, "the old process's ticks are no baseline for the new one's usage");
}

#[test]
fn odd_names_a_cgroup_called_global_and_v1_groups_that_are_not_the_zones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    host_files(root);
    write(
        root,
        "proc/self/mountinfo",
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
         32 22 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         35 22 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
         41 22 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    );
    // A process name the kernel cut inside a character (not UTF-8): still counted.
    let mut stat = proc_stat_line(910, "xx", 5, 5, 1, 0).into_bytes();
    let at = stat.iter().position(|b| *b == b'x').unwrap();
    stat[at] = 0xe6;
    stat[at + 1] = 0x97;
    fs::create_dir_all(root.join("proc/910")).unwrap();
    fs::write(root.join("proc/910/stat"), stat).unwrap();
    write(
        root,
        "proc/910/cgroup",
        "3:cpu,cpuacct:/user.slice\n5:memory:/user.slice\n0::/user.slice/user-1000.slice/session-3.scope\n",
    );
    // Its v1 groups are an ancestor's (systemd leaves them there), not the session's.
    write(root, "sys/fs/cgroup/cpu,cpuacct/user.slice/cpuacct.usage_percpu", "111 222\n");
    write(root, "sys/fs/cgroup/cpu,cpuacct/user.slice/cpuacct.stat", "user 1\nsystem 1\n");
    write(root, "sys/fs/cgroup/memory/user.slice/memory.stat", "total_rss 999\n");
    write(
        root,
        "sys/fs/cgroup/unified/user.slice/user-1000.slice/session-3.scope/cpu.stat",
        "usage_usec 70\nuser_usec 50\nsystem_usec 20\n",
    );
    // A cgroup named `global`.
    process(root, 920, "impostor", "0::/global\n");
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    assert_eq!(
        frames.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["global", "/global", "init.scope", "session-3.scope"]
    );
    assert_eq!(zone(&frames, "global").processes, Some(3), "every process, the oddly named one included");
    let session = zone(&frames, "session-3.scope");
    assert_eq!(session.process[0].execname.as_deref(), Some("\u{fffd}"), "a cut character becomes U+FFFD");
    assert!(session.memory.is_empty() && session.mem[0].rss.is_none(), "user.slice's memory is not the session's");
    assert_eq!(session.cpu.iter().map(|c| c.core).collect::<Vec<_>>(), [None], "v2 cpu.stat, not user.slice's per-core v1 split");
    assert_eq!(one(&session.cpu_time).user_us, Some(50));
}

#[test]
fn the_generators_own_network_namespace_and_the_hosts_are_no_zones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    // The generator runs in a namespace of its own (a pod without host networking) with the
    // host's pids: `global` reports its namespace; pid 1's (the host's) is no zone's either.
    fs::create_dir_all(root.join("proc/self/ns")).unwrap();
    std::os::unix::fs::symlink("net:[4026539999]", root.join("proc/self/ns/net")).unwrap();
    write(root, "proc/1/net/dev", &net_dev(0, 0));
    write(root, "proc/700/net/dev", &net_dev(0, 0));
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    assert!(zone(&frames, "global").link.iter().all(|l| l.netns == Some(4_026_539_999)));
    for name in ["init.scope", "nginx.service"] {
        assert!(zone(&frames, name).link.is_empty(), "{name} is in pid 1's namespace");
    }
    assert_eq!(zone(&frames, "docker/3f2a1b4c5d6e").link.len(), 2, "a namespace of its own");
}

#[test]
fn a_changed_limit_shows_within_the_refresh_and_usage_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let docker = root.join(format!("sys/fs/cgroup/system.slice/docker-{ID_A}.scope"));
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let mut t = 1_764_000_000_000_000;
    let mut memory_of = |source: &mut LinuxSource| {
        t += 1_000_000;
        let frames = source.sample(t, 1_000_000).unwrap();
        let d = zone(&frames, "docker/3f2a1b4c5d6e");
        (one(&d.memory).limit, one(&d.memory).usage, one(&d.cpu_time).limit_millicores, one(&d.memory).high)
    };
    assert_eq!(memory_of(&mut source), (Some(1_073_741_824), Some(500_000_000), Some(500), None));
    // Limits read only when modified (memory.max, memory.high) and read each time (cpu.max).
    fs::write(docker.join("memory.max"), "2147483648\n").unwrap();
    fs::write(docker.join("memory.high"), "1610612736\n").unwrap();
    fs::write(docker.join("cpu.max"), "100000 100000\n").unwrap();
    fs::write(docker.join("memory.current"), "600000000\n").unwrap();
    let (limit, usage, cpu, high) = memory_of(&mut source);
    assert_eq!(usage, Some(600_000_000), "usage is read every sample");
    let changed = (Some(2_147_483_648), Some(1000), Some(1_610_612_736));
    let mut seen = (limit, cpu, high);
    for _ in 1..generator::linux::LIMITS_REFRESH_SAMPLES {
        if seen == changed {
            break;
        }
        let (limit, _, cpu, high) = memory_of(&mut source);
        seen = (limit, cpu, high);
    }
    assert_eq!(seen, changed, "limits read again within LIMITS_REFRESH_SAMPLES samples");
    // Set back: shown again within the refresh, and stays.
    fs::write(docker.join("memory.high"), "max\n").unwrap();
    let back = (0..generator::linux::LIMITS_REFRESH_SAMPLES).any(|_| memory_of(&mut source).3.is_none());
    assert!(back);
    for _ in 0..=generator::linux::LIMITS_REFRESH_SAMPLES {
        assert_eq!(memory_of(&mut source), (Some(2_147_483_648), Some(600_000_000), Some(1000), None));
    }
    // The group removed and made again at its path with another limit (its files new ones,
    // never written to after they were made): the new limit within the refresh.
    let files: Vec<(std::ffi::OsString, Vec<u8>)> =
        fs::read_dir(&docker).unwrap().map(|e| e.unwrap()).map(|e| (e.file_name(), fs::read(e.path()).unwrap())).collect();
    fs::remove_dir_all(&docker).unwrap();
    fs::create_dir(&docker).unwrap();
    for (name, bytes) in files {
        let bytes = if name == "memory.max" { b"3221225472\n".to_vec() } else { bytes };
        fs::write(docker.join(name), bytes).unwrap();
    }
    let remade = (0..=generator::linux::LIMITS_REFRESH_SAMPLES).any(|_| memory_of(&mut source).0 == Some(3_221_225_472));
    assert!(remade, "a group made again is read afresh");
}

#[test]
fn a_v2_zone_without_the_memory_or_io_controller_is_not_asked_for_their_files() {
    // A hybrid host's v2 groups (and a v2 group whose parent enables only some
    // controllers): `cgroup.controllers` says which files the zone has.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let docker = root.join(format!("sys/fs/cgroup/system.slice/docker-{ID_A}.scope"));
    fs::write(docker.join("cgroup.controllers"), "cpu pids\n").unwrap();
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    assert!(d.memory.is_empty() && d.io.is_empty(), "no memory or io controller: no rows (the files are there, unasked)");
    assert!(!d.cpu_time.is_empty() && d.pressure.len() == 3, "cpu.stat and the pressure files are the core's");
    let open = source.open_files();
    assert!(open.iter().any(|p| p.starts_with(&docker) && p.ends_with("cpu.stat")), "{open:?}");
    assert!(!open.iter().any(|p| p.starts_with(&docker) && (p.ends_with("memory.stat") || p.ends_with("io.stat"))), "{open:?}");

    // Enabled later: read within LIMITS_REFRESH_SAMPLES samples.
    fs::write(docker.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
    let found = (0..generator::linux::LIMITS_REFRESH_SAMPLES).any(|n| {
        let frames = source.sample(1_764_000_001_000_000 + i64::try_from(n).unwrap() * 1_000_000, 1_000_000).unwrap();
        let d = zone(&frames, "docker/3f2a1b4c5d6e");
        !d.memory.is_empty() && !d.io.is_empty()
    });
    assert!(found);
}

#[test]
fn without_swap_on_the_host_a_zones_swap_is_zero_and_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    let docker = root.join(format!("sys/fs/cgroup/system.slice/docker-{ID_A}.scope"));
    // A file saying otherwise shows whether it was read.
    fs::write(docker.join("memory.swap.current"), "4096\n").unwrap();
    let meminfo = fs::read_to_string(root.join("proc/meminfo")).unwrap();
    let swapless = meminfo
        .replace("SwapTotal:      1000000 kB", "SwapTotal:      0 kB")
        .replace("SwapFree:        400000 kB", "SwapFree:      0 kB");
    assert_ne!(swapless, meminfo);
    fs::write(root.join("proc/meminfo"), &swapless).unwrap();
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let frames = source.sample(1_764_000_000_000_000, 1_000_000).unwrap();
    let d = zone(&frames, "docker/3f2a1b4c5d6e");
    assert_eq!((one(&d.memory).swap, d.mem[0].swap), (Some(0), Some(0)), "no swap on the host: none swapped out");
    assert!(!source.open_files().iter().any(|p| p.ends_with("memory.swap.current")), "not read");

    // Swap added: the zone's file is read from the next sample on.
    fs::write(root.join("proc/meminfo"), &meminfo).unwrap();
    let frames = source.sample(1_764_000_001_000_000, 1_000_000).unwrap();
    assert_eq!(one(&zone(&frames, "docker/3f2a1b4c5d6e").memory).swap, Some(4096));
}

#[test]
fn this_machine_a_process_made_or_reaped_between_samples_shows_in_the_next() {
    if !Path::new("/proc/self/mountinfo").exists() {
        return; // not Linux
    }
    // The listing of `/proc` may be handed out again while the kernel's `loadavg` says no
    // process was made or reaped; each of these must move it.
    let mut source = LinuxSource::new(LinuxOptions::default()).unwrap();
    for _ in 0..3 {
        source.sample(generator::now_us(), 1_000_000).unwrap();
    }
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    source.sample(generator::now_us(), 1_000_000).unwrap();
    assert!(source.processes_known().contains(&pid), "a process made since the last sample is listed");
    source.sample(generator::now_us(), 1_000_000).unwrap();
    assert!(source.processes_known().contains(&pid));
    child.kill().unwrap();
    child.wait().unwrap();
    source.sample(generator::now_us(), 1_000_000).unwrap();
    assert!(!source.processes_known().contains(&pid), "a process reaped since the last sample is gone");
    // Whether any listing was spared depends on the host's other processes meanwhile;
    // never more than the three samples with nothing made or reaped by this test before them.
    assert!(source.listings_spared() <= 3, "{}", source.listings_spared());
}

#[test]
#[allow(clippy::print_stderr, reason = "says why the live part did not run where it cannot")]
fn this_machine_a_process_moved_to_another_cgroup_shows_there_at_the_next_sample() {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return; // not Linux
    };
    let mounts = generator::linux::cgroup::CgroupMounts::parse(&mountinfo, Path::new("/"));
    let Some(v2) = mounts.v2 else {
        eprintln!("skipped: no cgroup v2 hierarchy mounted here");
        return;
    };
    // A group of the kernel's own, made for this test (needs the right to make one: root).
    let name = format!("generator-test-{}.scope", std::process::id());
    let group = v2.join(&name);
    if let Err(e) = fs::create_dir(&group) {
        eprintln!("skipped: cannot make a cgroup at {}: {e}", group.display());
        return;
    }
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    // Whether the test's group is a zone of one process (the child: no other is in it).
    // A process row would not tell: one that did not run in the interval has none.
    let zone_of = |frames: &[Packet]| frames.iter().find(|f| f.name == name).map(|f| (f.name.clone(), f.processes));
    let opts = LinuxOptions { top_processes: 10_000, ..LinuxOptions::default() };
    let mut source = LinuxSource::new(opts).unwrap();
    let mut frames = Vec::new();
    for _ in 0..2 {
        frames = source.sample(generator::now_us(), 1_000_000).unwrap();
    }
    let before = zone_of(&frames);
    // Moved as runtimes move a process: its pid written to the group's `cgroup.procs`.
    let moved = fs::write(group.join("cgroup.procs"), pid.to_string());
    let after = moved.as_ref().ok().map(|()| zone_of(&source.sample(generator::now_us(), 1_000_000).unwrap()));
    child.kill().unwrap();
    child.wait().unwrap();
    // The group's watches (its directory, `cgroup.procs`, `cgroup.threads`) end with it:
    // the kernel would keep a removed cgroup's watched files for good.
    let watched = source.migration_watches_of(&group);
    fs::remove_dir(&group).unwrap();
    source.sample(generator::now_us(), 1_000_000).unwrap();
    assert_eq!(watched, Some(3));
    assert_eq!(source.migration_watches_of(&group), Some(0), "watches of a removed group ended");
    if let Err(e) = moved {
        eprintln!("skipped: cannot move a process into {}: {e}", group.display());
        return;
    }
    assert_eq!(before, None, "the group is no zone while no process is in it");
    assert_eq!(after.flatten(), Some((name.clone(), Some(1))), "in its new group's zone at the next sample");
}

/// Not a test: the body of a child process of two threads for the tests of the process
/// CPU clock below (run as this test binary with `--exact --ignored` and
/// `TWO_THREAD_CHILD` set; a no-op otherwise). Its main thread waits; its second thread, at
/// each line on its standard input, runs a little and writes `ran`.
#[test]
#[ignore = "the body of a child process of the tests below"]
fn two_thread_child() {
    use std::io::{BufRead, Write};
    if std::env::var_os("TWO_THREAD_CHILD").is_none() {
        return;
    }
    let worker = std::thread::spawn(|| {
        let mut sum = 0u64;
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            for i in 0..1_000_000u64 {
                sum = std::hint::black_box(sum.wrapping_add(i));
            }
            let mut out = std::io::stdout().lock();
            if out.write_all(b"ran\n").and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    worker.join().unwrap();
}

/// A running [`two_thread_child`], killed when dropped.
struct TwoThreadChild {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl TwoThreadChild {
    fn spawn() -> Self {
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "two_thread_child", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("TWO_THREAD_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut this = Self { child, stdout };
        // Once it answers, both threads are there and waiting.
        this.run_second_thread();
        this
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Has its second thread run, and waits until it did.
    fn run_second_thread(&mut self) {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"run\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        for _ in 0..20 {
            line.clear();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "the child ended");
            // The test harness writes its own lines, one of which the answer may end.
            if line.trim_end().ends_with("ran") {
                wait_until_idle(self.pid());
                return;
            }
        }
        panic!("no answer from the child: {line:?}");
    }
}

impl Drop for TwoThreadChild {
    fn drop(&mut self) {
        let ended = self.child.kill().and_then(|()| self.child.wait());
        if let Err(e) = ended
            && !std::thread::panicking()
        {
            panic!("ending the child {}: {e}", self.child.id());
        }
    }
}

/// Waits until process `pid` (of this host) stopped running: its CPU clock stood for 20 ms.
fn wait_until_idle(pid: u32) {
    let clocks = ProcessClocks::for_proc_dir(Path::new("/proc")).unwrap();
    let mut last = clocks.cpu_ns(pid);
    for _ in 0..250 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = clocks.cpu_ns(pid);
        if now == last {
            return;
        }
        last = now;
    }
    panic!("process {pid} ran for 5 s");
}

/// Makes a composed tree's `proc/self` what the kernel's is, a link to the directory named
/// by this process's pid, so that the source reads the processes' CPU clocks: its pids are
/// then taken for this pid namespace's (the tests' processes are real children).
fn self_is_this_process(root: &Path) {
    let own = std::process::id().to_string();
    fs::rename(root.join("proc/self"), root.join("proc").join(&own)).unwrap();
    std::os::unix::fs::symlink(&own, root.join("proc/self")).unwrap();
}

#[test]
fn in_a_zone_whose_cpu_time_moved_a_process_is_read_again_only_when_its_cpu_clock_moved() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    v2_host(root);
    self_is_this_process(root);
    // A process of two threads whose main thread waits (the clock is every thread's, where
    // `/proc/PID/schedstat` is the main thread's), and one of one thread (`sleep`).
    let mut two = TwoThreadChild::spawn();
    let mut one = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    wait_until_idle(one.id());
    let (a, b) = (two.pid(), one.id());
    let stat = |pid: u32, utime: u64, threads: u32| {
        write(root, &format!("proc/{pid}/stat"), &proc_stat_line(pid, "app", utime, 5, threads, 0));
    };
    for (pid, threads) in [(a, 2), (b, 1)] {
        process(root, pid, "app", "0::/system.slice/app.service\n");
        stat(pid, 10, threads);
    }
    // The zone's CPU time moves when this says so (some process of it ran).
    let mut usec = 0;
    let mut zone_ran = || {
        usec += 100_000;
        write(root, "sys/fs/cgroup/system.slice/app.service/cpu.stat", &format!("usage_usec {usec}\n"));
    };
    // Its row's usage; `None`: no row.
    let usage =
        |frames: &[Packet], pid: u32| zone(frames, "app.service").process.iter().find(|p| p.pid == Some(pid)).map(|p| p.usage);
    let mut source = LinuxSource::new(LinuxOptions { root: root.to_owned(), ..LinuxOptions::default() }).unwrap();
    let mut t = 1_764_000_000_000_000;
    let mut sample = |source: &mut LinuxSource| {
        t += 1_000_000;
        source.sample(t, 1_000_000).unwrap()
    };
    zone_ran();
    sample(&mut source);
    zone_ran();
    sample(&mut source);
    // 50 ticks more in both `stat`s, neither ran: neither is read (no row), both counted.
    stat(a, 60, 2);
    stat(b, 60, 1);
    zone_ran();
    let frames = sample(&mut source);
    assert_eq!(usage(&frames, a), None, "not read: did not run");
    assert_eq!(usage(&frames, b), None, "not read: did not run");
    assert_eq!(zone(&frames, "app.service").processes, Some(2));
    // Its second thread runs (its main thread does not): read, and the 50 ticks since its
    // `stat` was last read are there; the other still not.
    two.run_second_thread();
    zone_ran();
    let frames = sample(&mut source);
    assert_eq!(usage(&frames, a), Some(Some(2499)));
    assert_eq!(usage(&frames, b), None);
    // Its zone's time still: nothing read, whatever its clock says.
    two.run_second_thread();
    stat(a, 85, 2);
    assert_eq!(usage(&sample(&mut source), a), None);
    // Its zone's time moves: its clock moved since its `stat` was read: read.
    zone_ran();
    assert_eq!(usage(&sample(&mut source), a), Some(Some(1249)));
    // Gone between two samples (killed and reaped; its files left in the tree): its clock
    // does not read, so its `stat` is read (and here still there).
    one.kill().unwrap();
    one.wait().unwrap();
    stat(b, 85, 1);
    zone_ran();
    // 75 ticks since its `stat` was last read (10, before the 60 never read).
    assert_eq!(usage(&sample(&mut source), b), Some(Some(3749)));
}

#[test]
fn a_root_cgroup_process_is_read_again_only_when_its_cpu_clock_moved_and_every_sample_without_clocks() {
    let usage = |frames: &[Packet], pid: u32| frames[0].process.iter().find(|p| p.pid == Some(pid)).map(|p| p.usage);
    let mut two = TwoThreadChild::spawn();
    let pid = two.pid();
    for clocks in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        v2_host(root);
        if clocks {
            self_is_this_process(root);
        }
        let stat = |utime: u64| write(root, &format!("proc/{pid}/stat"), &proc_stat_line(pid, "multi", utime, 5, 2, 0));
        process(root, pid, "multi", "0::/\n");
        stat(10);
        let opts = LinuxOptions { root: root.to_owned(), top_processes: 100, ..LinuxOptions::default() };
        let mut source = LinuxSource::new(opts).unwrap();
        let mut t = 1_764_000_000_000_000;
        let mut sample = |source: &mut LinuxSource| {
            t += 1_000_000;
            source.sample(t, 1_000_000).unwrap()
        };
        sample(&mut source);
        sample(&mut source);
        // `stat` moves (50 ticks) while the process does not run: with the clocks, not read;
        // without (a `/proc` whose `self` is not this process), read every sample.
        stat(60);
        let frames = sample(&mut source);
        assert_eq!(usage(&frames, pid), if clocks { None } else { Some(Some(2499)) }, "clocks: {clocks}");
        // It runs: read, and the ticks since its `stat` was last read are there.
        two.run_second_thread();
        stat(85);
        let frames = sample(&mut source);
        assert_eq!(usage(&frames, pid), Some(Some(if clocks { 3749 } else { 1249 })), "clocks: {clocks}");
    }
}

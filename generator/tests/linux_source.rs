//! The Linux source on recorded `/proc` and `/sys` trees (a hybrid v1 host and a pure v2
//! host, written here in the shapes the kernel uses), and once on this machine.
#![allow(unused_crate_dependencies)]

use std::fs;
use std::path::Path;

use frame_proto::Packet;
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
    // Busiest processes: nginx used 30 ticks (0.3 s) in the interval.
    assert_eq!(g.process.len(), 2);
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
    assert_eq!(w.process[0].execname.as_deref(), Some("web app"));
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
}

//! The Linux source: the host as zone `global` from `/proc`, and one zone per cgroup that
//! holds processes, from `/sys/fs/cgroup` (v2, v1 or hybrid).
//!
//! Every field's origin and unit is listed in `docs/statistics.md`. Busy time is converted
//! to 4999 Hz ticks so that `usage / ticks` means the same as on illumos. Per-interval
//! fields (CPU usage, faults) are differences between two samples, so the first sample of a
//! run leaves them absent. Processes vanish mid-scan: any per-pid read that fails skips that
//! pid, never the sample. All paths are below `root`, so tests run on a recorded tree.

pub mod cgroup;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use frame_proto::Packet;
use frame_proto::packet::{Cpu, Cpuqueue, Disk, Mem, Net, Process};
use procfs::net::{DeviceStatus, InterfaceDeviceStatus};
use procfs::{DiskStats, ExplicitSystemInfo, FromRead, FromReadSI, KernelStats, Meminfo, VmStat};

use crate::GeneratorError;
use crate::source::{StatSource, ns_to_ticks};
use cgroup::{CgroupMounts, DeviceIo, Membership};

/// Options of the Linux source.
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    /// Filesystem root holding `proc/` and `sys/` (`/` on a live host).
    pub root: PathBuf,
    /// Busiest processes reported per zone.
    pub top_processes: usize,
}

impl Default for LinuxOptions {
    fn default() -> Self {
        Self { root: PathBuf::from("/"), top_processes: 20 }
    }
}

#[derive(Debug, Clone)]
struct ProcSample {
    pid: u32,
    comm: String,
    cpu_ticks: u64,
    processor: Option<u32>,
    threads: u32,
    zone: Option<String>,
    membership: Membership,
}

/// Per-zone state kept between samples.
#[derive(Debug, Default, Clone)]
struct ZonePrev {
    percpu_ns: Vec<u64>,
    usage_us: Option<u64>,
    majflt: Option<u64>,
}

/// The Linux source.
#[derive(Debug)]
pub struct LinuxSource {
    opts: LinuxOptions,
    proc_dir: PathBuf,
    mounts: CgroupMounts,
    system: ExplicitSystemInfo,
    prev_core_busy: Vec<u64>,
    prev_proc_ticks: HashMap<u32, u64>,
    prev_vm: Option<(u64, u64, u64)>,
    prev_zone: HashMap<String, ZonePrev>,
    host_netns: Option<PathBuf>,
}

impl LinuxSource {
    /// Opens the source: finds the cgroup mounts below `opts.root`.
    pub fn new(opts: LinuxOptions) -> Result<Self, GeneratorError> {
        let proc_dir = opts.root.join("proc");
        let mountinfo_path = proc_dir.join("self/mountinfo");
        let mountinfo = std::fs::read_to_string(&mountinfo_path)
            .map_err(|e| GeneratorError::Read { path: mountinfo_path.display().to_string(), message: e.to_string() })?;
        let mounts = CgroupMounts::parse(&mountinfo, &opts.root);
        let live = opts.root == Path::new("/");
        let system = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: if live { procfs::ticks_per_second() } else { 100 },
            page_size: if live { procfs::page_size() } else { 4096 },
            is_little_endian: cfg!(target_endian = "little"),
        };
        let host_netns = std::fs::read_link(proc_dir.join("1/ns/net")).ok();
        Ok(Self {
            opts,
            proc_dir,
            mounts,
            system,
            prev_core_busy: Vec::new(),
            prev_proc_ticks: HashMap::new(),
            prev_vm: None,
            prev_zone: HashMap::new(),
            host_netns,
        })
    }

    fn read_err(path: &Path, e: impl std::fmt::Display) -> GeneratorError {
        GeneratorError::Read { path: path.display().to_string(), message: e.to_string() }
    }

    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(1_000_000_000) / self.system.ticks_per_second.max(1)
    }

    fn scan_processes(&self) -> Vec<ProcSample> {
        let Ok(iter) = procfs::process::all_processes_with_root(&self.proc_dir) else { return Vec::new() };
        let mut out = Vec::new();
        for p in iter.flatten() {
            // Any of these may fail because the process just exited: skip it.
            let Ok(stat) = p.stat() else { continue };
            let Ok(cg) = std::fs::read_to_string(self.proc_dir.join(p.pid().to_string()).join("cgroup")) else { continue };
            let membership = Membership::parse(&cg);
            out.push(ProcSample {
                pid: p.pid().max(0) as u32,
                comm: stat.comm.clone(),
                cpu_ticks: stat.utime + stat.stime,
                processor: stat.processor.and_then(|c| u32::try_from(c).ok()),
                threads: u32::try_from(stat.num_threads).unwrap_or(0),
                zone: membership.zone_path().map(|p| p.trim_start_matches('/').to_owned()),
                membership,
            });
        }
        out
    }

    /// The busiest processes of `procs`, with CPU over the interval in 4999 Hz ticks.
    fn busiest(&self, procs: &[&ProcSample]) -> Vec<Process> {
        let mut with_delta: Vec<(u64, &ProcSample)> = procs
            .iter()
            .map(|p| (self.prev_proc_ticks.get(&p.pid).map_or(0, |prev| p.cpu_ticks.saturating_sub(*prev)), *p))
            .collect();
        with_delta.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.pid.cmp(&b.1.pid)));
        with_delta
            .into_iter()
            .take(self.opts.top_processes)
            .map(|(delta, p)| Process {
                pid: Some(p.pid),
                execname: Some(p.comm.clone()),
                usage: self.prev_proc_ticks.contains_key(&p.pid).then(|| ns_to_ticks(self.ticks_to_ns(delta))),
                cpu: p.processor,
            })
            .collect()
    }

    fn global_frame(&mut self, time_us: i64, procs: &[ProcSample], zones: &[String]) -> Result<Packet, GeneratorError> {
        let stat_path = self.proc_dir.join("stat");
        let stat = KernelStats::from_file(&stat_path, &self.system).map_err(|e| Self::read_err(&stat_path, e))?;
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

        let page = self.system.page_size.max(1);
        let meminfo_path = self.proc_dir.join("meminfo");
        let mi = Meminfo::from_file(&meminfo_path).map_err(|e| Self::read_err(&meminfo_path, e))?;
        let vm = VmStat::from_file(self.proc_dir.join("vmstat")).map(|v| v.0).unwrap_or_default();
        let vm_get = |k: &str| vm.get(k).map(|v| (*v).max(0) as u64);
        let nalloc: Option<u64> = {
            let s: u64 = vm.iter().filter(|(k, _)| k.starts_with("pgalloc_")).map(|(_, v)| (*v).max(0) as u64).sum();
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

        let net = read_net_dev(&self.proc_dir.join("net/dev"));
        let disk = self.host_disks();
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
            process: self.busiest(&all),
            zonename: std::iter::once("global".to_owned()).chain(zones.iter().cloned()).collect(),
            cpuqueue: vec![Cpuqueue { core: None, length: stat.procs_running, amount: Some(1) }],
            ..Default::default()
        })
    }

    /// Whole disks from `/proc/diskstats` (those listed in `/sys/block`, minus loop and ram
    /// devices): cumulative bytes, operations, busy time (`rtime`) and the time-weighted
    /// queue length (`rlentime`), as illumos' `kstat_io` reports them.
    fn host_disks(&self) -> Vec<Disk> {
        let Ok(stats) = DiskStats::from_file(self.proc_dir.join("diskstats")) else { return Vec::new() };
        let sys_block = self.opts.root.join("sys/block");
        stats
            .0
            .into_iter()
            .filter(|d| !d.name.starts_with("loop") && !d.name.starts_with("ram") && sys_block.join(&d.name).exists())
            .map(|d| Disk {
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
            })
            .collect()
    }

    fn device_names(&self) -> HashMap<String, String> {
        DiskStats::from_file(self.proc_dir.join("diskstats"))
            .map(|s| s.0.into_iter().map(|d| (format!("{}:{}", d.major, d.minor), d.name)).collect())
            .unwrap_or_default()
    }

    fn zone_frame(&mut self, zone: &str, time_us: i64, members: &[&ProcSample], devices: &HashMap<String, String>) -> Packet {
        let Some(first) = members.first() else { return Packet::default() };
        let m = &first.membership;
        let prev = self.prev_zone.get(zone).cloned().unwrap_or_default();
        let mut next = ZonePrev::default();

        // CPU: v1 cpuacct gives a per-core split (ns); v2 only a total (µs), reported as one
        // row with no core.
        let mut cpu = Vec::new();
        let percpu =
            m.v1.get("cpuacct")
                .and_then(|p| self.mounts.v1_dir("cpuacct", p))
                .and_then(|d| std::fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
                .map(|t| t.split_whitespace().filter_map(|v| v.parse::<u64>().ok()).collect::<Vec<_>>())
                .filter(|v| !v.is_empty() && m.v1.get("cpuacct").is_some_and(|p| p != "/"));
        let v2_dir = m.v2.as_deref().filter(|p| *p != "/").and_then(|p| self.mounts.v2_dir(p));
        if let Some(percpu) = percpu {
            for (core, ns) in percpu.iter().enumerate() {
                let usage = prev.percpu_ns.get(core).map(|p| ns_to_ticks(ns.saturating_sub(*p)));
                cpu.push(Cpu { core: Some(core as u32), usage });
            }
            next.percpu_ns = percpu;
        } else if let Some(dir) = &v2_dir {
            let usage_us = cgroup::read_flat(&dir.join("cpu.stat")).get("usage_usec").copied();
            if let Some(now) = usage_us {
                cpu.push(Cpu { core: None, usage: prev.usage_us.map(|p| ns_to_ticks(now.saturating_sub(p) * 1000)) });
            }
            next.usage_us = usage_us;
        }

        // Memory: v2 files when the zone is a v2 group with memory accounting, else v1.
        let mut mem = Mem::default();
        let mut majflt = None;
        if let Some(dir) = v2_dir.as_ref().filter(|d| d.join("memory.stat").exists()) {
            let st = cgroup::read_flat(&dir.join("memory.stat"));
            mem.rss = st.get("anon").copied();
            mem.physcap = cgroup::read_u64(&dir.join("memory.max"));
            mem.swap = cgroup::read_u64(&dir.join("memory.swap.current"));
            mem.swapcap = cgroup::read_u64(&dir.join("memory.swap.max"));
            majflt = st.get("pgmajfault").copied();
        } else if let Some(dir) = m.v1.get("memory").and_then(|p| self.mounts.v1_dir("memory", p)) {
            let st = cgroup::read_flat(&dir.join("memory.stat"));
            mem.rss = st.get("total_rss").or_else(|| st.get("rss")).copied();
            mem.physcap = cgroup::read_u64(&dir.join("memory.limit_in_bytes"));
            let usage = cgroup::read_u64(&dir.join("memory.usage_in_bytes"));
            // memsw is memory + swap; swap alone is the difference.
            mem.swap = cgroup::read_u64(&dir.join("memory.memsw.usage_in_bytes")).zip(usage).map(|(a, b)| a.saturating_sub(b));
            mem.swapcap =
                cgroup::read_u64(&dir.join("memory.memsw.limit_in_bytes")).zip(mem.physcap).map(|(a, b)| a.saturating_sub(b));
            majflt = st.get("total_pgmajfault").or_else(|| st.get("pgmajfault")).copied();
        }
        mem.maj_fault = majflt.zip(prev.majflt).map(|(a, b)| u32::try_from(a.saturating_sub(b)).unwrap_or(u32::MAX));
        next.majflt = majflt;

        // Disk I/O per device.
        let io: HashMap<String, DeviceIo> = if let Some(dir) = v2_dir.as_ref().filter(|d| d.join("io.stat").exists()) {
            std::fs::read_to_string(dir.join("io.stat")).map(|t| cgroup::parse_io_stat(&t)).unwrap_or_default()
        } else if let Some(dir) = m.v1.get("blkio").and_then(|p| self.mounts.v1_dir("blkio", p)) {
            let b = std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes")).unwrap_or_default();
            let o = std::fs::read_to_string(dir.join("blkio.throttle.io_serviced")).unwrap_or_default();
            cgroup::parse_blkio(&b, &o)
        } else {
            HashMap::new()
        };
        let mut io: Vec<(String, DeviceIo)> =
            io.into_iter().map(|(dev, v)| (devices.get(&dev).cloned().unwrap_or(dev), v)).collect();
        io.sort_by(|a, b| a.0.cmp(&b.0));
        let disk = io
            .into_iter()
            .map(|(instance, v)| Disk {
                instance,
                nread: v.rbytes,
                nwritten: v.wbytes,
                reads: v.rios.map(|x| x as u32),
                writes: v.wios.map(|x| x as u32),
                ..Default::default()
            })
            .collect();

        // Network: only a zone with its own network namespace has counters of its own.
        let net = members
            .iter()
            .find_map(|p| {
                let ns = std::fs::read_link(self.proc_dir.join(p.pid.to_string()).join("ns/net")).ok()?;
                (Some(&ns) != self.host_netns.as_ref())
                    .then(|| read_net_dev(&self.proc_dir.join(p.pid.to_string()).join("net/dev")))
            })
            .unwrap_or_default();

        self.prev_zone.insert(zone.to_owned(), next);
        Packet {
            name: zone.to_owned(),
            time: (time_us.max(0) / 1_000_000) as u64,
            threads: Some(members.iter().map(|p| p.threads).sum()),
            processes: Some(members.len() as u32),
            cpu,
            mem: vec![mem],
            net,
            disk,
            process: self.busiest(members),
            ..Default::default()
        }
    }
}

/// Interfaces of a network namespace from its `net/dev`, sorted by name.
fn read_net_dev(path: &Path) -> Vec<Net> {
    let Ok(dev) = InterfaceDeviceStatus::from_file(path) else { return Vec::new() };
    let sorted: BTreeMap<String, DeviceStatus> = dev.0.into_iter().collect();
    sorted
        .into_iter()
        .map(|(name, d)| Net {
            instance: Some(name),
            obytes64: Some(d.sent_bytes),
            rbytes64: Some(d.recv_bytes),
            opackets: Some(d.sent_packets),
            ipackets: Some(d.recv_packets),
            oerrors: Some(d.sent_errs as u32),
            ierrors: Some(d.recv_errs as u32),
        })
        .collect()
}

impl StatSource for LinuxSource {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn sample(&mut self, time_us: i64, interval_us: i64) -> Result<Vec<Packet>, GeneratorError> {
        let ticks = ns_to_ticks((interval_us.max(0) as u64).saturating_mul(1000));
        let procs = self.scan_processes();
        let mut by_zone: BTreeMap<&str, Vec<&ProcSample>> = BTreeMap::new();
        for p in &procs {
            if let Some(z) = &p.zone {
                by_zone.entry(z.as_str()).or_default().push(p);
            }
        }
        let zone_names: Vec<String> = by_zone.keys().map(|z| (*z).to_owned()).collect();
        let devices = self.device_names();
        let mut frames = vec![self.global_frame(time_us, &procs, &zone_names)?];
        for (zone, members) in &by_zone {
            frames.push(self.zone_frame(zone, time_us, members, &devices));
        }
        for f in &mut frames {
            f.ticks = Some(ticks);
            f.time_us = Some(time_us.max(0) as u64);
        }
        self.prev_proc_ticks = procs.iter().map(|p| (p.pid, p.cpu_ticks)).collect();
        self.prev_zone.retain(|z, _| by_zone.contains_key(z.as_str()));
        Ok(frames)
    }
}

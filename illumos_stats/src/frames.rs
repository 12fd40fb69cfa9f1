//! Turns one snapshot of kstats and one interval of DTrace aggregations into one 2013 frame
//! per zone. Pure: no libkstat, no libdtrace, no clock; everything it knows comes in as
//! records, so it is tested anywhere on fixtures in the recorded format (composed by
//! `tests/fixtures/compose.py`, not recorded on a host).
//!
//! Which zone a statistic belongs to: zone kstats carry a `zonename` statistic, else their
//! instance is the zone id (`zones:ID:NAME`); `caps` names end in `_zone_ID`; aggregation
//! keys start with `zonename`. Links: a non-global zone sees only its own; in the global
//! zone a link belongs to the zone its `zonename` statistic names, else to the zone whose id
//! its SmartOS-style `zID_` name prefix gives, else to `global`. `docs/statistics.md` lists
//! every field's origin and unit.

use std::collections::{BTreeMap, BTreeSet};

use dtrace_sys::{AggregateRecord, AggregateValue, Key};
use frame_proto::Packet;
use frame_proto::packet::{CallFreq, Cpu, Cpuqueue, Disk, Mem, Net, Process};

use crate::IllumosError;
use crate::kstat::KstatRecord;

/// The aggregations the frames are built from (defined in `d-scripts/generator/`).
pub const AGGREGATIONS: &[&str] = &["cpu", "process", "ticks", "syscall_latency", "vminfo", "runqueue"];

/// The zone of the global zone.
pub const GLOBAL: &str = "global";

/// How frames are built.
#[derive(Debug, Clone)]
pub struct FrameOptions {
    /// Busiest processes reported per zone (2013: 20).
    pub top_processes: usize,
}

impl Default for FrameOptions {
    fn default() -> Self {
        Self { top_processes: 20 }
    }
}

/// The zones a snapshot shows, and which one the generator runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneView {
    /// Zone id -> zone name, for every zone the kstats show.
    pub zones: BTreeMap<i32, String>,
    /// The zone the generator runs in: `global`, or the one non-global zone it can see.
    pub own_zone: String,
}

impl ZoneView {
    /// Reads the zone list from the `zones` kstats. In the global zone every zone is
    /// visible; in a non-global zone only itself.
    pub fn from_kstats(kstats: &[KstatRecord]) -> Result<Self, IllumosError> {
        let zones: BTreeMap<i32, String> = kstats
            .iter()
            .filter(|r| r.module == "zones")
            .map(|r| (r.instance, r.text("zonename").unwrap_or(&r.name).to_string()))
            .collect();
        let own_zone = if zones.values().any(|z| z == GLOBAL) {
            GLOBAL.to_string()
        } else {
            match zones.values().collect::<Vec<_>>().as_slice() {
                [only] => (*only).clone(),
                [] => {
                    return Err(IllumosError::Missing { what: "zones kstats (zones:ID:NAME): no zone is visible".into() });
                }
                many => {
                    return Err(IllumosError::Missing {
                        what: format!("the global zone among {} visible zones (zones kstats)", many.len()),
                    });
                }
            }
        };
        Ok(Self { zones, own_zone })
    }

    /// Whether the generator runs in the global zone.
    pub fn in_global_zone(&self) -> bool {
        self.own_zone == GLOBAL
    }

    /// The zone a zone kstat belongs to: its `zonename` statistic, else its instance as a
    /// zone id.
    fn zone_of(&self, record: &KstatRecord) -> Option<String> {
        if let Some(name) = record.text("zonename") {
            return Some(name.to_string());
        }
        self.zones.get(&record.instance).cloned()
    }

    /// The zone a `link` kstat belongs to.
    fn zone_of_link(&self, record: &KstatRecord) -> String {
        if !self.in_global_zone() {
            return self.own_zone.clone();
        }
        if let Some(name) = record.text("zonename") {
            return name.to_string();
        }
        // SmartOS names a zone's VNICs in the global zone `z<zoneid>_<link>`.
        let by_prefix = record
            .name
            .strip_prefix('z')
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(id, _)| id.parse::<i32>().ok())
            .and_then(|id| self.zones.get(&id));
        by_prefix.cloned().unwrap_or_else(|| GLOBAL.to_string())
    }
}

/// A string key of an aggregation record at `index`.
fn key_str(record: &AggregateRecord, index: usize) -> Option<&str> {
    record.keys.get(index).and_then(Key::as_str)
}

/// An integer key of an aggregation record at `index`, as `u32` if it fits.
fn key_u32(record: &AggregateRecord, index: usize) -> Option<u32> {
    record.keys.get(index).and_then(Key::as_int).and_then(|i| u32::try_from(i).ok())
}

fn count(record: &AggregateRecord) -> u64 {
    match record.value {
        AggregateValue::Count(c) => c,
        _ => 0,
    }
}

fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// 32-bit operation counters of the 2013 schema wrap like the kernel's own `kstat_io`
/// counters, so differences across a wrap stay right.
fn wrap32(v: u64) -> u32 {
    v as u32
}

/// Builds one frame per zone: every zone in the global zone, the generator's own zone
/// elsewhere. `time_us` is the sample time; the frames' `time` is its whole seconds.
pub fn build_frames(
    kstats: &[KstatRecord],
    aggregates: &[AggregateRecord],
    time_us: i64,
    opts: &FrameOptions,
) -> Result<Vec<Packet>, IllumosError> {
    let view = ZoneView::from_kstats(kstats)?;
    let time = u64::try_from(time_us.div_euclid(1_000_000)).unwrap_or(0);
    let reported: Vec<String> =
        if view.in_global_zone() { view.zones.values().cloned().collect() } else { vec![view.own_zone.clone()] };

    let mut frames: BTreeMap<String, Packet> =
        reported.iter().map(|z| (z.clone(), Packet { name: z.clone(), time, ..Default::default() })).collect();

    // DTrace ran this interval when its tick aggregation is there: then a zone without a
    // record for a count had zero events, not an unknown number.
    let ticks = aggregates.iter().find(|r| r.aggregation == "ticks").map(count);
    let traced = ticks.is_some();

    add_process_counts(&view, kstats, &mut frames);
    add_cpu(kstats, aggregates, traced, &mut frames);
    add_memory(&view, kstats, aggregates, traced, &mut frames);
    add_net(&view, kstats, &mut frames);
    add_disks(&view, kstats, &mut frames);
    add_processes(aggregates, opts.top_processes, &mut frames);
    add_callfreq(aggregates, &mut frames);

    if let Some(global) = frames.get_mut(GLOBAL) {
        global.zonename = view.zones.values().cloned().collect();
        global.cpuqueue = aggregates
            .iter()
            .filter(|r| r.aggregation == "runqueue")
            .filter_map(|r| {
                Some(Cpuqueue { core: Some(key_u32(r, 0)?), length: Some(key_u32(r, 1)?), amount: Some(sat32(count(r))) })
            })
            .collect();
        global.cpuqueue.sort_by_key(|q| (q.core, q.length));
    }
    for frame in frames.values_mut() {
        frame.ticks = ticks.map(sat32);
    }
    Ok(frames.into_values().collect())
}

/// `caps:ID:nprocs_zone_ID`, statistic `usage`: the zone's process count. illumos has no
/// per-zone LWP kstat (`zone.max-lwps` is an rctl without one), so `threads` stays NULL.
fn add_process_counts(view: &ZoneView, kstats: &[KstatRecord], frames: &mut BTreeMap<String, Packet>) {
    for r in kstats.iter().filter(|r| r.module == "caps") {
        let Some(id) = r.name.strip_prefix("nprocs_zone_") else {
            continue;
        };
        let zone = r.text("zonename").map(str::to_string).or_else(|| view.zones.get(&id.parse().ok()?).cloned());
        let (Some(frame), Some(usage)) = (zone.and_then(|z| frames.get_mut(&z)), r.uint("usage")) else {
            continue;
        };
        frame.processes = Some(sat32(usage));
    }
}

/// `@cpu[zonename, cpu]`, one row per core of `cpu_info` (zero when no sample landed).
fn add_cpu(kstats: &[KstatRecord], aggregates: &[AggregateRecord], traced: bool, frames: &mut BTreeMap<String, Packet>) {
    let mut cores: BTreeSet<u32> =
        kstats.iter().filter(|r| r.module == "cpu_info").filter_map(|r| u32::try_from(r.instance).ok()).collect();
    let mut usage: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for r in aggregates.iter().filter(|r| r.aggregation == "cpu") {
        let (Some(zone), Some(core)) = (key_str(r, 0), key_u32(r, 1)) else {
            continue;
        };
        cores.insert(core);
        *usage.entry((zone.to_string(), core)).or_default() += count(r);
    }
    if !traced {
        return;
    }
    for (zone, frame) in frames.iter_mut() {
        frame.cpu = cores
            .iter()
            .map(|core| Cpu { core: Some(*core), usage: Some(sat32(usage.get(&(zone.clone(), *core)).copied().unwrap_or(0))) })
            .collect();
    }
}

/// `memory_cap` (per zone), `unix:0:system_pages` (global) and `@vminfo[zonename, name]`.
fn add_memory(
    view: &ZoneView,
    kstats: &[KstatRecord],
    aggregates: &[AggregateRecord],
    traced: bool,
    frames: &mut BTreeMap<String, Packet>,
) {
    let mut mem: BTreeMap<String, Mem> = BTreeMap::new();
    for r in kstats.iter().filter(|r| r.module == "memory_cap") {
        let Some(zone) = view.zone_of(r) else {
            continue;
        };
        let m = mem.entry(zone).or_default();
        m.rss = r.uint("rss");
        m.physcap = r.uint("physcap").filter(is_cap);
        m.swap = r.uint("swap");
        m.swapcap = r.uint("swapcap").filter(is_cap);
    }
    if let Some(pages) = kstats.iter().find(|r| r.module == "unix" && r.instance == 0 && r.name == "system_pages") {
        let m = mem.entry(GLOBAL.to_string()).or_default();
        m.physmem = pages.uint("physmem");
        m.pp_kernel = pages.uint("pp_kernel");
        m.freemem = pages.uint("freemem");
        m.nalloc_calls = pages.uint("nalloc_calls");
        m.nfree_calls = pages.uint("nfree_calls");
    }
    if traced {
        for zone in frames.keys() {
            let m = mem.entry(zone.clone()).or_default();
            m.maj_fault = Some(0);
            m.as_fault = Some(0);
            m.pgin = Some(0);
        }
        for r in aggregates.iter().filter(|r| r.aggregation == "vminfo") {
            let (Some(zone), Some(name)) = (key_str(r, 0), key_str(r, 1)) else {
                continue;
            };
            let Some(m) = mem.get_mut(zone) else { continue };
            let slot = match name {
                "maj_fault" => &mut m.maj_fault,
                "as_fault" => &mut m.as_fault,
                "pgin" => &mut m.pgin,
                _ => continue,
            };
            *slot = Some(sat32(u64::from(slot.unwrap_or(0)) + count(r)));
        }
    }
    for (zone, m) in mem {
        if let Some(frame) = frames.get_mut(&zone) {
            frame.mem = vec![m];
        }
    }
}

/// An uncapped zone reports 0 or "unlimited" pages in bytes (`ptob(UINT64_MAX)`): NULL, as
/// Linux's `max`, not a cap of zero or 16 EiB.
fn is_cap(bytes: &u64) -> bool {
    *bytes != 0 && *bytes < 1 << 62
}

/// `link:*:*`: 64-bit counters, falling back to the 32-bit ones.
fn add_net(view: &ZoneView, kstats: &[KstatRecord], frames: &mut BTreeMap<String, Packet>) {
    for r in kstats.iter().filter(|r| r.module == "link") {
        let Some(frame) = frames.get_mut(&view.zone_of_link(r)) else {
            continue;
        };
        let either = |wide: &str, narrow: &str| r.uint(wide).or_else(|| r.uint(narrow));
        frame.net.push(Net {
            instance: Some(r.name.clone()),
            obytes64: either("obytes64", "obytes"),
            rbytes64: either("rbytes64", "rbytes"),
            opackets: either("opackets64", "opackets"),
            ipackets: either("ipackets64", "ipackets"),
            oerrors: r.uint("oerrors").map(sat32),
            ierrors: r.uint("ierrors").map(sat32),
        });
    }
    for frame in frames.values_mut() {
        frame.net.sort_by(|a, b| a.instance.cmp(&b.instance));
    }
}

fn io_disk(instance: String, r: &KstatRecord) -> Disk {
    Disk {
        instance,
        nread: r.uint("nread"),
        nwritten: r.uint("nwritten"),
        reads: r.uint("reads").map(wrap32),
        writes: r.uint("writes").map(wrap32),
        rtime: r.uint("rtime"),
        wtime: r.uint("wtime"),
        rlentime: r.uint("rlentime"),
        wlentime: r.uint("wlentime"),
        ..Default::default()
    }
}

/// Global disks from `sd:N:sdN` (I/O kstats) with errors from `sderr:N:sdN,err`; per-zone
/// I/O from `zone_vfs` (instance `vfs`) and `zone_zfs` (instance `zfs`).
fn add_disks(view: &ZoneView, kstats: &[KstatRecord], frames: &mut BTreeMap<String, Packet>) {
    if let Some(global) = frames.get_mut(GLOBAL) {
        let errors: BTreeMap<&str, &KstatRecord> =
            kstats.iter().filter(|r| r.module == "sderr").filter_map(|r| Some((r.name.strip_suffix(",err")?, r))).collect();
        for r in kstats.iter().filter(|r| r.module == "sd" && !r.name.contains(',')) {
            let mut disk = io_disk(r.name.clone(), r);
            if let Some(e) = errors.get(r.name.as_str()) {
                disk.harderror = e.uint("Hard Errors").map(sat32);
                disk.softerror = e.uint("Soft Errors").map(sat32);
                disk.tranerror = e.uint("Transport Errors").map(sat32);
            }
            global.disk.push(disk);
        }
        global.disk.sort_by(|a, b| a.instance.cmp(&b.instance));
    }
    for (module, instance) in [("zone_vfs", "vfs"), ("zone_zfs", "zfs")] {
        for r in kstats.iter().filter(|r| r.module == module) {
            let Some(frame) = view.zone_of(r).and_then(|z| frames.get_mut(&z)) else {
                continue;
            };
            frame.disk.push(io_disk(instance.to_string(), r));
        }
    }
}

/// `@process[zonename, pid, execname, cpu]`: per process the samples summed over cores,
/// `cpu` the core that had most of them; the busiest `top` per zone.
fn add_processes(aggregates: &[AggregateRecord], top: usize, frames: &mut BTreeMap<String, Packet>) {
    #[derive(Default)]
    struct Seen {
        usage: u64,
        per_core: BTreeMap<u32, u64>,
    }
    let mut seen: BTreeMap<(String, u32, String), Seen> = BTreeMap::new();
    for r in aggregates.iter().filter(|r| r.aggregation == "process") {
        let (Some(zone), Some(pid), Some(exec), Some(core)) = (key_str(r, 0), key_u32(r, 1), key_str(r, 2), key_u32(r, 3)) else {
            continue;
        };
        let s = seen.entry((zone.to_string(), pid, exec.to_string())).or_default();
        s.usage += count(r);
        *s.per_core.entry(core).or_default() += count(r);
    }
    let mut by_zone: BTreeMap<String, Vec<Process>> = BTreeMap::new();
    for ((zone, pid, exec), s) in seen {
        // Most samples wins; among equals the lowest core (deterministic).
        let core = s.per_core.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(c, _)| *c);
        by_zone.entry(zone).or_default().push(Process {
            pid: Some(pid),
            execname: Some(exec),
            usage: Some(sat32(s.usage)),
            cpu: core,
        });
    }
    for (zone, mut procs) in by_zone {
        let Some(frame) = frames.get_mut(&zone) else {
            continue;
        };
        procs.sort_by(|a, b| b.usage.cmp(&a.usage).then(a.pid.cmp(&b.pid)));
        procs.truncate(top);
        frame.process = procs;
    }
}

/// `@syscall_latency[zonename, probefunc]`: one row per non-empty bucket.
fn add_callfreq(aggregates: &[AggregateRecord], frames: &mut BTreeMap<String, Packet>) {
    for r in aggregates.iter().filter(|r| r.aggregation == "syscall_latency") {
        let (Some(zone), Some(call), AggregateValue::Quantize(buckets)) = (key_str(r, 0), key_str(r, 1), &r.value) else {
            continue;
        };
        let Some(frame) = frames.get_mut(zone) else {
            continue;
        };
        for (lower, n) in dtrace_sys::quantize_bounds(buckets) {
            // Latencies are never negative; a negative bucket would be a clock step.
            let (Ok(time), Ok(n)) = (u64::try_from(lower), u64::try_from(n)) else {
                continue;
            };
            frame.callfreq.push(CallFreq { name: call.to_string(), time: Some(time), value: Some(sat32(n)) });
        }
    }
    for frame in frames.values_mut() {
        frame.callfreq.sort_by(|a, b| (&a.name, a.time).cmp(&(&b.name, b.time)));
    }
}

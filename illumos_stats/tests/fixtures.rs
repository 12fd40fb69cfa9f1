//! The illumos source on composed snapshots (`tests/fixtures/{global,zone}`, written by
//! `tests/fixtures/compose.py` from the kstat names and types of the illumos-joyent source in
//! the format `--record-illumos` records a real host in; none was recorded on a host): kstat
//! records and aggregation records -> frames, field by field.
#![allow(unused_crate_dependencies)]

use std::path::PathBuf;

use frame_proto::Packet;
use illumos_stats::IllumosError;
use illumos_stats::IllumosSampler;
use illumos_stats::aggregate::AggregateReader;
use illumos_stats::frames::{FrameOptions, ZoneView, build_frames};
use illumos_stats::kstat::KstatReader;
use illumos_stats::recording::{Recorder, Recording};
use prost::Message;

const UUID: &str = "f2d1a7b0-6c1e-4d0a-9b7e-3c1f5e9a2b11";
const T0: i64 = 1_764_000_000_000_000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn sample(name: &str, intervals: usize) -> Vec<Vec<Packet>> {
    let (kstats, aggregates) = Recording::load(&fixture(name)).unwrap().replay();
    let mut sampler = IllumosSampler::new(kstats, aggregates, FrameOptions::default());
    (0..intervals).map(|i| sampler.sample(T0 + i as i64 * 1_000_000).unwrap()).collect()
}

fn frame<'a>(frames: &'a [Packet], zone: &str) -> &'a Packet {
    frames.iter().find(|p| p.name == zone).unwrap_or_else(|| panic!("no frame for {zone}"))
}

#[test]
fn global_zone_reports_every_zone() {
    let intervals = sample("global", 2);
    let frames = &intervals[0];
    let mut names: Vec<&str> = frames.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["db", UUID, "global"]);
    for p in frames {
        assert_eq!(p.time, 1_764_000_000);
        assert_eq!(p.ticks, Some(4999));
        // illumos has no per-zone LWP kstat.
        assert_eq!(p.threads, None);
    }
    assert_eq!(intervals[1][0].ticks, Some(4998));

    // Zone list and run queue: global frame only, zone-id order.
    let global = frame(frames, "global");
    assert_eq!(global.zonename, ["global", UUID, "db"]);
    assert_eq!(global.cpuqueue.len(), 8);
    assert_eq!((global.cpuqueue[0].core, global.cpuqueue[0].length, global.cpuqueue[0].amount), (Some(0), Some(0), Some(4000)));
    assert_eq!((global.cpuqueue[1].core, global.cpuqueue[1].length, global.cpuqueue[1].amount), (Some(0), Some(2), Some(999)));
    for zone in ["db", UUID] {
        assert!(frame(frames, zone).zonename.is_empty() && frame(frames, zone).cpuqueue.is_empty());
    }

    // Process counts from caps:ID:nprocs_zone_ID (db's kstat has no zonename: found by id).
    assert_eq!(global.processes, Some(143));
    assert_eq!(frame(frames, UUID).processes, Some(37));
    assert_eq!(frame(frames, "db").processes, Some(12));
    assert_eq!(frame(&intervals[1], "db").processes, Some(13));
}

#[test]
fn cpu_rows_cover_every_core() {
    let frames = &sample("global", 1)[0];
    for p in frames {
        let cores: Vec<Option<u32>> = p.cpu.iter().map(|c| c.core).collect();
        assert_eq!(cores, [Some(0), Some(1), Some(2), Some(3)], "{}", p.name);
    }
    assert_eq!(frame(frames, "global").cpu[2].usage, Some(120));
    assert_eq!(frame(frames, UUID).cpu[1].usage, Some(410));
    // No sample landed on db's core 3 in the interval: a zero row, not a missing one.
    assert_eq!(frame(frames, "db").cpu[3].usage, Some(0));
}

#[test]
fn memory_from_memory_cap_system_pages_and_vminfo() {
    let frames = &sample("global", 1)[0];
    let global = &frame(frames, "global").mem[0];
    assert_eq!(global.rss, Some(3 << 30));
    assert_eq!(global.physcap, None, "uncapped: ptob(UINT64_MAX) is not a cap");
    assert_eq!(global.swapcap, None);
    assert_eq!(global.swap, Some(1 << 31));
    assert_eq!(global.physmem, Some(4_194_304));
    assert_eq!(global.pp_kernel, Some(300_000));
    assert_eq!(global.freemem, Some(1_500_000));
    assert_eq!((global.nalloc_calls, global.nfree_calls), (Some(10_234), Some(9_876)));
    assert_eq!((global.maj_fault, global.as_fault, global.pgin), (Some(2), Some(300), Some(0)));

    let zone = &frame(frames, UUID).mem[0];
    assert_eq!(
        (zone.rss, zone.physcap, zone.swap, zone.swapcap),
        (Some(512 << 20), Some(1 << 30), Some(600 << 20), Some(2 << 30))
    );
    assert_eq!(zone.physmem, None, "system_pages belongs to the global zone only");
    // DTrace ran and saw no major fault in this zone: zero, not unknown.
    assert_eq!((zone.maj_fault, zone.as_fault), (Some(0), Some(303)));

    let db = &frame(frames, "db").mem[0];
    assert_eq!((db.rss, db.physcap, db.swapcap), (Some(256 << 20), None, None), "memory_cap found by zone id; 0 is no cap");
    assert_eq!(db.maj_fault, Some(7));
}

#[test]
fn links_belong_to_their_zone() {
    let frames = &sample("global", 1)[0];
    let instances = |zone: &str| frame(frames, zone).net.iter().map(|n| n.instance.clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(instances("global"), ["ixgbe0"]);
    assert_eq!(instances(UUID), ["z3_net0"], "by the link's zonename statistic");
    assert_eq!(instances("db"), ["z5_net0"], "by the z<id>_ name prefix");
    let net = &frame(frames, UUID).net[0];
    // The 64-bit counters win over the wrapped 32-bit ones.
    assert_eq!(net.opackets, Some(27_000_000));
    assert_eq!(net.ipackets, Some(21_000_000));
    assert_eq!((net.rbytes64, net.obytes64), (Some(3_000_000_000), Some(6_000_000_000)));
    assert_eq!((net.ierrors, net.oerrors), (Some(3), Some(0)));
}

#[test]
fn disks_from_sd_sderr_and_zone_io() {
    let frames = &sample("global", 1)[0];
    let global = frame(frames, "global");
    let names: Vec<&str> = global.disk.iter().map(|d| d.instance.as_str()).collect();
    assert_eq!(names, ["sd0", "sd1", "vfs", "zfs"], "whole disks only, no partitions");
    let sd1 = &global.disk[1];
    assert_eq!((sd1.nread, sd1.reads, sd1.writes), (Some(4096 * 2000 * 7), Some(14_000), Some(6_000)));
    assert_eq!(
        (sd1.rtime, sd1.rlentime, sd1.wtime, sd1.wlentime),
        (Some(10_000_000), Some(18_000_000), Some(2_000_000), Some(3_000_000))
    );
    assert_eq!((sd1.harderror, sd1.softerror, sd1.tranerror), (Some(1), Some(2), Some(1)));

    let db = frame(frames, "db");
    let names: Vec<&str> = db.disk.iter().map(|d| d.instance.as_str()).collect();
    assert_eq!(names, ["vfs", "zfs"]);
    let (vfs, zfs) = (&db.disk[0], &db.disk[1]);
    assert_eq!((vfs.nread, vfs.reads, vfs.wtime), (Some(8192 * 6), Some(12), Some(1800)));
    // zone_zfs has no write-time statistics.
    assert_eq!((zfs.nwritten, zfs.writes, zfs.wtime, zfs.wlentime), (Some(32768 * 6), Some(30), None, None));
    assert_eq!(zfs.harderror, None);
}

#[test]
fn busiest_processes_per_zone() {
    let frames = &sample("global", 1)[0];
    let global = frame(frames, "global");
    let java = &global.process[0];
    assert_eq!((java.pid, java.execname.as_deref(), java.usage, java.cpu), (Some(4242), Some("java"), Some(2100), Some(3)));
    assert_eq!(global.process.len(), 3);
    // Equal samples on two cores: the lower core.
    let node = &frame(frames, UUID).process[0];
    assert_eq!((node.pid, node.usage, node.cpu), (Some(7001), Some(1000), Some(0)));
    let db = frame(frames, "db");
    assert_eq!(db.process.len(), 20, "the 2013 top 20");
    assert_eq!(db.process[0].pid, Some(9001));
    assert!(db.process.windows(2).all(|w| w[0].usage >= w[1].usage));
}

#[test]
fn syscall_latency_buckets() {
    let frames = &sample("global", 1)[0];
    let calls: Vec<(String, Option<u64>, Option<u32>)> =
        frame(frames, "db").callfreq.iter().map(|c| (c.name.clone(), c.time, c.value)).collect();
    assert_eq!(
        calls,
        [
            ("read".to_string(), Some(512), Some(50)),
            ("read".to_string(), Some(1024), Some(20)),
            ("read".to_string(), Some(1 << 20), Some(1)),
            ("write".to_string(), Some(4096), Some(7)),
        ]
    );
}

#[test]
fn non_global_zone_reports_itself_only() {
    let intervals = sample("zone", 2);
    let frames = &intervals[0];
    assert_eq!(frames.len(), 1);
    let db = &frames[0];
    assert_eq!(db.name, "db");
    assert!(db.zonename.is_empty() && db.cpuqueue.is_empty());
    assert_eq!(db.mem[0].physmem, None);
    assert_eq!(db.net.iter().map(|n| n.instance.as_deref().unwrap()).collect::<Vec<_>>(), ["net0"]);
    assert_eq!(db.disk.iter().map(|d| d.instance.as_str()).collect::<Vec<_>>(), ["vfs", "zfs"]);
    assert_eq!(db.cpu.len(), 4);
    assert_eq!(db.process.len(), 20);
    // Cumulative counters grow between the two snapshots.
    assert!(intervals[1][0].disk[0].nread > db.disk[0].nread);
}

#[test]
fn frames_are_2013_wire_frames() {
    for frames in sample("global", 2) {
        for p in frames {
            let bytes = p.encode_to_vec();
            let back = frame_proto::FrameDecoder::default().decode(&bytes).unwrap();
            assert_eq!(back, p);
        }
    }
}

#[test]
fn kstats_without_dtrace_leave_dtrace_fields_null() {
    let recording = Recording::load(&fixture("global")).unwrap();
    let frames = build_frames(&recording.kstats[0], &[], T0, &FrameOptions::default()).unwrap();
    for p in &frames {
        assert_eq!(p.ticks, None);
        assert!(p.cpu.is_empty() && p.process.is_empty() && p.callfreq.is_empty());
        assert_eq!(p.mem[0].maj_fault, None);
        assert!(p.mem[0].rss.is_some());
    }
}

#[test]
fn snapshots_without_zones_are_an_error() {
    let recording = Recording::load(&fixture("global")).unwrap();
    let no_zones: Vec<_> = recording.kstats[0].iter().filter(|r| r.module != "zones").cloned().collect();
    let err = build_frames(&no_zones, &[], T0, &FrameOptions::default()).unwrap_err();
    assert!(matches!(err, IllumosError::Missing { .. }), "{err}");
    let view = ZoneView::from_kstats(&recording.kstats[0]).unwrap();
    assert!(view.in_global_zone());
    assert_eq!(view.zones.len(), 3);
}

#[test]
fn recorder_writes_what_replay_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (kstats, aggregates) = Recording::load(&fixture("global")).unwrap().replay();
    let mut recorded =
        IllumosSampler::new(kstats, aggregates, FrameOptions::default()).with_recorder(Recorder::create(dir.path(), 2).unwrap());
    let first: Vec<Vec<Packet>> = (0..3).map(|i| recorded.sample(T0 + i * 1_000_000).unwrap()).collect();
    assert!(dir.path().join("kstat-0001.txt").exists());
    assert!(!dir.path().join("kstat-0002.txt").exists(), "the limit holds");

    let (mut kstats, mut aggregates) = Recording::load(dir.path()).unwrap().replay();
    let original = Recording::load(&fixture("global")).unwrap();
    assert_eq!(kstats.read().unwrap(), original.kstats[0]);
    assert_eq!(aggregates.collect().unwrap(), original.aggregates[0]);
    let (kstats, aggregates) = Recording::load(dir.path()).unwrap().replay();
    let mut replayed = IllumosSampler::new(kstats, aggregates, FrameOptions::default());
    for (i, frames) in first.iter().take(2).enumerate() {
        assert_eq!(&replayed.sample(T0 + i as i64 * 1_000_000).unwrap(), frames);
    }
}

#[test]
fn bad_fixtures_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Recording::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("kstat-0000.txt"), "{err}");
    std::fs::write(dir.path().join("kstat-0000.txt"), "zones:0:global:zonename\tglobal\n").unwrap();
    std::fs::write(dir.path().join("aggregates-0000.jsonl"), "{\"aggregation\":1}\n").unwrap();
    let err = Recording::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("aggregates-0000.jsonl") && err.to_string().contains("line 1"), "{err}");
}

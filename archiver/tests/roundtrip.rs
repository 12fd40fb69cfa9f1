//! Property: any admitted frame -> rows -> Parquet bytes -> rows read back gives the frame's
//! values in every column of every table, NULL exactly where the frame had no value. The
//! expected value of each column is written here by name, from the frame's own fields, apart
//! from the archiver's mapping; a test checks that these expectations cover every column the
//! layout defines, so a swapped pair of same-typed columns (or a new, unchecked column) fails.
//! And any bytes at all are either a frame or a counted rejection, never a panic (the fuzz
//! target in `fuzz/` explores decoding with coverage guidance).
#![allow(unused_crate_dependencies)]

use std::collections::BTreeSet;

use archive_layout::Table;
use archiver::admission::Admission;
use archiver::parquet_file::Encoder;
use archiver::rows::ZoneRows;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, UInt32Type, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use frame_proto::Packet;
use frame_proto::packet::{
    CallFreq, Cpu, CpuTime, Cpuqueue, Disk, Filesystem, Io, Link, Mem, Memory, Net, Pressure, Process, System, ZoneInfo,
};
use proptest::prelude::*;
use prost::Message;

const NOW: i64 = 1_764_000_000_000_000;

/// A column's values, as the frame says they must be.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    U32(Vec<Option<u32>>),
    U64(Vec<Option<u64>>),
    Str(Vec<Option<String>>),
}

/// Every value column of `table`, by name, from the frame's fields.
fn expected(table: Table, p: &Packet) -> Vec<(&'static str, Values)> {
    fn u32s<E>(v: &[E], f: impl Fn(&E) -> Option<u32>) -> Values {
        Values::U32(v.iter().map(f).collect())
    }
    fn u64s<E>(v: &[E], f: impl Fn(&E) -> Option<u64>) -> Values {
        Values::U64(v.iter().map(f).collect())
    }
    fn strs<E>(v: &[E], f: impl Fn(&E) -> Option<String>) -> Values {
        Values::Str(v.iter().map(f).collect())
    }
    match table {
        Table::Zone => vec![
            ("ticks", Values::U32(vec![p.ticks])),
            ("threads", Values::U32(vec![p.threads])),
            ("processes", Values::U32(vec![p.processes])),
        ],
        Table::Cpu => vec![("core", u32s(&p.cpu, |c: &Cpu| c.core)), ("usage", u32s(&p.cpu, |c: &Cpu| c.usage))],
        Table::Mem => vec![
            ("rss", u64s(&p.mem, |m: &Mem| m.rss)),
            ("physcap", u64s(&p.mem, |m: &Mem| m.physcap)),
            ("swap", u64s(&p.mem, |m: &Mem| m.swap)),
            ("swapcap", u64s(&p.mem, |m: &Mem| m.swapcap)),
            ("physmem", u64s(&p.mem, |m: &Mem| m.physmem)),
            ("pp_kernel", u64s(&p.mem, |m: &Mem| m.pp_kernel)),
            ("freemem", u64s(&p.mem, |m: &Mem| m.freemem)),
            ("nalloc_calls", u64s(&p.mem, |m: &Mem| m.nalloc_calls)),
            ("nfree_calls", u64s(&p.mem, |m: &Mem| m.nfree_calls)),
            ("maj_fault", u32s(&p.mem, |m: &Mem| m.maj_fault)),
            ("as_fault", u32s(&p.mem, |m: &Mem| m.as_fault)),
            ("pgin", u32s(&p.mem, |m: &Mem| m.pgin)),
        ],
        Table::Net => vec![
            ("instance", strs(&p.net, |n: &Net| n.instance.clone())),
            ("obytes64", u64s(&p.net, |n: &Net| n.obytes64)),
            ("rbytes64", u64s(&p.net, |n: &Net| n.rbytes64)),
            ("opackets", u64s(&p.net, |n: &Net| n.opackets)),
            ("ipackets", u64s(&p.net, |n: &Net| n.ipackets)),
            ("oerrors", u32s(&p.net, |n: &Net| n.oerrors)),
            ("ierrors", u32s(&p.net, |n: &Net| n.ierrors)),
        ],
        Table::Disk => vec![
            ("instance", strs(&p.disk, |d: &Disk| Some(d.instance.clone()))),
            ("nread", u64s(&p.disk, |d: &Disk| d.nread)),
            ("nwritten", u64s(&p.disk, |d: &Disk| d.nwritten)),
            ("reads", u32s(&p.disk, |d: &Disk| d.reads)),
            ("writes", u32s(&p.disk, |d: &Disk| d.writes)),
            ("rtime", u64s(&p.disk, |d: &Disk| d.rtime)),
            ("wtime", u64s(&p.disk, |d: &Disk| d.wtime)),
            ("rlentime", u64s(&p.disk, |d: &Disk| d.rlentime)),
            ("wlentime", u64s(&p.disk, |d: &Disk| d.wlentime)),
            ("harderror", u32s(&p.disk, |d: &Disk| d.harderror)),
            ("softerror", u32s(&p.disk, |d: &Disk| d.softerror)),
            ("tranerror", u32s(&p.disk, |d: &Disk| d.tranerror)),
        ],
        Table::Process => vec![
            ("pid", u32s(&p.process, |x: &Process| x.pid)),
            ("execname", strs(&p.process, |x: &Process| x.execname.clone())),
            ("usage", u32s(&p.process, |x: &Process| x.usage)),
            ("cpu", u32s(&p.process, |x: &Process| x.cpu)),
        ],
        Table::Callfreq => vec![
            ("name", strs(&p.callfreq, |c: &CallFreq| Some(c.name.clone()))),
            ("bucket_ns", u64s(&p.callfreq, |c: &CallFreq| c.time)),
            ("value", u32s(&p.callfreq, |c: &CallFreq| c.value)),
        ],
        Table::Cpuqueue => vec![
            ("core", u32s(&p.cpuqueue, |q: &Cpuqueue| q.core)),
            ("length", u32s(&p.cpuqueue, |q: &Cpuqueue| q.length)),
            ("amount", u32s(&p.cpuqueue, |q: &Cpuqueue| q.amount)),
        ],
        Table::Zonename => vec![("zonename", strs(&p.zonename, |z: &String| Some(z.clone())))],
        Table::Frame => vec![
            ("run_id", Values::U64(vec![p.run_id])),
            ("seq", Values::U64(vec![p.seq])),
            ("interval_ms", Values::U32(vec![p.interval_ms])),
        ],
        Table::CpuTime => vec![
            ("user_us", u64s(&p.cpu_time, |c: &CpuTime| c.user_us)),
            ("system_us", u64s(&p.cpu_time, |c: &CpuTime| c.system_us)),
            ("periods", u64s(&p.cpu_time, |c: &CpuTime| c.periods)),
            ("throttled_periods", u64s(&p.cpu_time, |c: &CpuTime| c.throttled_periods)),
            ("throttled_us", u64s(&p.cpu_time, |c: &CpuTime| c.throttled_us)),
            ("quota_us", u64s(&p.cpu_time, |c: &CpuTime| c.quota_us)),
            ("period_us", u64s(&p.cpu_time, |c: &CpuTime| c.period_us)),
            ("limit_millicores", u32s(&p.cpu_time, |c: &CpuTime| c.limit_millicores)),
            ("weight", u32s(&p.cpu_time, |c: &CpuTime| c.weight)),
            ("iowait_us", u64s(&p.cpu_time, |c: &CpuTime| c.iowait_us)),
        ],
        Table::Pressure => vec![
            ("resource", strs(&p.pressure, |x: &Pressure| Some(x.resource.clone()))),
            ("some_us", u64s(&p.pressure, |x: &Pressure| x.some_us)),
            ("full_us", u64s(&p.pressure, |x: &Pressure| x.full_us)),
        ],
        Table::Memory => vec![
            ("usage", u64s(&p.memory, |m: &Memory| m.usage)),
            ("working_set", u64s(&p.memory, |m: &Memory| m.working_set)),
            ("anon", u64s(&p.memory, |m: &Memory| m.anon)),
            ("file", u64s(&p.memory, |m: &Memory| m.file)),
            ("shmem", u64s(&p.memory, |m: &Memory| m.shmem)),
            ("kernel", u64s(&p.memory, |m: &Memory| m.kernel)),
            ("slab", u64s(&p.memory, |m: &Memory| m.slab)),
            ("inactive_file", u64s(&p.memory, |m: &Memory| m.inactive_file)),
            ("limit", u64s(&p.memory, |m: &Memory| m.limit)),
            ("high", u64s(&p.memory, |m: &Memory| m.high)),
            ("swap", u64s(&p.memory, |m: &Memory| m.swap)),
            ("swap_limit", u64s(&p.memory, |m: &Memory| m.swap_limit)),
            ("oom", u64s(&p.memory, |m: &Memory| m.oom)),
            ("oom_kill", u64s(&p.memory, |m: &Memory| m.oom_kill)),
            ("max_events", u64s(&p.memory, |m: &Memory| m.max_events)),
            ("high_events", u64s(&p.memory, |m: &Memory| m.high_events)),
        ],
        Table::Io => vec![
            ("instance", strs(&p.io, |d: &Io| Some(d.instance.clone()))),
            ("rbytes", u64s(&p.io, |d: &Io| d.rbytes)),
            ("wbytes", u64s(&p.io, |d: &Io| d.wbytes)),
            ("rios", u64s(&p.io, |d: &Io| d.rios)),
            ("wios", u64s(&p.io, |d: &Io| d.wios)),
            ("dbytes", u64s(&p.io, |d: &Io| d.dbytes)),
            ("dios", u64s(&p.io, |d: &Io| d.dios)),
            ("read_ns", u64s(&p.io, |d: &Io| d.read_ns)),
            ("write_ns", u64s(&p.io, |d: &Io| d.write_ns)),
            ("discard_ns", u64s(&p.io, |d: &Io| d.discard_ns)),
            ("in_progress", u32s(&p.io, |d: &Io| d.in_progress)),
            ("busy_ns", u64s(&p.io, |d: &Io| d.busy_ns)),
        ],
        Table::Link => vec![
            ("instance", strs(&p.link, |l: &Link| Some(l.instance.clone()))),
            ("rbytes", u64s(&p.link, |l: &Link| l.rbytes)),
            ("obytes", u64s(&p.link, |l: &Link| l.obytes)),
            ("ipackets", u64s(&p.link, |l: &Link| l.ipackets)),
            ("opackets", u64s(&p.link, |l: &Link| l.opackets)),
            ("ierrors", u64s(&p.link, |l: &Link| l.ierrors)),
            ("oerrors", u64s(&p.link, |l: &Link| l.oerrors)),
            ("idrops", u64s(&p.link, |l: &Link| l.idrops)),
            ("odrops", u64s(&p.link, |l: &Link| l.odrops)),
            ("netns", u64s(&p.link, |l: &Link| l.netns)),
        ],
        Table::System => vec![
            ("load1_milli", u32s(&p.system, |x: &System| x.load1_milli)),
            ("load5_milli", u32s(&p.system, |x: &System| x.load5_milli)),
            ("load15_milli", u32s(&p.system, |x: &System| x.load15_milli)),
            ("procs_running", u32s(&p.system, |x: &System| x.procs_running)),
            ("procs_blocked", u32s(&p.system, |x: &System| x.procs_blocked)),
            ("fds_used", u64s(&p.system, |x: &System| x.fds_used)),
            ("fds_max", u64s(&p.system, |x: &System| x.fds_max)),
            ("sockets_used", u32s(&p.system, |x: &System| x.sockets_used)),
            ("oom_kill", u64s(&p.system, |x: &System| x.oom_kill)),
            ("zones_seen", u32s(&p.system, |x: &System| x.zones_seen)),
            ("zones_dropped", u32s(&p.system, |x: &System| x.zones_dropped)),
        ],
        Table::Filesystem => vec![
            ("mountpoint", strs(&p.filesystem, |f: &Filesystem| Some(f.mountpoint.clone()))),
            ("device", strs(&p.filesystem, |f: &Filesystem| f.device.clone())),
            ("fstype", strs(&p.filesystem, |f: &Filesystem| f.fstype.clone())),
            ("size_bytes", u64s(&p.filesystem, |f: &Filesystem| f.size_bytes)),
            ("free_bytes", u64s(&p.filesystem, |f: &Filesystem| f.free_bytes)),
            ("avail_bytes", u64s(&p.filesystem, |f: &Filesystem| f.avail_bytes)),
            ("files", u64s(&p.filesystem, |f: &Filesystem| f.files)),
            ("files_free", u64s(&p.filesystem, |f: &Filesystem| f.files_free)),
        ],
        Table::ZoneInfo => vec![
            ("cgroup_path", strs(&p.zone_info, |z: &ZoneInfo| z.cgroup_path.clone())),
            ("kind", strs(&p.zone_info, |z: &ZoneInfo| z.kind.clone())),
            ("container_id", strs(&p.zone_info, |z: &ZoneInfo| z.container_id.clone())),
            ("pod_uid", strs(&p.zone_info, |z: &ZoneInfo| z.pod_uid.clone())),
        ],
    }
}

fn read_back(b: &RecordBatch, name: &str) -> Values {
    let c = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    match c.data_type() {
        DataType::UInt32 => Values::U32(c.as_primitive::<UInt32Type>().iter().collect()),
        DataType::UInt64 => Values::U64(c.as_primitive::<UInt64Type>().iter().collect()),
        DataType::Utf8 => Values::Str(c.as_string::<i32>().iter().map(|s| s.map(str::to_owned)).collect()),
        other => panic!("{name}: unexpected type {other}"),
    }
}

#[test]
fn expectations_cover_every_column_of_every_table() {
    let p = Packet::default();
    for table in Table::ALL {
        let ours: BTreeSet<&str> = expected(table, &p).iter().map(|(n, _)| *n).collect();
        let layout: BTreeSet<&str> = table.value_columns().iter().map(|(n, _)| *n).collect();
        assert_eq!(ours, layout, "{table}");
    }
}

fn opt<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

fn u32o() -> BoxedStrategy<Option<u32>> {
    opt(any::<u32>())
}

fn u64o() -> BoxedStrategy<Option<u64>> {
    opt(any::<u64>())
}

fn packet() -> impl Strategy<Value = Packet> {
    let cpu = proptest::collection::vec((u32o(), u32o()).prop_map(|(core, usage)| Cpu { core, usage }), 0..5);
    let mem = proptest::collection::vec(
        ((u64o(), u64o(), u64o(), u64o(), u64o(), u64o()), (u64o(), u64o(), u64o(), u32o(), u32o(), u32o())).prop_map(
            |(
                (rss, physcap, swap, swapcap, physmem, pp_kernel),
                (freemem, nalloc_calls, nfree_calls, maj_fault, as_fault, pgin),
            )| Mem {
                rss,
                physcap,
                swap,
                swapcap,
                physmem,
                pp_kernel,
                freemem,
                nalloc_calls,
                nfree_calls,
                maj_fault,
                as_fault,
                pgin,
            },
        ),
        0..2,
    );
    let net = proptest::collection::vec(
        (opt("\\PC{0,12}"), u64o(), u64o(), u64o(), u64o(), u32o(), u32o()).prop_map(
            |(instance, obytes64, rbytes64, opackets, ipackets, oerrors, ierrors)| Net {
                instance,
                obytes64,
                rbytes64,
                opackets,
                ipackets,
                oerrors,
                ierrors,
            },
        ),
        0..3,
    );
    let disk = proptest::collection::vec(
        (("\\PC{0,8}", u64o(), u64o(), u32o(), u32o(), u64o()), (u64o(), u64o(), u64o(), u32o(), u32o(), u32o())).prop_map(
            |(
                (instance, nread, nwritten, reads, writes, rtime),
                (wtime, rlentime, wlentime, harderror, softerror, tranerror),
            )| Disk {
                instance,
                nread,
                nwritten,
                reads,
                writes,
                rtime,
                wtime,
                rlentime,
                wlentime,
                harderror,
                softerror,
                tranerror,
            },
        ),
        0..3,
    );
    let process = proptest::collection::vec(
        (u32o(), opt("\\PC{0,20}"), u32o(), u32o()).prop_map(|(pid, execname, usage, cpu)| Process { pid, execname, usage, cpu }),
        0..4,
    );
    let callfreq = proptest::collection::vec(
        ("\\PC{0,10}", u64o(), u32o()).prop_map(|(name, time, value)| CallFreq { name, time, value }),
        0..4,
    );
    let cpuqueue = proptest::collection::vec(
        (u32o(), u32o(), u32o()).prop_map(|(core, length, amount)| Cpuqueue { core, length, amount }),
        0..4,
    );
    let zonename = proptest::collection::vec("\\PC{1,40}|[a-z/]{200,1024}", 0..3);
    let linux = linux_entries();
    // Zone names up to 1 KiB and beyond (a Kubernetes cgroup path is about 190 bytes).
    let name = "\\PC{1,30}|[a-z0-9./-]{150,1100}";
    (name, 0i64..86_400_000_000, (u32o(), u32o(), u32o()), (cpu, mem, net, disk), (process, callfreq, cpuqueue, zonename), linux)
        .prop_map(
            |(
                name,
                dt,
                (ticks, threads, processes),
                (cpu, mem, net, disk),
                (process, callfreq, cpuqueue, zonename),
                (cpu_time, pressure, memory, io, link, system, filesystem, zone_info),
            )| Packet {
                name,
                time: ((NOW - dt) / 1_000_000) as u64,
                time_us: Some((NOW - dt) as u64),
                ticks,
                threads,
                processes,
                cpu,
                mem,
                net,
                disk,
                process,
                callfreq,
                cpuqueue,
                zonename,
                cpu_time,
                pressure,
                memory,
                io,
                link,
                system,
                filesystem,
                zone_info,
                host: Some("h".into()),
                ..Default::default()
            },
        )
}

type LinuxEntries = (Vec<CpuTime>, Vec<Pressure>, Vec<Memory>, Vec<Io>, Vec<Link>, Vec<System>, Vec<Filesystem>, Vec<ZoneInfo>);

/// The tables added for Linux (fields 19-26): every field drawn, absent or any value.
fn linux_entries() -> impl Strategy<Value = LinuxEntries> {
    use proptest::collection::vec;
    let cpu_time = vec(
        ((u64o(), u64o(), u64o(), u64o(), u64o()), (u64o(), u64o(), u32o(), u32o(), u64o())).prop_map(
            |(
                (user_us, system_us, periods, throttled_periods, throttled_us),
                (quota_us, period_us, limit_millicores, weight, iowait_us),
            )| {
                CpuTime {
                    user_us,
                    system_us,
                    periods,
                    throttled_periods,
                    throttled_us,
                    quota_us,
                    period_us,
                    limit_millicores,
                    weight,
                    iowait_us,
                }
            },
        ),
        0..2,
    );
    let pressure =
        vec(("\\PC{0,8}", u64o(), u64o()).prop_map(|(resource, some_us, full_us)| Pressure { resource, some_us, full_us }), 0..4);
    let memory = vec(
        (
            (u64o(), u64o(), u64o(), u64o(), u64o(), u64o(), u64o(), u64o()),
            (u64o(), u64o(), u64o(), u64o(), u64o(), u64o(), u64o(), u64o()),
        )
            .prop_map(
                |(
                    (usage, working_set, anon, file, shmem, kernel, slab, inactive_file),
                    (limit, high, swap, swap_limit, oom, oom_kill, max_events, high_events),
                )| {
                    Memory {
                        usage,
                        working_set,
                        anon,
                        file,
                        shmem,
                        kernel,
                        slab,
                        inactive_file,
                        limit,
                        high,
                        swap,
                        swap_limit,
                        oom,
                        oom_kill,
                        max_events,
                        high_events,
                    }
                },
            ),
        0..2,
    );
    let io = vec(
        (("\\PC{0,8}", u64o(), u64o(), u64o(), u64o(), u64o()), (u64o(), u64o(), u64o(), u64o(), u32o(), u64o())).prop_map(
            |((instance, rbytes, wbytes, rios, wios, dbytes), (dios, read_ns, write_ns, discard_ns, in_progress, busy_ns))| Io {
                instance,
                rbytes,
                wbytes,
                rios,
                wios,
                dbytes,
                dios,
                read_ns,
                write_ns,
                discard_ns,
                in_progress,
                busy_ns,
            },
        ),
        0..3,
    );
    let link = vec(
        (("\\PC{0,8}", u64o(), u64o(), u64o(), u64o()), (u64o(), u64o(), u64o(), u64o(), u64o())).prop_map(
            |((instance, rbytes, obytes, ipackets, opackets), (ierrors, oerrors, idrops, odrops, netns))| Link {
                instance,
                rbytes,
                obytes,
                ipackets,
                opackets,
                ierrors,
                oerrors,
                idrops,
                odrops,
                netns,
            },
        ),
        0..3,
    );
    let system = vec(
        ((u32o(), u32o(), u32o(), u32o(), u32o(), u64o()), (u64o(), u32o(), u64o(), u32o(), u32o())).prop_map(
            |(
                (load1_milli, load5_milli, load15_milli, procs_running, procs_blocked, fds_used),
                (fds_max, sockets_used, oom_kill, zones_seen, zones_dropped),
            )| {
                System {
                    load1_milli,
                    load5_milli,
                    load15_milli,
                    procs_running,
                    procs_blocked,
                    fds_used,
                    fds_max,
                    sockets_used,
                    oom_kill,
                    zones_seen,
                    zones_dropped,
                }
            },
        ),
        0..2,
    );
    let filesystem = vec(
        (("\\PC{0,20}", opt("\\PC{0,12}"), opt("[a-z0-9]{0,8}")), (u64o(), u64o(), u64o(), u64o(), u64o())).prop_map(
            |((mountpoint, device, fstype), (size_bytes, free_bytes, avail_bytes, files, files_free))| Filesystem {
                mountpoint,
                device,
                fstype,
                size_bytes,
                free_bytes,
                avail_bytes,
                files,
                files_free,
            },
        ),
        0..3,
    );
    let zone_info = vec(
        (opt("\\PC{0,40}"), opt("[a-z]{0,10}"), opt("[0-9a-f]{0,64}"), opt("[0-9a-f-]{0,36}"))
            .prop_map(|(cgroup_path, kind, container_id, pod_uid)| ZoneInfo { cgroup_path, kind, container_id, pod_uid }),
        0..2,
    );
    (cpu_time, pressure, memory, io, link, system, filesystem, zone_info)
}

fn through_parquet(table: Table, batch: &RecordBatch) -> RecordBatch {
    let bytes = Encoder::FLUSH.write(Vec::new(), table, std::slice::from_ref(batch)).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    datafusion::arrow::compute::concat_batches(&table.schema(), &batches).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_column_of_every_table_round_trips(p in packet()) {
        let admitted = Admission::new(1 << 20).admit(&p.encode_to_vec(), "endpoint", NOW).unwrap();
        prop_assert_eq!(&admitted, &p);
        let mut rows = ZoneRows::default();
        rows.append(&admitted, admitted.sample_time_us());
        let batches = rows.batches("h", &p.name).unwrap();
        let mut seen = BTreeSet::new();
        for (table, batch) in &batches {
            seen.insert(*table);
            let back = through_parquet(*table, batch);
            prop_assert_eq!(&back, batch);
            let zones = read_back(&back, "zone");
            prop_assert_eq!(zones, Values::Str(vec![Some(p.name.clone()); back.num_rows()]));
            for (column, want) in expected(*table, &p) {
                prop_assert_eq!(read_back(&back, column), want, "{}.{}", table, column);
            }
        }
        // Every table the frame has entries for produced a batch.
        for table in Table::ALL {
            let rows_expected = match &expected(table, &p)[0].1 {
                Values::U32(v) => v.len(),
                Values::U64(v) => v.len(),
                Values::Str(v) => v.len(),
            };
            prop_assert_eq!(seen.contains(&table), rows_expected > 0, "{}", table);
        }
    }

    #[test]
    fn any_bytes_are_a_frame_or_a_rejection(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(p) = Admission::new(1 << 20).admit(&bytes, "e", NOW) {
            let mut rows = ZoneRows::default();
            rows.append(&p, p.sample_time_us());
            let batches = rows.batches("e", &p.name).unwrap();
            prop_assert!(batches.iter().all(|(t, b)| b.schema() == t.schema()));
        }
    }
}

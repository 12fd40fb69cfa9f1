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
use frame_proto::packet::{CallFreq, Cpu, Cpuqueue, Disk, Mem, Net, Process};
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
    // Zone names up to 1 KiB and beyond (a Kubernetes cgroup path is about 190 bytes).
    let name = "\\PC{1,30}|[a-z0-9./-]{150,1100}";
    (name, 0i64..86_400_000_000, (u32o(), u32o(), u32o()), (cpu, mem, net, disk), (process, callfreq, cpuqueue, zonename))
        .prop_map(|(name, dt, (ticks, threads, processes), (cpu, mem, net, disk), (process, callfreq, cpuqueue, zonename))| {
            Packet {
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
                host: Some("h".into()),
                ..Default::default()
            }
        })
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

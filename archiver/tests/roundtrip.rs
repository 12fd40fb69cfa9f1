//! Property: any admitted frame -> rows -> Parquet bytes -> rows read back gives the frame's
//! values, NULL exactly where the frame had no value. And any bytes at all are either a
//! frame or a counted rejection, never a panic (the fuzz target in `archiver/fuzz` explores
//! the same path with coverage guidance).
#![allow(unused_crate_dependencies)]

use archive_layout::Table;
use archiver::admission::Admission;
use archiver::parquet_file::Encoder;
use archiver::rows::ZoneRows;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use frame_proto::Packet;
use frame_proto::packet::{Cpu, Disk, Mem, Net, Process};
use proptest::prelude::*;
use prost::Message;

const NOW: i64 = 1_764_000_000_000_000;

fn opt<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

fn packet() -> impl Strategy<Value = Packet> {
    let cpu = proptest::collection::vec((opt(any::<u32>()), opt(any::<u32>())).prop_map(|(core, usage)| Cpu { core, usage }), 0..6);
    let mem = proptest::collection::vec(
        (opt(any::<u64>()), opt(any::<u64>()), opt(any::<u32>()), opt(any::<u64>())).prop_map(|(rss, physmem, maj_fault, swap)| Mem {
            rss,
            physmem,
            maj_fault,
            swap,
            ..Default::default()
        }),
        0..2,
    );
    let net = proptest::collection::vec(
        (opt("\\PC{0,12}"), opt(any::<u64>()), opt(any::<u32>())).prop_map(|(instance, obytes64, ierrors)| Net {
            instance,
            obytes64,
            ierrors,
            ..Default::default()
        }),
        0..3,
    );
    let disk = proptest::collection::vec(
        ("\\PC{0,8}", opt(any::<u64>()), opt(any::<u32>())).prop_map(|(instance, nread, reads)| Disk { instance, nread, reads, ..Default::default() }),
        0..3,
    );
    let process = proptest::collection::vec(
        (opt(any::<u32>()), opt("\\PC{0,20}"), opt(any::<u32>())).prop_map(|(pid, execname, usage)| Process { pid, execname, usage, cpu: None }),
        0..4,
    );
    ("\\PC{1,30}", 0i64..86_400_000_000, opt(any::<u32>()), cpu, mem, net, disk, process).prop_map(
        |(name, dt, ticks, cpu, mem, net, disk, process)| Packet {
            name,
            time: ((NOW - dt) / 1_000_000) as u64,
            time_us: Some((NOW - dt) as u64),
            ticks,
            cpu,
            mem,
            net,
            disk,
            process,
            host: Some("h".into()),
            ..Default::default()
        },
    )
}

fn through_parquet(table: Table, batch: &RecordBatch) -> RecordBatch {
    let bytes = Encoder::FLUSH.write(Vec::new(), table, std::slice::from_ref(batch)).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    datafusion::arrow::compute::concat_batches(&table.schema(), &batches).unwrap()
}

fn u32s(b: &RecordBatch, name: &str) -> Vec<Option<u32>> {
    b.column_by_name(name).unwrap().as_primitive::<UInt32Type>().iter().collect()
}

fn u64s(b: &RecordBatch, name: &str) -> Vec<Option<u64>> {
    b.column_by_name(name).unwrap().as_primitive::<UInt64Type>().iter().collect()
}

fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    b.column_by_name(name).unwrap().as_string::<i32>().iter().map(|s| s.map(str::to_owned)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn frame_rows_parquet_round_trip(p in packet()) {
        let admitted = Admission::new(1 << 20).admit(&p.encode_to_vec(), "endpoint", NOW).unwrap();
        prop_assert_eq!(&admitted, &p);
        let mut rows = ZoneRows::default();
        rows.append(&admitted, admitted.sample_time_us());
        let batches = rows.finish("h", &p.name).unwrap();
        for (table, batch) in &batches {
            let back = through_parquet(*table, batch);
            prop_assert_eq!(&back, batch);
            prop_assert!(strs(&back, "zone").iter().all(|z| z.as_deref() == Some(p.name.as_str())));
            match table {
                Table::Zone => prop_assert_eq!(u32s(&back, "ticks"), vec![p.ticks]),
                Table::Cpu => {
                    prop_assert_eq!(u32s(&back, "core"), p.cpu.iter().map(|c| c.core).collect::<Vec<_>>());
                    prop_assert_eq!(u32s(&back, "usage"), p.cpu.iter().map(|c| c.usage).collect::<Vec<_>>());
                }
                Table::Mem => {
                    prop_assert_eq!(u64s(&back, "rss"), p.mem.iter().map(|m| m.rss).collect::<Vec<_>>());
                    prop_assert_eq!(u64s(&back, "physmem"), p.mem.iter().map(|m| m.physmem).collect::<Vec<_>>());
                    prop_assert_eq!(u32s(&back, "maj_fault"), p.mem.iter().map(|m| m.maj_fault).collect::<Vec<_>>());
                    prop_assert!(back.column_by_name("pgin").unwrap().null_count() == back.num_rows());
                }
                Table::Net => {
                    prop_assert_eq!(strs(&back, "instance"), p.net.iter().map(|n| n.instance.clone()).collect::<Vec<_>>());
                    prop_assert_eq!(u64s(&back, "obytes64"), p.net.iter().map(|n| n.obytes64).collect::<Vec<_>>());
                }
                Table::Disk => {
                    prop_assert_eq!(strs(&back, "instance"), p.disk.iter().map(|d| Some(d.instance.clone())).collect::<Vec<_>>());
                    prop_assert_eq!(u32s(&back, "reads"), p.disk.iter().map(|d| d.reads).collect::<Vec<_>>());
                }
                Table::Process => {
                    prop_assert_eq!(u32s(&back, "pid"), p.process.iter().map(|x| x.pid).collect::<Vec<_>>());
                    prop_assert_eq!(strs(&back, "execname"), p.process.iter().map(|x| x.execname.clone()).collect::<Vec<_>>());
                }
                _ => {}
            }
        }
    }

    #[test]
    fn any_bytes_are_a_frame_or_a_rejection(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(p) = Admission::new(1 << 20).admit(&bytes, "e", NOW) {
            let mut rows = ZoneRows::default();
            rows.append(&p, p.sample_time_us());
            let _ = rows.finish("e", &p.name).unwrap();
        }
    }
}

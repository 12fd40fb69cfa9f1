//! The ingest hot path, stage by stage, on the brief's reference load: frames of 10 zones x
//! 16 cores x 20 processes from the synthetic source.
//!
//! - `decode`: bytes -> `Packet` (admission rules included).
//! - `frames_to_batches`: `Packet` -> Arrow column builders -> `RecordBatch`es.
//! - `batches_to_parquet`: `RecordBatch`es -> Parquet bytes, flush and compaction encodings.
//! - `pipeline`: bytes -> admitted -> buffered -> published Parquet files on disk, the
//!   archiver's whole per-frame cost but the socket.
//!
//! Before the timings, it prints stored bytes per measured value for half an hour of the
//! reference load (one compacted file per zone and table), the figure the targets use.
//! Run: `cargo bench -p benches --bench ingest` (add `-- --quick` for a fast pass).
#![allow(unused_crate_dependencies)]

use std::hint::black_box;

use archive_layout::Table;
use archiver::admission::Admission;
use archiver::archive_writer::{ArchiveWriter, WriterOptions};
use archiver::parquet_file::{Codec, Encoder};
use archiver::rows::ZoneRows;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Array, RecordBatch};
use frame_proto::Packet;
use generator::source::StatSource;
use generator::synthetic::{SyntheticShape, SyntheticSource};
use prost::Message;

const START_US: i64 = 1_764_000_000_000_000;

fn frames(seconds: i64) -> Vec<Packet> {
    let mut source = SyntheticSource::new(SyntheticShape { zones: 10, cores: 16, processes: 20, seed: 1 });
    let mut out = Vec::new();
    for s in 0..seconds {
        for mut f in source.sample(START_US + s * 1_000_000, 1_000_000).expect("synthetic") {
            f.host = Some("bench".into());
            f.seq = Some(out.len() as u64);
            f.run_id = Some(1);
            f.interval_ms = Some(1000);
            out.push(f);
        }
    }
    out
}

/// Batches per (table, zone) for `frames`.
fn batches(frames: &[Packet]) -> Vec<(Table, RecordBatch)> {
    let mut zones: std::collections::BTreeMap<String, ZoneRows> = Default::default();
    for f in frames {
        zones.entry(f.name.clone()).or_default().append(f, f.sample_time_us());
    }
    zones.into_iter().flat_map(|(zone, rows)| rows.batches("bench", &zone).expect("batches")).collect()
}

/// Measured values: non-null cells of every column but time, host, zone and series keys.
fn measured_values(table: Table, batch: &RecordBatch) -> usize {
    let keys = table.series_key_columns();
    table
        .value_columns()
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| !keys.contains(name))
        .map(|(i, _)| {
            let c = batch.column(3 + i);
            c.len() - c.null_count()
        })
        .sum()
}

fn print_storage_figures() {
    let frames = frames(1800);
    let all = batches(&frames);
    for (label, encoder) in [
        ("flush runs (lz4_raw)", Encoder::FLUSH),
        ("sealed (zstd 9, per column)", Encoder::COMPACT),
        ("zstd 1", Encoder { codec: Codec::Zstd(1), per_column: false }),
        ("lz4_raw", Encoder { codec: Codec::Lz4Raw, per_column: false }),
        ("snappy", Encoder { codec: Codec::Snappy, per_column: false }),
        ("uncompressed", Encoder { codec: Codec::Uncompressed, per_column: false }),
    ] {
        let mut bytes = 0usize;
        let mut values = 0usize;
        let mut per_table: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        let started = std::time::Instant::now();
        for (table, batch) in &all {
            let out = encoder.write(Vec::new(), *table, std::slice::from_ref(batch)).expect("encode");
            let v = measured_values(*table, batch);
            bytes += out.len();
            values += v;
            let e = per_table.entry(table.name()).or_default();
            e.0 += out.len();
            e.1 += v;
        }
        println!(
            "storage, {label}: {} frames, {values} measured values, {bytes} bytes, {:.3} bytes/value, encoded in {:.2} us a frame",
            frames.len(),
            bytes as f64 / values as f64,
            started.elapsed().as_secs_f64() * 1e6 / frames.len() as f64
        );
        for (t, (b, v)) in per_table {
            println!("  {t:<9} {b:>9} bytes {v:>9} values {:.3} bytes/value", b as f64 / v.max(1) as f64);
        }
    }
}

fn bench(c: &mut Criterion) {
    print_storage_figures();
    let frames = frames(60);
    let encoded: Vec<Vec<u8>> = frames.iter().map(Message::encode_to_vec).collect();
    let n = frames.len() as u64;
    let admission = Admission::new(4 << 20);

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(admission.admit(bytes, "h", START_US).expect("admit"));
            }
        })
    });
    g.bench_function("frames_to_batches", |b| b.iter(|| black_box(batches(&frames))));
    let all = batches(&frames);
    g.bench_function("batches_to_parquet_flush", |b| {
        b.iter(|| {
            for (table, batch) in &all {
                black_box(Encoder::FLUSH.write(Vec::new(), *table, std::slice::from_ref(batch)).expect("encode"));
            }
        })
    });
    g.bench_function("batches_to_parquet_compact", |b| {
        b.iter(|| {
            for (table, batch) in &all {
                black_box(Encoder::COMPACT.write(Vec::new(), *table, std::slice::from_ref(batch)).expect("encode"));
            }
        })
    });
    // The flush codec alone (files are compacted with zstd 9 later): speed here, size below.
    for (label, codec) in
        [("zstd1", Codec::Zstd(1)), ("lz4_raw", Codec::Lz4Raw), ("snappy", Codec::Snappy), ("none", Codec::Uncompressed)]
    {
        let encoder = Encoder { codec, per_column: false };
        g.bench_function(format!("batches_to_parquet_{label}"), |b| {
            b.iter(|| {
                for (table, batch) in &all {
                    black_box(encoder.write(Vec::new(), *table, std::slice::from_ref(batch)).expect("encode"));
                }
            })
        });
    }
    g.bench_function("pipeline_to_files", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let mut writer = ArchiveWriter::open(dir.path(), WriterOptions::default()).expect("open");
                for bytes in &encoded {
                    let p = admission.admit(bytes, "h", START_US).expect("admit");
                    writer.append("bench", &p);
                }
                writer.flush().expect("flush");
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);

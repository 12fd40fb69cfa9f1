//! The whole data path with real processes on loopback: `generator --source synthetic`
//! publishes a known set of frames, `archiver` subscribes and is stopped with SIGTERM, and
//! the archive is checked through `dq` and through the Parquet files themselves against the
//! same synthetic frames computed in-process.
#![allow(unused_crate_dependencies)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use archive_layout::{ParquetFilePath, Table};
use common::*;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{TimestampMicrosecondType, UInt32Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use generator::source::StatSource;
use generator::synthetic::{SyntheticShape, SyntheticSource};

const START: &str = "2025-11-24T22:30:00Z";
const START_US: i64 = 1_764_023_400_000_000;
const SECONDS: i64 = 5400; // 22:30 .. 24:00: two partial hours and one whole one
const SHAPE: SyntheticShape = SyntheticShape { zones: 3, cores: 4, processes: 5, seed: 7 };

#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    rows: BTreeMap<&'static str, u64>,
    cpu_usage_per_zone: BTreeMap<String, u64>,
    process_usage: u64,
}

fn expected() -> Expected {
    let mut source = SyntheticSource::new(SHAPE);
    let mut e = Expected::default();
    for s in 0..SECONDS {
        for f in source.sample(START_US + s * 1_000_000, 1_000_000).unwrap() {
            *e.rows.entry("zone").or_default() += 1;
            *e.rows.entry("cpu").or_default() += f.cpu.len() as u64;
            *e.rows.entry("mem").or_default() += f.mem.len() as u64;
            *e.rows.entry("net").or_default() += f.net.len() as u64;
            *e.rows.entry("disk").or_default() += f.disk.len() as u64;
            *e.rows.entry("process").or_default() += f.process.len() as u64;
            *e.rows.entry("callfreq").or_default() += f.callfreq.len() as u64;
            *e.rows.entry("cpuqueue").or_default() += f.cpuqueue.len() as u64;
            *e.rows.entry("zonename").or_default() += f.zonename.len() as u64;
            *e.rows.entry("frame").or_default() += 1;
            *e.cpu_usage_per_zone.entry(f.name.clone()).or_default() +=
                f.cpu.iter().map(|c| u64::from(c.usage.unwrap_or(0))).sum::<u64>();
            e.process_usage += f.process.iter().map(|p| u64::from(p.usage.unwrap_or(0))).sum::<u64>();
        }
    }
    e
}

#[test]
fn generator_to_archiver_to_dq_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let expected = expected();
    let frames = SECONDS as u64 * SHAPE.zones as u64;

    // A long flush interval and a budget that holds every row: the rows reach Parquet only
    // through the SIGTERM path.
    let mut archiver = KillOnDrop(start_archiver(
        &archive,
        std::slice::from_ref(&endpoint),
        &["--flush-interval", "3600", "--memory-budget", "1024", "--stats-interval", "1"],
    ));
    let mut generator = KillOnDrop(
        Command::new(binary("generator"))
            .args(["--source", "synthetic", "-p", &port.to_string(), "--host", "gen-a"])
            .args(["--zones", "3", "--cores", "4", "--processes", "5", "--seed", "7"])
            .args([
                "--simulate-from",
                START,
                "--count",
                &SECONDS.to_string(),
                "--wait-subscribers",
                "1",
                "--wait-timeout-ms",
                "20000",
            ])
            .spawn()
            .unwrap(),
    );
    let gen_status = wait_exit(&mut generator, Duration::from_secs(120), "generator");
    assert!(gen_status.success(), "generator: {gen_status}");
    wait_for(Duration::from_secs(60), "the archiver to accept every frame", || {
        status(&archive).filter(|s| s["frames_accepted"] == frames).map(|_| ())
    });
    let before_stop = status(&archive).unwrap();
    assert_eq!(before_stop["files_flushed"], 0, "nothing published before SIGTERM");
    terminate(&archiver);
    let arch_status = wait_exit(&mut archiver, Duration::from_secs(60), "archiver after SIGTERM");
    assert!(arch_status.success(), "archiver: {arch_status}");

    let s = status(&archive).unwrap();
    assert_eq!(s["frames_accepted"], frames);
    assert_eq!(s["senders"][0]["host"], "gen-a");
    assert_eq!(s["senders"][0]["missing"], 0);
    assert_eq!(s["buffered_rows"], 0);

    // Through dq: row counts per table, sums per zone.
    for (table, rows) in &expected.rows {
        let got = dq_rows(&archive, &format!("SELECT count(*) FROM {table}"));
        assert_eq!(got, vec![vec![rows.to_string()]], "{table}");
    }
    let per_zone = dq_rows(&archive, "SELECT zone, sum(usage) FROM cpu GROUP BY zone ORDER BY zone");
    let want: Vec<Vec<String>> = expected.cpu_usage_per_zone.iter().map(|(z, u)| vec![z.clone(), u.to_string()]).collect();
    assert_eq!(per_zone, want);
    assert_eq!(dq_rows(&archive, "SELECT sum(usage) FROM process"), vec![vec![expected.process_usage.to_string()]]);
    assert_eq!(
        dq_rows(&archive, "SELECT min(time), max(time), count(DISTINCT host) FROM zone"),
        vec![vec!["2025-11-24T22:30:00Z".to_owned(), "2025-11-24T23:59:59Z".to_owned(), "1".to_owned()]]
    );
    // The frame table: one generator run, every zone's frames numbered without a gap.
    assert_eq!(
        dq_rows(
            &archive,
            "SELECT count(DISTINCT run_id), count(DISTINCT seq), max(seq) - min(seq) + 1, min(interval_ms) FROM frame"
        ),
        vec![vec!["1".to_owned(), frames.to_string(), frames.to_string(), "1000".to_owned()]]
    );
    // A non-global zone has NULL global-only fields, never 0.
    assert_eq!(dq_rows(&archive, "SELECT count(physmem) FROM mem WHERE zone = 'zone01'"), vec![vec!["0".to_owned()]]);

    // Through the files: the layout, one file per partition after shutdown compaction,
    // rows sorted by time, the same totals.
    let mut rows_per_table: BTreeMap<&str, u64> = BTreeMap::new();
    let mut partitions = std::collections::BTreeSet::new();
    let mut cpu_usage: u64 = 0;
    for file in parquet_files(&archive) {
        let rel = file.strip_prefix(&archive).unwrap();
        let path = ParquetFilePath::parse_relative(rel).unwrap_or_else(|e| panic!("{e}"));
        assert!(partitions.insert(path.key.clone()), "two files in {:?}", path.key);
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        assert_eq!(reader.schema().fields(), path.key.table.schema().fields(), "{}", rel.display());
        // The file says what it holds and which period, without its folders.
        let meta = reader.schema().metadata().clone();
        let period = |us: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        assert_eq!(meta.get("zonestat.zone"), Some(&path.key.zone), "{}", rel.display());
        assert_eq!(meta.get("zonestat.table").map(String::as_str), Some(path.key.table.name()));
        assert_eq!(meta.get("zonestat.period_start"), Some(&period(path.key.start_us)));
        assert_eq!(meta.get("zonestat.period_end"), Some(&period(path.key.end_us())));
        assert_eq!(meta.get("zonestat.format_version").map(String::as_str), Some("3"));
        let mut last = i64::MIN;
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let times = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            for t in times.values().iter() {
                assert!(*t >= last, "{} not sorted by time", rel.display());
                assert!((path.key.start_us..path.key.end_us()).contains(t), "{} holds a row of another hour", rel.display());
                last = *t;
            }
            assert!(batch.column(2).as_string::<i32>().iter().all(|z| z == Some(path.key.zone.as_str())));
            if path.key.table == Table::Cpu {
                cpu_usage += batch.column(4).as_primitive::<UInt32Type>().iter().map(|u| u64::from(u.unwrap_or(0))).sum::<u64>();
            }
            *rows_per_table.entry(path.key.table.name()).or_default() += batch.num_rows() as u64;
        }
    }
    let expected_rows: BTreeMap<&str, u64> = expected.rows.iter().filter(|(_, n)| **n > 0).map(|(t, n)| (*t, *n)).collect();
    assert_eq!(rows_per_table, expected_rows);
    assert_eq!(cpu_usage, expected.cpu_usage_per_zone.values().sum::<u64>());
    // 3 zones x 2 hours (22h, 23h) for tables every zone has; zonename/cpuqueue: global only.
    let cpu_partitions = partitions.iter().filter(|k| k.table == Table::Cpu).count();
    assert_eq!(cpu_partitions, 3 * 2);
    assert_eq!(partitions.iter().filter(|k| k.table == Table::Cpuqueue).count(), 2);
}

/// Filters on zone and time keep `dq` from opening files outside them: a file outside the
/// range is replaced by garbage, and only queries that would need it fail.
#[test]
fn zone_and_time_filters_prune_files() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut archiver = KillOnDrop(start_archiver(
        &archive,
        std::slice::from_ref(&endpoint),
        &["--flush-interval", "3600", "--stats-interval", "1"],
    ));
    let mut generator = KillOnDrop(
        Command::new(binary("generator"))
            .args(["--source", "synthetic", "-p", &port.to_string(), "--zones", "2", "--cores", "2", "--processes", "2"])
            .args(["--simulate-from", "2025-11-24T10:59:00Z", "--count", "120", "--wait-subscribers", "1"])
            .spawn()
            .unwrap(),
    );
    assert!(wait_exit(&mut generator, Duration::from_secs(60), "generator").success());
    wait_for(Duration::from_secs(60), "all frames", || status(&archive).filter(|s| s["frames_accepted"] == 240).map(|_| ()));
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());

    // Corrupt zone01's 10:00 cpu file.
    let victim = parquet_files(&archive.join("cpu/zone=zone01/date=2025-11-24/hour=10"));
    assert_eq!(victim.len(), 1);
    std::fs::write(&victim[0], b"not parquet at all").unwrap();

    let ok = |sql: &str| dq_rows(&archive, sql);
    assert_eq!(ok("SELECT count(*) FROM cpu WHERE zone = 'global'"), vec![vec!["240".to_owned()]]);
    assert_eq!(ok("SELECT count(*) FROM cpu WHERE zone IN ('global', 'nope')"), vec![vec!["240".to_owned()]]);
    assert_eq!(ok("SELECT count(*) FROM cpu WHERE time >= '2025-11-24T11:00:00Z'"), vec![vec!["240".to_owned()]]);
    assert_eq!(
        ok("SELECT count(*) FROM cpu WHERE zone = 'zone01' AND time BETWEEN '2025-11-24T11:00:00Z' AND '2025-11-24T11:30:00Z'"),
        vec![vec!["120".to_owned()]]
    );
    // Without a filter that excludes it, the corrupt file is read, and dq says so. (A bare
    // count(*) is answered from the catalog without reading rows.)
    let out = dq(&archive, &["SELECT sum(usage) FROM cpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn dq_reports_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dq(&dir.path().join("nope"), &["SELECT 1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    for (sql, needle) in [("SELECT * FROM nope", "not found"), ("SELEC 1", "SQL error"), ("SELECT nope FROM cpu", "nope")] {
        let out = dq(&dir.path().join("a"), &[sql]);
        assert!(!out.status.success(), "{sql}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{sql}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{sql}: {err}");
    }
    // An empty archive answers with no rows, in every format.
    let empty = dq_rows(&dir.path().join("a"), "SELECT count(*) FROM cpu");
    assert_eq!(empty, vec![vec!["0".to_owned()]]);
    for format in ["table", "json", "ndjson", "csv"] {
        let out = dq(&dir.path().join("a"), &["--format", format, "SELECT * FROM cpu"]);
        assert!(out.status.success(), "{format}");
    }
}

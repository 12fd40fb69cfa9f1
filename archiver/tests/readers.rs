//! The sealed files read by every reader the docs promise: pyarrow, Polars, the DuckDB CLI
//! (PyPI `duckdb-cli`) and Spark 4 (PyPI `pyspark`, Java 17) each read every table of an
//! archive the archiver wrote (real processes on loopback), and each agrees with `dq` on the
//! row count and on the sums of columns of every encoding the archiver uses (dictionary,
//! DELTA_BINARY_PACKED, PLAIN), on an archive holding a compacted month (`month=M/`), a
//! compacted day (`date=D/`) and hour files (`date=D/hour=H/`) side by side, and their
//! rollups (`cpu_1m`, `cpu_1h`, ...). `.ci/run` installs the readers; without them this
//! test fails.
#![allow(unused_crate_dependencies)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn pyarrow_polars_duckdb_and_spark_read_what_the_archiver_seals() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    // 25 hours of 3 zones, one frame every 20 s: November 30's last half hour (compacted
    // into November's month file), December 1 (a day file), December 2's first half hour
    // (hour files).
    let count = 25 * 180;
    let frames = count * 3u64;
    let mut archiver = KillOnDrop(start_archiver(
        &archive,
        std::slice::from_ref(&endpoint),
        // Days and months are compacted as soon as they are over, their inputs deleted at
        // once: the readers see month, day and hour files side by side.
        &[
            "--flush-interval",
            "1",
            "--stats-interval",
            "1",
            "--compact-days-after",
            "0",
            "--compact-months-after",
            "0",
            "--retire-grace",
            "0",
        ],
    ));
    let mut generator = KillOnDrop(
        Command::new(binary("generator"))
            .args(["--source", "synthetic", "-p", &port.to_string(), "--zones", "3", "--cores", "4", "--processes", "5"])
            .args([
                "--simulate-from",
                "2025-11-30T23:30:00Z",
                "--interval",
                "20000",
                "--count",
                &count.to_string(),
                "--wait-subscribers",
                "1",
                "--wait-timeout-ms",
                "20000",
            ])
            .spawn()
            .unwrap(),
    );
    assert!(wait_exit(&mut generator, Duration::from_secs(120), "generator").success());
    wait_for(Duration::from_secs(60), "every frame accepted", || {
        status(&archive).filter(|s| s["frames_accepted"] == frames).map(|_| ())
    });
    // The archiver seals an hour at the second flush that brings it nothing new, then
    // compacts the day and the month: wait for that while it runs (a stop seals, but
    // compacts nothing).
    let parquet_in = |archive: &std::path::Path, table: &str, dir: &str| -> usize {
        walk(&archive.join(table))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet") && p.parent().is_some_and(|d| d.ends_with(dir)))
            .count()
    };
    let hour_files = |archive: &std::path::Path, day: &str| {
        walk(archive).into_iter().filter(|p| p.to_string_lossy().contains(&format!("date={day}/hour="))).count()
    };
    let compacted = |archive: &std::path::Path| {
        parquet_in(archive, "cpu", "month=2025-11") == 3
            && parquet_in(archive, "cpu_1h", "month=2025-11") == 3
            && parquet_in(archive, "cpu", "date=2025-12-01") == 3
            && parquet_in(archive, "cpu_1h", "date=2025-12-01") == 3
            && hour_files(archive, "2025-12-01") == 0
            && parquet_in(archive, "cpu", "date=2025-11-30") == 0
    };
    wait_for(Duration::from_secs(60), "November and December 1 compacted, with rollups", || compacted(&archive).then_some(()));
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());
    assert!(compacted(&archive), "a month file, a day file and their rollups per zone; no November day, no December 1 hour");
    assert!(hour_files(&archive, "2025-12-02") > 0, "December 2 in hour files");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers.py");
    let out = Command::new("python3").arg(&script).arg(&archive).output().expect("python3");
    assert!(out.status.success(), "readers.py: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("readers: {}", report["versions"]);
    let figures = report["figures"].as_object().unwrap();
    assert_eq!(figures.len(), 4, "{figures:?}");
    for (reader, tables) in figures {
        for (table, got) in tables.as_object().unwrap() {
            let columns = match table.as_str() {
                "zone" => "ticks, threads, processes",
                "cpu" => "core, usage",
                "mem" => "rss, freemem, maj_fault",
                "net" => "obytes64, opackets, ierrors",
                "disk" => "nread, reads, rtime",
                "process" => "pid, usage, cpu",
                "callfreq" => "bucket_ns, value",
                "cpuqueue" => "core, length, amount",
                "frame" => "seq, interval_ms",
                "cpu_1m" => "samples, usage_sum, usage_max",
                "cpu_1h" => "samples, usage_sum, usage_count",
                "mem_1h" => "rss_sum, rss_last, maj_fault_sum",
                "disk_1h" => "nread_increase, reads_last, reads_resets",
                other => panic!("unexpected table {other}"),
            };
            let sums: Vec<String> = columns.split(", ").map(|c| format!("sum(CAST({c} AS DOUBLE))")).collect();
            let want: Vec<f64> = dq_rows(&archive, &format!("SELECT CAST(count(*) AS DOUBLE), {} FROM {table}", sums.join(", ")))
                [0]
            .iter()
            .map(|v| if v.is_empty() { 0.0 } else { v.parse().unwrap() })
            .collect();
            let got: Vec<f64> = got.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert!(want[0] > 0.0, "{table}: no rows");
            assert_eq!(got, want, "{reader} on {table}");
        }
    }
}

//! Rollups as a reader meets them: every compacted day gets `TABLE_1m` and `TABLE_1h` files
//! that answer what the raw rows answer (min, max, sum, count, last of a gauge; the sum of
//! per-interval counts; a counter's increase with resets and 32-bit wraps, across the day
//! boundary), in the catalog, readable by `dq` and by any Parquet reader, and a later
//! compaction of the same day (late rows) replaces them.
#![allow(unused_crate_dependencies)]

mod common;

use std::path::Path;

use archiver::archive_writer::{ArchiveWriter, WriterOptions};
use datafusion::arrow::array::AsArray;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const T0: i64 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % DAY;
const STEP: i64 = 20_000_000;

/// A frame of `zone` at `t` with cpu (two cores), memory (rss a gauge, faults per interval)
/// and one disk whose `nread` (64-bit) resets once and whose `reads` (32-bit) wraps.
fn packet(zone: &str, t: i64, seq: u64) -> frame_proto::Packet {
    use frame_proto::packet::{Disk, Mem};
    let mut p = common::cpu_packet(zone, t, seq);
    let i = ((t - T0) / STEP) as u64;
    p.mem = vec![Mem { rss: Some(1_000_000 + (seq * 7919) % 50_000), maj_fault: Some((seq % 13) as u32), ..Default::default() }];
    // nread restarts from 0 in the middle of day 1 (the source restarted), then every 1,000
    // samples; reads passes 2^32 on day 0.
    let nread = if t < T0 + DAY + 5 * HOUR { 1_000_000 + i * 4096 } else { (i % 1000) * 512 };
    let reads = (u64::from(u32::MAX) - 50_000 + i * 3) % (1 << 32);
    p.disk = vec![Disk { instance: "sd0".into(), nread: Some(nread), reads: Some(reads as u32), ..Default::default() }];
    p
}

/// Two zones over days 0 and 1 and the first hour of day 2, one frame each 20 s; days 0
/// and 1 are compacted (age 0) and get their rollups.
fn write(root: &Path) -> ArchiveWriter {
    let options = WriterOptions {
        retire_grace: std::time::Duration::ZERO,
        compact_days_after: Some(std::time::Duration::ZERO),
        ..WriterOptions::default()
    };
    let mut w = ArchiveWriter::open(root, options).unwrap();
    common::write_hours(&mut w, 0..49, &["a", "b"], (T0, STEP), packet);
    w
}

fn rows(root: &Path, sql: &str) -> Vec<Vec<String>> {
    common::dq_rows(root, sql)
}

const BEFORE_DAY2: &str = "time < '2025-11-26T00:00:00Z'";

#[test]
fn rollups_answer_what_the_raw_rows_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let w = write(root);
    drop(w);
    assert_eq!(T0, 1_763_942_400_000_000, "day 0 is 2025-11-24");
    // One rollup file per level, zone, table and compacted day, in the catalog.
    let snapshot = catalog::Snapshot::read(root).unwrap().unwrap();
    for t in ["cpu_1m", "cpu_1h", "mem_1h", "disk_1m", "zone_1h"] {
        assert_eq!(snapshot.of_table_named(t).count(), 4, "{t}: 2 zones x 2 days");
    }
    assert_eq!(snapshot.of_table_named("zonename_1m").count(), 0);
    let (clean, text) = {
        let out = std::process::Command::new(common::binary("archiver"))
            .args(["check", "--archive", root.to_str().unwrap()])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(clean, "{text}");

    // Gauges and per-interval counts, per minute and per hour.
    for (unit, rollup) in [("minute", "cpu_1m"), ("hour", "cpu_1h")] {
        let raw = rows(
            root,
            &format!(
                "SELECT zone, core, date_trunc('{unit}', time) AS t, min(usage), max(usage), sum(usage), count(usage), count(*) \
                 FROM cpu WHERE {BEFORE_DAY2} GROUP BY zone, core, t ORDER BY zone, core, t"
            ),
        );
        let summary = rows(
            root,
            &format!(
                "SELECT zone, core, time, usage_min, usage_max, usage_sum, usage_count, samples FROM {rollup} \
                 ORDER BY zone, core, time"
            ),
        );
        assert_eq!(raw.len(), if unit == "hour" { 2 * 2 * 48 } else { 2 * 2 * 48 * 60 });
        assert_eq!(summary, raw, "{rollup}");
    }
    let raw = rows(
        root,
        &format!(
            "SELECT zone, date_trunc('hour', time) AS t, min(rss), max(rss), sum(rss), count(rss), \
             last_value(rss ORDER BY time), sum(maj_fault) FROM mem WHERE {BEFORE_DAY2} GROUP BY zone, t ORDER BY zone, t"
        ),
    );
    let summary = rows(
        root,
        "SELECT zone, time, rss_min, rss_max, rss_sum, rss_count, rss_last, maj_fault_sum FROM mem_1h ORDER BY zone, time",
    );
    assert_eq!(summary, raw);

    // Counters: the increase over both days (the step across midnight included) and per
    // hour equals the raw rows' increase; resets are counted, the 32-bit wrap is not one.
    let raw = rows(
        root,
        &format!(
            "SELECT zone, CAST(increase(nread, time) AS BIGINT), resets(nread, time), \
             CAST(increase(reads, time) AS BIGINT), resets(reads, time) \
             FROM disk WHERE {BEFORE_DAY2} GROUP BY zone ORDER BY zone"
        ),
    );
    for rollup in ["disk_1m", "disk_1h"] {
        let summary = rows(
            root,
            &format!(
                "SELECT zone, sum(nread_increase), sum(nread_resets), sum(reads_increase), sum(reads_resets) FROM {rollup} \
                 GROUP BY zone ORDER BY zone"
            ),
        );
        assert_eq!(summary, raw, "{rollup}");
        assert!(raw.iter().all(|r| r[2] != "0" && r[4] == "0"), "nread resets, reads only wraps: {raw:?}");
    }
    // Per hour: from the sample before the hour to the last in it (a reset adds the value).
    let raw_hourly = rows(
        root,
        &format!(
            "SELECT zone, date_trunc('hour', time) AS t, sum(CASE WHEN prev IS NULL THEN NULL WHEN nread >= prev THEN nread - prev ELSE nread END) \
             FROM (SELECT zone, time, nread, lag(nread) OVER (PARTITION BY zone ORDER BY time) AS prev FROM disk \
             WHERE {BEFORE_DAY2}) GROUP BY zone, t ORDER BY zone, t"
        ),
    );
    let hourly = rows(root, "SELECT zone, time, nread_increase FROM disk_1h ORDER BY zone, time");
    assert_eq!(hourly, raw_hourly);
}

#[test]
fn rollup_files_are_plain_parquet_and_a_later_compaction_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut w = write(root);
    let before: Vec<_> = common::parquet_files(&root.join("cpu_1h"));
    assert_eq!(before.len(), 4);
    // Plain Parquet with the documented columns, rows in time order.
    for f in &before {
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
                .unwrap();
        assert_eq!(reader.schema().fields(), archive_layout::Table::Cpu.rollup_schema().fields(), "{}", f.display());
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let times = batch.column(0).as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            assert!(times.values().windows(2).all(|w| w[0] <= w[1]), "{}", f.display());
        }
    }
    // A late frame for day 0: sealed into an hour file, merged at the next compaction of
    // day 0, whose rollups replace the earlier ones.
    w.append("h", &packet("a", T0 + 3 * HOUR + 7_000_000, 1_000_000));
    for h in 49..51 {
        for s in 0..(HOUR / STEP) {
            w.append("h", &packet("a", T0 + h * HOUR + s * STEP, 2_000_000 + (h * 1000 + s) as u64));
        }
        w.flush().unwrap();
        w.flush().unwrap();
        w.seal_due().unwrap();
    }
    drop(w);
    let after = common::parquet_files(&root.join("cpu_1h"));
    assert_eq!(after.len(), 4, "{after:?}");
    assert_ne!(before, after, "zone a's day 0 rollup was replaced");
    let samples = rows(
        root,
        "SELECT sum(samples) FROM cpu_1h WHERE zone = 'a' AND time >= '2025-11-24T03:00:00Z' AND time < '2025-11-24T04:00:00Z'",
    );
    assert_eq!(samples, vec![vec![((HOUR / STEP + 1) * 2).to_string()]], "the late frame's two cores counted");
}

/// The plan `dq` runs for `sql`, as text.
fn explain(root: &Path, sql: &str) -> String {
    rows(root, &format!("EXPLAIN {sql}")).into_iter().flatten().collect::<Vec<_>>().join("\n")
}

#[test]
fn dq_answers_long_range_aggregates_from_rollups_when_that_gives_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    drop(write(root));
    // (query, the rollup it should read, or None where a rollup cannot answer it). Each is
    // compared with the same query made unanswerable by a condition that keeps every row
    // (`usage >= 0` / `rss >= 0`: a value condition), which reads the raw rows.
    let cases: [(&str, Option<&str>); 8] = [
        // A condition on a column the aggregate does not use (a projection between them).
        (
            "SELECT date_trunc('day', time) AS d, sum(usage), count(*) FROM cpu \
             WHERE zone IN ('a', 'b') AND time < '2025-11-26T00:00:00Z' AND {KEEP} GROUP BY d ORDER BY d",
            Some("cpu_1h"),
        ),
        (
            "SELECT zone, date_trunc('hour', time) AS h, min(usage), max(usage), sum(usage), count(usage), count(*), avg(usage) \
             FROM cpu WHERE time < '2025-11-26T00:00:00Z' AND {KEEP} GROUP BY zone, h ORDER BY zone, h",
            Some("cpu_1h"),
        ),
        (
            "SELECT zone, core, date_trunc('minute', time) AS m, max(usage) FROM cpu \
             WHERE zone = 'a' AND time >= '2025-11-24T05:00:00Z' AND time < '2025-11-24T06:00:00Z' AND {KEEP} \
             GROUP BY zone, core, m ORDER BY zone, core, m",
            Some("cpu_1m"),
        ),
        (
            "SELECT date_trunc('day', time) AS d, avg(rss), max(rss), sum(maj_fault) FROM mem \
             WHERE time >= '2025-11-24T00:00:00Z' AND time < '2025-11-26T00:00:00Z' AND {KEEP_MEM} GROUP BY d ORDER BY d",
            Some("mem_1h"),
        ),
        (
            "SELECT zone, date_trunc('hour', time) AS h, sum(usage) FROM cpu \
             WHERE time >= '2025-11-24T00:30:00Z' AND time < '2025-11-25T00:00:00Z' AND {KEEP} GROUP BY zone, h ORDER BY zone, h",
            Some("cpu_1m"),
        ),
        // Day 2 is not compacted: no rollup covers it.
        ("SELECT zone, count(*), max(usage) FROM cpu WHERE {KEEP} GROUP BY zone ORDER BY zone", None),
        // A bound inside a minute, and an exclusive lower bound, change which rows count.
        (
            "SELECT zone, sum(usage) FROM cpu WHERE time >= '2025-11-24T00:00:30Z' AND time < '2025-11-25T00:00:00Z' \
             AND {KEEP} GROUP BY zone ORDER BY zone",
            None,
        ),
        (
            "SELECT zone, sum(usage) FROM cpu WHERE time > '2025-11-24T01:00:00Z' AND time < '2025-11-25T00:00:00Z' \
             AND {KEEP} GROUP BY zone ORDER BY zone",
            None,
        ),
    ];
    for (sql, rollup) in cases {
        let plain = sql.replace("AND {KEEP_MEM} ", "").replace("AND {KEEP} ", "").replace("WHERE {KEEP} ", "");
        let raw = sql.replace("{KEEP_MEM}", "rss >= 0").replace("{KEEP}", "usage >= 0");
        let plan = explain(root, &plain);
        match rollup {
            Some(r) => assert!(plan.contains(r), "{plain}\nshould read {r}:\n{plan}"),
            None => assert!(!plan.contains("_1h") && !plan.contains("_1m"), "{plain}\nshould read raw rows:\n{plan}"),
        }
        assert!(!explain(root, &raw).contains("_1"), "{raw}");
        let (a, b) = (rows(root, &plain), rows(root, &raw));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{plain}");
    }
}

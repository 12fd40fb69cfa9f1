//! Month compaction as a reader meets it: once a month is over, each zone's day files of it
//! (per table) become one file in `TABLE/zone=Z/month=YYYY-MM/`, with rollups of the month
//! in `TABLE_1h/zone=Z/month=YYYY-MM/` (and `_1m`), and every answer is the one an archive
//! of the same frames without month compaction gives: raw rows, rollup rows (a counter's
//! increase across midnight and across the month's end included), `dq`'s answers from
//! rollups. A late frame for the compacted month is merged into it again.
#![allow(unused_crate_dependencies)]

mod common;

use std::path::Path;
use std::time::Duration;

use archiver::archive_writer::{ArchiveWriter, WriterOptions};

const HOUR: i64 = 3_600_000_000;
const STEP: i64 = 20_000_000;
/// 2025-11-29T00:00:00Z.
const T0: i64 = 1_764_374_400_000_000;
/// The hours written: 2025-11-29 00:00 to 2025-12-02 02:00, so November and December 1 are
/// over (compacted) and December 2 is not.
const HOURS: i64 = 3 * 24 + 3;

/// A frame of `zone` at `t`: cpu (two cores), memory (a gauge, a per-interval count) and a
/// disk whose 32-bit `reads` wraps around November's end and whose `nread` resets once on
/// November 30.
fn packet(zone: &str, t: i64, seq: u64) -> frame_proto::Packet {
    use frame_proto::packet::{Disk, Mem};
    let mut p = common::cpu_packet(zone, t, seq);
    // Steps since T0 (negative before it: the counters still rise with time).
    let i = (t - T0).div_euclid(STEP);
    p.mem = vec![Mem { rss: Some(1_000_000 + (seq * 7919) % 50_000), maj_fault: Some((seq % 13) as u32), ..Default::default() }];
    let nread = if t < T0 + 24 * HOUR + 5 * HOUR { (100_000_000 + i * 4096) as u64 } else { (i.rem_euclid(1000) * 512) as u64 };
    let reads = (i64::from(u32::MAX) - 30_000_000 + i * 3_000).rem_euclid(1 << 32);
    p.disk = vec![Disk { instance: "sd0".into(), nread: Some(nread), reads: Some(reads as u32), ..Default::default() }];
    p
}

fn options(months: bool) -> WriterOptions {
    WriterOptions {
        retire_grace: Duration::ZERO,
        compact_days_after: Some(Duration::ZERO),
        compact_months_after: months.then_some(Duration::ZERO),
        ..WriterOptions::default()
    }
}

/// Writes the frames hour by hour, flushing and sealing as the service does.
fn write(root: &Path, months: bool) -> ArchiveWriter {
    let mut w = ArchiveWriter::open(root, options(months)).unwrap();
    common::write_hours(&mut w, 0..HOURS, &["a", "b"], (T0, STEP), packet);
    w
}

fn rows(root: &Path, sql: &str) -> Vec<Vec<String>> {
    common::dq_rows(root, sql)
}

/// Queries whose answers must not depend on how the files are cut.
const SAME_ANSWERS: &[&str] = &[
    "SELECT zone, count(*), sum(usage), min(time), max(time) FROM cpu GROUP BY zone ORDER BY zone",
    "SELECT zone, core, time, usage_min, usage_max, usage_sum, usage_count, samples FROM cpu_1h ORDER BY zone, core, time",
    "SELECT zone, core, time, usage_max, samples FROM cpu_1m ORDER BY zone, core, time",
    "SELECT zone, time, rss_min, rss_max, rss_sum, rss_last, maj_fault_sum FROM mem_1h ORDER BY zone, time",
    "SELECT zone, time, nread_increase, nread_resets, reads_increase, reads_resets, reads_last FROM disk_1h ORDER BY zone, time",
    "SELECT zone, CAST(increase(reads, time) AS BIGINT), resets(nread, time) FROM disk GROUP BY zone ORDER BY zone",
    "SELECT zone, date_trunc('day', time) AS d, max(usage), count(*) FROM cpu \
     WHERE time < '2025-12-02T00:00:00Z' GROUP BY zone, d ORDER BY zone, d",
    "SELECT * FROM mem WHERE zone = 'b' AND time >= '2025-11-30T05:00:00Z' AND time < '2025-11-30T06:00:00Z' ORDER BY time",
];

/// Asserts two answers are equal, naming the first rows that differ.
fn assert_same(got: &[Vec<String>], want: &[Vec<String>], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} rows against {}; first difference at row {at}: {:?} against {:?}",
            got.len(),
            want.len(),
            got.get(at),
            want.get(at)
        );
    }
}

fn check_clean(root: &Path) {
    let out = std::process::Command::new(common::binary("archiver"))
        .args(["check", "--archive", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The live raw and rollup files of zone `a` (paths relative to the archive) in `snapshot`.
fn catalogued(root: &Path, table: &str) -> Vec<String> {
    let snapshot = catalog::Snapshot::read(root).unwrap().unwrap();
    let mut paths: Vec<String> =
        snapshot.of_table_named(table).filter(|e| e.zone.as_deref() == Some("a")).map(|e| e.path.clone()).collect();
    paths.sort();
    paths
}

#[test]
fn a_finished_month_becomes_one_file_per_zone_and_table_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (months, days) = (dir.path().join("months"), dir.path().join("days"));
    let mut w = write(&months, true);
    let mut d = write(&days, false);

    // November: one month file and its rollups per zone and table; December 1: a day file.
    let cpu = catalogued(&months, "cpu");
    assert!(cpu.iter().filter(|p| p.contains("/month=2025-11/")).count() == 1, "{cpu:?}");
    assert!(!cpu.iter().any(|p| p.contains("date=2025-11-")), "no November day left: {cpu:?}");
    assert!(cpu.iter().any(|p| p.contains("/date=2025-12-01/") && !p.contains("hour=")), "{cpu:?}");
    for rollup in ["cpu_1h", "cpu_1m", "disk_1h", "mem_1h"] {
        let files = catalogued(&months, rollup);
        assert_eq!(files.iter().filter(|p| p.contains("/month=2025-11/")).count(), 1, "{rollup}: {files:?}");
        assert!(!files.iter().any(|p| p.contains("date=2025-11-")), "{rollup}: {files:?}");
    }
    let on_disk = common::parquet_files(&months.join("cpu/zone=a"));
    assert!(!on_disk.iter().any(|p| p.to_string_lossy().contains("date=2025-11-")), "inputs deleted: {on_disk:?}");
    check_clean(&months);

    for sql in SAME_ANSWERS {
        let got = rows(&months, sql);
        assert!(!got.is_empty(), "{sql}");
        assert_same(&got, &rows(&days, sql), sql);
    }
    // dq answers a long-range aggregate over the month from its rollup.
    let per_hour = "SELECT zone, date_trunc('hour', time) AS h, max(usage), count(*) FROM cpu \
                    WHERE time < '2025-12-02T00:00:00Z' GROUP BY zone, h ORDER BY zone, h";
    let plan = rows(&months, &format!("EXPLAIN {per_hour}")).into_iter().flatten().collect::<Vec<_>>().join("\n");
    assert!(plan.contains("TableScan: cpu_1h"), "{plan}");
    assert_same(&rows(&months, per_hour), &rows(&days, per_hour), per_hour);

    // A late frame for November 29 (both archives): sealed into an hour file, compacted
    // into its day, then merged into November's file again.
    let late = packet("a", T0 + 12 * HOUR + 10_000_000, 9_000_000);
    for w in [&mut w, &mut d] {
        w.append("h", &late);
        for _ in 0..4 {
            w.flush().unwrap();
            w.seal_due().unwrap();
        }
    }
    drop((w, d));
    let cpu = catalogued(&months, "cpu");
    assert_eq!(cpu.iter().filter(|p| p.contains("/month=2025-11/")).count(), 1, "{cpu:?}");
    assert!(!cpu.iter().any(|p| p.contains("date=2025-11-")), "the late day merged: {cpu:?}");
    check_clean(&months);
    for sql in SAME_ANSWERS {
        assert_same(&rows(&months, sql), &rows(&days, sql), &format!("after the late frame: {sql}"));
    }
    // And the late frame's two rows are there (the two archives share the merge, so
    // comparing them alone would not see them lost).
    let want = (HOURS * (HOUR / STEP) * 2 + 2).to_string();
    for root in [&months, &days] {
        assert_eq!(rows(root, "SELECT count(*) FROM cpu WHERE zone = 'a'"), vec![vec![want.clone()]], "{}", root.display());
    }
}

#[test]
fn a_stop_deletes_the_inputs_a_compaction_retired_whatever_their_grace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let options = WriterOptions { retire_grace: Duration::from_secs(3600), ..options(true) };
    let mut w = ArchiveWriter::open(root, options).unwrap();
    common::write_hours(&mut w, 0..HOURS, &["a"], (T0, 30 * STEP), packet);
    let november_days = |root: &Path| {
        common::parquet_files(&root.join("cpu")).iter().filter(|p| p.to_string_lossy().contains("date=2025-11-")).count()
    };
    assert!(november_days(root) > 0, "retired, kept for their grace period while the writer runs");
    assert_eq!(catalogued(root, "cpu").iter().filter(|p| p.contains("/month=2025-11/")).count(), 1);
    // A late frame for November 29 while its retired day file is still on disk: it goes
    // back into the month, never into a day file merged with the retired one.
    w.append("h", &packet("a", T0 + 12 * HOUR + 10_000_000, 9_000_000));
    for _ in 0..4 {
        w.flush().unwrap();
        w.seal_due().unwrap();
    }
    w.flush().unwrap();
    w.seal_all().unwrap();
    drop(w);
    assert_eq!(november_days(root), 0, "a stop deletes them: a glob would read November twice");
    check_clean(root);
    let want = (HOURS * (HOUR / STEP / 30) * 2 + 2).to_string();
    assert_eq!(rows(root, "SELECT count(*) FROM cpu"), vec![vec![want]], "every row once");
}

#[test]
fn months_left_due_when_a_writer_stopped_are_compacted_after_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // November 30 and two hours of December 1, one month (zone, table) compacted per
    // flush: November's 10 are not all done when the writer stops.
    let options = || WriterOptions { month_bytes_per_flush: 1, ..options(true) };
    let mut w = ArchiveWriter::open(root, options()).unwrap();
    common::write_hours(&mut w, 24..50, &["a"], (T0, 30 * STEP), packet);
    drop(w);
    let left = |root: &Path| {
        let snapshot = catalog::Snapshot::read(root).unwrap().unwrap();
        snapshot.entries().filter(|e| e.path.contains("date=2025-11-")).count()
    };
    assert!(left(root) > 0, "some of November still in day files when the writer stopped");
    // A restart with no new frame: the next flushes finish the work.
    let mut w = ArchiveWriter::open(root, options()).unwrap();
    for _ in 0..40 {
        w.flush().unwrap();
        w.seal_due().unwrap();
    }
    drop(w);
    assert_eq!(left(root), 0, "November compacted after the restart");
    check_clean(root);
}

/// Crashes (panics, as a killed process leaves its files) at the first `step` once armed.
#[derive(Debug)]
struct CrashWhenArmed {
    step: archiver::write_step::WriteStep,
    armed: std::sync::atomic::AtomicBool,
}

impl archiver::write_step::StepHook for CrashWhenArmed {
    fn at(&self, step: archiver::write_step::WriteStep) -> std::io::Result<()> {
        if step == self.step && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected crash at {step:?}");
        }
        Ok(())
    }
}

#[test]
fn a_crash_while_a_late_frame_is_merged_into_its_month_leaves_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hook = std::sync::Arc::new(CrashWhenArmed {
        step: archiver::write_step::WriteStep::MonthPublished,
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let options = WriterOptions {
        step_hook: Some(hook.clone() as std::sync::Arc<dyn archiver::write_step::StepHook + Sync>),
        ..options(true)
    };
    let mut w = ArchiveWriter::open(root, options.clone()).unwrap();
    common::write_hours(&mut w, 0..HOURS, &["a"], (T0, 30 * STEP), packet);
    assert_eq!(catalogued(root, "cpu").iter().filter(|p| p.contains("/month=2025-11/")).count(), 1);
    // A late frame: sealed, then merged with November's file into a new one, and the
    // process dies once that is published, before the catalog edit.
    hook.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    w.append("h", &packet("a", T0 + 12 * HOUR + 10_000_000, 9_000_000));
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..4 {
            w.flush().unwrap();
            w.seal_due().unwrap();
        }
    }));
    assert!(crashed.is_err(), "the crash happened");
    drop(w);
    let mut w = ArchiveWriter::open(root, WriterOptions { step_hook: None, ..options }).unwrap();
    for _ in 0..4 {
        w.flush().unwrap();
        w.seal_due().unwrap();
    }
    drop(w);
    let cpu = catalogued(root, "cpu");
    assert_eq!(
        cpu.iter().filter(|p| p.contains("/month=2025-11/")).count(),
        1,
        "the earlier month file left the catalog: {cpu:?}"
    );
    check_clean(root);
    let want = (HOURS * (HOUR / STEP / 30) * 2 + 2).to_string();
    assert_eq!(rows(root, "SELECT count(*) FROM cpu"), vec![vec![want]], "every row once");
}

#[test]
fn a_day_file_of_late_rows_never_hides_another_days_hour_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Days compacted 48 h after they end, months at once: when November is compacted, its
    // last two days are still hour files.
    let options = WriterOptions { compact_days_after: Some(Duration::from_secs(48 * 3600)), ..options(true) };
    let start = T0 - 3 * 24 * HOUR; // 2025-11-26
    let mut w = ArchiveWriter::open(root, options).unwrap();
    // Up to November 29 03:00, then a late frame for November 28 (sealed after November
    // 29's first hours, so its number is above theirs and November 28's day file spans
    // them), then on to December 1 02:00.
    common::write_hours(&mut w, 0..75, &["a"], (start, 30 * STEP), packet);
    w.append("h", &packet("a", start + 2 * 24 * HOUR + 5 * HOUR + 10_000_000, 9_000_000));
    common::write_hours(&mut w, 75..122, &["a"], (start, 30 * STEP), packet);
    drop(w);
    let cpu = catalogued(root, "cpu");
    assert_eq!(cpu.iter().filter(|p| p.contains("/month=2025-11/")).count(), 1, "{cpu:?}");
    check_clean(root);
    let want = (122 * (HOUR / STEP / 30) * 2 + 2).to_string();
    assert_eq!(rows(root, "SELECT count(*) FROM cpu"), vec![vec![want]], "every row once");
}

//! Retention as an operator sees it: per-table ages and a disk budget remove whole files,
//! oldest first, through the catalog (a reader never sees half of a removal), the files are
//! deleted after the grace period, and `dq` answers from what is left.
#![allow(unused_crate_dependencies)]

mod common;

use std::path::Path;

use archive_layout::Table;
use archiver::archive_writer::{ArchiveWriter, WriterOptions};
use archiver::retention::RetentionPolicy;

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % (24 * HOUR);

/// 30 hours of two zones, one frame each 10 minutes, flushed and sealed hour by hour under
/// `retention`; returns the frames written.
fn write(root: &Path, retention: RetentionPolicy) -> u64 {
    let options = WriterOptions {
        retention,
        retire_grace: std::time::Duration::ZERO,
        compact_days_after: None,
        ..WriterOptions::default()
    };
    let mut w = ArchiveWriter::open(root, options).unwrap();
    let mut seq = 0;
    for h in 0..30 {
        for m in 0..6 {
            for z in ["a", "b"] {
                seq += 1;
                w.append("h", &common::cpu_packet(z, T0 + h * HOUR + m * 600_000_000, seq));
            }
        }
        w.flush().unwrap();
        w.flush().unwrap();
        w.seal_due().unwrap();
    }
    w.flush().unwrap();
    w.seal_all().unwrap();
    seq
}

fn count(root: &Path, table: &str) -> u64 {
    common::dq_rows(root, &format!("SELECT count(*) FROM {table} WHERE time >= '1970-01-01T00:00:00Z'"))[0][0].parse().unwrap()
}

fn oldest_hour(root: &Path, table: Table) -> i64 {
    catalog::Snapshot::read(root).unwrap().unwrap().of_table(table).map(|e| e.period_start_us).min().unwrap()
}

#[test]
fn each_table_keeps_its_age_and_the_rest_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut policy = RetentionPolicy::default();
    policy.add_rule("cpu=12h").unwrap();
    let frames = write(root, policy);
    assert_eq!(count(root, "zone"), frames, "zone keeps everything");
    // The newest sample is in hour 29: cpu keeps the hours that ended after hour 17's start
    // (12 h before it), hour 17 on, give or take the hour retention last looked in.
    let oldest = (oldest_hour(root, Table::Cpu) - T0) / HOUR;
    assert!((16..=17).contains(&oldest), "cpu's oldest hour kept: {oldest}");
    assert_eq!(count(root, "cpu"), (30 - oldest as u64) * 6 * 2 * 2, "two cores a frame");
    // Gone from the disk too (grace 0), and the catalog names exactly what is there.
    let cpu_files = common::parquet_files(&root.join("cpu")).len() as i64;
    assert_eq!(cpu_files, (30 - oldest) * 2);
    let differences = catalog::check(root).unwrap().unwrap();
    assert!(differences.is_empty(), "{differences:?}");
}

#[test]
fn a_disk_budget_removes_the_oldest_hours_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let frames = write(root, RetentionPolicy::default());
    let all: u64 = catalog::Snapshot::read(root).unwrap().unwrap().entries().map(|e| e.bytes).sum();
    assert_eq!(count(root, "zone"), frames);
    // A budget of about a third: the archiver, started again with it, removes the oldest
    // hours of every table until the rest fits.
    let dir2 = tempfile::tempdir().unwrap();
    let root2 = dir2.path();
    let budget = RetentionPolicy { disk_budget_bytes: Some(all / 3), ..Default::default() };
    write(root2, budget);
    let snapshot = catalog::Snapshot::read(root2).unwrap().unwrap();
    let kept: u64 = snapshot.entries().map(|e| e.bytes).sum();
    assert!(kept <= all / 3, "{kept} > {}", all / 3);
    let newest = snapshot.entries().map(|e| e.period_start_us).max().unwrap();
    assert_eq!(newest, T0 + 29 * HOUR, "the newest hour stays");
    assert!(oldest_hour(root2, Table::Zone) > T0 + 10 * HOUR, "the oldest hours went");
    assert!(catalog::check(root2).unwrap().unwrap().is_empty());
}

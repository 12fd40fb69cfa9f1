//! The catalog as operators and `dq` meet it: it names exactly the files the archiver
//! wrote (sealed zone files and the runs of an open hour), `dq` plans from it the same files
//! a directory listing finds, a missing or unreadable catalog is rebuilt at start, and
//! `archiver check` names what differs when files are removed or added by hand.
#![allow(unused_crate_dependencies)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use archive_layout::Table;
use archiver::archive_writer::{ArchiveWriter, WriterOptions};
use query::pruning::ScanBounds;

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % HOUR;
const ZONES: [&str; 3] = ["a", "b/c", "global"];

/// Hour 0 sealed (a file per zone and table), hour 1 still in runs (two flushes); returns
/// the rows of the `zone` table (one per frame).
fn write_archive(root: &Path) -> usize {
    let mut w = open_writer(root);
    let mut seq = 0;
    for (from, to) in [(0, HOUR), (HOUR, HOUR + HOUR / 2), (HOUR + HOUR / 2, 2 * HOUR)] {
        for t in (from..to).step_by(60_000_000) {
            for z in ZONES {
                seq += 1;
                w.append("h", &common::cpu_packet(z, T0 + t, seq));
            }
        }
        w.flush().unwrap();
        w.flush().unwrap();
        w.seal_due().unwrap();
    }
    seq as usize
}

/// Opens the writer; a lock still held for an instant by a child another test is spawning
/// (between its fork and exec) is waited for, briefly.
fn open_writer(root: &Path) -> ArchiveWriter {
    for _ in 0..50 {
        match ArchiveWriter::open(root, WriterOptions::default()) {
            Err(archiver::ArchiverError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed locked for a second", root.display());
}

fn archiver(args: &[&str]) -> std::process::Output {
    Command::new(common::binary("archiver")).args(args).output().unwrap()
}

fn check(root: &Path) -> (bool, String) {
    let out = archiver(&["check", "--archive", root.to_str().unwrap()]);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn catalog_dir(root: &Path) -> PathBuf {
    root.join("_archiver").join(catalog::CATALOG_DIR)
}

#[test]
fn dq_plans_from_the_catalog_the_files_a_listing_finds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let frames = write_archive(root);
    let (clean, text) = check(root);
    assert!(clean, "{text}");
    let snapshot = catalog::Snapshot::read(root).unwrap().unwrap();
    let runs = snapshot.entries().filter(|e| e.is_run()).count();
    assert!(runs >= 2 && snapshot.len() > runs, "hour 1 in runs, hour 0 in zone files: {runs} runs of {}", snapshot.len());
    for table in [Table::Zone, Table::Cpu] {
        let t = query::ArchiveTable::new(root, table);
        let mut zone_a = ScanBounds::default();
        zone_a.zones = Some(["a".to_owned()].into());
        let mut hour1 = ScanBounds::default();
        hour1.time_min_us = T0 + HOUR;
        let mut late = ScanBounds::default();
        late.time_min_us = T0 + HOUR - 60_000_000 + 1;
        late.time_max_us = T0 + HOUR - 1;
        for bounds in [ScanBounds::default(), zone_a, hour1, late] {
            let key = |f: query::archive_table::ScanFile| (f.path, f.size, f.sealed_zones);
            let from_catalog: Vec<_> = t.files_from_catalog(&snapshot, &bounds).into_iter().map(key).collect();
            let listed: Vec<_> = t.files_by_listing(&bounds).unwrap().into_iter().map(key).collect();
            // The catalog also prunes by each file's own time range: never more files.
            assert!(listed.iter().all(|f| from_catalog.contains(f) || !from_catalog.iter().any(|c| c.0 == f.0)));
            assert!(from_catalog.iter().all(|f| listed.contains(f)), "{table} {bounds:?}: {from_catalog:?} vs {listed:?}");
            if bounds.time_max_us == i64::MAX {
                assert_eq!(from_catalog, listed, "{table} {bounds:?}");
            }
        }
    }
    let count = |root: &Path| common::dq_rows(root, "SELECT count(*), count(DISTINCT zone), max(time) FROM zone");
    let with_catalog = count(root);
    assert_eq!(with_catalog[0][0], frames.to_string());
    std::fs::remove_dir_all(catalog_dir(root)).unwrap();
    assert_eq!(count(root), with_catalog, "the same answer by listing");
}

#[test]
fn a_missing_or_unreadable_catalog_is_rebuilt_when_the_archiver_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_archive(root);
    let before: Vec<catalog::Entry> = catalog::Snapshot::read(root).unwrap().unwrap().entries().cloned().collect();
    std::fs::remove_dir_all(catalog_dir(root)).unwrap();
    let (clean, text) = check(root);
    assert!(!clean && text.contains("no catalog"), "{text}");
    drop(open_writer(root));
    let rebuilt: Vec<catalog::Entry> = catalog::Snapshot::read(root).unwrap().unwrap().entries().cloned().collect();
    assert_eq!(rebuilt, before, "built from the footers: the same entries the archiver recorded");
    // A checkpoint damaged by hand: dq lists directories meanwhile, the next start rebuilds.
    let checkpoint = std::fs::read_dir(catalog_dir(root))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("checkpoint-") && p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    // (Its index no longer matches its length: dq does not trust it.)
    std::fs::write(&checkpoint, "{\"catalog\":1}\nnot json\n").unwrap();
    assert!(catalog::Snapshot::read(root).is_err());
    assert_eq!(
        common::dq_rows(root, "SELECT count(*) FROM cpu")[0][0],
        (2 * before.iter().filter(|e| e.table == "zone").map(|e| e.rows).sum::<u64>()).to_string()
    );
    drop(open_writer(root));
    let (clean, text) = check(root);
    assert!(clean, "{text}");
}

#[test]
fn check_names_files_removed_or_added_by_hand_and_dq_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let frames = write_archive(root);
    let snapshot = catalog::Snapshot::read(root).unwrap().unwrap();
    let removed = snapshot.entries().find(|e| e.table == "zone" && e.zone.as_deref() == Some("a")).unwrap().clone();
    std::fs::remove_file(root.join(&removed.path)).unwrap();
    let (clean, text) = check(root);
    assert!(!clean, "{text}");
    assert!(text.contains(&format!("missing: the catalog names {}", removed.path)), "{text}");
    // dq meets the vanished file, plans again, and ends by listing: the rows that are left.
    let left = frames - removed.rows as usize;
    assert_eq!(common::dq_rows(root, "SELECT count(*) FROM zone WHERE ticks >= 0")[0][0], left.to_string());
    // A bare count is answered from the catalog, which still names the file (the limit
    // docs/operations.md states): until a rebuild.
    assert_eq!(common::dq_rows(root, "SELECT count(*) FROM zone")[0][0], frames.to_string());
    // A file copied in by hand (a restore, say): unlisted until a rebuild.
    let other = snapshot.entries().find(|e| e.table == "zone" && e.zone.as_deref() == Some("global") && !e.is_run()).unwrap();
    let copy = root.join(other.path.replace("global", "restored"));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(root.join(&other.path), &copy).unwrap();
    let (_, text) = check(root);
    assert!(text.contains("unlisted: zone/zone=restored/"), "{text}");
    let out = archiver(&["check", "--rebuild", "--archive", root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("entries match the files"));
    assert_eq!(common::dq_rows(root, "SELECT count(*) FROM zone")[0][0], (left + other.rows as usize).to_string());
}

#[test]
fn a_rebuild_waits_for_no_archiver() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_archive(root);
    let _running = open_writer(root);
    let out = archiver(&["check", "--rebuild", "--archive", root.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock"), "{}", String::from_utf8_lossy(&out.stderr));
    // A plain check reads only: it runs beside the archiver.
    let (clean, text) = check(root);
    assert!(clean, "{text}");
}

#[test]
fn latest_sample_per_zone_is_answered_from_the_catalog_as_a_scan_answers_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_archive(root);
    let q = "SELECT zone, max(time) AS last, min(time) AS first, count(*) AS n FROM cpu GROUP BY zone ORDER BY zone";
    let explain = common::dq_rows(root, &format!("EXPLAIN {q}")).concat().join("\n");
    assert!(explain.contains("Values:") && !explain.contains("file_groups"), "{explain}");
    let answered = common::dq_rows(root, q);
    assert_eq!(answered.len(), ZONES.len());
    // A filter every row passes keeps the scan: the same answer from the rows.
    let scanned_q = q.replace("FROM cpu", "FROM cpu WHERE usage >= 0");
    let explain = common::dq_rows(root, &format!("EXPLAIN {scanned_q}")).concat().join("\n");
    assert!(explain.contains("file_groups") && !explain.contains("Values:"), "{explain}");
    assert_eq!(common::dq_rows(root, &scanned_q), answered);
    let whole = "SELECT max(time), count(*) FROM zone";
    let answered_whole = common::dq_rows(root, whole);
    std::fs::remove_dir_all(catalog_dir(root)).unwrap();
    assert_eq!(common::dq_rows(root, q), answered, "by listing and scanning");
    assert_eq!(common::dq_rows(root, whole), answered_whole);
}

#[test]
fn the_catalogs_column_statistics_skip_files_without_opening_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_archive(root);
    // usage is seq % 5000 on core 0: only the newest rows (seq > ~360) reach 400; hour 0's
    // sealed files (seq <= 180) cannot, and their statistics say so.
    let q = "SELECT zone, count(*) AS n, max(usage) AS top FROM cpu WHERE usage >= 400 GROUP BY zone ORDER BY zone";
    let with_catalog = common::dq_rows(root, q);
    // With the value indexes, the catalog's summaries skip them before DataFusion plans;
    // without, DataFusion's statistics do.
    let indexed = common::dq_rows(root, &format!("EXPLAIN ANALYZE {q}")).concat().join(" ");
    assert!(indexed.contains("ValueIndexExec: files_judged=3  skipped=3"), "{indexed}");
    let out = common::dq(root, &["--value-indexes", "off", "--format", "csv", &format!("EXPLAIN ANALYZE {q}")]);
    let analyzed = String::from_utf8_lossy(&out.stdout).replace(',', " ");
    // "files_ranges_pruned_statistics=TOTAL total → MATCHED matched"
    let metric =
        analyzed.split("files_ranges_pruned_statistics=").nth(1).unwrap_or_else(|| panic!("no pruning metric in {analyzed}"));
    let numbers: Vec<u64> =
        metric.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).take(2).map(|n| n.parse().unwrap()).collect();
    let pruned = numbers[0] - numbers[1];
    assert!(pruned >= 3, "hour 0's three cpu files are pruned by their statistics: {analyzed}");
    std::fs::remove_dir_all(catalog_dir(root)).unwrap();
    assert_eq!(common::dq_rows(root, q), with_catalog, "the same answer by listing");
}

#[test]
fn a_view_over_an_archive_table_answers_as_the_table_does() {
    // A statement's catalog read is narrowed to the tables its plan scans: a view's scans
    // must be among them (or the view would see no file).
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_archive(root);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session = query::ArchiveSession::open(root).unwrap();
        let count = |batches: &[datafusion::arrow::array::RecordBatch]| batches[0].column(0).as_primitive::<Int64Type>().value(0);
        let (_, direct) = session.sql("SELECT count(*) FROM cpu WHERE usage >= 0").await.unwrap();
        session.sql("CREATE VIEW busy AS SELECT * FROM cpu WHERE usage >= 0").await.unwrap();
        let (_, through_view) = session.sql("SELECT count(*) FROM busy").await.unwrap();
        assert!(count(&direct) > 0);
        assert_eq!(count(&through_view), count(&direct));
    });
}

//! An archive written by the archiver of format version 1 (main at 9b2f4dc, before writer
//! ids, the format file and long zone names) still reads, and today's archiver writes on
//! into it without hiding or merging the old files. The fixture in
//! `tests/fixtures/archive-v1/` was written by that build (`tests/fixtures/make-archive-v1.sh`
//! records how); `expected.csv` holds what that build's `dq` answered on it.
#![allow(unused_crate_dependencies)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/archive-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `table,count,sum of a column` lines as the version 1 `dq` printed them.
fn expected() -> Vec<(String, String, String)> {
    std::fs::read_to_string(fixture().join("../archive-v1-expected.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

const CHECKS: [(&str, &str); 4] = [("zone", "ticks"), ("cpu", "usage"), ("mem", "rss"), ("process", "usage")];

fn answers(archive: &Path) -> Vec<(String, String, String)> {
    CHECKS
        .iter()
        .map(|(table, col)| {
            let rows = dq_rows(archive, &format!("SELECT count(*), sum({col}) FROM {table}"));
            (table.to_string(), rows[0][0].clone(), rows[0][1].clone())
        })
        .collect()
}

#[test]
fn a_version_1_archive_reads_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    copy_dir(&fixture(), &archive);
    assert!(!archive.join(archive_layout::format::FORMAT_FILE).exists(), "version 1 has no format file");
    assert_eq!(archive_layout::format::read_format_version(&archive).unwrap(), 1);
    assert_eq!(answers(&archive), expected());
}

#[test]
fn todays_archiver_writes_on_into_a_version_1_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    copy_dir(&fixture(), &archive);
    let old_files = parquet_files(&archive);
    let before: Vec<(String, u64)> = expected().iter().map(|(t, n, _)| (t.clone(), n.parse().unwrap())).collect();

    // Replay its log (empty), then archive 30 more simulated seconds into the same hours.
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut archiver = KillOnDrop(start_archiver(
        &archive,
        std::slice::from_ref(&endpoint),
        &["--flush-interval", "1", "--stats-interval", "1"],
    ));
    let mut generator = KillOnDrop(
        std::process::Command::new(binary("generator"))
            .args([
                "--source",
                "synthetic",
                "-p",
                &port.to_string(),
                "--zones",
                "2",
                "--cores",
                "2",
                "--processes",
                "3",
                "--seed",
                "7",
            ])
            .args(["--simulate-from", "2025-11-24T10:00:30Z", "--count", "30", "--wait-subscribers", "1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_exit(&mut generator, Duration::from_secs(60), "generator").success());
    wait_for(Duration::from_secs(30), "60 frames accepted", || status(&archive).filter(|s| s["frames_accepted"] == 60));
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());

    assert_eq!(archive_layout::format::read_format_version(&archive).unwrap(), archive_layout::format::FORMAT_VERSION);
    // The old files are all still there (another writer's files are never merged or hidden)...
    for f in &old_files {
        assert!(f.exists(), "{} was removed", f.display());
    }
    // ...and the new ones carry this writer's id.
    let new: Vec<PathBuf> = parquet_files(&archive).into_iter().filter(|f| !old_files.contains(f)).collect();
    assert!(!new.is_empty());
    for f in &new {
        let id = archive_layout::FileId::parse_file_name(f.file_name().unwrap().to_str().unwrap()).unwrap();
        assert_ne!(id.writer, archive_layout::WriterId::LEGACY, "{}", f.display());
    }
    // Every old row is read once beside the new ones (the fixture ends before 10:00:30).
    for (table, n) in before {
        let old: u64 = dq_rows(&archive, &format!("SELECT count(*) FROM {table} WHERE time < '2025-11-24T10:00:30Z'"))[0][0]
            .parse()
            .unwrap();
        assert_eq!(old, n, "{table}");
    }
    let zone_rows: u64 = dq_rows(&archive, "SELECT count(*) FROM zone")[0][0].parse().unwrap();
    assert_eq!(zone_rows, expected()[0].1.parse::<u64>().unwrap() + 60);
}

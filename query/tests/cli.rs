//! `dq` as a process: exit codes and one-line errors. (Also makes `cargo test --workspace`
//! build the `dq` binary, which the archiver's integration tests run.)
#![allow(unused_crate_dependencies)]

use std::process::Command;

fn dq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dq")).args(args).output().expect("run dq")
}

#[test]
fn missing_archive_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dq(&["--archive", dir.path().join("nope").to_str().unwrap(), "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn empty_archive_has_every_table_and_parquet_needs_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().to_str().unwrap();
    let out = dq(&[
        "--archive",
        archive,
        "--format",
        "csv",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().skip(1).map(str::to_owned).collect();
    let mut want: Vec<String> = Vec::new();
    for t in [
        "callfreq",
        "cpu",
        "cpuqueue",
        "disk",
        "mem",
        "net",
        "process",
        "zone",
        "cpu_time",
        "pressure",
        "memory",
        "io",
        "link",
        "system",
        "filesystem",
    ] {
        want.extend([t.to_owned(), format!("{t}_1h"), format!("{t}_1m")]);
    }
    want.extend(["zonename".to_owned(), "frame".to_owned(), "zone_info".to_owned()]);
    want.sort();
    assert_eq!(names, want, "every table and its rollups (none for zonename, frame, zone_info)");
    let out = dq(&["--archive", archive, "--format", "parquet", "SELECT 1"]);
    assert!(!out.status.success());
    let file = dir.path().join("x.parquet");
    let out = dq(&["--archive", archive, "--format", "parquet", "-o", file.to_str().unwrap(), "SELECT * FROM cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&file).unwrap().starts_with(b"PAR1"));
}

#[test]
fn relative_archive_path_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let file = archive.join("cpu/zone=global/date=2025-11-24/hour=16/0000000000000001-0000000000000001.parquet");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    // Export an empty cpu table through dq itself, then place it as an archive file.
    let out = dq(&[
        "--archive",
        dir.path().to_str().unwrap(),
        "--format",
        "parquet",
        "-o",
        file.to_str().unwrap(),
        "SELECT * FROM cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The default archive is `./archive`: a relative path must work.
    let out = Command::new(env!("CARGO_BIN_EXE_dq"))
        .current_dir(dir.path())
        .args(["--format", "csv", "SELECT count(*) FROM cpu WHERE zone = 'global'"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().nth(1), Some("0"));
}

#[test]
fn an_archive_of_a_newer_format_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("_archive.json"), "{\"format\": \"zonestat-archive\", \"version\": 99}").unwrap();
    let out = dq(&["--archive", dir.path().to_str().unwrap(), "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("version 99 is newer"), "{err}");
}

#[test]
fn value_indexes_take_on_or_off_and_refuse_anything_else_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().to_str().unwrap();
    for bad in ["yes", "", "ON"] {
        let out = dq(&["--archive", archive, "--value-indexes", bad, "SELECT 1"]);
        assert!(!out.status.success(), "--value-indexes {bad:?} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--value-indexes"), "{bad:?}: the error names the flag");
    }
    for good in ["on", "off"] {
        let out = dq(&["--archive", archive, "--value-indexes", good, "SELECT 1 AS one"]);
        assert!(out.status.success(), "{good}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

//! Nothing accepted is lost: SIGKILL at random moments, write failures under a file-size
//! limit, hostile input, and `dq` reading while the archiver writes. Real processes, real
//! sockets on 127.0.0.1, real files; every loop is bounded.
#![allow(unused_crate_dependencies)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prost::Message;

/// (zone, sample time µs) of every frame the archiver's audit log says it accepted.
fn audited(path: &Path) -> BTreeSet<(String, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // A line cut short by SIGKILL mid-write is ignored (its frame may still be in
            // the archive: the archive may hold more than the audit, never less).
            (f.len() == 4).then(|| Some((f[1].to_owned(), f[3].parse().ok()?))).flatten()
        })
        .collect()
}

/// (zone, time µs) of every row of the `zone` table, with duplicates counted.
fn archived(archive: &Path) -> (BTreeSet<(String, i64)>, usize) {
    let rows = dq_rows(archive, "SELECT zone, CAST(time AS BIGINT) FROM zone");
    let n = rows.len();
    let set = rows.into_iter().map(|r| (r[0].clone(), r[1].parse::<i64>().unwrap())).collect();
    (set, n)
}

/// A generator whose simulated clock runs at `pace` times real time (300: an hour every
/// 12 s), so that periods end and are sealed while the test runs.
fn start_paced_generator(port: u16, pace: u32) -> Child {
    let pace = pace.to_string();
    Command::new(binary("generator"))
        .args(["--source", "synthetic", "-p", &port.to_string(), "--zones", "3", "--cores", "4", "--processes", "5"])
        .args(["--simulate-from", "2025-11-24T00:00:00Z", "--pace", &pace])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SplitMix64 for reproducible "random" kill moments.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    const ROUNDS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let audit = dir.path().join("audit.tsv");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let generator = KillOnDrop(start_paced_generator(port, 300));
    // Tiny flush and segment limits: many flushes and rotations, so kills land in every
    // phase (append, write, commit, rename, log removal, compaction).
    let flags = ["--flush-interval", "1", "--max-buffered-rows", "3000", "--stats-interval", "1", "--wal-segment-bytes", "65536"];
    let mut seed = 0x5eed_u64;
    let mut killed_with_data = 0;
    for round in 0..ROUNDS {
        let mut args: Vec<&str> = flags.to_vec();
        let audit_str = audit.to_str().unwrap().to_owned();
        args.extend(["--audit-log", &audit_str]);
        let mut archiver = KillOnDrop(start_archiver(&archive, std::slice::from_ref(&endpoint), &args));
        let lifetime = Duration::from_millis(300 + next(&mut seed) % 1500);
        std::thread::sleep(lifetime);
        archiver.kill().unwrap(); // SIGKILL
        archiver.wait().unwrap();
        // Killed with accepted frames only in the log (not yet published): what replay is for.
        let logged: u64 = std::fs::read_dir(archive.join("_archiver/wal"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".wal")))
            .filter_map(|e| e.metadata().ok().map(|m| m.len()))
            .sum();
        if logged > 0 {
            killed_with_data += 1;
        }
        eprintln!("round {round}: killed after {lifetime:?}");
    }
    let (accepted, rows) = clean_run_then_check_exactly_once(&archive, &endpoint, &flags, &audit, generator);
    eprintln!(
        "{ROUNDS} SIGKILL rounds ({killed_with_data} with unpublished frames in the log): {accepted} frames accepted, {rows} rows"
    );
    assert!(accepted > 1000, "the test must actually move data: {accepted}");
    assert!(killed_with_data >= ROUNDS / 2, "most kills must hit unpublished frames in the log: {killed_with_data} of {ROUNDS}");
}

#[test]
fn a_real_crash_at_each_named_step_loses_and_duplicates_nothing() {
    // Each round runs the archiver with `--crash-at STEP` until it aborts there (a real
    // process crash: no unwinding, no clean-up), and the next round's start recovers from
    // it. Recovery and replay steps are reached because the round before left work.
    let steps = [
        "flush-temp-written",
        "replay-buffered",
        "flush-committed",
        "recovery-journal-found",
        "flush-renamed",
        "flush-log-trimmed",
        "seal-intent-written",
        "seal-zone-published",
        "seal-runs-removed",
        "flush-journal-written",
        "flush-batches-ready",
    ];
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let audit = dir.path().join("audit.tsv");
    let audit_str = audit.to_str().unwrap().to_owned();
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let generator = KillOnDrop(start_paced_generator(port, 300));
    let flags = ["--flush-interval", "1", "--stats-interval", "1", "--wal-segment-bytes", "65536"];
    for step in steps {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["--audit-log", &audit_str, "--crash-at", step]);
        let mut archiver = KillOnDrop(start_archiver(&archive, std::slice::from_ref(&endpoint), &args));
        let exit = wait_exit(&mut archiver, Duration::from_secs(30), &format!("archiver crashing at {step}"));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit.signal(), Some(6), "{step}: expected an abort, got {exit:?}");
    }
    let (accepted, rows) = clean_run_then_check_exactly_once(&archive, &endpoint, &flags, &audit, generator);
    eprintln!("{} named crashes: {accepted} frames accepted, {rows} rows", steps.len());
    assert!(accepted > 500, "the test must move data: {accepted}");
}

/// A last, clean run after crashes (replay, more frames, SIGTERM), then: every frame the
/// audit log accepted is stored exactly once, nothing half-written is left, and the tables
/// agree. Returns (frames accepted, rows of the zone table).
fn clean_run_then_check_exactly_once(
    archive: &Path,
    endpoint: &str,
    flags: &[&str],
    audit: &Path,
    mut generator: KillOnDrop,
) -> (usize, usize) {
    let mut args: Vec<&str> = flags.to_vec();
    let audit_str = audit.to_str().unwrap().to_owned();
    args.extend(["--audit-log", &audit_str]);
    let mut archiver = KillOnDrop(start_archiver(archive, &[endpoint.to_owned()], &args));
    std::thread::sleep(Duration::from_millis(1500));
    generator.kill().unwrap();
    generator.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());

    let accepted = audited(audit);
    let (stored, rows) = archived(archive);
    assert_eq!(rows, stored.len(), "duplicate rows in the archive");
    let lost: Vec<_> = accepted.difference(&stored).take(5).collect();
    assert!(lost.is_empty(), "{} accepted frames missing, e.g. {lost:?}", accepted.difference(&stored).count());
    // Nothing half-written is left: no temporary files, no journal, no compaction intent.
    let leftovers: Vec<_> = walk(archive).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!archive.join("_archiver/flush.journal").exists() && !archive.join("_archiver/compaction.intent").exists());
    // Every table is readable and consistent with the zone table (4 cores per frame).
    assert_eq!(dq_rows(archive, "SELECT count(*) FROM cpu"), vec![vec![(rows * 4).to_string()]]);
    (accepted.len(), rows)
}

#[test]
fn write_failures_publish_nothing_half_written_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    // Files may not exceed 48 KiB: log segments (16 KiB) fit, the Parquet files of a flush
    // holding 1,200 frames do not.
    let mut archiver = KillOnDrop(
        Command::new("prlimit")
            .arg("--fsize=49152:unlimited")
            .arg("--")
            .arg(binary("archiver"))
            .arg("--archive")
            .arg(&archive)
            .args(["--connect", &endpoint, "--flush-interval", "1", "--stats-interval", "1", "--wal-segment-bytes", "16384"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut generator = KillOnDrop(
        Command::new(binary("generator"))
            .args(["--source", "synthetic", "-p", &port.to_string(), "--zones", "1", "--cores", "16", "--processes", "40"])
            .args(["--simulate-from", "2025-11-24T10:00:00Z", "--count", "1200", "--wait-subscribers", "1"])
            .spawn()
            .unwrap(),
    );
    assert!(wait_exit(&mut generator, Duration::from_secs(60), "generator").success());
    let s = wait_for(Duration::from_secs(60), "frames accepted and a failed publish", || {
        status(&archive).filter(|s| s["frames_accepted"] == 1200 && s["publish_errors"].as_u64() >= Some(2))
    });
    assert_eq!(s["files_flushed"], 0, "nothing published while every flush fails: {s}");
    assert!(s["buffered_rows"].as_u64().unwrap() > 0);
    // No temporary or half-written file is left behind, and readers see an empty archive.
    let tmp: Vec<_> =
        walk(&archive).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp") && !p.ends_with("status.json.tmp")).collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    assert!(parquet_files(&archive).is_empty());
    assert_eq!(dq_rows(&archive, "SELECT count(*) FROM process"), vec![vec!["0".to_owned()]]);

    // Room again: lift the limit on the running process; it catches up by itself.
    let lifted = Command::new("prlimit").args(["--pid", &archiver.id().to_string(), "--fsize=unlimited"]).status().unwrap();
    assert!(lifted.success());
    wait_for(Duration::from_secs(60), "the archiver to catch up", || {
        status(&archive).filter(|s| s["buffered_rows"] == 0 && s["files_flushed"].as_u64() > Some(0))
    });
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());
    assert_eq!(dq_rows(&archive, "SELECT count(*) FROM zone"), vec![vec!["1200".to_owned()]]);
    assert_eq!(dq_rows(&archive, "SELECT count(*) FROM process"), vec![vec!["48000".to_owned()]]);
}

#[test]
fn hostile_frames_are_counted_and_names_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::XPUB).unwrap();
    // Let ZeroMQ pick the port: no window in which another test can take it.
    publisher.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = publisher.get_last_endpoint().unwrap().unwrap();
    let mut archiver = KillOnDrop(start_archiver(
        &archive,
        std::slice::from_ref(&endpoint),
        &["--flush-interval", "3600", "--stats-interval", "1"],
    ));
    // Wait for the subscription before sending.
    assert!(publisher.poll(zmq::POLLIN, 20_000).unwrap() > 0, "archiver did not subscribe");
    let _ = publisher.recv_bytes(0).unwrap();

    // Real and hostile names, up to the 4 KiB limit: a Kubernetes container's cgroup path
    // (systemd driver), names whose escaped form passes 255 bytes, `~` (the bounded form's mark).
    let k8s = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
    let names: Vec<String> = vec![
        "..".into(),
        ".".into(),
        "a/b".into(),
        "../../etc/passwd".into(),
        "x\0y".into(),
        "tab\there\nnewline".into(),
        "é☃ zone".into(),
        "%2F".into(),
        "zone=x".into(),
        "n".repeat(128),
        k8s.into(),
        format!("{k8s}/sub"),
        "é".repeat(512),
        "%/".repeat(300),
        "x".repeat(4096),
        format!("a~{}", "0".repeat(32)),
    ];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let frame = |name: &str, time: u64| {
        frame_proto::Packet { name: name.into(), time, host: Some("evil/../host".into()), threads: Some(1), ..Default::default() }
            .encode_to_vec()
    };
    for name in &names {
        publisher.send(frame(name, now), 0).unwrap();
    }
    let good = frame("ok", now);
    publisher.send(&good[..good.len() / 2], 0).unwrap(); // truncated
    publisher.send(&b"\xff\xff\xff\xff garbage"[..], 0).unwrap();
    publisher.send(&b""[..], 0).unwrap();
    publisher.send(frame(&"n".repeat(4097), now), 0).unwrap(); // name too long
    publisher.send(frame("future", now + 10 * 86_400), 0).unwrap();
    publisher.send(frame("ancient", 1000), 0).unwrap();
    let mut many = frame_proto::Packet { name: "huge".into(), time: now, ..Default::default() };
    many.cpu = vec![Default::default(); 5000];
    publisher.send(many.encode_to_vec(), 0).unwrap();
    publisher.send(vec![0u8; 5 << 20], 0).unwrap(); // over the 4 MiB limit

    let s = wait_for(Duration::from_secs(30), "every frame handled", || {
        status(&archive).filter(|s| {
            let rejected: u64 =
                s["frames_rejected"].as_object().map(|o| o.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0);
            s["frames_accepted"].as_u64() == Some(names.len() as u64) && rejected == 8
        })
    });
    let r = &s["frames_rejected"];
    assert_eq!(
        (r["bad_zone_name"].as_u64(), r["time_out_of_range"].as_u64(), r["too_many_entries"].as_u64(), r["too_large"].as_u64()),
        (Some(1), Some(2), Some(1), Some(1))
    );
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());

    // Everything stayed inside the archive directory...
    let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("archive")]);
    for p in walk(&archive) {
        assert!(p.starts_with(&archive));
    }
    // ...and every name comes back unchanged through dq.
    let out = dq(&archive, &["--format", "json", "SELECT DISTINCT zone, host FROM zone"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: BTreeSet<String> = rows.iter().map(|r| r["zone"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, names.iter().cloned().collect::<BTreeSet<_>>());
    assert!(rows.iter().all(|r| r["host"] == "evil/../host"));
    // Zone pruning works on escaped names too (a NUL cannot be passed in a command line; the
    // NUL name came back through the query above).
    for name in [
        "a/b".to_owned(),
        "..".into(),
        "é☃ zone".into(),
        "%2F".into(),
        k8s.into(),
        "é".repeat(512),
        "%/".repeat(300),
        "x".repeat(4096),
    ] {
        let out = dq(
            &archive,
            &["--format", "json", &format!("SELECT count(*) AS n, max(length(zone)) AS len FROM zone WHERE zone = '{name}'")],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["n"], 1, "{name:?}");
        assert_eq!(v[0]["len"], name.chars().count(), "the zone column holds the whole name");
    }
    // No directory name passes the file system's 255-byte limit (it could not have been
    // created), and the long names got the bounded form.
    let bounded = walk(&archive)
        .iter()
        .filter(|p| p.parent() == Some(archive.join("zone").as_path()))
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|n| n.starts_with("zone=") && archive_layout::is_bounded_zone_dir_value(&n[5..]))
        .count();
    let too_long =
        names.iter().filter(|n| archive_layout::escape_partition_value(n).len() > archive_layout::MAX_ZONE_DIR_VALUE).count();
    assert!(too_long >= 3, "é x512, %/ x300 and x x4096 at least");
    assert_eq!(bounded, too_long, "every name too long for a directory takes the bounded form");
}

#[test]
fn dq_reads_while_the_archiver_writes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut generator = KillOnDrop(start_paced_generator(port, 300));
    let mut archiver = KillOnDrop(start_archiver(
        &archive,
        std::slice::from_ref(&endpoint),
        &["--flush-interval", "1", "--stats-interval", "1"],
    ));
    wait_for(Duration::from_secs(30), "the archiver's first status", || status(&archive));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0u64;
    let mut queries = 0;
    let compactions = |a: &Path| status(a).and_then(|s| s["compactions"].as_u64()).unwrap_or(0);
    while Instant::now() < deadline && queries < 500 && (queries < 20 || compactions(&archive) < 3) {
        // A scan (the filter keeps every row), then the count the catalog answers alone:
        // neither may go back.
        for sql in ["SELECT count(*) FROM cpu WHERE usage >= 0", "SELECT count(*) FROM cpu"] {
            let out = dq(&archive, &["--format", "csv", sql]);
            assert!(out.status.success(), "query {queries} failed: {}", String::from_utf8_lossy(&out.stderr));
            let n: u64 = String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().parse().unwrap();
            assert!(n >= last, "{sql}: count went back from {last} to {n}: a row was seen twice or lost");
            last = n;
        }
        queries += 1;
    }
    let s = status(&archive).unwrap();
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());
    generator.kill().unwrap();
    generator.wait().unwrap();
    eprintln!("{queries} queries while writing; last count {last}; compactions {}", s["compactions"]);
    assert!(last > 0 && queries >= 5);
    assert!(s["compactions"].as_u64() > Some(0), "compactions must have run during the queries: {s}");
}

//! The container and host tables end to end on this machine (the archiver's embedded Linux
//! source, real `/proc`), read back by `dq` and by the DuckDB CLI; and the 2013 listener's
//! flags (`-a ADDR -p PORT -v -d N`) against a real generator on loopback.
#![allow(unused_crate_dependencies)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn count(archive: &std::path::Path, sql: &str) -> u64 {
    let rows = dq_rows(archive, sql);
    rows[0][0].parse().unwrap_or_else(|_| panic!("{sql}: {rows:?}"))
}

#[test]
fn this_machine_into_the_container_and_host_tables() {
    if !std::path::Path::new("/proc/self/mountinfo").exists() {
        return; // not Linux
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let mut archiver = KillOnDrop(
        Command::new(binary("archiver"))
            .args(["-D", archive.to_str().unwrap(), "--source", "linux", "--interval", "200"])
            .args(["--flush-interval", "1", "--stats-interval", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Every cgroup holding processes is a zone too: count the host's frames.
    wait_for(Duration::from_secs(60), "ten samples of global published", || {
        let published = status(&archive)?["files_flushed"].as_u64()? > 0;
        (published && count(&archive, "SELECT count(*) FROM zone WHERE zone = 'global'") >= 10).then_some(())
    });
    terminate(&archiver);
    let exit = wait_exit(&mut archiver, Duration::from_secs(60), "archiver after SIGTERM");
    assert!(exit.success(), "archiver: {exit}");

    let samples = count(&archive, "SELECT count(*) FROM zone WHERE zone = 'global'");
    assert!(samples >= 10, "{samples}");
    for (table, sql) in [
        ("system", "SELECT count(*) FROM system WHERE zone = 'global' AND load1_milli IS NOT NULL AND fds_used > 0"),
        ("memory", "SELECT count(*) FROM memory WHERE zone = 'global' AND usage > 0 AND working_set <= usage"),
        ("cpu_time", "SELECT count(*) FROM cpu_time WHERE zone = 'global' AND user_us > 0"),
        ("link", "SELECT count(*) FROM link WHERE zone = 'global' AND instance = 'lo' AND netns IS NOT NULL"),
    ] {
        assert_eq!(count(&archive, sql), samples, "{table}: one row a sample");
    }
    if std::path::Path::new("/proc/pressure/cpu").exists() {
        let rows = dq_rows(&archive, "SELECT resource, count(*) FROM pressure WHERE zone = 'global' GROUP BY 1 ORDER BY 1");
        assert_eq!(
            rows,
            [["cpu", &samples.to_string()], ["io", &samples.to_string()], ["memory", &samples.to_string()]],
            "host pressure, live"
        );
        // Stall time only grows.
        let drops = count(
            &archive,
            "SELECT count(*) FROM (SELECT some_us - lag(some_us) OVER (PARTITION BY resource ORDER BY time) AS d FROM pressure) WHERE d < 0",
        );
        assert_eq!(drops, 0);
    }
    // A zone sharing the host's (the generator's) network namespace reports no links: the
    // host's counters are counted once. (Here pid 1's namespace link cannot be read, and
    // this test's process shares the archiver's namespace.)
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let own: u64 = own.to_str().unwrap().trim_start_matches("net:[").trim_end_matches(']').parse().unwrap();
    let global_links = count(&archive, &format!("SELECT count(*) FROM link WHERE zone = 'global' AND netns = {own}"));
    assert!(global_links > 0 && global_links.is_multiple_of(samples), "{global_links}");
    assert_eq!(count(&archive, &format!("SELECT count(*) FROM link WHERE zone <> 'global' AND netns = {own}")), 0);
    let info = dq_rows(&archive, "SELECT DISTINCT kind, cgroup_path FROM zone_info WHERE zone = 'global'");
    assert_eq!(info, [["host", "/"]], "sent with the first sample");
    // Every zone has its zone_info row, and the join docs/statistics.md gives for rows
    // written under path names finds each zone named by its path.
    let zones = count(&archive, "SELECT count(DISTINCT zone) FROM zone");
    assert_eq!(count(&archive, "SELECT count(DISTINCT zone) FROM zone_info"), zones);
    let by_path = dq_rows(
        &archive,
        "SELECT DISTINCT i.zone, o.zone FROM zone o JOIN (SELECT DISTINCT zone, cgroup_path FROM zone_info) i \
         ON o.zone = substr(i.cgroup_path, 2) ORDER BY 1",
    );
    for row in &by_path {
        assert_eq!(row[0], row[1], "a zone of kind cgroup is named by its path: {by_path:?}");
    }
    let named_by_path = count(&archive, "SELECT count(DISTINCT zone) FROM zone_info WHERE kind = 'cgroup'");
    assert_eq!(by_path.len() as u64, named_by_path, "the join finds every zone named by its path: {by_path:?}");

    // The DuckDB CLI reads the new tables' files as they are.
    let glob = format!("read_parquet('{}/system/**/*.parquet')", archive.display());
    let out = Command::new("duckdb")
        .args(["-csv", "-noheader", "-c", &format!("SELECT count(*), min(procs_running) >= 1 FROM {glob} WHERE zone = 'global'")])
        .output()
        .expect("the DuckDB CLI (PyPI duckdb-cli, installed by .ci/run)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{samples},true"));
}

#[test]
fn the_2013_flags_subscribe_to_a_generator_and_print_frames_and_alive_lines() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let stdout_path = dir.path().join("stdout");
    let mut archiver = KillOnDrop(
        Command::new(binary("archiver"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-v", "-d", "10", "-D", archive.to_str().unwrap()])
            .args(["--stats-interval", "1"])
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut generator = KillOnDrop(
        Command::new(binary("generator"))
            .args(["--source", "synthetic", "-p", &port.to_string(), "--zones", "2", "--cores", "2", "--processes", "2"])
            .args(["--simulate-from", "2025-11-30T10:00:00Z", "--count", "25", "--wait-subscribers", "1"])
            .args(["--wait-timeout-ms", "20000"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_exit(&mut generator, Duration::from_secs(60), "generator").success());
    wait_for(Duration::from_secs(60), "50 frames accepted", || {
        status(&archive).filter(|s| s["frames_accepted"] == 50).map(|_| ())
    });
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());
    let printed = std::fs::read_to_string(&stdout_path).unwrap();
    let frames = printed.lines().filter(|l| l.starts_with("Packet {")).count();
    let alive: Vec<&str> = printed.lines().filter(|l| l.starts_with("ALIVE ")).collect();
    assert_eq!(frames, 50, "-v: every frame");
    assert_eq!(alive.len(), 5, "-d 10: one line every 10 frames: {alive:?}");
    assert!(alive[4].starts_with("ALIVE 50 frames"), "{alive:?}");
    assert_eq!(count(&archive, "SELECT count(*) FROM zone"), 50, "archived as with --connect");
}

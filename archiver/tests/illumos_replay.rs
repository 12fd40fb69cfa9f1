//! The illumos source end to end, on Linux: `generator --source illumos --illumos-replay`
//! replays kstat and DTrace snapshots (`illumos_stats/tests/fixtures/global`: composed in the
//! format a real host is recorded in, not recorded on one) and turns them into
//! frames, publishes them on loopback, the archiver stores them, and `dq` reads back what the
//! illumos-specific logic decided (which zone a link belongs to, run queues, latency buckets).
#![allow(unused_crate_dependencies)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

const UUID: &str = "f2d1a7b0-6c1e-4d0a-9b7e-3c1f5e9a2b11";
const SECONDS: u64 = 6;

#[test]
fn replayed_illumos_snapshots_reach_the_archive() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../illumos_stats/tests/fixtures/global");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");

    let mut archiver = KillOnDrop(start_archiver(&archive, std::slice::from_ref(&endpoint), &["--stats-interval", "1"]));
    let mut generator = KillOnDrop(
        Command::new(binary("generator"))
            .args(["--source", "illumos", "--illumos-replay"])
            .arg(&fixtures)
            .args(["-p", &port.to_string(), "--host", "smartos-a", "--simulate-from", "2025-11-24T10:00:00Z"])
            .args(["--count", &SECONDS.to_string(), "--wait-subscribers", "1", "--wait-timeout-ms", "20000"])
            .spawn()
            .unwrap(),
    );
    let gen_status = wait_exit(&mut generator, Duration::from_secs(60), "generator");
    assert!(gen_status.success(), "generator: {gen_status}");
    wait_for(Duration::from_secs(60), "the archiver to accept every frame", || {
        status(&archive).filter(|s| s["frames_accepted"] == SECONDS * 3).map(|_| ())
    });
    terminate(&archiver);
    assert!(wait_exit(&mut archiver, Duration::from_secs(60), "archiver").success());

    let rows = dq_rows(&archive, "SELECT zone, count(*), min(processes), max(ticks) FROM zone GROUP BY zone ORDER BY zone");
    assert_eq!(
        rows,
        [
            vec!["db".to_string(), SECONDS.to_string(), "12".into(), "4999".into()],
            vec![UUID.to_string(), SECONDS.to_string(), "37".into(), "4999".into()],
            vec!["global".to_string(), SECONDS.to_string(), "143".into(), "4999".into()],
        ]
    );
    let rows = dq_rows(&archive, "SELECT zone, instance FROM net GROUP BY zone, instance ORDER BY zone");
    assert_eq!(
        rows,
        [
            vec!["db".to_string(), "z5_net0".into()],
            vec![UUID.to_string(), "z3_net0".into()],
            vec!["global".into(), "ixgbe0".into()]
        ]
    );
    // Two snapshots replayed alternately: read latencies 50+20+1 and 51+20+1 per interval.
    let rows =
        dq_rows(&archive, "SELECT sum(value), count(DISTINCT bucket_ns) FROM callfreq WHERE zone = 'db' AND name = 'read'");
    assert_eq!(rows, [vec!["429".to_string(), "3".into()]]);
    let rows = dq_rows(&archive, "SELECT count(*), sum(amount) FROM cpuqueue WHERE zone = 'global' AND core = 0");
    assert_eq!(rows, [vec![(2 * SECONDS).to_string(), (SECONDS * (4000 + 999)).to_string()]]);
    let rows = dq_rows(&archive, "SELECT count(*) FROM mem WHERE physmem IS NOT NULL AND zone <> 'global'");
    assert_eq!(rows, [vec!["0".to_string()]]);
    let rows = dq_rows(&archive, "SELECT DISTINCT host FROM cpu");
    assert_eq!(rows, [vec!["smartos-a".to_string()]]);
}

//! Shared helpers of the integration tests: locating the three binaries, free loopback
//! ports, bounded waits, and running `dq`.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of a workspace binary. `archiver` is this package's own; `generator` and `dq`
/// sit beside it: `cargo test --workspace` builds them (their packages have integration
/// tests of their own). Building them from here could deadlock on cargo's lock.
pub fn binary(name: &str) -> PathBuf {
    let archiver = PathBuf::from(env!("CARGO_BIN_EXE_archiver"));
    if name == "archiver" {
        return archiver;
    }
    let path = archiver.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is not built: run `cargo test --workspace` (or `cargo build --workspace` first)", path.display());
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Waits until `check` returns `Some`, polling every 50 ms, at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child to exit, killing it after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to a child.
pub fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

/// Starts the archiver on `archive`, subscribed to `endpoints`, with extra flags.
pub fn start_archiver(archive: &Path, endpoints: &[String], extra: &[&str]) -> Child {
    let mut cmd = Command::new(binary("archiver"));
    cmd.arg("--archive").arg(archive);
    for e in endpoints {
        cmd.args(["--connect", e]);
    }
    cmd.args(extra).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::inherit());
    cmd.spawn().expect("start archiver")
}

/// The archiver's status file, parsed, if present.
pub fn status(archive: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(archive.join("_archiver/status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Runs `dq` and returns its output.
pub fn dq(archive: &Path, args: &[&str]) -> Output {
    Command::new(binary("dq")).arg("--archive").arg(archive).args(args).output().expect("run dq")
}

/// Runs `dq --format csv SQL` and returns the data rows (header dropped), failing loudly.
pub fn dq_rows(archive: &Path, sql: &str) -> Vec<Vec<String>> {
    let out = dq(archive, &["--format", "csv", sql]);
    assert!(out.status.success(), "dq {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8").lines().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

/// Every file and directory under `dir`.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

/// Every published Parquet file under `dir`.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A child process killed when the test ends, even by a panic: no test leaves processes.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A frame of `zone` at `t` (µs) from host `h`: two cores (core 0's usage `seq % 5000`,
/// core 1's 7), ticks 100.
pub fn cpu_packet(zone: &str, t: i64, seq: u64) -> frame_proto::Packet {
    use frame_proto::packet::Cpu;
    frame_proto::Packet {
        name: zone.into(),
        time: (t / 1_000_000) as u64,
        time_us: Some(t as u64),
        host: Some("h".into()),
        seq: Some(seq),
        run_id: Some(1),
        ticks: Some(100),
        cpu: vec![Cpu { core: Some(0), usage: Some(seq as u32 % 5000) }, Cpu { core: Some(1), usage: Some(7) }],
        ..Default::default()
    }
}

/// Feeds `writer` the frames `packet(zone, time, seq)` of `zones`, one every `step_us` of
/// each hour in `hours` (counted from `start_us`), flushing twice and sealing after each
/// hour as the service does; returns the last sequence number used.
pub fn write_hours(
    writer: &mut archiver::archive_writer::ArchiveWriter,
    hours: std::ops::Range<i64>,
    zones: &[&str],
    (start_us, step_us): (i64, i64),
    packet: impl Fn(&str, i64, u64) -> frame_proto::Packet,
) -> u64 {
    const HOUR: i64 = 3_600_000_000;
    let mut seq = 0;
    for h in hours {
        for s in 0..(HOUR / step_us) {
            for z in zones {
                seq += 1;
                writer.append("h", &packet(z, start_us + h * HOUR + s * step_us, seq));
            }
        }
        writer.flush().unwrap();
        writer.flush().unwrap();
        writer.seal_due().unwrap();
    }
    seq
}

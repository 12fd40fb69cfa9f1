//! Coverage-guided fuzzing of the write-ahead log's record reader, `wal::next_record`
//! (`wal/src/lib.rs`), which replays segment files after a crash: their bytes may be torn,
//! corrupt or arbitrary.
//!
//! Checks:
//! - on arbitrary bytes, reading records until `None` never panics, `pos` strictly increases
//!   across the calls that return a record, ends at exactly `data.len()`, the loop makes at
//!   most `data.len() + 1` calls, and at most one torn tail is counted;
//! - a valid segment built from the input with `wal::encode_record` (the input split into
//!   1..=4 records) reads back identically with zero damage;
//! - the same valid segment followed by the arbitrary input still yields those records first,
//!   identically (a bad tail never changes the records before it).
//!
//! Run (from `fuzz/`, needs `cargo install cargo-fuzz` and a nightly toolchain):
//! `cargo +nightly fuzz run wal_records -- -max_len=4096 -rss_limit_mb=2048 -timeout=10`
#![no_main]

use libfuzzer_sys::fuzz_target;
use wal::{ReplayDamage, WalRecord, encode_record, next_record};

fuzz_target!(|data: &[u8]| {
    read_all(data);

    let records = records_from(data);
    let mut segment = Vec::new();
    for r in &records {
        encode_record(&mut segment, r.recv_us, &r.endpoint_host, &r.frame);
    }
    let (got, damage) = read_all(&segment);
    assert_eq!(got, records, "valid records did not read back identically");
    assert_eq!(damage, ReplayDamage::default(), "damage reported on a valid segment");

    segment.extend_from_slice(data);
    let (got, _) = read_all(&segment);
    assert!(got.len() >= records.len(), "a tail hid valid records before it");
    assert_eq!(got[..records.len()], records[..], "a tail changed valid records before it");
});

/// Reads every record of `data`, checking the reader's progress guarantees.
fn read_all(data: &[u8]) -> (Vec<WalRecord>, ReplayDamage) {
    let (mut pos, mut damage, mut out) = (0usize, ReplayDamage::default(), Vec::new());
    let mut calls = 0usize;
    let mut last: Option<usize> = None;
    loop {
        calls += 1;
        assert!(calls <= data.len() + 1, "{calls} calls on {} bytes", data.len());
        let Some(record) = next_record(data, &mut pos, &mut damage, 7) else { break };
        assert!(pos <= data.len(), "pos {pos} past the end ({})", data.len());
        if let Some(last) = last {
            assert!(pos > last, "pos went from {last} to {pos}");
        }
        assert!(pos > 0);
        last = Some(pos);
        out.push(record);
    }
    assert_eq!(pos, data.len(), "reader stopped before the end");
    assert!(damage.torn_tails <= 1, "{} torn tails in one segment", damage.torn_tails);
    (out, damage)
}

/// Splits the input into 1..=4 records: byte 0 picks the count, each chunk gives a host
/// (length from its first byte, lossily UTF-8), a receive time and the frame bytes.
fn records_from(data: &[u8]) -> Vec<WalRecord> {
    let Some((&control, rest)) = data.split_first() else { return Vec::new() };
    let n = usize::from(control % 4) + 1;
    let size = rest.len().div_ceil(n).max(1);
    let mut out: Vec<WalRecord> = rest
        .chunks(size)
        .map(|chunk| {
            let host_len = usize::from(chunk[0] % 32).min(chunk.len());
            let (host, frame) = chunk.split_at(host_len);
            let mut t = [0u8; 8];
            let k = frame.len().min(8);
            t[..k].copy_from_slice(&frame[..k]);
            WalRecord {
                recv_us: i64::from_le_bytes(t),
                endpoint_host: String::from_utf8_lossy(host).into_owned(),
                frame: frame.to_vec(),
            }
        })
        .collect();
    if out.is_empty() {
        // A one-byte input: one empty record (no host, no frame) is valid too.
        out.push(WalRecord { recv_us: i64::from(control), endpoint_host: String::new(), frame: Vec::new() });
    }
    out
}

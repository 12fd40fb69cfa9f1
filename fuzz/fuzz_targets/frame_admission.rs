//! Coverage-guided fuzzing of what an untrusted sender reaches first: bytes from the socket
//! -> `FrameDecoder` -> `Admission::admit` (`proto/src/admission.rs`).
//!
//! Checks, for any input:
//! - `FrameDecoder::default().decode` and `Admission::admit` never panic;
//! - an admitted frame obeys the documented rules: zone name 1..=`MAX_ZONE_NAME` bytes and
//!   unchanged; sample time between 2000-01-01 and one day after the clock; at most 4,096
//!   cores, links, disks and run-queue entries, 10,000 processes and zone names, 1,024
//!   latency buckets; every zone list entry at most `MAX_ZONE_NAME` bytes and every other
//!   string (host, link instance, disk instance, execname, bucket name) at most `MAX_STRING`
//!   bytes, each kept whole when within its limit, else cut to a prefix at a character
//!   boundary; the host is `Some`, non-empty, and is the endpoint's (`"fuzz"`) exactly when
//!   the frame had none or an empty one;
//! - admission is idempotent: the admitted frame, re-encoded with prost and admitted again,
//!   comes back equal.
//!
//! Run (from `fuzz/`, needs `cargo install cargo-fuzz` and a nightly toolchain):
//! `cargo +nightly fuzz run frame_admission -- -max_len=4096 -rss_limit_mb=2048 -timeout=10`
#![no_main]

use frame_proto::admission::{Admission, MAX_STRING, MAX_ZONE_NAME};
use frame_proto::{FrameDecoder, Packet};
use libfuzzer_sys::fuzz_target;
use prost::Message;

const ENDPOINT_HOST: &str = "fuzz";
const NOW_US: i64 = 1_764_000_000_000_000;
const MIN_TIME_US: i64 = 946_684_800_000_000; // 2000-01-01T00:00:00Z
const MAX_AHEAD_US: i64 = 86_400_000_000;

fuzz_target!(|data: &[u8]| {
    let decoded = FrameDecoder::default().decode(data);
    let admission = Admission::new(1 << 20);
    let Ok(packet) = admission.admit(data, ENDPOINT_HOST, NOW_US) else { return };
    let raw = decoded.expect("admit accepted a frame the default decoder refuses");
    check_rules(&raw, &packet);

    let again = admission
        .admit(&packet.encode_to_vec(), ENDPOINT_HOST, NOW_US)
        .unwrap_or_else(|r| panic!("re-encoded admitted frame refused: {r:?}"));
    assert_eq!(again, packet, "admission is not idempotent");
});

/// `out` is what admission made of `raw` (the same bytes, decoded without the rules).
fn check_rules(raw: &Packet, out: &Packet) {
    assert!((1..=MAX_ZONE_NAME).contains(&out.name.len()), "zone name of {} bytes", out.name.len());
    assert_eq!(out.name, raw.name, "the zone name is never altered");

    let t = out.sample_time_us();
    assert!((MIN_TIME_US..=NOW_US + MAX_AHEAD_US).contains(&t), "sample time {t} out of range");

    assert!(out.cpu.len() <= 4096, "{} cores", out.cpu.len());
    assert!(out.net.len() <= 4096, "{} net links", out.net.len());
    assert!(out.disk.len() <= 4096, "{} disks", out.disk.len());
    assert!(out.cpuqueue.len() <= 4096, "{} run-queue entries", out.cpuqueue.len());
    assert!(out.process.len() <= 10_000, "{} processes", out.process.len());
    assert!(out.zonename.len() <= 10_000, "{} zone names", out.zonename.len());
    assert!(out.callfreq.len() <= 1024, "{} latency buckets", out.callfreq.len());

    let host = out.host.as_deref().expect("admitted frame without a host");
    assert!(!host.is_empty(), "admitted frame with an empty host");
    match raw.host.as_deref() {
        Some(h) if !h.is_empty() => clamped(h, host, MAX_STRING, "host"),
        _ => assert_eq!(host, ENDPOINT_HOST, "frame without a host must get the endpoint's"),
    }

    assert_eq!(out.net.len(), raw.net.len());
    for (r, o) in raw.net.iter().zip(&out.net) {
        match (&r.instance, &o.instance) {
            (Some(r), Some(o)) => clamped(r, o, MAX_STRING, "net instance"),
            (None, None) => {}
            other => panic!("net instance presence changed: {other:?}"),
        }
    }
    assert_eq!(out.disk.len(), raw.disk.len());
    for (r, o) in raw.disk.iter().zip(&out.disk) {
        clamped(&r.instance, &o.instance, MAX_STRING, "disk instance");
    }
    assert_eq!(out.process.len(), raw.process.len());
    for (r, o) in raw.process.iter().zip(&out.process) {
        match (&r.execname, &o.execname) {
            (Some(r), Some(o)) => clamped(r, o, MAX_STRING, "execname"),
            (None, None) => {}
            other => panic!("execname presence changed: {other:?}"),
        }
    }
    assert_eq!(out.callfreq.len(), raw.callfreq.len());
    for (r, o) in raw.callfreq.iter().zip(&out.callfreq) {
        clamped(&r.name, &o.name, MAX_STRING, "callfreq name");
    }
    assert_eq!(out.zonename.len(), raw.zonename.len());
    for (r, o) in raw.zonename.iter().zip(&out.zonename) {
        clamped(r, o, MAX_ZONE_NAME, "zonename entry");
    }
}

/// `out` is `raw` kept whole if it fits in `max` bytes, else cut to the longest prefix of at
/// most `max` bytes that ends on a character boundary.
fn clamped(raw: &str, out: &str, max: usize, what: &str) {
    assert!(out.len() <= max, "{what} of {} bytes (limit {max})", out.len());
    if raw.len() <= max {
        assert_eq!(out, raw, "{what} within the limit was altered");
    } else {
        assert!(raw.starts_with(out), "{what} is not a prefix of the original");
        assert!(out.len() + 4 > max, "{what} cut to {} bytes, more than one character short of {max}", out.len());
    }
}

//! Coverage-guided fuzzing of the ingest path an untrusted sender reaches: bytes -> admission
//! (decode + rules) -> Arrow rows -> finished batches. Any input must end as a frame or a
//! rejection, never a panic.
//!
//! Run: `cargo install cargo-fuzz && cd archiver/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run frame_to_rows`
#![no_main]

use archiver::admission::Admission;
use archiver::rows::ZoneRows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let admission = Admission::new(1 << 20);
    if let Ok(packet) = admission.admit(data, "fuzz", 1_764_000_000_000_000) {
        let mut rows = ZoneRows::default();
        rows.append(&packet, packet.sample_time_us());
        let batches = rows.finish("fuzz", &packet.name).expect("finishing rows of an admitted frame");
        for (table, batch) in batches {
            assert_eq!(batch.schema(), table.schema());
        }
    }
});

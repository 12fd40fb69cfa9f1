//! Exactly once at every step: the writer is stopped at each named stage of flushing,
//! sealing, recovering and replaying (`WriteStep`), once with an injected I/O error and
//! once with a crash (a panic from the step hook: no error handler runs, nothing is cleaned
//! up, the process's files stay as a killed process leaves them), then run on (after the
//! error) or reopened (after the crash) until every frame is fed and a clean shutdown is
//! done (the steps of day and month compaction included). After every flush, what `dq` reads (runs and zone files, with the coverage rule)
//! never holds a row twice, and holds every accepted row once nothing is buffered. At the
//! end every accepted frame must be in the archive exactly once, as `dq` reads it and as a
//! plain glob over every `*.parquet` file of the table sees it, and no temporary file,
//! journal, intent or run may be left. Real files in a temporary directory; no sockets.
#![allow(unused_crate_dependencies)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use archive_layout::listing::list_table;
use archive_layout::{Granularity, Table};
use archiver::admission::Admission;
use archiver::archive_writer::{ArchiveWriter, WriterOptions};
use archiver::parquet_file::read_file;
use archiver::service::{Ingest, replay_log};
use archiver::write_step::{StepHook, WriteStep};
use common::walk;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use frame_proto::Packet;
use prost::Message;

const NOW: i64 = 1_764_000_000_000_000;
/// The wall-clock time the frames are received at: after the last batch's samples (the
/// next month), which admission would refuse as too far ahead of an earlier clock.
const RECEIVED: i64 = NOW + 8 * 86_400_000_000;

/// Crashes that left a seal half done when `dq_view` looked (the coverage rule was needed).
static SEAL_CRASHES_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
const HOUR: i64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Fail,
    Crash,
    /// Let the step pass (to reach a later occurrence of it).
    Pass,
}

/// Fires each (step, action) once, in order.
#[derive(Debug)]
struct Triggers(Mutex<VecDeque<(WriteStep, Action)>>);

impl StepHook for Triggers {
    fn at(&self, step: WriteStep) -> std::io::Result<()> {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.front().is_some_and(|(s, _)| *s == step) {
            let (_, action) = list.pop_front().unwrap_or((step, Action::Fail));
            drop(list);
            match action {
                Action::Fail => return Err(std::io::Error::other(format!("injected failure at {step:?}"))),
                Action::Crash => std::panic::panic_any(format!("injected crash at {step:?}")),
                Action::Pass => {}
            }
        }
        Ok(())
    }
}

impl Triggers {
    fn pending(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn frame(zone: &str, t: i64, seq: u64) -> Vec<u8> {
    common::cpu_packet(zone, t, seq).encode_to_vec()
}

/// Six batches: two in hour 0, two in hour 1 (whose arrival seals hour 0), then late rows
/// of hour 0 (so hour 0 is sealed again, merging its sealed files), then rows of the next
/// month's first day (which seal hour 1 and make the first day, then its month, due for
/// compaction: the test's writer compacts days and months as soon as they end and deletes
/// retired files at once); three zones, one a 1 KiB name.
fn batches() -> Vec<Vec<(usize, Vec<u8>)>> {
    let zones = ["a".to_owned(), "b/c".to_owned(), "k".repeat(1024)];
    let start = Granularity::Hour.period_start(NOW) - 3 * HOUR;
    let mut seq = 0;
    (0..6)
        .map(|b| {
            let mut out = Vec::new();
            for i in 0..5 {
                let t = match b {
                    4 => start + 1_200_000_000 + i * 10_000_000, // late: hour 0, after it was sealed
                    5 => Granularity::Month.period_end(Granularity::Month.period_start(NOW)) + i * 10_000_000, // the next month
                    _ => start + (b / 2) * HOUR + (b % 2) * 600_000_000 + i * 10_000_000,
                };
                for z in &zones {
                    out.push((0, frame(z, t, seq)));
                    seq += 1;
                }
            }
            out
        })
        .collect()
}

fn options(hook: &Arc<Triggers>) -> WriterOptions {
    WriterOptions {
        wal_segment_bytes: 4096,
        fsync: wal::FsyncPolicy::Never,
        step_hook: Some(Arc::clone(hook) as Arc<dyn StepHook + Sync>),
        compact_days_after: Some(std::time::Duration::ZERO),
        compact_months_after: Some(std::time::Duration::ZERO),
        retire_grace: std::time::Duration::ZERO,
        ..WriterOptions::default()
    }
}

/// Opens the writer and replays its log, as the service does at start; a failed or crashed
/// start is retried (a bounded number of times).
fn start(root: &Path, hook: &Arc<Triggers>) -> Ingest {
    let mut locked = 0;
    let mut attempts = 0;
    while attempts < 6 {
        attempts += 1;
        let started = catch_unwind(AssertUnwindSafe(|| {
            let writer = ArchiveWriter::open(root, options(hook))?;
            let mut ingest = Ingest::new(writer, Admission::new(1 << 20), vec!["tcp://test:1".into()]);
            replay_log(&mut ingest)?;
            Ok::<_, archiver::ArchiverError>(ingest)
        }));
        match started {
            Ok(Ok(ingest)) => return ingest,
            // Another test of this binary spawning a process (dq) holds the lock for an
            // instant between its fork and exec: not a failed start.
            Ok(Err(archiver::ArchiverError::Locked(_))) if locked < 50 => {
                locked += 1;
                attempts -= 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {}
        }
    }
    panic!("the archiver could not start six times in a row");
}

/// Runs one flush (or the shutdown flush): `true` when it crashed.
fn flush(ingest: &mut Ingest, everything: bool) -> bool {
    match catch_unwind(AssertUnwindSafe(|| ingest.flush(everything))) {
        Ok(result) => {
            assert!(!matches!(result, Err(archiver::ArchiverError::Poisoned(_))), "{result:?}");
            false
        }
        Err(_) => true,
    }
}

/// Feeds every batch through a writer stopped as `triggers` say; returns the archive root.
fn run(dir: &Path, triggers: Vec<(WriteStep, Action)>) -> (PathBuf, Arc<Triggers>) {
    let root = dir.join("archive");
    let hook = Arc::new(Triggers(Mutex::new(triggers.into())));
    let mut ingest = start(&root, &hook);
    let mut accepted = BTreeMap::new();
    for batch in batches() {
        ingest.accept_batch(&batch, RECEIVED);
        for (_, bytes) in &batch {
            let p = Packet::decode(bytes.as_slice()).unwrap();
            accepted.insert((p.name.clone(), p.sample_time_us()), 1);
        }
        assert_eq!(ingest.stats().log_failures, 0);
        if flush(&mut ingest, false) {
            drop(ingest); // the crashed process is gone; its files stay as they are
            // A crash inside a seal (every row was flushed before it began): some zones in
            // their partitions, the runs still there. dq reads each row once all the same.
            if root.join("_archiver/seal.intent").exists() {
                assert_eq!(dq_view(&root), accepted, "what dq reads in the middle of a crashed seal");
                // And dq itself: its plan filters the sealed zones out of the runs, whatever
                // the query projects.
                let n = accepted.len().to_string();
                assert_eq!(common::dq_rows(&root, "SELECT count(*) FROM zone"), vec![vec![n.clone()]]);
                assert_eq!(common::dq_rows(&root, "SELECT count(time) FROM zone"), vec![vec![n]]);
                let per_zone = common::dq_rows(&root, "SELECT count(DISTINCT zone), max(length(zone)) FROM zone");
                assert_eq!(per_zone, vec![vec!["3".to_owned(), "1024".to_owned()]]);
                SEAL_CRASHES_SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            ingest = start(&root, &hook);
            catalog_matches_files(&root, "after recovery");
        }
        if ["flush.journal", "seal.intent", "day.intent"].iter().all(|f| !root.join("_archiver").join(f).exists()) {
            catalog_matches_files(&root, "after a flush that left nothing to finish");
        }
        let seen = dq_view(&root);
        assert!(seen.values().all(|n| *n == 1), "a row twice in what dq reads: {:?}", seen.iter().find(|(_, n)| **n > 1));
        // Once nothing is buffered and no committed flush waits for its renames.
        if ingest.writer_mut().buffered_rows() == 0 && !root.join("_archiver/flush.journal").exists() {
            assert_same_rows(&seen, &accepted, "every accepted row, once, in what dq reads");
        }
    }
    // Shutdown: publish everything, retrying as the service does.
    for _ in 0..4 {
        if flush(&mut ingest, true) {
            drop(ingest);
            ingest = start(&root, &hook);
            continue;
        }
        if ingest.writer_mut().buffered_rows() == 0 {
            break;
        }
    }
    assert!(ingest.flush(true).is_ok());
    drop(ingest);
    // The next start finds nothing to do.
    let mut ingest = start(&root, &hook);
    assert_eq!(ingest.stats().replayed, 0, "nothing left in the log after a clean shutdown");
    assert!(ingest.flush(true).is_ok());
    (root, hook)
}

/// Asserts two (zone, time) -> rows maps are equal, naming (shortly) what differs.
fn assert_same_rows(got: &BTreeMap<(String, i64), usize>, want: &BTreeMap<(String, i64), usize>, what: &str) {
    if got == want {
        return;
    }
    let short = |((z, t), n): (&(String, i64), &usize)| (z.chars().take(8).collect::<String>(), *t, *n);
    let extra: Vec<_> = got.iter().filter(|(k, n)| want.get(*k) != Some(*n)).map(short).take(5).collect();
    let missing: Vec<_> = want.iter().filter(|(k, n)| got.get(*k) != Some(*n)).map(short).take(5).collect();
    panic!("{what}: {} entries against {}; got but not wanted {extra:?}; wanted but not got {missing:?}", got.len(), want.len());
}

/// The catalog names exactly the files there are, with what their footers say.
fn catalog_matches_files(root: &Path, when: &str) {
    let differences = catalog::check(root).unwrap().expect("the archive has a catalog");
    assert!(differences.is_empty(), "{when}: the catalog differs from the files: {differences:?}");
    // Every value index there describes its data file; none is left without one.
    let sides = archiver::side_files::check_side_files(root).unwrap();
    assert!(
        sides.unreadable.is_empty() && sides.stale.is_empty() && sides.orphans.is_empty(),
        "{when}: value indexes: {sides:?}"
    );
}

/// (zone, time) -> rows in the `zone` table as `dq` reads it: live zone files and runs,
/// without the rows of zones a run is sealed for.
fn dq_view(root: &Path) -> BTreeMap<(String, i64), usize> {
    dq_view_skipping(root, None)
}

/// [`dq_view`] leaving out the file `skip`.
fn dq_view_skipping(root: &Path, skip: Option<&Path>) -> BTreeMap<(String, i64), usize> {
    let table = query::ArchiveTable::new(root, Table::Zone);
    let mut out = BTreeMap::new();
    for f in table.files(&query::pruning::ScanBounds::default()).unwrap().into_iter().filter(|f| Some(f.path.as_path()) != skip) {
        for b in read_file(&f.path).unwrap() {
            let times = b.column(0).as_primitive::<TimestampMicrosecondType>();
            let zones = b.column(2).as_string::<i32>();
            for i in 0..b.num_rows() {
                if !f.sealed_zones.iter().any(|z| z == zones.value(i)) {
                    *out.entry((zones.value(i).to_owned(), times.value(i))).or_default() += 1;
                }
            }
        }
    }
    out
}

/// (zone, time) -> rows in the `zone` table, over the files `dq` reads (live) or over every
/// published file (what a plain glob reads).
fn stored(root: &Path, live_only: bool) -> BTreeMap<(String, i64), usize> {
    let files: Vec<PathBuf> = if live_only {
        list_table(root, Table::Zone, |_| true, |_| true).unwrap().into_iter().map(|f| f.path).collect()
    } else {
        walk(root)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet") && p.starts_with(root.join("zone")))
            .collect()
    };
    let mut out = BTreeMap::new();
    for f in files {
        for b in read_file(&f).unwrap() {
            let times = b.column(0).as_primitive::<TimestampMicrosecondType>();
            let zones = b.column(2).as_string::<i32>();
            for i in 0..b.num_rows() {
                *out.entry((zones.value(i).to_owned(), times.value(i))).or_default() += 1;
            }
        }
    }
    out
}

fn expected() -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for batch in batches() {
        for (_, bytes) in batch {
            let p = Packet::decode(bytes.as_slice()).unwrap();
            out.insert((p.name.clone(), p.sample_time_us()), 1);
        }
    }
    out
}

fn check(root: &Path, what: &str) {
    let want = expected();
    assert_eq!(stored(root, true), want, "{what}: live files");
    assert_eq!(dq_view(root), want, "{what}: what dq reads");
    assert_eq!(stored(root, false), want, "{what}: every published file");
    let cpu_rows: usize = list_table(root, Table::Cpu, |_| true, |_| true)
        .unwrap()
        .iter()
        .map(|f| read_file(&f.path).unwrap().iter().map(|b| b.num_rows()).sum::<usize>())
        .sum();
    assert_eq!(cpu_rows, 2 * want.len(), "{what}: cpu rows");
    let litter: Vec<PathBuf> = walk(root)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".tmp")
                || name == "flush.journal"
                || name == "compaction.intent"
                || name == "seal.intent"
                || name == "rejected.wal"
        })
        .collect();
    let runs: Vec<_> = Table::ALL.into_iter().flat_map(|t| archive_layout::list_runs(root, t, |_, _| true).unwrap()).collect();
    assert!(runs.is_empty(), "{what}: runs left after shutdown: {runs:?}");
    catalog_matches_files(root, what);
    assert!(litter.is_empty(), "{what}: left behind {litter:?}");
}

#[test]
fn undisturbed_run_stores_every_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = run(dir.path(), vec![]);
    check(&root, "undisturbed");
    // The first day, over, was compacted, then its month: one month file per zone and
    // table, the hour and day files deleted (the test's grace period is 0) and their
    // directories with them.
    let month = list_table(&root, Table::Cpu, |_| true, |d| d.granularity != Granularity::Hour).unwrap();
    assert!(month.len() == 3 && month.iter().all(|f| f.dir.granularity == Granularity::Month), "{month:?}");
    let day0: Vec<PathBuf> = walk(&root).into_iter().filter(|p| p.to_string_lossy().contains("date=2025-11-24")).collect();
    assert!(day0.is_empty(), "{day0:?}");
    // The next month's hour: one file per zone, sealed at shutdown.
    let next = list_table(&root, Table::Cpu, |_| true, |d| d.granularity != Granularity::Month).unwrap();
    assert!(next.len() == 3 && next.iter().all(|f| f.dir.granularity == Granularity::Hour), "{next:?}");
}

#[test]
fn sealing_zone_by_zone_under_a_tiny_budget_stores_every_frame_once() {
    // A seal budget of one byte: every zone is a group of its own, each reading the runs.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let hook = Arc::new(Triggers(Mutex::new(VecDeque::new())));
    let writer = ArchiveWriter::open(&root, WriterOptions { seal_budget_bytes: 1, ..options(&hook) }).unwrap();
    let mut ingest = Ingest::new(writer, Admission::new(1 << 20), vec!["tcp://test:1".into()]);
    for batch in batches() {
        ingest.accept_batch(&batch, RECEIVED);
        ingest.flush(false).unwrap();
    }
    ingest.flush(true).unwrap();
    assert!(ingest.writer_mut().stats().files_sealed >= 6, "{:?}", ingest.writer_mut().stats());
    drop(ingest);
    check(&root, "tiny seal budget");
}

#[test]
fn a_crash_after_any_zone_of_any_seal_leaves_no_superseded_file() {
    // Crash right after the k-th zone file a seal publishes, for every k, re-seals of the
    // late hour included (where the zone's earlier file is superseded and must go).
    let mut k = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let mut triggers = vec![(WriteStep::SealZonePublished, Action::Pass); k];
        triggers.push((WriteStep::SealZonePublished, Action::Crash));
        let (root, hook) = run(dir.path(), triggers);
        if hook.pending() > 0 {
            assert!(k > 6, "the re-seal was reached: {k} zone files published in all");
            break;
        }
        check(&root, &format!("crash after seal publish {k}"));
        k += 1;
    }
}

/// Stops the writer at every step with `action`, each in a fresh archive.
fn at_every_step(action: Action) {
    for step in WriteStep::ALL {
        let dir = tempfile::tempdir().unwrap();
        // Start-only steps need something to recover: a crash after a commit leaves a
        // journal, a crash before it leaves rows in the log.
        let triggers = match step {
            WriteStep::RecoveryJournalFound => vec![(WriteStep::FlushCommitted, Action::Crash), (step, action)],
            WriteStep::ReplayBuffered => vec![(WriteStep::FlushJournalWritten, Action::Crash), (step, action)],
            _ => vec![(step, action)],
        };
        let (root, hook) = run(dir.path(), triggers);
        assert_eq!(hook.pending(), 0, "{step:?} was never reached");
        check(&root, &format!("{action:?} at {step:?}"));
    }
}

#[test]
fn an_error_at_any_step_stores_every_frame_once() {
    at_every_step(Action::Fail);
}

#[test]
fn a_crash_at_any_step_stores_every_frame_once() {
    at_every_step(Action::Crash);
    assert!(SEAL_CRASHES_SEEN.load(std::sync::atomic::Ordering::Relaxed) > 0, "no crash left a seal half done");
}

#[test]
fn a_replayed_frame_no_longer_admitted_is_kept_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let hook = Arc::new(Triggers(Mutex::new(VecDeque::new())));
    let mut ingest = start(&root, &hook);
    ingest.accept_batch(&batches()[0], RECEIVED);
    drop(ingest); // crash with the batch only in the log
    // The next run has a lower size limit: every logged frame is now too large.
    let writer = ArchiveWriter::open(&root, options(&hook)).unwrap();
    let mut ingest = Ingest::new(writer, Admission::new(8), vec!["tcp://test:1".into()]);
    replay_log(&mut ingest).unwrap();
    let kept = wal::WalReader::rejected(&root.join("_archiver/wal")).unwrap();
    assert_eq!(kept.len(), batches()[0].len(), "every refused record is kept");
    assert_eq!(ingest.writer_mut().stats().replay_rejected, kept.len() as u64);
    assert_eq!(kept[0].frame, batches()[0][0].1);
    assert_eq!(ingest.stats().replayed, 0);
}

#[test]
fn state_files_the_archiver_never_writes_stop_the_start_naming_the_file() {
    let hook = Arc::new(Triggers(Mutex::new(VecDeque::new())));
    for (file, text) in [
        ("file-seq", "not a number\n"),
        ("writer-id", "00000000\n"),
        ("compaction.intent", "cpu\thour\tnope\n"),
        ("seal.intent", "cpu\thour\t5\n"),
        ("day.intent", "{\"table\":\"cpu\",\"zone\":\"a\",\"start_us\":5}"),
        ("flush.journal", "a\tb\ncommit\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        drop(ArchiveWriter::open(&root, options(&hook)).unwrap());
        std::fs::write(root.join("_archiver").join(file), text).unwrap();
        let err = ArchiveWriter::open(&root, options(&hook)).unwrap_err().to_string();
        assert!(err.contains(file), "{file}: {err}");
    }
    // An archive of a newer format is refused, by the writer as by dq.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    drop(ArchiveWriter::open(&root, options(&hook)).unwrap());
    let newer = format!("{{\"format\": \"zonestat-archive\", \"version\": {}}}", archive_layout::format::FORMAT_VERSION + 1);
    std::fs::write(root.join(archive_layout::format::FORMAT_FILE), newer).unwrap();
    let err = ArchiveWriter::open(&root, options(&hook)).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn failing_flushes_past_the_memory_budget_ask_the_service_to_stop_reading() {
    // Every flush fails at its first temporary file; the rows stay (buffered or pending).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let hook = Arc::new(Triggers(Mutex::new((0..100).map(|_| (WriteStep::FlushTempWritten, Action::Fail)).collect())));
    let options = WriterOptions { max_buffered_bytes: 8 << 10, ..options(&hook) };
    let writer = ArchiveWriter::open(&root, options).unwrap();
    let mut ingest = Ingest::new(writer, Admission::new(1 << 20), vec!["tcp://test:1".into()]);
    let mut saw = (false, false); // (wants a flush, over budget)
    for batch in batches() {
        ingest.accept_batch(&batch, RECEIVED);
        saw.0 |= ingest.writer_mut().wants_flush();
        assert!(ingest.flush(false).is_err(), "every flush fails");
        saw.1 |= ingest.writer_mut().over_budget();
    }
    assert!(saw.0 && saw.1, "{saw:?}: {} bytes held", ingest.writer_mut().buffered_bytes());
    // Once a flush succeeds, the budget is free again and nothing was lost.
    hook.0.lock().unwrap().clear();
    ingest.flush(true).unwrap();
    assert!(!ingest.writer_mut().over_budget() && ingest.writer_mut().buffered_rows() == 0);
    drop(ingest);
    assert_eq!(stored(&root, false), expected());
}

#[test]
fn an_unreadable_run_stops_its_seal_naming_it_and_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let hook = Arc::new(Triggers(Mutex::new(VecDeque::new())));
    let writer = ArchiveWriter::open(&root, options(&hook)).unwrap();
    let id = writer.writer_id();
    let mut ingest = Ingest::new(writer, Admission::new(1 << 20), vec!["tcp://test:1".into()]);
    ingest.accept_batch(&batches()[0], RECEIVED);
    ingest.writer_mut().flush().unwrap();
    // A run of the same table and period that is not Parquet (a damaged disk, say).
    let run = archive_layout::list_runs(&root, Table::Zone, |_, _| true).unwrap().remove(0).run;
    let bad = archive_layout::RunPath { key: run.key, id: archive_layout::FileId::single(id, run.id.lo + 1_000) };
    std::fs::write(bad.absolute_path(&root), b"not parquet").unwrap();
    let err = ingest.writer_mut().seal_all().unwrap_err().to_string();
    assert!(err.contains(&bad.relative_path().display().to_string()), "{err}");
    // Nothing was removed: the good run still holds its rows, and dq reads it.
    assert_eq!(dq_view_skipping(&root, Some(&bad.absolute_path(&root))).len(), batches()[0].len());
}

//! The service loop: receive, admit, buffer; flush and compact on time; log and write the
//! status file; on stop, drain what ZeroMQ already holds, publish everything and exit.
//!
//! Runs on one thread (plus the embedded generator's, when there is no `--connect`): frames
//! are small and the work per frame is a decode and a few appends, so one core goes far,
//! and the archive has a single writer by construction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::admission::{Admission, Rejection, SequenceTracker, endpoint_host};
use std::io::Write;

use crate::archive_writer::{ArchiveWriter, STATE_DIR};
use crate::parquet_file::write_atomically;
use crate::subscriber::Subscriber;
use crate::{ArchiverConfig, ArchiverError};
use wal::WalRecord;

/// The in-process endpoint of the embedded generator.
pub const EMBEDDED_ENDPOINT: &str = "inproc://embedded-generator";

/// Counters of the ingest side.
#[derive(Debug, Default, Clone)]
pub struct IngestStats {
    /// Frames accepted.
    pub frames: u64,
    /// Rows buffered from them.
    pub rows: u64,
    /// Frames rejected, by reason.
    pub rejected: BTreeMap<Rejection, u64>,
    /// Frames admitted but not accepted because the log could not be written.
    pub log_failures: u64,
    /// Frames replayed from the log at start.
    pub replayed: u64,
    /// Lines the audit log could not take.
    pub audit_failures: u64,
    /// Timed fsyncs of the write-ahead log that failed (what they covered may be lost on a
    /// power loss, not on a process crash).
    pub log_sync_failures: u64,
}

/// Ingest state: admission, sequence tracking, the writer.
#[derive(Debug)]
pub struct Ingest {
    admission: Admission,
    writer: ArchiveWriter,
    senders: SequenceTracker,
    stats: IngestStats,
    endpoint_hosts: Vec<String>,
    endpoints: Vec<String>,
    audit: Option<std::fs::File>,
    echo: FrameEcho,
}

/// The 2013 listener's printing: every frame (`-v`) and an `ALIVE` line every N (`-d N`).
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameEcho {
    /// Print each accepted frame.
    pub verbose: bool,
    /// Print `ALIVE` every this many accepted frames.
    pub alive_every: Option<u64>,
    /// Frames received from generators so far (replayed ones not counted).
    pub received: u64,
}

impl FrameEcho {
    fn line(&mut self, packet: &frame_proto::Packet) -> Option<String> {
        self.received += 1;
        let mut out = String::new();
        if self.verbose {
            out.push_str(&format!("{packet:?}\n"));
        }
        let n = self.received;
        if self.alive_every.is_some_and(|every| n.is_multiple_of(every)) {
            out.push_str(&format!("ALIVE {n} frames, last from {} at {}\n", packet.name, packet.time));
        }
        (!out.is_empty()).then_some(out)
    }
}

impl Ingest {
    /// Ingest into `writer` from `endpoints` (index = the subscriber's socket order).
    pub fn new(writer: ArchiveWriter, admission: Admission, endpoints: Vec<String>) -> Self {
        let endpoint_hosts = endpoints.iter().map(|e| endpoint_host(e).to_owned()).collect();
        Self {
            admission,
            writer,
            senders: SequenceTracker::default(),
            stats: IngestStats::default(),
            endpoint_hosts,
            endpoints,
            audit: None,
            echo: FrameEcho::default(),
        }
    }

    /// Prints frames as the 2013 listener's `-v` and `-d N` did.
    pub fn echo_frames(&mut self, echo: FrameEcho) {
        self.echo = echo;
    }

    /// Handles a batch of messages received from endpoints (index, bytes): admits each,
    /// logs the admitted ones to the write-ahead log with one write, and only then buffers
    /// their rows: a frame counts as accepted once it is in the log.
    pub fn accept_batch(&mut self, messages: &[(usize, Vec<u8>)], now_us: i64) {
        let mut admitted = Vec::with_capacity(messages.len());
        for (from, bytes) in messages {
            let endpoint_host = self.endpoint_hosts.get(*from).map_or("unknown", String::as_str);
            match self.admission.admit(bytes, endpoint_host, now_us) {
                Ok(packet) => admitted.push((*from, bytes.as_slice(), packet)),
                Err(reason) => self.reject(*from, reason, bytes.len()),
            }
        }
        let hosts = &self.endpoint_hosts;
        let logged = self
            .writer
            .log(admitted.iter().map(|(from, bytes, _)| (now_us, hosts.get(*from).map_or("unknown", String::as_str), *bytes)));
        let accepted = match logged {
            Ok(n) => n,
            Err(e) => {
                let refused = admitted.len() - e.accepted;
                self.stats.log_failures += refused as u64;
                tracing::error!(error = %e.error, frames = refused, "cannot append to the write-ahead log: frames not accepted");
                e.accepted
            }
        };
        for (_, _, packet) in &admitted[..accepted] {
            if let Some(line) = self.echo.line(packet) {
                use std::io::Write;
                // Standard output closed or full: the frame is archived all the same.
                if let Err(e) = std::io::stdout().lock().write_all(line.as_bytes()) {
                    tracing::debug!(error = %e, "cannot print a frame");
                }
            }
            self.buffer(packet);
        }
    }

    /// Re-buffers a frame from the log of a previous run (accepted then). One that the
    /// admission rules now refuse (they changed between runs) is kept in the log's
    /// `rejected.wal` and counted, never dropped; returns whether it was buffered.
    pub fn replay(&mut self, record: &WalRecord) -> Result<bool, ArchiverError> {
        match self.admission.admit(&record.frame, &record.endpoint_host, record.recv_us) {
            Ok(packet) => {
                self.buffer(&packet);
                Ok(true)
            }
            Err(reason) => {
                tracing::warn!(
                    reason = reason.name(),
                    bytes = record.frame.len(),
                    "a replayed frame is no longer admitted; kept in the log's rejected.wal"
                );
                self.writer.keep_rejected(record)?;
                Ok(false)
            }
        }
    }

    fn buffer(&mut self, packet: &frame_proto::Packet) {
        let host = packet.host.as_deref().unwrap_or("unknown");
        self.senders.observe(host, packet);
        self.stats.rows += self.writer.append(host, packet) as u64;
        self.stats.frames += 1;
        if let Some(audit) = &mut self.audit {
            // For tests and audits: host, zone, sequence number of every accepted frame.
            let line = format!(
                "{}\t{}\t{}\t{}\n",
                host.escape_debug(),
                packet.name.escape_debug(),
                packet.seq.map_or(-1, |s| s as i64),
                packet.sample_time_us()
            );
            if let Err(e) = audit.write_all(line.as_bytes()) {
                self.stats.audit_failures += 1;
                if self.stats.audit_failures <= 10 || self.stats.audit_failures % 1000 == 0 {
                    tracing::error!(error = %e, failures = self.stats.audit_failures, "cannot append to the audit log");
                }
            }
        }
    }

    fn reject(&mut self, from: usize, reason: Rejection, len: usize) {
        let n = self.stats.rejected.entry(reason).or_default();
        *n += 1;
        // Log the first few of each kind, then every 1000th: a hostile sender must not be
        // able to flood the log.
        if *n <= 10 || *n % 1000 == 0 {
            let endpoint = self.endpoints.get(from).map_or("unknown", String::as_str);
            tracing::warn!(endpoint, reason = reason.name(), bytes = len, count = *n, "rejected frame");
        }
    }

    /// Appends every accepted frame's host, zone and sequence number to `path`.
    pub fn set_audit_log(&mut self, path: &Path) -> Result<(), ArchiverError> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|source| ArchiverError::Io {
            what: "open audit log",
            path: path.to_owned(),
            source,
        })?;
        self.audit = Some(file);
        Ok(())
    }

    /// The writer.
    pub fn writer_mut(&mut self) -> &mut ArchiveWriter {
        &mut self.writer
    }

    /// Publishes buffered rows and seals the periods that are due (all, at shutdown). An error is logged and returned;
    /// the next call (or a restart) finishes or retries what it left, and no row is dropped
    /// or published twice. Only [`ArchiverError::Poisoned`] means the writer cannot go on.
    pub fn flush(&mut self, seal_everything: bool) -> Result<(), ArchiverError> {
        let result =
            self.writer.flush().and_then(|_| if seal_everything { self.writer.seal_all() } else { self.writer.seal_due() });
        if let Err(e) = &result {
            tracing::error!(error = %e, unpublished_rows = self.writer.buffered_rows(), "publishing failed; retried at the next flush");
        }
        result.map(|_| ())
    }

    /// The counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// One log line of counters, and the status file.
    pub fn report(&self) {
        let w = self.writer.stats();
        let rejected: u64 = self.stats.rejected.values().sum();
        tracing::info!(
            frames = self.stats.frames,
            rows = self.stats.rows,
            rejected,
            missing = self.senders.missing(),
            buffered_rows = self.writer.buffered_rows(),
            files = w.files_flushed,
            bytes = w.bytes_flushed,
            compactions = w.compactions,
            publish_errors = w.publish_errors,
            "status"
        );
        if let Err(e) = self.write_status() {
            tracing::warn!(error = %e, "cannot write status file");
        }
    }

    /// Writes `_archiver/status.json` (atomically): what an operator or a test checks.
    pub fn write_status(&self) -> Result<(), ArchiverError> {
        let w = self.writer.stats();
        let senders: Vec<serde_json::Value> = self
            .senders
            .senders()
            .map(|(host, s)| {
                serde_json::json!({
                    "host": host, "run_id": s.run_id, "frames": s.frames, "missing": s.missing,
                    "reordered": s.reordered, "restarts": s.restarts,
                })
            })
            .collect();
        let rejected: serde_json::Map<String, serde_json::Value> =
            self.stats.rejected.iter().map(|(r, n)| (r.name().to_owned(), (*n).into())).collect();
        let status = serde_json::json!({
            "time_us": generator::now_us(),
            "endpoints": self.endpoints,
            "frames_accepted": self.stats.frames,
            "rows_accepted": self.stats.rows,
            "frames_rejected": rejected,
            "buffered_rows": self.writer.buffered_rows(),
            "files_flushed": w.files_flushed,
            "rows_flushed": w.rows_flushed,
            "bytes_flushed": w.bytes_flushed,
            "compactions": w.compactions,
            "days_compacted": w.days_compacted,
            "months_compacted": w.months_compacted,
            "publish_errors": w.publish_errors,
            "log_failures": self.stats.log_failures,
            "replayed": self.stats.replayed,
            "replay_rejected": w.replay_rejected,
            "audit_failures": self.stats.audit_failures,
            "log_sync_failures": self.stats.log_sync_failures,
            "senders": senders,
        });
        write_atomically(&status_path(self.writer.root()), status.to_string().as_bytes())
    }
}

/// The frames of one receive batch, copied out of ZeroMQ's messages into buffers that are
/// kept from batch to batch (no allocation per frame once warm; a buffer grown past 64 KiB
/// by a large frame is given back at the next clear).
#[derive(Debug, Default)]
pub struct ReceiveBatch {
    frames: Vec<(usize, Vec<u8>)>,
    len: usize,
}

impl ReceiveBatch {
    /// Adds a frame received from endpoint `from`.
    pub fn push(&mut self, from: usize, bytes: &[u8]) {
        match self.frames.get_mut(self.len) {
            Some((f, buf)) => {
                *f = from;
                buf.clear();
                buf.extend_from_slice(bytes);
            }
            None => self.frames.push((from, bytes.to_vec())),
        }
        self.len += 1;
    }

    /// The frames added since the last clear.
    pub fn frames(&self) -> &[(usize, Vec<u8>)] {
        &self.frames[..self.len]
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        for (_, buf) in &mut self.frames[..self.len] {
            if buf.capacity() > 64 << 10 {
                *buf = Vec::new();
            }
        }
        self.len = 0;
    }
}

/// Where the status file lives.
pub fn status_path(archive: &Path) -> PathBuf {
    archive.join(STATE_DIR).join("status.json")
}

/// Makes a write past the file-size limit (RLIMIT_FSIZE) fail with EFBIG instead of
/// killing the process with SIGXFSZ, so that it is handled like a full disk: logged, kept in
/// the log, retried.
pub fn survive_file_size_limit() -> std::io::Result<()> {
    let seen = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGXFSZ, seen).map(|_| ())
}

/// Runs the archiver until `stop` is set.
pub fn run(config: &ArchiverConfig, stop: &Arc<AtomicBool>) -> Result<(), ArchiverError> {
    let ctx = zmq::Context::new();
    let writer = ArchiveWriter::open(&config.archive, config.writer_options()?)?;
    let (endpoints, mut embedded) = if config.endpoints().is_empty() {
        (vec![EMBEDDED_ENDPOINT.to_owned()], Some(start_embedded_generator(&ctx, config, stop)?))
    } else {
        (config.endpoints(), None)
    };
    // Every frame of a receive batch is held decoded until the batch is logged; the batch,
    // the receive queues, the buffers and a seal share the memory budget.
    let shares = config.memory_shares();
    let receive_batch = shares.receive_batch;
    let subscriber = Subscriber::connect(&ctx, &endpoints, shares.rcvhwm)?;
    tracing::info!(
        budget_mib = config.memory_budget,
        rcvhwm = shares.rcvhwm,
        receive_batch,
        buffered_bytes = shares.buffered_bytes,
        seal_bytes = shares.seal_bytes,
        "memory budget"
    );
    tracing::info!(archive = %config.archive.display(), endpoints = ?endpoints, partition = ?config.partition, "archiving");
    let mut ingest = Ingest::new(writer, Admission::new(config.max_frame_bytes), endpoints);
    ingest.echo_frames(FrameEcho { verbose: config.verbose, alive_every: config.alive_every, received: 0 });
    if let Some(path) = &config.audit_log {
        ingest.set_audit_log(path)?;
    }
    replay_log(&mut ingest)?;
    let mut batch = ReceiveBatch::default();

    let mut next_flush = Instant::now() + config.flush_every();
    let mut flush_failing = false;
    let mut next_stats = Instant::now() + config.stats_every();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = next_flush.min(next_stats).saturating_duration_since(now).min(Duration::from_millis(200));
        if ingest.writer.over_budget() {
            // Flushes are failing and the rows fill the budget: stop reading (ZeroMQ's queues
            // fill, then a live generator drops and a simulated one waits) until one succeeds.
            std::thread::sleep(wait);
        } else {
            subscriber.receive(wait, receive_batch, |from, bytes| batch.push(from, bytes))?;
        }
        if !batch.frames().is_empty() {
            ingest.accept_batch(batch.frames(), generator::now_us());
            batch.clear();
        } else if let Err(e) = ingest.writer.sync_log() {
            ingest.stats.log_sync_failures += 1;
            tracing::error!(error = %e, "cannot fsync the write-ahead log");
        }
        let now = Instant::now();
        // A full buffer flushes at once, unless the last flush failed: then the retry waits
        // for `next_flush` (5 s at most), not one attempt per receive batch.
        if now >= next_flush || (!flush_failing && ingest.writer.wants_flush()) {
            let flushed = ingest.flush(false);
            flush_failing = flushed.is_err();
            if let Err(ArchiverError::Poisoned(why)) = flushed {
                ingest.report();
                return Err(ArchiverError::Poisoned(why));
            }
            // After a failure, retry sooner than a whole interval, but not in a tight loop.
            next_flush =
                now + if flushed.is_ok() { config.flush_every() } else { config.flush_every().min(Duration::from_secs(5)) };
        }
        // The embedded generator only stops when told to; anything else is an error. (Checked
        // in this order: a generator that finished because `stop` was set is seen with it set.)
        if embedded.as_ref().is_some_and(|h| h.is_finished()) && !stop.load(Ordering::Relaxed) {
            if let Some(handle) = embedded.take() {
                join_embedded(handle)?;
            }
            return Err(ArchiverError::EmbeddedGeneratorStopped("the embedded generator stopped by itself".into()));
        }
        if now >= next_stats {
            ingest.report();
            next_stats = now + config.stats_every();
        }
    }

    // Stop: take what ZeroMQ already holds, then publish everything.
    tracing::info!("stopping: draining sockets and publishing buffered rows");
    // Bounded: a generator that keeps sending must not keep the archiver from stopping.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < drain_until
        && subscriber.receive(Duration::from_millis(50), receive_batch, |from, bytes| batch.push(from, bytes))? > 0
    {
        ingest.accept_batch(batch.frames(), generator::now_us());
        batch.clear();
    }
    if let Some(handle) = embedded {
        join_embedded(handle)?;
    }
    let mut attempts = 0;
    while let Err(e) = ingest.flush(true) {
        attempts += 1;
        if attempts >= 3 || matches!(e, ArchiverError::Poisoned(_)) {
            ingest.report();
            let rows = ingest.writer.buffered_rows();
            return Err(if rows == 0 {
                ArchiverError::ShutdownCompaction { last_error: e.to_string() }
            } else {
                ArchiverError::ShutdownPublish { rows, last_error: e.to_string() }
            });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    ingest.report();
    tracing::info!(frames = ingest.stats.frames, rows = ingest.stats.rows, "stopped");
    Ok(())
}

/// Re-buffers what the previous run had accepted but not published, then publishes it.
pub fn replay_log(ingest: &mut Ingest) -> Result<(), ArchiverError> {
    let mut reader = ingest.writer.replay()?;
    let (mut frames, mut rejected) = (0u64, 0u64);
    for record in reader.by_ref() {
        if ingest.replay(&record?)? {
            frames += 1;
        } else {
            rejected += 1;
        }
    }
    if frames + rejected == 0 && reader.damage == wal::ReplayDamage::default() {
        return Ok(());
    }
    ingest.stats.replayed = frames;
    tracing::info!(
        frames,
        rejected,
        torn_tails = reader.damage.torn_tails,
        corrupt_records = reader.damage.corrupt_records,
        "replayed the write-ahead log"
    );
    ingest.writer.replay_buffered()?;
    // Publish now, so that the replayed segments are removed before new frames arrive.
    match ingest.flush(false) {
        Err(e @ ArchiverError::Poisoned(_)) => Err(e),
        Err(_) => {
            tracing::warn!("replayed rows stay buffered until publishing succeeds");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

fn join_embedded(handle: std::thread::JoinHandle<Result<(), generator::GeneratorError>>) -> Result<(), ArchiverError> {
    match handle.join() {
        Ok(result) => Ok(result?),
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(ArchiverError::EmbeddedGeneratorStopped(what.unwrap_or_else(|| "no message".into())))
        }
    }
}

/// Starts the generator's source on a thread, publishing on [`EMBEDDED_ENDPOINT`].
fn start_embedded_generator(
    ctx: &zmq::Context,
    config: &ArchiverConfig,
    stop: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<(), generator::GeneratorError>>, ArchiverError> {
    let mut gen_config = generator::GeneratorConfig::from_args([
        "generator".to_owned(),
        "--source".to_owned(),
        format!("{:?}", config.source).to_lowercase(),
        "--interval".to_owned(),
        config.interval.to_string(),
    ])
    .map_err(|e| ArchiverError::Config(format!("embedded generator: {e}")))?;
    gen_config.zones_of_linux = config.zones_of_linux.clone();
    let mut source = generator::cli::open_source(&gen_config)?;
    let mut publisher = generator::publisher::Publisher::bind(ctx, EMBEDDED_ENDPOINT, generator::publisher::DEFAULT_SNDHWM)?;
    let mut stamp = generator::FrameStamp::new(&gen_config.host_name());
    let schedule = gen_config.schedule();
    let stop = generator::Stop::flag(Arc::clone(stop));
    tracing::info!(source = source.name(), interval_ms = config.interval, "embedded generator started");
    Ok(std::thread::spawn(move || {
        let result = generator::run(source.as_mut(), &mut stamp, &mut publisher, schedule, &stop).map(|_frames| ());
        if let Err(e) = &result {
            tracing::error!(error = %e, "embedded generator stopped");
        }
        result
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receive_batch_keeps_its_buffers_but_not_a_large_one() {
        let mut b = ReceiveBatch::default();
        b.push(0, b"abc");
        b.push(1, &vec![7; 100 << 10]);
        assert_eq!(b.frames().iter().map(|(f, v)| (*f, v.len())).collect::<Vec<_>>(), vec![(0, 3), (1, 100 << 10)]);
        b.clear();
        assert!(b.frames().is_empty());
        b.push(2, b"de");
        assert_eq!(b.frames(), &[(2, b"de".to_vec())]);
        assert!(b.frames[0].1.capacity() >= 3, "the first buffer is reused");
        assert_eq!(b.frames[1].1.capacity(), 0, "the 100 KiB buffer was given back");
    }
}

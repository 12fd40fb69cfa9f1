//! Rows waiting for the next flush: per (host, zone, period), one [`ZoneRows`] each.
//!
//! Owns the count of buffered rows and the newest sample time seen (what decides that a
//! period is over). Turning the buffers into batches, one per (table, period) with rows
//! ordered by zone then time (a run, see [`archive_layout::RunKey`]), is all or nothing:
//! either every buffered row becomes part of a batch, or none leaves the buffers. Must not
//! do I/O.

use std::collections::{BTreeMap, HashMap};

use archive_layout::{Granularity, RunKey};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::error::ArrowError;
use frame_proto::Packet;

use crate::ArchiverError;
use crate::rows::{ZoneRows, stable_time_order};

/// A finished run, waiting to be published.
#[derive(Debug)]
pub struct PendingBatch {
    /// Its table and period.
    pub run: RunKey,
    /// Its rows, ordered by zone, then time (stable).
    pub batch: RecordBatch,
}

/// Rows buffered for one host: zone -> period start -> rows.
type HostBuffers = HashMap<Box<str>, BTreeMap<i64, ZoneRows>>;

/// The buffers of a writer.
#[derive(Debug)]
pub struct RowBuffers {
    granularity: Granularity,
    hosts: HashMap<Box<str>, HostBuffers>,
    rows: usize,
    bytes: usize,
    latest_sample: Option<i64>,
}

impl RowBuffers {
    /// Empty buffers for partitions of `granularity`.
    pub fn new(granularity: Granularity) -> Self {
        Self { granularity, hosts: HashMap::new(), rows: 0, bytes: 0, latest_sample: None }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Column bytes held (estimated from what was appended).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The newest sample time seen (µs, any zone), if any.
    pub fn latest_sample(&self) -> Option<i64> {
        self.latest_sample
    }

    /// Counts `time_us` as seen (the newest sample an earlier process stored, at start).
    pub fn note_sample(&mut self, time_us: i64) {
        self.latest_sample = Some(self.latest_sample.map_or(time_us, |l| l.max(time_us)));
    }

    /// Buffers the rows of one (already admitted) frame from `host`; returns rows added.
    pub fn append(&mut self, host: &str, packet: &Packet) -> usize {
        let t = packet.sample_time_us();
        let period = self.granularity.period_start(t);
        let zones = match self.hosts.get_mut(host) {
            Some(z) => z,
            None => self.hosts.entry(host.into()).or_default(),
        };
        let periods = match zones.get_mut(packet.name.as_str()) {
            Some(p) => p,
            None => zones.entry(packet.name.as_str().into()).or_default(),
        };
        let rows = periods.entry(period).or_default();
        let before = rows.bytes();
        let added = rows.append(packet, t);
        self.bytes += rows.bytes() - before;
        self.rows += added;
        self.latest_sample = Some(self.latest_sample.map_or(t, |l| l.max(t)));
        added
    }

    /// Turns every buffered row into one batch per (table, period), appended to `out`; all
    /// or nothing: on error `out` is as it was and the buffers still hold every row.
    pub fn finish_into(&mut self, out: &mut Vec<PendingBatch>) -> Result<(), ArchiverError> {
        // (table, period) -> zone -> one batch per host.
        let mut runs: BTreeMap<RunKey, BTreeMap<&str, Vec<RecordBatch>>> = BTreeMap::new();
        for (host, zones) in &self.hosts {
            for (zone, periods) in zones {
                for (&period, rows) in periods {
                    let batches = rows.batches(host, zone).map_err(|source| ArchiverError::Arrow {
                        context: format!("rows of zone {zone:?} of host {host:?}"),
                        source,
                    })?;
                    for (table, batch) in batches {
                        let key = RunKey { table, start_us: period, granularity: self.granularity };
                        runs.entry(key).or_default().entry(zone).or_default().push(batch);
                    }
                }
            }
        }
        let mut finished = Vec::with_capacity(runs.len());
        for (key, zones) in runs {
            let batch = run_batch(key, zones).map_err(|source| ArchiverError::Arrow {
                context: format!("the run of {} at {}", key.table, key.start_us),
                source,
            })?;
            finished.push(PendingBatch { run: key, batch });
        }
        out.extend(finished);
        self.hosts.clear();
        self.rows = 0;
        self.bytes = 0;
        Ok(())
    }
}

/// One run's rows: zones in order, each zone's rows (of every host) by time, stable.
fn run_batch(key: RunKey, zones: BTreeMap<&str, Vec<RecordBatch>>) -> Result<RecordBatch, ArrowError> {
    let schema = key.table.schema();
    let mut parts = Vec::with_capacity(zones.len());
    for (_, mut batches) in zones {
        if batches.len() == 1 {
            parts.extend(batches.pop());
            continue;
        }
        let merged = concat_batches(&schema, &batches)?;
        let order = stable_time_order(merged.column(0).as_primitive::<TimestampMicrosecondType>().values())?;
        parts.push(take_record_batch(&merged, &order)?);
    }
    concat_batches(&schema, &parts)
}

//! Rows waiting for the next flush: per (host, zone, period), one [`ZoneRows`] each.
//!
//! Owns the count of buffered rows and the newest sample time seen per zone (what decides
//! that a partition's period is over). Turning the buffers into batches is all or nothing:
//! either every buffered row becomes part of a batch, or none leaves the buffers. Must not
//! do I/O.

use std::collections::{BTreeMap, HashMap};

use archive_layout::{Granularity, PartitionKey};
use datafusion::arrow::array::RecordBatch;
use frame_proto::Packet;

use crate::ArchiverError;
use crate::rows::ZoneRows;

/// A finished batch of one partition, waiting to be published.
#[derive(Debug)]
pub struct PendingBatch {
    /// Where it goes.
    pub key: PartitionKey,
    /// Its rows, sorted by time.
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
    latest_sample_per_zone: HashMap<Box<str>, i64>,
}

impl RowBuffers {
    /// Empty buffers for partitions of `granularity`.
    pub fn new(granularity: Granularity) -> Self {
        Self { granularity, hosts: HashMap::new(), rows: 0, latest_sample_per_zone: HashMap::new() }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The newest sample time seen for `zone` (µs), if any.
    pub fn latest_sample(&self, zone: &str) -> Option<i64> {
        self.latest_sample_per_zone.get(zone).copied()
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
        let added = periods.entry(period).or_default().append(packet, t);
        self.rows += added;
        match self.latest_sample_per_zone.get_mut(packet.name.as_str()) {
            Some(latest) => *latest = (*latest).max(t),
            None => {
                self.latest_sample_per_zone.insert(packet.name.as_str().into(), t);
            }
        }
        added
    }

    /// Turns every buffered row into batches, appended to `out`; all or nothing: on error
    /// `out` is as it was and the buffers still hold every row.
    pub fn finish_into(&mut self, out: &mut Vec<PendingBatch>) -> Result<(), ArchiverError> {
        let before = out.len();
        let mut failed = None;
        'all: for (host, zones) in &mut self.hosts {
            for (zone, periods) in zones.iter_mut() {
                for (&period, rows) in periods.iter_mut() {
                    match rows.batches(host, zone) {
                        Ok(batches) => out.extend(batches.into_iter().map(|(table, batch)| PendingBatch {
                            key: PartitionKey { table, zone: zone.to_string(), start_us: period, granularity: self.granularity },
                            batch,
                        })),
                        Err(source) => {
                            failed = Some(ArchiverError::Arrow { context: format!("rows of zone {zone:?} of host {host:?}"), source });
                            break 'all;
                        }
                    }
                }
            }
        }
        if let Some(e) = failed {
            out.truncate(before);
            return Err(e);
        }
        self.hosts.clear();
        self.rows = 0;
        Ok(())
    }
}

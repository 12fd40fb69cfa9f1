//! Frames -> Arrow columns: the ingest hot path.
//!
//! A [`ZoneRows`] holds, for one (host, zone, partition period), one column builder set per
//! [`Table`]; [`ZoneRows::append`] adds a frame's rows, [`ZoneRows::finish_table`] turns a
//! table's rows into a `RecordBatch` sorted by time. `host` and `zone` are constant within a
//! `ZoneRows`, so they are not stored per row. This module must not do I/O.

use std::sync::Arc;

use archive_layout::{ColumnType, Table};
use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::compute::{SortOptions, sort_to_indices, take};
use datafusion::arrow::error::ArrowError;
use frame_proto::Packet;

#[derive(Debug)]
enum ColumnBuilder {
    U32(UInt32Builder),
    U64(UInt64Builder),
    Utf8(StringBuilder),
}

impl ColumnBuilder {
    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::U32(b) => Arc::new(b.finish()),
            ColumnBuilder::U64(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
        }
    }
}

/// The rows of one table for one (host, zone, period), as column builders.
#[derive(Debug)]
pub struct TableRows {
    table: Table,
    time: Vec<i64>,
    columns: Vec<ColumnBuilder>,
    sorted: bool,
}

impl TableRows {
    fn new(table: Table) -> Self {
        let columns = table
            .value_columns()
            .iter()
            .map(|(_, ty)| match ty {
                ColumnType::U32 => ColumnBuilder::U32(UInt32Builder::new()),
                ColumnType::U64 => ColumnBuilder::U64(UInt64Builder::new()),
                ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::new()),
            })
            .collect();
        Self { table, time: Vec::new(), columns, sorted: true }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    #[inline]
    fn push_time(&mut self, time_us: i64) {
        if let Some(&last) = self.time.last() {
            self.sorted &= last <= time_us;
        }
        self.time.push(time_us);
    }

    #[inline]
    fn u32(&mut self, col: usize, value: Option<u32>) {
        match &mut self.columns[col] {
            ColumnBuilder::U32(b) => b.append_option(value),
            other => unreachable!("{}: column {col} is {other:?}, not u32", self.table),
        }
    }

    #[inline]
    fn u64(&mut self, col: usize, value: Option<u64>) {
        match &mut self.columns[col] {
            ColumnBuilder::U64(b) => b.append_option(value),
            other => unreachable!("{}: column {col} is {other:?}, not u64", self.table),
        }
    }

    #[inline]
    fn str(&mut self, col: usize, value: Option<&str>) {
        match &mut self.columns[col] {
            ColumnBuilder::Utf8(b) => b.append_option(value),
            other => unreachable!("{}: column {col} is {other:?}, not utf8", self.table),
        }
    }

    /// Turns the rows into a batch of [`Table::schema`], sorted by time (stable, so rows of
    /// one frame keep their order), and empties the builders.
    pub fn finish(&mut self, host: &str, zone: &str) -> Result<RecordBatch, ArrowError> {
        let n = self.time.len();
        let time = TimestampMicrosecondArray::from(std::mem::take(&mut self.time)).with_timezone("UTC");
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(3 + self.columns.len());
        columns.push(Arc::new(time));
        columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(host, n))));
        columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(zone, n))));
        columns.extend(self.columns.iter_mut().map(ColumnBuilder::finish));
        if !self.sorted {
            let order = sort_to_indices(&columns[0], Some(SortOptions::default()), None)?;
            columns = columns.iter().map(|c| take(c.as_ref(), &order, None)).collect::<Result<_, _>>()?;
        }
        self.sorted = true;
        RecordBatch::try_new(self.table.schema(), columns)
    }
}

/// Every table's rows of one (host, zone, period).
#[derive(Debug)]
pub struct ZoneRows {
    tables: Vec<TableRows>,
}

impl Default for ZoneRows {
    fn default() -> Self {
        Self { tables: Table::ALL.into_iter().map(TableRows::new).collect() }
    }
}

impl ZoneRows {
    /// Rows held, all tables together.
    pub fn len(&self) -> usize {
        self.tables.iter().map(TableRows::len).sum()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(TableRows::is_empty)
    }

    /// The rows of one table.
    pub fn table_mut(&mut self, table: Table) -> &mut TableRows {
        &mut self.tables[table.index()]
    }

    /// Appends the rows of one frame whose sample time is `t` (µs); returns rows added.
    pub fn append(&mut self, p: &Packet, t: i64) -> usize {
        let [zone, cpu, mem, net, disk, process, callfreq, cpuqueue, zonename] = &mut self.tables[..] else {
            unreachable!("one TableRows per Table::ALL")
        };
        zone.push_time(t);
        zone.u32(0, p.ticks);
        zone.u32(1, p.threads);
        zone.u32(2, p.processes);
        for c in &p.cpu {
            cpu.push_time(t);
            cpu.u32(0, c.core);
            cpu.u32(1, c.usage);
        }
        for m in &p.mem {
            mem.push_time(t);
            mem.u64(0, m.rss);
            mem.u64(1, m.physcap);
            mem.u64(2, m.swap);
            mem.u64(3, m.swapcap);
            mem.u64(4, m.physmem);
            mem.u64(5, m.pp_kernel);
            mem.u64(6, m.freemem);
            mem.u64(7, m.nalloc_calls);
            mem.u64(8, m.nfree_calls);
            mem.u32(9, m.maj_fault);
            mem.u32(10, m.as_fault);
            mem.u32(11, m.pgin);
        }
        for n in &p.net {
            net.push_time(t);
            net.str(0, n.instance.as_deref());
            net.u64(1, n.obytes64);
            net.u64(2, n.rbytes64);
            net.u64(3, n.opackets);
            net.u64(4, n.ipackets);
            net.u32(5, n.oerrors);
            net.u32(6, n.ierrors);
        }
        for d in &p.disk {
            disk.push_time(t);
            disk.str(0, Some(&d.instance));
            disk.u64(1, d.nread);
            disk.u64(2, d.nwritten);
            disk.u32(3, d.reads);
            disk.u32(4, d.writes);
            disk.u64(5, d.rtime);
            disk.u64(6, d.wtime);
            disk.u64(7, d.rlentime);
            disk.u64(8, d.wlentime);
            disk.u32(9, d.harderror);
            disk.u32(10, d.softerror);
            disk.u32(11, d.tranerror);
        }
        for pr in &p.process {
            process.push_time(t);
            process.u32(0, pr.pid);
            process.str(1, pr.execname.as_deref());
            process.u32(2, pr.usage);
            process.u32(3, pr.cpu);
        }
        for c in &p.callfreq {
            callfreq.push_time(t);
            callfreq.str(0, Some(&c.name));
            callfreq.u64(1, c.time);
            callfreq.u32(2, c.value);
        }
        for q in &p.cpuqueue {
            cpuqueue.push_time(t);
            cpuqueue.u32(0, q.core);
            cpuqueue.u32(1, q.length);
            cpuqueue.u32(2, q.amount);
        }
        for z in &p.zonename {
            zonename.push_time(t);
            zonename.str(0, Some(z));
        }
        1 + p.cpu.len()
            + p.mem.len()
            + p.net.len()
            + p.disk.len()
            + p.process.len()
            + p.callfreq.len()
            + p.cpuqueue.len()
            + p.zonename.len()
    }

    /// Finishes every non-empty table into a batch.
    pub fn finish(&mut self, host: &str, zone: &str) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        self.tables
            .iter_mut()
            .filter(|t| !t.is_empty())
            .map(|t| Ok((t.table, t.finish(host, zone)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
    use frame_proto::packet::{Cpu, Mem};

    fn frame(t: u64, usage: u32) -> Packet {
        Packet {
            name: "z1".into(),
            time: t,
            ticks: Some(4999),
            cpu: vec![Cpu { core: Some(0), usage: Some(usage) }, Cpu { core: Some(1), usage: None }],
            mem: vec![Mem { rss: Some(100), ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn absent_fields_are_null_and_rows_sort_by_time() {
        let mut rows = ZoneRows::default();
        assert_eq!(rows.append(&frame(20, 7), 20_000_000), 4);
        assert_eq!(rows.append(&frame(10, 5), 10_000_000), 4);
        let batches = rows.finish("h", "z1").unwrap();
        let tables: Vec<Table> = batches.iter().map(|(t, _)| *t).collect();
        assert_eq!(tables, vec![Table::Zone, Table::Cpu, Table::Mem]);
        let (_, cpu) = &batches[1];
        assert_eq!(cpu.num_rows(), 4);
        let times = cpu.column(0).as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.values().to_vec(), vec![10_000_000, 10_000_000, 20_000_000, 20_000_000]);
        let usage = cpu.column(4).as_primitive::<UInt32Type>();
        assert_eq!(usage.value(0), 5);
        assert!(usage.is_null(1));
        assert_eq!(usage.value(2), 7);
        let (_, mem) = &batches[2];
        assert_eq!(mem.column(3).as_primitive::<UInt64Type>().value(0), 100);
        assert!(mem.column(7).is_null(0), "physmem absent -> NULL");
        assert_eq!(cpu.column(1).as_string::<i32>().value(3), "h");
        assert!(rows.is_empty());
    }
}

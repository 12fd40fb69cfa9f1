//! Frames -> Arrow columns: the ingest hot path.
//!
//! A [`ZoneRows`] holds, for one (host, zone, partition period), one column builder set per
//! [`Table`]; [`ZoneRows::append`] adds a frame's rows, [`ZoneRows::batches`] turns them into
//! `RecordBatch`es sorted by time (stable: rows of one frame keep their order). `host` and
//! `zone` are constant within a `ZoneRows`, so they are not stored per row.
//!
//! Columns are addressed by name: each table's frame fields are listed once below as
//! (column name, accessor) pairs ([`FrameFields`]), and each pair finds its builder by the
//! column's name in `archive_layout`'s table definition. [`check_mapping`] proves that every
//! layout column has exactly one field of the same type, and a test runs it. This module
//! must not do I/O.

use std::sync::Arc;

use archive_layout::{ColumnType, Table};
use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, UInt32Array, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::compute::take;
use datafusion::arrow::error::ArrowError;
use frame_proto::Packet;
use frame_proto::packet::{
    CallFreq, Cpu, CpuTime, Cpuqueue, Disk, Filesystem, Io, Link, Mem, Memory, Net, Pressure, Process, System, ZoneInfo,
};

/// How one value column is read from a frame entry of type `E`.
#[derive(Clone, Copy)]
pub enum Field<E: 'static> {
    /// A `uint32` field.
    U32(&'static str, fn(&E) -> Option<u32>),
    /// A `uint64` field.
    U64(&'static str, fn(&E) -> Option<u64>),
    /// A `string` field.
    Utf8(&'static str, fn(&E) -> Option<&str>),
}

impl<E> std::fmt::Debug for Field<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} -> {}", self.column_type(), self.column())
    }
}

impl<E> Field<E> {
    /// The column it fills.
    pub fn column(&self) -> &'static str {
        match self {
            Field::U32(n, _) | Field::U64(n, _) | Field::Utf8(n, _) => n,
        }
    }

    fn column_type(&self) -> ColumnType {
        match self {
            Field::U32(..) => ColumnType::U32,
            Field::U64(..) => ColumnType::U64,
            Field::Utf8(..) => ColumnType::Utf8,
        }
    }
}

/// The frame fields of every table, by column name (the wire format's field names, but
/// callfreq's `time`, which is the column `bucket_ns`).
#[derive(Debug)]
pub struct FrameFields;

impl FrameFields {
    /// `zone`: one row per frame.
    pub const ZONE: &[Field<Packet>] =
        &[Field::U32("ticks", |p| p.ticks), Field::U32("threads", |p| p.threads), Field::U32("processes", |p| p.processes)];
    /// `cpu`.
    pub const CPU: &[Field<Cpu>] = &[Field::U32("core", |c| c.core), Field::U32("usage", |c| c.usage)];
    /// `mem`.
    pub const MEM: &[Field<Mem>] = &[
        Field::U64("rss", |m| m.rss),
        Field::U64("physcap", |m| m.physcap),
        Field::U64("swap", |m| m.swap),
        Field::U64("swapcap", |m| m.swapcap),
        Field::U64("physmem", |m| m.physmem),
        Field::U64("pp_kernel", |m| m.pp_kernel),
        Field::U64("freemem", |m| m.freemem),
        Field::U64("nalloc_calls", |m| m.nalloc_calls),
        Field::U64("nfree_calls", |m| m.nfree_calls),
        Field::U32("maj_fault", |m| m.maj_fault),
        Field::U32("as_fault", |m| m.as_fault),
        Field::U32("pgin", |m| m.pgin),
    ];
    /// `net`.
    pub const NET: &[Field<Net>] = &[
        Field::Utf8("instance", |n| n.instance.as_deref()),
        Field::U64("obytes64", |n| n.obytes64),
        Field::U64("rbytes64", |n| n.rbytes64),
        Field::U64("opackets", |n| n.opackets),
        Field::U64("ipackets", |n| n.ipackets),
        Field::U32("oerrors", |n| n.oerrors),
        Field::U32("ierrors", |n| n.ierrors),
    ];
    /// `disk`.
    pub const DISK: &[Field<Disk>] = &[
        Field::Utf8("instance", |d| Some(&d.instance)),
        Field::U64("nread", |d| d.nread),
        Field::U64("nwritten", |d| d.nwritten),
        Field::U32("reads", |d| d.reads),
        Field::U32("writes", |d| d.writes),
        Field::U64("rtime", |d| d.rtime),
        Field::U64("wtime", |d| d.wtime),
        Field::U64("rlentime", |d| d.rlentime),
        Field::U64("wlentime", |d| d.wlentime),
        Field::U32("harderror", |d| d.harderror),
        Field::U32("softerror", |d| d.softerror),
        Field::U32("tranerror", |d| d.tranerror),
    ];
    /// `process`.
    pub const PROCESS: &[Field<Process>] = &[
        Field::U32("pid", |p| p.pid),
        Field::Utf8("execname", |p| p.execname.as_deref()),
        Field::U32("usage", |p| p.usage),
        Field::U32("cpu", |p| p.cpu),
    ];
    /// `callfreq` (the entry's `time` is the column `bucket_ns`).
    pub const CALLFREQ: &[Field<CallFreq>] =
        &[Field::Utf8("name", |c| Some(&c.name)), Field::U64("bucket_ns", |c| c.time), Field::U32("value", |c| c.value)];
    /// `cpuqueue`.
    pub const CPUQUEUE: &[Field<Cpuqueue>] =
        &[Field::U32("core", |q| q.core), Field::U32("length", |q| q.length), Field::U32("amount", |q| q.amount)];
    /// `zonename`: one row per entry of the frame's zone list.
    pub const ZONENAME: &[Field<String>] = &[Field::Utf8("zonename", |z| Some(z))];
    /// `frame`: one row per frame.
    pub const FRAME: &[Field<Packet>] =
        &[Field::U64("run_id", |p| p.run_id), Field::U64("seq", |p| p.seq), Field::U32("interval_ms", |p| p.interval_ms)];
    /// `cpu_time`.
    pub const CPU_TIME: &[Field<CpuTime>] = &[
        Field::U64("user_us", |c| c.user_us),
        Field::U64("system_us", |c| c.system_us),
        Field::U64("periods", |c| c.periods),
        Field::U64("throttled_periods", |c| c.throttled_periods),
        Field::U64("throttled_us", |c| c.throttled_us),
        Field::U64("quota_us", |c| c.quota_us),
        Field::U64("period_us", |c| c.period_us),
        Field::U32("limit_millicores", |c| c.limit_millicores),
        Field::U32("weight", |c| c.weight),
        Field::U64("iowait_us", |c| c.iowait_us),
    ];
    /// `pressure`.
    pub const PRESSURE: &[Field<Pressure>] = &[
        Field::Utf8("resource", |p| Some(&p.resource)),
        Field::U64("some_us", |p| p.some_us),
        Field::U64("full_us", |p| p.full_us),
    ];
    /// `memory`.
    pub const MEMORY: &[Field<Memory>] = &[
        Field::U64("usage", |m| m.usage),
        Field::U64("working_set", |m| m.working_set),
        Field::U64("anon", |m| m.anon),
        Field::U64("file", |m| m.file),
        Field::U64("shmem", |m| m.shmem),
        Field::U64("kernel", |m| m.kernel),
        Field::U64("slab", |m| m.slab),
        Field::U64("inactive_file", |m| m.inactive_file),
        Field::U64("limit", |m| m.limit),
        Field::U64("high", |m| m.high),
        Field::U64("swap", |m| m.swap),
        Field::U64("swap_limit", |m| m.swap_limit),
        Field::U64("oom", |m| m.oom),
        Field::U64("oom_kill", |m| m.oom_kill),
        Field::U64("max_events", |m| m.max_events),
        Field::U64("high_events", |m| m.high_events),
    ];
    /// `io`.
    pub const IO: &[Field<Io>] = &[
        Field::Utf8("instance", |d| Some(&d.instance)),
        Field::U64("rbytes", |d| d.rbytes),
        Field::U64("wbytes", |d| d.wbytes),
        Field::U64("rios", |d| d.rios),
        Field::U64("wios", |d| d.wios),
        Field::U64("dbytes", |d| d.dbytes),
        Field::U64("dios", |d| d.dios),
        Field::U64("read_ns", |d| d.read_ns),
        Field::U64("write_ns", |d| d.write_ns),
        Field::U64("discard_ns", |d| d.discard_ns),
        Field::U32("in_progress", |d| d.in_progress),
        Field::U64("busy_ns", |d| d.busy_ns),
    ];
    /// `link`.
    pub const LINK: &[Field<Link>] = &[
        Field::Utf8("instance", |l| Some(&l.instance)),
        Field::U64("rbytes", |l| l.rbytes),
        Field::U64("obytes", |l| l.obytes),
        Field::U64("ipackets", |l| l.ipackets),
        Field::U64("opackets", |l| l.opackets),
        Field::U64("ierrors", |l| l.ierrors),
        Field::U64("oerrors", |l| l.oerrors),
        Field::U64("idrops", |l| l.idrops),
        Field::U64("odrops", |l| l.odrops),
        Field::U64("netns", |l| l.netns),
    ];
    /// `system`.
    pub const SYSTEM: &[Field<System>] = &[
        Field::U32("load1_milli", |s| s.load1_milli),
        Field::U32("load5_milli", |s| s.load5_milli),
        Field::U32("load15_milli", |s| s.load15_milli),
        Field::U32("procs_running", |s| s.procs_running),
        Field::U32("procs_blocked", |s| s.procs_blocked),
        Field::U64("fds_used", |s| s.fds_used),
        Field::U64("fds_max", |s| s.fds_max),
        Field::U32("sockets_used", |s| s.sockets_used),
        Field::U64("oom_kill", |s| s.oom_kill),
        Field::U32("zones_seen", |s| s.zones_seen),
        Field::U32("zones_dropped", |s| s.zones_dropped),
    ];
    /// `filesystem`.
    pub const FILESYSTEM: &[Field<Filesystem>] = &[
        Field::Utf8("mountpoint", |f| Some(&f.mountpoint)),
        Field::Utf8("device", |f| f.device.as_deref()),
        Field::Utf8("fstype", |f| f.fstype.as_deref()),
        Field::U64("size_bytes", |f| f.size_bytes),
        Field::U64("free_bytes", |f| f.free_bytes),
        Field::U64("avail_bytes", |f| f.avail_bytes),
        Field::U64("files", |f| f.files),
        Field::U64("files_free", |f| f.files_free),
    ];
    /// `zone_info`.
    pub const ZONE_INFO: &[Field<ZoneInfo>] = &[
        Field::Utf8("cgroup_path", |z| z.cgroup_path.as_deref()),
        Field::Utf8("kind", |z| z.kind.as_deref()),
        Field::Utf8("container_id", |z| z.container_id.as_deref()),
        Field::Utf8("pod_uid", |z| z.pod_uid.as_deref()),
    ];

    /// The (column, type) pairs a table's fields fill, in field order.
    pub fn columns(table: Table) -> Vec<(&'static str, ColumnType)> {
        fn of<E>(f: &[Field<E>]) -> Vec<(&'static str, ColumnType)> {
            f.iter().map(|f| (f.column(), f.column_type())).collect()
        }
        match table {
            Table::Zone => of(Self::ZONE),
            Table::Cpu => of(Self::CPU),
            Table::Mem => of(Self::MEM),
            Table::Net => of(Self::NET),
            Table::Disk => of(Self::DISK),
            Table::Process => of(Self::PROCESS),
            Table::Callfreq => of(Self::CALLFREQ),
            Table::Cpuqueue => of(Self::CPUQUEUE),
            Table::Zonename => of(Self::ZONENAME),
            Table::Frame => of(Self::FRAME),
            Table::CpuTime => of(Self::CPU_TIME),
            Table::Pressure => of(Self::PRESSURE),
            Table::Memory => of(Self::MEMORY),
            Table::Io => of(Self::IO),
            Table::Link => of(Self::LINK),
            Table::System => of(Self::SYSTEM),
            Table::Filesystem => of(Self::FILESYSTEM),
            Table::ZoneInfo => of(Self::ZONE_INFO),
        }
    }
}

/// Checks that every column of every table in `archive_layout` is filled by exactly one
/// frame field of the same type, and that no field names a column the table lacks.
pub fn check_mapping() -> Result<(), String> {
    for table in Table::ALL {
        let fields = FrameFields::columns(table);
        for (name, ty) in table.value_columns() {
            let matching: Vec<_> = fields.iter().filter(|(n, _)| n == name).collect();
            match matching.as_slice() {
                [(_, t)] if t == ty => {}
                [(_, t)] => return Err(format!("{table}.{name}: layout says {ty:?}, the frame field is {t:?}")),
                [] => return Err(format!("{table}.{name}: no frame field fills it")),
                _ => return Err(format!("{table}.{name}: filled by {} frame fields", matching.len())),
            }
        }
        if let Some((n, _)) = fields.iter().find(|(n, _)| !table.value_columns().iter().any(|(c, _)| c == n)) {
            return Err(format!("{table}: frame field for unknown column {n}"));
        }
    }
    Ok(())
}

#[derive(Debug)]
enum ColumnBuilder {
    U32(UInt32Builder),
    U64(UInt64Builder),
    Utf8(StringBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            // Empty: Arrow's default capacity (1,024 values) in every column of every table
            // of every zone took 350 MiB for 1,000 zones before a row arrived.
            ColumnType::U32 => ColumnBuilder::U32(UInt32Builder::with_capacity(0)),
            ColumnType::U64 => ColumnBuilder::U64(UInt64Builder::with_capacity(0)),
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(0, 0)),
        }
    }

    fn finish_cloned(&self) -> ArrayRef {
        match self {
            ColumnBuilder::U32(b) => Arc::new(b.finish_cloned()),
            ColumnBuilder::U64(b) => Arc::new(b.finish_cloned()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish_cloned()),
        }
    }
}

/// The rows of one table for one (host, zone, period), as column builders in the layout's
/// column order.
#[derive(Debug)]
pub struct TableRows {
    table: Table,
    /// Column bytes of one row but its strings' contents (time, values, offsets).
    row_bytes: usize,
    /// Column bytes held (an estimate of the builders' contents, not their capacity).
    bytes: usize,
    time: Vec<i64>,
    columns: Vec<ColumnBuilder>,
    /// For each frame field (in field order), the position of its column's builder.
    slots: Vec<usize>,
    sorted: bool,
}

impl TableRows {
    fn new(table: Table) -> Self {
        let columns = table.value_columns().iter().map(|(_, ty)| ColumnBuilder::new(*ty)).collect();
        // By name; `check_mapping` (tested) guarantees every field finds its column.
        let slots = FrameFields::columns(table)
            .iter()
            .map(|(name, _)| table.value_columns().iter().position(|(c, _)| c == name).unwrap_or(usize::MAX))
            .collect();
        let row_bytes = 8 + table
            .value_columns()
            .iter()
            .map(|(_, ty)| match ty {
                ColumnType::U32 | ColumnType::Utf8 => 4,
                ColumnType::U64 => 8,
            })
            .sum::<usize>();
        Self { table, row_bytes, bytes: 0, time: Vec::new(), columns, slots, sorted: true }
    }

    /// Column bytes held (estimated from what was appended).
    pub fn bytes(&self) -> usize {
        self.bytes
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
    fn push<E>(&mut self, time_us: i64, entry: &E, fields: &[Field<E>]) {
        if let Some(&last) = self.time.last() {
            self.sorted &= last <= time_us;
        }
        self.time.push(time_us);
        self.bytes += self.row_bytes;
        for (field, &slot) in fields.iter().zip(&self.slots) {
            match (field, &mut self.columns[slot]) {
                (Field::U32(_, get), ColumnBuilder::U32(b)) => b.append_option(get(entry)),
                (Field::U64(_, get), ColumnBuilder::U64(b)) => b.append_option(get(entry)),
                (Field::Utf8(_, get), ColumnBuilder::Utf8(b)) => {
                    let value = get(entry);
                    self.bytes += value.map_or(0, str::len);
                    b.append_option(value)
                }
                (f, b) => {
                    unreachable!("{}.{}: field and builder types differ ({b:?}); see check_mapping", self.table, f.column())
                }
            }
        }
    }

    /// The rows as a batch of [`Table::schema`], sorted by time (stable), leaving the
    /// builders as they are.
    pub fn batch(&self, host: &str, zone: &str) -> Result<RecordBatch, ArrowError> {
        let n = self.time.len();
        let time = TimestampMicrosecondArray::from(self.time.clone()).with_timezone("UTC");
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(3 + self.columns.len());
        columns.push(Arc::new(time));
        columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(host, n))));
        columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(zone, n))));
        columns.extend(self.columns.iter().map(ColumnBuilder::finish_cloned));
        if !self.sorted {
            let order = stable_time_order(&self.time)?;
            columns = columns.iter().map(|c| take(c.as_ref(), &order, None)).collect::<Result<_, _>>()?;
        }
        RecordBatch::try_new(self.table.schema(), columns)
    }
}

/// Row indices that put `times` in ascending order, equal times keeping their order.
pub fn stable_time_order(times: &[i64]) -> Result<UInt32Array, ArrowError> {
    let n = u32::try_from(times.len()).map_err(|_| ArrowError::InvalidArgumentError(format!("{} rows to sort", times.len())))?;
    let mut order: Vec<u32> = (0..n).collect();
    order.sort_by_key(|&i| times[i as usize]); // slice::sort_by_key is stable
    Ok(UInt32Array::from(order))
}

/// Rows a merge hands out at a time.
pub const MERGE_CHUNK_ROWS: usize = 64 * 1024;

/// `parts` (all of `table`'s schema) merged into time order, stable (equal times keep the
/// order of `parts`, then of rows), handed out in batches of at most [`MERGE_CHUNK_ROWS`]
/// rows: what a seal or a compaction writes. A part not already in time order is sorted
/// first; the others are merged without copying them whole, so the merge holds the parts
/// plus one chunk.
#[derive(Debug)]
pub struct TimeMerge {
    parts: Vec<RecordBatch>,
    /// Next row of each part.
    next: Vec<usize>,
    /// (time, part, row) of each part's next row, smallest first.
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize, usize)>>,
}

impl TimeMerge {
    /// A merge of `parts`.
    pub fn new(parts: Vec<RecordBatch>) -> Result<Self, ArrowError> {
        let parts: Vec<RecordBatch> = parts
            .into_iter()
            .filter(|p| p.num_rows() > 0)
            .map(|p| {
                let times = time_values(&p);
                if times.windows(2).all(|w| w[0] <= w[1]) {
                    Ok(p)
                } else {
                    let order = stable_time_order(times)?;
                    datafusion::arrow::compute::take_record_batch(&p, &order)
                }
            })
            .collect::<Result<_, _>>()?;
        let heap = parts.iter().enumerate().map(|(i, p)| std::cmp::Reverse((time_values(p)[0], i, 0))).collect();
        Ok(Self { next: vec![0; parts.len()], parts, heap })
    }
}

fn time_values(batch: &RecordBatch) -> &[i64] {
    batch.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().map_or(&[], |t| t.values())
}

impl Iterator for TimeMerge {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut indices = Vec::with_capacity(MERGE_CHUNK_ROWS.min(self.heap.len() * 1024));
        while indices.len() < MERGE_CHUNK_ROWS {
            let Some(std::cmp::Reverse((_, part, row))) = self.heap.pop() else { break };
            indices.push((part, row));
            self.next[part] = row + 1;
            let times = time_values(&self.parts[part]);
            if let Some(&t) = times.get(row + 1) {
                self.heap.push(std::cmp::Reverse((t, part, row + 1)));
            }
        }
        if indices.is_empty() {
            return None;
        }
        let parts: Vec<&RecordBatch> = self.parts.iter().collect();
        Some(datafusion::arrow::compute::interleave_record_batch(&parts, &indices))
    }
}

/// A stream of batches (a file being read).
pub type BatchStream = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

/// Streams (each already in time order: sealed files) merged into time order, stable (equal
/// times keep the order of the streams, then of rows), handed out in batches of at most
/// [`MERGE_CHUNK_ROWS`] rows. Holds one batch of each stream and one chunk, whatever the
/// streams' lengths: what merging a month file with a late day file needs (the merge of
/// whole parts, [`TimeMerge`], would hold the month decoded). A stream out of time order
/// is an error, never a wrong merge.
pub struct StreamTimeMerge {
    streams: Vec<BatchStream>,
    /// Each stream's current batch (`None`: exhausted).
    current: Vec<Option<RecordBatch>>,
    /// The last time handed out of each stream (for the order check across batches).
    last: Vec<i64>,
    /// (time, stream, row) of each stream's next row, smallest first.
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize, usize)>>,
    /// Streams whose batch ran out: refilled before the next chunk.
    refill: Vec<usize>,
}

impl std::fmt::Debug for StreamTimeMerge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTimeMerge").field("streams", &self.streams.len()).finish()
    }
}

impl StreamTimeMerge {
    /// A merge of `streams`.
    pub fn new(streams: Vec<BatchStream>) -> Self {
        let n = streams.len();
        Self {
            streams,
            current: vec![None; n],
            last: vec![i64::MIN; n],
            heap: std::collections::BinaryHeap::new(),
            refill: (0..n).collect(),
        }
    }

    /// Loads the next non-empty batch of stream `i` and puts its first row on the heap.
    fn load(&mut self, i: usize) -> Result<(), ArrowError> {
        self.current[i] = None;
        while let Some(batch) = self.streams[i].next().transpose()? {
            if batch.num_rows() == 0 {
                continue;
            }
            let times = time_values(&batch);
            if times.is_empty() || times[0] < self.last[i] || !times.windows(2).all(|w| w[0] <= w[1]) {
                return Err(ArrowError::InvalidArgumentError(format!("merge input {i} is not in time order")));
            }
            self.heap.push(std::cmp::Reverse((times[0], i, 0)));
            self.current[i] = Some(batch);
            break;
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        for i in std::mem::take(&mut self.refill) {
            self.load(i)?;
        }
        let mut indices = Vec::new();
        while indices.len() < MERGE_CHUNK_ROWS {
            let Some(std::cmp::Reverse((t, i, row))) = self.heap.pop() else { break };
            indices.push((i, row));
            self.last[i] = t;
            let Some(batch) = &self.current[i] else { break };
            match time_values(batch).get(row + 1) {
                Some(&next) => self.heap.push(std::cmp::Reverse((next, i, row + 1))),
                None => {
                    // Its batch is used up: hand out what refers to it before replacing it.
                    self.refill.push(i);
                    break;
                }
            }
        }
        if indices.is_empty() {
            return Ok(None);
        }
        // Every index refers to a current batch (a used-up one is replaced only after).
        let empty = RecordBatch::new_empty(
            self.current
                .iter()
                .flatten()
                .next()
                .map(RecordBatch::schema)
                .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty())),
        );
        let batches: Vec<&RecordBatch> = self.current.iter().map(|b| b.as_ref().unwrap_or(&empty)).collect();
        datafusion::arrow::compute::interleave_record_batch(&batches, &indices).map(Some)
    }
}

impl Iterator for StreamTimeMerge {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
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

    /// Column bytes held, all tables together (estimated from what was appended).
    pub fn bytes(&self) -> usize {
        self.tables.iter().map(TableRows::bytes).sum()
    }

    /// Appends the rows of one frame whose sample time is `t` (µs); returns rows added.
    pub fn append(&mut self, p: &Packet, t: i64) -> usize {
        let before = self.len();
        let [
            zone,
            cpu,
            mem,
            net,
            disk,
            process,
            callfreq,
            cpuqueue,
            zonename,
            frame,
            cpu_time,
            pressure,
            memory,
            io,
            link,
            system,
            filesystem,
            zone_info,
        ] = &mut self.tables[..]
        else {
            unreachable!("one TableRows per Table::ALL")
        };
        zone.push(t, p, FrameFields::ZONE);
        p.cpu.iter().for_each(|e| cpu.push(t, e, FrameFields::CPU));
        p.mem.iter().for_each(|e| mem.push(t, e, FrameFields::MEM));
        p.net.iter().for_each(|e| net.push(t, e, FrameFields::NET));
        p.disk.iter().for_each(|e| disk.push(t, e, FrameFields::DISK));
        p.process.iter().for_each(|e| process.push(t, e, FrameFields::PROCESS));
        p.callfreq.iter().for_each(|e| callfreq.push(t, e, FrameFields::CALLFREQ));
        p.cpuqueue.iter().for_each(|e| cpuqueue.push(t, e, FrameFields::CPUQUEUE));
        p.zonename.iter().for_each(|e| zonename.push(t, e, FrameFields::ZONENAME));
        frame.push(t, p, FrameFields::FRAME);
        p.cpu_time.iter().for_each(|e| cpu_time.push(t, e, FrameFields::CPU_TIME));
        p.pressure.iter().for_each(|e| pressure.push(t, e, FrameFields::PRESSURE));
        p.memory.iter().for_each(|e| memory.push(t, e, FrameFields::MEMORY));
        p.io.iter().for_each(|e| io.push(t, e, FrameFields::IO));
        p.link.iter().for_each(|e| link.push(t, e, FrameFields::LINK));
        p.system.iter().for_each(|e| system.push(t, e, FrameFields::SYSTEM));
        p.filesystem.iter().for_each(|e| filesystem.push(t, e, FrameFields::FILESYSTEM));
        p.zone_info.iter().for_each(|e| zone_info.push(t, e, FrameFields::ZONE_INFO));
        self.len() - before
    }

    /// Every non-empty table as a batch; the rows stay held (drop the `ZoneRows` once the
    /// batches are safe).
    pub fn batches(&self, host: &str, zone: &str) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        self.tables.iter().filter(|t| !t.is_empty()).map(|t| Ok((t.table, t.batch(host, zone)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};

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

    /// A cpu batch of `rows` (time, core) from `rows`.
    fn cpu_batch(rows: &[(i64, u32)]) -> RecordBatch {
        let mut r = ZoneRows::default();
        for (t, core) in rows {
            let mut p = frame(0, 1);
            p.cpu = vec![Cpu { core: Some(*core), usage: Some(1) }];
            r.append(&p, *t);
        }
        r.batches("h", "z1").unwrap().into_iter().find(|(t, _)| *t == Table::Cpu).unwrap().1
    }

    fn pairs(batches: &[RecordBatch]) -> Vec<(i64, u32)> {
        let mut out = Vec::new();
        for b in batches {
            let t = b.column(0).as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            let c = b.column_by_name("core").unwrap().as_primitive::<UInt32Type>();
            out.extend((0..b.num_rows()).map(|i| (t.value(i), c.value(i))));
        }
        out
    }

    proptest::proptest! {
        /// Streams of sorted batches merge into what merging them whole gives (stable).
        #[test]
        fn a_streamed_merge_equals_the_whole_merge(
            streams in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(0i64..50, 0..20), 0..5),
                1..5,
            )
        ) {
            // Stream i's rows: core i, times sorted across its batches.
            let mut whole = Vec::new();
            let mut streamed: Vec<BatchStream> = Vec::new();
            for (i, batches) in streams.iter().enumerate() {
                let mut all: Vec<i64> = batches.iter().flatten().copied().collect();
                all.sort_unstable();
                let mut at = 0;
                let mut parts = Vec::new();
                for b in batches {
                    let rows: Vec<(i64, u32)> = all[at..at + b.len()].iter().map(|t| (*t, i as u32)).collect();
                    at += b.len();
                    if !rows.is_empty() {
                        parts.push(cpu_batch(&rows));
                    }
                }
                if !all.is_empty() {
                    whole.push(cpu_batch(&all.iter().map(|t| (*t, i as u32)).collect::<Vec<_>>()));
                }
                streamed.push(Box::new(parts.into_iter().map(Ok)));
            }
            let want: Vec<RecordBatch> = TimeMerge::new(whole).unwrap().collect::<Result<_, _>>().unwrap();
            let got: Vec<RecordBatch> = StreamTimeMerge::new(streamed).collect::<Result<_, _>>().unwrap();
            proptest::prop_assert_eq!(pairs(&got), pairs(&want));
        }
    }

    #[test]
    fn a_stream_out_of_time_order_is_an_error() {
        let streams: Vec<BatchStream> = vec![Box::new(vec![Ok(cpu_batch(&[(5, 0)])), Ok(cpu_batch(&[(3, 0)]))].into_iter())];
        assert!(StreamTimeMerge::new(streams).collect::<Result<Vec<_>, _>>().is_err());
    }

    #[test]
    fn every_layout_column_is_filled_by_one_field_of_its_type() {
        check_mapping().unwrap();
    }

    #[test]
    fn absent_fields_are_null_and_rows_sort_by_time_stably() {
        let mut rows = ZoneRows::default();
        assert_eq!(rows.append(&frame(20, 7), 20_000_000), 5);
        assert_eq!(rows.append(&frame(10, 5), 10_000_000), 5);
        let batches = rows.batches("h", "z1").unwrap();
        let tables: Vec<Table> = batches.iter().map(|(t, _)| *t).collect();
        assert_eq!(tables, vec![Table::Zone, Table::Cpu, Table::Mem, Table::Frame]);
        let (_, cpu) = &batches[1];
        assert_eq!(cpu.num_rows(), 4);
        let times = cpu.column(0).as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.values().to_vec(), vec![10_000_000, 10_000_000, 20_000_000, 20_000_000]);
        assert_eq!(
            cpu.column_by_name("core").unwrap().as_primitive::<UInt32Type>().values().to_vec(),
            vec![0, 1, 0, 1],
            "stable"
        );
        let usage = cpu.column_by_name("usage").unwrap().as_primitive::<UInt32Type>();
        assert_eq!(usage.value(0), 5);
        assert!(usage.is_null(1));
        assert_eq!(usage.value(2), 7);
        let (_, mem) = &batches[2];
        assert_eq!(mem.column_by_name("rss").unwrap().as_primitive::<UInt64Type>().value(0), 100);
        assert!(mem.column_by_name("physmem").unwrap().is_null(0), "physmem absent -> NULL");
        assert_eq!(cpu.column(1).as_string::<i32>().value(3), "h");
        assert_eq!(rows.len(), 10, "batches leave the rows held");
    }

    #[test]
    fn a_merge_is_stable_and_sorts_a_part_out_of_order() {
        // cpu rows: core 0 carries `usage` = a tag of its part and row, core 1 NULL.
        let part = |times: &[i64], tag: u32| {
            let mut rows = ZoneRows::default();
            for (i, t) in times.iter().enumerate() {
                rows.append(&frame(0, tag * 100 + i as u32), *t);
            }
            rows.batches("h", "z1").unwrap().remove(1).1
        };
        // Sorted parts but the last; equal times across parts keep the parts' order.
        let parts = vec![part(&[1, 3, 5], 1), part(&[1, 2, 5], 2), part(&[4, 0], 3)];
        let merged: Vec<RecordBatch> = TimeMerge::new(parts).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(merged.len(), 1);
        let out = &merged[0];
        let times = out.column(0).as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        assert_eq!(times, vec![0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5]);
        let usage = out.column_by_name("usage").unwrap().as_primitive::<UInt32Type>();
        let core0: Vec<u32> = (0..out.num_rows()).step_by(2).map(|i| usage.value(i)).collect();
        assert_eq!(core0, vec![301, 100, 200, 201, 101, 300, 102, 202]);
        assert!((0..out.num_rows()).skip(1).step_by(2).all(|i| usage.is_null(i)), "rows of one frame stay together");
    }

    #[test]
    fn stable_order_keeps_equal_times_in_arrival_order() {
        let order = stable_time_order(&[5, 1, 5, 1, 3, 5]).unwrap();
        assert_eq!(order.values().to_vec(), vec![1, 3, 4, 0, 2, 5]);
    }
}

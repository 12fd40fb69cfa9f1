//! The tables of the archive and their columns, defined once; the Arrow schema, the
//! archiver's column builders and `dq`'s table registration all derive from this list.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::LayoutError;

/// The value type of a statistic column (the wire format's types, same width and sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `uint32` -> `UInt32`.
    U32,
    /// `uint64` -> `UInt64`.
    U64,
    /// `string` -> `Utf8`.
    Utf8,
}

impl ColumnType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::U32 => DataType::UInt32,
            Self::U64 => DataType::UInt64,
            Self::Utf8 => DataType::Utf8,
        }
    }
}

/// One table per statistic group of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per frame: `ticks`, `threads`, `processes`.
    Zone,
    /// One row per core.
    Cpu,
    /// One row per frame that carries memory figures.
    Mem,
    /// One row per network link.
    Net,
    /// One row per disk device (or per-zone I/O pseudo device).
    Disk,
    /// One row per busy process.
    Process,
    /// One row per latency histogram bucket.
    Callfreq,
    /// One row per (core, run-queue length) seen.
    Cpuqueue,
    /// Global-zone frames only: one row per zone present on the host (field 12).
    Zonename,
    /// One row per frame: the generator run and frame number it carries (fields 15, 17,
    /// 18), so SQL can see restarts and gaps. A table of its own, not columns of `zone`:
    /// a glob over files from before it and after it would not read (DuckDB takes the
    /// first file's columns).
    Frame,
    /// Linux: CPU time split, CFS bandwidth throttling and the limits that cause it; one row
    /// per frame that has them (field 19).
    CpuTime,
    /// Linux: pressure stall time per resource (`cpu`, `memory`, `io`; field 20).
    Pressure,
    /// Linux: the detailed memory figures and OOM events of a zone or the host (field 21).
    /// `mem` is the 2013 table, kept as it was.
    Memory,
    /// Linux: I/O per block device, every `io.stat` key, and the host's device times
    /// (field 22). `disk` is the 2013 table, kept as it was.
    Io,
    /// Linux: network interface counters with drops and the namespace they belong to
    /// (field 23). `net` is the 2013 table, kept as it was.
    Link,
    /// Linux: the host's load, run queue, file handles, sockets and zone counts (field 24).
    System,
    /// Linux: space and inodes of each mounted file system of the host (field 25).
    Filesystem,
    /// What a zone is: its cgroup path, kind, container and pod (field 26).
    ZoneInfo,
}

use ColumnType::{U32, U64, Utf8};

const ZONE_COLUMNS: &[(&str, ColumnType)] = &[("ticks", U32), ("threads", U32), ("processes", U32)];
const CPU_COLUMNS: &[(&str, ColumnType)] = &[("core", U32), ("usage", U32)];
const MEM_COLUMNS: &[(&str, ColumnType)] = &[
    ("rss", U64),
    ("physcap", U64),
    ("swap", U64),
    ("swapcap", U64),
    ("physmem", U64),
    ("pp_kernel", U64),
    ("freemem", U64),
    ("nalloc_calls", U64),
    ("nfree_calls", U64),
    ("maj_fault", U32),
    ("as_fault", U32),
    ("pgin", U32),
];
const NET_COLUMNS: &[(&str, ColumnType)] = &[
    ("instance", Utf8),
    ("obytes64", U64),
    ("rbytes64", U64),
    ("opackets", U64),
    ("ipackets", U64),
    ("oerrors", U32),
    ("ierrors", U32),
];
const DISK_COLUMNS: &[(&str, ColumnType)] = &[
    ("instance", Utf8),
    ("nread", U64),
    ("nwritten", U64),
    ("reads", U32),
    ("writes", U32),
    ("rtime", U64),
    ("wtime", U64),
    ("rlentime", U64),
    ("wlentime", U64),
    ("harderror", U32),
    ("softerror", U32),
    ("tranerror", U32),
];
const PROCESS_COLUMNS: &[(&str, ColumnType)] = &[("pid", U32), ("execname", Utf8), ("usage", U32), ("cpu", U32)];
const CALLFREQ_COLUMNS: &[(&str, ColumnType)] = &[("name", Utf8), ("bucket_ns", U64), ("value", U32)];
const CPUQUEUE_COLUMNS: &[(&str, ColumnType)] = &[("core", U32), ("length", U32), ("amount", U32)];
const ZONENAME_COLUMNS: &[(&str, ColumnType)] = &[("zonename", Utf8)];
const FRAME_COLUMNS: &[(&str, ColumnType)] = &[("run_id", U64), ("seq", U64), ("interval_ms", U32)];
const CPU_TIME_COLUMNS: &[(&str, ColumnType)] = &[
    ("user_us", U64),
    ("system_us", U64),
    ("periods", U64),
    ("throttled_periods", U64),
    ("throttled_us", U64),
    ("quota_us", U64),
    ("period_us", U64),
    ("limit_millicores", U32),
    ("weight", U32),
    ("iowait_us", U64),
];
const PRESSURE_COLUMNS: &[(&str, ColumnType)] = &[("resource", Utf8), ("some_us", U64), ("full_us", U64)];
const MEMORY_COLUMNS: &[(&str, ColumnType)] = &[
    ("usage", U64),
    ("working_set", U64),
    ("anon", U64),
    ("file", U64),
    ("shmem", U64),
    ("kernel", U64),
    ("slab", U64),
    ("inactive_file", U64),
    ("limit", U64),
    ("high", U64),
    ("swap", U64),
    ("swap_limit", U64),
    ("oom", U64),
    ("oom_kill", U64),
    ("max_events", U64),
    ("high_events", U64),
];
const IO_COLUMNS: &[(&str, ColumnType)] = &[
    ("instance", Utf8),
    ("rbytes", U64),
    ("wbytes", U64),
    ("rios", U64),
    ("wios", U64),
    ("dbytes", U64),
    ("dios", U64),
    ("read_ns", U64),
    ("write_ns", U64),
    ("discard_ns", U64),
    ("in_progress", U32),
    ("busy_ns", U64),
];
const LINK_COLUMNS: &[(&str, ColumnType)] = &[
    ("instance", Utf8),
    ("rbytes", U64),
    ("obytes", U64),
    ("ipackets", U64),
    ("opackets", U64),
    ("ierrors", U64),
    ("oerrors", U64),
    ("idrops", U64),
    ("odrops", U64),
    ("netns", U64),
];
const SYSTEM_COLUMNS: &[(&str, ColumnType)] = &[
    ("load1_milli", U32),
    ("load5_milli", U32),
    ("load15_milli", U32),
    ("procs_running", U32),
    ("procs_blocked", U32),
    ("fds_used", U64),
    ("fds_max", U64),
    ("sockets_used", U32),
    ("oom_kill", U64),
    ("zones_seen", U32),
    ("zones_dropped", U32),
];
const FILESYSTEM_COLUMNS: &[(&str, ColumnType)] = &[
    ("mountpoint", Utf8),
    ("device", Utf8),
    ("fstype", Utf8),
    ("size_bytes", U64),
    ("free_bytes", U64),
    ("avail_bytes", U64),
    ("files", U64),
    ("files_free", U64),
];
const ZONE_INFO_COLUMNS: &[(&str, ColumnType)] =
    &[("cgroup_path", Utf8), ("kind", Utf8), ("container_id", Utf8), ("pod_uid", Utf8)];

impl Table {
    /// Every table, in a fixed order (also the order of [`Table::index`]).
    pub const ALL: [Table; 18] = [
        Table::Zone,
        Table::Cpu,
        Table::Mem,
        Table::Net,
        Table::Disk,
        Table::Process,
        Table::Callfreq,
        Table::Cpuqueue,
        Table::Zonename,
        Table::Frame,
        Table::CpuTime,
        Table::Pressure,
        Table::Memory,
        Table::Io,
        Table::Link,
        Table::System,
        Table::Filesystem,
        Table::ZoneInfo,
    ];

    /// The table's name: its directory under the archive root and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Zone => "zone",
            Table::Cpu => "cpu",
            Table::Mem => "mem",
            Table::Net => "net",
            Table::Disk => "disk",
            Table::Process => "process",
            Table::Callfreq => "callfreq",
            Table::Cpuqueue => "cpuqueue",
            Table::Zonename => "zonename",
            Table::Frame => "frame",
            Table::CpuTime => "cpu_time",
            Table::Pressure => "pressure",
            Table::Memory => "memory",
            Table::Io => "io",
            Table::Link => "link",
            Table::System => "system",
            Table::Filesystem => "filesystem",
            Table::ZoneInfo => "zone_info",
        }
    }

    /// Position in [`Table::ALL`], for per-table arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a table name.
    ///
    /// ```
    /// use archive_layout::Table;
    /// assert_eq!(Table::from_name("cpu").unwrap(), Table::Cpu);
    /// assert!(Table::from_name("nope").is_err());
    /// ```
    pub fn from_name(name: &str) -> Result<Table, LayoutError> {
        Table::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| LayoutError::UnknownTable(name.to_owned()))
    }

    /// The statistic columns after `time`, `host`, `zone`, named as in the wire format.
    pub fn value_columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            Table::Zone => ZONE_COLUMNS,
            Table::Cpu => CPU_COLUMNS,
            Table::Mem => MEM_COLUMNS,
            Table::Net => NET_COLUMNS,
            Table::Disk => DISK_COLUMNS,
            Table::Process => PROCESS_COLUMNS,
            Table::Callfreq => CALLFREQ_COLUMNS,
            Table::Cpuqueue => CPUQUEUE_COLUMNS,
            Table::Zonename => ZONENAME_COLUMNS,
            Table::Frame => FRAME_COLUMNS,
            Table::CpuTime => CPU_TIME_COLUMNS,
            Table::Pressure => PRESSURE_COLUMNS,
            Table::Memory => MEMORY_COLUMNS,
            Table::Io => IO_COLUMNS,
            Table::Link => LINK_COLUMNS,
            Table::System => SYSTEM_COLUMNS,
            Table::Filesystem => FILESYSTEM_COLUMNS,
            Table::ZoneInfo => ZONE_INFO_COLUMNS,
        }
    }

    /// Columns that name a series within a zone (sorted on after `time`, never counted
    /// as measured values).
    pub fn series_key_columns(self) -> &'static [&'static str] {
        match self {
            Table::Cpu | Table::Cpuqueue => &["core"],
            Table::Net | Table::Disk | Table::Io | Table::Link => &["instance"],
            Table::Pressure => &["resource"],
            Table::Filesystem => &["mountpoint"],
            Table::Process => &["pid"],
            Table::Callfreq => &["name", "bucket_ns"],
            Table::Zonename => &["zonename"],
            Table::Zone | Table::Mem | Table::Frame | Table::CpuTime | Table::Memory | Table::System | Table::ZoneInfo => &[],
        }
    }

    /// What a value column measures, which decides how it is aggregated over time
    /// (`docs/statistics.md` says the same per column); `None` for a column the table lacks.
    pub fn column_kind(self, column: &str) -> Option<ColumnKind> {
        use ColumnKind::{Counter, Gauge, IntervalCount, Key};
        if self.series_key_columns().contains(&column) {
            return Some(Key);
        }
        self.value_columns().iter().find(|(n, _)| *n == column)?;
        Some(match (self, column) {
            (Table::Mem, "nalloc_calls" | "nfree_calls") | (Table::Net, _) | (Table::Disk, _) => Counter,
            (Table::Zone, "ticks")
            | (Table::Cpu, "usage")
            | (Table::Mem, "maj_fault" | "as_fault" | "pgin")
            | (Table::Process, "usage")
            | (Table::Callfreq, "value")
            | (Table::Cpuqueue, "amount") => IntervalCount,
            (Table::Process, "execname") | (Table::Cpuqueue, "length") | (Table::Frame, "run_id") => Key,
            (Table::Frame, "seq") => Counter,
            (Table::CpuTime, "user_us" | "system_us" | "periods" | "throttled_periods" | "throttled_us" | "iowait_us")
            | (Table::Pressure, _)
            | (Table::Memory, "oom" | "oom_kill" | "max_events" | "high_events")
            | (Table::System, "oom_kill") => Counter,
            (Table::Io, "in_progress") => Gauge,
            (Table::Io, _) => Counter,
            (Table::Link, "netns") | (Table::Filesystem, "device" | "fstype") | (Table::ZoneInfo, _) => Key,
            (Table::Link, _) => Counter,
            _ => Gauge,
        })
    }

    /// How the value index beside each of the table's zone files covers `column` (see the
    /// `value_index` crate and `docs/value-indexes.md`); `None`: not indexed. Keys people
    /// look up one at a time get a set of their values; measured values (levels, interval
    /// counts, counters) get their extreme tails copied. Rollup files are not indexed.
    pub fn index_kind(self, column: &str) -> Option<IndexKind> {
        match (self, column) {
            (Table::Process, "pid" | "execname") | (Table::Net | Table::Disk, "instance") | (Table::Callfreq, "name") => {
                Some(IndexKind::KeySet)
            }
            // The measured values people put thresholds on; capacities (`physcap`), totals
            // that only grow with the host and positions (`core`) are left out, since every
            // indexed column copies its tails' rows.
            (Table::Zone, "threads" | "processes")
            | (Table::Cpu, "usage")
            | (Table::Mem, "rss" | "swap" | "freemem" | "maj_fault" | "pgin")
            | (Table::Net, "obytes64" | "rbytes64" | "oerrors" | "ierrors")
            | (Table::Disk, "nread" | "nwritten" | "rtime" | "wtime" | "harderror" | "softerror")
            | (Table::Process, "usage")
            | (Table::Callfreq, "value")
            | (Table::Cpuqueue, "amount") => Some(IndexKind::Tails),
            _ => None,
        }
    }

    /// The table's indexed columns with their types and how each is indexed (in the order
    /// of [`Table::value_columns`]).
    pub fn indexed_columns(self) -> impl Iterator<Item = (&'static str, ColumnType, IndexKind)> {
        self.value_columns().iter().filter_map(move |&(name, ty)| Some((name, ty, self.index_kind(name)?)))
    }

    /// The Arrow schema of the table's files: `time` (µs, UTC), `host`, `zone`, then
    /// [`Table::value_columns`], all nullable but the first three.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| Table::ALL.iter().map(|t| t.build_schema()).collect());
        Arc::clone(&all[self.index()])
    }

    fn build_schema(self) -> SchemaRef {
        let mut fields = vec![
            Field::new("time", Self::time_type(), false),
            Field::new("host", DataType::Utf8, false),
            Field::new("zone", DataType::Utf8, false),
        ];
        fields.extend(self.value_columns().iter().map(|(name, ty)| Field::new(*name, ty.data_type(), true)));
        Arc::new(Schema::new(fields))
    }

    /// `TIMESTAMP(MICROS, isAdjustedToUTC=true)`.
    pub fn time_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }
}

/// What a value column measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// A level at the sample's time (memory in use, threads): min, max, mean, last.
    Gauge,
    /// Cumulative since the source started (bytes read, packets): only grows, but for a
    /// reset (the source restarted) or a 32-bit wrap; use `increase`/`rate` in `dq`.
    Counter,
    /// What happened during the sample's interval (CPU samples, faults): sum it.
    IntervalCount,
    /// Names a series (core, instance, pid, execname, call name): group by it.
    Key,
}

/// How a column is indexed (see [`Table::index_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// The set of values in the file (numbers, or the CRC-32 of strings): a file without a
    /// value is skipped for `column = value`.
    KeySet,
    /// The rows whose value lies in the file's extreme tails, copied to the side file: a
    /// condition inside a tail reads only the side file.
    Tails,
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_column_has_a_kind() {
        for t in Table::ALL {
            for (c, _) in t.value_columns() {
                assert!(t.column_kind(c).is_some(), "{t}.{c}");
            }
            assert_eq!(t.column_kind("nope"), None);
        }
        assert_eq!(Table::Disk.column_kind("reads"), Some(ColumnKind::Counter));
        assert_eq!(Table::Disk.column_kind("instance"), Some(ColumnKind::Key));
        assert_eq!(Table::Mem.column_kind("rss"), Some(ColumnKind::Gauge));
        assert_eq!(Table::Mem.column_kind("maj_fault"), Some(ColumnKind::IntervalCount));
    }

    #[test]
    fn names_round_trip_and_index_matches_order() {
        for (i, t) in Table::ALL.into_iter().enumerate() {
            assert_eq!(Table::from_name(t.name()).unwrap(), t);
            assert_eq!(t.index(), i);
        }
    }

    #[test]
    fn schema_starts_with_time_host_zone() {
        for t in Table::ALL {
            let s = t.schema();
            assert_eq!(s.field(0).name(), "time");
            assert_eq!(s.field(0).data_type(), &Table::time_type());
            assert_eq!(s.field(1).name(), "host");
            assert_eq!(s.field(2).name(), "zone");
            assert_eq!(s.fields().len(), 3 + t.value_columns().len());
            for key in t.series_key_columns() {
                assert!(s.field_with_name(key).is_ok(), "{t}: {key}");
            }
        }
    }

    #[test]
    fn callfreq_renames_time_to_bucket_ns() {
        assert!(Table::Callfreq.schema().field_with_name("bucket_ns").is_ok());
    }
}

//! Rollup tables: per series, one row per minute (`TABLE_1m`) or hour (`TABLE_1h`) of a
//! zone's day, summarising the raw rows of one sealed day file, in directories beside the
//! raw tables (`cpu_1m/zone=Z/date=D/`), under the same file name as the day file they
//! summarise. Owns their names, their columns (from each raw column's [`ColumnKind`]) and the
//! one rule for a counter's step between two samples ([`counter_step`]), which `dq`'s
//! counter functions follow too. Must not compute rollups (the archiver does) nor do I/O.
//!
//! A series is a table's rows of one `host` and `zone` with equal [`Table::rollup_key_columns`]
//! values (a core, a link, a process id and name, a latency bucket). Per bucket it gets
//! `samples` (raw rows) and, per value column `c`:
//! - gauge: `c_min`, `c_max`, `c_sum`, `c_count` (non-NULL values), `c_last`;
//! - per-interval count: `c_min`, `c_max`, `c_sum`, `c_count`;
//! - cumulative counter: `c_increase` (from the series' sample before the bucket, if any, to
//!   its last sample in the bucket, by [`counter_step`]), `c_resets`, `c_count`, `c_last`.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::{ColumnKind, ColumnType, Table};

/// The length of a rollup's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RollupLevel {
    /// One row per series and minute: `TABLE_1m`.
    Minute,
    /// One row per series and hour: `TABLE_1h`.
    Hour,
}

impl RollupLevel {
    /// Both, finest first.
    pub const ALL: [RollupLevel; 2] = [RollupLevel::Minute, RollupLevel::Hour];

    /// What the table name ends with: `1m` or `1h`.
    pub fn suffix(self) -> &'static str {
        match self {
            RollupLevel::Minute => "1m",
            RollupLevel::Hour => "1h",
        }
    }

    /// A bucket's length in microseconds.
    pub fn bucket_us(self) -> i64 {
        match self {
            RollupLevel::Minute => 60_000_000,
            RollupLevel::Hour => 3_600_000_000,
        }
    }

    /// The first microsecond of the bucket holding `time_us`.
    pub fn bucket_start(self, time_us: i64) -> i64 {
        time_us - time_us.rem_euclid(self.bucket_us())
    }

    /// The rollup table's name: `cpu_1m`.
    pub fn table_name(self, table: Table) -> &'static str {
        static NAMES: OnceLock<Vec<[String; 2]>> = OnceLock::new();
        let names = NAMES.get_or_init(|| {
            Table::ALL.iter().map(|t| RollupLevel::ALL.map(|l| format!("{}_{}", t.name(), l.suffix()))).collect()
        });
        &names[table.index()][self as usize]
    }

    /// Parses a rollup table's name (`cpu_1h`); `None` for anything else, raw tables included.
    ///
    /// ```
    /// use archive_layout::{RollupLevel, Table};
    /// assert_eq!(RollupLevel::parse_table_name("cpu_1h"), Some((Table::Cpu, RollupLevel::Hour)));
    /// assert_eq!(RollupLevel::parse_table_name("cpu"), None);
    /// assert_eq!(RollupLevel::parse_table_name("zonename_1m"), None);
    /// ```
    pub fn parse_table_name(name: &str) -> Option<(Table, RollupLevel)> {
        let (table, suffix) = name.rsplit_once('_')?;
        let table = Table::from_name(table).ok().filter(|t| t.has_rollups())?;
        let level = RollupLevel::ALL.into_iter().find(|l| l.suffix() == suffix)?;
        Some((table, level))
    }
}

/// What a rollup column holds of its raw column's values in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollupAggregate {
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum of the values (`UInt64`).
    Sum,
    /// Non-NULL values (`UInt32`).
    Count,
    /// The value of the last sample.
    Last,
    /// A counter's increase, resets and wraps handled (`UInt64`).
    Increase,
    /// A counter's resets (`UInt32`).
    Resets,
}

impl RollupAggregate {
    /// The column name's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            RollupAggregate::Min => "min",
            RollupAggregate::Max => "max",
            RollupAggregate::Sum => "sum",
            RollupAggregate::Count => "count",
            RollupAggregate::Last => "last",
            RollupAggregate::Increase => "increase",
            RollupAggregate::Resets => "resets",
        }
    }

    /// The aggregates a column of `kind` gets, in column order (none for a key).
    pub fn of_kind(kind: ColumnKind) -> &'static [RollupAggregate] {
        use RollupAggregate::{Count, Increase, Last, Max, Min, Resets, Sum};
        match kind {
            ColumnKind::Gauge => &[Min, Max, Sum, Count, Last],
            ColumnKind::IntervalCount => &[Min, Max, Sum, Count],
            ColumnKind::Counter => &[Increase, Resets, Count, Last],
            ColumnKind::Key => &[],
        }
    }
}

/// One value column of a rollup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupColumn {
    /// Its name: `{source}_{aggregate}`.
    pub name: String,
    /// The raw column it summarises.
    pub source: &'static str,
    /// The raw column's type.
    pub source_type: ColumnType,
    /// What it holds.
    pub aggregate: RollupAggregate,
}

impl RollupColumn {
    /// Its Arrow type.
    pub fn data_type(&self) -> DataType {
        match self.aggregate {
            RollupAggregate::Sum | RollupAggregate::Increase => DataType::UInt64,
            RollupAggregate::Count | RollupAggregate::Resets => DataType::UInt32,
            RollupAggregate::Min | RollupAggregate::Max | RollupAggregate::Last => self.source_type.data_type(),
        }
    }
}

impl Table {
    /// Whether the table has rollups (every table with a measured value: all but
    /// `zonename`, `frame` and `zone_info`).
    pub fn has_rollups(self) -> bool {
        !matches!(self, Table::Zonename | Table::Frame | Table::ZoneInfo)
    }

    /// The columns naming a series within a host and zone, in column order: every column of
    /// kind [`ColumnKind::Key`] (core, link, pid and name, call name and bucket, run-queue
    /// length).
    pub fn rollup_key_columns(self) -> &'static [(&'static str, ColumnType)] {
        static KEYS: OnceLock<Vec<Vec<(&'static str, ColumnType)>>> = OnceLock::new();
        let all = KEYS.get_or_init(|| {
            Table::ALL
                .iter()
                .map(|t| t.value_columns().iter().copied().filter(|(n, _)| t.column_kind(n) == Some(ColumnKind::Key)).collect())
                .collect()
        });
        &all[self.index()]
    }

    /// The value columns of the table's rollups, in column order (after `time`, `host`,
    /// `zone`, the key columns and `samples`).
    pub fn rollup_columns(self) -> &'static [RollupColumn] {
        static COLUMNS: OnceLock<Vec<Vec<RollupColumn>>> = OnceLock::new();
        let all = COLUMNS.get_or_init(|| {
            Table::ALL
                .iter()
                .map(|t| {
                    let mut out = Vec::new();
                    for (name, ty) in t.value_columns() {
                        let kind = t.column_kind(name).unwrap_or(ColumnKind::Gauge);
                        for a in RollupAggregate::of_kind(kind) {
                            out.push(RollupColumn {
                                name: format!("{name}_{}", a.suffix()),
                                source: name,
                                source_type: *ty,
                                aggregate: *a,
                            });
                        }
                    }
                    out
                })
                .collect()
        });
        &all[self.index()]
    }

    /// The Arrow schema of the table's rollup files (both levels): `time` (the bucket's
    /// start), `host`, `zone`, the key columns, `samples`, then [`Table::rollup_columns`].
    pub fn rollup_schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            Table::ALL
                .iter()
                .map(|t| {
                    let mut fields = vec![
                        Field::new("time", Table::time_type(), false),
                        Field::new("host", DataType::Utf8, false),
                        Field::new("zone", DataType::Utf8, false),
                    ];
                    fields.extend(t.rollup_key_columns().iter().map(|(n, ty)| Field::new(*n, ty.data_type(), true)));
                    fields.push(Field::new("samples", DataType::UInt32, false));
                    fields.extend(t.rollup_columns().iter().map(|c| Field::new(&c.name, c.data_type(), true)));
                    Arc::new(Schema::new(fields))
                })
                .collect()
        });
        Arc::clone(&all[self.index()])
    }
}

/// What a counter adds between two consecutive samples `prev` and `cur` of a column `bits`
/// wide (32 or 64), and whether the step is a reset: growth adds the difference; a drop of
/// more than 2^31 on a 32-bit column is a wrap (adds `cur + 2^32 - prev`); any other drop is
/// a reset (the source restarted and counted from 0: adds `cur`).
///
/// ```
/// use archive_layout::counter_step;
/// assert_eq!(counter_step(10, 15, 64), (5, false));
/// assert_eq!(counter_step(u64::from(u32::MAX) - 1, 3, 32), (5, false));
/// assert_eq!(counter_step(100, 7, 32), (7, true));
/// assert_eq!(counter_step(u64::from(u32::MAX), 3, 64), (3, true));
/// ```
pub fn counter_step(prev: u64, cur: u64, bits: u32) -> (u64, bool) {
    if cur >= prev {
        (cur - prev, false)
    } else if bits == 32 && prev - cur > 1 << 31 {
        ((cur + (1 << 32)) - prev, false)
    } else {
        (cur, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_value_column_is_summarised() {
        for t in Table::ALL.into_iter().filter(|t| t.has_rollups()) {
            for l in RollupLevel::ALL {
                assert_eq!(RollupLevel::parse_table_name(l.table_name(t)), Some((t, l)));
            }
            let schema = t.rollup_schema();
            for (name, _) in t.value_columns() {
                let kind = t.column_kind(name).unwrap();
                let summarised = t.rollup_columns().iter().filter(|c| c.source == *name).count();
                let key = t.rollup_key_columns().iter().any(|(k, _)| k == name);
                assert_eq!(kind == ColumnKind::Key, key, "{t}.{name}");
                assert!(key || summarised > 0, "{t}.{name}");
                assert!(key == schema.field_with_name(name).is_ok(), "{t}.{name}");
            }
        }
        assert_eq!(RollupLevel::Minute.table_name(Table::Disk), "disk_1m");
        let disk = Table::Disk.rollup_schema();
        assert_eq!(disk.field_with_name("nread_increase").unwrap().data_type(), &DataType::UInt64);
        assert_eq!(disk.field_with_name("reads_last").unwrap().data_type(), &DataType::UInt32);
        assert!(Table::Mem.rollup_schema().field_with_name("rss_max").is_ok());
        assert_eq!(Table::Process.rollup_key_columns().iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["pid", "execname"]);
        assert_eq!(Table::Cpuqueue.rollup_key_columns().iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["core", "length"]);
    }

    #[test]
    fn buckets_start_on_their_boundary() {
        assert_eq!(RollupLevel::Minute.bucket_start(119_999_999), 60_000_000);
        assert_eq!(RollupLevel::Hour.bucket_start(-1), -3_600_000_000);
    }
}

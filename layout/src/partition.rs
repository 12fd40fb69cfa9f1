//! Partition keys: (table, zone, UTC period) <-> `table/zone=Z/date=YYYY-MM-DD[/hour=HH]`.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Timelike, Utc};

use crate::{LayoutError, Table, escape_partition_value, unescape_partition_value};

/// How much sample time one partition covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Granularity {
    /// One partition per UTC hour (the default): `date=YYYY-MM-DD/hour=HH`.
    #[default]
    Hour,
    /// One partition per UTC day: `date=YYYY-MM-DD`.
    Day,
}

impl Granularity {
    /// Length of one period in microseconds.
    pub fn period_us(self) -> i64 {
        match self {
            Granularity::Hour => 3_600_000_000,
            Granularity::Day => 86_400_000_000,
        }
    }

    /// Start of the period holding `time_us` (floor, also for times before 1970).
    pub fn period_start(self, time_us: i64) -> i64 {
        time_us.div_euclid(self.period_us()) * self.period_us()
    }
}

impl std::str::FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hour" => Ok(Granularity::Hour),
            "day" => Ok(Granularity::Day),
            other => Err(format!("unknown partition granularity {other:?} (hour, day)")),
        }
    }
}

/// One partition: a table's rows of one zone in one UTC period.
///
/// ```
/// use archive_layout::{Granularity, PartitionKey, Table};
/// let key = PartitionKey::for_sample(Table::Cpu, "web/01", 1_764_000_000_000_000, Granularity::Hour);
/// let dir = key.relative_dir();
/// assert_eq!(dir.to_str().unwrap(), "cpu/zone=web%2F01/date=2025-11-24/hour=16");
/// assert_eq!(PartitionKey::parse_relative_dir(&dir).unwrap(), key);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The table.
    pub table: Table,
    /// The zone, unescaped (any UTF-8 string).
    pub zone: String,
    /// First microsecond of the period (UTC).
    pub start_us: i64,
    /// Length of the period.
    pub granularity: Granularity,
}

impl PartitionKey {
    /// The partition a sample at `time_us` of `zone` falls in.
    pub fn for_sample(table: Table, zone: &str, time_us: i64, granularity: Granularity) -> Self {
        Self { table, zone: zone.to_owned(), start_us: granularity.period_start(time_us), granularity }
    }

    /// One past the last microsecond of the period.
    pub fn end_us(&self) -> i64 {
        self.start_us + self.granularity.period_us()
    }

    /// The partition directory relative to the archive root.
    pub fn relative_dir(&self) -> PathBuf {
        let start = DateTime::<Utc>::from_timestamp_micros(self.start_us).unwrap_or_default();
        let mut dir = PathBuf::from(self.table.name());
        dir.push(format!("zone={}", escape_partition_value(&self.zone)));
        dir.push(format!("date={}", start.format("%Y-%m-%d")));
        if self.granularity == Granularity::Hour {
            dir.push(format!("hour={:02}", start.hour()));
        }
        dir
    }

    /// Parses a partition directory relative to the archive root (inverse of
    /// [`PartitionKey::relative_dir`]).
    pub fn parse_relative_dir(dir: &Path) -> Result<Self, LayoutError> {
        let bad = |reason| LayoutError::BadPath { path: dir.display().to_string(), reason };
        let parts: Vec<&str> = dir
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().ok_or_else(|| bad("not UTF-8")),
                _ => Err(bad("not a plain relative path")),
            })
            .collect::<Result<_, _>>()?;
        let (table, zone, date, hour) = match parts.as_slice() {
            [t, z, d] => (*t, *z, *d, None),
            [t, z, d, h] => (*t, *z, *d, Some(*h)),
            _ => return Err(bad("expected table/zone=Z/date=D[/hour=H]")),
        };
        let table = Table::from_name(table)?;
        let zone = zone.strip_prefix("zone=").ok_or_else(|| bad("missing zone="))?;
        let zone = unescape_partition_value(zone).ok_or_else(|| bad("bad escape in zone"))?;
        let date = date.strip_prefix("date=").ok_or_else(|| bad("missing date="))?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad("bad date"))?;
        let (hour, granularity) = match hour {
            None => (0, Granularity::Day),
            Some(h) => {
                let h = h.strip_prefix("hour=").ok_or_else(|| bad("missing hour="))?;
                let h: u32 = h.parse().map_err(|_| bad("bad hour"))?;
                if h > 23 || h.to_string().len() > 2 {
                    return Err(bad("bad hour"));
                }
                (h, Granularity::Hour)
            }
        };
        let start = date.and_hms_opt(hour, 0, 0).ok_or_else(|| bad("bad hour"))?;
        let start_us = Utc.from_utc_datetime(&start).timestamp_micros();
        Ok(Self { table, zone, start_us, granularity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn day_partitions_have_no_hour() {
        let key = PartitionKey::for_sample(Table::Mem, "global", 1_764_003_599_999_999, Granularity::Day);
        assert_eq!(key.relative_dir(), Path::new("mem/zone=global/date=2025-11-24"));
        assert_eq!(key.end_us() - key.start_us, 86_400_000_000);
        assert_eq!(PartitionKey::parse_relative_dir(&key.relative_dir()).unwrap(), key);
    }

    #[test]
    fn hostile_zone_names_stay_one_component() {
        for zone in ["..", ".", "/", "a/../../b", "\0", "zone=x", "%2F", "", " ", "é☃"] {
            let key = PartitionKey::for_sample(Table::Zone, zone, 0, Granularity::Hour);
            let dir = key.relative_dir();
            assert_eq!(dir.components().count(), 4, "{zone:?} -> {dir:?}");
            assert!(dir.components().all(|c| matches!(c, Component::Normal(_))), "{dir:?}");
            assert_eq!(PartitionKey::parse_relative_dir(&dir).unwrap().zone, zone);
        }
    }

    #[test]
    fn rejects_foreign_paths() {
        for p in ["cpu", "cpu/zone=a", "cpu/zone=a/date=x/hour=1", "cpu/zone=a/date=2025-01-01/hour=24", "nope/zone=a/date=2025-01-01", "cpu/zone=%zz/date=2025-01-01", "../cpu/zone=a/date=2025-01-01"] {
            assert!(PartitionKey::parse_relative_dir(Path::new(p)).is_err(), "{p}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(zone in "\\PC{0,40}", t in -2_208_988_800_000_000i64..253_402_300_799_000_000i64, hour in any::<bool>()) {
            let g = if hour { Granularity::Hour } else { Granularity::Day };
            let key = PartitionKey::for_sample(Table::Process, &zone, t, g);
            prop_assert!(key.start_us <= t && t < key.end_us());
            prop_assert_eq!(PartitionKey::parse_relative_dir(&key.relative_dir()).unwrap(), key);
        }
    }
}

//! Partition keys: (table, zone, UTC period) <-> `table/zone=Z/date=YYYY-MM-DD[/hour=HH]` or
//! `table/zone=Z/month=YYYY-MM`.
//!
//! `Z` is the zone name escaped the hive way ([`escape_partition_value`]). A file system
//! allows 255 bytes in a name, and real zone names (a Kubernetes container's cgroup path)
//! run past 190 bytes before escaping, so a name whose escaped form is longer than
//! [`MAX_ZONE_DIR_VALUE`] bytes is stored under a *bounded form*: the first bytes of the
//! escaped name, `~`, and 32 hex digits of a 128-bit SipHash-1-3 of the whole name
//! ([`zone_dir_value`]). `~` is escaped in every other name, so the two forms never meet, and
//! the bounded form is a function of the name, so one zone always maps to one directory
//! (format version 1 did not escape `~`; [`PartitionDir::holds_zone`] still finds its
//! directories, whatever their shape). The
//! bounded form cannot be turned back into the name: the `zone` column of every file holds
//! the whole name.

use std::hash::Hasher;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::{LayoutError, RollupLevel, Table, escape_partition_value, unescape_partition_value};

/// Longest escaped zone name stored as it is in a directory name; longer ones take the
/// bounded form (at most this long too: `zone=` + 200 bytes stays far below 255).
pub const MAX_ZONE_DIR_VALUE: usize = 200;
const HASH_HEX: usize = 32;

/// The value of a zone's `zone=` directory: its escaped name, or the bounded form for a
/// name whose escaped form is longer than [`MAX_ZONE_DIR_VALUE`] (see the module docs).
///
/// ```
/// use archive_layout::{zone_dir_value, MAX_ZONE_DIR_VALUE};
/// assert_eq!(zone_dir_value("web/01"), "web%2F01");
/// let long = format!("kubepods.slice/{}", "x".repeat(300));
/// let v = zone_dir_value(&long);
/// assert!(v.len() <= MAX_ZONE_DIR_VALUE && v.starts_with("kubepods.slice%2Fxxx"));
/// assert_ne!(v, zone_dir_value(&format!("{long}y")));
/// ```
pub fn zone_dir_value(zone: &str) -> String {
    let escaped = escape_partition_value(zone);
    if escaped.len() <= MAX_ZONE_DIR_VALUE {
        return escaped;
    }
    let mut h = SipHasher13::new();
    h.write(zone.as_bytes());
    let hash = h.finish128().as_u128();
    // Cut at a character boundary that does not split a %XX escape (every '%' of an
    // escaped name starts one).
    let bytes = escaped.as_bytes();
    let mut cut = MAX_ZONE_DIR_VALUE - 1 - HASH_HEX;
    while !escaped.is_char_boundary(cut) || bytes[cut - 1] == b'%' || bytes[cut - 2] == b'%' {
        cut -= 1;
    }
    format!("{}~{hash:032x}", &escaped[..cut])
}

/// Whether a `zone=` directory value is the bounded form of a long name.
pub fn is_bounded_zone_dir_value(value: &str) -> bool {
    value.len() > HASH_HEX
        && value.as_bytes()[value.len() - HASH_HEX - 1] == b'~'
        && value[value.len() - HASH_HEX..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// How much sample time one partition covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Granularity {
    /// One partition per UTC hour (the default): `date=YYYY-MM-DD/hour=HH`.
    #[default]
    Hour,
    /// One partition per UTC day: `date=YYYY-MM-DD`.
    Day,
    /// One partition per UTC calendar month: `month=YYYY-MM`. Written only by a month
    /// compaction (never by a flush or a seal), so no run has this granularity.
    Month,
}

/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;
/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

impl Granularity {
    /// Start of the period holding `time_us` (floor, also for times before 1970).
    pub fn period_start(self, time_us: i64) -> i64 {
        match self {
            Granularity::Hour => time_us.div_euclid(HOUR_US) * HOUR_US,
            Granularity::Day => time_us.div_euclid(DAY_US) * DAY_US,
            Granularity::Month => {
                let Some(t) = DateTime::<Utc>::from_timestamp_micros(time_us) else { return time_us };
                month_start(t.year(), t.month()).unwrap_or(time_us)
            }
        }
    }

    /// One past the last microsecond of the period that starts at `start_us` (a value of
    /// [`Granularity::period_start`]).
    pub fn period_end(self, start_us: i64) -> i64 {
        match self {
            Granularity::Hour => start_us + HOUR_US,
            Granularity::Day => start_us + DAY_US,
            Granularity::Month => {
                let Some(t) = DateTime::<Utc>::from_timestamp_micros(start_us) else { return start_us + 31 * DAY_US };
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                month_start(y, m).unwrap_or(start_us + 31 * DAY_US)
            }
        }
    }

    /// The name a catalog entry and a file's metadata use: `hour`, `day`, `month`.
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Month => "month",
        }
    }

    /// Parses [`Granularity::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hour" => Some(Granularity::Hour),
            "day" => Some(Granularity::Day),
            "month" => Some(Granularity::Month),
            _ => None,
        }
    }
}

fn month_start(year: i32, month: u32) -> Option<i64> {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d).timestamp_micros())
}

impl std::str::FromStr for Granularity {
    type Err = String;
    /// The partitions a flush writes (`--partition`): `hour` or `day`; months come only
    /// from compaction.
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
    /// `Some` for a partition of the table's rollup of that level (always a day partition).
    pub rollup: Option<RollupLevel>,
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
        Self { table, rollup: None, zone: zone.to_owned(), start_us: granularity.period_start(time_us), granularity }
    }

    /// The partition of `level`'s rollup of this (day) partition's rows.
    pub fn rollup_of(&self, level: RollupLevel) -> Self {
        Self { rollup: Some(level), ..self.clone() }
    }

    /// The name of the directory its table's files are under (`cpu`, `cpu_1m`).
    pub fn table_dir_name(&self) -> &'static str {
        table_dir_name(self.table, self.rollup)
    }

    /// One past the last microsecond of the period.
    pub fn end_us(&self) -> i64 {
        self.granularity.period_end(self.start_us)
    }

    /// The partition directory relative to the archive root.
    pub fn relative_dir(&self) -> PathBuf {
        let start = DateTime::<Utc>::from_timestamp_micros(self.start_us).unwrap_or_default();
        let mut dir = PathBuf::from(self.table_dir_name());
        dir.push(format!("zone={}", zone_dir_value(&self.zone)));
        if self.granularity == Granularity::Month {
            dir.push(format!("month={}", start.format("%Y-%m")));
            return dir;
        }
        dir.push(format!("date={}", start.format("%Y-%m-%d")));
        if self.granularity == Granularity::Hour {
            dir.push(format!("hour={:02}", start.hour()));
        }
        dir
    }

    /// Parses a partition directory relative to the archive root (inverse of
    /// [`PartitionKey::relative_dir`]). A directory of a long zone name (bounded form) does
    /// not name its zone: use [`PartitionDir::parse_relative`] for those.
    pub fn parse_relative_dir(dir: &Path) -> Result<Self, LayoutError> {
        let parsed = PartitionDir::parse_relative(dir)?;
        let zone = parsed.zone().ok_or_else(|| LayoutError::BadPath {
            path: dir.display().to_string(),
            reason: "a long zone name's directory holds a hash; the name is in the files",
        })?;
        Ok(Self { table: parsed.table, rollup: parsed.rollup, zone, start_us: parsed.start_us, granularity: parsed.granularity })
    }
}

/// A partition directory as found on disk: what its path says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionDir {
    /// The table.
    pub table: Table,
    /// `Some` for a directory of the table's rollup of that level.
    pub rollup: Option<RollupLevel>,
    /// The `zone=` value as in the path (escaped, or the bounded form of a long name).
    pub zone_value: String,
    /// First microsecond of the period (UTC).
    pub start_us: i64,
    /// Length of the period.
    pub granularity: Granularity,
}

impl PartitionDir {
    /// The zone, unless the directory holds the bounded form of a long name.
    pub fn zone(&self) -> Option<String> {
        if is_bounded_zone_dir_value(&self.zone_value) { None } else { unescape_partition_value(&self.zone_value) }
    }

    /// Whether rows of `zone` are stored in this directory (format version 1 left `~`
    /// unescaped; such directories still match their zone).
    pub fn holds_zone(&self, zone: &str) -> bool {
        // The second test also covers a version 1 name of the bounded form's shape (`x~` and
        // 32 hex digits, stored as it was). It may match a bounded directory of another zone
        // for a name that is literally that form unescaped: reading more than needed, never
        // less (readers filter rows by the `zone` column anyway).
        zone_dir_value(zone) == self.zone_value || unescape_partition_value(&self.zone_value).as_deref() == Some(zone)
    }

    /// One past the last microsecond of the period.
    pub fn end_us(&self) -> i64 {
        self.granularity.period_end(self.start_us)
    }

    /// Parses a partition directory relative to the archive root.
    pub fn parse_relative(dir: &Path) -> Result<Self, LayoutError> {
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
            _ => return Err(bad("expected table/zone=Z/date=D[/hour=H] or table/zone=Z/month=M")),
        };
        let (table, rollup) = match RollupLevel::parse_table_name(table) {
            Some((t, level)) => (t, Some(level)),
            None => (Table::from_name(table)?, None),
        };
        let zone = zone.strip_prefix("zone=").ok_or_else(|| bad("missing zone="))?;
        if !is_bounded_zone_dir_value(zone) && unescape_partition_value(zone).is_none() {
            return Err(bad("bad escape in zone"));
        }
        if let Some(month) = date.strip_prefix("month=") {
            if hour.is_some() {
                return Err(bad("a month directory has no hour directories"));
            }
            let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad("bad month"))?;
            if first.format("%Y-%m").to_string() != month {
                return Err(bad("bad month"));
            }
            let start_us = month_start(first.year(), first.month()).ok_or_else(|| bad("bad month"))?;
            return Ok(Self { table, rollup, zone_value: zone.to_owned(), start_us, granularity: Granularity::Month });
        }
        let date = date.strip_prefix("date=").ok_or_else(|| bad("missing date= or month="))?;
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
        if rollup.is_some() && granularity == Granularity::Hour {
            return Err(bad("a rollup has day and month partitions only"));
        }
        Ok(Self { table, rollup, zone_value: zone.to_owned(), start_us, granularity })
    }
}

/// The directory a table's (or its rollup's) files are under: `cpu`, `cpu_1m`.
pub fn table_dir_name(table: Table, rollup: Option<RollupLevel>) -> &'static str {
    match rollup {
        None => table.name(),
        Some(level) => level.table_name(table),
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
        let rollup = key.rollup_of(RollupLevel::Minute);
        assert_eq!(rollup.relative_dir(), Path::new("mem_1m/zone=global/date=2025-11-24"));
        assert_eq!(PartitionKey::parse_relative_dir(&rollup.relative_dir()).unwrap(), rollup);
        assert!(PartitionDir::parse_relative(Path::new("mem_1m/zone=global/date=2025-11-24/hour=01")).is_err());
    }

    #[test]
    fn month_partitions_follow_the_calendar() {
        let key = PartitionKey::for_sample(Table::Cpu, "a/b", 1_764_003_599_999_999, Granularity::Month);
        assert_eq!(key.relative_dir(), Path::new("cpu/zone=a%2Fb/month=2025-11"));
        assert_eq!(key.end_us() - key.start_us, 30 * DAY_US, "November");
        assert_eq!(PartitionKey::parse_relative_dir(&key.relative_dir()).unwrap(), key);
        let dec = PartitionKey { start_us: key.end_us(), ..key.clone() };
        assert_eq!(dec.relative_dir(), Path::new("cpu/zone=a%2Fb/month=2025-12"));
        assert_eq!(dec.end_us() - dec.start_us, 31 * DAY_US, "December, into the next year");
        assert_eq!(PartitionKey::parse_relative_dir(Path::new("cpu/zone=a/month=2026-01")).unwrap().start_us, dec.end_us());
        let feb = PartitionKey::parse_relative_dir(Path::new("cpu/zone=a/month=2024-02")).unwrap();
        assert_eq!(feb.end_us() - feb.start_us, 29 * DAY_US, "a leap year's February");
        assert_eq!(Granularity::Month.period_start(feb.end_us() - 1), feb.start_us);
        assert_eq!(Granularity::Month.period_start(-1), Granularity::Month.period_end(-1) - 31 * DAY_US, "December 1969");
        let rollup = key.rollup_of(RollupLevel::Hour);
        assert_eq!(rollup.relative_dir(), Path::new("cpu_1h/zone=a%2Fb/month=2025-11"));
        assert_eq!(PartitionKey::parse_relative_dir(&rollup.relative_dir()).unwrap(), rollup);
        for bad in
            ["cpu/zone=a/month=2025-13", "cpu/zone=a/month=2025-1", "cpu/zone=a/month=2025-11/hour=01", "cpu/zone=a/month=x"]
        {
            assert!(PartitionDir::parse_relative(Path::new(bad)).is_err(), "{bad}");
        }
        for g in [Granularity::Hour, Granularity::Day, Granularity::Month] {
            assert_eq!(Granularity::from_name(g.name()), Some(g));
        }
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
        for p in [
            "cpu",
            "cpu/zone=a",
            "cpu/zone=a/date=x/hour=1",
            "cpu/zone=a/date=2025-01-01/hour=24",
            "nope/zone=a/date=2025-01-01",
            "cpu/zone=%zz/date=2025-01-01",
            "../cpu/zone=a/date=2025-01-01",
        ] {
            assert!(PartitionKey::parse_relative_dir(Path::new(p)).is_err(), "{p}");
        }
    }

    #[test]
    fn long_zone_names_take_a_bounded_form_that_stays_one_component() {
        let k8s = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
        for zone in
            [k8s.to_owned(), "é".repeat(600), "%".repeat(1024), "/".repeat(70), format!("{}~{}", "a".repeat(300), "0".repeat(32))]
        {
            let key = PartitionKey::for_sample(Table::Cpu, &zone, 0, Granularity::Hour);
            let dir = key.relative_dir();
            let zone_dir = dir.components().nth(1).unwrap().as_os_str().to_str().unwrap().to_owned();
            assert!(zone_dir.len() <= 5 + MAX_ZONE_DIR_VALUE, "{} bytes", zone_dir.len());
            assert_eq!(dir.components().count(), 4);
            let parsed = PartitionDir::parse_relative(&dir).unwrap();
            assert!(parsed.holds_zone(&zone) && !parsed.holds_zone(&format!("{zone}x")));
            if escape_partition_value(&zone).len() <= MAX_ZONE_DIR_VALUE {
                assert_eq!(parsed.zone().as_ref(), Some(&zone), "a name that fits is stored as it is");
                assert_eq!(PartitionKey::parse_relative_dir(&dir).unwrap(), key);
            } else {
                assert_eq!(parsed.zone(), None);
                assert!(PartitionKey::parse_relative_dir(&dir).is_err());
            }
        }
        // A name with `~` that fits is escaped, so it never looks like a bounded form.
        let tilde = format!("x~{}", "0".repeat(32));
        assert_eq!(zone_dir_value(&tilde), format!("x%7E{}", "0".repeat(32)));
        let key = PartitionKey::for_sample(Table::Cpu, &tilde, 0, Granularity::Hour);
        assert_eq!(PartitionKey::parse_relative_dir(&key.relative_dir()).unwrap(), key);
        // A version 1 directory with a bare `~` still matches its zone, even in the shape of
        // a bounded form.
        let v1 = PartitionDir::parse_relative(Path::new("cpu/zone=a~b/date=2025-01-01/hour=00")).unwrap();
        assert!(v1.holds_zone("a~b"));
        let v1_like_bounded = format!("app~{}", "0123456789abcdef".repeat(2));
        let v1 = PartitionDir::parse_relative(Path::new(&format!("cpu/zone={v1_like_bounded}/date=2025-01-01/hour=00"))).unwrap();
        assert!(v1.holds_zone(&v1_like_bounded));
    }

    proptest! {
        #[test]
        fn any_zone_up_to_4kib_has_one_bounded_directory(zone in "\\PC{1,1100}|[%/~é]{150,1200}", other in "\\PC{1,50}") {
            let v = zone_dir_value(&zone);
            prop_assert!(v.len() <= MAX_ZONE_DIR_VALUE);
            prop_assert!(!v.contains('/') && v != "." && v != "..");
            let dir = PartitionKey::for_sample(Table::Net, &zone, 0, Granularity::Day).relative_dir();
            let parsed = PartitionDir::parse_relative(&dir).unwrap();
            prop_assert!(parsed.holds_zone(&zone));
            prop_assert_eq!(parsed.holds_zone(&other), other == zone);
            if let Some(z) = parsed.zone() {
                prop_assert_eq!(z, zone);
            }
        }

        #[test]
        fn round_trips(zone in "\\PC{0,40}", t in -2_208_988_800_000_000i64..253_402_300_799_000_000i64, g in 0..3u8) {
            let g = [Granularity::Hour, Granularity::Day, Granularity::Month][usize::from(g)];
            let key = PartitionKey::for_sample(Table::Process, &zone, t, g);
            prop_assert!(key.start_us <= t && t < key.end_us());
            prop_assert_eq!(PartitionKey::parse_relative_dir(&key.relative_dir()).unwrap(), key);
        }
    }
}

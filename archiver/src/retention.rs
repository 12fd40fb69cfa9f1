//! Retention: which published files leave the archive, by age per table and, optionally, by
//! a disk budget that removes the oldest first. A pure function over catalog entries
//! ([`pick_expired`]), tested without files; the archive writer records the removal in one
//! catalog edit that also retires the files, which are deleted after the grace period (so
//! `dq` and other readers that listed them finish). Runs are never removed here.
//!
//! Rules name a raw table (`cpu=30d`), a rollup table (`cpu_1m=365d`), or every table of a
//! level (`*=30d` every raw table, `*_1m=365d`, `*_1h=...`); a table's own rule wins. Under a
//! disk budget raw files go first (oldest first), rollups only once no raw file is left.

use std::collections::BTreeMap;
use std::time::Duration;

use archive_layout::{RollupLevel, Table};
use catalog::Entry;

/// The shortest raw retention age under which a table's months are compacted.
pub const MONTH_FILE_MIN_AGE: Duration = Duration::from_secs(62 * 86_400);

/// A raw table or one of its rollups.
pub type Dataset = (Table, Option<RollupLevel>);

/// How long each table's files are kept, and the disk budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Per table (raw or rollup): files whose period ended this long before the newest
    /// sample go.
    pub per_table: BTreeMap<Dataset, Duration>,
    /// Per level (`None`: raw tables), for tables without their own rule (absent: kept
    /// forever).
    pub per_level: BTreeMap<Option<RollupLevel>, Duration>,
    /// The published files' bytes are kept under this; the oldest periods go first.
    pub disk_budget_bytes: Option<u64>,
}

impl RetentionPolicy {
    /// Whether it never removes anything.
    pub fn keeps_everything(&self) -> bool {
        self.per_table.is_empty() && self.per_level.is_empty() && self.disk_budget_bytes.is_none()
    }

    /// Whether `table`'s raw files are kept long enough for month files: two months at
    /// least, or forever. (Retention removes a file once its whole period is past the age,
    /// so a month file of a table kept 30 days would hold its first days two months.)
    pub fn keeps_months_of(&self, table: Table) -> bool {
        self.age_of((table, None)).is_none_or(|age| age >= MONTH_FILE_MIN_AGE)
    }

    fn age_of(&self, dataset: Dataset) -> Option<Duration> {
        self.per_table.get(&dataset).or_else(|| self.per_level.get(&dataset.1)).copied()
    }

    /// Parses one `--retain` value: `TABLE=AGE`, `*=AGE`, `*_1m=AGE` or `*_1h=AGE` (see the
    /// module docs), AGE a number with `h` or `d`.
    pub fn add_rule(&mut self, rule: &str) -> Result<(), String> {
        let (table, age) = rule.split_once('=').ok_or_else(|| format!("{rule:?} is not TABLE=AGE (for example cpu=30d)"))?;
        let age = parse_age(age)?;
        if table == "*" {
            self.per_level.insert(None, age);
        } else if let Some(level) = RollupLevel::ALL.into_iter().find(|l| table == format!("*_{}", l.suffix())) {
            self.per_level.insert(Some(level), age);
        } else {
            self.per_table.insert(dataset_of(table).ok_or_else(|| format!("unknown table {table:?}"))?, age);
        }
        Ok(())
    }
}

/// The raw or rollup table a name names.
fn dataset_of(name: &str) -> Option<Dataset> {
    match RollupLevel::parse_table_name(name) {
        Some((t, l)) => Some((t, Some(l))),
        None => Table::from_name(name).ok().map(|t| (t, None)),
    }
}

/// `30d`, `12h`.
fn parse_age(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not an age (a number of hours or days: 36h, 30d)");
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = n.parse().map_err(|_| bad())?;
    match unit {
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(n.saturating_mul(86_400))),
        _ => Err(bad()),
    }
}

/// The zone files `policy` removes when the newest sample is at `latest_us`: every file
/// whose period ended at least its table's age before it, then, while the rest is over the
/// disk budget, the oldest periods (whole periods, every table and zone of one at once).
pub fn pick_expired<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    policy: &RetentionPolicy,
    latest_us: i64,
) -> Vec<&'a Entry> {
    let mut out = Vec::new();
    let mut kept: Vec<&Entry> = Vec::new();
    for e in entries {
        if e.is_run() {
            continue;
        }
        let (Some(dataset), Some(end)) = (dataset_of(&e.table), e.period_end_us()) else { continue };
        match policy.age_of(dataset) {
            Some(age) if end <= latest_us.saturating_sub(age.as_micros() as i64) => out.push(e),
            _ => kept.push(e),
        }
    }
    if let Some(budget) = policy.disk_budget_bytes {
        let mut total: u64 = kept.iter().map(|e| e.bytes).sum();
        // Raw files before rollups, oldest first.
        let rollup = |e: &Entry| e.table().is_none();
        kept.sort_by_key(|e| (rollup(e), e.period_start_us, e.period_end_us(), e.path.clone()));
        let mut i = 0;
        while total > budget && i < kept.len() {
            // A whole period end at a time, so a budget never leaves half of an hour.
            let group = (rollup(kept[i]), kept[i].period_end_us());
            while i < kept.len() && (rollup(kept[i]), kept[i].period_end_us()) == group {
                total -= kept[i].bytes;
                out.push(kept[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn entry(table: &str, start: i64, bytes: u64) -> Entry {
        Entry {
            path: format!("{table}/{start}"),
            table: table.into(),
            zone: Some("z".into()),
            period: "hour".into(),
            period_start_us: start,
            min_time_us: Some(start),
            max_time_us: Some(start + 1),
            rows: 1,
            bytes,
            columns: Default::default(),
            index: None,
        }
    }

    fn paths(v: Vec<&Entry>) -> Vec<String> {
        let mut p: Vec<String> = v.into_iter().map(|e| e.path.clone()).collect();
        p.sort();
        p
    }

    #[test]
    fn month_files_only_for_tables_kept_two_months_or_more() {
        let mut p = RetentionPolicy::default();
        assert!(p.keeps_months_of(Table::Cpu));
        p.add_rule("*=90d").unwrap();
        p.add_rule("cpu=30d").unwrap();
        p.add_rule("mem=62d").unwrap();
        p.add_rule("*_1h=7d").unwrap();
        assert!(!p.keeps_months_of(Table::Cpu));
        assert!(p.keeps_months_of(Table::Mem) && p.keeps_months_of(Table::Disk), "a rollup's age does not count");
    }

    #[test]
    fn each_table_keeps_its_age_and_the_default_covers_the_rest() {
        let mut policy = RetentionPolicy::default();
        policy.add_rule("process=2h").unwrap();
        policy.add_rule("*=5h").unwrap();
        let entries: Vec<Entry> = (0..8).flat_map(|h| [entry("process", h * HOUR, 1), entry("cpu", h * HOUR, 1)]).collect();
        let latest = 8 * HOUR;
        let gone = paths(pick_expired(&entries, &policy, latest));
        let want: Vec<String> =
            (0..6).map(|h| format!("process/{}", h * HOUR)).chain((0..3).map(|h| format!("cpu/{}", h * HOUR))).collect();
        let mut want = want;
        want.sort();
        assert_eq!(gone, want);
        assert!(pick_expired(&entries, &RetentionPolicy::default(), latest).is_empty());
        let mut run = entry("cpu", 0, 1);
        run.zone = None;
        assert!(pick_expired([&run], &policy, latest).is_empty(), "runs are never removed by retention");
    }

    #[test]
    fn a_disk_budget_removes_whole_oldest_periods_first() {
        let policy = RetentionPolicy { disk_budget_bytes: Some(25), ..Default::default() };
        let entries: Vec<Entry> = (0..4).flat_map(|h| [entry("cpu", h * HOUR, 5), entry("mem", h * HOUR, 5)]).collect();
        let gone = paths(pick_expired(&entries, &policy, 4 * HOUR));
        assert_eq!(gone, vec!["cpu/0".to_owned(), "cpu/3600000000".into(), "mem/0".into(), "mem/3600000000".into()]);
        // Rollups go only once no raw file is left, however old they are.
        let mut with_rollups = entries.clone();
        with_rollups.extend((0..4).map(|h| entry("cpu_1m", h * HOUR - 100 * HOUR, 5)));
        let gone = paths(pick_expired(&with_rollups, &policy, 4 * HOUR));
        assert!(gone.iter().all(|p| !p.starts_with("cpu_1m")), "{gone:?}");
        let tight = RetentionPolicy { disk_budget_bytes: Some(5), ..Default::default() };
        let gone = pick_expired(&with_rollups, &tight, 4 * HOUR);
        assert_eq!(gone.len(), 8 + 3, "every raw file, then the oldest rollups");
    }

    #[test]
    fn raw_and_rollup_levels_keep_their_own_ages() {
        let mut policy = RetentionPolicy::default();
        for rule in ["*=2h", "*_1m=5h", "cpu_1h=1h"] {
            policy.add_rule(rule).unwrap();
        }
        let entries: Vec<Entry> =
            (0..8).flat_map(|h| ["cpu", "cpu_1m", "cpu_1h", "mem_1h"].map(|t| entry(t, h * HOUR, 1))).collect();
        let gone = paths(pick_expired(&entries, &policy, 8 * HOUR));
        let count = |t: &str| gone.iter().filter(|p| p.split('/').next() == Some(t)).count();
        assert_eq!((count("cpu"), count("cpu_1m"), count("cpu_1h"), count("mem_1h")), (6, 3, 7, 0));
    }

    #[test]
    fn rules_parse_or_say_why_not() {
        let mut p = RetentionPolicy::default();
        assert!(p.add_rule("cpu=30d").is_ok());
        assert_eq!(p.per_table[&(Table::Cpu, None)], Duration::from_secs(30 * 86_400));
        assert!(p.add_rule("cpu_1m=365d").is_ok() && p.add_rule("*_1h=3650d").is_ok());
        assert_eq!(p.per_table[&(Table::Cpu, Some(RollupLevel::Minute))], Duration::from_secs(365 * 86_400));
        assert_eq!(p.per_level[&Some(RollupLevel::Hour)], Duration::from_secs(3650 * 86_400));
        assert!(p.add_rule("zonename_1m=1d").unwrap_err().contains("unknown table"));
        assert!(p.add_rule("cpu=30").unwrap_err().contains("not an age"));
        assert!(p.add_rule("nope=1d").unwrap_err().contains("unknown table"));
        assert!(p.add_rule("cpu").unwrap_err().contains("TABLE=AGE"));
    }
}

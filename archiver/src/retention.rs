//! Retention: which published files leave the archive, by age per table and, optionally, by
//! a disk budget that removes the oldest first. A pure function over catalog entries
//! ([`pick_expired`]), tested without files; the archive writer records the removal in one
//! catalog edit that also retires the files, which are deleted after the grace period (so
//! `dq` and other readers that listed them finish). Runs are never removed here.

use std::collections::BTreeMap;
use std::time::Duration;

use archive_layout::Table;
use catalog::Entry;

/// How long each table's files are kept, and the disk budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Per table: files whose period ended this long before the newest sample go.
    pub per_table: BTreeMap<Table, Duration>,
    /// For tables without their own: the same (`None`: kept forever).
    pub default: Option<Duration>,
    /// The published files' bytes are kept under this; the oldest periods go first.
    pub disk_budget_bytes: Option<u64>,
}

impl RetentionPolicy {
    /// Whether it never removes anything.
    pub fn keeps_everything(&self) -> bool {
        self.per_table.is_empty() && self.default.is_none() && self.disk_budget_bytes.is_none()
    }

    fn age_of(&self, table: Table) -> Option<Duration> {
        self.per_table.get(&table).copied().or(self.default)
    }

    /// Parses one `--retain` value: `TABLE=AGE` or `*=AGE`, AGE a number with `h` or `d`.
    pub fn add_rule(&mut self, rule: &str) -> Result<(), String> {
        let (table, age) = rule.split_once('=').ok_or_else(|| format!("{rule:?} is not TABLE=AGE (for example cpu=30d)"))?;
        let age = parse_age(age)?;
        match table {
            "*" => self.default = Some(age),
            t => {
                let table = Table::from_name(t).map_err(|e| e.to_string())?;
                self.per_table.insert(table, age);
            }
        }
        Ok(())
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
        let (Some(table), Some(end)) = (e.table(), e.period_end_us()) else { continue };
        match policy.age_of(table) {
            Some(age) if end <= latest_us.saturating_sub(age.as_micros() as i64) => out.push(e),
            _ => kept.push(e),
        }
    }
    if let Some(budget) = policy.disk_budget_bytes {
        let mut total: u64 = kept.iter().map(|e| e.bytes).sum();
        kept.sort_by_key(|e| (e.period_start_us, e.period_end_us(), e.path.clone()));
        let mut i = 0;
        while total > budget && i < kept.len() {
            // A whole period end at a time, so a budget never leaves half of an hour.
            let end = kept[i].period_end_us();
            while i < kept.len() && kept[i].period_end_us() == end {
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
        }
    }

    fn paths(v: Vec<&Entry>) -> Vec<String> {
        let mut p: Vec<String> = v.into_iter().map(|e| e.path.clone()).collect();
        p.sort();
        p
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
    }

    #[test]
    fn rules_parse_or_say_why_not() {
        let mut p = RetentionPolicy::default();
        assert!(p.add_rule("cpu=30d").is_ok());
        assert_eq!(p.per_table[&Table::Cpu], Duration::from_secs(30 * 86_400));
        assert!(p.add_rule("cpu=30").unwrap_err().contains("not an age"));
        assert!(p.add_rule("nope=1d").unwrap_err().contains("unknown table"));
        assert!(p.add_rule("cpu").unwrap_err().contains("TABLE=AGE"));
    }
}

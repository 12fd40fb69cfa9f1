//! What a query's filters say about `zone` and `time`, so the scan can skip partitions.
//!
//! Only conjunctions of simple comparisons are understood (`zone = 'a'`, `zone IN (...)`,
//! `time >= ts`, `time < ts`, `BETWEEN`, either operand order, `OR` of zone equalities);
//! anything else leaves the range open. The result only ever *widens* what is read:
//! DataFusion still applies every filter to the rows, so a missed case costs speed, never
//! correctness.

use std::collections::BTreeSet;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// The zones and time span a scan must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanBounds {
    /// `Some(set)`: only these zones can match.
    pub zones: Option<BTreeSet<String>>,
    /// Inclusive lower bound on `time` (µs).
    pub time_min_us: i64,
    /// Inclusive upper bound on `time` (µs).
    pub time_max_us: i64,
}

impl Default for ScanBounds {
    fn default() -> Self {
        Self { zones: None, time_min_us: i64::MIN, time_max_us: i64::MAX }
    }
}

impl ScanBounds {
    /// Bounds implied by a list of filters (all of which hold).
    pub fn from_filters(filters: &[Expr]) -> Self {
        let mut b = ScanBounds::default();
        for f in filters {
            b.and(f);
        }
        b
    }

    /// Whether a partition of `zone` covering `[start_us, end_us)` can hold matching rows.
    pub fn admits(&self, zone: &str, start_us: i64, end_us: i64) -> bool {
        self.zones.as_ref().is_none_or(|z| z.contains(zone)) && start_us <= self.time_max_us && end_us > self.time_min_us
    }

    /// Whether a zone can match.
    pub fn admits_zone(&self, zone: &str) -> bool {
        self.zones.as_ref().is_none_or(|z| z.contains(zone))
    }

    /// Whether a period `[start_us, end_us)` can hold matching rows (zones aside).
    pub fn admits_period(&self, start_us: i64, end_us: i64) -> bool {
        start_us <= self.time_max_us && end_us > self.time_min_us
    }

    fn restrict_zones(&mut self, zones: BTreeSet<String>) {
        self.zones = Some(match self.zones.take() {
            Some(old) => old.intersection(&zones).cloned().collect(),
            None => zones,
        });
    }

    fn and(&mut self, e: &Expr) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
                self.and(left);
                self.and(right);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if let Some(zones) = zone_set(e) {
                    self.restrict_zones(zones);
                    return;
                }
                let (op, ts) = match (column_name(left), timestamp_us(right), column_name(right), timestamp_us(left)) {
                    (Some("time"), Some(ts), _, _) => (*op, ts),
                    (_, _, Some("time"), Some(ts)) => match op.swap() {
                        Some(op) => (op, ts),
                        None => return,
                    },
                    _ => return,
                };
                match op {
                    Operator::Eq => {
                        self.time_min_us = self.time_min_us.max(ts);
                        self.time_max_us = self.time_max_us.min(ts);
                    }
                    Operator::Gt | Operator::GtEq => self.time_min_us = self.time_min_us.max(ts),
                    Operator::Lt | Operator::LtEq => self.time_max_us = self.time_max_us.min(ts),
                    _ => {}
                }
            }
            Expr::Between(Between { expr, negated: false, low, high }) if column_name(expr) == Some("time") => {
                if let (Some(lo), Some(hi)) = (timestamp_us(low), timestamp_us(high)) {
                    self.time_min_us = self.time_min_us.max(lo);
                    self.time_max_us = self.time_max_us.min(hi);
                }
            }
            Expr::InList(_) => {
                if let Some(zones) = zone_set(e) {
                    self.restrict_zones(zones);
                }
            }
            _ => {}
        }
    }
}

/// The zones an expression limits `zone` to, if it is a zone equality, IN list, or an OR
/// of those.
fn zone_set(e: &Expr) -> Option<BTreeSet<String>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            let value = match (column_name(left), column_name(right)) {
                (Some("zone"), _) => string_literal(right)?,
                (_, Some("zone")) => string_literal(left)?,
                _ => return None,
            };
            Some(BTreeSet::from([value]))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let mut a = zone_set(left)?;
            a.extend(zone_set(right)?);
            Some(a)
        }
        Expr::InList(list) if !list.negated && column_name(&list.expr) == Some("zone") => {
            list.list.iter().map(string_literal).collect()
        }
        _ => None,
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => {
            Some(s.clone())
        }
        Expr::Literal(ScalarValue::Dictionary(_, v), _) => string_literal(&Expr::Literal((**v).clone(), None)),
        _ => None,
    }
}

/// A timestamp literal in µs (any unit; rounded outward is unnecessary since the bounds
/// are inclusive and partitions are whole hours).
fn timestamp_us(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
            ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000)),
            _ => None,
        },
        Expr::Cast(c) => timestamp_us(&c.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(us: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())))
    }

    #[test]
    fn zone_and_time_conjunctions() {
        let b = ScanBounds::from_filters(&[col("zone").eq(lit("a")), col("time").gt_eq(ts(10)).and(col("time").lt(ts(20)))]);
        assert_eq!(b.zones, Some(BTreeSet::from(["a".to_owned()])));
        assert_eq!((b.time_min_us, b.time_max_us), (10, 20));
        assert!(b.admits("a", 15, 25) && !b.admits("b", 15, 25) && !b.admits("a", 21, 30) && !b.admits("a", 0, 10));
    }

    #[test]
    fn reversed_in_list_or_and_between() {
        let b = ScanBounds::from_filters(&[
            ts(100).lt_eq(col("time")),
            col("zone").in_list(vec![lit("a"), lit("b")], false),
            col("zone").eq(lit("b")).or(col("zone").eq(lit("c"))),
            col("time").between(ts(50), ts(300)),
        ]);
        assert_eq!(b.zones, Some(BTreeSet::from(["b".to_owned()])));
        assert_eq!((b.time_min_us, b.time_max_us), (100, 300));
    }

    #[test]
    fn anything_else_leaves_bounds_open() {
        let b = ScanBounds::from_filters(&[
            col("zone").not_eq(lit("a")),
            col("zone").eq(lit("a")).or(col("usage").gt(lit(5))),
            col("time").gt(col("time")),
            col("zone").in_list(vec![lit("a")], true),
        ]);
        assert_eq!(b, ScanBounds::default());
    }
}

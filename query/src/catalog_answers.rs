//! Questions the catalog answers without reading rows: `min(time)`, `max(time)` and
//! `count(*)` per zone (or over the whole table) of an archive table scanned without
//! filters, such as "latest sample per zone" (`SELECT zone, max(time) FROM cpu GROUP BY
//! zone`).
//!
//! An optimizer rule ([`CatalogAnswers`]) replaces such an aggregate over an
//! [`ArchiveTable`] scan with a `Values` node built from the statement's catalog snapshot:
//! each zone file's entry (rows, time range from its footer) and, for the runs of open
//! periods, the per-zone row ranges in their footers (skipping a run's zones already
//! sealed, as a scan does). `EXPLAIN` shows the `Values` node where the scan would be.
//! Anything else (a filter, another aggregate or grouping, an archive without a catalog,
//! a run without per-zone ranges) is left to the scan. The answer is as exact as the
//! catalog: a file removed by hand is still counted until `archiver check --rebuild`.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, EmptyRelation, Expr, LogicalPlan, TableScan, Values};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::archive_table::ArchiveTable;

/// One aggregate the catalog answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answerable {
    MinTime,
    MaxTime,
    Count,
}

/// Per zone: rows, earliest and latest sample (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneSummary {
    /// Rows.
    pub rows: u64,
    /// Earliest sample.
    pub min_time_us: i64,
    /// Latest sample.
    pub max_time_us: i64,
}

impl ZoneSummary {
    fn add(&mut self, rows: u64, lo: i64, hi: i64) {
        self.rows += rows;
        self.min_time_us = self.min_time_us.min(lo);
        self.max_time_us = self.max_time_us.max(hi);
    }
}

/// The optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct CatalogAnswers;

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Alias(a) => column_name(&a.expr),
        _ => None,
    }
}

fn answerable(e: &Expr) -> Option<Answerable> {
    let e = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        e => e,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = e else { return None };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    match (func.name(), params.args.as_slice()) {
        ("max", [arg]) if column_name(arg) == Some("time") => Some(Answerable::MaxTime),
        ("min", [arg]) if column_name(arg) == Some("time") => Some(Answerable::MinTime),
        // count(*), count(1) or count of a column no row leaves null (time, zone, host).
        ("count", [Expr::Literal(v, _)]) if !v.is_null() => Some(Answerable::Count),
        ("count", [arg]) if matches!(column_name(arg), Some("time" | "zone" | "host")) => Some(Answerable::Count),
        _ => None,
    }
}

fn scalar(kind: Answerable, s: &ZoneSummary, ty: &DataType) -> Option<ScalarValue> {
    Some(match (kind, ty) {
        (Answerable::MaxTime, DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
            ScalarValue::TimestampMicrosecond(Some(s.max_time_us), tz.clone())
        }
        (Answerable::MinTime, DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
            ScalarValue::TimestampMicrosecond(Some(s.min_time_us), tz.clone())
        }
        (Answerable::Count, DataType::Int64) => ScalarValue::Int64(Some(i64::try_from(s.rows).ok()?)),
        _ => return None,
    })
}

impl CatalogAnswers {
    fn answer(agg: &Aggregate) -> DfResult<Option<LogicalPlan>> {
        let LogicalPlan::TableScan(TableScan { source, filters, fetch: None, .. }) = agg.input.as_ref() else { return Ok(None) };
        if !filters.is_empty() {
            return Ok(None);
        }
        let by_zone = match agg.group_expr.as_slice() {
            [] => false,
            [g] if column_name(g) == Some("zone") => true,
            _ => return Ok(None),
        };
        let Some(kinds) = agg.aggr_expr.iter().map(answerable).collect::<Option<Vec<_>>>() else { return Ok(None) };
        let Ok(provider) = source_as_provider(source) else { return Ok(None) };
        let any: &dyn std::any::Any = provider.as_ref();
        let Some(table) = any.downcast_ref::<ArchiveTable>() else { return Ok(None) };
        let Some(zones) = table.zone_summaries() else { return Ok(None) };
        let rows: Vec<(Option<&str>, ZoneSummary)> = if by_zone {
            zones.iter().map(|(z, s)| (Some(z.as_str()), *s)).collect()
        } else {
            // Over the whole table: one row, even when it is empty (then count 0, min and max
            // NULL, which the catalog cannot type here: leave that case to the scan).
            let mut all: Option<ZoneSummary> = None;
            for s in zones.values() {
                match &mut all {
                    Some(a) => a.add(s.rows, s.min_time_us, s.max_time_us),
                    None => all = Some(*s),
                }
            }
            match all {
                Some(a) => vec![(None, a)],
                None => return Ok(None),
            }
        };
        let schema = agg.schema.clone();
        let offset = usize::from(by_zone);
        let mut values = Vec::with_capacity(rows.len());
        for (zone, s) in rows {
            let mut row = Vec::with_capacity(kinds.len() + offset);
            if let Some(z) = zone {
                let ty = schema.field(0).data_type();
                let v = match ty {
                    DataType::Utf8 => ScalarValue::Utf8(Some(z.to_owned())),
                    DataType::Utf8View => ScalarValue::Utf8View(Some(z.to_owned())),
                    DataType::LargeUtf8 => ScalarValue::LargeUtf8(Some(z.to_owned())),
                    _ => return Ok(None),
                };
                row.push(Expr::Literal(v, None));
            }
            for (i, kind) in kinds.iter().enumerate() {
                let Some(v) = scalar(*kind, &s, schema.field(offset + i).data_type()) else { return Ok(None) };
                row.push(Expr::Literal(v, None));
            }
            values.push(row);
        }
        Ok(Some(if values.is_empty() {
            LogicalPlan::EmptyRelation(EmptyRelation { produce_one_row: false, schema })
        } else {
            LogicalPlan::Values(Values { schema, values })
        }))
    }
}

impl OptimizerRule for CatalogAnswers {
    fn name(&self) -> &str {
        "catalog_answers"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        if let LogicalPlan::Aggregate(agg) = &plan {
            if let Some(answer) = Self::answer(agg)? {
                return Ok(Transformed::yes(answer));
            }
        }
        Ok(Transformed::no(plan))
    }
}

/// Folds entries and run ranges into per-zone summaries (used by [`ArchiveTable`]).
pub(crate) fn fold(parts: impl IntoIterator<Item = (String, u64, i64, i64)>) -> BTreeMap<String, ZoneSummary> {
    let mut out: BTreeMap<String, ZoneSummary> = BTreeMap::new();
    for (zone, rows, lo, hi) in parts {
        if rows == 0 {
            continue;
        }
        match out.get_mut(&zone) {
            Some(s) => s.add(rows, lo, hi),
            None => {
                out.insert(zone, ZoneSummary { rows, min_time_us: lo, max_time_us: hi });
            }
        }
    }
    out
}

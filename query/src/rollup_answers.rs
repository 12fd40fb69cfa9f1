//! Long-range aggregates answered from the rollup tables (`cpu_1h`, `cpu_1m`, ...) instead
//! of the raw rows, when that gives the same answer.
//!
//! An optimizer rule ([`RollupAnswers`]) replaces an `Aggregate` over a raw [`ArchiveTable`]
//! scan (optionally filtered) with the same aggregate over a rollup scan when:
//! - every grouping is `zone`, `host`, a series key column, or `date_trunc(UNIT, time)` with
//!   UNIT `minute` (from `TABLE_1m`) or `hour`, `day`, `week`, `month`, `quarter`, `year`
//!   (from `TABLE_1h`);
//! - every aggregate is `min`, `max`, `sum`, `count` or `avg` of a column the rollup
//!   summarises that way (`min(c)` from `c_min`, `sum(c)` from `c_sum`, `count(c)` from
//!   `c_count`, `count(*)` from `samples`, `avg(c)` from both), with no `DISTINCT`, `FILTER` or
//!   `ORDER BY`;
//! - every filter condition reads only `zone`, `host` and key columns, or is `time >= T` /
//!   `time < T` with T on a bucket boundary (a minute or an hour);
//! - and in the statement's catalog snapshot, the raw files the scan could read are exactly
//!   the day files whose rollups of that level are there (no runs, no hour files waiting for
//!   compaction, no rollup whose raw day retention removed).
//!
//! Anything else is left to the raw scan. `EXPLAIN` shows the rollup table's scan. One
//! difference: `avg` divides the rollup's exact integer sum, where the raw scan adds
//! doubles; they differ in the last digits only when a group's sum passes 2^53.

use std::sync::Arc;

use archive_layout::{RollupLevel, Table};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result as DfResult, ScalarValue, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Operator, TableScan, cast, col, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::archive_table::ArchiveTable;
use crate::pruning::ScanBounds;

/// The optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct RollupAnswers;

impl OptimizerRule for RollupAnswers {
    fn name(&self) -> &str {
        "rollup_answers"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        if let LogicalPlan::Aggregate(agg) = &plan {
            if let Some(answer) = answer(agg)? {
                return Ok(Transformed::yes(answer));
            }
        }
        Ok(Transformed::no(plan))
    }
}

/// The finer of what a query needed so far and `b` (levels order finest first).
fn finer(a: Option<RollupLevel>, b: RollupLevel) -> Option<RollupLevel> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        e => e,
    }
}

fn column(e: &Expr) -> Option<&str> {
    match unalias(e) {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

/// The level a `date_trunc(UNIT, time)` grouping needs; `None` if it is not one.
fn trunc_level(e: &Expr) -> Option<RollupLevel> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = unalias(e) else { return None };
    if func.name() != "date_trunc" {
        return None;
    }
    let [Expr::Literal(ScalarValue::Utf8(Some(unit)) | ScalarValue::Utf8View(Some(unit)), _), arg] = args.as_slice() else {
        return None;
    };
    if column(arg) != Some("time") {
        return None;
    }
    match unit.to_ascii_lowercase().as_str() {
        "minute" => Some(RollupLevel::Minute),
        "hour" | "day" | "week" | "month" | "quarter" | "year" => Some(RollupLevel::Hour),
        _ => None,
    }
}

/// An exact timestamp literal in µs.
fn exact_us(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
            ScalarValue::TimestampNanosecond(Some(ns), _) => (ns % 1_000 == 0).then_some(ns / 1_000),
            _ => None,
        },
        _ => None,
    }
}

/// A `time >= T` (`true`) or `time < T` (`false`) condition.
fn time_bound(e: &Expr) -> Option<(bool, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { return None };
    let (op, t) = match (column(left), exact_us(right), column(right), exact_us(left)) {
        (Some("time"), Some(t), _, _) => (*op, t),
        (_, _, Some("time"), Some(t)) => (op.swap()?, t),
        _ => return None,
    };
    match op {
        Operator::GtEq => Some((true, t)),
        Operator::Lt => Some((false, t)),
        _ => None,
    }
}

/// The level a filter condition needs; `None` if a rollup cannot apply it.
fn condition_level(e: &Expr, keys: &[&str]) -> Option<Option<RollupLevel>> {
    let series = |name: &str| name == "zone" || name == "host" || keys.contains(&name);
    if e.column_refs().iter().all(|c| series(&c.name)) {
        return Some(None);
    }
    let (_, t) = time_bound(e)?;
    RollupLevel::ALL.into_iter().rev().find(|l| l.bucket_start(t) == t).map(Some)
}

/// What one aggregate becomes: aggregates over the rollup, and the expression over their
/// results that gives the original's value.
struct Mapped {
    aggregates: Vec<Expr>,
    result: Box<dyn Fn(&[Expr]) -> Expr>,
}

fn map_aggregate(e: &Expr, table: Table) -> Option<Mapped> {
    use datafusion::functions_aggregate::expr_fn::{max, min, sum};
    let Expr::AggregateFunction(AggregateFunction { func, params }) = unalias(e) else { return None };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    let has = |c: &str| table.rollup_columns().iter().any(|r| r.name == c);
    // Counts are UInt32 in the files; SUM takes them as UInt64 (type coercion, which would
    // add the cast, has run before this rule).
    let summary = |c: &str, suffix: &str| {
        let name = format!("{c}_{suffix}");
        let column = col(Column::new_unqualified(name.as_str()));
        has(&name).then(|| if suffix == "count" { cast(column, DataType::UInt64) } else { column })
    };
    let count_of = |e: Expr| -> Mapped {
        Mapped {
            aggregates: vec![sum(e)],
            result: Box::new(|r: &[Expr]| {
                cast(datafusion::functions::expr_fn::coalesce(vec![r[0].clone(), lit(0u64)]), DataType::Int64)
            }),
        }
    };
    let one = |e: Expr| Mapped { aggregates: vec![e], result: Box::new(|r: &[Expr]| r[0].clone()) };
    // The widening casts type coercion puts in (`sum(CAST(usage AS UInt64))`,
    // `avg(CAST(usage AS Float64))`) keep every value as it is.
    let widened = |arg: &Expr| -> Option<String> {
        match unalias(arg) {
            Expr::Cast(c) if matches!(c.field.data_type(), DataType::UInt64 | DataType::Float64) => {
                column(&c.expr).map(str::to_owned)
            }
            e => column(e).map(str::to_owned),
        }
    };
    match (func.name(), params.args.as_slice()) {
        ("sum", [arg]) => Some(one(sum(summary(&widened(arg)?, "sum")?))),
        ("avg", [arg]) => {
            let c = widened(arg)?;
            Some(Mapped {
                aggregates: vec![sum(summary(&c, "sum")?), sum(summary(&c, "count")?)],
                result: Box::new(|r: &[Expr]| cast(r[0].clone(), DataType::Float64) / cast(r[1].clone(), DataType::Float64)),
            })
        }
        ("count", [Expr::Literal(v, _)]) if !v.is_null() => {
            Some(count_of(cast(col(Column::new_unqualified("samples")), DataType::UInt64)))
        }
        ("count", [arg]) if matches!(column(arg), Some("time" | "zone" | "host")) => {
            Some(count_of(cast(col(Column::new_unqualified("samples")), DataType::UInt64)))
        }
        ("count", [arg]) => Some(count_of(summary(column(arg)?, "count")?)),
        ("min", [arg]) => Some(one(min(summary(column(arg)?, "min")?))),
        ("max", [arg]) => Some(one(max(summary(column(arg)?, "max")?))),
        _ => None,
    }
}

/// `e` with every column's table replaced by `table`.
fn requalify(e: &Expr, table: &TableReference) -> DfResult<Expr> {
    e.clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(Some(table.clone()), c.name)))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}

fn answer(agg: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    // A projection of plain columns (what projection pushdown puts above a filter whose
    // columns the aggregate does not use) changes nothing the rewrite relies on.
    let input = match agg.input.as_ref() {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => p.input.as_ref(),
        other => other,
    };
    let (scan, predicate) = match input {
        LogicalPlan::TableScan(scan) if scan.filters.is_empty() => (scan, None),
        LogicalPlan::Filter(Filter { predicate, input, .. }) => match input.as_ref() {
            LogicalPlan::TableScan(scan) => (scan, Some(predicate)),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let TableScan { source, fetch: None, filters, .. } = scan else { return Ok(None) };
    let Ok(provider) = source_as_provider(source) else { return Ok(None) };
    let any: &dyn std::any::Any = provider.as_ref();
    let Some(raw) = any.downcast_ref::<ArchiveTable>() else { return Ok(None) };
    let Some(table) = raw.raw_table().filter(|t| t.has_rollups()) else { return Ok(None) };
    let keys: Vec<&str> = table.rollup_key_columns().iter().map(|(n, _)| *n).collect();

    let mut level: Option<RollupLevel> = None;
    for g in &agg.group_expr {
        match (column(g), trunc_level(g)) {
            (Some(name), _) if name == "zone" || name == "host" || keys.contains(&name) => {}
            (_, Some(l)) => level = finer(level, l),
            _ => return Ok(None),
        }
    }
    let conditions: Vec<&Expr> = predicate.map(|p| split_conjunction(p)).unwrap_or_default();
    for c in &conditions {
        match condition_level(c, &keys) {
            None => return Ok(None),
            Some(Some(l)) => level = finer(level, l),
            Some(None) => {}
        }
    }
    let level = level.unwrap_or(RollupLevel::Hour);
    let Some(mapped) = agg.aggr_expr.iter().map(|e| map_aggregate(e, table)).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let (mut from_us, mut until_us) = (i64::MIN, i64::MAX);
    for (lower, t) in conditions.iter().filter_map(|c| time_bound(c)) {
        if lower {
            from_us = from_us.max(t);
        } else {
            until_us = until_us.min(t);
        }
    }
    if !raw.rollup_covers(level, &ScanBounds::from_filters(filters), from_us, until_us) {
        return Ok(None);
    }

    // The same aggregate over the rollup, then the original's names and types.
    let name = TableReference::bare(level.table_name(table));
    let rollup = provider_as_source(Arc::new(raw.rollup(level)));
    let mut builder = LogicalPlanBuilder::scan(name.clone(), rollup, None)?;
    if let Some(p) = predicate {
        builder = builder.filter(requalify(p, &name)?)?;
    }
    let groups: Vec<Expr> = agg.group_expr.iter().map(|g| requalify(g, &name)).collect::<DfResult<_>>()?;
    let mut aggregates = Vec::new();
    let mut results = Vec::new();
    for (i, m) in mapped.iter().enumerate() {
        let mut refs = Vec::new();
        for (j, a) in m.aggregates.iter().enumerate() {
            let alias = format!("__rollup_{i}_{j}");
            aggregates.push(requalify(a, &name)?.alias(&alias));
            refs.push(col(Column::new_unqualified(alias)));
        }
        results.push((m.result)(&refs));
    }
    let plan = builder.aggregate(groups, aggregates)?.build()?;
    let groups_n = agg.group_expr.len();
    let mut out = Vec::with_capacity(agg.schema.fields().len());
    for (i, (qualifier, field)) in agg.schema.iter().enumerate() {
        let value = if i < groups_n {
            let (q, f) = plan.schema().qualified_field(i);
            Expr::Column(Column::new(q.cloned(), f.name()))
        } else {
            results[i - groups_n].clone()
        };
        out.push(cast(value, field.data_type().clone()).alias_qualified(qualifier.cloned(), field.name()));
    }
    Ok(Some(LogicalPlanBuilder::from(plan).project(out)?.build()?))
}

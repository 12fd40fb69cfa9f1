//! Judging a query's filter against one file's [`Summary`], conservatively: each answer is
//! "yes" only when it holds for every row the filter can match, and "no" whenever the filter
//! has a shape not understood here (the file is then read as it is).
//!
//! Understood: `AND`, `OR`, `column OP literal` (either side; `=`, `<`, `<=`, `>`, `>=`),
//! `column BETWEEN a AND b`, `column IN (...)`, the column possibly inside a `CAST` to an
//! integer type (DataFusion's casts fail or give NULL rather than wrap, so a row a cast
//! comparison matches holds the same relation on its stored value). Integer and string
//! literals only: a comparison with a decimal literal (`rss > 1e9`) uses no index.

use archive_layout::{ColumnType, Table};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::{Summary, key_code_of_str, key_code_of_u64};

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) if c.field.data_type().is_integer() => match c.expr.as_ref() {
            Expr::Column(col) => Some(col.name.as_str()),
            _ => None,
        },
        Expr::TryCast(c) if c.field.data_type().is_integer() => match c.expr.as_ref() {
            Expr::Column(col) => Some(col.name.as_str()),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Int(i128),
    Str(String),
}

fn literal(e: &Expr) -> Option<Literal> {
    let value = match e {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {
            return literal(&c.expr).filter(|l| matches!(l, Literal::Str(_)));
        }
        _ => return None,
    };
    Some(match value {
        ScalarValue::UInt8(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::UInt16(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::UInt32(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::UInt64(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::Int8(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::Int16(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::Int32(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::Int64(Some(v)) => Literal::Int(i128::from(*v)),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Literal::Str(s.clone()),
        _ => return None,
    })
}

/// `column OP literal` with the column on the left (the operator turned if it was right).
fn comparison(b: &BinaryExpr) -> Option<(&str, Operator, Literal)> {
    if let (Some(c), Some(l)) = (column_name(&b.left), literal(&b.right)) {
        return Some((c, b.op, l));
    }
    let (c, l) = (column_name(&b.right)?, literal(&b.left)?);
    let op = match b.op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Eq => Operator::Eq,
        _ => return None,
    };
    Some((c, op, l))
}

/// Whether every row `filter` can match in the file lies in the side file's tails: then the
/// side file alone answers it.
pub fn inside_tails(summary: &Summary, filter: &Expr) -> bool {
    let int_tail = |name: &str| summary.tails.get(name);
    match filter {
        Expr::BinaryExpr(b) if b.op == Operator::And => inside_tails(summary, &b.left) || inside_tails(summary, &b.right),
        Expr::BinaryExpr(b) if b.op == Operator::Or => inside_tails(summary, &b.left) && inside_tails(summary, &b.right),
        Expr::BinaryExpr(b) => {
            let Some((name, op, Literal::Int(v))) = comparison(b) else { return false };
            let Some(tail) = int_tail(name) else { return false };
            let above = tail.above.map(i128::from);
            let below = tail.below.map(i128::from);
            match op {
                // Rows matching `> v` have values >= v + 1: inside if v + 1 > above.
                Operator::Gt => above.is_some_and(|a| v >= a),
                Operator::GtEq => above.is_some_and(|a| v > a),
                Operator::Lt => below.is_some_and(|b| v <= b),
                Operator::LtEq => below.is_some_and(|b| v < b),
                Operator::Eq => above.is_some_and(|a| v > a) || below.is_some_and(|b| v < b),
                _ => false,
            }
        }
        Expr::Between(b) if !b.negated => {
            let (Some(name), Some(Literal::Int(lo)), Some(Literal::Int(hi))) =
                (column_name(&b.expr), literal(&b.low), literal(&b.high))
            else {
                return false;
            };
            let Some(tail) = int_tail(name) else { return false };
            tail.above.is_some_and(|a| lo > i128::from(a)) || tail.below.is_some_and(|b| hi < i128::from(b))
        }
        Expr::InList(l) if !l.negated && !l.list.is_empty() => {
            let Some(name) = column_name(&l.expr) else { return false };
            let Some(tail) = int_tail(name) else { return false };
            l.list.iter().all(|e| match literal(e) {
                Some(Literal::Int(v)) => {
                    tail.above.is_some_and(|a| v > i128::from(a)) || tail.below.is_some_and(|b| v < i128::from(b))
                }
                _ => false,
            })
        }
        _ => false,
    }
}

/// Whether the file's key sets show that no row can match `filter` (`table`'s file): then
/// the file need not be read at all.
pub fn excluded_by_keys(summary: &Summary, table: Table, filter: &Expr) -> bool {
    let absent = |name: &str, value: &Literal| -> bool {
        let Some(set) = summary.keys.get(name) else { return false };
        let Some(ty) = table.value_columns().iter().find(|(n, _)| *n == name).map(|(_, t)| *t) else { return false };
        let code = match (ty, value) {
            (ColumnType::Utf8, Literal::Str(s)) => Some(key_code_of_str(s)),
            (ColumnType::U32 | ColumnType::U64, Literal::Int(v)) => match u64::try_from(*v) {
                Ok(v) => key_code_of_u64(v, ty == ColumnType::U32),
                // A negative number equals no unsigned value.
                Err(_) => None,
            },
            _ => return false,
        };
        code.is_none_or(|c| !set.0.contains(c))
    };
    match filter {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            excluded_by_keys(summary, table, &b.left) || excluded_by_keys(summary, table, &b.right)
        }
        Expr::BinaryExpr(b) if b.op == Operator::Or => {
            excluded_by_keys(summary, table, &b.left) && excluded_by_keys(summary, table, &b.right)
        }
        Expr::BinaryExpr(b) => match comparison(b) {
            Some((name, Operator::Eq, v)) => absent(name, &v),
            _ => false,
        },
        Expr::InList(l) if !l.negated && !l.list.is_empty() => {
            let Some(name) = column_name(&l.expr) else { return false };
            l.list.iter().all(|e| literal(e).is_some_and(|v| absent(name, &v)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyCodes, Tail};
    use datafusion::logical_expr::{cast, col, lit};

    fn summary() -> Summary {
        let mut s = Summary::default();
        s.tails.insert("usage".into(), Tail { below: Some(10), above: Some(4990) });
        s.keys.insert("pid".into(), KeyCodes(roaring::RoaringBitmap::from_iter([7u32, 8])));
        s.keys.insert("execname".into(), KeyCodes(roaring::RoaringBitmap::from_iter([key_code_of_str("sshd")])));
        s
    }

    #[test]
    fn conditions_inside_a_tail_are_recognised_at_its_exact_edges() {
        let s = summary();
        assert!(inside_tails(&s, &col("usage").gt(lit(4990u32))));
        assert!(!inside_tails(&s, &col("usage").gt(lit(4989u32))));
        assert!(inside_tails(&s, &col("usage").gt_eq(lit(4991i64))));
        assert!(!inside_tails(&s, &col("usage").gt_eq(lit(4990i64))));
        assert!(inside_tails(&s, &col("usage").lt(lit(10))));
        assert!(!inside_tails(&s, &col("usage").lt(lit(11))));
        assert!(inside_tails(&s, &col("usage").lt_eq(lit(9))));
        assert!(!inside_tails(&s, &col("usage").lt_eq(lit(10))));
        assert!(inside_tails(&s, &lit(4991).lt_eq(col("usage"))));
        assert!(inside_tails(&s, &col("usage").eq(lit(5000)).or(col("usage").lt(lit(3)))));
        assert!(!inside_tails(&s, &col("usage").eq(lit(5000)).or(col("zone").eq(lit("a")))));
        assert!(inside_tails(&s, &col("zone").eq(lit("a")).and(col("usage").gt(lit(4995)))));
        assert!(inside_tails(&s, &col("usage").between(lit(4991), lit(6000))));
        assert!(!inside_tails(&s, &col("usage").not_between(lit(4991), lit(6000))));
        assert!(inside_tails(&s, &cast(col("usage"), DataType::Int64).gt(lit(5000i64))));
        assert!(!inside_tails(&s, &cast(col("usage"), DataType::Float64).gt(lit(5000.0))));
        assert!(!inside_tails(&s, &col("usage").gt(lit(5000.5))));
        assert!(!inside_tails(&s, &col("cpu").gt(lit(5000))));
        assert!(inside_tails(&s, &col("usage").in_list(vec![lit(5), lit(5000)], false)));
        assert!(!inside_tails(&s, &col("usage").in_list(vec![lit(5), lit(500)], false)));
    }

    #[test]
    fn key_sets_exclude_only_values_they_lack() {
        let s = summary();
        let t = Table::Process;
        assert!(excluded_by_keys(&s, t, &col("pid").eq(lit(9u32))));
        assert!(!excluded_by_keys(&s, t, &col("pid").eq(lit(8u32))));
        assert!(excluded_by_keys(&s, t, &col("pid").eq(lit(-1i64))));
        assert!(excluded_by_keys(&s, t, &col("pid").eq(lit(1i64 << 40))));
        assert!(!excluded_by_keys(&s, t, &col("pid").gt(lit(9u32))));
        assert!(excluded_by_keys(&s, t, &col("execname").eq(lit("bash"))));
        assert!(!excluded_by_keys(&s, t, &col("execname").eq(lit("sshd"))));
        assert!(excluded_by_keys(&s, t, &col("pid").in_list(vec![lit(1), lit(2)], false)));
        assert!(!excluded_by_keys(&s, t, &col("pid").in_list(vec![lit(1), lit(7)], false)));
        assert!(!excluded_by_keys(&s, t, &col("pid").in_list(vec![lit(1)], true)));
        assert!(excluded_by_keys(&s, t, &col("pid").eq(lit(1)).and(col("usage").gt(lit(0)))));
        assert!(!excluded_by_keys(&s, t, &col("pid").eq(lit(1)).or(col("usage").gt(lit(0)))));
        assert!(!excluded_by_keys(&s, t, &col("zone").eq(lit("x"))));
    }
}

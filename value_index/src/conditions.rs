//! Judging a query's filter against one file's [`Summary`], conservatively: each answer is
//! "yes" only when it holds for every row the filter can match, and "no" whenever the filter
//! has a shape not understood here (the file is then read as it is).
//!
//! Understood: `AND`, `OR`, `column OP literal` (either side; `=`, `<`, `<=`, `>`, `>=`),
//! `column BETWEEN a AND b`, `column IN (...)`, the column possibly inside a `TRY_CAST` to an
//! integer type (NULL where the value does not fit, so a row it matches holds the same
//! relation on its stored value) or a `CAST` to `UInt64` (which cannot fail on the indexed
//! `UInt32` and `UInt64` columns; a cast that can fail must keep failing, so no other is
//! used). Integer and string literals only: a comparison with a decimal literal (`rss > 1e9`)
//! uses no index.

use archive_layout::{ColumnType, Table};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::{Summary, TailRef, key_code_of_str, key_code_of_u64};

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        // Only casts that cannot fail on an indexed column's values (`UInt32` or `UInt64`):
        // a cast that errors on some row must keep erroring, not be skipped by the index.
        Expr::Cast(c) if *c.field.data_type() == DataType::UInt64 => match c.expr.as_ref() {
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
    Some((c, b.op.swap()?, l))
}

/// The tails whose rows hold every row `filter` can match in the file (then the side file's
/// sections holding those tails answer it); `None` if no set of tails does.
pub fn tails_covering(summary: &Summary, filter: &Expr) -> Option<Vec<TailRef>> {
    let tail = |name: &str, top: bool| TailRef { column: name.to_owned(), top };
    // The tail holding every row whose value `op v` (one side only), if there is one.
    let side = |name: &str, op: Operator, v: i128| -> Option<TailRef> {
        let t = summary.tails.get(name)?;
        let above = t.above.map(i128::from);
        let below = t.below.map(i128::from);
        match op {
            // Rows matching `> v` have values >= v + 1: inside if v + 1 > above.
            Operator::Gt => above.filter(|&a| v >= a).map(|_| tail(name, true)),
            Operator::GtEq => above.filter(|&a| v > a).map(|_| tail(name, true)),
            Operator::Lt => below.filter(|&b| v <= b).map(|_| tail(name, false)),
            Operator::LtEq => below.filter(|&b| v < b).map(|_| tail(name, false)),
            Operator::Eq => {
                above.filter(|&a| v > a).map(|_| tail(name, true)).or_else(|| below.filter(|&b| v < b).map(|_| tail(name, false)))
            }
            _ => None,
        }
    };
    match filter {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            // Either side alone bounds the rows; the one needing fewer tails.
            match (tails_covering(summary, &b.left), tails_covering(summary, &b.right)) {
                (Some(l), Some(r)) => Some(if r.len() < l.len() { r } else { l }),
                (l, r) => l.or(r),
            }
        }
        Expr::BinaryExpr(b) if b.op == Operator::Or => {
            let mut l = tails_covering(summary, &b.left)?;
            for t in tails_covering(summary, &b.right)? {
                if !l.contains(&t) {
                    l.push(t);
                }
            }
            Some(l)
        }
        Expr::BinaryExpr(b) => {
            let (name, op, Literal::Int(v)) = comparison(b)? else { return None };
            side(name, op, v).map(|t| vec![t])
        }
        Expr::Between(b) if !b.negated => {
            let (Some(name), Some(Literal::Int(lo)), Some(Literal::Int(hi))) =
                (column_name(&b.expr), literal(&b.low), literal(&b.high))
            else {
                return None;
            };
            side(name, Operator::GtEq, lo).or_else(|| side(name, Operator::LtEq, hi)).map(|t| vec![t])
        }
        Expr::InList(l) if !l.negated && !l.list.is_empty() => {
            let name = column_name(&l.expr)?;
            let mut out: Vec<TailRef> = Vec::new();
            for e in &l.list {
                let Some(Literal::Int(v)) = literal(e) else { return None };
                let t = side(name, Operator::Eq, v)?;
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// Whether the summary shows that no row of the file (of `table`) can match `filter`: a key
/// set lacks every value asked for, or a measured column's values in the file all lie
/// outside the condition. Then the file need not be read at all.
pub fn excluded(summary: &Summary, table: Table, filter: &Expr) -> bool {
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
    // Whether no value of the column in the file is `op v`.
    let outside = |name: &str, op: Operator, v: i128| -> bool {
        let Some(tail) = summary.tails.get(name) else { return false };
        let (Some(min), Some(max)) = (tail.min.map(i128::from), tail.max.map(i128::from)) else { return false };
        match op {
            Operator::Gt => max <= v,
            Operator::GtEq => max < v,
            Operator::Lt => min >= v,
            Operator::LtEq => min > v,
            Operator::Eq => v < min || v > max,
            _ => false,
        }
    };
    match filter {
        Expr::BinaryExpr(b) if b.op == Operator::And => excluded(summary, table, &b.left) || excluded(summary, table, &b.right),
        Expr::BinaryExpr(b) if b.op == Operator::Or => excluded(summary, table, &b.left) && excluded(summary, table, &b.right),
        Expr::BinaryExpr(b) => match comparison(b) {
            Some((name, Operator::Eq, v)) if summary.keys.contains_key(name) => absent(name, &v),
            Some((name, op, Literal::Int(v))) => outside(name, op, v),
            _ => false,
        },
        Expr::Between(b) if !b.negated => {
            let (Some(name), Some(Literal::Int(lo)), Some(Literal::Int(hi))) =
                (column_name(&b.expr), literal(&b.low), literal(&b.high))
            else {
                return false;
            };
            lo > hi || outside(name, Operator::GtEq, lo) || outside(name, Operator::LtEq, hi)
        }
        Expr::InList(l) if !l.negated && !l.list.is_empty() => {
            let Some(name) = column_name(&l.expr) else { return false };
            l.list.iter().all(|e| match literal(e) {
                Some(v) if summary.keys.contains_key(name) => absent(name, &v),
                Some(Literal::Int(v)) => outside(name, Operator::Eq, v),
                _ => false,
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyCodes, Tail};
    use datafusion::logical_expr::{cast, col, lit, try_cast};

    fn summary() -> Summary {
        let mut s = Summary::default();
        s.tails.insert("usage".into(), Tail { below: Some(10), above: Some(4990), min: Some(2), max: Some(5000) });
        s.keys.insert("pid".into(), KeyCodes(roaring::RoaringBitmap::from_iter([7u32, 8])));
        s.keys.insert("execname".into(), KeyCodes(roaring::RoaringBitmap::from_iter([key_code_of_str("sshd")])));
        s
    }

    #[test]
    fn conditions_inside_a_tail_are_recognised_at_its_exact_edges() {
        let s = summary();
        let top = || Some(vec![TailRef { column: "usage".into(), top: true }]);
        let bottom = || Some(vec![TailRef { column: "usage".into(), top: false }]);
        let both = || Some(vec![TailRef { column: "usage".into(), top: true }, TailRef { column: "usage".into(), top: false }]);
        let t = |e: Expr| tails_covering(&s, &e);
        assert_eq!(t(col("usage").gt(lit(4990u32))), top());
        assert_eq!(t(col("usage").gt(lit(4989u32))), None);
        assert_eq!(t(col("usage").gt_eq(lit(4991i64))), top());
        assert_eq!(t(col("usage").gt_eq(lit(4990i64))), None);
        assert_eq!(t(col("usage").lt(lit(10))), bottom());
        assert_eq!(t(col("usage").lt(lit(11))), None);
        assert_eq!(t(col("usage").lt_eq(lit(9))), bottom());
        assert_eq!(t(col("usage").lt_eq(lit(10))), None);
        assert_eq!(t(lit(4991).lt_eq(col("usage"))), top());
        assert_eq!(t(lit(9).gt_eq(col("usage"))), bottom());
        assert_eq!(t(col("usage").eq(lit(5000)).or(col("usage").lt(lit(3)))), both());
        assert_eq!(t(col("usage").eq(lit(5000)).or(col("zone").eq(lit("a")))), None);
        assert_eq!(t(col("zone").eq(lit("a")).and(col("usage").gt(lit(4995)))), top());
        assert_eq!(t(col("usage").between(lit(4991), lit(6000))), top());
        assert_eq!(t(col("usage").between(lit(0), lit(9))), bottom());
        assert_eq!(t(col("usage").not_between(lit(4991), lit(6000))), None);
        assert_eq!(t(cast(col("usage"), DataType::UInt64).gt(lit(5000u64))), top());
        assert_eq!(t(cast(col("usage"), DataType::Int8).gt(lit(5i8))), None, "a cast that can fail");
        assert_eq!(t(try_cast(col("usage"), DataType::Int64).gt(lit(5000i64))), top());
        assert_eq!(t(cast(col("usage"), DataType::Float64).gt(lit(5000.0))), None);
        assert_eq!(t(col("usage").gt(lit(5000.5))), None);
        assert_eq!(t(col("cpu").gt(lit(5000))), None);
        assert_eq!(t(col("usage").in_list(vec![lit(5000), lit(5)], false)), both());
        assert_eq!(t(col("usage").in_list(vec![lit(5), lit(500)], false)), None);
        assert_eq!(t(col("usage").not_eq(lit(5000))), None);
        assert_eq!(t(!col("usage").gt(lit(5000))), None);
    }

    #[test]
    fn key_sets_exclude_only_values_they_lack() {
        let s = summary();
        let t = Table::Process;
        assert!(excluded(&s, t, &col("pid").eq(lit(9u32))));
        assert!(!excluded(&s, t, &col("pid").eq(lit(8u32))));
        assert!(excluded(&s, t, &col("pid").eq(lit(-1i64))));
        assert!(excluded(&s, t, &col("pid").eq(lit(1i64 << 40))));
        assert!(!excluded(&s, t, &col("pid").gt(lit(9u32))));
        assert!(excluded(&s, t, &col("execname").eq(lit("bash"))));
        assert!(!excluded(&s, t, &col("execname").eq(lit("sshd"))));
        assert!(excluded(&s, t, &col("pid").in_list(vec![lit(1), lit(2)], false)));
        assert!(!excluded(&s, t, &col("pid").in_list(vec![lit(1), lit(7)], false)));
        assert!(!excluded(&s, t, &col("pid").in_list(vec![lit(1)], true)));
        assert!(excluded(&s, t, &col("pid").eq(lit(1)).and(col("usage").gt(lit(0)))));
        assert!(!excluded(&s, t, &col("pid").eq(lit(1)).or(col("usage").gt(lit(0)))));
        assert!(!excluded(&s, t, &col("zone").eq(lit("x"))));
    }

    #[test]
    fn a_condition_outside_a_columns_values_in_the_file_excludes_it_at_the_exact_edges() {
        let s = summary();
        let t = Table::Process;
        assert!(excluded(&s, t, &col("usage").gt(lit(5000))));
        assert!(!excluded(&s, t, &col("usage").gt(lit(4999))));
        assert!(excluded(&s, t, &col("usage").gt_eq(lit(5001))));
        assert!(!excluded(&s, t, &col("usage").gt_eq(lit(5000))));
        assert!(excluded(&s, t, &col("usage").lt(lit(2))));
        assert!(!excluded(&s, t, &col("usage").lt(lit(3))));
        assert!(excluded(&s, t, &col("usage").lt_eq(lit(1))));
        assert!(!excluded(&s, t, &col("usage").lt_eq(lit(2))));
        assert!(excluded(&s, t, &col("usage").eq(lit(1))));
        assert!(!excluded(&s, t, &col("usage").eq(lit(2))));
        assert!(excluded(&s, t, &col("usage").between(lit(5001), lit(9000))));
        assert!(excluded(&s, t, &col("usage").between(lit(9), lit(3))));
        assert!(!excluded(&s, t, &col("usage").between(lit(0), lit(2))));
        assert!(excluded(&s, t, &col("usage").in_list(vec![lit(0), lit(6000)], false)));
        assert!(!excluded(&s, t, &col("usage").in_list(vec![lit(0), lit(60)], false)));
    }
}

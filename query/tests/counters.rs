//! Counter-aware SQL against hand-made vectors (resets, 32-bit wraps, unordered rows) and,
//! by a property test, against the plain reference over random samples, as aggregates
//! (several partitions, so partial states are merged) and as window functions.
#![allow(unused_crate_dependencies)]

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use proptest::prelude::*;
use query::counters::{CounterFunction, reference};

fn context(partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    for f in CounterFunction::ALL {
        ctx.register_udaf(f.udaf());
    }
    ctx
}

/// A table `t(zone, time, c32, c64)` from rows, split into `parts` batches (partitions).
fn register(ctx: &SessionContext, rows: &[(&str, i64, u32, u64)], parts: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("zone", DataType::Utf8, false),
        Field::new("time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("c32", DataType::UInt32, true),
        Field::new("c64", DataType::UInt64, true),
    ]));
    let chunk = rows.len().div_ceil(parts.max(1)).max(1);
    let batches: Vec<Vec<RecordBatch>> = rows
        .chunks(chunk)
        .map(|c| {
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(c.iter().map(|r| r.0))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(c.iter().map(|r| r.1)).with_timezone("UTC")),
                Arc::new(UInt32Array::from_iter_values(c.iter().map(|r| r.2))),
                Arc::new(UInt64Array::from_iter_values(c.iter().map(|r| r.3))),
            ];
            vec![RecordBatch::try_new(schema.clone(), cols).unwrap()]
        })
        .collect();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, batches).unwrap())).unwrap();
}

fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() })
}

fn floats(batches: &[RecordBatch], col: usize) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = datafusion::arrow::compute::cast(b.column(col), &DataType::Float64).unwrap();
            let c = c.as_any().downcast_ref::<Float64Array>().unwrap().clone();
            c.iter().collect::<Vec<_>>()
        })
        .collect()
}

const S: i64 = 1_000_000;

#[test]
fn resets_and_wraps_by_hand() {
    let top = u32::MAX - 5;
    // Out of time order on purpose: the functions order by time.
    let rows = [
        ("a", 3 * S, 5, 5), // after a wrap of c32 (top -> 5: +11), a reset of c64 (100 -> 5)
        ("a", 0, top - 20, 80),
        ("a", S, top - 10, 90),
        ("a", 2 * S, top, 100),
        ("a", 4 * S, 2, 7), // a reset of c32 (5 -> 2, not a wrap: the drop is small)
        ("b", 0, 1, 1),
    ];
    let ctx = context(3);
    register(&ctx, &rows, 3);
    let out = run(
        &ctx,
        "SELECT zone, increase(c32, time), resets(c32, time), increase(c64, time), resets(c64, time), rate(c32, time), delta(c64, time)
         FROM t GROUP BY zone ORDER BY zone",
    );
    let col = |i| floats(&out, i);
    // c32: +10, +10, +11 (wrap), +2 (reset) = 33; one reset.
    assert_eq!(col(1), vec![Some(33.0), Some(0.0)]);
    assert_eq!(col(2), vec![Some(1.0), Some(0.0)]);
    // c64: +10, +10, +5 (reset to 5), +2 = 27; one reset.
    assert_eq!(col(3), vec![Some(27.0), Some(0.0)]);
    assert_eq!(col(4), vec![Some(1.0), Some(0.0)]);
    assert_eq!(col(5), vec![Some(33.0 / 4.0), None], "per second from the first to the last sample; one sample has no rate");
    assert_eq!(col(6), vec![Some(-73.0), Some(0.0)]);
    // The same as a window over the previous sample: each row's increase since it.
    let out = run(
        &ctx,
        "SELECT increase(c32, time) OVER (PARTITION BY zone ORDER BY time ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
         FROM t WHERE zone = 'a' ORDER BY time",
    );
    assert_eq!(floats(&out, 0), vec![Some(0.0), Some(10.0), Some(10.0), Some(11.0), Some(2.0)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// `dq`'s functions and the rollups' `archive_layout::counter_step` follow one rule.
    #[test]
    fn the_rollups_step_rule_is_the_same(prev in 0u64..(1 << 40), cur in 0u64..(1 << 40), narrow in any::<bool>()) {
        let bits = if narrow { 32 } else { 64 };
        let (prev, cur) = if narrow { (prev % (1 << 32), cur % (1 << 32)) } else { (prev, cur) };
        let samples = [(0, prev as f64), (1_000_000, cur as f64)];
        let (add, reset) = archive_layout::counter_step(prev, cur, bits);
        prop_assert_eq!(reference(CounterFunction::Increase, &samples, bits), Some(add as f64));
        prop_assert_eq!(reference(CounterFunction::Resets, &samples, bits), Some(f64::from(u8::from(reset))));
    }

    #[test]
    fn sql_answers_what_the_reference_answers(
        steps in prop::collection::vec((1i64..5, 0u32..3, any::<u32>()), 1..40),
        parts in 1usize..4,
        seed in any::<u64>(),
    ) {
        // A counter that mostly grows, sometimes wraps (near the top) or resets.
        let mut rows = Vec::new();
        let (mut t, mut v32, mut v64) = (0i64, u32::MAX - 1000, 1u64 << 40);
        for (dt, kind, x) in &steps {
            t += dt * S;
            match kind {
                0 => { v32 = v32.wrapping_add(x % 600); v64 += u64::from(x % 600); }
                1 => { v32 = x % 100; v64 = u64::from(x % 100); }
                _ => { v32 = v32.wrapping_add(*x % 5); v64 += u64::from(*x % 5); }
            }
            rows.push(("z", t, v32, v64));
        }
        let in_time_order = rows.clone();
        // Shuffle deterministically: rows reach the aggregate in any order.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|i| (*i as u64).wrapping_mul(seed | 1).rotate_left(17));
        let shuffled: Vec<_> = order.iter().map(|i| rows[*i]).collect();
        let ctx = context(parts);
        register(&ctx, &shuffled, parts);
        let out = run(&ctx, "SELECT increase(c32, time), resets(c32, time), rate(c32, time), increase(c64, time), resets(c64, time), delta(c64, time) FROM t");
        let s32: Vec<(i64, f64)> = in_time_order.iter().map(|r| (r.1, f64::from(r.2))).collect();
        let s64: Vec<(i64, f64)> = in_time_order.iter().map(|r| (r.1, r.3 as f64)).collect();
        let want = [
            reference(CounterFunction::Increase, &s32, 32),
            reference(CounterFunction::Resets, &s32, 32),
            reference(CounterFunction::Rate, &s32, 32),
            reference(CounterFunction::Increase, &s64, 64),
            reference(CounterFunction::Resets, &s64, 64),
            reference(CounterFunction::Delta, &s64, 64),
        ];
        for (i, w) in want.iter().enumerate() {
            prop_assert_eq!(floats(&out, i), vec![*w], "column {}", i);
        }
    }
}

#[test]
fn a_counter_function_over_the_wrong_columns_says_what_it_takes() {
    let ctx = context(1);
    register(&ctx, &[("a", 0, 1, 1)], 1);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for (sql, says) in [
        ("SELECT increase(zone, time) FROM t", "increase(value, time)"),
        ("SELECT rate(c32, zone) FROM t", "rate(value, time)"),
        ("SELECT resets(c32) FROM t", "argument"),
    ] {
        let err = rt.block_on(async { ctx.sql(sql).await?.collect().await }).unwrap_err().to_string();
        assert!(err.contains(says), "{sql}: {err}");
    }
}

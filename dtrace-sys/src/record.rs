//! What one aggregation walk delivers, as plain Rust values: the aggregation's name, its key
//! tuple, and its value in the shape libdtrace keeps it (a `quantize()` stays its raw array
//! of buckets). Nothing here touches libdtrace, so code above this crate is tested anywhere
//! with records in this shape (composed in the tests, not recorded on a host).

/// One element of an aggregation's key tuple (`@name[key, key, ...]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// An integer key (`cpu`, `pid`, a kernel expression): libdtrace stores 1, 2, 4 or 8
    /// bytes; every width is widened to `i64`.
    Int(i64),
    /// A string key (`zonename`, `execname`, `probefunc`), without its NUL padding.
    Str(String),
}

impl Key {
    /// The key as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Key::Str(s) => Some(s),
            Key::Int(_) => None,
        }
    }

    /// The key as an integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Key::Int(i) => Some(*i),
            Key::Str(_) => None,
        }
    }
}

/// The aggregated value of one key tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregateValue {
    /// `count()`.
    Count(u64),
    /// `sum()`.
    Sum(i64),
    /// `min()`.
    Min(i64),
    /// `max()`.
    Max(i64),
    /// `quantize()`: [`QUANTIZE_BUCKETS`] counts, bucket [`QUANTIZE_ZERO_BUCKET`] holding
    /// the zeros; [`quantize_bounds`] names each bucket's lower bound.
    Quantize(Vec<i64>),
    /// An aggregating function this crate does not decode (`avg`, `lquantize`, ...), with
    /// its `DTRACEAGG_*` action number.
    Other(u16),
}

/// One record of an aggregation walk: `@aggregation[keys...] = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRecord {
    /// The aggregation's name without the `@` (`cpu` for `@cpu`).
    pub aggregation: String,
    /// The key tuple, in the order the D program wrote it.
    pub keys: Vec<Key>,
    /// The aggregated value.
    pub value: AggregateValue,
}

/// Number of buckets of a `quantize()` aggregation (`DTRACE_QUANTIZE_NBUCKETS`: one per
/// power of two of either sign, and one for zero).
pub const QUANTIZE_BUCKETS: usize = (64 - 1) * 2 + 1;

/// The bucket holding zero (`DTRACE_QUANTIZE_ZEROBUCKET`).
pub const QUANTIZE_ZERO_BUCKET: usize = 64 - 1;

/// The lower bound of `quantize()` bucket `bucket` (`DTRACE_QUANTIZE_BUCKETVAL`): buckets
/// below the zero bucket hold negative powers of two, those above positive ones.
pub fn quantize_bucket_value(bucket: usize) -> i64 {
    use std::cmp::Ordering;
    match bucket.cmp(&QUANTIZE_ZERO_BUCKET) {
        Ordering::Less => -(1i64 << (QUANTIZE_ZERO_BUCKET - 1 - bucket)),
        Ordering::Equal => 0,
        Ordering::Greater => 1i64 << (bucket - QUANTIZE_ZERO_BUCKET - 1).min(62),
    }
}

/// The non-empty buckets of a `quantize()` value as `(lower bound, count)`, lowest first.
pub fn quantize_bounds(buckets: &[i64]) -> impl Iterator<Item = (i64, i64)> + '_ {
    buckets
        .iter()
        .enumerate()
        .take(QUANTIZE_BUCKETS)
        .filter(|(_, count)| **count != 0)
        .map(|(bucket, count)| (quantize_bucket_value(bucket), *count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_values_are_powers_of_two_around_zero() {
        assert_eq!(QUANTIZE_BUCKETS, 127);
        assert_eq!(quantize_bucket_value(QUANTIZE_ZERO_BUCKET), 0);
        assert_eq!(quantize_bucket_value(QUANTIZE_ZERO_BUCKET + 1), 1);
        assert_eq!(quantize_bucket_value(QUANTIZE_ZERO_BUCKET + 2), 2);
        assert_eq!(quantize_bucket_value(QUANTIZE_ZERO_BUCKET + 11), 1024);
        assert_eq!(quantize_bucket_value(QUANTIZE_BUCKETS - 1), 1 << 62);
        assert_eq!(quantize_bucket_value(QUANTIZE_ZERO_BUCKET - 1), -1);
        assert_eq!(quantize_bucket_value(QUANTIZE_ZERO_BUCKET - 3), -4);
        assert_eq!(quantize_bucket_value(0), -(1 << 62));
    }

    #[test]
    fn bounds_skip_empty_buckets() {
        let mut raw = vec![0i64; QUANTIZE_BUCKETS];
        raw[QUANTIZE_ZERO_BUCKET] = 2;
        raw[QUANTIZE_ZERO_BUCKET + 11] = 7;
        let got: Vec<_> = quantize_bounds(&raw).collect();
        assert_eq!(got, vec![(0, 2), (1024, 7)]);
    }
}

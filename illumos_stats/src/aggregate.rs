//! DTrace aggregations as plain records ([`dtrace_sys::AggregateRecord`]), the
//! [`AggregateReader`] seam, the live reader running the generator's D programs
//! ([`LiveAggregates`]), and the JSON Lines shape a recording keeps them in
//! ([`parse_aggregates_jsonl`], [`format_aggregates_jsonl`]).
//!
//! This module runs and reads D programs; it does not decide what a record means for a frame
//! (that is [`crate::frames`]).

use dtrace_sys::{AggregateRecord, AggregateValue, Key};
use serde_json::{Value, json};

use crate::IllumosError;
use crate::d_programs::DProgram;

/// Collects the aggregations of one interval: everything counted since the previous call,
/// after which the counts start again from zero.
pub trait AggregateReader: Send {
    /// The interval's records, in any order.
    fn collect(&mut self) -> Result<Vec<AggregateRecord>, IllumosError>;
}

/// The live reader: one libdtrace consumer running the given D programs.
#[derive(Debug)]
pub struct LiveAggregates {
    consumer: dtrace_sys::Consumer,
}

impl LiveAggregates {
    /// Opens libdtrace, compiles and enables `programs`, and starts tracing, with the options
    /// of a long-running aggregating consumer (as `intrstat(1M)`): `aggsize` set (libdtrace
    /// has no default and `dtrace_go` fails without it), `aggrate` 0 so every snapshot is
    /// taken when asked (the interval sets the pace), small principal buffers (nothing is
    /// traced with `trace()`/`printf()`), and `strsize` 64, enough for a zone name
    /// (`ZONENAME_MAX`), set before compiling since it changes D's string type.
    pub fn start(programs: &[DProgram]) -> Result<Self, IllumosError> {
        let mut consumer = dtrace_sys::Consumer::open().map_err(dtrace_error("dtrace_open"))?;
        for (option, value) in [("strsize", "64"), ("bufsize", "64k"), ("aggsize", "4m"), ("aggrate", "0"), ("statusrate", "1s")]
        {
            consumer.set_option(option, Some(value)).map_err(dtrace_error(option))?;
        }
        for program in programs {
            let compiled = consumer.compile(program.text).map_err(dtrace_error(program.file))?;
            consumer.enable(&compiled).map_err(dtrace_error(program.file))?;
        }
        consumer.go().map_err(dtrace_error("dtrace_go"))?;
        Ok(Self { consumer })
    }
}

fn dtrace_error(what: &str) -> impl Fn(dtrace_sys::Error) -> IllumosError + '_ {
    move |e| match e {
        dtrace_sys::Error::Unsupported => IllumosError::Unsupported("libdtrace"),
        other => IllumosError::Dtrace { what: what.to_string(), message: other.to_string() },
    }
}

impl AggregateReader for LiveAggregates {
    fn collect(&mut self) -> Result<Vec<AggregateRecord>, IllumosError> {
        // status also keeps the kernel's deadman from ending the enabling.
        self.consumer.status().map_err(dtrace_error("dtrace_status"))?;
        self.consumer.snapshot().map_err(dtrace_error("dtrace_aggregate_snap"))?;
        let mut records = Vec::new();
        // Removing each record as it is read restarts every count for the next interval and
        // frees keys of processes that are gone (clear() would keep them forever).
        self.consumer.drain(|record| records.push(record)).map_err(dtrace_error("dtrace_aggregate_walk"))?;
        Ok(records)
    }
}

/// Formats records as JSON Lines, one walk record per line:
/// `{"aggregation":"cpu","keys":["global",3],"count":812}`; a `quantize()` keeps its raw
/// bucket array (`"quantize":[0,0,...]`, 127 counts).
pub fn format_aggregates_jsonl(records: &[AggregateRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let keys: Vec<Value> = r
            .keys
            .iter()
            .map(|k| match k {
                Key::Int(i) => json!(i),
                Key::Str(s) => json!(s),
            })
            .collect();
        let mut line = json!({ "aggregation": r.aggregation, "keys": keys });
        let (field, value) = match &r.value {
            AggregateValue::Count(v) => ("count", json!(v)),
            AggregateValue::Sum(v) => ("sum", json!(v)),
            AggregateValue::Min(v) => ("min", json!(v)),
            AggregateValue::Max(v) => ("max", json!(v)),
            AggregateValue::Quantize(b) => ("quantize", json!(b)),
            AggregateValue::Other(action) => ("other", json!(action)),
        };
        line[field] = value;
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Parses what [`format_aggregates_jsonl`] writes. A malformed line is an error naming it.
pub fn parse_aggregates_jsonl(text: &str) -> Result<Vec<AggregateRecord>, IllumosError> {
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| IllumosError::Fixture { what: format!("aggregate line {}", n + 1), message: why.to_string() };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let aggregation = v["aggregation"].as_str().ok_or_else(|| bad("no \"aggregation\" string"))?.to_string();
        let keys = v["keys"]
            .as_array()
            .ok_or_else(|| bad("no \"keys\" array"))?
            .iter()
            .map(|k| match k {
                Value::String(s) => Ok(Key::Str(s.clone())),
                other => other.as_i64().map(Key::Int).ok_or_else(|| bad("a key is neither a string nor an integer")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let int = |field: &str| v[field].as_i64().ok_or_else(|| bad(&format!("\"{field}\" is not an integer")));
        let value = if v.get("count").is_some() {
            AggregateValue::Count(v["count"].as_u64().ok_or_else(|| bad("\"count\" is not a count"))?)
        } else if v.get("sum").is_some() {
            AggregateValue::Sum(int("sum")?)
        } else if v.get("min").is_some() {
            AggregateValue::Min(int("min")?)
        } else if v.get("max").is_some() {
            AggregateValue::Max(int("max")?)
        } else if let Some(buckets) = v.get("quantize") {
            let buckets = buckets
                .as_array()
                .ok_or_else(|| bad("\"quantize\" is not an array"))?
                .iter()
                .map(|b| b.as_i64().ok_or_else(|| bad("a quantize bucket is not an integer")))
                .collect::<Result<Vec<_>, _>>()?;
            if buckets.len() != dtrace_sys::QUANTIZE_BUCKETS {
                return Err(bad(&format!("\"quantize\" has {} buckets, not {}", buckets.len(), dtrace_sys::QUANTIZE_BUCKETS)));
            }
            AggregateValue::Quantize(buckets)
        } else if let Some(action) = v.get("other") {
            AggregateValue::Other(action.as_u64().and_then(|a| u16::try_from(a).ok()).ok_or_else(|| bad("bad \"other\""))?)
        } else {
            return Err(bad("no value (count, sum, min, max, quantize or other)"));
        };
        records.push(AggregateRecord { aggregation, keys, value });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips() {
        let mut buckets = vec![0i64; dtrace_sys::QUANTIZE_BUCKETS];
        buckets[dtrace_sys::QUANTIZE_ZERO_BUCKET + 12] = 9;
        let records = vec![
            AggregateRecord { aggregation: "ticks".into(), keys: vec![], value: AggregateValue::Count(4999) },
            AggregateRecord {
                aggregation: "process".into(),
                keys: vec![Key::Str("z 1\t\"x\"".into()), Key::Int(4242), Key::Str("java".into()), Key::Int(3)],
                value: AggregateValue::Count(12),
            },
            AggregateRecord {
                aggregation: "syscall_latency".into(),
                keys: vec![Key::Str("global".into()), Key::Str("read".into())],
                value: AggregateValue::Quantize(buckets),
            },
            AggregateRecord { aggregation: "m".into(), keys: vec![Key::Int(-1)], value: AggregateValue::Max(-7) },
        ];
        let text = format_aggregates_jsonl(&records);
        assert_eq!(text.lines().count(), 4);
        assert_eq!(parse_aggregates_jsonl(&text).unwrap(), records);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let good = r#"{"aggregation":"ticks","keys":[],"count":1}"#;
        for bad in [
            "not json",
            r#"{"keys":[],"count":1}"#,
            r#"{"aggregation":"a","keys":[1.5],"count":1}"#,
            r#"{"aggregation":"a","keys":[],"quantize":[1,2]}"#,
            r#"{"aggregation":"a","keys":[]}"#,
        ] {
            let err = parse_aggregates_jsonl(&format!("{good}\n{bad}\n")).unwrap_err();
            assert!(err.to_string().contains("line 2"), "{bad}: {err}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary lines are records or an error naming the line, never a panic.
        #[test]
        fn aggregate_parsing_is_total(text in "(\\{\"aggregation\":\"[a-z]{1,4}\",\"keys\":\\[(\"[a-z]{0,3}\"|-?[0-9]{1,20}|1\\.5|null)?\\],\"(count|sum|min|max|quantize|other)\":(-?[0-9]{1,21}|\\[\\]|\"x\")\\}\n|[ -~]{0,30}\n){0,6}") {
            let _ = parse_aggregates_jsonl(&text);
        }
    }
}

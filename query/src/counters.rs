//! Counter-aware SQL: `increase`, `rate`, `delta` and `resets` over a column and `time`, as
//! aggregates (`GROUP BY`) and as window functions (`OVER (PARTITION BY ... ORDER BY time)`).
//!
//! Samples are taken in time order (the order the rows arrive in does not matter). Between
//! two consecutive samples of a cumulative counter:
//! - a value that grew adds the difference;
//! - a value that went down is a *wrap* when the column is 32 bits wide (`UInt32`, the
//!   2013 schema's operation counters) and the drop is more than half the range (`prev -
//!   cur > 2^31`): it adds `cur + 2^32 - prev`;
//! - any other drop is a *reset* (the source restarted): it adds `cur` (the counter counted
//!   from 0 again), and `resets` counts it.
//!
//! `increase` is the sum of those additions (Prometheus' `increase` without extrapolation to
//! the window's edges: it covers exactly the first to the last sample), `rate` the increase
//! per second between the first and the last sample (NULL with fewer than two samples or
//! no time between them), `delta` last minus first (for gauges; signed, no reset handling,
//! Prometheus' `delta` without extrapolation) and `resets` the number of resets. NULL values
//! are skipped. [`reference`] is the plain implementation the property test compares with.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit, UInt32Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

/// Which of the four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterFunction {
    /// Sum of increments, resets and 32-bit wraps handled.
    Increase,
    /// Increase per second.
    Rate,
    /// Last minus first.
    Delta,
    /// Number of resets.
    Resets,
}

impl CounterFunction {
    /// Every one.
    pub const ALL: [CounterFunction; 4] =
        [CounterFunction::Increase, CounterFunction::Rate, CounterFunction::Delta, CounterFunction::Resets];

    fn name(self) -> &'static str {
        match self {
            CounterFunction::Increase => "increase",
            CounterFunction::Rate => "rate",
            CounterFunction::Delta => "delta",
            CounterFunction::Resets => "resets",
        }
    }

    fn return_type(self) -> DataType {
        match self {
            CounterFunction::Rate => DataType::Float64,
            CounterFunction::Resets => DataType::Int64,
            CounterFunction::Increase | CounterFunction::Delta => DataType::Float64,
        }
    }

    /// The aggregate, ready to register.
    pub fn udaf(self) -> AggregateUDF {
        AggregateUDF::new_from_impl(CounterUdaf { function: self, signature: Signature::any(2, Volatility::Immutable) })
    }
}

/// What the four answer from samples `(time_us, value)` in time order of a counter `bits`
/// wide (32 or 64): the plain reference.
pub fn reference(function: CounterFunction, samples: &[(i64, f64)], bits: u32) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    let mut increase = 0.0;
    let mut resets = 0i64;
    for w in samples.windows(2) {
        let (prev, cur) = (w[0].1, w[1].1);
        if cur >= prev {
            increase += cur - prev;
        } else if bits == 32 && prev - cur > 2f64.powi(31) {
            increase += cur + 2f64.powi(32) - prev;
        } else {
            increase += cur;
            resets += 1;
        }
    }
    match function {
        CounterFunction::Increase => Some(increase),
        CounterFunction::Rate => {
            let seconds = (last.0 - first.0) as f64 / 1e6;
            (samples.len() >= 2 && seconds > 0.0).then(|| increase / seconds)
        }
        CounterFunction::Delta => Some(last.1 - first.1),
        CounterFunction::Resets => Some(resets as f64),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CounterUdaf {
    function: CounterFunction,
    signature: Signature,
}

/// Microseconds of a time argument (any timestamp unit, or an integer taken as µs).
fn times_us(a: &dyn Array) -> Result<Vec<Option<i64>>> {
    let scale = |v: Vec<Option<i64>>, f: i64| v.into_iter().map(|x| x.map(|t| t.saturating_mul(f))).collect::<Vec<_>>();
    Ok(match a.data_type() {
        DataType::Timestamp(unit, _) => {
            let cast = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
            let v: Vec<Option<i64>> = cast.as_primitive::<Int64Type>().iter().collect();
            match unit {
                TimeUnit::Second => scale(v, 1_000_000),
                TimeUnit::Millisecond => scale(v, 1_000),
                TimeUnit::Microsecond => v,
                TimeUnit::Nanosecond => v.into_iter().map(|x| x.map(|t| t / 1_000)).collect(),
            }
        }
        DataType::Int64 => a.as_primitive::<Int64Type>().iter().collect(),
        other => return exec_err!("the second argument of a counter function is the sample time, not {other}"),
    })
}

fn values(a: &dyn Array) -> Result<Vec<Option<f64>>> {
    Ok(match a.data_type() {
        DataType::UInt32 => a.as_primitive::<UInt32Type>().iter().map(|v| v.map(f64::from)).collect(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().iter().map(|v| v.map(|v| v as f64)).collect(),
        _ => {
            let cast = datafusion::arrow::compute::cast(a, &DataType::Float64)?;
            cast.as_primitive::<Float64Type>().iter().collect()
        }
    })
}

impl AggregateUDFImpl for CounterUdaf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [v, t] if (v.is_numeric()) && (matches!(t, DataType::Timestamp(..) | DataType::Int64)) => {
                Ok(self.function.return_type())
            }
            _ => exec_err!("{}(value, time): a number and the sample time, not {args:?}", self.function.name()),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let bits = match args.exprs.first().map(|e| e.data_type(args.schema)).transpose()? {
            Some(DataType::UInt32 | DataType::Int32) => 32,
            _ => 64,
        };
        Ok(Box::new(CounterAccumulator { function: self.function, bits, samples: Vec::new() }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str, ty: DataType| {
            Arc::new(Field::new(
                format!("{}[{name}]", args.name),
                DataType::List(Arc::new(Field::new_list_field(ty, true))),
                true,
            ))
        };
        Ok(vec![list("time", DataType::Int64), list("value", DataType::Float64)])
    }
}

/// The samples of one group (or window frame).
#[derive(Debug)]
struct CounterAccumulator {
    function: CounterFunction,
    bits: u32,
    samples: Vec<(i64, f64)>,
}

impl CounterAccumulator {
    fn add(&mut self, times: Vec<Option<i64>>, values: Vec<Option<f64>>) {
        for (t, v) in times.into_iter().zip(values) {
            if let (Some(t), Some(v)) = (t, v) {
                self.samples.push((t, v));
            }
        }
    }
}

impl Accumulator for CounterAccumulator {
    fn update_batch(&mut self, args: &[ArrayRef]) -> Result<()> {
        let [v, t] = args else { return exec_err!("{}: two arguments", self.function.name()) };
        self.add(times_us(t.as_ref())?, values(v.as_ref())?);
        Ok(())
    }

    fn retract_batch(&mut self, args: &[ArrayRef]) -> Result<()> {
        let [v, t] = args else { return exec_err!("{}: two arguments", self.function.name()) };
        for (t, v) in times_us(t.as_ref())?.into_iter().zip(values(v.as_ref())?) {
            if let (Some(t), Some(v)) = (t, v) {
                if let Some(i) = self.samples.iter().position(|s| *s == (t, v)) {
                    self.samples.remove(i);
                }
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // Stable: samples of equal time keep the order they came in.
        self.samples.sort_by_key(|(t, _)| *t);
        let answer = reference(self.function, &self.samples, self.bits);
        Ok(match self.function {
            CounterFunction::Resets => ScalarValue::Int64(Some(answer.unwrap_or(0.0) as i64)),
            _ => ScalarValue::Float64(answer),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.samples.capacity() * std::mem::size_of::<(i64, f64)>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let times: Vec<ScalarValue> = self.samples.iter().map(|(t, _)| ScalarValue::Int64(Some(*t))).collect();
        let values: Vec<ScalarValue> = self.samples.iter().map(|(_, v)| ScalarValue::Float64(Some(*v))).collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&times, &DataType::Int64)),
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [times, values] = states else { return exec_err!("{}: two state columns", self.function.name()) };
        let (times, values): (&ListArray, &ListArray) = (times.as_list(), values.as_list());
        for i in 0..times.len() {
            if times.is_null(i) {
                continue;
            }
            let t = times.value(i);
            let v = values.value(i);
            let t: Vec<Option<i64>> = t.as_primitive::<Int64Type>().iter().collect();
            let v: Vec<Option<f64>> = v.as_primitive::<Float64Type>().iter().collect();
            self.add(t, v);
        }
        Ok(())
    }
}

//! `date_trunc` for the archive's UTC timestamps, on DataFusion's arithmetic fast path.
//!
//! Every `time` column is `Timestamp(µs, "UTC")`. DataFusion 55 truncates `hour` and `day`
//! by integer arithmetic only when a timestamp has no time zone; with `"UTC"` it converts each
//! value through the time-zone database, about 5x slower on the most common query of an
//! archive (`GROUP BY date_trunc('hour', time)`: 0.77 s against 0.16 s for 3.5 million rows).
//! In UTC an hour and a day have fixed lengths, so [`UtcDateTrunc`] drops the zone, lets the
//! built-in function take its fast path, and puts the zone back. Everything else (other
//! zones, other units, scalars, time-of-day types) goes to the built-in unchanged. It
//! replaces `date_trunc` (and its alias `datetrunc`) in `dq`'s session.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, FieldRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, sort_properties::ExprProperties,
    sort_properties::SortProperties,
};

/// `date_trunc` with UTC `hour` and `day` on the arithmetic path; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct UtcDateTrunc {
    inner: DateTruncFunc,
}

impl UtcDateTrunc {
    /// The function, ready to register in place of the built-in.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self::default())
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "Etc/UTC")
}

/// Re-labels a timestamp array's time zone without touching its values.
fn with_zone(array: &dyn Array, tz: Option<Arc<str>>) -> Option<ArrayRef> {
    Some(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            Arc::new(array.as_primitive::<TimestampSecondType>().clone().with_timezone_opt(tz))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Arc::new(array.as_primitive::<TimestampMillisecondType>().clone().with_timezone_opt(tz))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Arc::new(array.as_primitive::<TimestampMicrosecondType>().clone().with_timezone_opt(tz))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Arc::new(array.as_primitive::<TimestampNanosecondType>().clone().with_timezone_opt(tz))
        }
        _ => return None,
    })
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = match args.args.first() {
            Some(ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(u)) | ScalarValue::Utf8View(Some(u)) | ScalarValue::LargeUtf8(Some(u)),
            )) => u.to_ascii_lowercase(),
            _ => return self.inner.invoke_with_args(args),
        };
        let zone = match args.args.get(1) {
            Some(ColumnarValue::Array(a)) => match a.data_type() {
                DataType::Timestamp(_, Some(tz)) if is_utc(tz) => Some(Arc::clone(tz)),
                _ => None,
            },
            _ => None,
        };
        let (Some(zone), "hour" | "day") = (zone, unit.as_str()) else { return self.inner.invoke_with_args(args) };
        let Some(ColumnarValue::Array(array)) = args.args.get(1) else { return self.inner.invoke_with_args(args) };
        let Some(naive) = with_zone(array.as_ref(), None) else { return self.inner.invoke_with_args(args) };
        args.args[1] = ColumnarValue::Array(naive);
        match self.inner.invoke_with_args(args)? {
            ColumnarValue::Array(out) => match with_zone(out.as_ref(), Some(zone)) {
                Some(zoned) => Ok(ColumnarValue::Array(zoned)),
                None => Ok(ColumnarValue::Array(out)),
            },
            scalar => Ok(scalar),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{RecordBatch, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    async fn truncate(ctx: &SessionContext, unit: &str) -> Vec<String> {
        let df = ctx.sql(&format!("SELECT CAST(date_trunc('{unit}', t) AS VARCHAR) AS d, arrow_typeof(date_trunc('{unit}', t)) AS ty FROM ts ORDER BY t")).await.unwrap();
        let batches = df.collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let d = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            let ty = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
            let (d, ty) = (d.as_string::<i32>(), ty.as_string::<i32>());
            for i in 0..b.num_rows() {
                out.push(format!("{} {}", d.value(i), ty.value(i)));
            }
        }
        out
    }

    fn context(register: bool, tz: &str) -> SessionContext {
        let ctx = SessionContext::new();
        if register {
            ctx.register_udf(UtcDateTrunc::udf());
        }
        // 2025-11-24T10:59:59.999999Z, 2025-11-24T23:30:00Z, 1969-12-31T23:59:59Z (negative)
        let values =
            TimestampMicrosecondArray::from(vec![1_763_981_999_999_999, 1_764_027_000_000_000, -1_000_000]).with_timezone(tz);
        let schema = Arc::new(Schema::new(vec![Field::new("t", values.data_type().clone(), false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        ctx.register_batch("ts", batch).unwrap();
        ctx
    }

    #[tokio::test]
    async fn same_answers_as_the_built_in() {
        for tz in ["UTC", "+00:00", "Europe/Paris"] {
            for unit in ["second", "minute", "hour", "day", "week", "month", "year"] {
                assert_eq!(truncate(&context(true, tz), unit).await, truncate(&context(false, tz), unit).await, "{unit} in {tz}");
            }
        }
        // A unit neither knows is the built-in's error, unchanged.
        for register in [true, false] {
            let df = context(register, "UTC").sql("SELECT date_trunc('fortnight', t) FROM ts").await;
            let err = match df {
                Ok(df) => df.collect().await.unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().contains("fortnight"), "{err}");
        }
        let hours = truncate(&context(true, "UTC"), "hour").await;
        assert!(hours[0].starts_with("1969-12-31T23:00:00") && hours[0].contains("UTC"), "{hours:?}");
        assert!(hours[1].starts_with("2025-11-24T10:00:00"), "{hours:?}");
    }
}

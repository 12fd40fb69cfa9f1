//! Writing query results: aligned table, CSV, JSON, NDJSON or Parquet.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use crate::{OutputFormat, QueryError};

/// Writes `batches` to `out` in `format`; `target` names the destination in errors.
pub fn write_results(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut (dyn Write + Send),
    target: &str,
) -> Result<(), QueryError> {
    let err = |e: &dyn std::fmt::Display| QueryError::Output { target: target.to_owned(), message: e.to_string() };
    match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "(0 rows: {})", names.join(", ")).map_err(|e| err(&e))?;
            } else {
                let text = pretty_format_batches(batches).map_err(|e| err(&e))?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                writeln!(out, "{text}\n({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(|e| err(&e))?;
            }
        }
        OutputFormat::Csv => {
            let mut w = CsvWriterBuilder::new().with_header(true).build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone())).map_err(|e| err(&e))?;
            }
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
        }
        OutputFormat::Json => {
            let mut w = ArrayWriter::new(out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.finish().map_err(|e| err(&e))?;
            w.into_inner().write_all(b"\n").map_err(|e| err(&e))?;
        }
        OutputFormat::Ndjson => {
            let mut w = LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.finish().map_err(|e| err(&e))?;
        }
        OutputFormat::Parquet => {
            let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
            let mut w = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| err(&e))?;
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.close().map_err(|e| err(&e))?;
        }
    }
    Ok(())
}

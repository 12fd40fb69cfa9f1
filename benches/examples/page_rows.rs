//! What smaller data pages cost in bytes, and what they buy a selective read: rewrites
//! sealed files (any archive's) with the archiver's sealed encoding and at most N rows a
//! data page, and prints, per N, the bytes, the data pages, and the share of pages a
//! selection of rare rows (the top 0.01% of a column's values, scattered as they are in the
//! file) would have to read.
//!
//!     cargo run --release -p benches --example page_rows -- TABLE COLUMN FILE...
#![allow(unused_crate_dependencies)]

use std::fs::File;

use archive_layout::Table;
use archiver::parquet_file::{Encoder, read_file};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{UInt32Type, UInt64Type};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (table, column, files) = (Table::from_name(&args[0]).expect("table"), args[1].clone(), &args[2..]);
    let mut batches = Vec::new();
    for f in files {
        batches.extend(read_file(std::path::Path::new(f)).expect("read"));
    }
    let batch = concat_batches(&batches[0].schema(), &batches).expect("concat");
    let values: Vec<u64> = {
        let a = batch.column_by_name(&column).expect("column");
        (0..a.len())
            .map(|i| match (a.as_primitive_opt::<UInt64Type>(), a.as_primitive_opt::<UInt32Type>()) {
                (Some(v), _) => v.value(i),
                (_, Some(v)) => u64::from(v.value(i)),
                _ => 0,
            })
            .collect()
    };
    let mut sorted = values.clone();
    sorted.sort_unstable();
    let threshold = sorted[sorted.len() - sorted.len() / 10_000 - 1];
    let hits: Vec<usize> = values.iter().enumerate().filter(|(_, v)| **v > threshold).map(|(i, _)| i).collect();
    println!(
        "{} rows, {} hits above {threshold} ({:.4}%)",
        values.len(),
        hits.len(),
        100.0 * hits.len() as f64 / values.len() as f64
    );
    for limit in [None, Some(8192), Some(4096), Some(2048), Some(1024), Some(512), Some(256)] {
        let mut props = Encoder::COMPACT.properties(table).expect("props").into_builder();
        if let Some(n) = limit {
            props = props.set_data_page_row_count_limit(n).set_write_batch_size(n.min(1024));
        }
        let path = std::env::temp_dir().join("page_rows.parquet");
        let mut w =
            ArrowWriter::try_new(File::create(&path).expect("create"), batch.schema(), Some(props.build())).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let bytes = std::fs::metadata(&path).expect("stat").len();
        // Pages of the column, by first row: from the offset index.
        let reader = SerializedFileReader::new_with_options(
            File::open(&path).expect("open"),
            datafusion::parquet::file::serialized_reader::ReadOptionsBuilder::new().with_page_index().build(),
        )
        .expect("reader");
        let meta = reader.metadata();
        let col = meta.file_metadata().schema_descr().columns().iter().position(|c| c.name() == column).expect("col");
        let mut starts = Vec::new();
        let mut base = 0usize;
        let mut pages = 0usize;
        for (rg, index) in meta.offset_index().expect("offset index").iter().enumerate() {
            for oi in &index[col].page_locations {
                starts.push(base + oi.first_row_index as usize);
            }
            pages += index.iter().map(|c| c.page_locations.len()).sum::<usize>();
            base += meta.row_group(rg).num_rows() as usize;
        }
        let page_of = |row: usize| starts.partition_point(|s| *s <= row) - 1;
        let mut touched: Vec<usize> = hits.iter().map(|r| page_of(*r)).collect();
        touched.dedup();
        println!(
            "rows per page {:>6}: {:>9} bytes, {:>6} pages (all columns), column pages {:>5}, pages with a hit {:>5} ({:.1}%)",
            limit.map_or("none".to_owned(), |n| n.to_string()),
            bytes,
            pages,
            starts.len(),
            touched.len(),
            100.0 * touched.len() as f64 / starts.len().max(1) as f64
        );
    }
}

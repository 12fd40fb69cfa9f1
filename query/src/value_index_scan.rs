//! How a scan uses the archive's value indexes (`value_index` crate): before the files of a
//! raw table are read, each file's index summary (from the catalog) is judged against the
//! query's filters. A file whose key sets lack the value asked for, or whose values of a
//! measured column all lie outside a condition, is not read; a file for which a filter lies
//! inside its tails is answered from the sections of its side file holding those tails (the
//! header and each section CRC-checked, its tails the catalog's, and the data file it
//! describes the one the catalog lists: name, length and footer CRC, without reading the
//! data file; a catalog written before it kept the footer CRC has the data file's footer
//! read instead), any other file is read as before. A side file that is
//! missing, damaged or stale is counted and its data file read instead: an index never
//! changes an answer while the catalog describes the files (as every plan here assumes).
//! DataFusion still applies every filter to the rows read, from data
//! files or side files.
//!
//! [`ValueIndexExec`] shows in EXPLAIN what the indexes did and the side-file bytes read.
//! This module decides nothing about which files a table has (`archive_table` does).

use std::fmt;
use std::sync::Arc;

use archive_layout::Table;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use crate::archive_table::ScanFile;

/// What the indexes did for one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Files with an index summary that were judged.
    pub judged: usize,
    /// Files not read: their key sets lack every value a filter asks for, or their values of
    /// a measured column all lie outside a condition.
    pub skipped: usize,
    /// Files answered from their side files.
    pub from_side_files: usize,
    /// Bytes of the side files read.
    pub side_bytes: u64,
    /// Bytes of the answered files' own footers, read to check each side file describes
    /// its data file as it is now.
    pub footer_bytes: u64,
    /// Rows of the side files handed on (before the filters).
    pub side_rows: usize,
    /// Side files that could not be used (missing, damaged, stale): their data files were read.
    pub unusable: usize,
}

impl IndexReport {
    /// Whether the indexes changed anything (then EXPLAIN shows it).
    pub fn used(&self) -> bool {
        self.skipped > 0 || self.from_side_files > 0 || self.unusable > 0
    }
}

/// The files left to read as they are, the side files' rows (in `schema`), and the report.
#[derive(Debug)]
pub struct IndexedScan {
    /// Files read as before.
    pub files: Vec<ScanFile>,
    /// Rows from side files, in the table's schema.
    pub side_rows: Vec<RecordBatch>,
    /// What the indexes did.
    pub report: IndexReport,
}

impl IndexedScan {
    /// Every file read as it is, nothing judged (value indexes off, or no filter).
    pub fn unjudged(files: Vec<ScanFile>) -> Self {
        Self { files, side_rows: Vec::new(), report: IndexReport::default() }
    }
}

/// Judges each of `files` (of raw table `table`, whose schema is `schema`) against `filters`
/// (a conjunction) as the module docs say.
pub fn apply(table: Table, schema: &SchemaRef, filters: &[Expr], files: Vec<ScanFile>) -> IndexedScan {
    let mut report = IndexReport::default();
    let mut kept = Vec::with_capacity(files.len());
    let mut to_side = Vec::new();
    for f in files {
        let Some(summary) = f.index.as_deref() else {
            kept.push(f);
            continue;
        };
        report.judged += 1;
        if filters.iter().any(|e| value_index::excluded(summary, table, e)) {
            report.skipped += 1;
        } else if let Some(tails) = filters.iter().filter_map(|e| value_index::tails_covering(summary, e)).min_by_key(Vec::len) {
            to_side.push((f, tails));
        } else {
            kept.push(f);
        }
    }
    // Side files are small and many (one per file): read and checked on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(to_side.len().max(1));
    let chunk = to_side.len().div_ceil(threads).max(1);
    let read: Vec<Option<(Vec<RecordBatch>, u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = to_side
            .chunks(chunk)
            .map(|part| {
                (
                    part.len(),
                    scope.spawn(move || part.iter().map(|(f, tails)| side_file_rows(f, tails, schema)).collect::<Vec<_>>()),
                )
            })
            .collect();
        // A reader that panicked leaves its files unusable: read as they are.
        handles.into_iter().flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![None; n])).collect()
    });
    let mut side_rows = Vec::new();
    for ((f, _), got) in to_side.into_iter().zip(read) {
        match got {
            Some((batches, bytes, footer_bytes)) => {
                report.from_side_files += 1;
                report.side_bytes += bytes;
                report.footer_bytes += footer_bytes;
                report.side_rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
                side_rows.extend(batches);
            }
            None => {
                report.unusable += 1;
                kept.push(f);
            }
        }
    }
    IndexedScan { files: kept, side_rows, report }
}

/// The rows of the sections of `f`'s side file holding `tails`, in `schema`, the side
/// file's bytes read and the data file's footer bytes read; `None` if it cannot be used.
fn side_file_rows(f: &ScanFile, tails: &[value_index::TailRef], schema: &SchemaRef) -> Option<(Vec<RecordBatch>, u64, u64)> {
    let side_path = archive_layout::side_file_of(&f.path)?;
    let mut side = value_index::OpenSideFile::open(&side_path).ok()??;
    // Its tails are the ones the catalog's summary judged by, and it describes the data
    // file the catalog lists (name, length, footer CRC: the catalog's word, as for every
    // other planning decision), or, for a catalog written before it kept the footer CRC,
    // the data file as it is now (its footer read).
    let summary = f.index.as_deref()?;
    if side.tails() != (&summary.tails, summary.tail_rows) || side.identity().bytes != f.size {
        return None;
    }
    let footer_bytes = match summary.data_footer_crc {
        Some(crc) => {
            let name = f.path.file_name().map(|n| n.to_string_lossy());
            if crc != side.identity().footer_crc || name.as_deref() != Some(side.identity().name.as_str()) {
                return None;
            }
            0
        }
        None => {
            let (identity, footer_bytes) = value_index::DataFileIdentity::of_counted(&f.path).ok()?;
            if identity != *side.identity() {
                return None;
            }
            footer_bytes
        }
    };
    let batches = side.rows_of(tails).ok()?;
    let adapted = batches.iter().map(|b| in_schema(b, schema)).collect::<Option<Vec<_>>>()?;
    Some((adapted, side.bytes_read, footer_bytes))
}

/// `batch` with `schema`'s columns: taken by name, cast where the type differs, NULL where
/// the file lacks one (a file of an older format).
fn in_schema(batch: &RecordBatch, schema: &SchemaRef) -> Option<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Some(Arc::clone(c)),
            Some(c) => cast(c, field.data_type()).ok(),
            None => field.is_nullable().then(|| new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Option<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).ok()
}

/// The side files' rows of a scan (or nothing), shown in EXPLAIN with what the indexes did.
/// It passes its input's batches through unchanged.
#[derive(Debug)]
pub struct ValueIndexExec {
    input: Arc<dyn ExecutionPlan>,
    report: IndexReport,
    properties: Arc<PlanProperties>,
}

impl ValueIndexExec {
    /// `input` (the side files' rows), labelled with `report`.
    pub fn new(input: Arc<dyn ExecutionPlan>, report: IndexReport) -> Self {
        let properties = input.properties().clone();
        Self { input, report, properties }
    }
}

impl DisplayAs for ValueIndexExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        write!(
            f,
            "ValueIndexExec: files_judged={}, skipped={}, answered_from_side_files={}, side_file_bytes={}, data_footer_bytes={}, side_rows={}, unusable_side_files={}",
            r.judged, r.skipped, r.from_side_files, r.side_bytes, r.footer_bytes, r.side_rows, r.unusable
        )
    }
}

impl ExecutionPlan for ValueIndexExec {
    fn name(&self) -> &str {
        "ValueIndexExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [input] => Ok(Arc::new(Self::new(Arc::clone(input), self.report))),
            _ => Err(datafusion::error::DataFusionError::Internal("ValueIndexExec takes one input".into())),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

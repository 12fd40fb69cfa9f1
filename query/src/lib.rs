//! `dq`: SQL over the archive with Apache DataFusion.
//!
//! Owns the query side: every table of the archive registered as an [`ArchiveTable`] that
//! prunes files by zone and time before DataFusion opens any ([`pruning`]), output in the
//! formats users ask for ([`output`]), and the interactive prompt ([`repl`]). It reads the
//! archive layout through `archive_layout` and must never write into the archive.

pub mod archive_table;
pub mod catalog_answers;
pub mod cli;
pub mod config;
pub mod counters;
pub mod output;
pub mod pruning;
pub mod repl;
pub mod rollup_answers;
pub mod utc_date_trunc;
pub mod value_index_scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive_layout::{RollupLevel, Table};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use archive_table::ArchiveTable;
pub use config::{DqConfig, OutputFormat};

// The binary builds the runtime; the library only awaits.
use tokio as _;
// Used by the integration tests only.
#[cfg(test)]
use {proptest as _, tempfile as _};

/// Errors of `dq`; each message is one line naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The archive directory does not exist.
    #[error("archive {0} does not exist (give --archive DIR or set DQ_ARCHIVE)")]
    NoArchive(PathBuf),
    /// Planning or running the query failed (bad SQL, unknown table or column, ...).
    #[error("{}", one_line(.0))]
    Query(#[from] datafusion::error::DataFusionError),
    /// The archive's format cannot be read by this build (too new, or a foreign format file).
    #[error("archive {root}: {source}")]
    Format {
        /// The archive.
        root: PathBuf,
        /// What is wrong.
        #[source]
        source: archive_layout::LayoutError,
    },
    /// Writing the output failed.
    #[error("writing {target}: {message}")]
    Output {
        /// Where output was going.
        target: String,
        /// What failed.
        message: String,
    },
}

/// Whether an error is a listed file that disappeared before it was opened.
fn is_vanished_file(e: &datafusion::error::DataFusionError) -> bool {
    let text = e.to_string();
    text.contains("not found") && text.contains(".parquet") && text.contains("No such file or directory")
}

fn one_line(e: &datafusion::error::DataFusionError) -> String {
    let text = e.to_string();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A query session over one archive.
#[derive(Clone)]
pub struct ArchiveSession {
    ctx: SessionContext,
    pin: Arc<archive_table::CatalogPin>,
}

impl std::fmt::Debug for ArchiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSession").field("session_id", &self.ctx.session_id()).finish()
    }
}

impl ArchiveSession {
    /// Registers every table of the archive at `root` (value indexes used).
    pub fn open(root: &Path) -> Result<Self, QueryError> {
        Self::open_with(root, true)
    }

    /// Registers every table of the archive at `root`; scans use the archive's value indexes
    /// if `value_indexes` (see [`value_index_scan`]).
    pub fn open_with(root: &Path, value_indexes: bool) -> Result<Self, QueryError> {
        if !root.is_dir() {
            return Err(QueryError::NoArchive(root.to_owned()));
        }
        // File locations handed to DataFusion must be absolute (the default is `./archive`).
        let root = &std::fs::canonicalize(root).map_err(|_| QueryError::NoArchive(root.to_owned()))?;
        archive_layout::format::read_format_version(root).map_err(|source| QueryError::Format { root: root.clone(), source })?;
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.collect_statistics", false);
        let ctx = SessionContext::new_with_config(config);
        // UTC hour/day truncation by arithmetic (see `utc_date_trunc`).
        ctx.register_udf(utc_date_trunc::UtcDateTrunc::udf());
        // increase, rate, delta and resets over counters (aggregate and window forms).
        for f in counters::CounterFunction::ALL {
            ctx.register_udaf(f.udaf());
        }
        // Latest sample, first sample and rows per zone from the catalog, without a scan.
        ctx.add_optimizer_rule(Arc::new(catalog_answers::CatalogAnswers));
        // Long-range aggregates from the rollup tables when they give the same answer.
        ctx.add_optimizer_rule(Arc::new(rollup_answers::RollupAnswers));
        let pin = Arc::new(archive_table::CatalogPin::default());
        for table in Table::ALL {
            let raw = ArchiveTable::with_pin(root, table, pin.clone()).with_value_indexes(value_indexes);
            ctx.register_table(table.name(), Arc::new(raw))?;
            for level in RollupLevel::ALL.into_iter().filter(|_| table.has_rollups()) {
                let rollup = ArchiveTable::rollup_with_pin(root, table, level, pin.clone());
                ctx.register_table(level.table_name(table), Arc::new(rollup))?;
            }
        }
        Ok(Self { ctx, pin })
    }

    /// The DataFusion context (for registering more, or for tests).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Pins the catalog snapshot the next statement plans from (listing if the archive has
    /// no catalog or `listing` is asked).
    fn pin_catalog(&self, listing: bool) {
        use archive_table::CatalogSource;
        // Read by the first scan that needs it: one snapshot for the whole statement. No
        // catalog, or one that cannot be read (`archiver check` says why): the directories
        // are the truth.
        let source = if listing { CatalogSource::Listing } else { CatalogSource::Lazy(None, Arc::default()) };
        self.pin.set(source);
    }

    /// Narrows a statement's catalog read to the tables its plan scans (by each scan's own
    /// table, whatever name it was registered under), when every scan is of an archive table
    /// (any other provider might read archive tables the plan does not show: all then).
    fn narrow_catalog(&self, plan: &datafusion::logical_expr::LogicalPlan) {
        use archive_table::CatalogSource;
        use datafusion::common::tree_node::TreeNodeRecursion;
        if !matches!(self.pin.source(), CatalogSource::Lazy(None, _)) {
            return;
        }
        let mut names: Vec<String> = Vec::new();
        let mut archive_only = true;
        let walked = plan.apply_with_subqueries(|node| {
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
                let provider = datafusion::datasource::source_as_provider(&scan.source).ok();
                let table = provider.as_ref().and_then(|p| (p.as_ref() as &dyn std::any::Any).downcast_ref::<ArchiveTable>());
                let Some(table) = table else {
                    archive_only = false;
                    return Ok(TreeNodeRecursion::Stop);
                };
                // A raw table's rollups too: an aggregate may be answered from them.
                let rollups = table.raw_table().filter(|t| t.has_rollups());
                let with_rollups = rollups.into_iter().flat_map(|t| RollupLevel::ALL.map(|l| l.table_name(t)));
                for n in std::iter::once(table.name()).chain(with_rollups) {
                    if !names.iter().any(|m| m == n) {
                        names.push(n.to_owned());
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if walked.is_ok() && archive_only {
            self.pin.set(CatalogSource::Lazy(Some(Arc::new(catalog::TableFilter::new(names))), Arc::default()));
        }
    }

    /// Runs one SQL statement and collects its result.
    ///
    /// The statement plans from one snapshot of the archive's catalog. The archiver may
    /// seal a period while a query runs: the runs the snapshot named are then removed. A
    /// query that hits a removed file is planned again from a newer snapshot, and the last
    /// of three retries lists directories instead (a catalog naming a file that is gone is
    /// stale), so a reader never fails, nor sees a row twice, because of a concurrent seal.
    pub async fn sql(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pin_catalog(attempt == 4);
            let df = self.ctx.sql(sql).await?;
            self.narrow_catalog(df.logical_plan());
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            match df.collect().await {
                Ok(batches) => return Ok((schema, batches)),
                Err(e) if attempt < 4 && is_vanished_file(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

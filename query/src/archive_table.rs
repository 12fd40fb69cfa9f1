//! One archive table as a DataFusion `TableProvider` that picks its own files.
//!
//! On each scan it asks `archive_layout::listing` for the table's live files in the
//! partitions the query's zone and time filters admit ([`ScanBounds`]): a compacted file
//! hides the files it replaced, and hour and day partitions are both found. Files outside
//! the filters are never opened. The layout rules come from `archive_layout`; this module
//! must not walk directories or parse paths itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive_layout::listing::list_table;
use archive_layout::{Table, unescape_partition_value, zone_dir_value};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{Result as DfResult, project_schema};
use datafusion::error::DataFusionError;
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::TableProvider;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::pruning::ScanBounds;

/// One table of the archive.
#[derive(Debug)]
pub struct ArchiveTable {
    root: PathBuf,
    table: Table,
}

/// A file chosen for a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

impl ArchiveTable {
    /// The table `table` of the archive at `root`.
    pub fn new(root: &Path, table: Table) -> Self {
        Self { root: root.to_owned(), table }
    }

    /// The files a scan with `bounds` reads, in path order.
    pub fn files(&self, bounds: &ScanBounds) -> Result<Vec<ScanFile>, archive_layout::LayoutError> {
        // The directory values of the zones asked for, computed once (long names have a
        // bounded form); a version 1 directory, stored unescaped `~` and all, matches by its
        // unescaped value (what `PartitionDir::holds_zone` does, without hashing per directory).
        let zone_values: Option<Vec<String>> = bounds.zones.as_ref().map(|z| z.iter().map(|z| zone_dir_value(z)).collect());
        let admit_zone = |dir: &archive_layout::PartitionDir| match (&bounds.zones, &zone_values) {
            (Some(zones), Some(values)) => {
                values.contains(&dir.zone_value) || unescape_partition_value(&dir.zone_value).is_some_and(|z| zones.contains(&z))
            }
            _ => true,
        };
        let admit = |dir: &archive_layout::PartitionDir| bounds.admits_period(dir.start_us, dir.end_us());
        let mut files: Vec<ScanFile> =
            list_table(&self.root, self.table, admit_zone, admit)?.into_iter().map(|f| ScanFile { path: f.path, size: f.size }).collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

#[async_trait]
impl TableProvider for ArchiveTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used for pruning only; DataFusion still filters the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let bounds = ScanBounds::from_filters(filters);
        let files = self.files(&bounds).map_err(|e| DataFusionError::External(Box::new(e)))?;
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&self.schema(), projection)?)));
        }
        // Spread files over the target partitions, largest first, to even out the work.
        let groups_n = state.config().target_partitions().max(1).min(files.len());
        let mut by_size = files;
        by_size.sort_by(|a, b| b.size.cmp(&a.size));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..groups_n).map(|_| (0, Vec::new())).collect();
        for f in by_size {
            let Some(g) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) else { break };
            g.0 += f.size;
            // From the filesystem path, so names with `%`, spaces or non-ASCII characters map
            // back to the same file (a plain string would be percent-encoded twice).
            let location = ObjectPath::from_absolute_path(&f.path).map_err(|e| DataFusionError::External(Box::new(e)))?;
            g.1.push(PartitionedFile::new_from_meta(ObjectMeta {
                location,
                last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                size: f.size,
                e_tag: None,
                version: None,
            }));
        }
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(self.schema().into());
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(groups.into_iter().map(|(_, files)| FileGroup::new(files)).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

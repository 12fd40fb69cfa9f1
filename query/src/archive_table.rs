//! One archive table as a DataFusion `TableProvider` that picks its own files.
//!
//! On each scan it walks `table/zone=*/date=*/hour=*`, keeps the partitions the query's
//! zone and time filters admit ([`ScanBounds`]), lists their live files (a compacted file
//! hides the files it replaced) and hands DataFusion exactly those files. Files outside the
//! filters are never opened. The layout rules come from `archive_layout`; this module must
//! not parse paths itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive_layout::{FileId, Granularity, PartitionKey, Table, live_files, unescape_partition_value};
use async_trait::async_trait;
use chrono::NaiveDate;
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
    pub fn files(&self, bounds: &ScanBounds) -> std::io::Result<Vec<ScanFile>> {
        let mut out = Vec::new();
        let table_dir = self.root.join(self.table.name());
        for zone_dir in sorted_subdirs(&table_dir)? {
            let Some(zone) = dir_value(&zone_dir, "zone=").and_then(|v| unescape_partition_value(&v)) else { continue };
            if !bounds.admits_zone(&zone) {
                continue;
            }
            for date_dir in sorted_subdirs(&zone_dir)? {
                // Skip a whole day before listing its hours.
                let Some(day) = dir_value(&date_dir, "date=").and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()) else {
                    continue;
                };
                let day_start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or(i64::MIN);
                if !bounds.admits(&zone, day_start, day_start.saturating_add(Granularity::Day.period_us())) {
                    continue;
                }
                let hour_dirs = sorted_subdirs(&date_dir)?;
                let partitions: Vec<PathBuf> = if hour_dirs.is_empty() { vec![date_dir] } else { hour_dirs };
                for dir in partitions {
                    let Ok(rel) = dir.strip_prefix(&self.root) else { continue };
                    let Ok(key) = PartitionKey::parse_relative_dir(rel) else { continue };
                    if bounds.admits(&key.zone, key.start_us, key.end_us()) {
                        self.partition_files(&dir, &mut out)?;
                    }
                }
            }
        }
        Ok(out)
    }

    fn partition_files(&self, dir: &Path, out: &mut Vec<ScanFile>) -> std::io::Result<()> {
        let mut found: Vec<(FileId, u64)> = Vec::new();
        for entry in read_dir_or_empty(dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(FileId::parse_file_name) else { continue };
            // A file may vanish between listing and stat (compaction removed it): skip it;
            // the compacted file that replaced it is listed too.
            if let Ok(meta) = entry.metadata() {
                found.push((id, meta.len()));
            }
        }
        let live = live_files(found.iter().map(|(id, _)| *id).collect());
        for id in live {
            if let Some((_, size)) = found.iter().find(|(f, _)| *f == id) {
                out.push(ScanFile { path: dir.join(id.file_name()), size: *size });
            }
        }
        Ok(())
    }
}

fn read_dir_or_empty(dir: &Path) -> std::io::Result<Vec<std::io::Result<std::fs::DirEntry>>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    }
}

fn sorted_subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in read_dir_or_empty(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let hidden = name.to_str().is_none_or(|n| n.starts_with('.') || n.starts_with('_'));
        if !hidden && entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn dir_value(dir: &Path, prefix: &str) -> Option<String> {
    dir.file_name()?.to_str()?.strip_prefix(prefix).map(str::to_owned)
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

//! One archive table as a DataFusion `TableProvider` that picks its own files.
//!
//! On each scan it takes the table's files from the archive's catalog (one snapshot per
//! statement, shared by every table it reads: [`CatalogPin`]), keeping those whose zone,
//! period and time range the query's filters admit ([`ScanBounds`]), without walking
//! directories or opening a footer. An archive without a catalog (or whose catalog names a
//! file that is gone) is listed instead: `archive_layout::listing` finds the live files of
//! the partitions the filters admit (a compacted file hides the files it replaced, and hour
//! and day partitions are both found). Either way it also reads
//! the flush runs of periods not yet sealed (`archive_layout::list_runs`), so rows are
//! queryable within a flush interval: a run's rows of a zone whose partition already holds
//! a file covering the run (a seal in progress, or interrupted) are left out, so no row is
//! counted twice. Files outside the filters are never opened. The layout rules come from
//! `archive_layout`; this module must not walk directories or parse paths itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive_layout::listing::{ListedFile, list_rollup, list_table};
use archive_layout::{RollupLevel, Table, list_runs, unescape_partition_value, zone_dir_value, zone_file_covers_run};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{ColumnStatistics, Result as DfResult, ScalarValue, Statistics, project_schema};
use datafusion::datasource::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::pruning::ScanBounds;

/// Where the scans of a statement take their files from.
#[derive(Debug, Clone, Default)]
pub enum CatalogSource {
    /// Each scan reads the catalog afresh (listing if there is none).
    #[default]
    Fresh,
    /// Every scan uses this snapshot.
    Snapshot(Arc<catalog::Snapshot>),
    /// Every scan lists directories (no catalog, or it cannot be trusted).
    Listing,
    /// The first scan that needs files reads the catalog, and every later scan of the
    /// statement uses what it read (a statement that reads no table never reads it): the
    /// entries of the tables the filter names (the statement's), or all.
    Lazy(Option<Arc<catalog::TableFilter>>, Arc<std::sync::OnceLock<Option<Arc<catalog::Snapshot>>>>),
}

/// The source shared by the tables of one session; the session pins one per statement, so
/// a statement reading several tables sees one commit of the archiver.
#[derive(Debug, Default)]
pub struct CatalogPin(std::sync::RwLock<CatalogSource>);

impl CatalogPin {
    /// Pins `source` for the scans that follow.
    pub fn set(&self, source: CatalogSource) {
        match self.0.write() {
            Ok(mut g) => *g = source,
            Err(poisoned) => *poisoned.into_inner() = source,
        }
    }

    /// What is pinned.
    pub fn source(&self) -> CatalogSource {
        self.get()
    }

    fn get(&self) -> CatalogSource {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// One table of the archive.
#[derive(Debug)]
pub struct ArchiveTable {
    root: PathBuf,
    table: Table,
    /// `Some`: the table's rollup of that level (`cpu_1m`), day files only, no runs.
    rollup: Option<RollupLevel>,
    pin: Arc<CatalogPin>,
    /// Whether scans use the files' value indexes ([`crate::value_index_scan`]).
    value_indexes: bool,
}

/// A file chosen for a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// For a run: the zones whose rows of it are already in their partition (sorted);
    /// those rows must be left out. Empty for every other file.
    pub sealed_zones: Vec<String>,
    /// What the catalog says of its columns (zone files planned from a catalog), so
    /// DataFusion can skip it without opening its footer.
    pub statistics: Option<Arc<Statistics>>,
    /// What its value index says (zone files of raw tables planned from a catalog whose
    /// entry carries one; see [`crate::value_index_scan`]).
    pub index: Option<Arc<value_index::Summary>>,
}

impl ArchiveTable {
    /// The table `table` of the archive at `root`.
    pub fn new(root: &Path, table: Table) -> Self {
        Self::with_pin(root, table, Arc::default())
    }

    /// The table `table` of the archive at `root`, taking its files as `pin` says.
    pub fn with_pin(root: &Path, table: Table, pin: Arc<CatalogPin>) -> Self {
        Self { root: root.to_owned(), table, rollup: None, pin, value_indexes: true }
    }

    /// The same table, its scans using value indexes or not.
    pub fn with_value_indexes(mut self, on: bool) -> Self {
        self.value_indexes = on;
        self
    }

    /// The rollup of `table` at `level` (`cpu_1m`) of the archive at `root`, taking its
    /// files as `pin` says.
    pub fn rollup_with_pin(root: &Path, table: Table, level: RollupLevel, pin: Arc<CatalogPin>) -> Self {
        Self { root: root.to_owned(), table, rollup: Some(level), pin, value_indexes: false }
    }

    /// The raw table it is (`None` for a rollup).
    pub fn raw_table(&self) -> Option<Table> {
        self.rollup.is_none().then_some(self.table)
    }

    /// Its table's rollup at `level`, planned from the same catalog pin.
    pub fn rollup(&self, level: RollupLevel) -> ArchiveTable {
        Self::rollup_with_pin(&self.root, self.table, level, Arc::clone(&self.pin))
    }

    /// Whether the rollup at `level` summarises exactly the raw files a scan with `bounds`
    /// could read: each is a day file whose rollup file of that level is in the statement's
    /// catalog snapshot, no run or hour file is among them, and no rollup file in the bounds
    /// lacks its raw file (retention removed it). `false` without a catalog. Zones as
    /// `bounds` says;
    /// The time span is `[from_us, until_us)`.
    pub fn rollup_covers(&self, level: RollupLevel, bounds: &ScanBounds, from_us: i64, until_us: i64) -> bool {
        let Ok(Some(snapshot)) = self.snapshot() else { return false };
        let admits = |e: &catalog::Entry| {
            e.zone.as_deref().is_none_or(|z| bounds.admits_zone(z))
                && e.period_start_us < until_us
                && e.period_end_us().unwrap_or(i64::MAX) > from_us
        };
        let rollup_name = level.table_name(self.table);
        // Raw paths relative to the table directory (`zone=Z/date=D/F`).
        let mut raw: Vec<&str> = Vec::new();
        for e in snapshot.of_table_named(self.table.name()).filter(|e| admits(e)) {
            if e.is_run()
                || !matches!(e.granularity(), Some(archive_layout::Granularity::Day | archive_layout::Granularity::Month))
            {
                return false;
            }
            let Some(rest) = e.path.strip_prefix(self.table.name()).and_then(|r| r.strip_prefix('/')) else { return false };
            raw.push(rest);
        }
        let mut summarised: Vec<&str> = snapshot
            .of_table_named(rollup_name)
            .filter(|e| admits(e))
            .filter_map(|e| e.path.strip_prefix(rollup_name).and_then(|r| r.strip_prefix('/')))
            .collect();
        raw.sort_unstable();
        summarised.sort_unstable();
        raw == summarised
    }

    /// The catalog snapshot the pin says this scan plans from (`None`: list directories).
    /// Only a fresh read reports a catalog it cannot read; a statement's lazy read lists.
    fn snapshot(&self) -> Result<Option<Arc<catalog::Snapshot>>, catalog::CatalogError> {
        Ok(match self.pin.get() {
            CatalogSource::Snapshot(s) => Some(s),
            CatalogSource::Listing => None,
            CatalogSource::Fresh => catalog::Snapshot::read(&self.root)?.map(Arc::new),
            CatalogSource::Lazy(tables, once) => once.get_or_init(|| read_or_list(&self.root, tables.as_deref())).clone(),
        })
    }

    /// Its SQL name and directory: `cpu`, `cpu_1m`.
    pub fn name(&self) -> &'static str {
        archive_layout::table_dir_name(self.table, self.rollup)
    }

    /// The files a scan with `bounds` reads, in path order: from the catalog if the archive
    /// has one, else by listing directories (without their value index summaries).
    pub fn files(&self, bounds: &ScanBounds) -> Result<Vec<ScanFile>, FilesError> {
        self.files_with(bounds, false)
    }

    /// [`ArchiveTable::files`], each carrying its value index summary where `summaries` and
    /// the table's scans use indexes (a summary is cloned, key sets and all: only for scans
    /// an index may judge).
    fn files_with(&self, bounds: &ScanBounds, summaries: bool) -> Result<Vec<ScanFile>, FilesError> {
        match self.snapshot()? {
            Some(s) => Ok(self.catalog_files(&s, bounds, summaries)),
            None => Ok(self.files_by_listing(bounds)?),
        }
    }

    /// Rows and time range per zone, from the catalog (zone files' entries, and the per-zone
    /// ranges in the footers of runs, leaving out zones a run is sealed for); `None` when
    /// the statement lists directories, or a run does not record its zones' ranges.
    pub fn zone_summaries(&self) -> Option<std::collections::BTreeMap<String, crate::catalog_answers::ZoneSummary>> {
        if self.rollup.is_some() {
            return None;
        }
        let snapshot = self.snapshot().ok()??;
        let mut parts = Vec::new();
        for e in snapshot.of_table(self.table) {
            if let (Some(zone), Some(lo), Some(hi)) = (&e.zone, e.min_time_us, e.max_time_us) {
                parts.push((zone.clone(), e.rows, lo, hi));
            }
        }
        let runs = snapshot.of_table(self.table).filter(|e| e.is_run()).count();
        if runs > 0 {
            for f in self.catalog_files(&snapshot, &ScanBounds::default(), false) {
                if !f.path.starts_with(self.root.join(archive_layout::STATE_DIR)) {
                    continue;
                }
                for r in catalog::run_zone_rows(&f.path).ok()?? {
                    if f.sealed_zones.binary_search(&r.zone).is_err() {
                        parts.push((r.zone, r.rows, r.min_time_us, r.max_time_us));
                    }
                }
            }
        }
        Some(crate::catalog_answers::fold(parts))
    }

    /// [`ArchiveTable::files`] from a catalog snapshot.
    pub fn files_from_catalog(&self, snapshot: &catalog::Snapshot, bounds: &ScanBounds) -> Vec<ScanFile> {
        self.catalog_files(snapshot, bounds, false)
    }

    fn catalog_files(&self, snapshot: &catalog::Snapshot, bounds: &ScanBounds, summaries: bool) -> Vec<ScanFile> {
        let admits = |e: &catalog::Entry| {
            let end = e.period_end_us().unwrap_or(i64::MAX);
            let (lo, hi) = match (e.min_time_us, e.max_time_us) {
                (Some(lo), Some(hi)) => (lo, hi.saturating_add(1)),
                _ => (e.period_start_us, end),
            };
            bounds.admits_period(lo.max(e.period_start_us), hi.min(end))
        };
        let mut runs = Vec::new();
        let mut zone_files: std::collections::HashMap<i64, Vec<(&str, archive_layout::FileId)>> =
            std::collections::HashMap::new();
        let mut files = Vec::new();
        for e in snapshot.of_table_named(self.name()) {
            match &e.zone {
                None => {
                    if bounds.admits_period(e.period_start_us, e.period_end_us().unwrap_or(i64::MAX)) {
                        runs.push(e);
                    }
                }
                Some(zone) => {
                    if let Some(id) = e.file_id() {
                        zone_files.entry(e.period_start_us).or_default().push((zone.as_str(), id));
                    }
                    if bounds.admits_zone(zone) && admits(e) {
                        files.push(ScanFile {
                            path: self.root.join(&e.path),
                            size: e.bytes,
                            sealed_zones: Vec::new(),
                            // A rollup's footer statistics are read by DataFusion (one
                            // file per zone and day).
                            statistics: self.rollup.is_none().then(|| Arc::new(entry_statistics(self.table, e))),
                            index: (summaries && self.value_indexes && self.rollup.is_none())
                                .then(|| e.index.clone().map(Arc::new))
                                .flatten(),
                        });
                    }
                }
            }
        }
        for r in runs {
            let Some(run_id) = r.file_id() else { continue };
            let mut sealed_zones: Vec<String> = zone_files
                .get(&r.period_start_us)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter(|(_, id)| zone_file_covers_run(id, &run_id))
                .map(|(z, _)| (*z).to_owned())
                .collect();
            sealed_zones.sort();
            sealed_zones.dedup();
            files.push(ScanFile { path: self.root.join(&r.path), size: r.bytes, sealed_zones, statistics: None, index: None });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }

    /// [`ArchiveTable::files`] by listing directories.
    pub fn files_by_listing(&self, bounds: &ScanBounds) -> Result<Vec<ScanFile>, archive_layout::LayoutError> {
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
        let (listed, runs) = match self.rollup {
            None => (
                list_table(&self.root, self.table, admit_zone, admit)?,
                list_runs(&self.root, self.table, |start, end| bounds.admits_period(start, end))?,
            ),
            Some(level) => (list_rollup(&self.root, self.table, level, admit_zone, admit)?, Vec::new()),
        };
        let mut files = Vec::with_capacity(listed.len());
        // The zone files of the periods that have runs (a handful), not the whole listing
        // once per run: a year of files against an hour of runs.
        let mut by_period: std::collections::HashMap<(i64, archive_layout::Granularity), Vec<&ListedFile>> =
            std::collections::HashMap::new();
        if !runs.is_empty() {
            let periods: std::collections::HashSet<(i64, archive_layout::Granularity)> =
                runs.iter().map(|r| (r.run.key.start_us, r.run.key.granularity)).collect();
            for f in &listed {
                let period = (f.dir.start_us, f.dir.granularity);
                if periods.contains(&period) {
                    by_period.entry(period).or_default().push(f);
                }
            }
        }
        for r in runs {
            let mut sealed_zones = Vec::new();
            let same_period = by_period.get(&(r.run.key.start_us, r.run.key.granularity)).map_or(&[][..], Vec::as_slice);
            for f in same_period.iter().filter(|f| zone_file_covers_run(&f.id, &r.run.id)) {
                sealed_zones.push(zone_of(f)?);
            }
            sealed_zones.sort();
            sealed_zones.dedup();
            files.push(ScanFile { path: r.path, size: r.size, sealed_zones, statistics: None, index: None });
        }
        files.extend(listed.into_iter().map(|f| ScanFile {
            path: f.path,
            size: f.size,
            sealed_zones: Vec::new(),
            statistics: None,
            index: None,
        }));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// The archive's catalog, or `None` (list directories) when it has none or it cannot be
/// read (`archiver check` says why).
fn read_or_list(root: &Path, tables: Option<&catalog::TableFilter>) -> Option<Arc<catalog::Snapshot>> {
    let read = match tables {
        Some(t) => catalog::Snapshot::read_tables(root, t),
        None => catalog::Snapshot::read(root),
    };
    read.ok().flatten().map(Arc::new)
}

/// A zone file's statistics in the table's column order, from its catalog entry: exact
/// row count, `time` range, the zone, and each column's min, max and nulls as its footer
/// stated them (absent where the footer said nothing).
fn entry_statistics(table: Table, e: &catalog::Entry) -> Statistics {
    use datafusion::common::stats::Precision;
    let schema = table.schema();
    let stat = |ty: &datafusion::arrow::datatypes::DataType, v: &Option<catalog::Stat>| -> Precision<ScalarValue> {
        use datafusion::arrow::datatypes::DataType;
        match (ty, v) {
            (DataType::UInt32, Some(catalog::Stat::U64(n))) => {
                u32::try_from(*n).map_or(Precision::Absent, |n| Precision::Exact(ScalarValue::UInt32(Some(n))))
            }
            (DataType::UInt64, Some(catalog::Stat::U64(n))) => Precision::Exact(ScalarValue::UInt64(Some(*n))),
            (DataType::Utf8, Some(catalog::Stat::Str(s))) => Precision::Exact(ScalarValue::Utf8(Some(s.clone()))),
            _ => Precision::Absent,
        }
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let mut c = ColumnStatistics::new_unknown();
            match f.name().as_str() {
                "time" => {
                    let ts = |v: Option<i64>| {
                        v.map_or(Precision::Absent, |t| {
                            Precision::Exact(ScalarValue::TimestampMicrosecond(Some(t), Some("UTC".into())))
                        })
                    };
                    c.min_value = ts(e.min_time_us);
                    c.max_value = ts(e.max_time_us);
                    c.null_count = Precision::Exact(0);
                }
                "zone" => {
                    let z = e.zone.clone().map_or(Precision::Absent, |z| Precision::Exact(ScalarValue::Utf8(Some(z))));
                    c.min_value = z.clone();
                    c.max_value = z;
                    c.null_count = Precision::Exact(0);
                }
                name => {
                    if let Some(s) = e.columns.get(name) {
                        c.min_value = stat(f.data_type(), &s.min);
                        c.max_value = stat(f.data_type(), &s.max);
                        c.null_count = s.nulls.map_or(Precision::Absent, |n| Precision::Exact(n as usize));
                    }
                }
            }
            c
        })
        .collect();
    Statistics {
        num_rows: usize::try_from(e.rows).map_or(Precision::Absent, Precision::Exact),
        total_byte_size: usize::try_from(e.bytes).map_or(Precision::Absent, Precision::Inexact),
        column_statistics: columns,
    }
}

/// Why the files of a scan could not be found.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Listing the archive failed.
    #[error(transparent)]
    Layout(#[from] archive_layout::LayoutError),
    /// Reading the catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
}

/// The zone a listed file holds: its directory says, or (the bounded form of a long name)
/// its own metadata does.
fn zone_of(f: &ListedFile) -> Result<String, archive_layout::LayoutError> {
    if let Some(zone) = f.dir.zone() {
        return Ok(zone);
    }
    let unreadable = || archive_layout::LayoutError::BadPath {
        path: f.path.display().to_string(),
        reason: "a long zone name's file without its zone in the metadata",
    };
    let file =
        std::fs::File::open(&f.path).map_err(|source| archive_layout::LayoutError::List { path: f.path.clone(), source })?;
    let meta = datafusion::parquet::file::reader::SerializedFileReader::new(file).map_err(|_| unreadable())?;
    use datafusion::parquet::file::reader::FileReader;
    meta.metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == archive_layout::format::keys::ZONE).and_then(|e| e.value.clone()))
        .ok_or_else(unreadable)
}

#[async_trait]
impl TableProvider for ArchiveTable {
    fn schema(&self) -> SchemaRef {
        match self.rollup {
            None => self.table.schema(),
            Some(_) => self.table.rollup_schema(),
        }
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
        let files = self.files_with(&bounds, !filters.is_empty()).map_err(|e| DataFusionError::External(Box::new(e)))?;
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&self.schema(), projection)?)));
        }
        let (whole, partial): (Vec<ScanFile>, Vec<ScanFile>) = files.into_iter().partition(|f| f.sealed_zones.is_empty());
        let mut plans = Vec::new();
        let schema = self.schema();
        let indexed = match self.raw_table() {
            Some(table) if self.value_indexes && !filters.is_empty() => {
                crate::value_index_scan::apply(table, &schema, filters, whole)
            }
            _ => crate::value_index_scan::IndexedScan::unjudged(whole),
        };
        if !indexed.files.is_empty() {
            plans.push(self.scan_files(state, indexed.files, projection, limit).await?);
        }
        if indexed.report.used() {
            // Beside the files' scan, not above it: filters DataFusion pushes into the
            // Parquet scan must reach it.
            let rows: Arc<dyn ExecutionPlan> = if indexed.side_rows.is_empty() {
                Arc::new(EmptyExec::new(project_schema(&schema, projection)?))
            } else {
                datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
                    &[indexed.side_rows],
                    Arc::clone(&schema),
                    projection.cloned(),
                )?
            };
            plans.push(Arc::new(crate::value_index_scan::ValueIndexExec::new(rows, indexed.report)));
        }
        if plans.is_empty() && partial.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&schema, projection)?)));
        }
        // Runs some of whose zones are sealed already (rare: a seal in progress): each scanned
        // whole, then the sealed zones' rows dropped, then projected as asked.
        for run in partial {
            let all = self.scan_files(state, vec![run.clone()], None, None).await?;
            let schema = self.schema();
            let zone = datafusion::physical_expr::expressions::col("zone", &schema)?;
            let list = run.sealed_zones.iter().map(|z| datafusion::physical_expr::expressions::lit(z.as_str())).collect();
            let keep = datafusion::physical_expr::expressions::in_list(zone, list, &true, &schema)?;
            let filtered: Arc<dyn ExecutionPlan> = Arc::new(datafusion::physical_plan::filter::FilterExec::try_new(keep, all)?);
            let columns: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
            let exprs = columns
                .iter()
                .map(|&i| {
                    let name = schema.field(i).name().clone();
                    datafusion::physical_expr::expressions::col(&name, &schema).map(|c| (c, name))
                })
                .collect::<DfResult<Vec<_>>>()?;
            plans.push(Arc::new(datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, filtered)?));
        }
        datafusion::physical_plan::union::UnionExec::try_new(plans)
    }
}

impl ArchiveTable {
    async fn scan_files(
        &self,
        state: &dyn Session,
        files: Vec<ScanFile>,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Spread files over the target partitions, largest first, to even out the work.
        let groups_n = state.config().target_partitions().max(1).min(files.len());
        let mut by_size = files;
        by_size.sort_by_key(|f| std::cmp::Reverse(f.size));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..groups_n).map(|_| (0, Vec::new())).collect();
        for f in by_size {
            let Some(g) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) else { break };
            g.0 += f.size;
            // From the filesystem path, so names with `%`, spaces or non-ASCII characters map
            // back to the same file (a plain string would be percent-encoded twice).
            let location = ObjectPath::from_absolute_path(&f.path).map_err(|e| DataFusionError::External(Box::new(e)))?;
            let mut file = PartitionedFile::new_from_meta(ObjectMeta {
                location,
                last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                size: f.size,
                e_tag: None,
                version: None,
            });
            if let Some(s) = f.statistics {
                file = file.with_statistics(s);
            }
            g.1.push(file);
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

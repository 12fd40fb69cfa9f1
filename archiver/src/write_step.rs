//! The named stages of the write path, and a hook that tests use to stop the writer at any
//! of them (like GreptimeDB's `EventListener`): fail there with an I/O error, or crash there.
//!
//! The writer calls [`StepHook::at`] at each [`WriteStep`]; in service there is no hook and
//! the call costs one branch. A *crash* is a panic from inside the hook: it unwinds past every
//! error handler of the writer (no roll-back runs), and no type of the writer cleans up on
//! drop, so what is on disk afterwards is what a killed process leaves. Must not do I/O.

use std::fmt::Debug;

/// A stage of flushing, compacting or recovering, named after what has just been made
/// durable (or is about to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteStep {
    /// Flush: the log was rotated and the buffers turned into batches; nothing written yet.
    FlushBatchesReady,
    /// Flush: the journal listing every temporary and final file is durable.
    FlushJournalWritten,
    /// Flush: one temporary file was written and fsynced (each file passes here).
    FlushTempWritten,
    /// Flush: the commit line is durable. After this the flush is decided: it is finished by
    /// the next flush or by restart, never redone.
    FlushCommitted,
    /// Flush: every file is renamed into place and its directory fsynced.
    FlushRenamed,
    /// Flush: the catalog's edit adding the new runs is durable.
    FlushCatalogued,
    /// Flush: the log segments holding the flushed rows are removed.
    FlushLogTrimmed,
    /// Seal: the intent naming the (table, period) is durable.
    SealIntentWritten,
    /// Seal: one zone's file is published (the runs' rows of that zone are superseded, the
    /// runs still present), not yet in the catalog. Each zone passes here.
    SealZonePublished,
    /// Seal: the catalog's edit adding the zone's file (and removing the files it
    /// supersedes, still on disk) is durable. Each zone passes here.
    SealZoneCatalogued,
    /// Seal: the catalog's edit removing the runs is durable (the runs still on disk).
    SealRunsUncatalogued,
    /// Seal: the sealed runs are removed.
    SealRunsRemoved,
    /// Day compaction: the intent naming the (table, zone, day) is durable.
    DayIntentWritten,
    /// Day compaction: the day file is published (its inputs still listed by the catalog).
    DayPublished,
    /// A day file's rollups (`TABLE_1m`, `TABLE_1h`) are published, not yet in the catalog
    /// (a day compaction's, or a day partition's seal per zone).
    RollupsPublished,
    /// Day compaction: the catalog's edit adding the day file and retiring its inputs is
    /// durable (the inputs still on disk).
    DayCatalogued,
    /// Month compaction: the intent naming the (table, zone, month) is durable.
    MonthIntentWritten,
    /// Month compaction: the month file is published (its inputs still listed by the
    /// catalog).
    MonthPublished,
    /// Month compaction: the month's rollup files are published too.
    MonthRollupsPublished,
    /// Month compaction: the catalog's edit adding the month file and its rollups and
    /// retiring the inputs and their rollups is durable.
    MonthCatalogued,
    /// A sealed zone file's, a day file's or a month file's value index (side file) is
    /// durable, the catalog's edit naming the file not yet made. Each such file of a table
    /// with indexed columns passes here.
    ValueIndexWritten,
    /// Retired files whose grace period ended are deleted (the catalog still lists them as
    /// retired).
    RetiredDeleted,
    /// Recovery at start: a journal left by a crash was found (before acting on it).
    RecoveryJournalFound,
    /// Replay at start: the replayed rows were buffered (before they are flushed).
    ReplayBuffered,
}

impl WriteStep {
    /// Every step, in the order a flush, a seal and a start pass them.
    pub const ALL: [WriteStep; 24] = [
        WriteStep::FlushBatchesReady,
        WriteStep::FlushJournalWritten,
        WriteStep::FlushTempWritten,
        WriteStep::FlushCommitted,
        WriteStep::FlushRenamed,
        WriteStep::FlushCatalogued,
        WriteStep::FlushLogTrimmed,
        WriteStep::SealIntentWritten,
        WriteStep::SealZonePublished,
        WriteStep::SealZoneCatalogued,
        WriteStep::SealRunsUncatalogued,
        WriteStep::SealRunsRemoved,
        WriteStep::DayIntentWritten,
        WriteStep::DayPublished,
        WriteStep::RollupsPublished,
        WriteStep::DayCatalogued,
        WriteStep::MonthIntentWritten,
        WriteStep::MonthPublished,
        WriteStep::MonthRollupsPublished,
        WriteStep::MonthCatalogued,
        WriteStep::ValueIndexWritten,
        WriteStep::RetiredDeleted,
        WriteStep::RecoveryJournalFound,
        WriteStep::ReplayBuffered,
    ];
}

impl WriteStep {
    /// The step's name on the command line (`--crash-at`), e.g. `flush-committed`.
    pub fn name(self) -> &'static str {
        match self {
            WriteStep::FlushBatchesReady => "flush-batches-ready",
            WriteStep::FlushJournalWritten => "flush-journal-written",
            WriteStep::FlushTempWritten => "flush-temp-written",
            WriteStep::FlushCommitted => "flush-committed",
            WriteStep::FlushRenamed => "flush-renamed",
            WriteStep::FlushCatalogued => "flush-catalogued",
            WriteStep::FlushLogTrimmed => "flush-log-trimmed",
            WriteStep::SealIntentWritten => "seal-intent-written",
            WriteStep::SealZonePublished => "seal-zone-published",
            WriteStep::SealZoneCatalogued => "seal-zone-catalogued",
            WriteStep::SealRunsUncatalogued => "seal-runs-uncatalogued",
            WriteStep::SealRunsRemoved => "seal-runs-removed",
            WriteStep::DayIntentWritten => "day-intent-written",
            WriteStep::DayPublished => "day-published",
            WriteStep::RollupsPublished => "rollups-published",
            WriteStep::DayCatalogued => "day-catalogued",
            WriteStep::MonthIntentWritten => "month-intent-written",
            WriteStep::MonthPublished => "month-published",
            WriteStep::MonthRollupsPublished => "month-rollups-published",
            WriteStep::MonthCatalogued => "month-catalogued",
            WriteStep::ValueIndexWritten => "value-index-written",
            WriteStep::RetiredDeleted => "retired-deleted",
            WriteStep::RecoveryJournalFound => "recovery-journal-found",
            WriteStep::ReplayBuffered => "replay-buffered",
        }
    }
}

impl std::str::FromStr for WriteStep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WriteStep::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown write step {s:?} (one of: {})", WriteStep::ALL.map(WriteStep::name).join(", ")))
    }
}

/// Ends the process at once (`abort`, no unwinding, no clean-up) the first time the writer
/// reaches `step`: a real crash at a named step, for the archiver's hidden `--crash-at`
/// flag (tests only).
#[derive(Debug)]
pub struct AbortAt(pub WriteStep);

impl StepHook for AbortAt {
    fn at(&self, step: WriteStep) -> std::io::Result<()> {
        if step == self.0 {
            tracing::error!(step = step.name(), "--crash-at: aborting");
            std::process::abort();
        }
        Ok(())
    }
}

/// Called by the writer at every [`WriteStep`]. Return `Err` to make the step fail as if
/// the file system had; panic to crash there.
pub trait StepHook: Debug + Send {
    /// The writer reached `step`.
    fn at(&self, step: WriteStep) -> std::io::Result<()>;
}

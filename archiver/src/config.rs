//! The archiver's flags, defined once (name, help, default), and the config it runs on.

use std::path::PathBuf;
use std::time::Duration;

use archive_layout::Granularity;
use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::archive_writer::WriterOptions;

/// Subscribes to generators and archives their frames as Parquet, partitioned by zone and
/// hour. With no --connect, it archives the machine it runs on (embedded generator).
#[derive(Debug, Clone, Parser)]
#[command(name = "archiver", version, about, long_about = None)]
pub struct ArchiverConfig {
    /// What to do instead of archiving (none: archive).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Generator endpoint to subscribe to (repeatable), e.g. tcp://127.0.0.1:7211. None (and
    /// no -a/-p): run the generator's native source in-process and archive this machine.
    #[arg(short = 'c', long = "connect", value_name = "ENDPOINT")]
    pub connect: Vec<String>,

    /// (2013) Address of a generator to subscribe to, with -p: `-a 10.0.0.5 -p 7211` is
    /// `--connect tcp://10.0.0.5:7211`.
    #[arg(short = 'a', long = "address", value_name = "ADDR", value_parser = parse_address)]
    pub address: Option<String>,

    /// (2013) Port of the generator given by -a (default 7211); alone, a generator on
    /// 127.0.0.1.
    #[arg(short = 'p', long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// (2013) Print every frame accepted, one line each, on standard output.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// (2013) Print an `ALIVE` line on standard output every N frames accepted.
    #[arg(short = 'd', long = "alive-every", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub alive_every: Option<u64>,

    /// Archive directory (`-D`; it was `-a` before the 2013 `-a ADDR` came back).
    #[arg(short = 'D', long, env = "DQ_ARCHIVE", value_name = "DIR", default_value = "./archive", global = true)]
    pub archive: PathBuf,

    /// Period of one partition: hour or day (UTC, by the sample's own time).
    #[arg(long, value_name = "PERIOD", default_value = "hour")]
    pub partition: Granularity,

    /// Publish buffered rows at least this often, in seconds: the most a row waits before
    /// `dq` can see it.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub flush_interval: u64,

    /// Memory the archiver's data may take, in MiB: ZeroMQ's receive queues, the frames
    /// being accepted, buffered rows and a seal's rows share it (see docs/operations.md).
    /// Past it the archiver flushes early, or stops reading until a flush succeeds.
    #[arg(long, value_name = "MIB", default_value_t = crate::memory_budget::DEFAULT_MIB, value_parser = parse_budget)]
    pub memory_budget: usize,

    /// Also publish when this many rows are buffered, whatever their size.
    #[arg(long, value_name = "ROWS", default_value_t = 1_000_000)]
    pub max_buffered_rows: usize,

    /// Merge each zone's hour files of a day into one file per table once the day ended
    /// this many hours before the newest sample, or `never`.
    #[arg(long, value_name = "HOURS", default_value = "48", value_parser = parse_hours_or_never)]
    pub compact_days_after: HoursOrNever,

    /// Merge each zone's day files of a month into one file per table (`month=YYYY-MM/`)
    /// once the month ended this many hours before the newest sample, or `never`. A month
    /// whose files of a zone and table take more than `--month-file-max-mib` keeps its days.
    #[arg(long, value_name = "HOURS", default_value = "72", value_parser = parse_hours_or_never)]
    pub compact_months_after: HoursOrNever,

    /// The most MiB of a zone's files of one table and month that a month compaction merges.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub month_file_max_mib: u64,

    /// Write a value index beside each sealed, day and month file (`on`, the default) or not
    /// (`off`): key sets and the rows of each measured column's extreme tails, which let
    /// `dq` skip files and answer rare-value conditions from the side files.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = PossibleValuesParser::new(["on", "off"]).map(|s| s == "on"), action = clap::ArgAction::Set)]
    pub value_indexes: bool,

    /// Keep the files a compaction replaced this many seconds before deleting them, so
    /// readers that listed them can finish (a plain glob started meanwhile reads both).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub retire_grace: u64,

    /// Keep a table's files this long behind the newest sample, then remove them:
    /// `TABLE=AGE` or `*=AGE` for every other table, AGE like `36h` or `30d` (repeatable;
    /// default: keep everything).
    #[arg(long = "retain", value_name = "TABLE=AGE")]
    pub retain: Vec<String>,

    /// Keep the archive's published files under this many MiB, removing the oldest hours
    /// first (default: no budget).
    #[arg(long, value_name = "MIB")]
    pub disk_budget_mib: Option<u64>,

    /// Write a status line to the log (and _archiver/status.json) this often, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub stats_interval: u64,

    /// Reject frames larger than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = frame_proto::FrameDecoder::DEFAULT_MAX_LEN, value_parser = parse_frame_limit)]
    pub max_frame_bytes: usize,

    /// Frames queued per endpoint inside the archiver before ZeroMQ drops (ZMQ_RCVHWM).
    /// Default: the receive queues' share of --memory-budget, split between endpoints.
    #[arg(long, value_name = "N")]
    pub rcvhwm: Option<i32>,

    /// When the write-ahead log is forced to disk: `always` (after every batch of frames),
    /// a number of milliseconds, or `never`. A process crash loses nothing under any policy;
    /// a power loss may lose what was not yet forced.
    #[arg(long, value_name = "POLICY", default_value = "1000")]
    pub wal_fsync: wal::FsyncPolicy,

    /// Start a new write-ahead log segment past this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, hide = true)]
    pub wal_segment_bytes: u64,

    /// Append host, zone and sequence number of every accepted frame to FILE (tests, audits).
    #[arg(long, value_name = "FILE", hide = true)]
    pub audit_log: Option<PathBuf>,

    /// Testing only: abort the process the first time the writer reaches this step (a real
    /// crash at a named stage of flush, compaction, recovery or replay).
    #[arg(long, value_name = "STEP", hide = true)]
    pub crash_at: Option<crate::write_step::WriteStep>,

    /// Embedded generator (no --connect): statistics source.
    #[arg(long, value_enum, default_value_t = generator::SourceKind::native())]
    pub source: generator::SourceKind,

    /// Embedded generator on Linux: which zones are reported and how they are named.
    #[command(flatten)]
    pub zones_of_linux: generator::config::LinuxZoneArgs,

    /// Embedded generator: sampling interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: u64,
}

/// The archiver's commands besides archiving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Compare the archive's catalog with its files (reading every file's footer), print
    /// each difference, and exit with status 1 if there is any.
    Check {
        /// Replace the catalog with one built from the files (takes the archive's lock: not
        /// while an archiver runs on it).
        #[arg(long)]
        rebuild: bool,
    },
}

impl ArchiverConfig {
    /// The generator endpoints to subscribe to: every `--connect`, then the 2013 `-a ADDR
    /// -p PORT` one; empty means the embedded generator.
    pub fn endpoints(&self) -> Vec<String> {
        let mut all = self.connect.clone();
        if self.address.is_some() || self.port.is_some() {
            let address = self.address.as_deref().unwrap_or("127.0.0.1");
            let port = self.port.unwrap_or(7211);
            // An IPv6 address needs brackets in a ZeroMQ endpoint.
            if address.contains(':') && !address.starts_with('[') {
                all.push(format!("tcp://[{address}]:{port}"));
            } else {
                all.push(format!("tcp://{address}:{port}"));
            }
        }
        all
    }

    /// How the memory budget is shared, for the endpoints this config subscribes to.
    pub fn memory_shares(&self) -> crate::memory_budget::MemoryShares {
        let mut shares = crate::memory_budget::shares(self.memory_budget << 20, self.endpoints().len());
        if let Some(n) = self.rcvhwm {
            shares.rcvhwm = n;
        }
        shares
    }

    /// The writer's options.
    pub fn writer_options(&self) -> Result<WriterOptions, crate::ArchiverError> {
        let shares = self.memory_shares();
        Ok(WriterOptions {
            granularity: self.partition,
            max_buffered_rows: self.max_buffered_rows.max(1),
            max_buffered_bytes: shares.buffered_bytes,
            seal_budget_bytes: shares.seal_bytes,
            compact_days_after: self.compact_days_after.0.map(|h| Duration::from_secs(h.saturating_mul(3600))),
            compact_months_after: self.compact_months_after.0.map(|h| Duration::from_secs(h.saturating_mul(3600))),
            month_file_max_bytes: self.month_file_max_mib.saturating_mul(1 << 20),
            retire_grace: Duration::from_secs(self.retire_grace),
            value_indexes: self.value_indexes,
            retention: self.retention()?,
            fsync: self.wal_fsync,
            wal_segment_bytes: self.wal_segment_bytes,
            step_hook: self.crash_at.map(|s| {
                std::sync::Arc::new(crate::write_step::AbortAt(s)) as std::sync::Arc<dyn crate::write_step::StepHook + Sync>
            }),
            ..WriterOptions::default()
        })
    }

    /// The retention policy `--retain` and `--disk-budget-mib` describe.
    pub fn retention(&self) -> Result<crate::retention::RetentionPolicy, crate::ArchiverError> {
        let mut policy =
            crate::retention::RetentionPolicy { disk_budget_bytes: self.disk_budget_mib.map(|m| m << 20), ..Default::default() };
        for rule in &self.retain {
            policy.add_rule(rule).map_err(|e| crate::ArchiverError::Config(format!("--retain {e}")))?;
        }
        Ok(policy)
    }

    /// The flush interval.
    pub fn flush_every(&self) -> Duration {
        Duration::from_secs(self.flush_interval)
    }

    /// The status interval.
    pub fn stats_every(&self) -> Duration {
        Duration::from_secs(self.stats_interval)
    }
}

/// A number of hours, or `never` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoursOrNever(pub Option<u64>);

/// A generator's host name or IP address; a path is refused with a hint, since `-a` was the
/// archive directory's short flag before the 2013 meaning came back.
fn parse_address(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} is not a host name or IP address (the archive directory's short flag is -D now: -D {s})"));
    }
    Ok(s.to_owned())
}

/// `--compact-days-after`, `--compact-months-after`: a number of hours, or `never`.
fn parse_hours_or_never(s: &str) -> Result<HoursOrNever, String> {
    match s {
        "never" => Ok(HoursOrNever(None)),
        n => n.parse().map(|h| HoursOrNever(Some(h))).map_err(|_| format!("{s:?} is neither a number of hours nor `never`")),
    }
}

/// `--memory-budget`: 8 MiB to 1 TiB.
fn parse_budget(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number of MiB"))?;
    if (8..=1 << 20).contains(&n) { Ok(n) } else { Err(format!("{n} MiB is out of range (8..=1048576)")) }
}

/// `--max-frame-bytes`: 1 byte to 32 MiB (a logged frame must stay far below the log's
/// record limit, `wal::MAX_RECORD`).
fn parse_frame_limit(s: &str) -> Result<usize, String> {
    const MAX: usize = 32 << 20;
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number of bytes"))?;
    if (1..=MAX).contains(&n) { Ok(n) } else { Err(format!("{n} is out of range (1..={MAX})")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_flags_take_hours_or_never_and_refuse_anything_else() {
        let parse = |args: &[&str]| ArchiverConfig::try_parse_from(std::iter::once("archiver").chain(args.iter().copied()));
        let defaults = parse(&[]).unwrap().writer_options().unwrap();
        assert_eq!(defaults.compact_months_after, Some(Duration::from_secs(72 * 3600)));
        assert_eq!(defaults.month_file_max_bytes, 64 << 20);
        let set = parse(&["--compact-months-after", "never", "--compact-days-after", "0", "--month-file-max-mib", "8"])
            .unwrap()
            .writer_options()
            .unwrap();
        assert_eq!((set.compact_months_after, set.compact_days_after), (None, Some(Duration::ZERO)));
        assert_eq!(set.month_file_max_bytes, 8 << 20);
        assert!(defaults.value_indexes);
        assert!(!parse(&["--value-indexes", "off"]).unwrap().writer_options().unwrap().value_indexes);
        for bad in [
            &["--value-indexes", "yes"][..],
            &["--value-indexes", ""],
            &["--compact-months-after", "3d"][..],
            &["--compact-months-after=-1"],
            &["--compact-months-after", ""],
            &["--month-file-max-mib", "x"],
            &["--month-file-max-mib=-5"],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} accepted"));
            let flag = bad[0].split('=').next().unwrap_or_default();
            assert!(err.to_string().contains(flag), "{bad:?}: the error names the flag: {err}");
        }
    }

    #[test]
    fn the_2013_listener_flags_name_a_generator_and_the_archive_keeps_long_and_d() {
        let parse = |args: &[&str]| ArchiverConfig::try_parse_from(std::iter::once("archiver").chain(args.iter().copied()));
        assert_eq!(parse(&["-a", "10.0.0.5", "-p", "7300"]).unwrap().endpoints(), ["tcp://10.0.0.5:7300"]);
        assert_eq!(parse(&["-a", "gen.example"]).unwrap().endpoints(), ["tcp://gen.example:7211"], "the 2013 default port");
        assert_eq!(parse(&["-p", "7300"]).unwrap().endpoints(), ["tcp://127.0.0.1:7300"]);
        assert_eq!(parse(&["-a", "::1", "-p", "7300"]).unwrap().endpoints(), ["tcp://[::1]:7300"]);
        assert_eq!(
            parse(&["-c", "tcp://127.0.0.1:1", "-a", "127.0.0.1", "-p", "2"]).unwrap().endpoints(),
            ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]
        );
        assert!(parse(&[]).unwrap().endpoints().is_empty(), "the embedded generator");
        let c = parse(&["-v", "-d", "100", "-D", "/srv/archive"]).unwrap();
        assert!(c.verbose);
        assert_eq!((c.alive_every, c.archive.as_path()), (Some(100), std::path::Path::new("/srv/archive")));
        assert_eq!(parse(&["--archive", "/x"]).unwrap().archive, PathBuf::from("/x"));
        let check = parse(&["check", "-D", "/y"]).unwrap();
        assert_eq!((check.archive, check.command.is_some()), (PathBuf::from("/y"), true));
        for (bad, flag) in [
            (&["-p", "0"][..], "--port"),
            (&["-p", "70000"], "--port"),
            (&["-d", "0"], "--alive-every"),
            (&["-d", "x"], "--alive-every"),
            (&["-a", "./archive"], "-D ./archive"),
            (&["-a", ""], "--address"),
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} accepted")).to_string();
            assert!(err.contains(flag), "{bad:?}: the error names {flag}: {err}");
        }
    }
}

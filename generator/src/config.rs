//! The generator's flags (defined once, here: name, help, default) and the config it runs on.
//!
//! The 2013 flags (`-p PORT`, `-d MS`, `-v`, `-vlite`, `-q`, `-h`) are accepted beside long
//! options. [`GeneratorConfig::from_args`] rewrites the one 2013 flag clap cannot express
//! (`-vlite`, a multi-letter short flag) before parsing.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use regex::Regex;

use crate::GeneratorError;
use crate::linux::{LinuxOptions, ZoneFilter, ZoneNaming};
use crate::run_loop::Schedule;
use crate::synthetic::SyntheticShape;

/// Which statistics to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// This Linux host: `global` from /proc, one zone per cgroup holding processes.
    Linux,
    /// Generated zones with believable counters (tests, demos, load).
    Synthetic,
    /// illumos kstat + DTrace (on illumos; elsewhere only with --illumos-replay).
    Illumos,
}

impl SourceKind {
    /// The platform's own source.
    pub fn native() -> Self {
        if cfg!(any(target_os = "illumos", target_os = "solaris")) { SourceKind::Illumos } else { SourceKind::Linux }
    }
}

/// Collects statistics per zone and publishes one protobuf frame per zone per interval on a
/// ZeroMQ PUB socket.
#[derive(Debug, Clone, Parser)]
#[command(name = "generator", version, about, long_about = None)]
pub struct GeneratorConfig {
    /// Endpoint to bind. The 2013 tool bound every interface; exposing the socket beyond
    /// this host is now an explicit choice (e.g. `tcp://0.0.0.0:7211`).
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:7211")]
    pub listen: String,

    /// (2013) Port to bind on 127.0.0.1; shorthand for `--listen tcp://127.0.0.1:PORT`.
    #[arg(short = 'p', long, value_name = "PORT", conflicts_with = "listen")]
    pub port: Option<u16>,

    /// Sampling interval in milliseconds (2013: `-d MS`).
    #[arg(short = 'd', long = "interval", value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval_ms: u64,

    /// Statistics source.
    #[arg(long, value_enum, default_value_t = SourceKind::native())]
    pub source: SourceKind,

    /// (2013) Print every frame sent.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// (2013 `-vlite`) Print one timestamp line per interval.
    #[arg(long)]
    pub vlite: bool,

    /// (2013) Collect but neither bind nor send.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Host identity stamped into every frame (default: this machine's hostname).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Synthetic source: number of zones, `global` included.
    #[arg(long, default_value_t = 10)]
    pub zones: usize,

    /// Synthetic source: cores per zone.
    #[arg(long, default_value_t = 16)]
    pub cores: usize,

    /// Synthetic source: busiest processes per zone.
    #[arg(long, default_value_t = 20)]
    pub processes: usize,

    /// Synthetic source: seed (same seed, same frames).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Simulated time: sample from this time (RFC 3339, or seconds since the epoch) as fast
    /// as possible instead of waiting for the clock (backfill, load, tests).
    #[arg(long, value_name = "TIME", value_parser = parse_time_us)]
    pub simulate_from: Option<i64>,

    /// With --simulate-from: run at this many times real time (10: ten simulated seconds a
    /// second) instead of as fast as possible. For live-cadence load tests.
    #[arg(long, value_name = "FACTOR", requires = "simulate_from")]
    pub pace: Option<f64>,

    /// Stop after this many intervals.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Before the first frame, wait for this many subscribers (up to --wait-timeout-ms).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub wait_subscribers: usize,

    /// How long --wait-subscribers waits.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub wait_timeout_ms: u64,

    /// Frames queued per subscriber before the socket drops (ZMQ_SNDHWM).
    #[arg(long, value_name = "N", default_value_t = crate::publisher::DEFAULT_SNDHWM)]
    pub sndhwm: i32,

    /// illumos source: replay the snapshots recorded in DIR (by --record-illumos on a real
    /// host) instead of reading this host's kstats and DTrace. Works on any platform.
    #[arg(long, value_name = "DIR")]
    pub illumos_replay: Option<std::path::PathBuf>,

    /// illumos source: also write each interval's kstat snapshot and aggregation records to
    /// DIR (`kstat-NNNN.txt`, `aggregates-NNNN.jsonl`), the shape test fixtures are kept in.
    #[arg(long, value_name = "DIR")]
    pub record_illumos: Option<std::path::PathBuf>,

    /// How many intervals --record-illumos writes.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub record_limit: usize,

    /// Root of /proc and /sys for the Linux source (tests point it at a recorded tree).
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub linux_root: std::path::PathBuf,

    /// Linux source: which zones are reported and how they are named.
    #[command(flatten)]
    pub zones_of_linux: LinuxZoneArgs,
}

/// The Linux source's zone flags, defined once: the generator and the archiver's embedded
/// generator both take them.
#[derive(Debug, Clone, clap::Args)]
pub struct LinuxZoneArgs {
    /// Linux: how zones are named: `readable` (`docker/3f2a1b4c5d6e`, `nginx.service`,
    /// `k8s/POD-UID/3f2a1b4c5d6e`) or `path` (the cgroup path without its leading `/`, as
    /// generators before these names sent).
    #[arg(long, value_enum, value_name = "readable|path", default_value_t = ZoneNaming::Readable)]
    pub zone_names: ZoneNaming,

    /// Linux: report only zones whose name or cgroup path matches this regular expression
    /// (repeatable: any of them).
    #[arg(long, value_name = "REGEX")]
    pub zone_include: Vec<Regex>,

    /// Linux: leave out zones whose name or cgroup path matches this regular expression
    /// (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub zone_exclude: Vec<Regex>,

    /// Linux: report at most this many zones besides `global` (at most 9,999: `global`'s
    /// zone list must stay within the archiver's 10,000 entries); past it, the zones of the
    /// previous sample are kept first, then new ones by name (`system.zones_dropped` counts
    /// the rest).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=9_999))]
    pub max_zones: u64,
}

impl LinuxZoneArgs {
    /// The Linux source's options for `root`, reporting `top_processes` per zone.
    pub fn linux_options(&self, root: &std::path::Path, top_processes: usize) -> LinuxOptions {
        LinuxOptions {
            root: root.to_owned(),
            top_processes,
            naming: self.zone_names,
            filter: ZoneFilter {
                include: self.zone_include.clone(),
                exclude: self.zone_exclude.clone(),
                max_zones: usize::try_from(self.max_zones).unwrap_or(usize::MAX),
            },
            ..LinuxOptions::default()
        }
    }
}

impl GeneratorConfig {
    /// Parses the process arguments, accepting the 2013 `-vlite`.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Self, clap::Error> {
        Self::try_parse_from(args.into_iter().map(|a| if a == "-vlite" { "--vlite".to_owned() } else { a }))
    }

    /// The endpoint to bind.
    pub fn endpoint(&self) -> String {
        match self.port {
            Some(port) => format!("tcp://127.0.0.1:{port}"),
            None => self.listen.clone(),
        }
    }

    /// When to sample.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            interval: Duration::from_millis(self.interval_ms),
            simulate_from_us: self.simulate_from,
            pace: self.pace,
            count: self.count,
        }
    }

    /// The synthetic source's shape.
    pub fn synthetic_shape(&self) -> SyntheticShape {
        SyntheticShape { zones: self.zones, cores: self.cores, processes: self.processes, seed: self.seed }
    }

    /// The host identity.
    pub fn host_name(&self) -> String {
        self.host.clone().unwrap_or_else(local_host_name)
    }

    /// Checks values clap cannot.
    pub fn validate(&self) -> Result<(), GeneratorError> {
        if self.zones == 0 || self.zones > 10_000 || self.cores > 4096 || self.processes > 10_000 {
            return Err(GeneratorError::Config(
                "synthetic shape out of range (zones 1..=10000, cores <= 4096, processes <= 10000)".into(),
            ));
        }
        if (self.illumos_replay.is_some() || self.record_illumos.is_some()) && self.source != SourceKind::Illumos {
            return Err(GeneratorError::Config("--illumos-replay and --record-illumos need --source illumos".into()));
        }
        if self.pace.is_some_and(|p| !(p.is_finite() && p > 0.0 && p <= 1e6)) {
            return Err(GeneratorError::Config("--pace must be a factor above 0 (and at most 1000000)".into()));
        }
        Ok(())
    }
}

/// This machine's hostname: Linux's `/proc/sys/kernel/hostname`, illumos' `/etc/nodename`,
/// then `/etc/hostname`, then `$HOSTNAME` (SMF services have none), else `localhost`.
pub fn local_host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/nodename", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Parses RFC 3339 or whole seconds since the epoch into µs.
pub fn parse_time_us(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1_000_000).ok_or_else(|| format!("{s}: out of range"));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("{s}: not RFC 3339 nor seconds since the epoch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> GeneratorConfig {
        GeneratorConfig::from_args(std::iter::once("generator").chain(args.iter().copied()).map(String::from)).unwrap()
    }

    #[test]
    fn legacy_flags() {
        let c = parse(&["-p", "7300", "-d", "500", "-vlite", "-q"]);
        assert_eq!(c.endpoint(), "tcp://127.0.0.1:7300");
        assert_eq!(c.interval_ms, 500);
        assert!(c.vlite && c.quiet && !c.verbose);
        assert!(parse(&["-v"]).verbose);
        assert_eq!(parse(&[]).endpoint(), "tcp://127.0.0.1:7211");
    }

    #[test]
    fn zone_flags_reach_the_linux_options_and_bad_ones_are_refused() {
        let c = parse(&["--zone-names", "path", "--zone-include", "^docker/", "--zone-exclude", "x$", "--max-zones", "9999"]);
        let o = c.zones_of_linux.linux_options(std::path::Path::new("/r"), 5);
        assert_eq!((o.naming, o.filter.max_zones, o.top_processes), (ZoneNaming::Path, 9999, 5));
        assert!(o.filter.admits("docker/abc", "/system.slice/docker-abc.scope") && !o.filter.admits("docker/abx", "/p"));
        assert!(!o.filter.admits("nginx.service", "/system.slice/nginx.service"), "not included");
        let defaults = parse(&[]).zones_of_linux.linux_options(std::path::Path::new("/"), 20);
        assert_eq!((defaults.naming, defaults.filter.max_zones), (ZoneNaming::Readable, 1000));
        for (bad, flag) in [
            (&["--max-zones", "10000"][..], "--max-zones"),
            (&["--max-zones=-1"], "--max-zones"),
            (&["--zone-include", "("], "--zone-include"),
            (&["--zone-names", "short"], "--zone-names"),
        ] {
            let err = GeneratorConfig::from_args(std::iter::once("generator").chain(bad.iter().copied()).map(String::from))
                .expect_err(&format!("{bad:?} accepted"))
                .to_string();
            assert!(err.contains(flag), "{bad:?}: the error names {flag}: {err}");
        }
    }

    #[test]
    fn illumos_replay_needs_the_illumos_source() {
        let c = parse(&["--source", "linux", "--illumos-replay", "/tmp/x"]);
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("--source illumos"), "{err}");
        assert!(parse(&["--source", "illumos", "--illumos-replay", "/tmp/x"]).validate().is_ok());
    }

    #[test]
    fn simulated_time_accepts_both_forms() {
        assert_eq!(parse(&["--simulate-from", "1764000000"]).simulate_from, Some(1_764_000_000_000_000));
        assert_eq!(parse(&["--simulate-from", "2025-11-24T16:00:00Z"]).simulate_from, Some(1_764_000_000_000_000));
        assert!(GeneratorConfig::from_args(["generator", "--simulate-from", "soon"].map(String::from)).is_err());
    }
}

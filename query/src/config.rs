//! `dq`'s flags, defined once (name, help, default).

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, ValueEnum};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (needs -o FILE).
    Parquet,
}

/// SQL over the archive. Tables: zone, cpu, mem, net, disk, process, callfreq, cpuqueue,
/// zonename; filters on `zone` and `time` skip whole files.
#[derive(Debug, Clone, Parser)]
#[command(name = "dq", version, about, long_about = None)]
pub struct DqConfig {
    /// Archive directory.
    #[arg(short = 'a', long, env = "DQ_ARCHIVE", value_name = "DIR", default_value = "./archive")]
    pub archive: PathBuf,

    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Write results to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Use the archive's value indexes (`on`) or read every file the zone and time filters
    /// admit (`off`: for comparing; answers are the same).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = PossibleValuesParser::new(["on", "off"]).map(|s| s == "on"), action = clap::ArgAction::Set)]
    pub value_indexes: bool,

    /// The SQL to run; without it, an interactive prompt (history in ~/.dq_history).
    #[arg(value_name = "SQL")]
    pub sql: Option<String>,
}

//! `archiver`: see the crate docs; everything but argument handling lives in the library.
// The library owns the dependencies; this thin binary uses only a few of them.
#![allow(unused_crate_dependencies)]

use anyhow::Context;
use archiver::ArchiverConfig;
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = ArchiverConfig::parse();
    generator::cli::init_logging();
    if let Some(archiver::config::Command::Check { rebuild }) = &config.command {
        let clean = archiver::check::run(&config.archive, *rebuild, &mut std::io::stdout().lock())
            .with_context(|| format!("checking {}", config.archive.display()))?;
        std::process::exit(if clean { 0 } else { 1 });
    }
    let stop = generator::cli::stop_on_signals().context("installing signal handlers")?;
    archiver::service::survive_file_size_limit().context("installing the SIGXFSZ handler")?;
    archiver::service::run(&config, &stop.shared_flag()).with_context(|| format!("archiver on {}", config.archive.display()))
}

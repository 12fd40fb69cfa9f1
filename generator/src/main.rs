//! `generator`: see the crate docs; everything but argument handling lives in the library.
// The library owns the dependencies; this thin binary uses only a few of them.
#![allow(unused_crate_dependencies)]

use anyhow::Context;
use generator::GeneratorConfig;

fn main() -> anyhow::Result<()> {
    let config = match GeneratorConfig::from_args(std::env::args()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let stop = generator::cli::stop_on_signals().context("installing signal handlers")?;
    generator::cli::main(config, &stop)
}

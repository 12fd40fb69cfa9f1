//! `generator`: see the crate docs; everything but argument handling lives in the library.
// The library owns the dependencies; this thin binary uses only a few of them.
#![allow(unused_crate_dependencies)]

use anyhow::Context;
use generator::GeneratorConfig;

/// mimalloc rather than glibc's malloc: a sample at one a second (cold caches after a
/// second's sleep) cost 18% less CPU on it, with the same work (`docs/statistics.md`, Cost).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = match GeneratorConfig::from_args(std::env::args()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let stop = generator::cli::stop_on_signals().context("installing signal handlers")?;
    generator::cli::main(config, &stop)
}

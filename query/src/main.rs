//! `dq`: see the crate docs; everything but argument handling lives in the library.
// The library owns the dependencies; this thin binary uses only a few of them.
#![allow(unused_crate_dependencies)]

use std::process::ExitCode;

use clap::Parser;
use query::DqConfig;

fn main() -> ExitCode {
    let config = DqConfig::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dq: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(query::cli::run(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dq: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Benchmarks only: see `benches/`. The dependencies are the benchmarks'.
#![allow(unused_crate_dependencies)]

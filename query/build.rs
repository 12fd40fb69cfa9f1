//! Links `dq` as a position-dependent executable on x86-64 and AArch64 Linux. A
//! position-independent one (the default) carries some 215,000 relative relocations that
//! the dynamic loader applies, page by page, before `main`: a few milliseconds of every
//! query's whole-process time, which is what a command-line query tool is judged by. The
//! objects stay position-independent; only the final link changes. Must not touch anything
//! but `dq`'s link line.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && (target.starts_with("x86_64") || target.starts_with("aarch64")) {
        println!("cargo:rustc-link-arg-bin=dq=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

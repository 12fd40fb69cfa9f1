//! The floor under the Linux source's cost: only the system calls a sample cannot do
//! without, none of the parsing, frames or sending. Given the files a running generator
//! holds open (one path a line, from its `/proc/PID/fd`), it lists `ROOT/proc` and reads
//! each file from its start once a sample (a zone's limits once every ten samples, as the
//! source does; a process's `stat` in the first sample only, as the source does for a
//! process whose zone's CPU time does not move; a process's `cgroup`, which the source reads
//! only at first sight and when the kernel says it moved and does not keep open, is not in
//! the list where the source watches the hierarchies, and is read every tenth sample where it
//! is kept), back to back or at one sample a second, and prints
//! how many reads and listed processes a sample took. `benches/generator_overhead.py
//! --floor` runs it and measures its CPU as it measures the generator's.
//!
//! Usage: `read_floor ROOT FILE_LIST SAMPLES [--live]`
#![allow(unused_crate_dependencies)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Files the source reads once every ten samples (a zone's limits).
const EVERY_TENTH: [&str; 7] =
    ["cpu.max", "cpu.weight", "memory.max", "memory.high", "memory.swap.max", "cgroup.controllers", "cpu.shares"];

/// When a file is read.
enum Cadence {
    Every,
    EveryTenth,
    FirstSample,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, list, samples, rest @ ..] = args.as_slice() else {
        eprintln!("usage: read_floor ROOT FILE_LIST SAMPLES [--live]");
        std::process::exit(2);
    };
    let samples: u64 = samples.parse().expect("SAMPLES is a number");
    let live = rest.iter().any(|a| a == "--live");
    let paths = std::fs::read_to_string(list).expect("FILE_LIST is readable");
    let proc_dir = std::path::Path::new(root).join("proc");
    let files: Vec<(File, Cadence)> = paths
        .lines()
        .filter_map(|p| {
            let name = p.rsplit('/').next().unwrap_or("");
            // Under `ROOT/proc/PID/`, or the host's `/proc/PID/` a composed tree links to.
            let parts: Vec<&str> = p.split('/').collect();
            let per_process =
                parts.windows(2).any(|w| w[0] == "proc" && !w[1].is_empty() && w[1].bytes().all(|b| b.is_ascii_digit()));
            let cadence = match (per_process, name) {
                // Read only where the zone's CPU time moved: in the benchmark's idle zones, never.
                (true, "stat") => Cadence::FirstSample,
                (true, _) => Cadence::EveryTenth,
                (false, name) if EVERY_TENTH.contains(&name) => Cadence::EveryTenth,
                (false, _) => Cadence::Every,
            };
            Some((File::open(p).ok()?, cadence))
        })
        .collect();
    let listing =
        rustix::fs::open(&proc_dir, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty())
            .expect("ROOT/proc can be listed");
    let mut dir_buffer = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 << 10];
    let mut buffer = vec![0u8; 64 << 10];
    let (mut reads, mut entries) = (0u64, 0u64);
    let start = Instant::now();
    for sample in 0..samples {
        if live {
            let due = start + Duration::from_secs(sample);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        rustix::fs::seek(&listing, rustix::fs::SeekFrom::Start(0)).expect("seek");
        let mut dir = rustix::fs::RawDir::new(&listing, &mut dir_buffer);
        while let Some(Ok(entry)) = dir.next() {
            entries += u64::from(entry.file_name().to_bytes().first().is_some_and(u8::is_ascii_digit));
        }
        for (n, (file, cadence)) in files.iter().enumerate() {
            let due = match cadence {
                Cadence::Every => true,
                Cadence::EveryTenth => (n as u64 + sample).is_multiple_of(10),
                Cadence::FirstSample => sample == 0,
            };
            if !due {
                continue;
            }
            // One read: every file here is shorter than the buffer.
            reads += u64::from(file.read_at(&mut buffer, 0).is_ok());
        }
    }
    println!(
        "{} files, {:.0} reads and {:.0} processes listed a sample",
        files.len(),
        reads as f64 / samples.max(1) as f64,
        entries as f64 / samples.max(1) as f64,
    );
}

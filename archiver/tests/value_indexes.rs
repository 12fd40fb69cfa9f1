//! Value indexes end to end: the archiver writes a side file beside each sealed file, `dq`
//! gives the same answers with and without them (random data with NULLs, random conditions,
//! thresholds at the tails' exact bounds), uses them when a condition allows (EXPLAIN says
//! so), falls back to the data file when a side file is damaged, stale or gone, and
//! `archiver check` names such side files and `--rebuild` rewrites them.
#![allow(unused_crate_dependencies)]

mod common;

use std::path::Path;

use archiver::archive_writer::{ArchiveWriter, WriterOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use frame_proto::packet::{Cpu, Mem, Process};
use proptest::prelude::*;

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % HOUR;
const STEP: i64 = 10_000_000;
const ZONES: [&str; 2] = ["a", "b"];
/// Frames a test archive holds (both zones' hour).
const FRAMES: usize = 2 * (HOUR / STEP) as usize;

/// Values of one frame, drawn by the property test.
#[derive(Debug, Clone)]
struct FrameValues {
    usage: [Option<u32>; 2],
    rss: Option<u64>,
    swap: Option<u64>,
    processes: Vec<(u32, u8, Option<u32>)>,
}

/// Values of every frame of a test archive, drawn from `seed`: mostly ordinary values, an
/// extreme one with probability `extreme` per mille (so a file's tails hold a few rows, as
/// rare values do), NULL with probability `null` per mille.
fn frame_values(seed: u64, extreme: u64, null: u64) -> Vec<FrameValues> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut value = |ordinary: (u64, u64), extreme_range: (u64, u64)| -> Option<u64> {
        let roll = next() % 1000;
        let pick = |r: (u64, u64), n: u64| r.0 + n % (r.1 - r.0);
        if roll < null {
            None
        } else if roll < null + extreme {
            Some(pick(extreme_range, next()))
        } else {
            Some(pick(ordinary, next()))
        }
    };
    (0..FRAMES)
        .map(|_| FrameValues {
            usage: [value((0, 100), (4900, 5000)).map(|v| v as u32), value((0, 100), (0, 3)).map(|v| v as u32)],
            rss: value((1 << 30, (1 << 30) + 1000), (u64::MAX - 5, u64::MAX)),
            swap: value((100, 600), (0, 4)),
            processes: (0..value((0, 4), (4, 6)).unwrap_or(0))
                .map(|_| {
                    let pid = value((1, 40), (1000, 1003)).unwrap_or(1) as u32;
                    (pid, (pid % 6) as u8, value((0, 50), (1249, 1250)).map(|v| v as u32))
                })
                .collect(),
        })
        .collect()
}

/// `common::cpu_packet`'s frame with `v`'s values.
fn packet(zone: &str, t: i64, seq: u64, v: &FrameValues) -> frame_proto::Packet {
    frame_proto::Packet {
        cpu: (0..2).map(|c| Cpu { core: Some(c), usage: v.usage[c as usize] }).collect(),
        mem: vec![Mem { rss: v.rss, swap: v.swap, ..Default::default() }],
        process: v
            .processes
            .iter()
            .map(|(pid, e, usage)| Process { pid: Some(*pid), execname: Some(format!("exec{e}")), usage: *usage, cpu: Some(0) })
            .collect(),
        ..common::cpu_packet(zone, t, seq)
    }
}

/// One sealed hour of `ZONES`, frame `i` of a zone taking `values[i % len]`.
fn write_archive(root: &Path, values: &[FrameValues], indexes: bool) {
    let options = WriterOptions { value_indexes: indexes, ..WriterOptions::default() };
    let mut w = ArchiveWriter::open(root, options).unwrap();
    let mut seq = 0;
    for (zi, z) in ZONES.iter().enumerate() {
        for s in 0..(HOUR / STEP) {
            seq += 1;
            let v = &values[(zi * (HOUR / STEP) as usize + s as usize) % values.len()];
            w.append("h", &packet(z, T0 + s * STEP, seq, v));
        }
    }
    w.flush().unwrap();
    // The next hour's first frame makes the first hour due for sealing.
    seq += 1;
    w.append("h", &packet("a", T0 + HOUR + STEP, seq, &values[0]));
    w.flush().unwrap();
    w.seal_due().unwrap();
    w.flush().unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The answer's rows as text, sorted.
fn answer(rt: &tokio::runtime::Runtime, root: &Path, indexes: bool, sql: &str) -> Vec<String> {
    let session = query::ArchiveSession::open_with(root, indexes).unwrap();
    let (_, batches) = rt.block_on(session.sql(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = text(&batches);
    rows.sort();
    rows
}

fn text(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b.columns().iter().map(|c| array_value_to_string(c, i).unwrap()).collect();
            out.push(cells.join("|"));
        }
    }
    out
}

fn explain(rt: &tokio::runtime::Runtime, root: &Path, sql: &str) -> String {
    answer(rt, root, true, &format!("EXPLAIN {sql}")).join("\n")
}

/// A condition of the property test: column, operator, threshold.
fn conditions() -> impl Strategy<Value = (usize, usize, u64)> {
    (0usize..5, 0usize..6, 0u64..8)
}

/// The tails' bounds and edges of the values of `column` in the side files of `root`.
fn thresholds(root: &Path, table: &str, column: &str) -> Vec<u64> {
    let mut out = vec![0, 1, 50, 99, 4900, 4999, 5000, 1249, 1 << 30, u64::MAX - 3, u64::MAX];
    for p in common::walk(&root.join(table)) {
        if p.extension().is_some_and(|e| e == "vidx")
            && let Ok(Some(side)) = value_index::SideFile::read(&p)
            && let Some(t) = side.summary.tails.get(column)
        {
            for b in [t.above, t.below, t.min, t.max].into_iter().flatten() {
                out.extend([b.saturating_sub(1), b, b.saturating_add(1)]);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn answers_are_the_same_with_and_without_indexes(
        seed in any::<u64>(),
        extreme in 2u64..15,
        null in 0u64..150,
        picks in proptest::collection::vec(conditions(), 12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_archive(root, &frame_values(seed, extreme, null), true);
        // The side files the seal built from the rows as it wrote them are the ones built by
        // reading each data file.
        let mut compared = 0;
        for table in [archive_layout::Table::Cpu, archive_layout::Table::Mem, archive_layout::Table::Process] {
            for data in common::walk(&root.join(table.name())).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")) {
                let side_path = archive_layout::side_file_of(&data).unwrap();
                let written = value_index::SideFile::read(&side_path).unwrap().unwrap();
                let built = value_index::build_side_file(table, &data).unwrap().unwrap();
                prop_assert_eq!(&written.identity, &built.identity);
                prop_assert_eq!(&written.summary, &built.summary);
                let shape = |side: &value_index::SideFile| side.sections.iter().map(|s| (s.tails.clone(), s.rows)).collect::<Vec<_>>();
                prop_assert_eq!(shape(&written), shape(&built));
                compared += 1;
            }
        }
        prop_assert!(compared >= 3 * ZONES.len(), "{} side files", compared);
        let rt = runtime();
        let columns = [("cpu", "usage"), ("mem", "rss"), ("process", "usage"), ("process", "pid"), ("process", "execname")];
        let ops = [">", ">=", "<", "<=", "=", "BETWEEN"];
        for (c, o, k) in picks {
            let (table, column) = columns[c];
            let condition = if column == "execname" {
                format!("execname = 'exec{}'", k)
            } else {
                let edges = thresholds(root, table, column);
                let v = edges[(k as usize * 5 + o) % edges.len()];
                match ops[o] {
                    "BETWEEN" => format!("{column} BETWEEN {v} AND {}", v.saturating_add(k * 10)),
                    op => format!("{column} {op} {v}"),
                }
            };
            for sql in [
                format!("SELECT * FROM {table} WHERE {condition}"),
                format!("SELECT * FROM {table} WHERE NOT ({condition})"),
                format!("SELECT zone, count(*) FROM {table} WHERE {condition} AND zone = 'a' GROUP BY zone ORDER BY zone"),
                format!("SELECT count(*) FROM {table} WHERE {condition} OR {column} IS NULL"),
            ] {
                let with = answer(&rt, root, true, &sql);
                let without = answer(&rt, root, false, &sql);
                prop_assert_eq!(&with, &without, "{}", sql);
            }
        }
        // Every bound of every tail, and its neighbours, with every comparison.
        for (table, column) in [("cpu", "usage"), ("mem", "rss"), ("process", "usage")] {
            let mut edges = thresholds(root, table, column);
            edges.sort_unstable();
            edges.dedup();
            for v in edges {
                let conditions = [">", ">=", "<", "<=", "="].map(|op| format!("{column} {op} {v}"));
                let sql = conditions
                    .iter()
                    .map(|c| format!("SELECT '{c}', count(*), min(time), max(time) FROM {table} WHERE {c}"))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                prop_assert_eq!(answer(&rt, root, true, &sql), answer(&rt, root, false, &sql), "{}", sql);
            }
        }
        // Rows in the tails of two columns (stored once, in the first tail's section).
        let rss = thresholds(root, "mem", "rss");
        let swap = thresholds(root, "mem", "swap");
        for (i, r) in rss.iter().enumerate() {
            let w = swap[i % swap.len()];
            let sql = [
                format!("rss > {r} OR swap > {w}"),
                format!("rss > {r} AND swap > {w}"),
                format!("swap >= {w} OR rss < {r}"),
                format!("swap < {w} OR rss >= {r}"),
            ]
            .iter()
            .map(|c| format!("SELECT '{c}', count(*), min(time), max(time) FROM mem WHERE {c}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
            prop_assert_eq!(answer(&rt, root, true, &sql), answer(&rt, root, false, &sql), "{}", sql);
        }
    }
}

/// EXPLAIN's `data_footer_bytes`.
fn footer_bytes_read(plan: &str) -> u64 {
    plan.split("data_footer_bytes=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no data_footer_bytes in {plan}"))
}

/// Makes the catalog of `root` one written before entries kept their data file's footer
/// CRC: each `,"data_footer_crc":N` becomes spaces (lines keep their length, so the
/// checkpoint's index stays right; a log line's checksum is made again). Returns how many.
fn strip_footer_crcs(root: &Path) -> usize {
    let mut stripped = 0;
    for path in common::walk(&root.join("_archiver/catalog")) {
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let log = path.file_name().unwrap().to_string_lossy().starts_with("log-");
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            let mut line = line.to_owned();
            while let Some(at) = line.find(",\"data_footer_crc\":") {
                let end = at + line[at..].find('}').unwrap();
                line.replace_range(at..end, &" ".repeat(end - at));
                stripped += 1;
            }
            if log && line.len() > 9 {
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                let json = line[9..].trim_end_matches('\n');
                line = format!("{:08x} {json}{newline}", crc32fast::hash(json.as_bytes()));
            }
            out.push_str(&line);
        }
        std::fs::write(&path, out).unwrap();
    }
    stripped
}

/// Every side file under `dir`.
fn side_files(dir: &Path) -> Vec<std::path::PathBuf> {
    common::walk(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "vidx")).collect()
}

/// `archiver check [--rebuild]` of `root`: whether it passed, and what it printed.
fn archiver_check(root: &Path, rebuild: bool) -> (bool, String) {
    let mut args = vec!["check", "--archive", root.to_str().unwrap()];
    if rebuild {
        args.push("--rebuild");
    }
    let out = std::process::Command::new(common::binary("archiver")).args(&args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fixed_values() -> Vec<FrameValues> {
    // Frames 17 and 417 (4999 on core 0): once per zone in the hour (see `write_archive`).
    (0..400u32)
        .map(|i| FrameValues {
            usage: [Some(if i == 17 { 4999 } else { i % 50 }), if i % 11 == 0 { None } else { Some(3) }],
            rss: Some(1_000_000 + u64::from(i)),
            swap: Some(u64::from(i % 9)),
            processes: vec![(100 + i % 7, (i % 3) as u8, Some(i % 40))],
        })
        .collect()
}

#[test]
fn dq_uses_the_indexes_where_a_condition_allows_and_explain_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_archive(root, &fixed_values(), true);
    let rt = runtime();
    let sides = side_files(root);
    assert!(sides.iter().any(|p| p.starts_with(root.join("cpu"))), "a side file beside the sealed cpu files: {sides:?}");
    assert!(!sides.iter().any(|p| p.starts_with(root.join("_archiver"))), "no side file for runs");
    let rare = "SELECT zone, time, usage FROM cpu WHERE usage >= 4999 ORDER BY zone, time";
    let plan = explain(&rt, root, rare);
    assert!(plan.contains("ValueIndexExec") && plan.contains("answered_from_side_files=2"), "{plan}");
    // Each side file is checked against the data file the catalog lists (its footer CRC is
    // in the entry): no data file's footer is read.
    assert_eq!(footer_bytes_read(&plan), 0, "{plan}");
    assert_eq!(answer(&rt, root, true, rare), answer(&rt, root, false, rare));
    assert_eq!(answer(&rt, root, true, rare).len(), 2, "frame 17 once in each zone's hour");
    let absent = "SELECT count(*) FROM process WHERE pid = 99";
    assert!(explain(&rt, root, absent).contains("skipped=2"), "{}", explain(&rt, root, absent));
    let common_value = "SELECT count(*) FROM cpu WHERE usage >= 10";
    assert!(!explain(&rt, root, common_value).contains("ValueIndexExec"), "a condition matching much of a file reads it");
    // Turned off: the archiver writes none, dq reads the data files.
    let off = tempfile::tempdir().unwrap();
    write_archive(off.path(), &fixed_values(), false);
    assert!(side_files(off.path()).is_empty());
    assert_eq!(answer(&rt, off.path(), true, rare), answer(&rt, root, true, rare));
}

/// The query the side-file tests ask.
const RARE: &str = "SELECT zone, time, core, usage FROM cpu WHERE usage >= 4999";

/// An archive of two zones' hours with a side file each: its directory, a runtime, the
/// answer to [`RARE`] without indexes, and the two cpu side files.
fn two_zones_with_side_files() -> (tempfile::TempDir, tokio::runtime::Runtime, Vec<String>, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path(), &fixed_values(), true);
    let rt = runtime();
    let want = answer(&rt, dir.path(), false, RARE);
    let sides = side_files(&dir.path().join("cpu"));
    assert_eq!(sides.len(), 2);
    (dir, rt, want, sides)
}

#[test]
fn a_side_file_of_another_footer_is_refused_and_an_older_catalog_has_the_footers_read() {
    let (dir, rt, want, sides) = two_zones_with_side_files();
    let root = dir.path();

    // A side file naming its data file, of its length, but of another footer (one built
    // before the file was rewritten, say): the catalog's footer CRC refuses it.
    let mut side = value_index::SideFile::read(&sides[0]).unwrap().unwrap();
    side.identity.footer_crc ^= 1;
    value_index::write_side_file(&side, &sides[0], &sides[0].with_extension("tmp")).unwrap();
    let plan = explain(&rt, root, RARE);
    assert!(plan.contains("unusable_side_files=1") && plan.contains("answered_from_side_files=1"), "{plan}");
    assert_eq!(footer_bytes_read(&plan), 0, "{plan}");
    assert_eq!(answer(&rt, root, true, RARE), want);
    side.identity.footer_crc ^= 1;
    value_index::write_side_file(&side, &sides[0], &sides[0].with_extension("tmp")).unwrap();
    assert!(explain(&rt, root, RARE).contains("answered_from_side_files=2"));

    // A catalog written before entries kept the footer CRC: `archiver check` finds nothing
    // wrong with it, and dq reads each answered data file's footer to check its side file.
    assert!(strip_footer_crcs(root) >= 2);
    let (passed, text) = archiver_check(root, false);
    assert!(passed, "{text}");
    let plan = explain(&rt, root, RARE);
    assert!(plan.contains("answered_from_side_files=2"), "{plan}");
    assert!(footer_bytes_read(&plan) > 2 * 8, "{plan}");
    assert_eq!(answer(&rt, root, true, RARE), want);
    // Still refused there, by the footer read.
    side.identity.footer_crc ^= 1;
    value_index::write_side_file(&side, &sides[0], &sides[0].with_extension("tmp")).unwrap();
    assert!(explain(&rt, root, RARE).contains("unusable_side_files=1"));
    assert_eq!(answer(&rt, root, true, RARE), want);
}

#[test]
fn a_damaged_stale_or_missing_side_file_is_never_trusted_and_check_rebuilds_it() {
    let (dir, rt, want, sides) = two_zones_with_side_files();
    let root = dir.path();
    // Damaged: one byte flipped. Stale: the other zone's side file put in its place (it
    // describes another data file). An orphan: a side file whose data file is gone.
    let mut bytes = std::fs::read(&sides[0]).unwrap();
    // In the header (a flipped byte in a section the query does not read goes unseen by
    // `dq`, and `archiver check` reads it all).
    bytes[20] ^= 0x55;
    std::fs::write(&sides[0], &bytes).unwrap();
    let other = std::fs::read(&sides[1]).unwrap();
    let stale = sides[1].with_file_name("_00000001-0000000000000001-0000000000000001.vidx");
    std::fs::write(&stale, &other).unwrap();
    let plan = explain(&rt, root, RARE);
    assert!(plan.contains("unusable_side_files=1"), "{plan}");
    assert_eq!(answer(&rt, root, true, RARE), want, "a damaged side file: its data file is read");
    // A side file copied over another zone's: it names another data file.
    std::fs::copy(&sides[1], &sides[0]).unwrap();
    assert_eq!(answer(&rt, root, true, RARE), want, "a stale side file: its data file is read");
    std::fs::remove_file(&sides[0]).unwrap();
    assert_eq!(answer(&rt, root, true, RARE), want, "a missing side file: its data file is read");

    let (passed, text) = archiver_check(root, false);
    assert!(!passed, "{text}");
    assert!(text.contains("value index orphaned") && text.contains("_00000001-0000000000000001-0000000000000001.vidx"), "{text}");
    assert!(text.contains("1 files have none"), "{text}");
    let (passed, text) = archiver_check(root, true);
    assert!(passed, "{text}");
    assert!(text.contains("value indexes: ") && text.contains(" 0 files have none, 0 to rewrite"), "{text}");
    assert!(!stale.exists(), "the orphan is deleted");
    assert!(explain(&rt, root, RARE).contains("answered_from_side_files=2"));
    assert_eq!(answer(&rt, root, true, RARE), want);
}

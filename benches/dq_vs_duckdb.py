#!/usr/bin/env python3
"""dq against the DuckDB CLI on the same archive, whole-process time, same answers.

Builds an archive with the release binaries (a synthetic generator of ZONES zones x CORES
cores x PROCESSES processes publishing simulated time as fast as it can, one sample every
INTERVAL_MS, an archiver storing it; with --compact-days-after and --compact-months-after,
days and then months are compacted as the run goes), or takes one with --archive. Then runs each query RUNS times with `dq` and with
the DuckDB CLI (PyPI `duckdb-cli`, over `read_parquet('ARCHIVE/TABLE/**/*.parquet')` as
docs/archive.md tells DuckDB users to) and prints the medians; both whole process, and the
answers must have the same rows (sorted, numbers rounded).

    cargo build --release -p archiver -p generator -p query
    pip install duckdb-cli==1.5.6
    python3 benches/dq_vs_duckdb.py                      # a day of 20 zones at 1 Hz
    python3 benches/dq_vs_duckdb.py --zones 5 --days 365 --interval-ms 60000 --cores 4 \
        --processes 5 --partition day --keep /tmp/year   # a year at one sample a minute
    python3 benches/dq_vs_duckdb.py ... --runs 0       # build (and --keep) only
    python3 benches/dq_vs_duckdb.py --archive /tmp/year  # time an archive built before

Loopback only; stops by itself.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TABLES = ["zone", "cpu", "mem", "net", "disk", "process", "callfreq", "cpuqueue", "zonename"]
START = "2025-11-24T00:00:00Z"

QUERIES = [
    ("last sample per zone", "SELECT zone, max(time) AS last FROM cpu GROUP BY zone ORDER BY zone"),
    ("one zone, one hour, max per minute",
     "SELECT date_trunc('minute', time) AS m, max(usage) AS peak FROM cpu "
     "WHERE zone = 'zone03' AND time >= '2025-11-24T05:00:00Z' AND time < '2025-11-24T06:00:00Z' "
     "GROUP BY m ORDER BY m"),
    ("one zone, 12 hours, per minute, several aggregates",
     "SELECT date_trunc('minute', time) AS m, avg(rss) AS rss, max(swap) AS swap, sum(maj_fault) AS faults "
     "FROM mem WHERE zone = 'zone03' AND time >= '2025-11-24T00:00:00Z' AND time < '2025-11-24T12:00:00Z' "
     "GROUP BY m ORDER BY m"),
    ("every zone, per hour",
     "SELECT zone, date_trunc('hour', time) AS h, avg(usage) AS usage FROM cpu GROUP BY zone, h ORDER BY zone, h"),
    ("one zone, threshold count over all time",
     "SELECT count(*) AS busy FROM cpu WHERE zone = 'zone03' AND usage > 4000"),
    ("whole table, per minute, top 5",
     "SELECT date_trunc('minute', time) AS m, sum(usage) AS s FROM process GROUP BY m ORDER BY s DESC LIMIT 5"),
    ("one zone, one hour, wide table",
     "SELECT * FROM mem WHERE zone = 'zone03' AND time >= '2025-11-24T05:00:00Z' AND time < '2025-11-24T06:00:00Z' "
     "ORDER BY time"),
    ("every zone, per day, several aggregates",
     "SELECT zone, date_trunc('day', time) AS d, avg(rss) AS rss, max(rss) AS peak, sum(maj_fault) AS faults "
     "FROM mem GROUP BY zone, d ORDER BY zone, d"),
    ("counter delta per zone per hour",
     "SELECT zone, date_trunc('hour', time) AS h, max(nread) - min(nread) AS bytes_read FROM disk "
     "GROUP BY zone, h ORDER BY zone, h"),
]


def build_archive(bin_dir, archive, args):
    port = random.randint(20000, 40000)
    archiver = subprocess.Popen([os.path.join(bin_dir, "archiver"), "--archive", archive,
                                 "--connect", f"tcp://127.0.0.1:{port}", "--stats-interval", "1",
                                 "--compact-days-after", args.compact_days_after,
                                 "--compact-months-after", args.compact_months_after, "--partition", args.partition],
                                stderr=subprocess.DEVNULL)
    intervals = args.days * 86400 * 1000 // args.interval_ms
    frames = intervals * args.zones
    subprocess.run([os.path.join(bin_dir, "generator"), "--source", "synthetic", "-p", str(port),
                    "--zones", str(args.zones), "--cores", str(args.cores), "--processes", str(args.processes),
                    "--interval", str(args.interval_ms),
                    "--simulate-from", START, "--count", str(intervals), "--wait-subscribers", "1"],
                   check=True, stderr=subprocess.DEVNULL)
    # Wait until every frame is in, or the count has not moved for 5 s (a burst faster than
    # the archiver loses its tail at the publisher's high-water mark: reported, not hidden).
    status = os.path.join(archive, "_archiver", "status.json")
    accepted, last_change, last = 0, time.monotonic(), -1
    while accepted < frames and time.monotonic() - last_change < 5:
        try:
            with open(status) as f:
                accepted = json.load(f).get("frames_accepted", 0)
        except (OSError, ValueError):
            pass
        if accepted != last:
            last, last_change = accepted, time.monotonic()
        time.sleep(0.5)
    archiver.send_signal(signal.SIGTERM)
    archiver.wait(timeout=600)
    return frames, accepted


def duckdb_sql(archive, sql):
    for t in sorted(TABLES, key=len, reverse=True):
        sql = re.sub(rf"\bFROM {t}\b", f"FROM read_parquet('{archive}/{t}/**/*.parquet')", sql)
    return sql


def timed(cmd):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {out.stderr.strip()}")
    return elapsed, out.stdout


def rows(csv_text, width=None):
    """The rows of a headered CSV answer, numbers rounded, NULL as empty, sorted, the first
    `width` columns (DuckDB adds the hive partition columns to `SELECT *`)."""
    out = []
    for line in csv_text.strip().splitlines()[1:]:
        cells = []
        for c in line.split(",")[:width]:
            if c == "NULL":
                c = ""
            try:
                cells.append(f"{float(c):.6g}")
            except ValueError:
                cells.append(c.strip('"').replace("T", " ").replace("+00", "").replace("Z", ""))
        out.append(tuple(cells))
    return sorted(out)


def duckdb_binary():
    """The DuckDB CLI itself: PyPI's `duckdb` command is a Python wrapper (about 50 ms to
    start, more behind a pyenv shim) around the binary it ships, which starts in about 20 ms."""
    try:
        import duckdb_cli
        path = os.path.join(os.path.dirname(duckdb_cli.__file__), "duckdb")
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    return shutil.which("duckdb") or sys.exit("the DuckDB CLI is missing: pip install duckdb-cli")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--processes", type=int, default=20)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--compact-days-after", default="48")
    ap.add_argument("--compact-months-after", default="72", help="the archiver's --compact-months-after (hours or never)")
    ap.add_argument("--partition", default="hour", help="the archiver's --partition (hour or day)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--archive", help="time this archive instead of building one")
    ap.add_argument("--keep", help="build the archive here and keep it")
    args = ap.parse_args()
    duckdb = duckdb_binary()

    work = tempfile.mkdtemp()
    try:
        archive = args.archive or args.keep or os.path.join(work, "archive")
        if not args.archive:
            t0 = time.perf_counter()
            frames, accepted = build_archive(args.bin, archive, args)
            print(f"built: {args.zones} zones x {args.days} days every {args.interval_ms} ms, {accepted} of {frames} frames "
                  f"in {time.perf_counter() - t0:.0f} s")
        files = sum(len([f for f in fs if f.endswith(".parquet")]) for d, _, fs in os.walk(archive) if "/_archiver" not in d)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(archive) for f in fs if f.endswith(".parquet") and "/_archiver" not in d)
        print(f"archive: {files} files, {size / 2**20:.1f} MiB; DuckDB CLI: {duckdb}")
        if args.runs == 0:
            return
        print(f"{'query':<52} {'dq':>8} {'duckdb':>8} {'dq/duckdb':>9}")
        dq = os.path.join(args.bin, "dq")
        for name, sql in QUERIES:
            dsql = duckdb_sql(archive, sql)
            dq_t, dk_t = [], []
            for _ in range(args.runs):
                t, dq_out = timed([dq, "--archive", archive, "--format", "csv", sql])
                dq_t.append(t)
                t, dk_out = timed([duckdb, "-csv", "-c", dsql])
                dk_t.append(t)
            width = len(dq_out.splitlines()[0].split(",")) if dq_out.strip() else None
            if rows(dq_out, width) != rows(dk_out, width):
                sys.exit(f"{name}: dq and duckdb disagree:\n{dq_out[:500]}\n---\n{dk_out[:500]}")
            a, b = statistics.median(dq_t), statistics.median(dk_t)
            print(f"{name:<52} {a:>7.3f}s {b:>7.3f}s {a / b:>9.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

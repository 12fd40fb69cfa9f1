#!/usr/bin/env python3
"""dq against DuckDB on the same archive, whole-process time.

Builds an archive with the release binaries (a synthetic generator of ZONES zones x 16 cores x
20 processes publishing HOURS simulated hours as fast as it can, an archiver storing them in
hourly partitions, compacted at SIGTERM), then runs the same queries with `dq` and with DuckDB
over `read_parquet('ARCHIVE/TABLE/**/*.parquet')`, as docs/archive-layout.md tells DuckDB users
to. Each query runs RUNS times per engine; the median is printed.

DuckDB is timed twice: whole process (a fresh `python3 -c` that imports duckdb, connects,
runs and prints: the interpreter's start is part of it) and inside the process (connect +
query + fetch only, the fair lower bound of a DuckDB CLI run). dq is timed whole process.

    cargo build --release -p archiver -p generator -p query
    pip install duckdb
    python3 benches/dq_vs_duckdb.py [--hours 24] [--zones 20] [--runs 5] [--bin target/release]

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
    ("counter delta per zone per hour",
     "SELECT zone, date_trunc('hour', time) AS h, max(nread) - min(nread) AS bytes_read FROM disk "
     "GROUP BY zone, h ORDER BY zone, h"),
]


def build_archive(bin_dir, archive, hours, zones):
    port = random.randint(20000, 40000)
    archiver = subprocess.Popen([os.path.join(bin_dir, "archiver"), "--archive", archive,
                                 "--connect", f"tcp://127.0.0.1:{port}", "--stats-interval", "1"],
                                stderr=subprocess.DEVNULL)
    frames = hours * 3600 * zones
    subprocess.run([os.path.join(bin_dir, "generator"), "--source", "synthetic", "-p", str(port),
                    "--zones", str(zones), "--cores", "16", "--processes", "20",
                    "--simulate-from", START, "--count", str(hours * 3600), "--wait-subscribers", "1"],
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default="target/release")
    args = ap.parse_args()
    import duckdb  # noqa: F401  (fail early if missing)

    work = tempfile.mkdtemp()
    try:
        archive = os.path.join(work, "archive")
        t0 = time.perf_counter()
        frames, accepted = build_archive(args.bin, archive, args.hours, args.zones)
        files = sum(len([f for f in fs if f.endswith(".parquet")]) for _, _, fs in os.walk(archive))
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(archive) for f in fs if f.endswith(".parquet"))
        print(f"archive: {args.zones} zones x {args.hours} h, {accepted} of {frames} frames, {files} files, {size / 2**20:.1f} MiB "
              f"(built in {time.perf_counter() - t0:.0f} s)")
        print(f"{'query':<52} {'dq':>8} {'duckdb':>8} {'duckdb':>8} {'dq/duckdb':>9}")
        print(f"{'':<52} {'process':>8} {'process':>8} {'in-proc':>8} {'process':>9}")
        dq = os.path.join(args.bin, "dq")
        for name, sql in QUERIES:
            dsql = duckdb_sql(archive, sql)
            script = ("import duckdb,time,sys;t=time.perf_counter();c=duckdb.connect();"
                      f"r=c.sql({dsql!r}).fetchall();sys.stderr.write(str(time.perf_counter()-t));print(len(r))")
            dq_t, dq_out, dk_t, dk_in = [], "", [], []
            for _ in range(args.runs):
                t, dq_out = timed([dq, "--archive", archive, "--format", "csv", sql])
                dq_t.append(t)
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
                dk_t.append(time.perf_counter() - t0)
                if out.returncode != 0:
                    sys.exit(f"duckdb failed on {name}: {out.stderr.strip()}")
                dk_in.append(float(out.stderr.strip().splitlines()[-1]))
                dk_rows = int(out.stdout.strip())
            dq_rows = max(len(dq_out.strip().splitlines()) - 1, 0)
            if dq_rows != dk_rows:
                sys.exit(f"{name}: dq returned {dq_rows} rows, duckdb {dk_rows}")
            a, b, c = statistics.median(dq_t), statistics.median(dk_t), statistics.median(dk_in)
            print(f"{name:<52} {a:>7.3f}s {b:>7.3f}s {c:>7.3f}s {a / b:>9.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

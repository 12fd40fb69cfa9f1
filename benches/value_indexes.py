#!/usr/bin/env python3
"""Selective queries with and without the value indexes, against the DuckDB CLI.

For an archive whose files have value indexes (the archiver writes them as it seals and
compacts; `archiver check --rebuild` writes them for an archive written before), picks
thresholds from the data so that each condition matches a known share of the table's rows
(about 0.01%, and 10% for the query that must not get slower), then runs each query RUNS
times with `dq` (indexes on), `dq --value-indexes off` and the DuckDB CLI over the same
files (`read_parquet('ARCHIVE/TABLE/**/*.parquet')`), whole process, and prints medians,
the share of rows matched and the share of the table's bytes `dq` read (Parquet bytes
scanned plus side-file bytes, from EXPLAIN ANALYZE). Answers must agree, or it stops.

    cargo build --release -p archiver -p query
    python3 benches/value_indexes.py --archive /tmp/day20
    python3 benches/value_indexes.py --archive /tmp/year5 --runs 5

Reads only; stops by itself.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dq_vs_duckdb import duckdb_binary, duckdb_sql, rows, timed  # noqa: E402

UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def scalar(duckdb, archive, sql):
    out = subprocess.run([duckdb, "-csv", "-noheader", "-c", duckdb_sql(archive, sql)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"duckdb failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[0].strip('"')


def table_bytes(archive, table):
    total = 0
    for d, _, fs in os.walk(os.path.join(archive, table)):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in fs if f.endswith(".parquet"))
    return total


def bytes_read(dq, archive, sql, indexes):
    out = subprocess.run([dq, "--archive", archive, "--value-indexes", indexes, "--format", "csv", "EXPLAIN ANALYZE " + sql],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"dq failed: {out.stderr.strip()}")
    total = 0.0
    for n, unit in re.findall(r"bytes_scanned=([\d.]+)\s*([KMGT]?)", out.stdout):
        total += float(n) * UNITS[unit]
    total += sum(int(n) for n in re.findall(r"side_file_bytes=(\d+)", out.stdout))
    # The answered files' footers, read to check their side files still describe them.
    total += sum(int(n) for n in re.findall(r"data_footer_bytes=(\d+)", out.stdout))
    used = re.search(r"ValueIndexExec: ([^,]+, [^,]+, [^,]+)", out.stdout)
    return total, used.group(1) if used else "no index used"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default="target/release")
    args = ap.parse_args()
    duckdb = duckdb_binary()
    dq = os.path.join(args.bin, "dq")
    archive = args.archive

    def quantile(table, column, q):
        return int(float(scalar(duckdb, archive, f"SELECT quantile_disc({column}, {q}) FROM {table}")))

    cpu_rare = quantile("cpu", "usage", 0.9999)
    cpu_tenth = quantile("cpu", "usage", 0.9)
    rss_rare = quantile("mem", "rss", 0.9999)
    swap_low = quantile("mem", "swap", 0.0001)
    proc_rare = quantile("process", "usage", 0.9999)
    # A process id seen in few rows (a short-lived process), and one seen in many.
    pid = scalar(duckdb, archive, "SELECT pid FROM process GROUP BY pid HAVING count(*) BETWEEN 20 AND 200 ORDER BY pid LIMIT 1")
    queries = [
        ("cpu", "rare CPU saturation (usage >= 99.99th pct)",
         f"SELECT zone, time, core, usage FROM cpu WHERE usage >= {cpu_rare} ORDER BY zone, time, core"),
        ("cpu", "rare CPU saturation, one zone, count",
         f"SELECT count(*) AS n FROM cpu WHERE zone = 'zone03' AND usage >= {cpu_rare}"),
        ("mem", "memory peaks (rss >= 99.99th pct)",
         f"SELECT zone, time, rss FROM mem WHERE rss >= {rss_rare} ORDER BY zone, time"),
        ("mem", "lowest swap (swap <= 0.01th pct)",
         f"SELECT zone, time, swap FROM mem WHERE swap <= {swap_low} ORDER BY zone, time"),
        ("process", "processes at the top usage (>= 99.99th pct)",
         f"SELECT zone, time, pid, execname, usage FROM process WHERE usage >= {proc_rare} ORDER BY zone, time, pid"),
        ("process", "one process id",
         f"SELECT zone, time, execname, usage FROM process WHERE pid = {pid} ORDER BY zone, time"),
        ("cpu", "10% of rows (usage >= 90th pct), count per zone",
         f"SELECT zone, count(*) AS n FROM cpu WHERE usage >= {cpu_tenth} GROUP BY zone ORDER BY zone"),
    ]
    total_rows = {t: int(scalar(duckdb, archive, f"SELECT count(*) FROM {t}")) for t in {q[0] for q in queries}}
    print(f"archive {archive}; DuckDB CLI {duckdb}; {args.runs} runs, medians, whole process")
    print(f"{'query':<48} {'rows %':>8} {'read % on':>9} {'off':>6} {'dq on':>8} {'dq off':>8} {'duckdb':>8} {'on/duck':>7} {'on/off':>6}  index")
    for table, name, sql in queries:
        on_t, off_t, dk_t = [], [], []
        dsql = duckdb_sql(archive, sql)
        for _ in range(args.runs):
            t, on_out = timed([dq, "--archive", archive, "--format", "csv", sql])
            on_t.append(t)
            t, off_out = timed([dq, "--archive", archive, "--value-indexes", "off", "--format", "csv", sql])
            off_t.append(t)
            t, dk_out = timed([duckdb, "-csv", "-c", dsql])
            dk_t.append(t)
        width = len(on_out.splitlines()[0].split(",")) if on_out.strip() else None
        if not (rows(on_out, width) == rows(off_out, width) == rows(dk_out, width)):
            sys.exit(f"{name}: answers differ:\n{on_out[:400]}\n---\n{off_out[:400]}\n---\n{dk_out[:400]}")
        matched = len(rows(on_out, width))
        if name.endswith("count") or "count per zone" in name:
            matched = sum(int(float(r[-1])) for r in rows(on_out, width))
        size = table_bytes(archive, table)
        on_b, used = bytes_read(dq, archive, sql, "on")
        off_b, _ = bytes_read(dq, archive, sql, "off")
        a, b, c = statistics.median(on_t), statistics.median(off_t), statistics.median(dk_t)
        print(f"{name:<48} {100 * matched / total_rows[table]:>7.4f}% {100 * on_b / size:>8.2f}% {100 * off_b / size:>5.1f}% "
              f"{a:>7.3f}s {b:>7.3f}s {c:>7.3f}s {a / c:>7.2f} {a / b:>6.2f}  {used}", flush=True)


if __name__ == "__main__":
    main()

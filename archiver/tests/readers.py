"""Reads an archive's tables with every reader the docs promise and prints, per reader and
table, the row count and the sum of one column of each encoding the archiver uses. Called
by archiver/tests/readers.rs, which compares the figures with dq's.

    python3 readers.py ARCHIVE   (needs pyarrow, polars, duckdb-cli, pyspark + Java 17)
"""
import json
import subprocess
import sys

root = sys.argv[1]
# table -> columns covering dictionary, DELTA_BINARY_PACKED and PLAIN integer columns.
COLUMNS = {
    "zone": ["ticks", "threads", "processes"],
    "cpu": ["core", "usage"],
    "mem": ["rss", "freemem", "maj_fault"],
    "net": ["obytes64", "opackets", "ierrors"],
    "disk": ["nread", "reads", "rtime"],
    "process": ["pid", "usage", "cpu"],
    "callfreq": ["bucket_ns", "value"],
    "cpuqueue": ["core", "length", "amount"],
    "frame": ["seq", "interval_ms"],  # run_id: sums past 2^53 round by order
    # Rollups of the compacted month and day.
    "cpu_1m": ["samples", "usage_sum", "usage_max"],
    "cpu_1h": ["samples", "usage_sum", "usage_count"],
    "mem_1h": ["rss_sum", "rss_last", "maj_fault_sum"],
    "disk_1h": ["nread_increase", "reads_last", "reads_resets"],
}


def sql(table, source):
    sums = ", ".join(f"sum(cast({c} AS DOUBLE))" for c in COLUMNS[table])
    return f"SELECT count(*), {sums} FROM {source}"


out = {}

import pyarrow.compute as pc
import pyarrow.dataset as ds

for t, cols in COLUMNS.items():
    d = ds.dataset(f"{root}/{t}", format="parquet").to_table()
    out.setdefault("pyarrow", {})[t] = [float(d.num_rows)] + [float(pc.sum(pc.cast(d[c], "double")).as_py() or 0) for c in cols]

import polars as pl

for t, cols in COLUMNS.items():
    d = pl.scan_parquet(f"{root}/{t}/**/*.parquet", hive_partitioning=False).select([pl.len()] + [pl.col(c).cast(pl.Float64).sum() for c in cols]).collect()
    out.setdefault("polars", {})[t] = [float(v or 0) for v in d.row(0)]

for t in COLUMNS:
    text = subprocess.run(["duckdb", "-csv", "-noheader", "-c", sql(t, f"read_parquet('{root}/{t}/**/*.parquet')")], capture_output=True, text=True, check=True).stdout
    out.setdefault("duckdb-cli", {})[t] = [float(v or 0) for v in text.strip().split(",")]

from pyspark.sql import SparkSession

spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
for t in COLUMNS:
    spark.read.option("recursiveFileLookup", "true").parquet(f"{root}/{t}").createOrReplaceTempView("x")
    out.setdefault("spark", {})[t] = [float(v or 0) for v in spark.sql(sql(t, "x")).collect()[0]]
spark.stop()

print(json.dumps({"versions": {"duckdb-cli": subprocess.run(["duckdb", "--version"], capture_output=True, text=True).stdout.strip(), "spark": spark.version if hasattr(spark, "version") else ""}, "figures": out}))

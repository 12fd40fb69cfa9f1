#!/usr/bin/env python3
"""Stored bytes per measured value of an archive: every *.parquet file's size over the
non-null cells of every column but time, host, zone and the series keys (the figure the
storage targets use; the same rule as `cargo bench -p benches --bench ingest`), over the
raw tables; the rollup tables (`TABLE_1m`, `TABLE_1h`) are summed apart, as bytes only.

    python3 benches/bytes_per_value.py ARCHIVE   (needs pyarrow)
"""
import pathlib
import sys

import pyarrow.parquet as pq

# time, host, zone, every table's `Table::series_key_columns` (`resource` and `mountpoint`
# are the container tables'), and `frame.run_id`.
KEYS = {"time", "host", "zone", "core", "instance", "pid", "name", "bucket_ns", "zonename", "run_id", "resource", "mountpoint"}


def figures(files):
    size = sum(p.stat().st_size for p in files)
    values = 0
    for p in files:
        meta = pq.ParquetFile(p).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                col = group.column(c)
                if col.path_in_schema in KEYS:
                    continue
                nulls = col.statistics.null_count if col.statistics is not None and col.statistics.has_null_count else 0
                values += group.num_rows - nulls
    return size, values


def main(root):
    every = [p for p in pathlib.Path(root).rglob("*.parquet") if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)]
    rollup = lambda p: p.relative_to(root).parts[0].endswith(("_1m", "_1h"))
    files = [p for p in every if not rollup(p)]
    rollups = [p for p in every if rollup(p)]
    if rollups:
        print(f"  rollups: {sum(p.stat().st_size for p in rollups)} bytes in {len(rollups)} files (not counted below)")
    # Month files sit in month=M/, day files (a day compaction's output) directly in
    # date=D/, hour files in hour=H/.
    kinds = {"month files": [], "day files": [], "hour files": []}
    for p in files:
        name = p.parent.name
        kinds["month files" if name.startswith("month=") else "day files" if name.startswith("date=") else "hour files"].append(p)
    if sum(1 for part in kinds.values() if part) > 1:
        for label, part in kinds.items():
            if part:
                size, values = figures(part)
                print(f"  {label}: {size} bytes in {len(part)} files, {values} measured values: {size / max(values, 1):.3f} bytes per value")
    size, values = figures(files)
    print(f"{size} bytes in {len(files)} files, {values} measured values: {size / max(values, 1):.3f} bytes per value")


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env bash
# The archiver binary under load, whole process: a synthetic generator (ZONES zones x CORES
# cores x PROCESSES processes; default 10 x 16 x 20, the brief's reference shape) publishes
# SECONDS simulated seconds as fast as it can over loopback; the archiver receives, logs
# (WAL), buffers, publishes runs, seals each hour as it ends and, at SIGTERM, the rest.
# Prints frames per archiver CPU-second (user+sys, GNU time), its peak RSS, and what it
# stored (bytes per measured value with pyarrow, benches/bytes_per_value.py).
#
#   cargo build --release -p archiver -p generator
#   benches/archiver-under-load.sh [SECONDS] [extra archiver flags...]
#   ZONES=50 CORES=8 PROCESSES=5 benches/archiver-under-load.sh 86400   # a day of 50 zones
#
# BIN=dir picks the binaries (default target/release). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release}
seconds=${1:-3600}
shift || true
zones=${ZONES:-10}
frames=$((seconds * zones))
dir=$(mktemp -d)
# KEEP=DIR keeps the archive there (for timing dq on it).
archive=${KEEP:-$dir/archive}
trap 'rm -rf "$dir"' EXIT
port=$((20000 + RANDOM % 20000))

/usr/bin/time -f "%U %S %M" -o "$dir/time" "$bin/archiver" --archive "$archive" \
  --connect "tcp://127.0.0.1:$port" --stats-interval 1 "$@" 2>"$dir/archiver.log" &
archiver=$!
start=$(date +%s.%N)
"$bin/generator" --source synthetic -p "$port" --zones "$zones" --cores "${CORES:-16}" --processes "${PROCESSES:-20}" \
  --simulate-from 2025-11-24T00:00:00Z --count "$seconds" --wait-subscribers 1 2>"$dir/generator.log"
for _ in $(seq 1 7200); do
  accepted=$(grep -o '"frames_accepted":[0-9]*' "$archive/_archiver/status.json" 2>/dev/null | cut -d: -f2 || true)
  [ "${accepted:-0}" -ge "$frames" ] && break
  sleep 0.5
done
received=$(date +%s.%N)
# Signal the archiver itself (time's child), so time reports on it.
pkill -TERM -P "$archiver" || true
wait "$archiver" || true
read -r user sys maxrss < "$dir/time"
bytes=$(find "$archive" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
files=$(find "$archive" -name '*.parquet' | wc -l)
awk -v f="$frames" -v a="${accepted:-0}" -v u="$user" -v s="$sys" -v r="$maxrss" -v b="$bytes" -v n="$files" \
    -v t0="$start" -v t1="$received" 'BEGIN {
  w = t1 - t0
  printf "frames sent %d, accepted %d, wall to accept all %.1f s\n", f, a, w
  printf "archiver CPU %.2f s (user %.2f, sys %.2f): %.0f frames per CPU-second\n", u + s, u, s, a / (u + s)
  printf "archiver peak RSS %.1f MiB\n", r / 1024
  printf "stored %d bytes in %d files: %.1f bytes per frame\n", b, n, b / a
}'
python3 benches/bytes_per_value.py "$archive" || echo "(bytes per value needs pyarrow)"

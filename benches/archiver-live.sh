#!/usr/bin/env bash
# The archiver at the live cadence, whole process: HOSTS synthetic generators (together
# ZONES zones of 16 cores x 20 processes) publish SECONDS_SIMULATED simulated seconds at PACE times
# real time over loopback, and the archiver flushes every FLUSH seconds. With the defaults
# (100 zones, 3,700 s at 10x, flush 3 s) an hour sees as many flushes and small files as a
# real hour with the default 30 s flush, in about 6 minutes. Prints frames per archiver
# CPU-second (user+sys, GNU time), its peak RSS, files and bytes per measured value
# (benches/bytes_per_value.py, needs pyarrow), after a SIGTERM that publishes the rest.
#
#   cargo build --release -p archiver -p generator
#   ZONES=100 SECONDS_SIMULATED=3700 PACE=10 FLUSH=3 HOSTS=1 benches/archiver-live.sh [extra archiver flags...]
#
# BIN=dir picks the binaries (default target/release). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release}
zones=${ZONES:-100}
seconds=${SECONDS_SIMULATED:-3700}
pace=${PACE:-10}
flush=${FLUSH:-3}
hosts=${HOSTS:-1}
per_host=$((zones / hosts))
frames=$((seconds * per_host * hosts))
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
base=$((20000 + RANDOM % 20000))

connect=()
for h in $(seq 0 $((hosts - 1))); do connect+=(--connect "tcp://127.0.0.1:$((base + h))"); done
/usr/bin/time -f "%U %S %M" -o "$dir/time" "$bin/archiver" --archive "$dir/archive" "${connect[@]}" \
  --flush-interval "$flush" --stats-interval 5 "$@" 2>"$dir/archiver.log" &
archiver=$!
start=$(date +%s.%N)
gens=()
for h in $(seq 0 $((hosts - 1))); do
  "$bin/generator" --source synthetic -p "$((base + h))" --host "host$h" --zones "$per_host" --cores 16 --processes 20 \
    --simulate-from 2025-11-24T00:00:00Z --count "$seconds" --pace "$pace" --wait-subscribers 1 2>"$dir/generator$h.log" &
  gens+=($!)
done
wait "${gens[@]}"
for _ in $(seq 1 1200); do
  accepted=$(grep -o '"frames_accepted":[0-9]*' "$dir/archive/_archiver/status.json" 2>/dev/null | cut -d: -f2 || true)
  [ "${accepted:-0}" -ge "$frames" ] && break
  sleep 0.5
done
received=$(date +%s.%N)
pkill -TERM -P "$archiver" || true
wait "$archiver" || true
read -r user sys maxrss < "$dir/time"
awk -v f="$frames" -v a="${accepted:-0}" -v u="$user" -v s="$sys" -v r="$maxrss" -v t0="$start" -v t1="$received" 'BEGIN {
  printf "frames sent %d, accepted %d, wall %.1f s\n", f, a, t1 - t0
  printf "archiver CPU %.2f s (user %.2f, sys %.2f): %.0f frames per CPU-second\n", u + s, u, s, a / (u + s)
  printf "archiver peak RSS %.1f MiB\n", r / 1024
}'
python3 benches/bytes_per_value.py "$dir/archive" || echo "(bytes per value needs pyarrow)"

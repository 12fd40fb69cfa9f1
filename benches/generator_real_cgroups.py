#!/usr/bin/env python3
"""The Linux source's cost on this host's own cgroups (the kernel's files, not a tmpfs tree):
ZONES real cgroups, PROCESSES real processes spread over them, the generator live at one
sample a second, its CPU time from the kernel.

    cargo build --release -p generator
    sudo python3 benches/generator_real_cgroups.py [--zones 100] [--processes 1000] [--seconds 120]
        [--running K] [--compare OTHER_GENERATOR --pairs 2]

Needs root and a cgroup v2 hierarchy (mounted at /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
hybrid host). Creates the groups under `generator-bench.slice/`, moves `sleep` processes into
them, and removes all of it at the end (the processes are killed first). On a hybrid host the v2
groups have no controllers: each zone has `cpu.stat` and the three pressure files, its memory
and io files are absent (opened and missed every sample), so this measures the kernel's files
for CPU and pressure, not for memory. Prints the share of a core with the start and first
sample apart (a run of one sample), and the host alone for comparison. A live sample's cost
is the CPU of the generator's threads over SECONDS after its first 5 (each thread's
`schedstat` run time, read from outside): no start in it. With --running K, K processes of
each group run about 20 us every second (`generator_overhead.idle_process`, built with `cc`)
and the others wait: every group's CPU time then moves each second because a process of it
ran, as the kernel accounts it (the generator reads each process's CPU clock and the `stat`
of the one that ran).
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from generator_overhead import WARM, cpu_windows, free_port, idle_process  # noqa: E402 (the benchmark beside this one)

REPO = pathlib.Path(__file__).resolve().parent.parent
GENERATOR = REPO / "target" / "release" / "generator"


def v2_root():
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return pathlib.Path(fields[4])
    sys.exit("no cgroup v2 hierarchy mounted")


def cpu_seconds(samples, live, binary=None):
    args = [str(binary or GENERATOR), "--source", "linux", "--listen", f"tcp://127.0.0.1:{free_port()}", "--count", str(samples)]
    if not live:
        args += ["--simulate-from", "2026-01-01T00:00:00Z"]
    start = time.monotonic()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, u = os.wait4(child.pid, 0)
    return u.ru_utime + u.ru_stime, time.monotonic() - start


def measure(label, seconds, binary=None):
    """Prints and returns a live sample's CPU in seconds: the generator's threads' CPU over
    `seconds` at one sample a second after its first WARM (`generator_overhead.cpu_windows`,
    read from outside), a second's worth; the start and first sample apart (a run of one)."""
    first = sorted(cpu_seconds(1, False, binary)[0] for _ in range(3))[1]
    args = [str(binary or GENERATOR), "--source", "linux", "--listen", f"tcp://127.0.0.1:{free_port()}",
            "--count", str(WARM + seconds + 5)]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rest = cpu_windows([child], seconds)[0] / 1e3
    print(f"{label}: live at 1 Hz, {seconds} s after the first {WARM}: {rest * 1e3:.2f} ms a second = "
          f"{rest * 100:.3f}% of a core; start and first sample {first * 1e3:.1f} ms", flush=True)
    return rest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", type=int, default=100)
    ap.add_argument("--processes", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--compare", metavar="GENERATOR",
                    help="another generator binary (an earlier build): run it and this one alternately on the same "
                         "groups, PAIRS pairs, and print each pair's ratio (only alternate runs compare on a VM)")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--running", type=int, default=0, metavar="K",
                    help="K processes of each group run about 20 us every second (the others wait)")
    a = ap.parse_args()
    if not GENERATOR.exists():
        sys.exit(f"build it first: cargo build --release -p generator ({GENERATOR} missing)")
    if os.geteuid() != 0:
        sys.exit("needs root (it creates cgroups)")
    measure("host alone", a.seconds)
    top = v2_root() / "generator-bench.slice"
    top.mkdir()
    sleepers = []
    zones = [top / f"zone-{z:03}.scope" for z in range(a.zones)]
    build = pathlib.Path(tempfile.mkdtemp(prefix="generator-real-cgroups-"))
    try:
        for z in zones:
            z.mkdir()
        for n in range(a.processes):
            # Process n is in group n % zones: the first K * zones are K of each group.
            p = subprocess.Popen(idle_process(build, 1, n < a.running * a.zones))
            sleepers.append(p)
            (zones[n % len(zones)] / "cgroup.procs").write_text(f"{p.pid}\n")
        label = f"{a.zones} real cgroups, {a.processes} processes ({a.running} of each running every second)"
        if not a.compare:
            measure(label, a.seconds)
        for pair in range(a.pairs if a.compare else 0):
            other = measure(f"{label}, {a.compare}", a.seconds, a.compare)
            this = measure(f"{label}, this build", a.seconds)
            print(f"pair {pair + 1}: this / other = {this / other:.2f}", flush=True)
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
        for z in zones:
            for _ in range(50):
                try:
                    z.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        top.rmdir()
        shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    main()

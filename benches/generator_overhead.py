#!/usr/bin/env python3
"""The Linux source's cost: CPU per sample, per zone and per process, on a generated cgroup
tree of 100 zones beside this host's real /proc, and the share of one core that makes at one
sample a second (target: at most 0.5% with 100 zones and 1,000 processes).

    cargo build --release -p generator
    python3 benches/generator_overhead.py [--zones 100] [--processes 1000] [--threads 1] [--samples 300]
        [--live 0] [--busy] [--running K]

What it builds (under /dev/shm, a tmpfs, so no disk is measured):
- PROCESSES real processes (`sleep`, or with --threads a program of that many threads),
  spread evenly over ZONES zones;
- a root for `generator --linux-root`: `proc/PID/{stat,schedstat,ns,net}` of each of those processes
  are links to the real `/proc/PID/...` (the kernel answers them), `proc/PID/cgroup` is a
  written file placing the process in a zone; `proc/{stat,meminfo,vmstat,loadavg,diskstats,
  pressure,net,sys}` and `sys/block` are links to the real ones; `proc/self` is, for each
  generator run, a link to a `proc/PID` of the generator's own pid (so the generator takes
  the tree's pids for its namespace's and reads their CPU clocks, as on a real `/proc`),
  whose `mountinfo` is this host's without its cgroup mounts, plus a cgroup2 mount of the
  generated tree;
- a cgroup v2 tree of ZONES zones (Docker containers, Kubernetes pods of two containers with
  their quota on the pod, systemd services), each with the files the source reads, in the
  shapes and sizes the kernel writes them (a 45-line memory.stat).

It then runs the generator with --simulate-from (samples back to back, each reading every
file as a live sample does; frames encoded and published on a loopback socket nobody
subscribes to) and reads its user and system CPU time from the kernel after it exits. The
same is done with no zones and no extra processes (the host alone), so the zones' share is
the difference. With --live S it also runs S seconds at one sample a second on the clock
(its whole CPU time, and the first sample's apart), then RUNS times measures the CPU of a
live run over S seconds after its first 5 (each thread's run time in the kernel's
`schedstat`, read from outside): a live sample's cost without the start's variation, which
spread the figure of "the rest" by up to a millisecond a sample over a minute's run;
with --busy too, it then does so while every zone's `cpu.stat` is rewritten with
a higher `usage_usec` every 0.2 s (every zone busy, as if some process of each ran each
second: the source then looks at each of their processes, reading its CPU clock; the
`sleep`s themselves do not run, so no `stat` is read). With --threads T, each process has T
threads (a small C program built with `cc`, whose threads wait in pause()). With --running K,
K processes of each zone (the same program) run about 20 us every second: with --busy, what a
host whose every container does a little work each second costs (each zone's CPU time moves
because a process of it ran: that process's `stat` is read, and every other one's clock).

What a tree on a plain file system does not measure: the kernel's cost of producing cgroup
files (memory.stat and cpu.stat flush per-CPU counters, which grows with the number of CPUs
and cgroups; io.stat and the pressure files take locks), and cgroupfs's own lookups. On a
real host each of the ~12 cgroup files read per zone costs more system time than reading a
tmpfs file, so the per-zone figure here is a lower bound; the per-process figure (real
/proc/PID/stat) is measured as it is.
"""
import argparse
import contextlib
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
GENERATOR = REPO / "target" / "release" / "generator"

MEMORY_STAT_KEYS = (
    "anon file kernel kernel_stack pagetables sec_pagetables percpu sock vmalloc shmem zswap zswapped file_mapped "
    "file_dirty file_writeback swapcached anon_thp file_thp shmem_thp inactive_anon active_anon inactive_file "
    "active_file unevictable slab_reclaimable slab_unreclaimable slab workingset_refault_anon workingset_refault_file "
    "workingset_activate_anon workingset_activate_file workingset_restore_anon workingset_restore_file "
    "workingset_nodereclaim pgscan pgsteal pgscan_kswapd pgscan_direct pgsteal_kswapd pgsteal_direct pgfault "
    "pgmajfault pgrefill pgactivate"
).split()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def zone_files(d, i, quota=None):
    write(d / "cpu.stat", f"usage_usec {i * 1000}\nuser_usec {i * 600}\nsystem_usec {i * 400}\nnr_periods {i}\n"
          f"nr_throttled {i // 2}\nthrottled_usec {i * 7}\nnr_bursts 0\nburst_usec 0\n")
    write(d / "cpu.max", quota or "max 100000\n")
    write(d / "cpu.weight", "100\n")
    write(d / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    for f in ("cgroup.procs", "cgroup.threads"):
        write(d / f, "")
    for r in ("cpu", "memory", "io"):
        write(d / f"{r}.pressure", f"some avg10=0.00 avg60=0.00 avg300=0.00 total={i * 13}\n"
              f"full avg10=0.00 avg60=0.00 avg300=0.00 total={i * 3}\n")
    write(d / "memory.current", f"{i * 1048576}\n")
    write(d / "memory.stat", "".join(f"{k} {i * 4096 + n}\n" for n, k in enumerate(MEMORY_STAT_KEYS)))
    write(d / "memory.max", "1073741824\n")
    write(d / "memory.high", "max\n")
    write(d / "memory.events", "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\noom_group_kill 0\n")
    write(d / "memory.swap.current", "0\n")
    write(d / "memory.swap.max", "max\n")
    write(d / "io.stat", f"8:0 rbytes={i * 4096} wbytes={i * 8192} rios={i} wios={i * 2} dbytes=0 dios=0\n")


def build_root(base, zones, pids):
    """The fake root: returns it."""
    root = base / "root"
    proc = root / "proc"
    proc.mkdir(parents=True)
    for name in ("stat", "meminfo", "vmstat", "loadavg", "diskstats", "pressure", "net", "sys", "uptime"):
        if os.path.exists(f"/proc/{name}"):
            os.symlink(f"/proc/{name}", proc / name)
    (root / "sys").mkdir()
    os.symlink("/sys/block", root / "sys" / "block")
    mounts = [l for l in open("/proc/self/mountinfo") if " - cgroup" not in l]
    mounts.append("9999 1 0:99 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n")
    # `proc/self` is made by `start_generator` for each generator run (see SELF_SETUP).
    write(proc / ".self" / "mountinfo", "".join(mounts))
    cg = root / "sys" / "fs" / "cgroup"
    # The slices above the zones have their own limits, as on a systemd host (read every
    # tenth sample for the effective CPU quota).
    for slice_dir in ("system.slice", "kubepods.slice", "kubepods.slice/kubepods-burstable.slice"):
        write(cg / slice_dir / "cpu.max", "max 100000\n")
        write(cg / slice_dir / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        for f in ("cgroup.procs", "cgroup.threads"):
            write(cg / slice_dir / f, "")
    # Every group has the files a process is moved by (watched by the generator for moves).
    for f in ("cgroup.procs", "cgroup.threads"):
        write(cg / f, "")
    paths = []
    for z in range(zones):
        zid = f"{z:08x}" + "0123456789abcdef" * 3 + "01234567"
        kind = z % 5
        if kind in (0, 1):
            rel = f"system.slice/docker-{zid}.scope"
        elif kind in (2, 3):
            pod = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{z // 2:08x}_0000_0000_0000_000000000000.slice"
            zone_files(cg / pod, z, "200000 100000\n")
            rel = f"{pod}/cri-containerd-{zid}.scope"
        else:
            rel = f"system.slice/service-{z}.service"
        zone_files(cg / rel, z)
        paths.append(rel)
    members = {}
    for n, pid in enumerate(pids):
        d = proc / str(pid)
        d.mkdir()
        for name in ("stat", "schedstat", "ns", "net"):
            os.symlink(f"/proc/{pid}/{name}", d / name)
        write(d / "cgroup", f"0::/{paths[n % len(paths)]}\n" if paths else "0::/\n")
        if paths:
            members.setdefault(paths[n % len(paths)], []).append(pid)
    # Each zone's `cgroup.procs` and `cgroup.threads` list its processes, as the kernel's do.
    for rel, zone_pids in members.items():
        for f in ("cgroup.procs", "cgroup.threads"):
            write(cg / rel / f, "".join(f"{p}\n" for p in zone_pids))
    return root


class BusyZones:
    """While open, rewrites every zone's `cpu.stat` of the tree under `root` with a higher
    `usage_usec` every 0.2 s, from a thread (its CPU is this script's, not the generator's)."""

    def __init__(self, root):
        self.files = sorted((root / "sys" / "fs" / "cgroup").rglob("cpu.stat"))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            for i, f in enumerate(self.files):
                f.write_text(f"usage_usec {n * 100000 + i}\nuser_usec {n}\nsystem_usec {n}\nnr_periods 0\n"
                             f"nr_throttled 0\nthrottled_usec 0\n")
            self.stop.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()


def cpu_ns(pid):
    """The CPU time of a running process's threads (ns, user and system: the scheduler's run
    time of each, `/proc/PID/task/TID/schedstat`), read from outside without stopping it."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread gone meanwhile
    return total


WARM = 5


def live_windows(root, seconds, binaries):
    """Runs `binaries` live at 1 Hz at the same time and returns each one's CPU over a window
    of `seconds` after WARM s (its start, first samples and exit outside it), in ms a second:
    a live sample's cost, with none of the start's variation in it."""
    return cpu_windows([start_generator(root, WARM + seconds + 5, simulate=False, binary=b) for b in binaries], seconds)


def cpu_windows(children, seconds):
    """Each of `children`'s (running generators') CPU over a window of `seconds` after WARM s,
    in ms a second; stops them."""
    time.sleep(WARM)
    before = [(cpu_ns(c.pid), time.monotonic()) for c in children]
    time.sleep(seconds)
    after = [(cpu_ns(c.pid), time.monotonic()) for c in children]
    for c in children:
        c.terminate()
    for c in children:
        c.wait()
    return [(c1 - c0) / (t1 - t0) / 1e6 for (c0, t0), (c1, t1) in zip(before, after)]


IDLE_THREADS_C = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
static void *wait_forever(void *arg) { (void)arg; for (;;) pause(); return 0; }
int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int wake = argc > 2 && atoi(argv[2]);
    for (int i = 1; i < threads; i++) { pthread_t t; if (pthread_create(&t, 0, wait_forever, 0)) return 1; }
    /* With a second argument of 1: wakes every second and works about 20 us. */
    for (volatile unsigned long x = 0; wake; x = 0) { sleep(1); for (long i = 0; i < 20000; i++) x += i; }
    for (;;) pause();
}
"""


def idle_process(base, threads, wake=False):
    """The command of a process of `threads` threads: `sleep`, or for more than one or with
    `wake` a program built here with `cc` whose threads wait in pause() (with `wake`, its main
    thread runs about 20 us every second instead)."""
    if threads <= 1 and not wake:
        return ["sleep", "3600"]
    binary = base / "idle-threads"
    if not binary.exists():
        source = base / "idle-threads.c"
        source.write_text(IDLE_THREADS_C)
        subprocess.run(["cc", "-O2", "-pthread", "-o", str(binary), str(source)], check=True)
    return [str(binary), str(threads), "1" if wake else "0"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Run by `sh` as the generator's own process before it execs the generator (same pid): the
# tree's `proc/PID` of the generator, as the kernel's `/proc` has one (its `stat`, `ns` and
# `net` the real ones, in the root cgroup, the mountinfo written for the tree), and
# `proc/self` a link to it. The generator reads each process's CPU clock only where `/proc`'s
# `self` is itself (its pids are then its own pid namespace's, as the tree's are); a tree whose
# `self` were a plain directory would have it read `stat` wherever a zone's time moved. Two
# generators started at once on one tree: the one started last has `self`, the other no clocks.
SELF_SETUP = ('d="$0/proc/$$"; mkdir "$d" && cp "$0/proc/.self/mountinfo" "$d/mountinfo" '
              '&& for f in stat schedstat ns net; do ln -s "/proc/$$/$f" "$d/$f" || exit 1; done '
              '&& printf "0::/\\n" > "$d/cgroup" && ln -sfn "$$" "$0/proc/self" && exec "$@"')


def start_generator(root, samples, simulate=True, binary=None):
    """Starts the generator for `samples` samples; its process."""
    proc = root / "proc"
    # The `proc/PID` made for generators that have ended.
    for d in proc.iterdir():
        if d.name.isdigit() and (d / "mountinfo").exists() and not os.path.exists(f"/proc/{d.name}"):
            shutil.rmtree(d)
    args = [str(binary or GENERATOR), "--source", "linux", "--linux-root", str(root), "--listen", f"tcp://127.0.0.1:{free_port()}",
            "--count", str(samples)]
    if simulate:
        args += ["--simulate-from", "2026-01-01T00:00:00Z"]
    return subprocess.Popen(["sh", "-c", SELF_SETUP, str(root)] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_generator(root, samples, simulate=True, binary=None):
    """Runs the generator and returns (user s, system s, wall s) of its whole run."""
    start = time.monotonic()
    child = start_generator(root, samples, simulate, binary)
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    return usage.ru_utime, usage.ru_stime, wall


FLOOR = REPO / "target" / "release" / "examples" / "read_floor"


def floor(a, full):
    """The floor (benches/examples/read_floor.rs): the generator's open files, listed from
    /proc/PID/fd after 12 live samples, read as the source reads them and nothing else;
    ms a sample after the first, back to back and, with --live, at 1 Hz."""
    if not FLOOR.exists():
        sys.exit(f"build it first: cargo build --release -p benches --example read_floor ({FLOOR} missing)")
    child = start_generator(full, 15, simulate=False)
    time.sleep(12)
    fd_dir = f"/proc/{child.pid}/fd"
    paths = []
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/null", "/dev/pts")):
            paths.append(target)
    child.wait()
    files = full.parent / "generator-open-files.txt"
    files.write_text("".join(p + "\n" for p in paths))

    def run(samples, live):
        args = [str(FLOOR), str(full), str(files), str(samples)] + (["--live"] if live else [])
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out = child.stdout.read()
        _, _, usage = os.wait4(child.pid, 0)
        return usage.ru_utime + usage.ru_stime, out.strip()

    modes = [("back to back", a.samples + 1, False)] + ([("live at 1 Hz", a.live, True)] if a.live else [])
    for label, samples, live in modes:
        figures = []
        for _ in range(a.runs):
            first, _ = run(1, False)
            total, out = run(samples, live)
            figures.append((total - first) / (samples - 1) * 1e3)
        print(f"floor {label}: ms a sample {' '.join(f'{x:.2f}' for x in figures)} (median {statistics.median(figures):.2f}); {out}")


def compare(a, full):
    """This build against `a.compare`, alternately (or, with --together, at the same time: on
    a VM whose speed drifts by the minute, both then see the same drift): ms a sample after
    the first (start and first sample, a run of one, taken out) back to back and, with
    --live S, ms of CPU a second over S seconds at 1 Hz after the first WARM (and, with
    --busy, the same with every zone busy)."""
    modes = [("back to back", a.samples + 1, True)] + ([("live at 1 Hz", a.live, False)] if a.live else [])
    if a.live and a.busy:
        modes.append(("live at 1 Hz, every zone busy", a.live, False))
    binaries = (("other", a.compare), ("this", GENERATOR))
    for label, samples, simulate in modes:
        figures = {"other": [], "this": []}
        for _ in range(a.runs):
            if not simulate:
                # Live: the CPU over a window after the start (ms a second), together or in turn.
                with BusyZones(full) if "busy" in label else contextlib.nullcontext():
                    if a.together:
                        got = live_windows(full, samples, [b for _, b in binaries])
                    else:
                        got = [live_windows(full, samples, [b])[0] for _, b in binaries]
                for (name, _), x in zip(binaries, got):
                    figures[name].append(x)
                continue
            if a.together:
                first = {name: sum(run_generator(full, 1, binary=binary)[:2]) for name, binary in binaries}
                children = {name: start_generator(full, samples, simulate, binary) for name, binary in binaries}
                for name, child in children.items():
                    usage = os.wait4(child.pid, 0)[2]
                    figures[name].append((usage.ru_utime + usage.ru_stime - first[name]) / (samples - 1) * 1e3)
                continue
            for name, binary in binaries:
                first = sum(run_generator(full, 1, binary=binary)[:2])
                total = sum(run_generator(full, samples, simulate, binary=binary)[:2])
                figures[name].append((total - first) / (samples - 1) * 1e3)
        ratios = [t / o for o, t in zip(figures["other"], figures["this"])]
        for name, v in figures.items():
            print(f"{label}, {name:>5}: ms a sample {' '.join(f'{x:.2f}' for x in v)} (median {statistics.median(v):.2f})")
        print(f"{label}, this / other per pair: {' '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", type=int, default=100)
    ap.add_argument("--processes", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--live", type=int, default=0, help="also run this many seconds at 1 Hz on the clock")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of each process (more than one: a small C program built with cc, whose threads "
                         "wait in pause(); 1: sleep)")
    ap.add_argument("--busy", action="store_true",
                    help="with --live: also run live while every zone's CPU time moves (each zone's cpu.stat "
                         "rewritten every 0.2 s)")
    ap.add_argument("--running", type=int, default=0, metavar="K",
                    help="K processes of each zone run about 20 us every second (the others wait): with --busy, "
                         "the source reads their stat; a zone's CPU time moving as no process of it ran, which "
                         "--busy alone shows, does not happen on a real host")
    ap.add_argument("--floor", action="store_true",
                    help="also measure the floor: the files the generator keeps open read as it reads them and "
                         "nothing else (benches/examples/read_floor.rs: no parsing, frames or sending)")
    ap.add_argument("--compare", metavar="GENERATOR",
                    help="another generator binary (an earlier build): run it and this one alternately on the same "
                         "tree, RUNS pairs, and print both and their ratio (this VM's speed varies by half within an "
                         "hour, so only alternate runs compare)")
    ap.add_argument("--together", action="store_true",
                    help="with --compare: run the two at the same time, each on a core of its own (2 or more CPUs), "
                         "instead of one after the other")
    a = ap.parse_args()
    if not GENERATOR.exists():
        sys.exit(f"build it first: cargo build --release -p generator ({GENERATOR} missing)")
    shm = pathlib.Path("/dev/shm") if os.path.isdir("/dev/shm") else None
    base = pathlib.Path(tempfile.mkdtemp(prefix="generator-overhead-", dir=shm))
    # Process n is in zone n % zones: the first K * zones are K of each zone.
    sleepers = [subprocess.Popen(idle_process(base, a.threads, n < a.running * a.zones)) for n in range(a.processes)]
    try:
        full = build_root(base / "full", a.zones, [p.pid for p in sleepers])
        host = build_root(base / "host", 0, [])
        print(f"{a.zones} zones, {a.processes} processes of {a.threads} thread(s) ({a.running} of each zone running "
              f"every second), {a.samples} samples a run, {a.runs} runs, "
              f"{os.cpu_count()} CPUs; tree under {base}")
        if a.compare:
            compare(a, full)
            return
        if a.floor:
            floor(a, full)
        results = {}
        for label, root in (("host alone", host), (f"{a.zones} zones", full)):
            per_sample = []
            for _ in range(a.runs):
                u, s, w = run_generator(root, a.samples)
                per_sample.append(((u + s) / a.samples, u / a.samples, s / a.samples))
            per_sample.sort()
            best, median = per_sample[0], per_sample[len(per_sample) // 2]
            results[label] = median
            print(f"{label:>12}: CPU per sample {median[0] * 1e3:.2f} ms (user {median[1] * 1e3:.2f}, system "
                  f"{median[2] * 1e3:.2f}; best run {best[0] * 1e3:.2f} ms) = {median[0] * 100:.3f}% of a core at 1 Hz")
        zones_only = results[f"{a.zones} zones"][0] - results["host alone"][0]
        if a.zones:
            print(f"per zone (zones' share / zones, processes included): {zones_only / a.zones * 1e6:.1f} us")
        if a.processes:
            print(f"per process (zones' share / processes): {zones_only / a.processes * 1e6:.2f} us")
        if a.live:
            u, s, w = run_generator(full, a.live, simulate=False)
            print(f"live at 1 Hz for {w:.0f} s: {(u + s) / w * 100:.3f}% of a core (user {u:.2f} s, system {s:.2f} s)")
            # The process's start and its first sample (every file opened) apart: a run of
            # one sample, the median of RUNS.
            first = sorted(sum(run_generator(full, 1)[:2]) for _ in range(a.runs))[a.runs // 2]
            rest = (u + s - first) / max(a.live - 1, 1)
            print(f"  start and first sample {first * 1e3:.1f} ms; the rest {rest * 1e3:.2f} ms a sample")
            # A live sample's cost without the start's: the CPU over a window of the run.
            windows = [live_windows(full, a.live, [GENERATOR])[0] for _ in range(a.runs)]
            print(f"live at 1 Hz, {a.live} s after the first {WARM}, {a.runs} runs: ms a second "
                  f"{' '.join(f'{x:.2f}' for x in windows)} (median {statistics.median(windows):.2f}) = "
                  f"{statistics.median(windows) / 10:.3f}% of a core")
            if a.busy:
                with BusyZones(full):
                    windows = [live_windows(full, a.live, [GENERATOR])[0] for _ in range(a.runs)]
                print(f"the same, every zone busy: ms a second {' '.join(f'{x:.2f}' for x in windows)} "
                      f"(median {statistics.median(windows):.2f}) = {statistics.median(windows) / 10:.3f}% of a core")
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

//! Each process's CPU time from the kernel's CPU clock of the process (`clock_gettime` of
//! `MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`, the clock `clock_getcpuclockid(3)` names):
//! the run time of all its threads, live and exited, in ns, one system call and no file.
//! While it reads the same, no thread of the process ran, so its `/proc/PID/stat` as last
//! read stands. About 0.4 µs a process on this project's 2-core VM, against 0.9 µs for a
//! `pread` of `/proc/PID/schedstat` (which tells of the main thread only) and 5 µs for one of
//! `/proc/PID/stat` (a C loop over 1,000 idle processes; `docs/statistics.md`, Cost).
//!
//! The clock is looked up by pid in this process's pid namespace, so it is used only where
//! the `/proc` read is that namespace's: where its `self` resolves to this process's pid
//! (not on a composed tree whose `self` is a plain directory, nor on a host's `/proc`
//! mounted into a container with a pid namespace of its own). A pid is no identity: a pid
//! reused between the listing and the clock's read gives the new process's clock, which
//! differs from the old one's as last read but for a coincidence of nanoseconds, so its
//! `stat` is read and its start time tells it is another process. This module reads
//! clocks; it keeps no state and decides nothing about rows.

use std::path::Path;

/// The CPU clocks of the processes listed in a `/proc` of this process's pid namespace.
#[derive(Debug, Clone, Copy)]
pub struct ProcessClocks(());

/// `CPUCLOCK_SCHED`: the clock of run time (the scheduler's `sum_exec_runtime`).
const CPUCLOCK_SCHED: u32 = 2;

impl ProcessClocks {
    /// The clocks, where `proc_dir/self` resolves to a directory named by this process's
    /// pid (the pids below `proc_dir` are then those the clocks are looked up by); `None`
    /// elsewhere.
    pub fn for_proc_dir(proc_dir: &Path) -> Option<Self> {
        let own = std::fs::canonicalize(proc_dir.join("self")).ok()?;
        let pid = own.file_name()?.to_str()?.parse::<u32>().ok()?;
        (pid == std::process::id()).then_some(Self(()))
    }

    /// The run time of every thread process `pid` had, in ns; `None` where there is no such
    /// process (it exited) or the kernel refused.
    pub fn cpu_ns(self, pid: u32) -> Option<u64> {
        // The kernel's MAKE_PROCESS_CPUCLOCK: the pid's complement shifted left by three bits,
        // with the clock in the low bits (what glibc's clock_getcpuclockid returns).
        let id = ((!pid) << 3 | CPUCLOCK_SCHED).cast_signed();
        read_clock(id)
    }
}

/// `clock_gettime(id)` in ns; `None` where it fails.
#[allow(unsafe_code)]
fn read_clock(id: libc::clockid_t) -> Option<u64> {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a live, writable timespec for the duration of the call; the kernel
    // writes only it and refuses an id it does not know (EINVAL).
    let rc = unsafe { libc::clock_gettime(id, &raw mut t) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u64::try_from(t.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clocks_of_this_hosts_proc_tell_this_processs_run_time_and_none_of_a_pid_without_a_process() {
        let clocks = ProcessClocks::for_proc_dir(Path::new("/proc")).expect("/proc/self is this process");
        // Spin until this process's own clock moved: it is the clock of this process.
        let before = clocks.cpu_ns(std::process::id()).expect("own clock");
        let mut after = before;
        for _ in 0..1_000_000 {
            after = clocks.cpu_ns(std::process::id()).expect("own clock");
            if after > before {
                break;
            }
        }
        assert!(after > before, "{before} -> {after}");
        // A pid beyond the kernel's largest (pid_max is at most 2^22): no process.
        assert_eq!(clocks.cpu_ns(5_000_000), None);
        // An idle child: its clock reads, and stays while it sleeps.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let a = clocks.cpu_ns(child.id());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = clocks.cpu_ns(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(a.is_some_and(|a| a > 0), "{a:?}");
        assert_eq!(a, b, "a sleeping process's clock stands");
    }

    #[test]
    fn a_proc_dir_whose_self_is_not_this_process_has_no_clocks() {
        let dir = tempfile::tempdir().unwrap();
        // A composed tree: `self` a plain directory.
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        assert!(ProcessClocks::for_proc_dir(dir.path()).is_none());
        // `self` naming another pid, and naming no pid.
        let other = dir.path().join("other");
        std::fs::create_dir_all(other.join("1")).unwrap();
        std::os::unix::fs::symlink("1", other.join("self")).unwrap();
        assert!(ProcessClocks::for_proc_dir(&other).is_none() || std::process::id() == 1);
        assert!(ProcessClocks::for_proc_dir(&dir.path().join("missing")).is_none());
        // `self` naming this process: clocks.
        let mine = dir.path().join("mine");
        std::fs::create_dir_all(mine.join(std::process::id().to_string())).unwrap();
        std::os::unix::fs::symlink(std::process::id().to_string(), mine.join("self")).unwrap();
        assert!(ProcessClocks::for_proc_dir(&mine).is_some());
    }
}

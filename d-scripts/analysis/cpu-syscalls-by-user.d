#!/usr/sbin/dtrace -qs
/*
 * cpu-syscalls-by-user.d: CPU and system calls per user and per group. Every second, per
 * zone and uid, then per zone and gid: the profile samples (4999 Hz per CPU) that landed
 * on their processes, that as a share of one CPU, and the system calls they entered; then
 * it starts counting again. uid and gid are the D built-ins (the real user and group id
 * of the process, per the Dynamic Tracing Guide); the zone is in the key because every
 * zone has its own uid 0. Rewrites the per-user part of the 2013 "per-user and per-process
 * CPU" scripts, with system calls added; cpu-by-user.d has the 10 busiest users and
 * processes.
 *
 *   ./cpu-syscalls-by-user.d
 *   dtrace -s cpu-syscalls-by-user.d
 *
 * Which samples count: those with pid != 0, i.e. on a thread of a user process, in user
 * mode or in the kernel on its behalf. That leaves out the idle thread and the kernel's
 * own threads (both belong to process 0), which have no user to charge. Not arg0/arg1:
 * in a profile probe arg0 is the kernel PC and arg1 the user PC, one of them is set in
 * every sample, and the idle thread runs in the kernel, so "arg0 != 0 || arg1 != 0"
 * keeps idle. cpu-by-user.d and cpu-load.d count the kernel's threads (t_pri).
 *
 * Units: SAMPLES are profile-4999 firings (4999 in one second = one CPU fully busy);
 * %CPU = SAMPLES * 100 / 4999, rounded down, over 100 for several CPUs; SYSCALLS are
 * syscall:::entry firings in the second. A user or group with system calls and no
 * samples shows 0 samples, and the reverse.
 *
 * Privileges: profile and syscall providers (dtrace_user) and the uid, gid, pid and
 * zonename variables (dtrace_proc), as cpu-by-user.d; without more, only processes the
 * user may already control are seen, and in a non-global zone only that zone's. Root in
 * the global zone (dtrace_kernel) sees every zone. While it runs, every system call of
 * every process fires a probe: a small cost on busy hosts.
 */
#pragma D option quiet

profile-4999
/pid != 0/
{
	@cpu_uid[zonename, uid] = count();
	@pct_uid[zonename, uid] = sum(100);
	@cpu_gid[zonename, gid] = count();
	@pct_gid[zonename, gid] = sum(100);
}

syscall:::entry
{
	@sys_uid[zonename, uid] = count();
	@sys_gid[zonename, gid] = count();
}

tick-1s
{
	printf("\n%Y\n", walltimestamp);
	normalize(@pct_uid, 4999);
	normalize(@pct_gid, 4999);
	printf("%-40s %8s %10s %6s %10s\n", "ZONE", "UID", "SAMPLES", "%CPU", "SYSCALLS");
	printa("%-40s %8d %@10d %@5d%% %@10d\n", @cpu_uid, @pct_uid, @sys_uid);
	printf("\n%-40s %8s %10s %6s %10s\n", "ZONE", "GID", "SAMPLES", "%CPU", "SYSCALLS");
	printa("%-40s %8d %@10d %@5d%% %@10d\n", @cpu_gid, @pct_gid, @sys_gid);
	trunc(@cpu_uid);
	trunc(@pct_uid);
	trunc(@sys_uid);
	trunc(@cpu_gid);
	trunc(@pct_gid);
	trunc(@sys_gid);
}

#!/usr/sbin/dtrace -qs
/*
 * pid-cpu-per-core.d: where one process runs. Every second, the profile samples (4999 Hz
 * per CPU) that landed on a thread of process PID, per CPU, with their share of that CPU,
 * and the total; then it starts counting again. Samples taken while the process runs in
 * the kernel on its own behalf (system calls, faults) count; the idle thread and kernel
 * threads never match (they belong to process 0). Only CPUs that took at least one sample
 * are listed; a second without any prints the header alone. Rewrites, for one process,
 * the per-process CPU part of the 2013 "per-user and per-process CPU" scripts;
 * cpu-by-user.d lists the busiest processes instead.
 *
 *   ./pid-cpu-per-core.d PID
 *   dtrace -s pid-cpu-per-core.d PID
 *
 * Units: SAMPLES are profile-4999 firings, so 4999 in one second is one CPU fully busy;
 * %CPU = SAMPLES * 100 / 4999, rounded down, and TOTAL can exceed 100 (several CPUs).
 * The one-second window is the tick-1s probe's, so a share is approximate.
 *
 * Privileges: profile and syscall providers (dtrace_user) and the pid and cpu variables
 * (dtrace_proc), as cpu-by-user.d; without more, only processes the user may already
 * control are seen, and in a non-global zone only that zone's. Root in the global zone
 * (dtrace_kernel) sees every process. Stops when the process calls exit(2) (not when a
 * signal kills it) or on Ctrl-C.
 */
#pragma D option quiet

dtrace:::BEGIN
{
	printf("sampling pid %d at 4999 Hz per CPU, every second; Ctrl-C to stop\n", $1);
}

profile-4999
/pid == $1/
{
	@samples[cpu] = count();
	@share[cpu] = sum(100);
	@total = count();
	@total_share = sum(100);
}

syscall::rexit:entry
/pid == $1/
{
	exiting = 1;
}

tick-1s
{
	printf("\n%Y  pid %d\n", walltimestamp, $1);
	printf("%5s %10s %6s\n", "CPU", "SAMPLES", "%CPU");
	normalize(@share, 4999);
	normalize(@total_share, 4999);
	printa("%5d %@10d %@5d%%\n", @samples, @share);
	printa("TOTAL %@10d %@5d%%\n", @total, @total_share);
	trunc(@samples);
	trunc(@share);
	trunc(@total);
	trunc(@total_share);
}

tick-1s
/exiting/
{
	printf("pid %d called exit(2)\n", $1);
	exit(0);
}

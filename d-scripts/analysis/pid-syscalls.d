#!/usr/sbin/dtrace -qs
/*
 * pid-syscalls.d: the system calls of one process. Every interval (default 1 s; second
 * argument in seconds), per call made by process PID and returned in the interval: how
 * many, their total, mean, shortest and longest latency; then it starts counting again.
 * Rewrites, for one process, the 2013 syscall latency script (syscalls.d has the
 * per-zone view and histograms).
 *
 *   ./pid-syscalls.d PID          # every second
 *   ./pid-syscalls.d PID 10       # every 10 seconds
 *   dtrace -s pid-syscalls.d PID
 *
 * Units: nanoseconds (TOTAL_NS, AVG_NS, MIN_NS, MAX_NS) from entry to return of one call,
 * by the timestamp variable: elapsed time, including time the thread slept in the call
 * (a read(2) that waits for input is long), not CPU time. A call that does not return
 * (exit(2), or one still blocked) is not counted; one that started before the script is
 * not counted either. AVG_NS is rounded down.
 *
 * Privileges: the syscall provider (dtrace_user) and the pid variable (dtrace_proc), as
 * cpu-by-user.d; without more, only processes the user may already control are seen, and
 * in a non-global zone only that zone's. Root in the global zone (dtrace_kernel) sees
 * every process. Stops when the process calls exit(2) (not when a signal kills it) or on
 * Ctrl-C. While it runs, every system call of every process fires a probe (the predicate
 * then rejects the other processes'): a small cost on busy hosts.
 */
#pragma D option quiet
#pragma D option defaultargs

dtrace:::BEGIN
/$1 == 0/
{
	printf("usage: pid-syscalls.d PID [SECONDS]\n");
	exit(1);
}

dtrace:::BEGIN
/$1 != 0/
{
	interval = $2 > 0 ? $2 : 1;
	remaining = interval;
	printf("tracing the system calls of pid %d, every %d s; Ctrl-C to stop\n", $1, interval);
}

syscall:::entry
/pid == $1/
{
	self->ts = timestamp;
}

syscall:::return
/self->ts/
{
	this->ns = timestamp - self->ts;
	@calls[probefunc] = count();
	@total[probefunc] = sum(this->ns);
	@mean[probefunc] = avg(this->ns);
	@shortest[probefunc] = min(this->ns);
	@longest[probefunc] = max(this->ns);
	self->ts = 0;
}

syscall::rexit:entry
/pid == $1/
{
	exiting = 1;
}

tick-1s
{
	remaining--;
}

tick-1s
/remaining == 0 || exiting/
{
	printf("\n%Y  pid %d  (%d s)\n", walltimestamp, $1, interval);
	printf("%-24s %10s %16s %12s %12s %14s\n",
	    "SYSCALL", "CALLS", "TOTAL_NS", "AVG_NS", "MIN_NS", "MAX_NS");
	printa("%-24s %@10d %@16d %@12d %@12d %@14d\n",
	    @calls, @total, @mean, @shortest, @longest);
	trunc(@calls);
	trunc(@total);
	trunc(@mean);
	trunc(@shortest);
	trunc(@longest);
	remaining = interval;
}

tick-1s
/exiting/
{
	printf("pid %d called exit(2)\n", $1);
	exit(0);
}

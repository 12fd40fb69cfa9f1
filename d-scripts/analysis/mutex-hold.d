#!/usr/sbin/dtrace -qs
/*
 * mutex-hold.d: kernel adaptive mutex hold times, with the stacks that held them longest.
 * Runs for 10 seconds (first argument: seconds), then prints the hold-time distribution per
 * acquiring stack for the 10 stacks with the most total hold time. Rewrites the 2013 mutex
 * script. For user-level locks of one process, use plockstat(1M) -H -s 8 -p PID.
 *
 *   ./mutex-hold.d       # 10 seconds
 *   ./mutex-hold.d 30
 *
 * Global zone only (lockstat provider: dtrace_kernel). Costly on busy hosts: every mutex
 * acquisition fires a probe while it runs.
 */
#pragma D option defaultargs
#pragma D option dynvarsize=16m

dtrace:::BEGIN
{
	stop_at = timestamp + ($1 > 0 ? $1 : 10) * 1000000000;
	printf("tracing adaptive mutex hold times...\n");
}

lockstat:::adaptive-acquire
{
	self->held[arg0] = timestamp;
}

lockstat:::adaptive-release
/self->held[arg0]/
{
	this->ns = timestamp - self->held[arg0];
	@hold[stack(8)] = quantize(this->ns);
	@total[stack(8)] = sum(this->ns);
	self->held[arg0] = 0;
}

profile-10hz
/timestamp >= stop_at/
{
	exit(0);
}

dtrace:::END
{
	trunc(@total, 10);
	printf("\ntotal hold time (ns) by stack, top 10:\n");
	printa(@total);
	printf("\nhold-time distribution (ns) by stack:\n");
	printa(@hold);
}

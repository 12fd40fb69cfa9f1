#!/usr/sbin/dtrace -qs
/*
 * syscalls.d: system call statistics. Every 10 seconds, per zone and call: how many, how
 * many failed (by errno), and the latency distribution (power-of-two nanoseconds) of the
 * 5 most frequent calls. Rewrites the 2013 syscall latency script.
 *
 *   ./syscalls.d                 # every zone this zone can see
 *   ./syscalls.d db              # one zone
 */
#pragma D option defaultargs

syscall:::entry
/$$1 == "" || zonename == $$1/
{
	self->start = timestamp;
}

syscall:::return
/self->start/
{
	@calls[zonename, probefunc] = count();
	@latency[probefunc] = quantize(timestamp - self->start);
	self->start = 0;
}

syscall:::return
/errno != 0 && ($$1 == "" || zonename == $$1)/
{
	@errors[zonename, probefunc, errno] = count();
}

tick-10s
{
	printf("%Y\n%-40s %-24s %10s\n", walltimestamp, "ZONE", "SYSCALL", "CALLS");
	trunc(@calls, 20);
	printa("%-40s %-24s %@10d\n", @calls);
	printf("\n%-40s %-24s %6s %10s\n", "ZONE", "SYSCALL", "ERRNO", "COUNT");
	printa("%-40s %-24s %6d %@10d\n", @errors);
	printf("\nlatency (ns), 5 most frequent calls:\n");
	trunc(@latency, 5);
	printa(@latency);
	trunc(@calls);
	trunc(@errors);
	trunc(@latency);
}

#!/usr/sbin/dtrace -qs
/*
 * cpu-load.d: how load is spread over the CPUs. Every interval (default 1 s; first
 * argument in seconds), prints each CPU's busy percentage, its busiest zone, and a
 * histogram of the run-queue length it saw. Rewrites the 2013 "CPU load distribution"
 * script.
 *
 *   ./cpu-load.d        # every second
 *   ./cpu-load.d 5      # every 5 seconds
 *
 * Needs the global zone (it reads the dispatcher queue: dtrace_kernel).
 */
#pragma D option defaultargs

dtrace:::BEGIN
{
	interval = $1 > 0 ? $1 : 1;
	samples = 0;
	remaining = interval;
}

profile-997
/curthread->t_pri != -1/
{
	@busy[cpu] = count();
	@zone[cpu, zonename] = count();
}

profile-997
{
	@runq[cpu] = lquantize(curthread->t_cpu->cpu_disp->disp_nrunnable, 0, 16, 1);
}

tick-1s
{
	samples += 997;
	remaining--;
}

tick-1s
/remaining == 0/
{
	printf("%Y  (%d s)\n", walltimestamp, interval);
	printf("%5s %8s\n", "CPU", "BUSY%");
	normalize(@busy, samples / 100);
	printa("%5d %@7d%%\n", @busy);
	printf("\n%5s %-40s %s\n", "CPU", "ZONE", "SAMPLES");
	printa("%5d %-40s %@d\n", @zone);
	printf("\nrun-queue length per CPU:\n");
	printa(@runq);
	trunc(@busy);
	trunc(@zone);
	trunc(@runq);
	samples = 0;
	remaining = interval;
}

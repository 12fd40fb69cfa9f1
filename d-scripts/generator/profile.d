/*
 * profile.d: where the CPUs' time goes, per zone. Part of the generator (embedded at build
 * time); the generator snapshots and clears these aggregations once per interval.
 *
 * profile-4999 fires on every CPU 4999 times a second. Samples that land on the idle thread
 * (priority -1) are not counted, so a core's count over one second is its busy fraction in
 * units of 1/4999 (the 2013 convention: usage / ticks).
 *
 *   @cpu[zonename, cpu]                    -> Cpu { core, usage }
 *   @process[zonename, pid, execname, cpu] -> Process { pid, execname, usage, cpu }
 */
profile-4999
/curthread->t_pri != -1/
{
	@cpu[zonename, cpu] = count();
	@process[zonename, pid, execname, cpu] = count();
}

#!/usr/sbin/dtrace -qs
/*
 * cpu-by-user.d: who uses the CPUs. Every 5 seconds, the 10 busiest users and the 10 busiest
 * processes (zone, uid, pid, execname) by profile samples at 997 Hz, idle excluded.
 * Rewrites the 2013 per-user and per-process CPU scripts.
 *
 *   ./cpu-by-user.d
 *
 * In a non-global zone it sees that zone only (dtrace_proc, dtrace_user).
 */
profile-997
/curthread->t_pri != -1 && pid != 0/
{
	@users[zonename, uid] = count();
	@procs[zonename, uid, pid, execname] = count();
}

profile-997
/curthread->t_pri != -1 && pid == 0/
{
	@kernel = count();
}

tick-5s
{
	printf("%Y\n", walltimestamp);
	trunc(@users, 10);
	trunc(@procs, 10);
	printf("%-40s %8s %10s\n", "ZONE", "UID", "SAMPLES");
	printa("%-40s %8d %@10d\n", @users);
	printf("\n%-40s %8s %8s %-16s %10s\n", "ZONE", "UID", "PID", "EXECNAME", "SAMPLES");
	printa("%-40s %8d %8d %-16s %@10d\n", @procs);
	printa("\nkernel (pid 0) samples: %@d\n\n", @kernel);
	trunc(@users);
	trunc(@procs);
	trunc(@kernel);
}

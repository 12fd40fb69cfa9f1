/*
 * runqueue.d: dispatcher queue length per CPU, sampled 4999 times a second (global zone only:
 * it reads kernel memory, which needs the dtrace_kernel privilege).
 *
 *   @runqueue[cpu, length] -> Cpuqueue { core, length, amount = samples seen at that length }
 */
profile-4999
{
	@runqueue[cpu, curthread->t_cpu->cpu_disp->disp_nrunnable] = count();
}

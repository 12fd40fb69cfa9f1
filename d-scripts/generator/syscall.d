/*
 * syscall.d: system call latency per zone and call, as a power-of-two histogram in
 * nanoseconds (the 2013 `callfreq` field: one row per non-empty bucket).
 *
 *   @syscall_latency[zonename, probefunc] -> CallFreq { name, time = bucket lower bound, value }
 */
syscall:::entry
{
	self->syscall_start = timestamp;
}

syscall:::return
/self->syscall_start/
{
	@syscall_latency[zonename, probefunc] = quantize(timestamp - self->syscall_start);
	self->syscall_start = 0;
}

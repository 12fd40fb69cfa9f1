/*
 * ticks.d: sampling health. tick-4999 fires on one CPU 4999 times a second; the count seen
 * in an interval is the frame's `ticks` (4999 for a full second). Fewer means DTrace dropped
 * samples or the interval was short, and every usage of that frame is relative to it.
 *
 *   @ticks -> Packet.ticks
 */
tick-4999
{
	@ticks = count();
}

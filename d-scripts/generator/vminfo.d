/*
 * vminfo.d: memory saturation per zone, counted in the context of the faulting thread.
 *
 *   @vminfo[zonename, "maj_fault"] -> Mem.maj_fault   (major faults: the page came from disk)
 *   @vminfo[zonename, "as_fault"]  -> Mem.as_fault    (faults handled by the address space)
 *   @vminfo[zonename, "pgin"]      -> Mem.pgin        (page-in operations)
 */
vminfo:::maj_fault
{
	@vminfo[zonename, "maj_fault"] = count();
}

vminfo:::as_fault
{
	@vminfo[zonename, "as_fault"] = count();
}

vminfo:::pgin
{
	@vminfo[zonename, "pgin"] = count();
}

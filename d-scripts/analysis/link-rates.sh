#!/bin/sh
# link-rates.sh: per-link network rates from the link kstats, with the zone each link
# belongs to (SmartOS `zonename` statistic; "-" where the kstat has none). Rewrites the 2013
# network-counter script. Prints one table per interval: bytes/s, packets/s and errors/s in
# and out, from the 64-bit counters.
#
#   ./link-rates.sh            # every second, until interrupted
#   ./link-rates.sh 5 12       # every 5 seconds, 12 times
#
# Runs in any zone (a non-global zone sees its own links). KSTAT=... overrides the kstat(1M)
# command (the tests point it at composed output).
interval=${1:-1}
count=${2:-}
# illumos' /usr/bin/awk is the old awk without functions: prefer nawk.
awk=$(command -v nawk || command -v awk)
${KSTAT:-kstat} -p -m link -s '/^(rbytes64|obytes64|ipackets64|opackets64|ierrors|oerrors|zonename)$/' \
    -T u "$interval" $count | "$awk" -F '\t' -v interval="$interval" '
  function flush(   i, l) {
    if (!have) return
    if (seen_before) {
      printf "%-12s %-40s %12s %12s %10s %10s %7s %7s\n", "TIME", "LINK (ZONE)", "RBYTES/S", "OBYTES/S", "IPKTS/S", "OPKTS/S", "IERR/S", "OERR/S"
      for (i = 1; i <= nlinks; i++) {
        l = order[i]
        if (!(l in prev_rbytes) || !(l in cur_rbytes)) continue
        printf "%-12s %-40s %12.0f %12.0f %10.0f %10.0f %7.1f %7.1f\n", stamp, l " (" (l in zone ? zone[l] : "-") ")",
          (cur_rbytes[l] - prev_rbytes[l]) / interval, (cur_obytes[l] - prev_obytes[l]) / interval,
          (cur_ipkts[l] - prev_ipkts[l]) / interval, (cur_opkts[l] - prev_opkts[l]) / interval,
          (cur_ierr[l] - prev_ierr[l]) / interval, (cur_oerr[l] - prev_oerr[l]) / interval
      }
      printf "\n"
    }
    for (l in cur_rbytes) {
      prev_rbytes[l] = cur_rbytes[l]; prev_obytes[l] = cur_obytes[l]
      prev_ipkts[l] = cur_ipkts[l]; prev_opkts[l] = cur_opkts[l]
      prev_ierr[l] = cur_ierr[l]; prev_oerr[l] = cur_oerr[l]
    }
    seen_before = 1; have = 0
  }
  # "-T u" prints the time (seconds since the epoch) on its own line before each snapshot.
  /^[0-9]+$/ { flush(); stamp = $1; next }
  index($1, ":") {
    n = split($1, key, ":"); link = key[3]; stat = key[4]; value = $2
    if (!(link in known)) { known[link] = 1; order[++nlinks] = link }
    if (stat == "zonename") { zone[link] = value; next }
    have = 1
    if (stat == "rbytes64") cur_rbytes[link] = value
    else if (stat == "obytes64") cur_obytes[link] = value
    else if (stat == "ipackets64") cur_ipkts[link] = value
    else if (stat == "opackets64") cur_opkts[link] = value
    else if (stat == "ierrors") cur_ierr[link] = value
    else if (stat == "oerrors") cur_oerr[link] = value
  }
  END { flush() }
'

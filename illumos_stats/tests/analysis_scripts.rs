//! The ad-hoc analysis scripts of `d-scripts/analysis/` that can run off illumos: the link
//! rate script over `kstat -p -T u` output (a stand-in `kstat` on `KSTAT`). The D scripts
//! need a DTrace host and are not run here.
#![allow(unused_crate_dependencies)]

use std::path::PathBuf;
use std::process::Command;

/// Two intervals of `kstat -p -T u` output for two links, composed by hand in the format
/// kstat(1M) prints (SmartOS `link` kstat names, the `zonename` statistic on one link only);
/// not recorded on a host.
const COMPOSED: &str = "1764000000
link:0:ixgbe0:ierrors\t0
link:0:ixgbe0:ipackets64\t1000
link:0:ixgbe0:oerrors\t0
link:0:ixgbe0:opackets64\t2000
link:0:ixgbe0:obytes64\t500000
link:0:ixgbe0:rbytes64\t100000
link:0:ixgbe0:zonename\tglobal
link:0:z3_net0:ierrors\t1
link:0:z3_net0:ipackets64\t10
link:0:z3_net0:oerrors\t0
link:0:z3_net0:opackets64\t20
link:0:z3_net0:obytes64\t5000
link:0:z3_net0:rbytes64\t1000

1764000002
link:0:ixgbe0:ierrors\t0
link:0:ixgbe0:ipackets64\t1200
link:0:ixgbe0:oerrors\t0
link:0:ixgbe0:opackets64\t2600
link:0:ixgbe0:obytes64\t900000
link:0:ixgbe0:rbytes64\t300000
link:0:ixgbe0:zonename\tglobal
link:0:z3_net0:ierrors\t5
link:0:z3_net0:ipackets64\t30
link:0:z3_net0:oerrors\t0
link:0:z3_net0:opackets64\t20
link:0:z3_net0:obytes64\t5000
link:0:z3_net0:rbytes64\t3000
";

#[test]
fn link_rates_from_composed_kstat_output() {
    let dir = tempfile::tempdir().unwrap();
    let composed = dir.path().join("composed.txt");
    std::fs::write(&composed, COMPOSED).unwrap();
    let fake = dir.path().join("kstat");
    std::fs::write(&fake, format!("#!/bin/sh\ncat '{}'\n", composed.display())).unwrap();
    let chmod = Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    assert!(chmod.success());

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../d-scripts/analysis/link-rates.sh");
    let out = Command::new("sh").arg(&script).args(["2", "2"]).env("KSTAT", &fake).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> =
        text.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().collect()).collect();
    // Per second over the 2 s interval; the zone comes from the zonename statistic, "-" when
    // the kstat has none.
    assert_eq!(
        rows,
        [
            vec!["1764000002", "ixgbe0", "(global)", "100000", "200000", "100", "300", "0.0", "0.0"],
            vec!["1764000002", "z3_net0", "(-)", "1000", "0", "10", "0", "2.0", "0.0"],
        ],
        "{text}"
    );
}

//! A synthetic source: N zones x C cores x P processes with believable counters and gauges.
//!
//! Deterministic given its seed and the sample times (a hand-written SplitMix64 rather than
//! `rand`, whose generators may change between versions: a seed must give the same frames
//! forever, since tests and benchmarks compare against it). Zone 0 is `global` and carries
//! the global-only fields (host memory pages, run queue, zone list).

use frame_proto::Packet;
use frame_proto::packet::{CallFreq, Cpu, Cpuqueue, Disk, Mem, Net, Process};

use crate::GeneratorError;
use crate::source::{StatSource, TICKS_PER_SECOND};

/// SplitMix64: a tiny, fixed, well-known generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Shape of the synthetic host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticShape {
    /// Zones, including `global`.
    pub zones: usize,
    /// Cores per zone.
    pub cores: usize,
    /// Busiest processes reported per zone.
    pub processes: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for SyntheticShape {
    fn default() -> Self {
        Self { zones: 10, cores: 16, processes: 20, seed: 1 }
    }
}

#[derive(Debug, Clone)]
struct ZoneState {
    name: String,
    rss: u64,
    net: [(u64, u64, u64, u64); 2],
    disk: [(u64, u64, u32, u32, u64, u64); 2],
    pids: Vec<u32>,
}

const EXECNAMES: [&str; 8] = ["java", "node", "postgres", "nginx", "redis-server", "python3", "sshd", "cron"];

/// The synthetic source.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    shape: SyntheticShape,
    rng: SplitMix64,
    zones: Vec<ZoneState>,
}

impl SyntheticSource {
    /// A source of the given shape.
    pub fn new(shape: SyntheticShape) -> Self {
        let mut rng = SplitMix64(shape.seed);
        let zones = (0..shape.zones.max(1))
            .map(|i| ZoneState {
                name: if i == 0 { "global".to_owned() } else { format!("zone{i:02}") },
                rss: (1 << 30) + rng.below(1 << 30),
                net: [(0, 0, 0, 0); 2],
                disk: [(0, 0, 0, 0, 0, 0); 2],
                pids: (0..shape.processes).map(|p| 1000 + (i * 100 + p) as u32).collect(),
            })
            .collect();
        Self { shape, rng, zones }
    }

    /// The zone names, `global` first.
    pub fn zone_names(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.name.clone()).collect()
    }

    fn zone_frame(&mut self, z: usize, time_us: i64, interval_us: i64, zone_list: &[String]) -> Packet {
        let rng = &mut self.rng;
        let shape = self.shape;
        let ticks = (TICKS_PER_SECOND as i64 * interval_us / 1_000_000).clamp(0, u32::MAX as i64) as u32;
        let zs = &mut self.zones[z];
        let busy = rng.below(ticks as u64 + 1) as u32;
        let cpu = (0..shape.cores)
            .map(|c| Cpu { core: Some(c as u32), usage: Some((busy / 2 + rng.below(ticks as u64 / 2 + 1) as u32).min(ticks)) })
            .collect();
        zs.rss = zs.rss.saturating_add(rng.below(1 << 20)).saturating_sub(rng.below(1 << 20));
        let global = z == 0;
        let mem = vec![Mem {
            rss: Some(zs.rss),
            physcap: Some(8 << 30),
            swap: Some(zs.rss / 4),
            swapcap: Some(16 << 30),
            physmem: global.then_some(4 << 20),
            pp_kernel: global.then(|| 700_000 + rng.below(1000)),
            freemem: global.then(|| 2_000_000 + rng.below(100_000)),
            nalloc_calls: global.then(|| 1_000_000 + rng.below(1000)),
            nfree_calls: global.then(|| 999_000 + rng.below(1000)),
            maj_fault: Some(rng.below(4) as u32),
            as_fault: Some(rng.below(2000) as u32),
            pgin: Some(rng.below(8) as u32),
        }];
        let net = zs
            .net
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                c.0 += rng.below(1 << 16);
                c.1 += rng.below(1 << 17);
                c.2 += rng.below(100);
                c.3 += rng.below(150);
                Net {
                    instance: Some(format!("net{i}")),
                    obytes64: Some(c.0),
                    rbytes64: Some(c.1),
                    opackets: Some(c.2),
                    ipackets: Some(c.3),
                    oerrors: Some(0),
                    ierrors: Some(0),
                }
            })
            .collect();
        let disk = zs
            .disk
            .iter_mut()
            .enumerate()
            .map(|(i, d)| {
                let r = rng.below(50) as u32;
                let w = rng.below(80) as u32;
                d.0 += r as u64 * 4096;
                d.1 += w as u64 * 4096;
                d.2 = d.2.wrapping_add(r);
                d.3 = d.3.wrapping_add(w);
                d.4 += r as u64 * 100_000;
                d.5 += w as u64 * 150_000;
                Disk {
                    instance: format!("sd{i}"),
                    nread: Some(d.0),
                    nwritten: Some(d.1),
                    reads: Some(d.2),
                    writes: Some(d.3),
                    rtime: Some(d.4),
                    wtime: Some(d.5),
                    rlentime: Some(d.4 * 2),
                    wlentime: Some(d.5 * 2),
                    harderror: Some(0),
                    softerror: Some(0),
                    tranerror: Some(0),
                }
            })
            .collect();
        // Now and then a process exits and another takes its place.
        if !zs.pids.is_empty() && rng.below(10) == 0 {
            let i = rng.below(zs.pids.len() as u64) as usize;
            zs.pids[i] += 10_000;
        }
        let process = zs
            .pids
            .iter()
            .map(|&pid| Process {
                pid: Some(pid),
                execname: Some(EXECNAMES[pid as usize % EXECNAMES.len()].to_owned()),
                usage: Some(rng.below(ticks as u64 / 4 + 1) as u32),
                cpu: Some(rng.below(shape.cores.max(1) as u64) as u32),
            })
            .collect();
        let callfreq = (10..18)
            .map(|b| CallFreq { name: "syscall".to_owned(), time: Some(1 << b), value: Some(rng.below(1000) as u32) })
            .collect();
        let cpuqueue = if global {
            (0..shape.cores)
                .map(|c| Cpuqueue {
                    core: Some(c as u32),
                    length: Some(rng.below(3) as u32),
                    amount: Some(rng.below(100) as u32),
                })
                .collect()
        } else {
            Vec::new()
        };
        Packet {
            name: zs.name.clone(),
            time: (time_us.max(0) / 1_000_000) as u64,
            ticks: Some(ticks),
            threads: Some(200 + rng.below(200) as u32),
            processes: Some(40 + rng.below(20) as u32),
            cpu,
            mem,
            net,
            disk,
            process,
            callfreq,
            zonename: if global { zone_list.to_vec() } else { Vec::new() },
            cpuqueue,
            time_us: Some(time_us.max(0) as u64),
            ..Default::default()
        }
    }
}

impl StatSource for SyntheticSource {
    fn name(&self) -> &'static str {
        "synthetic"
    }

    fn sample(&mut self, time_us: i64, interval_us: i64) -> Result<Vec<Packet>, GeneratorError> {
        let names = self.zone_names();
        Ok((0..self.zones.len()).map(|z| self.zone_frame(z, time_us, interval_us, &names)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_frames() {
        let shape = SyntheticShape { zones: 3, cores: 4, processes: 5, seed: 42 };
        let mut a = SyntheticSource::new(shape);
        let mut b = SyntheticSource::new(shape);
        for s in 0..5 {
            let t = 1_764_000_000_000_000 + s * 1_000_000;
            assert_eq!(a.sample(t, 1_000_000).unwrap(), b.sample(t, 1_000_000).unwrap());
        }
        let mut c = SyntheticSource::new(SyntheticShape { seed: 43, ..shape });
        assert_ne!(a.sample(0, 1_000_000).unwrap(), c.sample(0, 1_000_000).unwrap());
    }

    #[test]
    fn shape_and_global_only_fields() {
        let mut s = SyntheticSource::new(SyntheticShape { zones: 3, cores: 4, processes: 5, seed: 1 });
        let frames = s.sample(1_764_000_000_500_000, 1_000_000).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].name, "global");
        assert_eq!(frames[0].time, 1_764_000_000);
        assert_eq!(frames[0].zonename.len(), 3);
        assert_eq!(frames[0].cpuqueue.len(), 4);
        assert!(frames[1].mem[0].physmem.is_none() && frames[1].cpuqueue.is_empty());
        for f in &frames {
            assert_eq!(f.cpu.len(), 4);
            assert_eq!(f.process.len(), 5);
            assert!(f.cpu.iter().all(|c| c.usage <= f.ticks));
        }
    }
}

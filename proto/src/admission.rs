//! What the archiver accepts: the written rules that turn untrusted bytes from a socket into
//! a frame worth storing, and the per-sender sequence tracking that makes loss visible.
//!
//! Rules (also in `docs/operations.md`):
//! - Empty, oversized (`--max-frame-bytes`, default 4 MiB) or undecodable frames are
//!   rejected.
//! - The zone name must be 1..=4,096 bytes (a Kubernetes container's cgroup path runs to
//!   about 190). Any character is allowed (`..`, `/`, NUL, control characters): names are
//!   data, escaped on the way to a path, and a long one gets a bounded directory name.
//! - The sample time must lie between 2000-01-01 and one day after the archiver's clock.
//! - At most 4,096 cores, net links, disks or run-queue entries, 10,000 processes or zone
//!   names and 1,024 latency buckets per frame; at most 4,096 `io`, `link` and `filesystem`
//!   entries, 16 `pressure` entries and one `cpu_time`, `memory`, `system` and `zone_info`
//!   entry; a frame over any limit is rejected whole.
//! - Entries of a zone list (field 12) are zone names: longer than 4,096 bytes, they are cut
//!   to 4,096 at a character boundary, and so are mount points and cgroup paths. Other
//!   strings (host, link, disk, process and bucket names, resources, kinds, ids) longer than
//!   256 bytes are cut to 256 bytes at a character boundary.
//! - The host is the frame's `host` field; a frame without one (2013 generators) gets the
//!   host part of the endpoint it came from.
//!
//! Must not do I/O.

use std::collections::HashMap;

use crate::{FrameDecoder, Packet};

/// Why a frame was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// Not a decodable `PBMSG.Packet` (includes empty frames).
    Undecodable,
    /// Larger than the size limit.
    TooLarge,
    /// Empty or over-long (more than [`MAX_ZONE_NAME`] bytes) zone name.
    BadZoneName,
    /// Sample time before 2000 or more than a day ahead.
    TimeOutOfRange,
    /// Too many repeated entries.
    TooManyEntries,
}

impl Rejection {
    /// A short name for logs and the status file.
    pub fn name(self) -> &'static str {
        match self {
            Rejection::Undecodable => "undecodable",
            Rejection::TooLarge => "too_large",
            Rejection::BadZoneName => "bad_zone_name",
            Rejection::TimeOutOfRange => "time_out_of_range",
            Rejection::TooManyEntries => "too_many_entries",
        }
    }
}

/// Longest zone name accepted (and zone list entry kept whole), in bytes.
pub const MAX_ZONE_NAME: usize = 4096;
/// Longest other string kept, in bytes.
pub const MAX_STRING: usize = 256;
const MIN_TIME_US: i64 = 946_684_800_000_000; // 2000-01-01T00:00:00Z
const MAX_AHEAD_US: i64 = 86_400_000_000;

/// The admission rules, with their one tunable.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    decoder: FrameDecoder,
}

impl Admission {
    /// Rules with a frame size limit of `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { decoder: FrameDecoder::with_max_len(max_frame_bytes) }
    }

    /// Decodes and checks one frame received from `endpoint` at `now_us`; returns the frame
    /// (strings clamped, host filled in) or why it was refused.
    pub fn admit(&self, bytes: &[u8], endpoint_host: &str, now_us: i64) -> Result<Packet, Rejection> {
        let mut p = self.decoder.decode(bytes).map_err(|e| match e {
            crate::DecodeError::TooLarge { .. } => Rejection::TooLarge,
            _ => Rejection::Undecodable,
        })?;
        if p.name.is_empty() || p.name.len() > MAX_ZONE_NAME {
            return Err(Rejection::BadZoneName);
        }
        let t = p.sample_time_us();
        if !(MIN_TIME_US..=now_us.saturating_add(MAX_AHEAD_US)).contains(&t) {
            return Err(Rejection::TimeOutOfRange);
        }
        if p.cpu.len() > 4096
            || p.net.len() > 4096
            || p.disk.len() > 4096
            || p.cpuqueue.len() > 4096
            || p.process.len() > 10_000
            || p.zonename.len() > 10_000
            || p.callfreq.len() > 1024
            || p.cpu_time.len() > 1
            || p.memory.len() > 1
            || p.system.len() > 1
            || p.zone_info.len() > 1
            || p.pressure.len() > 16
            || p.io.len() > 4096
            || p.link.len() > 4096
            || p.filesystem.len() > 4096
        {
            return Err(Rejection::TooManyEntries);
        }
        match &mut p.host {
            Some(h) if !h.is_empty() => clamp(h),
            _ => {
                let mut h = endpoint_host.to_owned();
                clamp(&mut h);
                p.host = Some(h);
            }
        }
        p.net.iter_mut().filter_map(|n| n.instance.as_mut()).for_each(clamp);
        p.disk.iter_mut().for_each(|d| clamp(&mut d.instance));
        p.process.iter_mut().filter_map(|x| x.execname.as_mut()).for_each(clamp);
        p.callfreq.iter_mut().for_each(|c| clamp(&mut c.name));
        p.zonename.iter_mut().for_each(|z| clamp_to(z, MAX_ZONE_NAME));
        p.pressure.iter_mut().for_each(|x| clamp(&mut x.resource));
        p.io.iter_mut().for_each(|x| clamp(&mut x.instance));
        p.link.iter_mut().for_each(|x| clamp(&mut x.instance));
        for f in &mut p.filesystem {
            clamp_to(&mut f.mountpoint, MAX_ZONE_NAME);
            f.device.iter_mut().chain(f.fstype.iter_mut()).for_each(clamp);
        }
        for z in &mut p.zone_info {
            z.cgroup_path.iter_mut().for_each(|c| clamp_to(c, MAX_ZONE_NAME));
            z.kind.iter_mut().chain(z.container_id.iter_mut()).chain(z.pod_uid.iter_mut()).for_each(clamp);
        }
        Ok(p)
    }
}

fn clamp(s: &mut String) {
    clamp_to(s, MAX_STRING);
}

fn clamp_to(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// The host part of a ZeroMQ endpoint (`tcp://10.0.0.5:7211` -> `10.0.0.5`).
pub fn endpoint_host(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let rest = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    rest.trim_start_matches('[').trim_end_matches(']')
}

/// What the archiver knows of one generator run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderState {
    /// The run currently seen.
    pub run_id: u64,
    /// The next sequence number expected.
    pub next_seq: u64,
    /// Frames accepted from this host (all runs).
    pub frames: u64,
    /// Frames that never arrived (sum of gaps in the sequence).
    pub missing: u64,
    /// Frames that arrived out of order or twice (sequence went back within a run).
    pub reordered: u64,
    /// Times the generator restarted (a new run id).
    pub restarts: u64,
}

/// Tracks each host's frame sequence to count loss and restarts.
#[derive(Debug, Default)]
pub struct SequenceTracker {
    senders: HashMap<String, SenderState>,
}

impl SequenceTracker {
    /// Notes an accepted frame. Frames without a sequence number (2013 generators) are
    /// counted but cannot reveal loss.
    pub fn observe(&mut self, host: &str, p: &Packet) {
        let s = match self.senders.get_mut(host) {
            Some(s) => s,
            None => self.senders.entry(host.to_owned()).or_default(),
        };
        s.frames += 1;
        let (Some(seq), Some(run)) = (p.seq, p.run_id) else { return };
        if s.frames == 1 || run != s.run_id {
            if s.frames > 1 {
                s.restarts += 1;
            }
            s.run_id = run;
            s.next_seq = seq + 1;
            return;
        }
        if seq >= s.next_seq {
            s.missing += seq - s.next_seq;
            s.next_seq = seq + 1;
        } else {
            s.reordered += 1;
        }
    }

    /// Every sender, by host.
    pub fn senders(&self) -> impl Iterator<Item = (&String, &SenderState)> {
        self.senders.iter()
    }

    /// Total frames missing over all senders.
    pub fn missing(&self) -> u64 {
        self.senders.values().map(|s| s.missing).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    const NOW: i64 = 1_764_000_000_000_000;

    fn frame(name: &str, time: u64) -> Packet {
        Packet { name: name.into(), time, ..Default::default() }
    }

    #[test]
    fn legacy_frame_gets_endpoint_host() {
        let a = Admission::new(1 << 20);
        let p = a.admit(&frame("global", 1_764_000_000).encode_to_vec(), "10.1.2.3", NOW).unwrap();
        assert_eq!(p.host.as_deref(), Some("10.1.2.3"));
        assert_eq!(endpoint_host("tcp://10.1.2.3:7211"), "10.1.2.3");
        assert_eq!(endpoint_host("tcp://[::1]:7211"), "::1");
        assert_eq!(endpoint_host("inproc://embedded"), "embedded");
    }

    #[test]
    fn rules() {
        let a = Admission::new(64);
        assert_eq!(a.admit(b"", "h", NOW), Err(Rejection::Undecodable));
        assert_eq!(a.admit(&[0xff; 10], "h", NOW), Err(Rejection::Undecodable));
        assert_eq!(a.admit(&[0; 65], "h", NOW), Err(Rejection::TooLarge));
        let a = Admission::new(1 << 20);
        assert_eq!(a.admit(&frame("", 1_764_000_000).encode_to_vec(), "h", NOW), Err(Rejection::BadZoneName));
        assert_eq!(
            a.admit(&frame(&"x".repeat(MAX_ZONE_NAME + 1), 1_764_000_000).encode_to_vec(), "h", NOW),
            Err(Rejection::BadZoneName)
        );
        let mut k8s = frame(&"x".repeat(MAX_ZONE_NAME), 1_764_000_000);
        k8s.zonename = vec!["z".repeat(1024), "é".repeat(3000)];
        let p = a.admit(&k8s.encode_to_vec(), "h", NOW).unwrap();
        assert_eq!(p.name.len(), MAX_ZONE_NAME);
        assert_eq!(p.zonename[0].len(), 1024, "zone list entries up to the zone name limit are kept whole");
        assert_eq!(p.zonename[1].len(), MAX_ZONE_NAME, "longer ones are cut at a character boundary");
        assert_eq!(a.admit(&frame("z", 0).encode_to_vec(), "h", NOW), Err(Rejection::TimeOutOfRange));
        assert_eq!(a.admit(&frame("z", 1_764_000_000 + 2 * 86_400).encode_to_vec(), "h", NOW), Err(Rejection::TimeOutOfRange));
        let mut many = frame("z", 1_764_000_000);
        many.cpu = vec![Default::default(); 4097];
        assert_eq!(a.admit(&many.encode_to_vec(), "h", NOW), Err(Rejection::TooManyEntries));
        let mut long = frame("../\0é", 1_764_000_000);
        long.process = vec![crate::packet::Process { execname: Some("é".repeat(200)), ..Default::default() }];
        let p = a.admit(&long.encode_to_vec(), "h", NOW).unwrap();
        assert_eq!(p.name, "../\0é");
        assert_eq!(p.process[0].execname.as_ref().unwrap().len(), 256);
    }

    #[test]
    fn counts_gaps_restarts_and_reorders() {
        let mut t = SequenceTracker::default();
        let f = |run, seq| Packet { run_id: Some(run), seq: Some(seq), ..Default::default() };
        for seq in [0, 1, 2, 5, 6, 4] {
            t.observe("h", &f(1, seq));
        }
        t.observe("h", &f(2, 0));
        t.observe("h", &f(2, 1));
        t.observe("old", &Packet::default());
        let s = &t.senders.get("h").unwrap();
        assert_eq!((s.frames, s.missing, s.reordered, s.restarts), (8, 2, 1, 1));
        assert_eq!(t.missing(), 2);
        assert_eq!(t.senders.get("old").unwrap().frames, 1);
    }
}

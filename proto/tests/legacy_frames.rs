//! The 2013 test vectors: frames encoded by an independent protobuf implementation decode
//! field by field to their JSON form (`expected.jsonl`, protobuf's JSON mapping with field
//! names kept; 64-bit integers as strings; absent optional fields omitted). Copied from
//! `shared/fixtures/legacy-frames/` so the test needs nothing outside the repository.
#![allow(unused_crate_dependencies)]

use frame_proto::{FrameDecoder, Packet};
use serde_json::{Map, Value, json};

fn put<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_owned(), v.into());
    }
}

fn put64(m: &mut Map<String, Value>, k: &str, v: Option<u64>) {
    put(m, k, v.map(|v| v.to_string()));
}

fn list<T>(m: &mut Map<String, Value>, k: &str, items: &[T], f: impl Fn(&T) -> Map<String, Value>) {
    if !items.is_empty() {
        m.insert(k.to_owned(), Value::Array(items.iter().map(|i| Value::Object(f(i))).collect()));
    }
}

/// The protobuf JSON mapping of a 2013 packet (fields 1..13 only).
fn to_json(p: &Packet) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(p.name));
    m.insert("time".into(), json!(p.time.to_string()));
    put(&mut m, "ticks", p.ticks);
    put(&mut m, "threads", p.threads);
    put(&mut m, "processes", p.processes);
    list(&mut m, "cpu", &p.cpu, |c| {
        let mut o = Map::new();
        put(&mut o, "core", c.core);
        put(&mut o, "usage", c.usage);
        o
    });
    list(&mut m, "mem", &p.mem, |x| {
        let mut o = Map::new();
        put64(&mut o, "rss", x.rss);
        put64(&mut o, "physcap", x.physcap);
        put64(&mut o, "swap", x.swap);
        put64(&mut o, "swapcap", x.swapcap);
        put64(&mut o, "physmem", x.physmem);
        put64(&mut o, "pp_kernel", x.pp_kernel);
        put64(&mut o, "freemem", x.freemem);
        put64(&mut o, "nalloc_calls", x.nalloc_calls);
        put64(&mut o, "nfree_calls", x.nfree_calls);
        put(&mut o, "maj_fault", x.maj_fault);
        put(&mut o, "as_fault", x.as_fault);
        put(&mut o, "pgin", x.pgin);
        o
    });
    list(&mut m, "net", &p.net, |x| {
        let mut o = Map::new();
        put(&mut o, "instance", x.instance.clone());
        put64(&mut o, "obytes64", x.obytes64);
        put64(&mut o, "rbytes64", x.rbytes64);
        put64(&mut o, "opackets", x.opackets);
        put64(&mut o, "ipackets", x.ipackets);
        put(&mut o, "oerrors", x.oerrors);
        put(&mut o, "ierrors", x.ierrors);
        o
    });
    list(&mut m, "disk", &p.disk, |x| {
        let mut o = Map::new();
        o.insert("instance".into(), json!(x.instance));
        put64(&mut o, "nread", x.nread);
        put64(&mut o, "nwritten", x.nwritten);
        put(&mut o, "reads", x.reads);
        put(&mut o, "writes", x.writes);
        put64(&mut o, "rtime", x.rtime);
        put64(&mut o, "wtime", x.wtime);
        put64(&mut o, "rlentime", x.rlentime);
        put64(&mut o, "wlentime", x.wlentime);
        put(&mut o, "harderror", x.harderror);
        put(&mut o, "softerror", x.softerror);
        put(&mut o, "tranerror", x.tranerror);
        o
    });
    list(&mut m, "process", &p.process, |x| {
        let mut o = Map::new();
        put(&mut o, "pid", x.pid);
        put(&mut o, "execname", x.execname.clone());
        put(&mut o, "usage", x.usage);
        put(&mut o, "cpu", x.cpu);
        o
    });
    list(&mut m, "callfreq", &p.callfreq, |x| {
        let mut o = Map::new();
        o.insert("name".into(), json!(x.name));
        put64(&mut o, "time", x.time);
        put(&mut o, "value", x.value);
        o
    });
    if !p.zonename.is_empty() {
        m.insert("zonename".into(), json!(p.zonename));
    }
    list(&mut m, "cpuqueue", &p.cpuqueue, |x| {
        let mut o = Map::new();
        put(&mut o, "core", x.core);
        put(&mut o, "length", x.length);
        put(&mut o, "amount", x.amount);
        o
    });
    Value::Object(m)
}

#[test]
fn every_legacy_frame_decodes_to_its_expected_fields() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-frames");
    let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let packet = FrameDecoder::default().decode(&bytes).unwrap();
        assert_eq!(to_json(&packet), entry["packet"], "{file}");
        // None of the fields added since 2013 are present in a 2013 frame.
        assert_eq!(
            (packet.host.as_ref(), packet.seq, packet.time_us, packet.run_id, packet.interval_ms),
            (None, None, None, None, None),
            "{file}"
        );
        assert_eq!(packet.sample_time_us(), packet.time as i64 * 1_000_000);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// A 2013 decoder (the schema without fields 14..18) reads a new frame: its known fields
/// are intact and the new ones are skipped as unknown.
#[test]
fn new_frames_decode_with_the_2013_schema() {
    use prost::Message;
    #[derive(Clone, PartialEq, Message)]
    struct Packet2013 {
        #[prost(string, required, tag = "1")]
        name: String,
        #[prost(uint64, required, tag = "2")]
        time: u64,
        #[prost(uint32, optional, tag = "3")]
        ticks: Option<u32>,
        #[prost(message, repeated, tag = "6")]
        cpu: Vec<frame_proto::packet::Cpu>,
        #[prost(string, repeated, tag = "12")]
        zonename: Vec<String>,
    }
    let new = Packet {
        name: "global".into(),
        time: 1_764_000_000,
        ticks: Some(4999),
        cpu: vec![frame_proto::packet::Cpu { core: Some(3), usage: Some(17) }],
        zonename: vec!["global".into()],
        host: Some("h1".into()),
        seq: Some(42),
        time_us: Some(1_764_000_000_250_000),
        run_id: Some(7),
        interval_ms: Some(1000),
        ..Default::default()
    };
    let old = Packet2013::decode(new.encode_to_vec().as_slice()).unwrap();
    assert_eq!(old.name, "global");
    assert_eq!(old.time, 1_764_000_000);
    assert_eq!(old.ticks, Some(4999));
    assert_eq!(old.cpu, new.cpu);
    assert_eq!(old.zonename, new.zonename);
    assert_eq!(new.sample_time_us(), 1_764_000_000_250_000);
}

#[test]
fn truncated_and_garbage_frames_are_errors_not_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-frames");
    let bytes = std::fs::read(dir.join("frame-000.bin")).unwrap();
    let d = FrameDecoder::default();
    let mut errors = 0;
    for cut in 1..bytes.len() {
        if d.decode(&bytes[..cut]).is_err() {
            errors += 1;
        }
    }
    assert!(errors > bytes.len() / 2, "most truncations must be refused: {errors}");
    assert!(d.decode(&[]).is_err());
    assert!(FrameDecoder::with_max_len(10).decode(&bytes).is_err());
}

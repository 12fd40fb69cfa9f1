//! The generator binary publishing over loopback: a simulated run blocks on a full queue
//! instead of dropping (a slow subscriber still gets every frame), and `--pace` spreads a
//! simulated run over real time.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use frame_proto::Packet;
use prost::Message;

/// Starts the generator on a port ZeroMQ picks; returns it and the endpoint it logged.
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_generator"))
        .args(["--source", "synthetic", "--listen", "tcp://127.0.0.1:0", "--wait-subscribers", "1"])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let endpoint = loop {
        let line = lines.next().expect("generator exited before publishing").unwrap();
        if let Some(at) = line.find("endpoint=") {
            break line[at + 9..].split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, endpoint)
}

fn subscriber(ctx: &zmq::Context, endpoint: &str, rcvhwm: i32) -> zmq::Socket {
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_rcvhwm(rcvhwm).unwrap();
    sub.set_rcvtimeo(10_000).unwrap();
    sub.set_subscribe(b"").unwrap();
    sub.connect(endpoint).unwrap();
    sub
}

#[test]
fn a_simulated_run_blocks_for_a_slow_subscriber_and_loses_nothing() {
    const FRAMES: u64 = 3_000;
    // Queues of 20 frames on each side: a run that dropped would lose most of its frames.
    let (mut child, endpoint) = start(&[
        "--zones",
        "1",
        "--cores",
        "2",
        "--processes",
        "2",
        "--sndhwm",
        "20",
        "--simulate-from",
        "2025-11-24T00:00:00Z",
        "--count",
        &FRAMES.to_string(),
    ]);
    let ctx = zmq::Context::new();
    let sub = subscriber(&ctx, &endpoint, 20);
    let mut seqs = Vec::new();
    while (seqs.len() as u64) < FRAMES {
        let Ok(bytes) = sub.recv_bytes(0) else { break };
        seqs.push(Packet::decode(bytes.as_slice()).unwrap().seq.unwrap());
        if seqs.len() % 100 == 0 {
            std::thread::sleep(Duration::from_millis(20)); // slower than the run
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(FRAMES - seqs.len() as u64, 0, "frames lost");
    assert!(seqs.iter().enumerate().all(|(i, s)| *s == i as u64), "every frame, in order");
}

#[test]
fn pace_spreads_a_simulated_run_over_real_time() {
    // 20 simulated seconds at 100 times real time: at least 190 ms (sample n is due at n/100 s).
    let (mut child, endpoint) = start(&[
        "--zones",
        "1",
        "--cores",
        "1",
        "--processes",
        "1",
        "--simulate-from",
        "2025-11-24T00:00:00Z",
        "--count",
        "20",
        "--pace",
        "100",
    ]);
    let ctx = zmq::Context::new();
    let sub = subscriber(&ctx, &endpoint, 1000);
    let mut times = Vec::new();
    let mut first = None;
    while times.len() < 20 {
        let Ok(bytes) = sub.recv_bytes(0) else { break };
        first.get_or_insert_with(Instant::now);
        times.push(Packet::decode(bytes.as_slice()).unwrap().sample_time_us());
    }
    let spread = first.map(|t| t.elapsed()).unwrap_or_default();
    assert!(child.wait().unwrap().success());
    assert_eq!(times.len(), 20);
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1_000_000), "one simulated second apart");
    assert!(spread >= Duration::from_millis(180), "20 samples at pace 100 arrived within {spread:?}");
}

//! The `generator` binary's body: logging, source selection, publishing, and the 2013
//! printing modes. `main.rs` only parses flags and installs signal handlers.

use std::time::Duration;

use frame_proto::Packet;

use crate::linux::LinuxSource;
use crate::publisher::Publisher;
use crate::run_loop::{FrameSink, FrameStamp, Stop, run};
use crate::source::StatSource;
use crate::synthetic::SyntheticSource;
use crate::{GeneratorConfig, GeneratorError, SourceKind};

/// How long a simulated run's queued frames may take to reach subscribers at exit.
pub const SIMULATED_RUN_LINGER: Duration = Duration::from_secs(300);

/// Builds the configured source.
pub fn open_source(config: &GeneratorConfig) -> Result<Box<dyn StatSource>, GeneratorError> {
    config.validate()?;
    Ok(match config.source {
        SourceKind::Synthetic => Box::new(SyntheticSource::new(config.synthetic_shape())),
        SourceKind::Linux => {
            Box::new(LinuxSource::new(config.zones_of_linux.linux_options(&config.linux_root, config.processes))?)
        }
        SourceKind::Illumos => crate::illumos::open(config)?,
    })
}

/// Wraps a sink with the 2013 `-v` / `-vlite` printing.
struct Printing<'a> {
    inner: Option<&'a mut dyn FrameSink>,
    verbose: bool,
    vlite: bool,
    last_time: u64,
}

impl FrameSink for Printing<'_> {
    fn send(&mut self, packet: &Packet) -> Result<(), GeneratorError> {
        if self.verbose {
            println!("{packet:?}");
        }
        if self.vlite && packet.time != self.last_time {
            println!("{} sent", packet.time);
            self.last_time = packet.time;
        }
        match &mut self.inner {
            Some(sink) => sink.send(packet),
            None => Ok(()),
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A stop requested by SIGINT or SIGTERM, waking the sampling loop at once.
pub fn stop_on_signals() -> std::io::Result<Stop> {
    let stop = Stop::new()?;
    stop.on_signals(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    Ok(stop)
}

/// Runs the generator until `stop` is requested or `--count` intervals are done.
pub fn main(config: GeneratorConfig, stop: &Stop) -> anyhow::Result<()> {
    init_logging();
    let mut source = open_source(&config)?;
    let mut stamp = FrameStamp::new(&config.host_name());
    let ctx = zmq::Context::new();
    let mut publisher = if config.quiet { None } else { Some(Publisher::bind(&ctx, &config.endpoint(), config.sndhwm)?) };
    if let (Some(p), Some(_)) = (publisher.as_mut(), config.simulate_from) {
        // A simulated run (backfill, load) outpaces a subscriber by design: block on a full
        // queue rather than drop, so the subscriber gets every frame, only later.
        p.set_block_when_full(true)?;
    }
    if let Some(p) = &publisher {
        tracing::info!(endpoint = %p.endpoint(), source = source.name(), host = %stamp.host, interval_ms = config.interval_ms, "publishing");
        if config.wait_subscribers > 0 {
            let seen = p.wait_for_subscribers(config.wait_subscribers, Duration::from_millis(config.wait_timeout_ms))?;
            tracing::info!(subscribers = seen, wanted = config.wait_subscribers, "done waiting for subscribers");
        }
    }
    let mut sink = Printing {
        inner: publisher.as_mut().map(|p| p as &mut dyn FrameSink),
        verbose: config.verbose,
        vlite: config.vlite,
        last_time: 0,
    };
    let sent = run(source.as_mut(), &mut stamp, &mut sink, config.schedule(), stop)?;
    // A simulated run's last frames may still be queued when it ends: give them time to
    // arrive rather than the 5 s of a live generator's exit.
    if let (Some(p), Some(_)) = (&publisher, config.simulate_from) {
        p.set_linger(SIMULATED_RUN_LINGER)?;
        tracing::info!(frames = sent, linger_s = SIMULATED_RUN_LINGER.as_secs(), "stopped; delivering queued frames");
    } else {
        tracing::info!(frames = sent, "stopped");
    }
    Ok(())
}

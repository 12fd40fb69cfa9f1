//! The illumos source as a [`StatSource`]: the `illumos_stats` sampler, live (libkstat and
//! libdtrace, on illumos) or replaying snapshots in the recorded format (any platform).

use illumos_stats::IllumosSampler;
use illumos_stats::aggregate::AggregateReader;
use illumos_stats::frames::FrameOptions;
use illumos_stats::kstat::KstatReader;
use illumos_stats::recording::{Recorder, Recording};

use frame_proto::Packet;

use crate::source::StatSource;
use crate::{GeneratorConfig, GeneratorError};

/// The illumos source over any pair of readers.
#[derive(Debug)]
pub struct IllumosSource<K, A> {
    sampler: IllumosSampler<K, A>,
}

impl<K: KstatReader, A: AggregateReader> StatSource for IllumosSource<K, A> {
    fn name(&self) -> &'static str {
        "illumos"
    }

    fn sample(&mut self, time_us: i64, _interval_us: i64) -> Result<Vec<Packet>, GeneratorError> {
        Ok(self.sampler.sample(time_us)?)
    }
}

/// Opens the illumos source the configuration asks for: replaying `--illumos-replay DIR`, or
/// live (which answers "unsupported" off illumos); recording to `--record-illumos DIR`.
pub fn open(config: &GeneratorConfig) -> Result<Box<dyn StatSource>, GeneratorError> {
    let options = FrameOptions { top_processes: config.processes };
    let recorder = match &config.record_illumos {
        Some(dir) => Some(Recorder::create(dir, config.record_limit)?),
        None => None,
    };
    fn boxed<K: KstatReader + 'static, A: AggregateReader + 'static>(
        sampler: IllumosSampler<K, A>,
        recorder: Option<Recorder>,
    ) -> Box<dyn StatSource> {
        let sampler = match recorder {
            Some(r) => sampler.with_recorder(r),
            None => sampler,
        };
        Box::new(IllumosSource { sampler })
    }
    Ok(match &config.illumos_replay {
        Some(dir) => {
            let (kstats, aggregates) = Recording::load(dir)?.replay();
            boxed(IllumosSampler::new(kstats, aggregates, options), recorder)
        }
        None => boxed(IllumosSampler::open_live(options)?, recorder),
    })
}

//! [`IllumosSampler`]: one kstat snapshot and one interval of aggregations per call, turned
//! into frames. Generic over the two readers, so the same code runs live on illumos and on
//! replayed snapshots anywhere.

use frame_proto::Packet;

use crate::IllumosError;
use crate::aggregate::{AggregateReader, LiveAggregates};
use crate::d_programs::programs_for;
use crate::frames::{FrameOptions, ZoneView, build_frames};
use crate::kstat::{KstatReader, LiveKstats};
use crate::recording::Recorder;

/// Samples kstats and aggregations and builds one frame per zone.
#[derive(Debug)]
pub struct IllumosSampler<K, A> {
    kstats: K,
    aggregates: A,
    options: FrameOptions,
    recorder: Option<Recorder>,
}

impl IllumosSampler<LiveKstats, LiveAggregates> {
    /// Opens libkstat, finds which zone this is, and starts the D programs for it (all of
    /// them in the global zone; those that read kernel memory only there).
    pub fn open_live(options: FrameOptions) -> Result<Self, IllumosError> {
        let mut kstats = LiveKstats::open()?;
        let view = ZoneView::from_kstats(&kstats.read()?)?;
        let aggregates = LiveAggregates::start(&programs_for(view.in_global_zone()))?;
        Ok(Self::new(kstats, aggregates, options))
    }
}

impl<K: KstatReader, A: AggregateReader> IllumosSampler<K, A> {
    /// A sampler over the given readers.
    pub fn new(kstats: K, aggregates: A, options: FrameOptions) -> Self {
        Self { kstats, aggregates, options, recorder: None }
    }

    /// Also writes every sampled interval to `recorder` (`--record-illumos`: a real host's
    /// snapshots, in the format of the test fixtures).
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// One interval: aggregations first (they cover the interval that just ended), then the
    /// kstats (cumulative counters, read as close to `time_us` as possible).
    pub fn sample(&mut self, time_us: i64) -> Result<Vec<Packet>, IllumosError> {
        let aggregates = self.aggregates.collect()?;
        let kstats = self.kstats.read()?;
        if let Some(recorder) = &mut self.recorder {
            recorder.record(&kstats, &aggregates)?;
        }
        build_frames(&kstats, &aggregates, time_us, &self.options)
    }
}

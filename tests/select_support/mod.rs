//! Test doubles and datasets shared by the query selection tests.

#![allow(dead_code)]

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};

use clarify::Episode;
use clarify::dataset::EpisodeEnd;
use clarify::select::{DatasetSegment, DisagreementScorer, Embedder, SegmentPair};

/// Episodes of the given lengths, stored one after another.
pub fn episodes_of_lengths(lengths: &[usize]) -> Vec<Episode> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let episode = Episode {
                start,
                len,
                end: EpisodeEnd::TimedOut,
            };
            start += len;
            episode
        })
        .collect()
}

/// Returns a reward for every global step, irregular but deterministic.
pub fn rewards_for(episodes: &[Episode]) -> Vec<f64> {
    let steps = episodes.last().map_or(0, Episode::end_step);
    (0..steps)
        .map(|step| ((step * 7919) % 13) as f64 / 13.0)
        .collect()
}

/// Embeds a segment as its return times `scale`, a one-dimensional stand-in for the encoder.
pub struct ReturnEmbedder {
    pub episodes: Vec<Episode>,
    pub rewards: Vec<f64>,
    pub scale: f32,
    /// Sizes of the batches received, in call order.
    pub batches: Vec<usize>,
}

impl ReturnEmbedder {
    pub fn new(episodes: &[Episode], scale: f32) -> Self {
        Self {
            episodes: episodes.to_vec(),
            rewards: rewards_for(episodes),
            scale,
            batches: Vec::new(),
        }
    }

    pub fn segment_return(&self, segment: &DatasetSegment) -> f64 {
        let start = self.episodes[segment.episode].start + segment.start;
        self.rewards[start..start + segment.length].iter().sum()
    }
}

impl Embedder for ReturnEmbedder {
    type Error = Infallible;

    fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, Infallible> {
        self.batches.push(segments.len());
        Ok(segments
            .iter()
            .map(|segment| vec![self.segment_return(segment) as f32 * self.scale])
            .collect())
    }
}

/// Embeds a segment as `[episode index]`, so that the distance of a pair is the
/// difference of its episode indices.
#[derive(Default)]
pub struct EpisodeEmbedder {
    pub calls: usize,
}

impl Embedder for EpisodeEmbedder {
    type Error = Infallible;

    fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, Infallible> {
        self.calls += 1;
        Ok(segments
            .iter()
            .map(|segment| vec![segment.episode as f32])
            .collect())
    }
}

/// Scores a pair by a fixed hash of its segments and remembers every pair it scored.
#[derive(Default)]
pub struct RecordingScorer {
    pub scored: Vec<(SegmentPair, f64)>,
    pub batches: Vec<usize>,
}

impl RecordingScorer {
    pub fn score_of(pair: &SegmentPair) -> f64 {
        let key = [pair.left, pair.right].iter().fold(17u64, |hash, segment| {
            let mixed = hash
                .wrapping_mul(31)
                .wrapping_add(segment.episode as u64 * 1009 + segment.start as u64);
            mixed ^ (mixed >> 7)
        });
        (key % 1000) as f64 / 1000.0
    }
}

impl DisagreementScorer for RecordingScorer {
    type Error = Infallible;

    fn disagreement(&mut self, pairs: &[SegmentPair]) -> Result<Vec<f64>, Infallible> {
        self.batches.push(pairs.len());
        let scores: Vec<f64> = pairs.iter().map(Self::score_of).collect();
        self.scored
            .extend(pairs.iter().copied().zip(scores.iter().copied()));
        Ok(scores)
    }
}

/// A writer that keeps everything written to it, for checking log output.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `action` with a subscriber that writes WARN and above to the returned log.
pub fn with_captured_warnings<T>(action: impl FnOnce() -> T) -> (T, String) {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, action);
    (result, log.text())
}

//! Uniform candidate pairs over all segments of a dataset.
//!
//! A drawn pair never contains a segment twice, never two overlapping segments of one
//! episode, and never a pair that was asked before or drawn earlier in the same call, in
//! either order. Each pair is uniform over the ordered pairs that satisfy these rules.

use std::collections::HashSet;

use rand_core::Rng;
use tracing::warn;

use super::random::uniform_index;
use super::segment::{AskedPairs, DatasetSegment, SegmentPair};
use crate::dataset::Episode;
use crate::segment::{Segments, ZeroSegmentLength};

/// When no more than this many times the requested number of pairs is available, a draw
/// lists every available pair and picks from the list. Above it, rejection sampling finds
/// a new pair in a few tries on average.
const ENUMERATION_FACTOR: u128 = 4;

/// The segments of length H of a dataset, from which candidate pairs are drawn.
#[derive(Clone, Debug)]
pub struct SegmentPool {
    episodes: Vec<Episode>,
    segments: Segments,
}

/// The outcome of drawing candidate pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct PairDraw {
    /// The pairs in draw order.
    pub pairs: Vec<SegmentPair>,
    /// Number of pairs requested.
    pub requested: usize,
    /// Number of unordered pairs that could still be drawn before this call.
    pub available: u128,
}

impl PairDraw {
    /// Returns whether fewer pairs than requested came back.
    pub fn is_short(&self) -> bool {
        self.pairs.len() < self.requested
    }
}

impl SegmentPool {
    /// Lists the segments of `length` steps of `episodes` (starts 0..=len − H of every
    /// episode with at least H steps).
    pub fn new(episodes: &[Episode], length: usize) -> Result<Self, ZeroSegmentLength> {
        Ok(Self {
            episodes: episodes.to_vec(),
            segments: Segments::enumerate(episodes, length)?,
        })
    }

    /// Returns the segment length H.
    pub fn segment_length(&self) -> usize {
        self.segments.length()
    }

    /// Returns the episodes the pool was built from.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// Returns the number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Returns whether the pool has no segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Returns the number of episodes shorter than H, which give no segment.
    pub fn short_episodes(&self) -> usize {
        self.segments.short_episodes()
    }

    /// Returns segment `index` in pool order (episode by episode, by start).
    ///
    /// # Panics
    ///
    /// Panics when `index >= self.len()`.
    pub fn segment(&self, index: usize) -> DatasetSegment {
        let episode = self.segments.episode_index(index);
        DatasetSegment {
            episode,
            start: self.segments.start(index) - self.episodes[episode].start,
            length: self.segments.length(),
        }
    }

    /// Returns whether `segment` is one of the pool's segments.
    pub fn contains(&self, segment: &DatasetSegment) -> bool {
        segment.length == self.segment_length() && segment.validate(&self.episodes).is_ok()
    }

    /// Returns the number of unordered pairs of distinct, non-overlapping segments.
    pub fn valid_pair_count(&self) -> u128 {
        let segment_count = self.len() as u128;
        let all_pairs = segment_count * segment_count.saturating_sub(1) / 2;

        // In an episode with n segments, starts that differ by δ < H overlap, and there are
        // n − δ such unordered pairs for each δ from 1 to min(H − 1, n − 1).
        let length = self.segment_length() as u128;
        let overlapping: u128 = self
            .episodes
            .iter()
            .filter(|episode| episode.len as u128 >= length)
            .map(|episode| {
                let n = episode.len as u128 - length + 1;
                let max_shift = (length - 1).min(n - 1);
                max_shift * n - max_shift * (max_shift + 1) / 2
            })
            .sum();
        all_pairs - overlapping
    }

    /// Returns the number of unordered pairs that a draw may still return, given the pairs
    /// already asked.
    pub fn available_pair_count(&self, asked: &AskedPairs) -> u128 {
        let asked_in_pool = asked
            .iter()
            .filter(|pair| {
                self.contains(&pair.left)
                    && self.contains(&pair.right)
                    && !pair.left.overlaps(&pair.right)
            })
            .count() as u128;
        self.valid_pair_count() - asked_in_pool
    }

    /// Draws up to `count` distinct candidate pairs, none of them in `asked`.
    ///
    /// Returns fewer pairs, with a warning, when fewer are available or when
    /// `attempts_per_pair · count` random draws did not find enough.
    pub fn draw_pairs(
        &self,
        count: usize,
        asked: &AskedPairs,
        attempts_per_pair: usize,
        rng: &mut impl Rng,
    ) -> PairDraw {
        let available = self.available_pair_count(asked);
        let pairs = if available <= ENUMERATION_FACTOR * count as u128 {
            self.pick_from_all(count, asked, rng)
        } else {
            self.draw_by_rejection(count, asked, count.saturating_mul(attempts_per_pair), rng)
        };

        let draw = PairDraw {
            pairs,
            requested: count,
            available,
        };
        if draw.is_short() {
            self.warn_short(&draw);
        }
        draw
    }

    /// Lists every available unordered pair, then picks `count` of them uniformly without
    /// replacement (a partial Fisher-Yates shuffle) and shows them in random order.
    fn pick_from_all(
        &self,
        count: usize,
        asked: &AskedPairs,
        rng: &mut impl Rng,
    ) -> Vec<SegmentPair> {
        let mut all = Vec::new();
        for first in 0..self.len() {
            let left = self.segment(first);
            for second in first + 1..self.len() {
                let pair = SegmentPair {
                    left,
                    right: self.segment(second),
                };
                if !pair.left.overlaps(&pair.right) && !asked.contains(&pair) {
                    all.push(pair);
                }
            }
        }

        let picked = count.min(all.len());
        for slot in 0..picked {
            let chosen = slot + uniform_index(rng, all.len() - slot);
            all.swap(slot, chosen);
            if uniform_index(rng, 2) == 1 {
                let pair = &mut all[slot];
                std::mem::swap(&mut pair.left, &mut pair.right);
            }
        }
        all.truncate(picked);
        all
    }

    /// Draws two segments uniformly and keeps the pair when it is valid and new, until
    /// `count` pairs are found or `max_attempts` draws are used.
    fn draw_by_rejection(
        &self,
        count: usize,
        asked: &AskedPairs,
        max_attempts: usize,
        rng: &mut impl Rng,
    ) -> Vec<SegmentPair> {
        let mut pairs = Vec::with_capacity(count);
        let mut drawn = HashSet::with_capacity(count);
        let mut attempts = 0;
        while pairs.len() < count && attempts < max_attempts {
            attempts += 1;
            let pair = SegmentPair {
                left: self.segment(uniform_index(rng, self.len())),
                right: self.segment(uniform_index(rng, self.len())),
            };
            if pair.left.overlaps(&pair.right) || asked.contains(&pair) {
                continue;
            }
            if drawn.insert(pair.unordered_key()) {
                pairs.push(pair);
            }
        }
        pairs
    }

    fn warn_short(&self, draw: &PairDraw) {
        let drawn = draw.pairs.len();
        if draw.available < draw.requested as u128 {
            warn!(
                requested = draw.requested,
                drawn,
                segments = self.len(),
                short_episodes = self.short_episodes(),
                "candidate pool ran out: only {} new pairs of non-overlapping segments are \
                 left; record more episodes or shorten the segment length",
                draw.available
            );
        } else {
            warn!(
                requested = draw.requested,
                drawn,
                available = draw.available,
                "random draws stopped before finding all requested pairs; raise \
                 draw_attempts_per_pair to search longer"
            );
        }
    }
}

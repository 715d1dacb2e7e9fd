//! Segments addressed by episode index, the pairs that queries show, and the set of pairs
//! already asked.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::answer::Answer;
use crate::dataset::Episode;
use crate::store::{EpisodeId, SegmentRef};

/// A segment of a dataset: `length` consecutive steps of episode `episode`, starting at
/// step `start` of that episode.
///
/// `episode` indexes [`crate::Dataset::episodes`], which is the `episode_index` column of
/// the segment store, not a store row id. The order (episode, start, length) is the order
/// of [`SegmentPair::unordered_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSegment {
    /// 0-based index of the episode in the dataset.
    pub episode: usize,
    /// First step of the segment, counted within the episode.
    pub start: usize,
    /// Number of steps, at least 1.
    pub length: usize,
}

impl DatasetSegment {
    /// Returns the step within the episode one past the segment's last step.
    pub fn end(&self) -> usize {
        self.start + self.length
    }

    /// Checks that the segment has at least one step and lies inside one of `episodes`.
    pub fn validate(&self, episodes: &[Episode]) -> Result<(), SegmentError> {
        if self.length == 0 {
            return Err(SegmentError::ZeroLength { segment: *self });
        }
        let Some(episode) = episodes.get(self.episode) else {
            return Err(SegmentError::EpisodeNotFound {
                segment: *self,
                episode_count: episodes.len(),
            });
        };
        if self
            .start
            .checked_add(self.length)
            .is_none_or(|end| end > episode.len)
        {
            return Err(SegmentError::PastEpisodeEnd {
                segment: *self,
                episode_len: episode.len,
            });
        }
        Ok(())
    }

    /// Returns whether the two segments share a step: same episode and intersecting step
    /// ranges. A segment overlaps itself.
    pub fn overlaps(&self, other: &DatasetSegment) -> bool {
        self.episode == other.episode && self.start < other.end() && other.start < self.end()
    }

    /// Returns the global step at which the segment starts in a dataset with `episodes`,
    /// or `None` when the episode index is out of range.
    pub fn global_start(&self, episodes: &[Episode]) -> Option<usize> {
        episodes
            .get(self.episode)
            .map(|episode| episode.start + self.start)
    }

    /// Converts to the segment store's reference, given the store row id of the episode.
    pub fn to_store_ref(&self, episode_id: EpisodeId) -> SegmentRef {
        SegmentRef {
            episode: episode_id,
            start: self.start,
            length: self.length,
        }
    }
}

impl fmt::Display for DatasetSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "steps {}..{} of episode index {}",
            self.start,
            self.end(),
            self.episode
        )
    }
}

/// A segment that does not fit the dataset it is used with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SegmentError {
    #[error("invalid segment {segment}: a segment needs at least 1 step")]
    ZeroLength { segment: DatasetSegment },

    #[error(
        "invalid segment {segment}: the dataset has {episode_count} episodes; \
         check that the segment comes from this dataset"
    )]
    EpisodeNotFound {
        segment: DatasetSegment,
        episode_count: usize,
    },

    #[error(
        "invalid segment {segment}: the episode has only {episode_len} steps; \
         check that the segment comes from this dataset"
    )]
    PastEpisodeEnd {
        segment: DatasetSegment,
        episode_len: usize,
    },
}

/// The two segments of a query, `left` shown first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentPair {
    /// The first segment, shown on the left.
    pub left: DatasetSegment,
    /// The second segment, shown on the right.
    pub right: DatasetSegment,
}

impl SegmentPair {
    /// Returns the pair with its segments in ascending order, so that (a, b) and (b, a)
    /// give the same key.
    pub fn unordered_key(&self) -> (DatasetSegment, DatasetSegment) {
        if self.left <= self.right {
            (self.left, self.right)
        } else {
            (self.right, self.left)
        }
    }
}

impl fmt::Display for SegmentPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.left, self.right)
    }
}

/// The unordered pairs asked in earlier rounds, which a selector never picks again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AskedPairs {
    keys: HashSet<(DatasetSegment, DatasetSegment)>,
}

impl AskedPairs {
    /// Creates an empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair in either order. Returns whether it was new.
    pub fn insert(&mut self, pair: SegmentPair) -> bool {
        self.keys.insert(pair.unordered_key())
    }

    /// Returns whether the pair was asked, in either order.
    pub fn contains(&self, pair: &SegmentPair) -> bool {
        self.keys.contains(&pair.unordered_key())
    }

    /// Returns the number of distinct unordered pairs.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Returns whether no pair was asked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Iterates over the pairs as unordered keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = SegmentPair> + '_ {
        self.keys
            .iter()
            .map(|&(left, right)| SegmentPair { left, right })
    }
}

impl FromIterator<SegmentPair> for AskedPairs {
    fn from_iter<I: IntoIterator<Item = SegmentPair>>(pairs: I) -> Self {
        let mut asked = Self::new();
        for pair in pairs {
            asked.insert(pair);
        }
        asked
    }
}

impl Extend<SegmentPair> for AskedPairs {
    fn extend<I: IntoIterator<Item = SegmentPair>>(&mut self, pairs: I) {
        for pair in pairs {
            self.insert(pair);
        }
    }
}

/// A past query with its answer: one entry of the preference buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledPair {
    /// The segments as shown.
    pub pair: SegmentPair,
    /// The operator's answer.
    pub answer: Answer,
}

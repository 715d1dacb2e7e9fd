//! Fixed-length trajectory segments and their returns.
//!
//! A segment is H consecutive steps of one episode, the unit that a preference query
//! shows. [`Segments`] enumerates them and guarantees:
//!
//! - a segment never crosses an episode boundary;
//! - an episode of len ≥ H steps gives the segments starting at offsets 0..=len − H, so an
//!   episode of exactly H steps gives one; a shorter episode gives none and is counted in
//!   [`Segments::short_episodes`];
//! - segments are numbered in file order: episode by episode, and within an episode by
//!   start. Segment k covers the global steps `start(k)..start(k) + H`.
//!
//! Returns come from a float64 prefix sum built in step order ([`RewardPrefixSum`]), so
//! every consumer gets bit-identical values for the same segment.

use ndarray::ArrayView1;
use thiserror::Error;

use crate::dataset::Episode;

/// Default segment length H in steps.
pub const DEFAULT_SEGMENT_LENGTH: usize = 50;

/// Error for a segment length that cannot produce segments.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid segment length 0: a segment needs at least 1 step")]
pub struct ZeroSegmentLength;

/// The segments of a dataset for one segment length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segments {
    length: usize,
    starts: Vec<usize>,
    episode_indices: Vec<usize>,
    short_episodes: usize,
}

impl Segments {
    /// Enumerates all segments of `length` steps in `episodes`, which must be in step order.
    pub fn enumerate(episodes: &[Episode], length: usize) -> Result<Self, ZeroSegmentLength> {
        if length == 0 {
            return Err(ZeroSegmentLength);
        }

        let mut starts = Vec::new();
        let mut episode_indices = Vec::new();
        let mut short_episodes = 0;
        for (episode_index, episode) in episodes.iter().enumerate() {
            if episode.len < length {
                short_episodes += 1;
                continue;
            }
            for offset in 0..=episode.len - length {
                starts.push(episode.start + offset);
                episode_indices.push(episode_index);
            }
        }

        Ok(Self {
            length,
            starts,
            episode_indices,
            short_episodes,
        })
    }

    /// Returns the segment length H in steps.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Returns the number of segments.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Returns whether there are no segments.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Returns the number of episodes shorter than H, which give no segment.
    pub fn short_episodes(&self) -> usize {
        self.short_episodes
    }

    /// Returns the global step at which segment `index` starts.
    ///
    /// # Panics
    ///
    /// Panics when `index >= self.len()`.
    pub fn start(&self, index: usize) -> usize {
        self.starts[index]
    }

    /// Returns the index of the episode that contains segment `index`.
    ///
    /// # Panics
    ///
    /// Panics when `index >= self.len()`.
    pub fn episode_index(&self, index: usize) -> usize {
        self.episode_indices[index]
    }

    /// Returns the global start step of every segment, in segment order.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// Returns the return of segment `index`: the sum of its H rewards.
    ///
    /// # Panics
    ///
    /// Panics when `index >= self.len()` or when `prefix` was built from fewer steps than
    /// the episodes cover.
    pub fn segment_return(&self, prefix: &RewardPrefixSum, index: usize) -> f64 {
        prefix.range_sum(self.starts[index], self.length)
    }
}

/// Float64 prefix sum of per-step rewards: `c[0] = 0` and `c[i + 1] = c[i] + rewards[i]`,
/// added one step at a time in step order.
///
/// The order is part of the contract, because the Python generator computes the same sums
/// and the dataset fingerprint compares them exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardPrefixSum {
    cumulative: Vec<f64>,
}

impl RewardPrefixSum {
    /// Builds the prefix sum, widening each reward to f64 before adding it.
    pub fn new(rewards: ArrayView1<'_, f32>) -> Self {
        let mut cumulative = Vec::with_capacity(rewards.len() + 1);
        let mut total = 0.0_f64;
        cumulative.push(total);
        for &reward in rewards {
            total += f64::from(reward);
            cumulative.push(total);
        }
        Self { cumulative }
    }

    /// Returns the number of steps summed.
    pub fn step_count(&self) -> usize {
        self.cumulative.len() - 1
    }

    /// Returns `c[N]`, the sum of all rewards.
    pub fn total(&self) -> f64 {
        self.cumulative[self.step_count()]
    }

    /// Returns `c[start + len] − c[start]`, the summed reward of `len` steps from `start`.
    ///
    /// # Panics
    ///
    /// Panics when `start + len` exceeds the number of steps.
    pub fn range_sum(&self, start: usize, len: usize) -> f64 {
        self.cumulative[start + len] - self.cumulative[start]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;
    use crate::dataset::EpisodeEnd;

    fn episodes_of_lengths(lengths: &[usize]) -> Vec<Episode> {
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

    #[test]
    fn episode_of_exactly_h_steps_gives_one_segment() -> Result<(), ZeroSegmentLength> {
        let segments = Segments::enumerate(&episodes_of_lengths(&[5]), 5)?;
        assert_eq!(segments.starts(), [0]);
        assert_eq!(segments.short_episodes(), 0);
        Ok(())
    }

    #[test]
    fn shorter_episode_skipped_and_counted() -> Result<(), ZeroSegmentLength> {
        let segments = Segments::enumerate(&episodes_of_lengths(&[6, 4, 5]), 5)?;
        assert_eq!(segments.starts(), [0, 1, 10]);
        assert_eq!(segments.short_episodes(), 1);
        Ok(())
    }

    #[test]
    fn last_episode_gives_segments() -> Result<(), ZeroSegmentLength> {
        let segments = Segments::enumerate(&episodes_of_lengths(&[3, 7]), 3)?;
        let last_episode: Vec<usize> = (0..segments.len())
            .filter(|&k| segments.episode_index(k) == 1)
            .map(|k| segments.start(k))
            .collect();
        assert_eq!(last_episode, [3, 4, 5, 6, 7]);
        Ok(())
    }

    #[test]
    fn zero_segment_length_rejected() {
        assert_eq!(
            Segments::enumerate(&episodes_of_lengths(&[3]), 0),
            Err(ZeroSegmentLength)
        );
    }

    /// Checks count, order, containment and completeness for many length combinations.
    #[test]
    fn segments_stay_inside_episodes_for_many_lengths() -> Result<(), ZeroSegmentLength> {
        let length_sets: [&[usize]; 6] = [
            &[1],
            &[1, 1, 1],
            &[4, 9, 2, 7, 7],
            &[10, 3, 5, 12],
            &[2, 2, 2, 8],
            &[13, 1, 6, 6, 20],
        ];
        for lengths in length_sets {
            let episodes = episodes_of_lengths(lengths);
            for h in 1..=14 {
                let segments = Segments::enumerate(&episodes, h)?;

                let expected_count: usize =
                    lengths.iter().map(|&n| (n + 1).saturating_sub(h)).sum();
                let expected_short = lengths.iter().filter(|&&n| n < h).count();
                assert_eq!(segments.len(), expected_count, "{lengths:?} h={h}");
                assert_eq!(
                    segments.short_episodes(),
                    expected_short,
                    "{lengths:?} h={h}"
                );

                for k in 0..segments.len() {
                    let episode = episodes[segments.episode_index(k)];
                    let start = segments.start(k);
                    assert!(start >= episode.start, "{lengths:?} h={h} k={k}");
                    assert!(start + h <= episode.end_step(), "{lengths:?} h={h} k={k}");
                }
                for pair in segments.starts().windows(2) {
                    assert!(pair[0] < pair[1], "{lengths:?} h={h}: not in file order");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn prefix_sum_adds_in_step_order_in_f64() {
        let rewards = array![0.1_f32, 0.2, 0.3, 1.0e8];
        let prefix = RewardPrefixSum::new(rewards.view());

        let mut expected = 0.0_f64;
        for &reward in &rewards {
            expected += f64::from(reward);
        }
        assert_eq!(prefix.total(), expected);
        assert_eq!(prefix.step_count(), 4);
        assert_eq!(
            prefix.range_sum(1, 2),
            (f64::from(0.1_f32) + f64::from(0.2_f32) + f64::from(0.3_f32)) - f64::from(0.1_f32)
        );
    }

    #[test]
    fn segment_return_is_prefix_difference() -> Result<(), ZeroSegmentLength> {
        let rewards = array![1.0_f32, 2.0, 3.0, 4.0, 5.0];
        let prefix = RewardPrefixSum::new(rewards.view());
        let segments = Segments::enumerate(&episodes_of_lengths(&[2, 3]), 2)?;

        let returns: Vec<f64> = (0..segments.len())
            .map(|k| segments.segment_return(&prefix, k))
            .collect();

        assert_eq!(returns, [3.0, 7.0, 9.0]);
        Ok(())
    }
}

//! Training batches: reconstruction windows from the dataset and preference queries from the
//! buffer, built row-major on the CPU before they become tensors.

use ndarray::ArrayView2;
use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::config::TimeEmbedding;
use super::normalization::StateNormalization;
use crate::answer::Answer;
use crate::dataset::Episode;
use crate::select::{DatasetSegment, LabelledPair};

/// Action value of the padded steps of a window.
const PADDED_ACTION: f32 = -10.0;

/// Draws an index in 0..bound (bound ≥ 1) with the multiply-shift method.
pub(crate) fn draw_index(rng: &mut Xoshiro256PlusPlus, bound: usize) -> usize {
    ((u128::from(rng.next_u64()) * bound as u128) >> 64) as usize
}

/// `batch` windows of at most K steps, left-padded to K.
pub(crate) struct ReconstructionBatch {
    pub(crate) batch: usize,
    pub(crate) steps: usize,
    /// Normalised states `[batch, K, obs]`, zero at padded steps.
    pub(crate) states: Vec<f32>,
    /// `states` with each window's steps in reverse order.
    pub(crate) reversed_states: Vec<f32>,
    /// Actions `[batch, K, act]`, −10 at padded steps.
    pub(crate) actions: Vec<f32>,
    /// Step within the episode `[batch, K]`, 0 at padded steps.
    pub(crate) timesteps: Vec<i64>,
    pub(crate) reversed_timesteps: Vec<i64>,
    /// Whether each step is real, `[batch][K]`.
    pub(crate) mask: Vec<Vec<bool>>,
}

/// Draws `batch` windows: a uniform episode, a uniform start within it, and the up to K
/// steps from there to the episode's end. Shorter windows are left-padded.
pub(crate) fn reconstruction_batch(
    observations: ArrayView2<'_, f32>,
    actions: ArrayView2<'_, f32>,
    episodes: &[Episode],
    normalization: &StateNormalization,
    batch: usize,
    steps: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> ReconstructionBatch {
    let observation_dim = observations.ncols();
    let action_dim = actions.ncols();
    let mut states = vec![0.0; batch * steps * observation_dim];
    let mut reversed_states = vec![0.0; batch * steps * observation_dim];
    let mut window_actions = vec![PADDED_ACTION; batch * steps * action_dim];
    let mut timesteps = vec![0; batch * steps];
    let mut reversed_timesteps = vec![0; batch * steps];
    let mut mask = Vec::with_capacity(batch);

    for window in 0..batch {
        let episode = episodes[draw_index(rng, episodes.len())];
        let start = draw_index(rng, episode.len);
        let length = steps.min(episode.len - start);
        let padding = steps - length;
        for offset in 0..length {
            let position = padding + offset;
            let reversed_position = steps - 1 - position;
            let global = episode.start + start + offset;
            let row = window * steps + position;
            let reversed_row = window * steps + reversed_position;

            let state = &mut states[row * observation_dim..(row + 1) * observation_dim];
            normalization.normalize_into(observations.row(global), state);
            let state = states[row * observation_dim..(row + 1) * observation_dim].to_vec();
            reversed_states[reversed_row * observation_dim..(reversed_row + 1) * observation_dim]
                .copy_from_slice(&state);
            for (target, &value) in window_actions[row * action_dim..(row + 1) * action_dim]
                .iter_mut()
                .zip(actions.row(global))
            {
                *target = value;
            }
            timesteps[row] = (start + offset) as i64;
            reversed_timesteps[reversed_row] = (start + offset) as i64;
        }
        let mut window_mask = vec![false; padding];
        window_mask.resize(steps, true);
        mask.push(window_mask);
    }
    ReconstructionBatch {
        batch,
        steps,
        states,
        reversed_states,
        actions: window_actions,
        timesteps,
        reversed_timesteps,
        mask,
    }
}

/// The reversed states and timesteps of segments, ready for the aggregator.
pub(crate) struct SegmentBatch {
    pub(crate) segments: usize,
    pub(crate) steps: usize,
    /// `[segments, H, obs]`, each segment reversed in time.
    pub(crate) reversed_states: Vec<f32>,
    /// `[segments, H]`, reversed like the states.
    pub(crate) reversed_timesteps: Vec<i64>,
}

/// Builds the reversed inputs of `segments` (all of one length H) of a dataset. States are
/// normalised when `normalization` is given. Timesteps follow `time_embedding`: the
/// segment's own steps, or steps from a start drawn uniformly in 0..=max_timestep − H.
pub(crate) fn segment_batch(
    observations: ArrayView2<'_, f32>,
    episodes: &[Episode],
    segments: &[DatasetSegment],
    normalization: Option<&StateNormalization>,
    time_embedding: TimeEmbedding,
    max_timestep: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> SegmentBatch {
    let observation_dim = observations.ncols();
    let steps = segments.first().map_or(0, |segment| segment.length);
    let mut reversed_states = vec![0.0; segments.len() * steps * observation_dim];
    let mut reversed_timesteps = vec![0; segments.len() * steps];
    for (index, segment) in segments.iter().enumerate() {
        let global_start = episodes[segment.episode].start + segment.start;
        let first_timestep = match time_embedding {
            TimeEmbedding::Random => draw_index(rng, max_timestep - steps + 1),
            TimeEmbedding::True | TimeEmbedding::None => segment.start,
        };
        for offset in 0..steps {
            let row = index * steps + (steps - 1 - offset);
            let target = &mut reversed_states[row * observation_dim..(row + 1) * observation_dim];
            let state = observations.row(global_start + offset);
            match normalization {
                Some(normalization) => normalization.normalize_into(state, target),
                None => {
                    for (target, &value) in target.iter_mut().zip(state) {
                        *target = value;
                    }
                }
            }
            reversed_timesteps[row] = (first_timestep + offset) as i64;
        }
    }
    SegmentBatch {
        segments: segments.len(),
        steps,
        reversed_states,
        reversed_timesteps,
    }
}

/// A preference batch: queries drawn with replacement from the usable buffer entries.
pub(crate) struct PreferenceBatch {
    /// Segments in the order left 0, right 0, left 1, right 1, ...
    pub(crate) segments: Vec<DatasetSegment>,
    /// Whether each query was answered "can't tell".
    pub(crate) ambiguous: Vec<bool>,
    /// Per clear query, the row in `segments` of the preferred and of the dispreferred
    /// segment.
    pub(crate) preferred_rows: Vec<usize>,
    pub(crate) dispreferred_rows: Vec<usize>,
}

/// Draws `batch` queries uniformly with replacement from `usable` (entries of the buffer
/// with a left, right or "can't tell" answer).
pub(crate) fn preference_batch(
    usable: &[LabelledPair],
    batch: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> PreferenceBatch {
    let mut result = PreferenceBatch {
        segments: Vec::with_capacity(2 * batch),
        ambiguous: Vec::with_capacity(batch),
        preferred_rows: Vec::new(),
        dispreferred_rows: Vec::new(),
    };
    for query in 0..batch {
        let entry = usable[draw_index(rng, usable.len())];
        result.segments.push(entry.pair.left);
        result.segments.push(entry.pair.right);
        let (left_row, right_row) = (2 * query, 2 * query + 1);
        match entry.answer {
            Answer::Left => {
                result.preferred_rows.push(left_row);
                result.dispreferred_rows.push(right_row);
            }
            Answer::Right => {
                result.preferred_rows.push(right_row);
                result.dispreferred_rows.push(left_row);
            }
            Answer::CantTell | Answer::Skip => {}
        }
        result.ambiguous.push(entry.answer == Answer::CantTell);
    }
    result
}

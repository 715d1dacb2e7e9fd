//! Synthetic datasets and preference buffers for the encoder tests.

#![allow(dead_code)] // Each test crate uses a different part of these helpers.

use clarify::select::{DatasetSegment, LabelledPair, SegmentPair};
use clarify::{Answer, Dataset, DatasetArrays};
use ndarray::{Array1, Array2};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub const OBSERVATION_DIM: usize = 5;
pub const ACTION_DIM: usize = 2;

fn uniform(rng: &mut Xoshiro256PlusPlus, low: f32, high: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    low + (high - low) * unit
}

/// Builds a dataset of episodes with the given lengths. States follow a smooth random walk
/// around an offset (so the normalisation matters) and each action is a fixed tanh-squashed
/// linear function of the state, which a decoder can learn.
pub fn synthetic_dataset(episode_lengths: &[usize], seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let steps: usize = episode_lengths.iter().sum();
    let mut observations = Array2::<f32>::zeros((steps, OBSERVATION_DIM));
    let mut actions = Array2::<f32>::zeros((steps, ACTION_DIM));
    let mut terminals = Array1::from_elem(steps, false);
    let mut row = 0;
    for &length in episode_lengths {
        let mut state: Vec<f32> = (0..OBSERVATION_DIM)
            .map(|feature| 3.0 + feature as f32 + uniform(&mut rng, -1.0, 1.0))
            .collect();
        for _ in 0..length {
            for value in &mut state {
                *value += uniform(&mut rng, -0.2, 0.2);
            }
            for (feature, &value) in state.iter().enumerate() {
                observations[[row, feature]] = value;
            }
            actions[[row, 0]] = (state[0] - state[1] + 1.0).tanh();
            actions[[row, 1]] = (0.5 * (state[2] - 5.0)).tanh();
            row += 1;
        }
        terminals[row - 1] = true;
    }
    let arrays = DatasetArrays {
        next_observations: observations.clone(),
        observations,
        actions,
        rewards: Array1::zeros(steps),
        terminals,
        timeouts: Array1::from_elem(steps, false),
        success: None,
        episode_ids: None,
        timesteps: None,
    };
    Dataset::from_arrays("synthetic.npz", arrays).expect("a valid synthetic dataset")
}

/// Draws `count` pairs of `length`-step segments from different episodes, with answers
/// cycling through left, right, can't tell and skip.
pub fn synthetic_buffer(
    dataset: &Dataset,
    count: usize,
    length: usize,
    seed: u64,
) -> Vec<LabelledPair> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let episodes = dataset.episodes();
    let mut draw_segment = |episode: usize| {
        let len = episodes[episode].len;
        let start = (rng.next_u64() % (len - length + 1) as u64) as usize;
        DatasetSegment {
            episode,
            start,
            length,
        }
    };
    (0..count)
        .map(|index| {
            let left = draw_segment(index % episodes.len());
            let right = draw_segment((index + 1) % episodes.len());
            let answer = Answer::ALL[index % Answer::ALL.len()];
            LabelledPair {
                pair: SegmentPair { left, right },
                answer,
            }
        })
        .collect()
}

//! Measures the wall time of one reward-model training epoch on 1,000 clear pairs of
//! 50-step segments with Meta-World dial-turn widths (39 observation and 4 action features),
//! with the default ensemble (3 members, 3 × 256 hidden units, minibatch 128).
//!
//! Run with `cargo run --release --example reward_epoch_time`. The inputs are uniform random
//! values, because the cost of an epoch does not depend on them.

use std::time::Instant;

use anyhow::Result;
use clarify::Answer;
use clarify::learn::{PreferencePairs, RewardModel, RewardModelConfig};
use mimalloc::MiMalloc;
use ndarray::Array4;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

// The same allocator as the `clarify` binary, so the figure matches its training speed.
#[global_allocator]
static GLOBAL_ALLOCATOR: MiMalloc = MiMalloc;

const PAIRS: usize = 1000;
const STEPS: usize = 50;
const OBSERVATION_DIM: usize = 39;
const ACTION_DIM: usize = 4;
const MEASURED_EPOCHS: usize = 5;

fn main() -> Result<()> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut uniform = |width: usize| {
        Array4::from_shape_simple_fn((PAIRS, 2, STEPS, width), || {
            (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
    };
    let observations = uniform(OBSERVATION_DIM);
    let actions = uniform(ACTION_DIM);
    let answers: Vec<Answer> = (0..PAIRS)
        .map(|index| {
            if index % 2 == 0 {
                Answer::Left
            } else {
                Answer::Right
            }
        })
        .collect();
    let pairs = PreferencePairs {
        observations: observations.view(),
        actions: actions.view(),
        answers: &answers,
    };
    // One epoch per call and a target accuracy that no epoch exceeds, so that every call
    // runs exactly one epoch.
    let config = RewardModelConfig {
        max_epochs: 1,
        target_accuracy: 1.0,
        ..RewardModelConfig::default()
    };
    let mut model = RewardModel::new(config, OBSERVATION_DIM, ACTION_DIM)?;

    let mut seconds = Vec::with_capacity(MEASURED_EPOCHS);
    for epoch in 0..=MEASURED_EPOCHS {
        let start = Instant::now();
        let report = model.train(&pairs)?;
        let elapsed = start.elapsed().as_secs_f64();
        // The first epoch also warms up the allocator and the thread pool.
        let label = if epoch == 0 { "warm-up" } else { "measured" };
        println!(
            "epoch {epoch} ({label}): {elapsed:.3} s, loss {:.4}, accuracy {:.3}",
            report.loss, report.accuracy
        );
        if epoch > 0 {
            seconds.push(elapsed);
        }
    }

    seconds.sort_by(f64::total_cmp);
    println!(
        "median epoch time over {MEASURED_EPOCHS} epochs: {:.3} s ({PAIRS} pairs, {STEPS} steps)",
        seconds[seconds.len() / 2]
    );
    Ok(())
}

//! Measures IQL gradient steps per second with the `cpu` preset's networks (twin Q, V and
//! actor with 2 × 256 hidden units, minibatch 256) at Meta-World dial-turn widths (39
//! observation and 4 action features), and prints the median rate as JSON.
//!
//! Run with `cargo run --release --example iql_step`. The transitions are uniform random
//! values, because the cost of a step does not depend on them.

use std::time::Instant;

use anyhow::Result;
use clarify::learn::iql::{IqlConfig, IqlData, IqlTrainer};
use mimalloc::MiMalloc;
use ndarray::{Array1, Array2};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

// The same allocator as the `clarify` binary, so the figure matches its training speed.
#[global_allocator]
static GLOBAL_ALLOCATOR: MiMalloc = MiMalloc;

const TRANSITIONS: usize = 25_000;
const OBSERVATION_DIM: usize = 39;
const ACTION_DIM: usize = 4;
const WARM_UP_STEPS: usize = 20;
const STEPS_PER_ROUND: usize = 100;
const ROUNDS: usize = 7;

fn main() -> Result<()> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut uniform = |rows: usize, columns: usize| {
        Array2::from_shape_simple_fn((rows, columns), || {
            (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
    };
    let observations = uniform(TRANSITIONS, OBSERVATION_DIM);
    let next_observations = uniform(TRANSITIONS, OBSERVATION_DIM);
    let actions = uniform(TRANSITIONS, ACTION_DIM);
    let rewards = Array1::from_iter(uniform(TRANSITIONS, 1));
    let config = IqlConfig::cpu();
    let data = IqlData::new(
        observations,
        actions,
        next_observations,
        rewards,
        Array1::from_elem(TRANSITIONS, false),
        config.observation_std_epsilon,
    )?;
    let mut trainer = IqlTrainer::new(config.clone(), &data)?;

    // The first steps also warm up the allocator and the thread pool.
    for _ in 0..WARM_UP_STEPS {
        trainer.train_step()?;
    }
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..STEPS_PER_ROUND {
            trainer.train_step()?;
        }
        rates.push(STEPS_PER_ROUND as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let result = serde_json::json!({
        "benchmark": "iql_gradient_step",
        "observation_dim": OBSERVATION_DIM,
        "action_dim": ACTION_DIM,
        "batch_size": config.batch_size,
        "hidden_sizes": config.hidden_sizes,
        "rounds": ROUNDS,
        "steps_per_round": STEPS_PER_ROUND,
        "median_steps_per_second": median,
        "min_steps_per_second": rates[0],
        "max_steps_per_second": rates[rates.len() - 1],
        "available_parallelism": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        "cpu_preset_minutes_at_median": config.gradient_steps as f64 / median / 60.0,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

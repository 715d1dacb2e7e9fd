//! Measures the speed of `cpu`-preset encoder training iterations (batch 64, H 50) on
//! Meta-World dial-turn widths (39 observation and 4 action features), and prints the
//! median iterations per second as JSON.
//!
//! Run with `cargo run --release --example encoder_iteration [DATASET.npz]`. The default
//! dataset is `data/dial-turn.npz`; when it is missing, a synthetic dataset of 50 episodes
//! of 500 uniform random steps with the same widths takes its place, because the cost of an
//! iteration does not depend on the values. The preference buffer holds 200 pairs of
//! 50-step segments with answers cycling through left, right, can't tell and skip.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clarify::learn::encoder::{
    ClarifyEncoder, EncoderConfig, EncoderPreset, EncoderTrainingData, StateNormalization,
};
use clarify::select::{DatasetSegment, LabelledPair, SegmentPair};
use clarify::{Answer, Dataset, DatasetArrays};
use mimalloc::MiMalloc;
use ndarray::{Array1, Array2};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

// The same allocator as the `clarify` binary, so the figure matches its training speed.
#[global_allocator]
static GLOBAL_ALLOCATOR: MiMalloc = MiMalloc;

const SEGMENT_LENGTH: usize = 50;
const BUFFER_PAIRS: usize = 200;
const WARM_UP_ITERATIONS: usize = 2;
const MEASURED_ITERATIONS: usize = 10;

fn synthetic_dataset(rng: &mut Xoshiro256PlusPlus) -> Result<Dataset> {
    let (episodes, length) = (50, 500);
    let steps = episodes * length;
    let mut uniform = |width: usize| {
        Array2::from_shape_simple_fn((steps, width), || {
            (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
    };
    let observations = uniform(39);
    let actions = uniform(4);
    let timeouts = Array1::from_shape_fn(steps, |step| (step + 1) % length == 0);
    Ok(Dataset::from_arrays(
        "synthetic dial-turn widths",
        DatasetArrays {
            next_observations: observations.clone(),
            observations,
            actions,
            rewards: Array1::zeros(steps),
            terminals: Array1::from_elem(steps, false),
            timeouts,
            success: None,
            episode_ids: None,
            timesteps: None,
        },
    )?)
}

fn buffer(dataset: &Dataset, rng: &mut Xoshiro256PlusPlus) -> Vec<LabelledPair> {
    let episodes = dataset.episodes();
    let mut segment = || {
        let episode = (rng.next_u64() % episodes.len() as u64) as usize;
        let starts = episodes[episode].len - SEGMENT_LENGTH + 1;
        DatasetSegment {
            episode,
            start: (rng.next_u64() % starts as u64) as usize,
            length: SEGMENT_LENGTH,
        }
    };
    (0..BUFFER_PAIRS)
        .map(|index| LabelledPair {
            pair: SegmentPair {
                left: segment(),
                right: segment(),
            },
            answer: Answer::ALL[index % Answer::ALL.len()],
        })
        .collect()
}

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("data/dial-turn.npz"), PathBuf::from);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let (dataset, source) = if path.is_file() {
        (Dataset::load(&path)?, path.display().to_string())
    } else {
        (synthetic_dataset(&mut rng)?, "synthetic".to_owned())
    };
    let buffer = buffer(&dataset, &mut rng);
    let config = EncoderConfig::preset(EncoderPreset::Cpu);
    let normalization = StateNormalization::from_dataset(&dataset)?;
    let mut encoder = ClarifyEncoder::new(
        config.clone(),
        dataset.observation_dim(),
        dataset.action_dim(),
        normalization,
        0,
    )?;
    let data = EncoderTrainingData {
        dataset: &dataset,
        buffer: &buffer,
    };

    encoder.train(&data, WARM_UP_ITERATIONS)?;
    let mut seconds = Vec::with_capacity(MEASURED_ITERATIONS);
    for _ in 0..MEASURED_ITERATIONS {
        let started = Instant::now();
        encoder.train(&data, 1)?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = (seconds[MEASURED_ITERATIONS / 2 - 1] + seconds[MEASURED_ITERATIONS / 2]) / 2.0;
    let report = serde_json::json!({
        "dataset": source,
        "preset": "cpu",
        "batch_size": config.batch_size,
        "segment_length": SEGMENT_LENGTH,
        "observation_dim": dataset.observation_dim(),
        "action_dim": dataset.action_dim(),
        "measured_iterations": MEASURED_ITERATIONS,
        "median_seconds_per_iteration": median,
        "median_iterations_per_second": 1.0 / median,
        "available_parallelism": std::thread::available_parallelism().map_or(1, usize::from),
    });
    println!("{report}");
    Ok(())
}

//! Small stores and tiny settings for the training-job tests.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clarify::Answer;
use clarify::dataset::{Dataset, DatasetArrays};
use clarify::store::{ContentHash, DatasetMeta, NewAnswer, NewQuery, SegmentRef, Store};
use clarify::train::{TrainPreset, TrainSettings};
use ndarray::{Array1, Array2};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::json;

/// Steps per segment of the test queries.
pub const SEGMENT: usize = 10;

/// Builds a dataset of `episodes` episodes of `steps` steps with `observation_dim` and
/// `action_dim` features. The reward grows with the first action entry, so that segments
/// differ in return.
pub fn synthetic_dataset(
    episodes: usize,
    steps: usize,
    observation_dim: usize,
    action_dim: usize,
    seed: u64,
) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut uniform = move || (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
    let rows = episodes * steps;
    let mut observations = Array2::zeros((rows, observation_dim));
    let mut next_observations = Array2::zeros((rows, observation_dim));
    let mut actions = Array2::zeros((rows, action_dim));
    let mut rewards = Array1::zeros(rows);
    let mut timeouts = Array1::from_elem(rows, false);
    for episode in 0..episodes {
        let skill = episode as f32 / episodes as f32;
        let mut state: Vec<f32> = (0..observation_dim).map(|_| uniform() * 0.5).collect();
        for step in 0..steps {
            let row = episode * steps + step;
            for (column, value) in state.iter().enumerate() {
                observations[[row, column]] = *value;
            }
            for column in 0..action_dim {
                let action = if column == 0 {
                    (2.0 * skill - 1.0) * 0.8 + 0.2 * uniform()
                } else {
                    uniform()
                };
                actions[[row, column]] = action;
            }
            for (column, value) in state.iter_mut().enumerate() {
                *value += 0.05 * actions[[row, column % action_dim]] + 0.01 * uniform();
                next_observations[[row, column]] = *value;
            }
            rewards[row] = 1.0 + actions[[row, 0]];
            timeouts[row] = step + 1 == steps;
        }
    }
    let arrays = DatasetArrays {
        observations,
        actions,
        next_observations,
        rewards,
        terminals: Array1::from_elem(rows, false),
        timeouts,
        success: None,
        episode_ids: None,
        timesteps: None,
    };
    Dataset::from_arrays("synthetic", arrays).expect("the synthetic dataset is valid")
}

/// Creates a store at `path` with `dataset` and `answers` answered queries: pairs of
/// segments of different episodes, answered by their true returns, with every fifth answer
/// "can't tell" and every seventh a skip.
pub fn make_store(path: &Path, dataset: &Dataset, answers: usize, seed: u64) -> Result<()> {
    let mut store = Store::open(path)?;
    let meta = DatasetMeta {
        name: "synthetic".to_owned(),
        source_path: PathBuf::from("synthetic.npz"),
        content_hash: ContentHash::of_bytes(format!("synthetic {seed}").as_bytes()),
        sidecar_json: None,
        imported_at_unix_secs: 1.0,
    };
    let dataset_id = store.insert_dataset(&meta, dataset)?;
    let episodes = store.episodes(dataset_id)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let episode_len = dataset.episodes()[0].len;
    for index in 0..answers {
        let left_episode = rng.next_u32() as usize % episodes.len();
        let right_episode =
            (left_episode + 1 + rng.next_u32() as usize % (episodes.len() - 1)) % episodes.len();
        let start =
            |rng: &mut Xoshiro256PlusPlus| rng.next_u32() as usize % (episode_len - SEGMENT);
        let left = SegmentRef {
            episode: episodes[left_episode].id,
            start: start(&mut rng),
            length: SEGMENT,
        };
        let right = SegmentRef {
            episode: episodes[right_episode].id,
            start: start(&mut rng),
            length: SEGMENT,
        };
        let segment_return = |segment: SegmentRef, episode: usize| -> f32 {
            let first = dataset.episodes()[episode].start + segment.start;
            dataset.rewards().iter().skip(first).take(SEGMENT).sum()
        };
        let answer = if index % 7 == 6 {
            Answer::Skip
        } else if index % 5 == 4 {
            Answer::CantTell
        } else if segment_return(left, left_episode) >= segment_return(right, right_episode) {
            Answer::Left
        } else {
            Answer::Right
        };
        let query = store.insert_query(&NewQuery {
            left,
            right,
            selector: "random".to_owned(),
            encoder_version: None,
            created_at_unix_secs: 10.0 + index as f64,
            expires_at_unix_secs: None,
        })?;
        store.record_answer(&NewAnswer {
            query,
            operator: "test".to_owned(),
            answer,
            answered_at_unix_secs: 20.0 + index as f64,
            response_secs: 1.0,
        })?;
    }
    Ok(())
}

/// The JSON settings file content of a tiny configuration: networks a few units wide and
/// a handful of iterations, so a whole job runs in seconds.
pub fn tiny_settings_json(policy_steps: usize) -> serde_json::Value {
    json!({
        "encoder": {
            "hidden_size": 16,
            "layers": 1,
            "heads": 1,
            "z_dim": 4,
            "context_length": SEGMENT,
            "warmup_iterations": 1,
            "first_round_iterations": 4,
            "later_round_iterations": 2,
            "batch_size": 8,
            "quadrilateral_partners": 4
        },
        "reward": {"hidden_sizes": [16, 16], "max_epochs": 5, "batch_size": 16},
        "iql": {"gradient_steps": policy_steps, "batch_size": 32, "hidden_sizes": [32, 32]}
    })
}

/// Tiny settings for a library call.
pub fn tiny_settings(policy_steps: usize) -> TrainSettings {
    let mut settings = TrainSettings::preset(TrainPreset::Cpu);
    let tiny = tiny_settings_json(policy_steps);
    let merge = |base: serde_json::Value, changes: &serde_json::Value| {
        let mut base = base;
        for (key, value) in changes.as_object().expect("an object") {
            base[key] = value.clone();
        }
        base
    };
    settings.encoder = serde_json::from_value(merge(
        serde_json::to_value(&settings.encoder).unwrap(),
        &tiny["encoder"],
    ))
    .unwrap();
    settings.reward = serde_json::from_value(merge(
        serde_json::to_value(&settings.reward).unwrap(),
        &tiny["reward"],
    ))
    .unwrap();
    settings.iql = serde_json::from_value(merge(
        serde_json::to_value(&settings.iql).unwrap(),
        &tiny["iql"],
    ))
    .unwrap();
    settings.replay_round = 10;
    settings.min_clear_answers = 5;
    settings.encoder_progress_interval = 2;
    settings.iql_progress_interval = 50;
    settings
}

/// Writes the tiny settings to `folder/settings.json` and returns its path.
pub fn write_tiny_settings(folder: &Path, policy_steps: usize) -> Result<PathBuf> {
    let path = folder.join("settings.json");
    fs::write(&path, tiny_settings_json(policy_steps).to_string())?;
    Ok(path)
}

/// Returns the names in a folder, sorted.
pub fn folder_entries(path: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(path)?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

/// Returns every file of a folder with its bytes, sorted by name.
pub fn folder_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    folder_entries(path)?
        .into_iter()
        .map(|name| Ok((name.clone(), fs::read(path.join(&name))?)))
        .collect()
}

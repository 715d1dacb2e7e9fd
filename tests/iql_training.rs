//! IQL training: configuration presets and validation, data preparation, seeded
//! determinism, checkpoint resume and learning on a synthetic control problem.

use std::path::Path;

use anyhow::Result;
use clarify::Dataset;
use clarify::dataset::DatasetArrays;
use clarify::learn::iql::{
    IqlConfig, IqlData, IqlError, IqlPreset, IqlTrainOptions, IqlTrainer, PAPER_GRADIENT_STEPS,
};
use ndarray::{Array1, Array2};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Goal position of the synthetic point problem.
const GOAL: f32 = 0.6;
/// Largest position change per step, reached at action ±1.
const SPEED: f32 = 0.2;
const EPISODE_STEPS: usize = 20;

fn uniform(rng: &mut Xoshiro256PlusPlus, low: f32, high: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    low + (high - low) * unit
}

/// Draws a standard normal value with the Box-Muller transform.
fn normal(rng: &mut Xoshiro256PlusPlus) -> f32 {
    let u1 = uniform(rng, f32::EPSILON, 1.0);
    let u2 = uniform(rng, 0.0, 1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Moves the point on [−1, 1] and returns the next position and the reward −|p' − goal|.
fn point_step(position: f32, action: f32) -> (f32, f32) {
    let next = (position + SPEED * action.clamp(-1.0, 1.0)).clamp(-1.0, 1.0);
    (next, -(next - GOAL).abs())
}

/// Transitions of the point problem and the mean return of their episodes.
struct PointData {
    observations: Array2<f32>,
    actions: Array2<f32>,
    next_observations: Array2<f32>,
    rewards: Array1<f32>,
    mean_return: f64,
    /// Mean return of the noisy controller's episodes alone, the better half of the data.
    controller_mean_return: f64,
}

/// Records `episodes` episodes of a behaviour policy: half of them uniform random actions,
/// half a proportional controller towards the goal with Gaussian noise (σ 0.5).
fn point_data(episodes: usize, seed: u64) -> PointData {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let steps = episodes * EPISODE_STEPS;
    let mut observations = Vec::with_capacity(steps);
    let mut actions = Vec::with_capacity(steps);
    let mut next_observations = Vec::with_capacity(steps);
    let mut rewards = Vec::with_capacity(steps);
    let mut total_return = 0.0;
    let mut controller_return = 0.0;
    for episode in 0..episodes {
        let mut position = uniform(&mut rng, -1.0, 1.0);
        for _ in 0..EPISODE_STEPS {
            let action = if episode % 2 == 0 {
                uniform(&mut rng, -1.0, 1.0)
            } else {
                ((GOAL - position) / SPEED + 0.5 * normal(&mut rng)).clamp(-1.0, 1.0)
            };
            let (next, reward) = point_step(position, action);
            observations.push(position);
            actions.push(action);
            next_observations.push(next);
            rewards.push(reward);
            total_return += f64::from(reward);
            if episode % 2 == 1 {
                controller_return += f64::from(reward);
            }
            position = next;
        }
    }
    let column = |values: Vec<f32>| Array2::from_shape_vec((steps, 1), values).expect("N × 1");
    PointData {
        observations: column(observations),
        actions: column(actions),
        next_observations: column(next_observations),
        rewards: Array1::from(rewards),
        mean_return: total_return / episodes as f64,
        controller_mean_return: controller_return / (episodes / 2) as f64,
    }
}

/// Returns the mean return of the trainer's deterministic policy over `episodes` start
/// positions drawn from the data's start distribution.
fn policy_return(trainer: &IqlTrainer, episodes: usize, seed: u64) -> Result<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut positions: Vec<f32> = (0..episodes)
        .map(|_| uniform(&mut rng, -1.0, 1.0))
        .collect();
    let mut total = 0.0;
    for _ in 0..EPISODE_STEPS {
        let observations = Array2::from_shape_vec((episodes, 1), positions.clone())?;
        let actions = trainer.act(observations.view())?;
        for (position, action) in positions.iter_mut().zip(actions.column(0)) {
            let (next, reward) = point_step(*position, *action);
            total += f64::from(reward);
            *position = next;
        }
    }
    Ok(total / episodes as f64)
}

fn iql_data(data: &PointData, config: &IqlConfig) -> Result<IqlData> {
    Ok(IqlData::new(
        data.observations.clone(),
        data.actions.clone(),
        data.next_observations.clone(),
        data.rewards.clone(),
        Array1::from_elem(data.rewards.len(), false),
        config.observation_std_epsilon,
    )?)
}

/// Returns a small configuration that trains in seconds.
fn tiny_config(seed: u64) -> IqlConfig {
    IqlConfig {
        gradient_steps: 3000,
        batch_size: 64,
        hidden_sizes: vec![32, 32],
        q_learning_rate: 1e-3,
        value_learning_rate: 1e-3,
        actor_learning_rate: 1e-3,
        discount: 0.9,
        seed,
        ..IqlConfig::cpu()
    }
}

#[test]
fn presets_match_clarify_settings() {
    let cpu = IqlConfig::cpu();
    assert_eq!(IqlConfig::default(), cpu);
    assert_eq!(cpu.gradient_steps, 30_000);
    assert_eq!(cpu.batch_size, 256);
    assert_eq!(cpu.hidden_sizes, [256, 256]);
    assert_eq!(cpu.expectile, 0.7);
    assert_eq!(cpu.temperature, 3.0);
    assert_eq!(cpu.max_advantage_weight, 100.0);
    assert_eq!(cpu.discount, 0.99);
    assert_eq!(cpu.target_update_rate, 0.005);
    assert_eq!(cpu.q_learning_rate, 3e-4);
    assert_eq!(cpu.value_learning_rate, 3e-4);
    assert_eq!(cpu.actor_learning_rate, 3e-4);
    assert!(cpu.actor_cosine_schedule);
    assert_eq!((cpu.log_std_min, cpu.log_std_max), (-20.0, 2.0));
    assert!(!cpu.use_terminals);
    assert_eq!(cpu.observation_std_epsilon, 1e-3);

    let paper = IqlConfig::preset(IqlPreset::Paper);
    assert_eq!(paper.gradient_steps, PAPER_GRADIENT_STEPS);
    assert_eq!(paper.gradient_steps, 210_000);
    assert_eq!(
        IqlConfig {
            gradient_steps: cpu.gradient_steps,
            ..paper
        },
        cpu
    );
    assert!(cpu.validate().is_ok());
    assert!(IqlConfig::paper().validate().is_ok());
}

#[test]
fn preset_names_parse() {
    assert_eq!("cpu".parse::<IqlPreset>().ok(), Some(IqlPreset::Cpu));
    assert_eq!("paper".parse::<IqlPreset>().ok(), Some(IqlPreset::Paper));
    let error = "fast".parse::<IqlPreset>().unwrap_err().to_string();
    assert!(error.contains("preset = fast"), "{error}");
    assert!(error.contains("\"cpu\" or \"paper\""), "{error}");
}

#[test]
fn config_file_overrides_defaults() -> Result<()> {
    let config: IqlConfig = serde_json::from_str(r#"{"gradient_steps": 1000, "seed": 4}"#)?;
    assert_eq!(config.gradient_steps, 1000);
    assert_eq!(config.seed, 4);
    assert_eq!(config.batch_size, 256);

    let unknown = serde_json::from_str::<IqlConfig>(r#"{"gradient_step": 1000}"#);
    let message = unknown.unwrap_err().to_string();
    assert!(message.contains("gradient_step"), "{message}");

    let round_trip: IqlConfig = serde_json::from_str(&serde_json::to_string(&config)?)?;
    assert_eq!(round_trip, config);
    Ok(())
}

#[test]
fn config_validation_names_field() {
    let cases: Vec<(IqlConfig, &str)> = vec![
        (
            IqlConfig {
                gradient_steps: 0,
                ..IqlConfig::cpu()
            },
            "gradient_steps = 0",
        ),
        (
            IqlConfig {
                batch_size: 0,
                ..IqlConfig::cpu()
            },
            "batch_size = 0",
        ),
        (
            IqlConfig {
                hidden_sizes: vec![256, 0],
                ..IqlConfig::cpu()
            },
            "hidden_sizes = [256, 0]",
        ),
        (
            IqlConfig {
                expectile: 1.0,
                ..IqlConfig::cpu()
            },
            "expectile = 1",
        ),
        (
            IqlConfig {
                temperature: f64::NAN,
                ..IqlConfig::cpu()
            },
            "temperature = NaN",
        ),
        (
            IqlConfig {
                discount: 1.5,
                ..IqlConfig::cpu()
            },
            "discount = 1.5",
        ),
        (
            IqlConfig {
                target_update_rate: 0.0,
                ..IqlConfig::cpu()
            },
            "target_update_rate = 0",
        ),
        (
            IqlConfig {
                actor_learning_rate: -1.0,
                ..IqlConfig::cpu()
            },
            "actor_learning_rate = -1",
        ),
        (
            IqlConfig {
                log_std_min: 3.0,
                ..IqlConfig::cpu()
            },
            "log_std_min, log_std_max = 3, 2",
        ),
        (
            IqlConfig {
                observation_std_epsilon: 0.0,
                ..IqlConfig::cpu()
            },
            "observation_std_epsilon = 0",
        ),
    ];
    for (config, expected) in cases {
        let message = config.validate().unwrap_err().to_string();
        assert!(
            message.contains(expected),
            "{message} (expected {expected})"
        );
    }
}

#[test]
fn actor_schedule_decays_to_zero() {
    let config = IqlConfig {
        gradient_steps: 100,
        ..IqlConfig::cpu()
    };
    assert_eq!(config.actor_learning_rate_at(0), 3e-4);
    assert!((config.actor_learning_rate_at(50) - 1.5e-4).abs() < 1e-12);
    assert!(config.actor_learning_rate_at(100).abs() < 1e-12);
    let constant = IqlConfig {
        actor_cosine_schedule: false,
        ..config
    };
    assert_eq!(constant.actor_learning_rate_at(50), 3e-4);
}

#[test]
fn data_is_standardised_and_normalised() -> Result<()> {
    let observations =
        Array2::from_shape_vec((4, 2), vec![0.0, 5.0, 2.0, 5.0, 4.0, 5.0, 6.0, 5.0])?;
    let next_observations = &observations + 1.0;
    let actions = Array2::from_shape_vec((4, 1), vec![0.1, 0.2, 0.3, 0.4])?;
    let rewards = Array1::from(vec![-2.0, 0.0, 2.0, 6.0]);
    let data = IqlData::new(
        observations,
        actions,
        next_observations,
        rewards,
        Array1::from_elem(4, false),
        1e-3,
    )?;

    let normalization = data.normalization();
    assert_eq!(normalization.mean, [3.0, 5.0]);
    // Population standard deviation of 0, 2, 4, 6 is √5; the constant feature gets ε alone.
    assert!((normalization.std[0] - (5.0_f32.sqrt() + 1e-3)).abs() < 1e-6);
    assert!((normalization.std[1] - 1e-3).abs() < 1e-9);
    let standardized = data.observations();
    assert!((standardized[[0, 0]] + 3.0 / normalization.std[0]).abs() < 1e-6);
    assert_eq!(standardized[[2, 1]], 0.0);
    let next = data.next_observations();
    assert!((next[[0, 0]] - (1.0 - 3.0) / normalization.std[0]).abs() < 1e-6);

    assert_eq!(data.rewards().to_vec(), [0.0, 0.25, 0.5, 1.0]);
    assert_eq!(data.reward_scale().min, -2.0);
    assert_eq!(data.reward_scale().max, 6.0);
    Ok(())
}

#[test]
fn data_errors_name_the_problem() -> Result<()> {
    let observations = Array2::<f32>::zeros((3, 2));
    let actions = Array2::<f32>::zeros((3, 1));
    let rewards = Array1::from(vec![0.0, 1.0, 2.0]);
    let terminals = Array1::from_elem(3, false);
    let build = |observations: Array2<f32>, actions: Array2<f32>, rewards: Array1<f32>| {
        IqlData::new(
            observations.clone(),
            actions,
            observations,
            rewards,
            Array1::from_elem(3, false),
            1e-3,
        )
    };

    let message = build(observations.clone(), Array2::zeros((2, 1)), rewards.clone())
        .unwrap_err()
        .to_string();
    assert!(message.contains("actions has 2 rows"), "{message}");

    let message = build(
        observations.clone(),
        actions.clone(),
        Array1::from(vec![1.0; 3]),
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("[1, 1]"), "{message}");
    assert!(message.contains("not all equal"), "{message}");

    let mut bad = observations.clone();
    bad[[1, 1]] = f32::NAN;
    let message = build(bad, actions.clone(), rewards.clone())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("observations contains the non-finite value NaN at row 1, column 1"),
        "{message}"
    );

    let message = IqlData::new(
        observations.clone(),
        actions,
        Array2::zeros((3, 3)),
        rewards,
        terminals,
        1e-3,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("next_observations shape [3, 3]"),
        "{message}"
    );
    Ok(())
}

#[test]
fn training_is_deterministic_for_seed() -> Result<()> {
    let points = point_data(20, 1);
    let config = IqlConfig {
        gradient_steps: 30,
        ..tiny_config(7)
    };
    let data = iql_data(&points, &config)?;
    let run = |config: IqlConfig| -> Result<(Vec<f64>, Vec<f32>)> {
        let mut trainer = IqlTrainer::new(config, &data)?;
        let mut losses = Vec::new();
        for _ in 0..30 {
            let step = trainer.train_step()?;
            losses.extend([step.q, step.value, step.actor]);
        }
        Ok((losses, policy_weights(&trainer)))
    };

    let (first_losses, first_weights) = run(config.clone())?;
    let (second_losses, second_weights) = run(config.clone())?;
    assert_eq!(first_losses, second_losses);
    assert_eq!(first_weights, second_weights);
    assert!(first_losses.iter().all(|loss| loss.is_finite()));

    let (other_losses, _) = run(IqlConfig { seed: 8, ..config })?;
    assert_ne!(first_losses, other_losses);
    Ok(())
}

fn policy_weights(trainer: &IqlTrainer) -> Vec<f32> {
    trainer
        .policy_mlp()
        .layers
        .iter()
        .flat_map(|layer| layer.weight.iter().chain(&layer.bias).copied())
        .collect()
}

fn checkpoint_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn resume_matches_uninterrupted_run() -> Result<()> {
    let points = point_data(20, 2);
    let config = IqlConfig {
        gradient_steps: 40,
        ..tiny_config(3)
    };
    let data = iql_data(&points, &config)?;

    let mut uninterrupted = IqlTrainer::new(config.clone(), &data)?;
    let mut uninterrupted_losses = Vec::new();
    let options = IqlTrainOptions {
        progress_interval: 5,
        ..IqlTrainOptions::default()
    };
    let report = uninterrupted.train(&options, |progress| {
        uninterrupted_losses.push((progress.step, progress.losses));
    })?;
    assert_eq!(report.steps_run, 40);
    assert_eq!(report.completed_steps, 40);

    let folder = tempfile::tempdir()?;
    let checkpoints = folder.path().join("iql");
    let mut first_half = IqlTrainer::new(config, &data)?;
    let mut resumed_losses = Vec::new();
    let report = first_half.train(
        &IqlTrainOptions {
            until_step: Some(20),
            checkpoint_dir: Some(checkpoints.clone()),
            checkpoint_interval: 10,
            ..options.clone()
        },
        |progress| resumed_losses.push((progress.step, progress.losses)),
    )?;
    assert_eq!(report.completed_steps, 20);
    assert_eq!(
        checkpoint_names(&checkpoints)?,
        ["latest", "step-000000020"]
    );
    drop(first_half);

    let mut resumed = IqlTrainer::resume(&checkpoints, &data)?;
    assert_eq!(resumed.completed_steps(), 20);
    let report = resumed.train(&options, |progress| {
        resumed_losses.push((progress.step, progress.losses));
    })?;
    assert_eq!(report.steps_run, 20);
    assert_eq!(report.completed_steps, 40);
    let final_losses = report.final_losses.expect("20 steps ran");
    assert!(
        final_losses.q.is_finite()
            && final_losses.value.is_finite()
            && final_losses.actor.is_finite()
    );

    assert_eq!(resumed_losses, uninterrupted_losses);
    assert_eq!(policy_weights(&resumed), policy_weights(&uninterrupted));
    Ok(())
}

#[test]
fn resume_rejects_other_data() -> Result<()> {
    let config = IqlConfig {
        gradient_steps: 5,
        ..tiny_config(3)
    };
    let data = iql_data(&point_data(10, 4), &config)?;
    let folder = tempfile::tempdir()?;
    let trainer = IqlTrainer::new(config.clone(), &data)?;
    trainer.save_checkpoint(folder.path())?;

    let other = iql_data(&point_data(12, 5), &config)?;
    let message = IqlTrainer::resume(folder.path(), &other)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("transition count is 200 in the checkpoint but 240"),
        "{message}"
    );

    let missing = IqlTrainer::resume(&folder.path().join("missing"), &data).unwrap_err();
    assert!(
        matches!(missing, IqlError::CheckpointIo { action: "read", .. }),
        "{missing}"
    );
    Ok(())
}

#[test]
fn policy_beats_behaviour_data() -> Result<()> {
    let points = point_data(200, 11);
    let config = tiny_config(5);
    let data = iql_data(&points, &config)?;
    let mut trainer = IqlTrainer::new(config, &data)?;
    let untrained = policy_return(&trainer, 100, 99)?;

    let mut reports = 0;
    let report = trainer.train(&IqlTrainOptions::default(), |_| reports += 1)?;
    let trained = policy_return(&trainer, 100, 99)?;
    println!(
        "behaviour {:.2} (controller {:.2}), untrained {untrained:.2}, trained {trained:.2} \
         in {:.1} s",
        points.mean_return, points.controller_mean_return, report.seconds
    );
    assert_eq!(reports, 3);
    assert!(
        untrained < points.mean_return,
        "the untrained policy ({untrained:.2}) already beats the data ({:.2})",
        points.mean_return
    );
    assert!(
        trained > points.mean_return,
        "trained policy return {trained:.2} is not above the data's {:.2}",
        points.mean_return
    );
    assert!(
        trained > points.controller_mean_return,
        "trained policy return {trained:.2} is not above the noisy controller's {:.2}",
        points.controller_mean_return
    );
    Ok(())
}

#[test]
fn use_terminals_drops_bootstrap() -> Result<()> {
    // With use_terminals the Q target of a terminal transition is r alone, which changes
    // the loss of a step that samples one.
    let points = point_data(10, 6);
    let steps = points.rewards.len();
    let mut terminals = Array1::from_elem(steps, false);
    for end in (EPISODE_STEPS - 1..steps).step_by(EPISODE_STEPS) {
        terminals[end] = true;
    }

    let config = IqlConfig {
        gradient_steps: 3,
        ..tiny_config(1)
    };
    let with_flags = IqlData::new(
        points.observations.clone(),
        points.actions.clone(),
        points.next_observations.clone(),
        points.rewards.clone(),
        terminals,
        1e-3,
    )?;
    assert_eq!(
        with_flags.terminals().iter().filter(|&&t| t).count(),
        steps / EPISODE_STEPS
    );

    // A minibatch of 64 out of 200 transitions, 10 of them terminal.
    let q_loss = |config: IqlConfig| -> Result<f64> {
        let mut trainer = IqlTrainer::new(config, &with_flags)?;
        Ok(trainer.train_step()?.q)
    };
    let ignored = q_loss(config.clone())?;
    let used = q_loss(IqlConfig {
        use_terminals: true,
        ..config
    })?;
    assert_ne!(ignored, used);
    Ok(())
}

#[test]
fn dataset_transitions_keep_episode_boundaries() -> Result<()> {
    // Two episodes of two steps: the first ends by the time limit, the second terminates.
    let observations = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 10.0, 11.0])?;
    let next_observations = Array2::from_shape_vec((4, 1), vec![1.0, 2.0, 11.0, 12.0])?;
    let arrays = DatasetArrays {
        observations,
        actions: Array2::from_shape_vec((4, 1), vec![0.1, 0.2, 0.3, 0.4])?,
        next_observations,
        rewards: Array1::from(vec![9.0, 9.0, 9.0, 9.0]),
        terminals: Array1::from(vec![false, false, false, true]),
        timeouts: Array1::from(vec![false, true, false, false]),
        success: None,
        episode_ids: None,
        timesteps: None,
    };
    let dataset = Dataset::from_arrays("two-episodes.npz", arrays)?;
    let relabelled = Array1::from(vec![0.0, 1.0, 2.0, 4.0]);
    let data = IqlData::from_dataset(&dataset, relabelled.view(), 1e-3)?;

    assert_eq!(data.terminals().to_vec(), [false, false, false, true]);
    assert_eq!(data.rewards().to_vec(), [0.0, 0.25, 0.5, 1.0]);
    let std = data.normalization().std[0];
    let mean = data.normalization().mean[0];
    assert_eq!(mean, 5.5);
    // The last step of episode 0 keeps its own next observation (2), not episode 1's first
    // observation (10).
    let next = data.next_observations()[[1, 0]];
    assert!((next - (2.0 - mean) / std).abs() < 1e-6, "{next}");
    Ok(())
}

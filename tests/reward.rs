//! The reward model: Bradley-Terry loss, training on a synthetic preference problem, the
//! answers the loss ignores, seeded determinism, disagreement and reward normalization.

use anyhow::Result;
use burn::prelude::{Device, Tensor, TensorData};
use clarify::Answer;
use clarify::learn::{
    PreferencePairs, RewardModel, RewardModelConfig, RewardModelError, RewardScale,
    bradley_terry_loss, normalize_min_max,
};
use clarify::teacher::oracle_answer;
use ndarray::{Array3, Array4, ArrayView3, Axis, Slice};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const OBSERVATION_DIM: usize = 4;
const ACTION_DIM: usize = 2;
const SEGMENT_STEPS: usize = 10;

/// Segment pairs with uniform observations and actions in [−1, 1), labelled by the oracle on
/// the true reward r(s, a) = s[0].
struct SyntheticPairs {
    observations: Array4<f32>,
    actions: Array4<f32>,
    answers: Vec<Answer>,
}

impl SyntheticPairs {
    fn new(pair_count: usize, seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut uniform = |shape: (usize, usize, usize, usize)| {
            Array4::from_shape_simple_fn(shape, || {
                (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
        };
        let observations = uniform((pair_count, 2, SEGMENT_STEPS, OBSERVATION_DIM));
        let actions = uniform((pair_count, 2, SEGMENT_STEPS, ACTION_DIM));
        let answers = observations
            .outer_iter()
            .map(|pair| {
                let true_return = |segment: usize| {
                    let rewards = pair.index_axis(Axis(0), segment).column(0).to_owned();
                    rewards.iter().map(|&reward| f64::from(reward)).sum::<f64>()
                };
                oracle_answer(true_return(0), true_return(1))
            })
            .collect();
        Self {
            observations,
            actions,
            answers,
        }
    }

    fn pairs(&self) -> PreferencePairs<'_> {
        PreferencePairs {
            observations: self.observations.view(),
            actions: self.actions.view(),
            answers: &self.answers,
        }
    }
}

fn small_config(seed: u64) -> RewardModelConfig {
    RewardModelConfig {
        hidden_sizes: vec![32, 32],
        max_epochs: 3,
        batch_size: 16,
        seed,
        ..RewardModelConfig::default()
    }
}

/// Predicts every member's per-step rewards on a fixed probe batch.
fn probe(model: &RewardModel) -> Result<Array3<f32>> {
    let data = SyntheticPairs::new(4, 99);
    let observations = data.observations.index_axis(Axis(1), 0);
    let actions = data.actions.index_axis(Axis(1), 0);
    Ok(model.predict_rewards(observations, actions)?)
}

#[test]
fn bradley_terry_loss_matches_hand_computation() {
    let device = Device::flex();
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![1.0_f32, 0.0, 0.0, 2.0], [2, 2]),
        &device,
    );
    let targets = Tensor::<2>::from_data(
        TensorData::new(vec![1.0_f32, 0.0, 1.0, 0.0], [2, 2]),
        &device,
    );

    let loss = bradley_terry_loss(logits, targets).into_scalar::<f32>();

    // Pair 1: −ln(e¹ / (e¹ + e⁰)) = ln(1 + e⁻¹). Pair 2: −ln(e⁰ / (e⁰ + e²)) = ln(1 + e²).
    let expected = ((1.0 + (-1.0_f64).exp()).ln() + (1.0 + 2.0_f64.exp()).ln()) / 2.0;
    assert!(
        (f64::from(loss) - expected).abs() < 1e-6,
        "{loss} vs {expected}"
    );
}

#[test]
fn training_learns_synthetic_reward() -> Result<()> {
    let train = SyntheticPairs::new(300, 1);
    let held_out = SyntheticPairs::new(200, 2);
    let mut model = RewardModel::new(RewardModelConfig::default(), OBSERVATION_DIM, ACTION_DIM)?;
    let before = model.accuracy(&held_out.pairs())?;

    let report = model.train(&train.pairs())?;

    let after = model.accuracy(&held_out.pairs())?;
    assert_eq!(report.clear_pairs, 300);
    assert!(report.epochs >= 1, "{report:?}");
    assert!(report.epochs <= 50, "{report:?}");
    assert!(report.loss.is_finite(), "{report:?}");
    assert!(
        after >= 0.9,
        "held-out accuracy {after} (before training {before}), {report:?}"
    );
    Ok(())
}

#[test]
fn training_continues_from_current_weights() -> Result<()> {
    let train = SyntheticPairs::new(300, 3);
    let config = RewardModelConfig {
        hidden_sizes: vec![64, 64],
        target_accuracy: 0.9,
        ..RewardModelConfig::default()
    };
    let mut model = RewardModel::new(config, OBSERVATION_DIM, ACTION_DIM)?;

    let first = model.train(&train.pairs())?;
    let second = model.train(&train.pairs())?;

    assert!(first.reached_target, "{first:?}");
    assert!(first.epochs > 1, "{first:?}");
    assert_eq!(second.epochs, 1, "{second:?}");
    assert!(second.reached_target, "{second:?}");
    Ok(())
}

#[test]
fn cant_tell_and_skip_do_not_change_training() -> Result<()> {
    let mut clear = SyntheticPairs::new(20, 4);
    clear.answers.fill(Answer::Left);
    clear.answers[..10].fill(Answer::Right);
    let mut mixed = SyntheticPairs::new(60, 5);
    // Pair 3k + 1 of `mixed` is clear pair k, so the clear pairs keep their order; the others
    // are answered "can't tell" or "skip".
    for index in 0..60 {
        if index % 3 == 1 {
            let clear_index = index / 3;
            let observations = clear.observations.index_axis(Axis(0), clear_index);
            let actions = clear.actions.index_axis(Axis(0), clear_index);
            mixed
                .observations
                .index_axis_mut(Axis(0), index)
                .assign(&observations);
            mixed
                .actions
                .index_axis_mut(Axis(0), index)
                .assign(&actions);
            mixed.answers[index] = clear.answers[clear_index];
        } else if index % 2 == 0 {
            mixed.answers[index] = Answer::CantTell;
        } else {
            mixed.answers[index] = Answer::Skip;
        }
    }
    let mut clear_model = RewardModel::new(small_config(7), OBSERVATION_DIM, ACTION_DIM)?;
    let mut mixed_model = RewardModel::new(small_config(7), OBSERVATION_DIM, ACTION_DIM)?;

    let clear_report = clear_model.train(&clear.pairs())?;
    let mixed_report = mixed_model.train(&mixed.pairs())?;

    assert_eq!(clear_report.clear_pairs, 20);
    assert_eq!(mixed_report.clear_pairs, 20);
    assert_eq!(mixed_report.dropped_pairs, 40);
    assert_eq!(probe(&clear_model)?, probe(&mixed_model)?);
    Ok(())
}

#[test]
fn training_is_deterministic_for_seed() -> Result<()> {
    let train = SyntheticPairs::new(50, 6);
    let mut first = RewardModel::new(small_config(11), OBSERVATION_DIM, ACTION_DIM)?;
    let mut second = RewardModel::new(small_config(11), OBSERVATION_DIM, ACTION_DIM)?;
    let mut other_seed = RewardModel::new(small_config(12), OBSERVATION_DIM, ACTION_DIM)?;

    let first_report = first.train(&train.pairs())?;
    let second_report = second.train(&train.pairs())?;
    other_seed.train(&train.pairs())?;

    assert_eq!(first_report, second_report);
    assert_eq!(probe(&first)?, probe(&second)?);
    assert_ne!(probe(&first)?, probe(&other_seed)?);
    Ok(())
}

#[test]
fn only_unclear_answers_leave_model_untrained() -> Result<()> {
    let mut data = SyntheticPairs::new(6, 8);
    data.answers = vec![
        Answer::CantTell,
        Answer::Skip,
        Answer::CantTell,
        Answer::Skip,
        Answer::Skip,
        Answer::CantTell,
    ];
    let mut model = RewardModel::new(small_config(13), OBSERVATION_DIM, ACTION_DIM)?;
    let untouched = RewardModel::new(small_config(13), OBSERVATION_DIM, ACTION_DIM)?;

    let report = model.train(&data.pairs())?;

    assert_eq!(report.epochs, 0);
    assert_eq!(report.dropped_pairs, 6);
    assert_eq!(probe(&model)?, probe(&untouched)?);
    Ok(())
}

#[test]
fn predicted_rewards_have_member_batch_step_shape() -> Result<()> {
    let model = RewardModel::new(small_config(14), OBSERVATION_DIM, ACTION_DIM)?;
    let data = SyntheticPairs::new(5, 9);

    let rewards = model.predict_rewards(
        data.observations.index_axis(Axis(1), 1),
        data.actions.index_axis(Axis(1), 1),
    )?;

    assert_eq!(rewards.dim(), (3, 5, SEGMENT_STEPS));
    assert!(
        rewards.iter().all(|reward| reward.abs() < 1.0),
        "tanh output"
    );
    Ok(())
}

#[test]
fn relabel_is_ensemble_mean_of_step_rewards() -> Result<()> {
    let model = RewardModel::new(small_config(15), OBSERVATION_DIM, ACTION_DIM)?;
    let data = SyntheticPairs::new(3, 10);
    let observations = data.observations.index_axis(Axis(1), 0);
    let actions = data.actions.index_axis(Axis(1), 0);

    let per_member = model.predict_rewards(observations, actions)?;
    let flat_observations = observations.to_shape((3 * SEGMENT_STEPS, OBSERVATION_DIM))?;
    let flat_actions = actions.to_shape((3 * SEGMENT_STEPS, ACTION_DIM))?;
    let relabelled = model.relabel(flat_observations.view(), flat_actions.view())?;

    let mean = per_member.mean_axis(Axis(0)).expect("three members");
    assert_eq!(relabelled.len(), 3 * SEGMENT_STEPS);
    for (step, (&relabelled, &mean)) in relabelled.iter().zip(mean.iter()).enumerate() {
        assert!(
            (relabelled - mean).abs() < 1e-6,
            "step {step}: {relabelled} vs {mean}"
        );
    }
    Ok(())
}

#[test]
fn disagreement_is_member_spread_of_preference() -> Result<()> {
    let data = SyntheticPairs::new(8, 16);
    let ensemble = RewardModel::new(small_config(17), OBSERVATION_DIM, ACTION_DIM)?;
    let single = RewardModel::new(
        RewardModelConfig {
            members: 1,
            ..small_config(17)
        },
        OBSERVATION_DIM,
        ACTION_DIM,
    )?;

    let spread = ensemble.disagreement(data.observations.view(), data.actions.view())?;
    let single_spread = single.disagreement(data.observations.view(), data.actions.view())?;

    assert_eq!(spread.len(), 8);
    assert!(
        spread.iter().all(|&value| (0.0..=0.5).contains(&value)),
        "{spread:?}"
    );
    assert!(spread.iter().any(|&value| value > 0.0), "{spread:?}");
    assert_eq!(single_spread, vec![0.0; 8]);
    Ok(())
}

/// Returns segment `side` of pair `pair` as a batch of one, `[1, T, width]`.
fn one_segment(array: &Array4<f32>, pair: usize, side: usize) -> ArrayView3<'_, f32> {
    array
        .slice_axis(Axis(0), Slice::from(pair..pair + 1))
        .index_axis_move(Axis(1), side)
}

#[test]
fn disagreement_matches_hand_computation_from_predictions() -> Result<()> {
    let data = SyntheticPairs::new(2, 18);
    let model = RewardModel::new(small_config(19), OBSERVATION_DIM, ACTION_DIM)?;

    let spread = model.disagreement(data.observations.view(), data.actions.view())?;

    assert_eq!(spread.len(), 2);
    for (pair, &pair_spread) in spread.iter().enumerate() {
        let left = model.predict_rewards(
            one_segment(&data.observations, pair, 0),
            one_segment(&data.actions, pair, 0),
        )?;
        let right = model.predict_rewards(
            one_segment(&data.observations, pair, 1),
            one_segment(&data.actions, pair, 1),
        )?;
        let probabilities: Vec<f64> = (0..3)
            .map(|member| {
                let sum = |rewards: &Array3<f32>| {
                    let steps = rewards.index_axis(Axis(0), member);
                    steps.row(0).iter().map(|&r| f64::from(r)).sum::<f64>()
                };
                let (left, right) = (sum(&left), sum(&right));
                left.exp() / (left.exp() + right.exp())
            })
            .collect();
        let mean = probabilities.iter().sum::<f64>() / 3.0;
        let std = (probabilities
            .iter()
            .map(|p| (p - mean).powi(2))
            .sum::<f64>()
            / 3.0)
            .sqrt();
        assert!(
            (pair_spread - std).abs() < 1e-9,
            "pair {pair}: {pair_spread} vs {std}"
        );
    }
    Ok(())
}

#[test]
fn min_max_normalization_maps_extremes_to_unit_interval() -> Result<()> {
    let mut rewards = vec![0.5_f32, -1.5, 2.5, 0.0];

    let scale = normalize_min_max(&mut rewards)?;

    assert_eq!(
        scale,
        RewardScale {
            min: -1.5,
            max: 2.5
        }
    );
    assert_eq!(rewards, [0.5, 0.0, 1.0, 0.375]);
    assert_eq!(scale.apply(-1.5), 0.0);
    assert_eq!(scale.apply(2.5), 1.0);
    Ok(())
}

#[test]
fn min_max_normalization_rejects_constant_and_nan() {
    for values in [vec![0.3_f32; 4], vec![0.1, f32::NAN, 0.5], vec![]] {
        let mut rewards = values.clone();

        let error = normalize_min_max(&mut rewards).unwrap_err();

        assert!(
            matches!(error, RewardModelError::Normalization { .. }),
            "{error}"
        );
        let unchanged = rewards
            .iter()
            .zip(&values)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(unchanged, "{rewards:?}");
    }
}

#[test]
fn relabelled_rewards_normalize_to_unit_interval() -> Result<()> {
    let model = RewardModel::new(small_config(20), OBSERVATION_DIM, ACTION_DIM)?;
    let data = SyntheticPairs::new(10, 21);
    let observations = data
        .observations
        .to_shape((10 * 2 * SEGMENT_STEPS, OBSERVATION_DIM))?;
    let actions = data
        .actions
        .to_shape((10 * 2 * SEGMENT_STEPS, ACTION_DIM))?;
    let mut rewards = model.relabel(observations.view(), actions.view())?;

    let raw = rewards.clone();
    let scale = normalize_min_max(rewards.as_slice_mut().expect("contiguous"))?;

    let min_index = raw
        .iter()
        .position(|&reward| reward == scale.min)
        .expect("min");
    let max_index = raw
        .iter()
        .position(|&reward| reward == scale.max)
        .expect("max");
    assert_eq!(rewards[min_index], 0.0);
    assert_eq!(rewards[max_index], 1.0);
    assert!(rewards.iter().all(|reward| (0.0..=1.0).contains(reward)));
    Ok(())
}

#[test]
fn config_defaults_and_unknown_fields() -> Result<()> {
    let config: RewardModelConfig = serde_json::from_str("{}")?;
    let error = serde_json::from_str::<RewardModelConfig>(r#"{"hidden": [64]}"#).unwrap_err();

    assert_eq!(config, RewardModelConfig::default());
    assert_eq!(config.members, 3);
    assert_eq!(config.hidden_sizes, [256, 256, 256]);
    assert_eq!(config.learning_rate, 3e-4);
    assert_eq!(config.batch_size, 128);
    assert_eq!(config.max_epochs, 50);
    assert_eq!(config.target_accuracy, 0.97);
    assert!(error.to_string().contains("hidden"), "{error}");
    Ok(())
}

#[test]
fn invalid_config_names_field() {
    let cases = [
        (
            RewardModelConfig {
                members: 0,
                ..RewardModelConfig::default()
            },
            "members",
        ),
        (
            RewardModelConfig {
                hidden_sizes: vec![64, 0],
                ..RewardModelConfig::default()
            },
            "hidden_sizes",
        ),
        (
            RewardModelConfig {
                learning_rate: -1.0,
                ..RewardModelConfig::default()
            },
            "learning_rate",
        ),
        (
            RewardModelConfig {
                batch_size: 0,
                ..RewardModelConfig::default()
            },
            "batch_size",
        ),
        (
            RewardModelConfig {
                target_accuracy: 1.5,
                ..RewardModelConfig::default()
            },
            "target_accuracy",
        ),
    ];
    for (config, field) in cases {
        let error = RewardModel::new(config, OBSERVATION_DIM, ACTION_DIM).unwrap_err();
        assert!(error.to_string().contains(field), "{field}: {error}");
    }
}

#[test]
fn mismatched_shapes_rejected() -> Result<()> {
    let mut model = RewardModel::new(small_config(22), OBSERVATION_DIM + 1, ACTION_DIM)?;
    let data = SyntheticPairs::new(3, 23);

    let error = model.train(&data.pairs()).unwrap_err();
    assert!(error.to_string().contains("observations"), "{error}");

    let model = RewardModel::new(small_config(22), OBSERVATION_DIM, ACTION_DIM)?;
    let short_answers = PreferencePairs {
        answers: &data.answers[..2],
        ..data.pairs()
    };
    let mut model_for_answers = model;
    let error = model_for_answers.train(&short_answers).unwrap_err();
    assert!(
        matches!(
            error,
            RewardModelError::Length {
                found: 2,
                expected: 3,
                ..
            }
        ),
        "{error}"
    );
    Ok(())
}

//! The reward model: an ensemble of MLPs r̂(s, a) trained on preference answers with the
//! Bradley-Terry loss, on burn's `flex` CPU backend.
//!
//! Each member maps the concatenation of an observation and an action to a per-step reward
//! in (−1, 1). The predicted return of a segment is the sum of its per-step rewards, and
//! P(σ0 ≻ σ1) is the softmax of the two predicted returns. Training uses only clear answers
//! (left, right): "can't tell" and "skip" answers carry no preference and are dropped before
//! the loss, so adding them never changes the trained weights.
//!
//! The model keeps its weights and its Adam state across [`RewardModel::train`] calls, so
//! each call continues where the previous one stopped. A model built with the same
//! configuration and trained on the same calls ends with the same weights: the weights and
//! the minibatch orders come from one xoshiro256++ generator seeded from the configuration.

use std::fmt;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::{Device, Int, Tensor, TensorData};
use ndarray::{Array1, Array3, ArrayView2, ArrayView3, ArrayView4, Axis};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::ensemble::{Ensemble, RewardMlp, bradley_terry_loss, shuffle};
use super::error::RewardModelError;
use super::reward_config::RewardModelConfig;
use crate::answer::Answer;
use crate::dataset::Dataset;

/// Rows per forward pass when predicting, which bounds the memory of the hidden activations
/// (8192 rows × 256 units × 4 bytes = 8 MiB per layer).
const PREDICTION_CHUNK_ROWS: usize = 8192;

/// Labelled segment pairs for training.
///
/// Axis 1 of both arrays contains the left segment at index 0 and the right one at index 1.
#[derive(Clone, Copy, Debug)]
pub struct PreferencePairs<'a> {
    /// `[pairs, 2, T, observation_dim]`.
    pub observations: ArrayView4<'a, f32>,
    /// `[pairs, 2, T, action_dim]`.
    pub actions: ArrayView4<'a, f32>,
    /// One answer per pair.
    pub answers: &'a [Answer],
}

/// Outcome of one [`RewardModel::train`] call.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingReport {
    /// Pairs with a left or right answer, the ones that trained the model.
    pub clear_pairs: usize,
    /// Pairs dropped because their answer was "can't tell" or "skip".
    pub dropped_pairs: usize,
    /// Epochs run, 0 when there was no clear pair.
    pub epochs: usize,
    /// Mean over the last epoch's minibatches of the loss summed over members, or NaN
    /// without epochs.
    pub loss: f64,
    /// Mean over members of the last epoch's training accuracy, or NaN without epochs.
    pub accuracy: f64,
    /// Whether training stopped because the accuracy exceeded the target.
    pub reached_target: bool,
}

/// Minimum and maximum of relabelled rewards, kept to map later rewards the same way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RewardScale {
    pub min: f32,
    pub max: f32,
}

impl RewardScale {
    /// Maps `reward` to (reward − min) / (max − min), so min goes to 0 and max to 1.
    pub fn apply(&self, reward: f32) -> f32 {
        (reward - self.min) / (self.max - self.min)
    }
}

/// Min-max normalizes `rewards` in place to [0, 1] and returns the minimum and maximum.
///
/// Fails without changing `rewards` when they are empty, contain a non-finite value or are
/// all equal, because then no affine map sends them onto [0, 1].
pub fn normalize_min_max(rewards: &mut [f32]) -> Result<RewardScale, RewardModelError> {
    let mut min = f32::INFINITY;
    let mut max = f32::NEG_INFINITY;
    for &reward in rewards.iter() {
        // NaN fails both comparisons, so it is caught by the finiteness check below.
        min = if reward < min || reward.is_nan() {
            reward
        } else {
            min
        };
        max = if reward > max || reward.is_nan() {
            reward
        } else {
            max
        };
    }
    if !(min.is_finite() && max.is_finite() && max > min) {
        return Err(RewardModelError::Normalization { min, max });
    }

    let scale = RewardScale { min, max };
    for reward in rewards.iter_mut() {
        *reward = scale.apply(*reward);
    }
    Ok(scale)
}

/// An ensemble of reward MLPs with its optimizer state.
pub struct RewardModel {
    config: RewardModelConfig,
    observation_dim: usize,
    action_dim: usize,
    /// The `flex` device with autodiff, on which the trained parameters live.
    device: Device,
    ensemble: Ensemble,
    optimizer: ModuleOptimizer,
    rng: Xoshiro256PlusPlus,
}

impl fmt::Debug for RewardModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewardModel")
            .field("config", &self.config)
            .field("observation_dim", &self.observation_dim)
            .field("action_dim", &self.action_dim)
            .finish_non_exhaustive()
    }
}

impl RewardModel {
    /// Creates an untrained ensemble for observations of `observation_dim` and actions of
    /// `action_dim` features, on the `flex` CPU backend.
    pub fn new(
        config: RewardModelConfig,
        observation_dim: usize,
        action_dim: usize,
    ) -> Result<Self, RewardModelError> {
        config.validate()?;
        if observation_dim + action_dim == 0 {
            return Err(RewardModelError::InvalidConfig {
                field: "observation_dim + action_dim",
                value: "0".to_owned(),
                expected: "at least 1 input feature",
            });
        }

        let device = Device::flex().autodiff();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let sizes = layer_sizes(&config, observation_dim + action_dim);
        let ensemble = Ensemble::new(
            config.members,
            &sizes,
            config.leaky_relu_slope,
            &mut rng,
            &device,
        );
        let optimizer = AdamConfig::new().with_epsilon(config.adam_epsilon).init();
        Ok(Self {
            config,
            observation_dim,
            action_dim,
            device,
            ensemble,
            optimizer,
            rng,
        })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &RewardModelConfig {
        &self.config
    }

    /// Returns the observation width.
    pub fn observation_dim(&self) -> usize {
        self.observation_dim
    }

    /// Returns the action width.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// Returns the layer widths of each member, from the input width to the output width 1.
    pub fn layer_sizes(&self) -> Vec<usize> {
        layer_sizes(&self.config, self.observation_dim + self.action_dim)
    }

    /// Trains on the clear answers of `pairs` for up to `max_epochs` epochs.
    ///
    /// Each epoch visits every clear pair once per member, each member in its own random
    /// order, in minibatches of `batch_size` pairs (the last one smaller). A step sums the
    /// members' Bradley-Terry losses and updates all members with one Adam step. Training
    /// stops after the first epoch whose mean training accuracy exceeds `target_accuracy`.
    pub fn train(
        &mut self,
        pairs: &PreferencePairs<'_>,
    ) -> Result<TrainingReport, RewardModelError> {
        let (pair_count, _) = self.check_pair_shapes(pairs.observations, pairs.actions)?;
        if pairs.answers.len() != pair_count {
            return Err(RewardModelError::Length {
                what: "answers",
                found: pairs.answers.len(),
                expected: pair_count,
            });
        }
        let clear: Vec<usize> = (0..pair_count)
            .filter(|&index| pairs.answers[index].is_clear())
            .collect();
        let mut report = TrainingReport {
            clear_pairs: clear.len(),
            dropped_pairs: pair_count - clear.len(),
            epochs: 0,
            loss: f64::NAN,
            accuracy: f64::NAN,
            reached_target: false,
        };
        if clear.is_empty() {
            tracing::info!(
                dropped_pairs = report.dropped_pairs,
                "reward model not trained: no clear answers"
            );
            return Ok(report);
        }

        let data = TrainingData::new(self, pairs, &clear);
        let mut ensemble = self.ensemble.clone();
        while report.epochs < self.config.max_epochs && !report.reached_target {
            let (next, loss, accuracy) = self.run_epoch(ensemble, &data);
            ensemble = next;
            report.epochs += 1;
            report.loss = loss;
            report.accuracy = accuracy;
            report.reached_target = accuracy > self.config.target_accuracy;
            tracing::debug!(epoch = report.epochs, loss, accuracy, "reward model epoch");
        }
        self.ensemble = ensemble;

        tracing::info!(
            clear_pairs = report.clear_pairs,
            dropped_pairs = report.dropped_pairs,
            epochs = report.epochs,
            loss = report.loss,
            accuracy = report.accuracy,
            reached_target = report.reached_target,
            "trained reward model"
        );
        Ok(report)
    }

    /// Runs one epoch and returns the updated ensemble, the mean summed loss and the mean
    /// training accuracy.
    fn run_epoch(&mut self, mut ensemble: Ensemble, data: &TrainingData) -> (Ensemble, f64, f64) {
        let member_count = self.config.members;
        let orders: Vec<Vec<usize>> = (0..member_count)
            .map(|_| {
                let mut order: Vec<usize> = (0..data.pairs).collect();
                shuffle(&mut order, &mut self.rng);
                order
            })
            .collect();

        let mut correct = vec![0_usize; member_count];
        let mut loss_total = 0.0;
        let mut batch_count = 0;
        for start in (0..data.pairs).step_by(self.config.batch_size) {
            let end = (start + self.config.batch_size).min(data.pairs);
            let mut batch_loss: Option<Tensor<1>> = None;
            for (member_index, member) in ensemble.members.iter().enumerate() {
                let batch = &orders[member_index][start..end];
                let (loss, member_correct) = data.member_loss(member, batch, &self.device);
                correct[member_index] += member_correct;
                batch_loss = Some(match batch_loss {
                    Some(total) => total + loss,
                    None => loss,
                });
            }
            let batch_loss = batch_loss.expect("the configuration has at least one member");

            loss_total += f64::from(batch_loss.clone().into_scalar::<f32>());
            batch_count += 1;
            let gradients = GradientsParams::from_grads(batch_loss.backward(), &ensemble);
            ensemble = self
                .optimizer
                .step(self.config.learning_rate, ensemble, gradients);
        }

        let accuracy = correct
            .iter()
            .map(|&count| count as f64 / data.pairs as f64)
            .sum::<f64>()
            / member_count as f64;
        (ensemble, loss_total / f64::from(batch_count), accuracy)
    }

    /// Predicts per-step rewards of every member for `observations` `[batch, T,
    /// observation_dim]` and `actions` `[batch, T, action_dim]`, as `[members, batch, T]`.
    pub fn predict_rewards(
        &self,
        observations: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
    ) -> Result<Array3<f32>, RewardModelError> {
        let (batch, steps) = self.check_step_shapes(observations, actions)?;
        let mut rows = Vec::with_capacity(batch * steps * (self.observation_dim + self.action_dim));
        for (observations, actions) in observations.outer_iter().zip(actions.outer_iter()) {
            extend_step_rows(&mut rows, observations, actions);
        }
        let rewards = self.predict_rows(&rows);
        let flat: Vec<f32> = rewards.into_iter().flatten().collect();
        Ok(
            Array3::from_shape_vec((self.config.members, batch, steps), flat)
                .expect("each member predicts batch · T rewards"),
        )
    }

    /// Returns, per pair, the standard deviation across members (population, divided by the
    /// member count) of P(σ0 ≻ σ1) = 1 / (1 + exp(R̂1 − R̂0)), with R̂ a member's summed
    /// per-step rewards. High values mark pairs on which the members disagree.
    pub fn disagreement(
        &self,
        observations: ArrayView4<'_, f32>,
        actions: ArrayView4<'_, f32>,
    ) -> Result<Vec<f64>, RewardModelError> {
        let returns = self.predict_pair_returns(observations, actions)?;
        let member_count = self.config.members as f64;
        let disagreement = returns
            .iter()
            .map(|member_returns| {
                let probabilities: Vec<f64> = member_returns
                    .iter()
                    .map(|&[left, right]| logistic(left - right))
                    .collect();
                let mean = probabilities.iter().sum::<f64>() / member_count;
                let variance = probabilities
                    .iter()
                    .map(|p| (p - mean).powi(2))
                    .sum::<f64>()
                    / member_count;
                variance.sqrt()
            })
            .collect();
        Ok(disagreement)
    }

    /// Returns the share of clear answers in `pairs` that the ensemble-mean predicted
    /// returns agree with (left when R̂0 > R̂1), or NaN when there is no clear answer.
    pub fn accuracy(&self, pairs: &PreferencePairs<'_>) -> Result<f64, RewardModelError> {
        let returns = self.predict_pair_returns(pairs.observations, pairs.actions)?;
        if pairs.answers.len() != returns.len() {
            return Err(RewardModelError::Length {
                what: "answers",
                found: pairs.answers.len(),
                expected: returns.len(),
            });
        }
        let mut clear = 0;
        let mut agreeing = 0;
        for (member_returns, &answer) in returns.iter().zip(pairs.answers) {
            if !answer.is_clear() {
                continue;
            }
            let margin: f64 = member_returns
                .iter()
                .map(|[left, right]| left - right)
                .sum();
            let predicted = if margin > 0.0 {
                Answer::Left
            } else {
                Answer::Right
            };
            clear += 1;
            agreeing += usize::from(predicted == answer);
        }
        Ok(agreeing as f64 / clear as f64)
    }

    /// Predicts the ensemble-mean reward of every step of `observations` `[steps,
    /// observation_dim]` and `actions` `[steps, action_dim]`.
    pub fn relabel(
        &self,
        observations: ArrayView2<'_, f32>,
        actions: ArrayView2<'_, f32>,
    ) -> Result<Array1<f32>, RewardModelError> {
        self.check_width("observations", observations.shape(), self.observation_dim)?;
        self.check_width("actions", actions.shape(), self.action_dim)?;
        if observations.nrows() != actions.nrows() {
            return Err(RewardModelError::Length {
                what: "action rows",
                found: actions.nrows(),
                expected: observations.nrows(),
            });
        }

        let mut rows =
            Vec::with_capacity(observations.nrows() * (self.observation_dim + self.action_dim));
        extend_step_rows(&mut rows, observations, actions);
        let per_member = self.predict_rows(&rows);
        let member_count = self.config.members as f32;
        let mean = (0..observations.nrows())
            .map(|row| per_member.iter().map(|rewards| rewards[row]).sum::<f32>() / member_count)
            .collect();
        Ok(Array1::from_vec(mean))
    }

    /// Predicts the ensemble-mean reward of every transition of `dataset`.
    pub fn relabel_dataset(&self, dataset: &Dataset) -> Result<Array1<f32>, RewardModelError> {
        self.relabel(dataset.observations(), dataset.actions())
    }

    /// Returns the inference copy of the ensemble, without autodiff.
    pub(crate) fn inference_ensemble(&self) -> Ensemble {
        self.ensemble.valid()
    }

    /// Runs every member on `rows` (`[row count, input_dim]`, row-major) in chunks and
    /// returns one reward per row and member.
    fn predict_rows(&self, rows: &[f32]) -> Vec<Vec<f32>> {
        let input_dim = self.observation_dim + self.action_dim;
        let ensemble = self.inference_ensemble();
        let device = self.device.clone().without_autodiff();
        let mut rewards = vec![Vec::with_capacity(rows.len() / input_dim); ensemble.members.len()];
        for chunk in rows.chunks(PREDICTION_CHUNK_ROWS * input_dim) {
            let data = TensorData::new(chunk.to_vec(), [chunk.len() / input_dim, input_dim]);
            let input: Tensor<2> = Tensor::from_data(data, &device);
            for (member, member_rewards) in ensemble.members.iter().zip(&mut rewards) {
                let output = member.forward(input.clone()).into_data();
                let values = output
                    .as_slice::<f32>()
                    .expect("the flex backend computes in f32");
                member_rewards.extend_from_slice(values);
            }
        }
        rewards
    }

    /// Predicts each member's summed rewards of both segments of every pair, in f64, as
    /// `[pair][member] = [left, right]`.
    fn predict_pair_returns(
        &self,
        observations: ArrayView4<'_, f32>,
        actions: ArrayView4<'_, f32>,
    ) -> Result<Vec<Vec<[f64; 2]>>, RewardModelError> {
        let (pair_count, steps) = self.check_pair_shapes(observations, actions)?;
        let all: Vec<usize> = (0..pair_count).collect();
        let rows = pair_rows(observations, actions, &all);
        let per_member = self.predict_rows(&rows);

        let segment_sum = |rewards: &[f32], segment: usize| -> f64 {
            let start = segment * steps;
            rewards[start..start + steps]
                .iter()
                .map(|&reward| f64::from(reward))
                .sum()
        };
        let returns = (0..pair_count)
            .map(|pair| {
                per_member
                    .iter()
                    .map(|rewards| {
                        [
                            segment_sum(rewards, 2 * pair),
                            segment_sum(rewards, 2 * pair + 1),
                        ]
                    })
                    .collect()
            })
            .collect();
        Ok(returns)
    }

    fn check_width(
        &self,
        what: &'static str,
        shape: &[usize],
        width: usize,
    ) -> Result<(), RewardModelError> {
        if shape.last() != Some(&width) {
            return Err(RewardModelError::Shape {
                what,
                found: shape.to_vec(),
                expected: format!("last axis {width}, the width the reward model was built for"),
            });
        }
        Ok(())
    }

    /// Checks `[batch, T, width]` inputs and returns batch and T.
    fn check_step_shapes(
        &self,
        observations: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
    ) -> Result<(usize, usize), RewardModelError> {
        self.check_width("observations", observations.shape(), self.observation_dim)?;
        self.check_width("actions", actions.shape(), self.action_dim)?;
        let (batch, steps, _) = observations.dim();
        if actions.shape()[..2] != [batch, steps] {
            return Err(RewardModelError::Shape {
                what: "actions",
                found: actions.shape().to_vec(),
                expected: format!(
                    "[{batch}, {steps}, {}] like the observations",
                    self.action_dim
                ),
            });
        }
        Ok((batch, steps))
    }

    /// Checks `[pairs, 2, T, width]` inputs and returns the pair count and T.
    fn check_pair_shapes(
        &self,
        observations: ArrayView4<'_, f32>,
        actions: ArrayView4<'_, f32>,
    ) -> Result<(usize, usize), RewardModelError> {
        self.check_width("observations", observations.shape(), self.observation_dim)?;
        self.check_width("actions", actions.shape(), self.action_dim)?;
        let (pairs, segments, steps, _) = observations.dim();
        if segments != 2 || steps == 0 {
            return Err(RewardModelError::Shape {
                what: "observations",
                found: observations.shape().to_vec(),
                expected: format!("[pairs, 2, T ≥ 1, {}]", self.observation_dim),
            });
        }
        if actions.shape()[..3] != [pairs, 2, steps] {
            return Err(RewardModelError::Shape {
                what: "actions",
                found: actions.shape().to_vec(),
                expected: format!(
                    "[{pairs}, 2, {steps}, {}] like the observations",
                    self.action_dim
                ),
            });
        }
        Ok((pairs, steps))
    }
}

/// The clear pairs of one training call as tensors on the autodiff device.
struct TrainingData {
    /// `[pairs, 2, T, input_dim]`.
    inputs: Tensor<4>,
    /// Whether the left segment is preferred, per pair.
    left_preferred: Vec<bool>,
    pairs: usize,
    steps: usize,
}

impl TrainingData {
    fn new(model: &RewardModel, pairs: &PreferencePairs<'_>, clear: &[usize]) -> Self {
        let steps = pairs.observations.dim().2;
        let input_dim = model.observation_dim + model.action_dim;
        let rows = pair_rows(pairs.observations, pairs.actions, clear);
        let data = TensorData::new(rows, [clear.len(), 2, steps, input_dim]);
        Self {
            inputs: Tensor::from_data(data, &model.device),
            left_preferred: clear
                .iter()
                .map(|&index| pairs.answers[index] == Answer::Left)
                .collect(),
            pairs: clear.len(),
            steps,
        }
    }

    /// Computes one member's Bradley-Terry loss on the pairs `batch` and counts the pairs
    /// whose predicted preference matches the answer.
    fn member_loss(
        &self,
        member: &RewardMlp,
        batch: &[usize],
        device: &Device,
    ) -> (Tensor<1>, usize) {
        let indices: Vec<i64> = batch.iter().map(|&index| index as i64).collect();
        let indices = Tensor::<1, Int>::from_data(TensorData::new(indices, [batch.len()]), device);
        let inputs = self.inputs.clone().select(0, indices);

        let rewards = member.forward(inputs);
        let logits: Tensor<2> = rewards.sum_dim(2).reshape([batch.len(), 2]);
        let mut targets = Vec::with_capacity(2 * batch.len());
        for &index in batch {
            let left = self.left_preferred[index];
            targets.extend([f32::from(u8::from(left)), f32::from(u8::from(!left))]);
        }
        let targets = Tensor::from_data(TensorData::new(targets, [batch.len(), 2]), device);

        let logit_values = logits.to_data();
        let logit_values = logit_values
            .as_slice::<f32>()
            .expect("the flex backend computes in f32");
        let correct = batch
            .iter()
            .zip(logit_values.chunks_exact(2))
            .filter(|(index, pair)| (pair[0] > pair[1]) == self.left_preferred[**index])
            .count();
        debug_assert_eq!(self.steps, self.inputs.dims()[2]);
        (bradley_terry_loss(logits, targets), correct)
    }
}

/// Sizes of each member's layers: the input width, the hidden widths, then 1.
fn layer_sizes(config: &RewardModelConfig, input_dim: usize) -> Vec<usize> {
    let mut sizes = Vec::with_capacity(config.hidden_sizes.len() + 2);
    sizes.push(input_dim);
    sizes.extend_from_slice(&config.hidden_sizes);
    sizes.push(1);
    sizes
}

/// Appends, per step, the observation followed by the action to `rows` (row-major
/// `[steps, obs + act]`).
fn extend_step_rows(
    rows: &mut Vec<f32>,
    observations: ArrayView2<'_, f32>,
    actions: ArrayView2<'_, f32>,
) {
    for (observation, action) in observations.rows().into_iter().zip(actions.rows()) {
        rows.extend(observation.iter());
        rows.extend(action.iter());
    }
}

/// Builds row-major `[indices.len(), 2, T, obs + act]` inputs from the pairs at `indices`.
fn pair_rows(
    observations: ArrayView4<'_, f32>,
    actions: ArrayView4<'_, f32>,
    indices: &[usize],
) -> Vec<f32> {
    let (_, _, steps, observation_dim) = observations.dim();
    let action_dim = actions.dim().3;
    let mut rows = Vec::with_capacity(indices.len() * 2 * steps * (observation_dim + action_dim));
    for &pair in indices {
        for segment in 0..2 {
            extend_step_rows(
                &mut rows,
                observations
                    .index_axis(Axis(0), pair)
                    .index_axis_move(Axis(0), segment),
                actions
                    .index_axis(Axis(0), pair)
                    .index_axis_move(Axis(0), segment),
            );
        }
    }
    rows
}

/// Computes 1 / (1 + exp(−x)) without overflow for large |x|.
fn logistic(x: f64) -> f64 {
    let small = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + small)
    } else {
        small / (1.0 + small)
    }
}

//! IQL training: one gradient step updates the twin Q networks, the value network and the
//! actor, then moves the target Q networks towards the online ones.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::{Device, Int, Tensor, TensorData};
use ndarray::{Array2, ArrayView2};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::config::IqlConfig;
use super::data::{IqlData, ObservationNormalization};
use super::error::IqlError;
use super::networks::{Actor, Mlp, TwinQ};
use crate::learn::RewardScale;

/// Losses of one gradient step, or their mean over several steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IqlLosses {
    /// Mean over both Q networks of the mean squared error to r + γ·V(s').
    pub q: f64,
    /// Expectile loss of V(s) against min Q_target(s, a).
    pub value: f64,
    /// Advantage-weighted negative log-likelihood of the data's actions under the actor.
    pub actor: f64,
}

impl IqlLosses {
    fn is_finite(&self) -> bool {
        self.q.is_finite() && self.value.is_finite() && self.actor.is_finite()
    }
}

/// Progress of a training run, passed to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IqlProgress {
    /// Gradient steps completed since the start of the run, checkpoints included.
    pub step: usize,
    /// Gradient steps at which this call stops.
    pub until_step: usize,
    /// Mean losses over the steps since the previous report.
    pub losses: IqlLosses,
    /// Actor learning rate of the last step.
    pub actor_learning_rate: f64,
    /// Wall time since this call started.
    pub elapsed: Duration,
    /// Gradient steps per second since this call started.
    pub steps_per_second: f64,
}

/// Settings of one [`IqlTrainer::train`] call that do not change the result.
#[derive(Clone, Debug, PartialEq)]
pub struct IqlTrainOptions {
    /// Completed-step count at which the call returns. `None` runs to the configuration's
    /// `gradient_steps`. Values above `gradient_steps` are lowered to it.
    pub until_step: Option<usize>,
    /// Gradient steps between progress reports (and the loss window of each). Default 1000.
    pub progress_interval: usize,
    /// Folder for checkpoints, written every `checkpoint_interval` steps and when the call
    /// returns. `None` writes none.
    pub checkpoint_dir: Option<PathBuf>,
    /// Gradient steps between checkpoints. Default 5000.
    pub checkpoint_interval: usize,
}

impl Default for IqlTrainOptions {
    fn default() -> Self {
        Self {
            until_step: None,
            progress_interval: 1000,
            checkpoint_dir: None,
            checkpoint_interval: 5000,
        }
    }
}

/// Outcome of one [`IqlTrainer::train`] call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IqlReport {
    /// Gradient steps run by this call.
    pub steps_run: usize,
    /// Gradient steps completed in total, those of earlier calls and checkpoints included.
    pub completed_steps: usize,
    /// Mean losses over the last progress window (at most `progress_interval` steps), or
    /// `None` when the call ran no step.
    pub final_losses: Option<IqlLosses>,
    /// Wall time of the call, checkpoint writing included.
    pub seconds: f64,
}

/// The transitions as tensors on the device without autodiff.
pub(crate) struct DeviceData {
    pub(crate) observations: Tensor<2>,
    pub(crate) actions: Tensor<2>,
    pub(crate) next_observations: Tensor<2>,
    pub(crate) rewards: Tensor<2>,
    /// 0 where the target drops the bootstrap term, 1 elsewhere, `[N, 1]`.
    pub(crate) bootstrap: Tensor<2>,
    pub(crate) len: usize,
}

impl DeviceData {
    fn new(data: &IqlData, use_terminals: bool, device: &Device) -> Self {
        let matrix = |values: ArrayView2<'_, f32>| {
            let shape = [values.nrows(), values.ncols()];
            let values: Vec<f32> = values.iter().copied().collect();
            Tensor::from_data(TensorData::new(values, shape), device)
        };
        let column = |values: Vec<f32>| {
            let rows = values.len();
            Tensor::from_data(TensorData::new(values, [rows, 1]), device)
        };
        let bootstrap = data
            .terminals()
            .iter()
            .map(|&terminal| if use_terminals && terminal { 0.0 } else { 1.0 })
            .collect();
        Self {
            observations: matrix(data.observations()),
            actions: matrix(data.actions()),
            next_observations: matrix(data.next_observations()),
            rewards: column(data.rewards().to_vec()),
            bootstrap: column(bootstrap),
            len: data.len(),
        }
    }
}

/// Facts about the training data that a checkpoint stores, so that a run resumes only on
/// the data it started with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DataSummary {
    pub(crate) transitions: usize,
    pub(crate) normalization: ObservationNormalization,
    pub(crate) reward_scale: RewardScale,
}

impl DataSummary {
    fn new(data: &IqlData) -> Self {
        Self {
            transitions: data.len(),
            normalization: data.normalization().clone(),
            reward_scale: data.reward_scale(),
        }
    }
}

/// IQL networks, their optimizers and the training data on burn's `flex` CPU backend.
///
/// Training is deterministic for a seed: the weights come from a xoshiro256++ generator
/// seeded with the configuration's seed, and the minibatch of step t from a generator
/// seeded with the seed and t, so a run resumed from a checkpoint draws the same
/// minibatches as an uninterrupted one.
pub struct IqlTrainer {
    pub(crate) config: IqlConfig,
    pub(crate) observation_dim: usize,
    pub(crate) action_dim: usize,
    /// The `flex` device with autodiff, on which the trained parameters live.
    pub(crate) device: Device,
    pub(crate) q: TwinQ,
    /// Target Q networks, on the device without autodiff.
    pub(crate) target_q: TwinQ,
    pub(crate) value: Mlp,
    pub(crate) actor: Actor,
    pub(crate) q_optimizer: ModuleOptimizer,
    pub(crate) value_optimizer: ModuleOptimizer,
    pub(crate) actor_optimizer: ModuleOptimizer,
    pub(crate) completed_steps: usize,
    pub(crate) data: DeviceData,
    pub(crate) summary: DataSummary,
}

impl fmt::Debug for IqlTrainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IqlTrainer")
            .field("config", &self.config)
            .field("observation_dim", &self.observation_dim)
            .field("action_dim", &self.action_dim)
            .field("completed_steps", &self.completed_steps)
            .field("transitions", &self.data.len)
            .finish_non_exhaustive()
    }
}

impl IqlTrainer {
    /// Creates untrained networks for `data` and copies the data to the training device.
    pub fn new(config: IqlConfig, data: &IqlData) -> Result<Self, IqlError> {
        config.validate()?;
        let device = Device::flex().autodiff();
        let inner = device.clone().without_autodiff();
        let observation_dim = data.observation_dim();
        let action_dim = data.action_dim();

        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let q_sizes = layer_sizes(&config, observation_dim + action_dim, 1);
        let q = TwinQ {
            first: Mlp::new(&q_sizes, &mut rng, &device),
            second: Mlp::new(&q_sizes, &mut rng, &device),
        };
        let value = Mlp::new(&layer_sizes(&config, observation_dim, 1), &mut rng, &device);
        let actor = Actor::new(
            &layer_sizes(&config, observation_dim, action_dim),
            &mut rng,
            &device,
        );
        let adam = AdamConfig::new().with_epsilon(config.adam_epsilon);

        Ok(Self {
            target_q: q.valid(),
            q,
            value,
            actor,
            q_optimizer: adam.init(),
            value_optimizer: adam.init(),
            actor_optimizer: adam.init(),
            completed_steps: 0,
            data: DeviceData::new(data, config.use_terminals, &inner),
            summary: DataSummary::new(data),
            observation_dim,
            action_dim,
            device,
            config,
        })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &IqlConfig {
        &self.config
    }

    /// Returns the number of gradient steps completed so far.
    pub fn completed_steps(&self) -> usize {
        self.completed_steps
    }

    /// Returns the observation width.
    pub fn observation_dim(&self) -> usize {
        self.observation_dim
    }

    /// Returns the action width.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// Returns the observation standardisation that the policy applies to raw observations.
    pub fn normalization(&self) -> &ObservationNormalization {
        &self.summary.normalization
    }

    /// Returns the range of the rewards before normalisation to [0, 1].
    pub fn reward_scale(&self) -> RewardScale {
        self.summary.reward_scale
    }

    /// Runs gradient steps until `options.until_step` (default: the configuration's
    /// `gradient_steps`), reports progress every `options.progress_interval` steps and
    /// after the last one, and writes checkpoints as `options` asks.
    ///
    /// Fails on the first step with a non-finite loss, leaving the networks of the step
    /// before it.
    pub fn train(
        &mut self,
        options: &IqlTrainOptions,
        mut progress: impl FnMut(&IqlProgress),
    ) -> Result<IqlReport, IqlError> {
        if options.progress_interval == 0 {
            return Err(IqlError::InvalidConfig {
                field: "progress_interval",
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
        if options.checkpoint_dir.is_some() && options.checkpoint_interval == 0 {
            return Err(IqlError::InvalidConfig {
                field: "checkpoint_interval",
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
        let until_step = options
            .until_step
            .unwrap_or(self.config.gradient_steps)
            .min(self.config.gradient_steps);

        let started = Instant::now();
        let first_step = self.completed_steps;
        let mut window = LossWindow::default();
        let mut final_losses = None;
        while self.completed_steps < until_step {
            let losses = self.train_step()?;
            window.add(losses);
            let step = self.completed_steps;
            if step % options.progress_interval == 0 || step == until_step {
                let elapsed = started.elapsed();
                let mean = window.take();
                final_losses = Some(mean);
                progress(&IqlProgress {
                    step,
                    until_step,
                    losses: mean,
                    actor_learning_rate: self.config.actor_learning_rate_at(step - 1),
                    elapsed,
                    steps_per_second: (step - first_step) as f64 / elapsed.as_secs_f64(),
                });
            }
            if let Some(dir) = &options.checkpoint_dir
                && (step % options.checkpoint_interval == 0 || step == until_step)
            {
                self.save_checkpoint(dir)?;
            }
        }
        Ok(IqlReport {
            steps_run: self.completed_steps - first_step,
            completed_steps: self.completed_steps,
            final_losses,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs one gradient step on a minibatch drawn with replacement and returns its losses.
    ///
    /// V, the twin Q networks and the actor are updated from the same minibatch and from
    /// values computed before any of them changes: the Q target uses V(s') and the actor's
    /// weight uses min Q_target(s, a) − V(s) of the step's start. The three losses depend on
    /// disjoint parameters, so one backward pass of their sum yields each network's gradient.
    pub fn train_step(&mut self) -> Result<IqlLosses, IqlError> {
        let config = &self.config;
        let batch = self.sample_batch();

        // Targets, on the device without autodiff.
        let state_actions = Tensor::cat(vec![batch.observations.clone(), batch.actions.clone()], 1);
        let target_q = self.target_q.min(state_actions.clone());
        let next_value = self.value.valid().forward(batch.next_observations);
        let q_target = batch.rewards + batch.bootstrap * next_value * config.discount;

        let observations = batch.observations.autodiff();
        let value = self.value.forward(observations.clone());
        let advantage = target_q.autodiff() - value;
        let advantage_values = advantage.clone().without_autodiff();

        // Expectile regression: weight τ above the target, 1 − τ below it.
        let below = advantage_values.clone().lower_elem(0.0).float();
        let expectile_weight = below * (1.0 - 2.0 * config.expectile) + config.expectile;
        let value_loss = (advantage.square() * expectile_weight).mean();

        let (first_q, second_q) = self.q.forward(state_actions.autodiff());
        let q_target = q_target.autodiff();
        let q_loss = ((first_q - q_target.clone()).square().mean()
            + (second_q - q_target).square().mean())
            * 0.5;

        let advantage_weight = (advantage_values * config.temperature)
            .exp()
            .clamp_max(config.max_advantage_weight);
        let log_prob = self.actor.log_prob(
            observations,
            batch.actions.autodiff(),
            config.log_std_min,
            config.log_std_max,
        );
        let actor_loss = (log_prob * advantage_weight).mean().neg();

        let losses = IqlLosses {
            q: scalar(&q_loss),
            value: scalar(&value_loss),
            actor: scalar(&actor_loss),
        };
        if !losses.is_finite() {
            return Err(IqlError::NonFiniteLoss {
                step: self.completed_steps,
                q_loss: losses.q,
                value_loss: losses.value,
                actor_loss: losses.actor,
            });
        }

        let mut gradients = (q_loss + value_loss + actor_loss).backward();
        let q_gradients = GradientsParams::from_module(&mut gradients, &self.q);
        let value_gradients = GradientsParams::from_module(&mut gradients, &self.value);
        let actor_gradients = GradientsParams::from_module(&mut gradients, &self.actor);
        let actor_learning_rate = config.actor_learning_rate_at(self.completed_steps);

        self.q = self
            .q_optimizer
            .step(config.q_learning_rate, self.q.clone(), q_gradients);
        self.value = self.value_optimizer.step(
            config.value_learning_rate,
            self.value.clone(),
            value_gradients,
        );
        self.actor =
            self.actor_optimizer
                .step(actor_learning_rate, self.actor.clone(), actor_gradients);
        self.target_q = self
            .target_q
            .clone()
            .soft_update(&self.q, config.target_update_rate);
        self.completed_steps += 1;
        Ok(losses)
    }

    /// Computes the deterministic action tanh(MLP(s)) for raw (not standardised)
    /// `observations` `[batch, observation_dim]`.
    pub fn act(&self, observations: ArrayView2<'_, f32>) -> Result<Array2<f32>, IqlError> {
        if observations.ncols() != self.observation_dim {
            return Err(IqlError::Shape {
                what: "observations",
                found: observations.shape().to_vec(),
                expected: format!("[batch, {}]", self.observation_dim),
            });
        }
        let rows = observations.nrows();
        if rows == 0 {
            return Ok(Array2::zeros((0, self.action_dim)));
        }
        let standardized = self.summary.normalization.apply(observations);
        let values: Vec<f32> = standardized.iter().copied().collect();
        let device = self.device.clone().without_autodiff();
        let input = Tensor::from_data(
            TensorData::new(values, [rows, self.observation_dim]),
            &device,
        );
        let actions = self.actor.valid().mean_action(input).into_data();
        let actions = actions
            .as_slice::<f32>()
            .expect("the flex backend computes in f32")
            .to_vec();
        Ok(Array2::from_shape_vec((rows, self.action_dim), actions)
            .expect("the actor returns action_dim values per row"))
    }

    /// Draws the minibatch of the current step, with replacement.
    fn sample_batch(&self) -> Batch {
        let mut rng = step_rng(self.config.seed, self.completed_steps);
        let count = self.data.len as u128;
        let indices: Vec<i64> = (0..self.config.batch_size)
            // Multiply-shift maps a 64-bit draw onto 0..count with a bias below 2⁻³².
            .map(|_| ((u128::from(rng.next_u64()) * count) >> 64) as i64)
            .collect();
        let device = self.device.clone().without_autodiff();
        let indices = Tensor::<1, Int>::from_data(
            TensorData::new(indices, [self.config.batch_size]),
            &device,
        );
        let data = &self.data;
        Batch {
            observations: data.observations.clone().select(0, indices.clone()),
            actions: data.actions.clone().select(0, indices.clone()),
            next_observations: data.next_observations.clone().select(0, indices.clone()),
            rewards: data.rewards.clone().select(0, indices.clone()),
            bootstrap: data.bootstrap.clone().select(0, indices),
        }
    }
}

/// A minibatch on the device without autodiff.
struct Batch {
    observations: Tensor<2>,
    actions: Tensor<2>,
    next_observations: Tensor<2>,
    rewards: Tensor<2>,
    bootstrap: Tensor<2>,
}

/// Running sum of losses between progress reports.
#[derive(Default)]
struct LossWindow {
    sum: IqlLosses,
    steps: usize,
}

impl LossWindow {
    fn add(&mut self, losses: IqlLosses) {
        self.sum.q += losses.q;
        self.sum.value += losses.value;
        self.sum.actor += losses.actor;
        self.steps += 1;
    }

    /// Returns the mean since the last call and starts a new window.
    fn take(&mut self) -> IqlLosses {
        let steps = self.steps.max(1) as f64;
        let mean = IqlLosses {
            q: self.sum.q / steps,
            value: self.sum.value / steps,
            actor: self.sum.actor / steps,
        };
        *self = Self::default();
        mean
    }
}

/// Returns the generator of step `step`'s minibatch. SplitMix64 inside `seed_from_u64`
/// decorrelates neighbouring inputs. Multiplying step + 1 by an odd constant keeps the inputs
/// of one seed distinct from each other and from the weight initialisation's input, the seed.
fn step_rng(seed: u64, step: usize) -> Xoshiro256PlusPlus {
    const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (step as u64 + 1).wrapping_mul(GOLDEN_GAMMA))
}

/// Sizes of a network's layers: the input width, the hidden widths, then `output`.
pub(crate) fn layer_sizes(config: &IqlConfig, input: usize, output: usize) -> Vec<usize> {
    let mut sizes = Vec::with_capacity(config.hidden_sizes.len() + 2);
    sizes.push(input);
    sizes.extend_from_slice(&config.hidden_sizes);
    sizes.push(output);
    sizes
}

fn scalar(loss: &Tensor<1>) -> f64 {
    f64::from(loss.clone().into_scalar::<f32>())
}

//! [`ClarifyEncoder`]: the trainable encoder, its training iteration and its burn embedding
//! path.

use std::fmt;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::{Device, Int, Tensor, TensorData};
use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::batch::{
    PreferenceBatch, ReconstructionBatch, SegmentBatch, preference_batch, reconstruction_batch,
    segment_batch,
};
use super::clip::clip_global_norm;
use super::config::{EmbedToken, EncoderConfig, TimeEmbedding};
use super::error::EncoderError;
use super::losses::{
    ambiguity_loss, draw_partners, norm_loss, quadrilateral_loss, reconstruction_loss,
};
use super::model::{BidirectionalModel, DecoderInput, ForwardContext, ModelShape};
use super::normalization::StateNormalization;
use crate::answer::Answer;
use crate::dataset::Dataset;
use crate::select::LabelledPair;

/// Segments per forward pass of [`ClarifyEncoder::embed`], which bounds the memory of the
/// attention weights.
const EMBED_CHUNK: usize = 256;

/// Mixed into the seed of the dropout generator, so that it differs from the generator of
/// weights and batches.
const DROPOUT_SEED_OFFSET: u64 = 0x9e37_79b9_7f4a_7c15;

/// Training input of one call: the dataset and the preference buffer.
#[derive(Clone, Copy, Debug)]
pub struct EncoderTrainingData<'a> {
    /// The offline dataset whose windows train the reconstruction loss and whose segments
    /// the buffer refers to.
    pub dataset: &'a Dataset,
    /// Every answered query so far. "Can't tell" answers train the ambiguity loss; "skip"
    /// answers are left out.
    pub buffer: &'a [LabelledPair],
}

/// Outcome of one [`ClarifyEncoder::train`] call. Loss values are means over the call's
/// iterations, before weighting.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderTrainingReport {
    pub iterations: usize,
    /// Iterations run by this encoder in total, this call included.
    pub total_iterations: usize,
    pub reconstruction_loss: f64,
    pub norm_loss: f64,
    /// NaN when the buffer had no usable entry.
    pub ambiguity_loss: f64,
    /// NaN when the buffer had no usable entry.
    pub quadrilateral_loss: f64,
    /// Buffer entries with a left or right answer.
    pub clear_pairs: usize,
    /// Buffer entries answered "can't tell".
    pub ambiguous_pairs: usize,
    /// Buffer entries answered "skip", which training leaves out.
    pub skipped_pairs: usize,
    /// Wall time of the call.
    pub seconds: f64,
}

/// Losses of one iteration, before weighting.
struct IterationLosses {
    reconstruction: f64,
    norm: f64,
    ambiguity: Option<f64>,
    quadrilateral: Option<f64>,
}

/// The CLARIFY trajectory encoder (a bidirectional decision transformer) with its AdamW
/// state, trained on CPU with burn's `flex` backend.
///
/// An encoder built with the same configuration, dimensions, normalisation and seed and
/// trained on the same calls ends with the same weights: weights, batches, partners and
/// dropout masks come from two xoshiro256++ generators seeded from `seed`.
pub struct ClarifyEncoder {
    config: EncoderConfig,
    observation_dim: usize,
    action_dim: usize,
    normalization: StateNormalization,
    device: Device,
    model: BidirectionalModel,
    optimizer: ModuleOptimizer,
    /// Weights, batches, random timesteps and quadrilateral partners.
    rng: Xoshiro256PlusPlus,
    dropout_rng: Xoshiro256PlusPlus,
    iteration: usize,
}

impl fmt::Debug for ClarifyEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClarifyEncoder")
            .field("config", &self.config)
            .field("observation_dim", &self.observation_dim)
            .field("action_dim", &self.action_dim)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

impl ClarifyEncoder {
    /// Creates an untrained encoder for states of `observation_dim` and actions of
    /// `action_dim` features. `normalization` is usually
    /// [`StateNormalization::from_dataset`] of the training dataset.
    pub fn new(
        config: EncoderConfig,
        observation_dim: usize,
        action_dim: usize,
        normalization: StateNormalization,
        seed: u64,
    ) -> Result<Self, EncoderError> {
        config.validate()?;
        for (field, value) in [
            ("observation_dim", observation_dim),
            ("action_dim", action_dim),
        ] {
            if value == 0 {
                return Err(EncoderError::InvalidConfig {
                    field,
                    value: "0".to_owned(),
                    expected: "at least 1",
                });
            }
        }
        if normalization.dim() != observation_dim {
            return Err(EncoderError::Normalization {
                reason: format!(
                    "it has {} features, but the states have {observation_dim}",
                    normalization.dim()
                ),
            });
        }

        let device = Device::flex().autodiff();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let dropout_rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ DROPOUT_SEED_OFFSET);
        let shape = ModelShape {
            observation_dim,
            action_dim,
            hidden: config.hidden_size,
            layers: config.layers,
            z_dim: config.z_dim,
            mlp_ratio: config.mlp_ratio,
            max_timestep: config.max_timestep,
        };
        let model = BidirectionalModel::new(&shape, &mut rng, &device);
        let optimizer = AdamWConfig::new()
            .with_epsilon(config.adam_epsilon)
            .with_weight_decay(config.weight_decay)
            .init();
        Ok(Self {
            config,
            observation_dim,
            action_dim,
            normalization,
            device,
            model,
            optimizer,
            rng,
            dropout_rng,
            iteration: 0,
        })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Returns the state width.
    pub fn observation_dim(&self) -> usize {
        self.observation_dim
    }

    /// Returns the action width.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// Returns the state normalisation.
    pub fn normalization(&self) -> &StateNormalization {
        &self.normalization
    }

    /// Returns the number of training iterations run so far, which sets the warm-up.
    pub fn iterations_done(&self) -> usize {
        self.iteration
    }

    /// Runs `iterations` training iterations on `data`.
    ///
    /// Each iteration takes two AdamW steps with the same learning rate: one on L_recon of
    /// `batch_size` dataset windows, then one on λ_norm · L_norm (of the same windows'
    /// per-position embeddings, recomputed after the first step) + λ_amb · L_amb + λ_quad ·
    /// L_quad of `batch_size` queries drawn with replacement from the buffer's entries with
    /// a left, right or "can't tell" answer. Without such entries the second step has
    /// L_norm only. Both steps clip the global gradient norm.
    pub fn train(
        &mut self,
        data: &EncoderTrainingData<'_>,
        iterations: usize,
    ) -> Result<EncoderTrainingReport, EncoderError> {
        let started = Instant::now();
        let usable = self.check_training_data(data)?;
        let count = |wanted: fn(Answer) -> bool| {
            data.buffer
                .iter()
                .filter(|entry| wanted(entry.answer))
                .count()
        };

        let mut sums = [0.0_f64; 4];
        let mut preference_iterations = 0;
        for _ in 0..iterations {
            let losses = self.run_iteration(data.dataset, &usable);
            sums[0] += losses.reconstruction;
            sums[1] += losses.norm;
            if let (Some(ambiguity), Some(quadrilateral)) = (losses.ambiguity, losses.quadrilateral)
            {
                sums[2] += ambiguity;
                sums[3] += quadrilateral;
                preference_iterations += 1;
            }
        }
        let mean = |sum: f64, count: usize| {
            if count == 0 {
                f64::NAN
            } else {
                sum / count as f64
            }
        };
        let report = EncoderTrainingReport {
            iterations,
            total_iterations: self.iteration,
            reconstruction_loss: mean(sums[0], iterations),
            norm_loss: mean(sums[1], iterations),
            ambiguity_loss: mean(sums[2], preference_iterations),
            quadrilateral_loss: mean(sums[3], preference_iterations),
            clear_pairs: count(Answer::is_clear),
            ambiguous_pairs: count(|answer| answer == Answer::CantTell),
            skipped_pairs: count(|answer| answer == Answer::Skip),
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(
            iterations,
            total_iterations = report.total_iterations,
            reconstruction_loss = report.reconstruction_loss,
            norm_loss = report.norm_loss,
            ambiguity_loss = report.ambiguity_loss,
            quadrilateral_loss = report.quadrilateral_loss,
            seconds = report.seconds,
            "trained encoder"
        );
        Ok(report)
    }

    /// Checks the dataset's widths and episode lengths and the buffer's segments, and
    /// returns the buffer entries that train the preference losses.
    fn check_training_data(
        &self,
        data: &EncoderTrainingData<'_>,
    ) -> Result<Vec<LabelledPair>, EncoderError> {
        let dataset = data.dataset;
        for (what, found, expected) in [
            (
                "dataset observations",
                dataset.observation_dim(),
                self.observation_dim,
            ),
            ("dataset actions", dataset.action_dim(), self.action_dim),
        ] {
            if found != expected {
                return Err(EncoderError::Shape {
                    what,
                    found: vec![dataset.step_count(), found],
                    expected: format!("[steps, {expected}], the width the encoder was built for"),
                });
            }
        }
        let longest = dataset.episodes().iter().map(|e| e.len).max().unwrap_or(0);
        if longest > self.config.max_timestep {
            return Err(EncoderError::EpisodeTooLong {
                episode_len: longest,
                max_timestep: self.config.max_timestep,
            });
        }

        let mut usable = Vec::with_capacity(data.buffer.len());
        let mut length = None;
        for (index, entry) in data.buffer.iter().enumerate() {
            if entry.answer == Answer::Skip {
                continue;
            }
            for segment in [entry.pair.left, entry.pair.right] {
                segment
                    .validate(dataset.episodes())
                    .map_err(|source| EncoderError::BufferSegment { index, source })?;
                let expected = *length.get_or_insert(segment.length);
                if segment.length != expected {
                    return Err(EncoderError::SegmentLength {
                        index,
                        found: segment.length,
                        expected,
                    });
                }
            }
            usable.push(*entry);
        }
        Ok(usable)
    }

    fn run_iteration(&mut self, dataset: &Dataset, usable: &[LabelledPair]) -> IterationLosses {
        let learning_rate = self.config.learning_rate_at(self.iteration);
        let windows = reconstruction_batch(
            dataset.observations(),
            dataset.actions(),
            dataset.episodes(),
            &self.normalization,
            self.config.batch_size,
            self.config.context_length,
            &mut self.rng,
        );
        let reconstruction = self.reconstruction_step(&windows, learning_rate);

        let preferences = (!usable.is_empty())
            .then(|| preference_batch(usable, self.config.batch_size, &mut self.rng));
        let segments = preferences.as_ref().map(|batch| {
            let normalization = self
                .config
                .normalize_preference_states
                .then_some(&self.normalization);
            segment_batch(
                dataset.observations(),
                dataset.episodes(),
                &batch.segments,
                normalization,
                self.config.time_embedding,
                self.config.max_timestep,
                &mut self.rng,
            )
        });
        let (norm, ambiguity, quadrilateral) = self.contrastive_step(
            &windows,
            preferences.as_ref().zip(segments.as_ref()),
            learning_rate,
        );
        self.iteration += 1;
        IterationLosses {
            reconstruction,
            norm,
            ambiguity,
            quadrilateral,
        }
    }

    /// Takes the AdamW step on L_recon and returns the loss.
    fn reconstruction_step(&mut self, windows: &ReconstructionBatch, learning_rate: f64) -> f64 {
        let device = self.device.clone();
        let (batch, steps) = (windows.batch, windows.steps);
        let model = self.model.clone();
        let reversed_states = float_tensor(
            windows.reversed_states.clone(),
            [batch, steps, self.observation_dim],
            &device,
        );
        let reversed_timesteps =
            self.aggregator_timesteps(windows.reversed_timesteps.clone(), [batch, steps], &device);

        let mut context = ForwardContext {
            heads: self.config.heads,
            dropout: self.config.dropout,
            rng: Some(&mut self.dropout_rng),
        };
        let z = model
            .aggregator
            .forward(reversed_states, reversed_timesteps, &mut context);
        let z = if self.config.flip_decoder_embeddings {
            z.flip([1])
        } else {
            z
        };

        let actions = float_tensor(
            windows.actions.clone(),
            [batch, steps, self.action_dim],
            &device,
        );
        let input = DecoderInput {
            z,
            states: float_tensor(
                windows.states.clone(),
                [batch, steps, self.observation_dim],
                &device,
            ),
            actions: actions.clone(),
            timesteps: int_tensor(windows.timesteps.clone(), [batch, steps], &device),
            mask: windows.mask.clone(),
        };
        let predicted = model.decoder.forward(input, &mut context);
        let mask: Vec<f32> = windows
            .mask
            .iter()
            .flatten()
            .map(|&real| f32::from(u8::from(real)))
            .collect();
        let mask = float_tensor(mask, [batch, steps], &device);
        let loss = reconstruction_loss(predicted, actions, mask);

        let value = f64::from(loss.clone().into_scalar::<f32>());
        let mut gradients = GradientsParams::from_grads(loss.backward(), &model);
        clip_global_norm(&model, &mut gradients, self.config.gradient_clip_norm);
        self.model = self.optimizer.step(learning_rate, model, gradients);
        value
    }

    /// Takes the AdamW step on the weighted norm, ambiguity and quadrilateral losses and
    /// returns them unweighted.
    fn contrastive_step(
        &mut self,
        windows: &ReconstructionBatch,
        preferences: Option<(&PreferenceBatch, &SegmentBatch)>,
        learning_rate: f64,
    ) -> (f64, Option<f64>, Option<f64>) {
        let device = self.device.clone();
        let (batch, steps) = (windows.batch, windows.steps);
        let model = self.model.clone();

        let reversed_states = float_tensor(
            windows.reversed_states.clone(),
            [batch, steps, self.observation_dim],
            &device,
        );
        let reversed_timesteps =
            self.aggregator_timesteps(windows.reversed_timesteps.clone(), [batch, steps], &device);
        let preference_inputs = preferences.map(|(queries, segments)| {
            let shape = [segments.segments, segments.steps];
            let states = float_tensor(
                segments.reversed_states.clone(),
                [segments.segments, segments.steps, self.observation_dim],
                &device,
            );
            let timesteps =
                self.aggregator_timesteps(segments.reversed_timesteps.clone(), shape, &device);
            (queries, states, timesteps)
        });
        let partners = preferences.map(|(queries, _)| {
            draw_partners(
                queries.preferred_rows.len(),
                self.config.quadrilateral_partners,
                &mut self.rng,
            )
        });

        let mut context = ForwardContext {
            heads: self.config.heads,
            dropout: self.config.dropout,
            rng: Some(&mut self.dropout_rng),
        };
        let z = model
            .aggregator
            .forward(reversed_states, reversed_timesteps, &mut context);
        let norm = norm_loss(z);
        let norm_value = f64::from(norm.clone().into_scalar::<f32>());
        let mut loss = norm.mul_scalar(self.config.norm_loss_weight);

        let mut ambiguity_value = None;
        let mut quadrilateral_value = None;
        if let (Some((queries, states, timesteps)), Some(partners)) = (preference_inputs, partners)
        {
            let z = model.aggregator.forward(states, timesteps, &mut context);
            let tokens = select_token(z, self.config.embed_token);
            let query_count = queries.ambiguous.len();
            let left_rows: Vec<usize> = (0..query_count).map(|q| 2 * q).collect();
            let right_rows: Vec<usize> = (0..query_count).map(|q| 2 * q + 1).collect();
            let ambiguity = ambiguity_loss(
                tokens.clone().select(0, index_tensor(&left_rows, &device)),
                tokens.clone().select(0, index_tensor(&right_rows, &device)),
                &queries.ambiguous,
                self.config.ambiguity_loss_mode,
            );
            let quadrilateral = if queries.preferred_rows.is_empty() {
                Tensor::<1>::zeros([1], &device)
            } else {
                quadrilateral_loss(
                    tokens
                        .clone()
                        .select(0, index_tensor(&queries.preferred_rows, &device)),
                    tokens.select(0, index_tensor(&queries.dispreferred_rows, &device)),
                    &partners,
                )
            };
            ambiguity_value = Some(f64::from(ambiguity.clone().into_scalar::<f32>()));
            quadrilateral_value = Some(f64::from(quadrilateral.clone().into_scalar::<f32>()));
            loss = loss
                + ambiguity.mul_scalar(self.config.ambiguity_loss_weight)
                + quadrilateral.mul_scalar(self.config.quadrilateral_loss_weight);
        }

        let mut gradients = GradientsParams::from_grads(loss.backward(), &model);
        clip_global_norm(&model, &mut gradients, self.config.gradient_clip_norm);
        self.model = self.optimizer.step(learning_rate, model, gradients);
        (norm_value, ambiguity_value, quadrilateral_value)
    }

    /// Returns the timestep tensor for the aggregator, or `None` when it adds no time
    /// embedding.
    fn aggregator_timesteps(
        &self,
        values: Vec<i64>,
        shape: [usize; 2],
        device: &Device,
    ) -> Option<Tensor<2, Int>> {
        (self.config.time_embedding != TimeEmbedding::None)
            .then(|| int_tensor(values, shape, device))
    }

    /// Embeds segments with the burn model: raw `states` `[batch, H, obs]` and their
    /// `timesteps` `[batch, H]` give `[batch, z_dim]`.
    ///
    /// States are normalised when `normalize_preference_states` is set, then reversed in
    /// time and passed through Φ without dropout; the embedding is Φ's output at the
    /// `embed_token` position. Timesteps are used as given (also in `random` mode, where
    /// the caller draws them) and ignored when `time_embedding` is `none`.
    pub fn embed(
        &self,
        states: ArrayView3<'_, f32>,
        timesteps: ArrayView2<'_, i64>,
    ) -> Result<Array2<f32>, EncoderError> {
        let (batch, steps) = self.check_embed_inputs(states, timesteps)?;
        let device = self.device.clone().without_autodiff();
        let model = self.model.valid();
        let z_dim = self.config.z_dim;
        let mut embeddings = Vec::with_capacity(batch * z_dim);
        for chunk_start in (0..batch).step_by(EMBED_CHUNK) {
            let chunk = EMBED_CHUNK.min(batch - chunk_start);
            let mut reversed_states = vec![0.0; chunk * steps * self.observation_dim];
            let mut reversed_timesteps = vec![0; chunk * steps];
            for segment in 0..chunk {
                for step in 0..steps {
                    let state = states
                        .index_axis(Axis(0), chunk_start + segment)
                        .index_axis_move(Axis(0), step);
                    let row = segment * steps + (steps - 1 - step);
                    let target = &mut reversed_states
                        [row * self.observation_dim..(row + 1) * self.observation_dim];
                    if self.config.normalize_preference_states {
                        self.normalization.normalize_into(state, target);
                    } else {
                        for (target, &value) in target.iter_mut().zip(state) {
                            *target = value;
                        }
                    }
                    reversed_timesteps[row] = timesteps[[chunk_start + segment, step]];
                }
            }
            let reversed_states = float_tensor(
                reversed_states,
                [chunk, steps, self.observation_dim],
                &device,
            );
            let reversed_timesteps =
                self.aggregator_timesteps(reversed_timesteps, [chunk, steps], &device);
            let mut context = ForwardContext::inference(self.config.heads);
            let z = model
                .aggregator
                .forward(reversed_states, reversed_timesteps, &mut context);
            let tokens = select_token(z, self.config.embed_token).into_data();
            embeddings.extend_from_slice(
                tokens
                    .as_slice::<f32>()
                    .expect("the flex backend computes in f32"),
            );
        }
        Ok(Array2::from_shape_vec((batch, z_dim), embeddings)
            .expect("each segment gives z_dim values"))
    }

    fn check_embed_inputs(
        &self,
        states: ArrayView3<'_, f32>,
        timesteps: ArrayView2<'_, i64>,
    ) -> Result<(usize, usize), EncoderError> {
        let (batch, steps, width) = states.dim();
        if width != self.observation_dim || steps == 0 {
            return Err(EncoderError::Shape {
                what: "states",
                found: states.shape().to_vec(),
                expected: format!("[batch, H ≥ 1, {}]", self.observation_dim),
            });
        }
        if timesteps.dim() != (batch, steps) {
            return Err(EncoderError::Shape {
                what: "timesteps",
                found: timesteps.shape().to_vec(),
                expected: format!("[{batch}, {steps}] like the states"),
            });
        }
        if self.config.time_embedding != TimeEmbedding::None {
            check_timesteps(timesteps.iter().copied(), self.config.max_timestep)?;
        }
        Ok((batch, steps))
    }

    /// Returns the inference copy of the model, without autodiff.
    pub(crate) fn inference_model(&self) -> BidirectionalModel {
        self.model.valid()
    }
}

/// Checks that every timestep lies in 0..max_timestep.
pub(crate) fn check_timesteps(
    timesteps: impl Iterator<Item = i64>,
    max_timestep: usize,
) -> Result<(), EncoderError> {
    for timestep in timesteps {
        if timestep < 0 || timestep as u64 >= max_timestep as u64 {
            return Err(EncoderError::Timestep {
                found: timestep,
                max_timestep,
                needed: timestep.saturating_add(1).max(1),
            });
        }
    }
    Ok(())
}

/// Returns Φ's output `[batch, H, z_dim]` at the embedding position, `[batch, z_dim]`.
fn select_token(z: Tensor<3>, token: EmbedToken) -> Tensor<2> {
    let [batch, steps, z_dim] = z.dims();
    let position = match token {
        EmbedToken::FullSegment => steps - 1,
        EmbedToken::OfficialIndex0 => 0,
    };
    z.narrow(1, position, 1).reshape([batch, z_dim])
}

fn float_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn int_tensor(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&index| index as i64).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

//! The reward ensemble's disagreement computed by ONNX Runtime from the exported ensemble,
//! the way a running node scores candidate queries.

use std::path::Path;

use ndarray::{Array3, ArrayView2, Axis, Ix3};
use thiserror::Error;

use super::model::DisagreementScorer;
use super::segment::{DatasetSegment, SegmentError, SegmentPair};
use crate::dataset::{Dataset, Episode};
use crate::infer::{InferError, Model, ModelSignature, Runtime, TensorSpec};
use crate::learn::{ACTIONS_INPUT, OBSERVATIONS_INPUT, REWARDS_OUTPUT};

/// The inputs and output that [`crate::RewardModel::to_onnx`] writes: `observations` and
/// `actions` `[batch, steps, dim]` and `rewards` `[members, batch, steps]`.
pub fn reward_ensemble_signature() -> ModelSignature {
    ModelSignature {
        inputs: vec![
            TensorSpec::new(OBSERVATIONS_INPUT, 3),
            TensorSpec::new(ACTIONS_INPUT, 3),
        ],
        outputs: vec![TensorSpec::new(REWARDS_OUTPUT, 3)],
    }
}

/// A failure of [`OnnxRewardScorer`].
#[derive(Debug, Error)]
pub enum OnnxScorerError {
    #[error(transparent)]
    Infer(#[from] InferError),

    #[error("invalid segment in pair {pair}")]
    Segment {
        pair: SegmentPair,
        #[source]
        source: SegmentError,
    },

    #[error(
        "pair {pair} has a segment of {found} steps, but the batch started with segments of \
         {expected} steps: one call scores segments of one length"
    )]
    MixedLengths {
        pair: SegmentPair,
        expected: usize,
        found: usize,
    },

    #[error(
        "the step arrays have {observations} observation rows and {actions} action rows: \
         expected one action per observation"
    )]
    StepCount { observations: usize, actions: usize },

    #[error(
        "reward model output has shape {found:?}: expected [members ≥ 1, {segments}, {steps}] \
         for {segments} segments of {steps} steps"
    )]
    OutputShape {
        found: Vec<usize>,
        segments: usize,
        steps: usize,
    },
}

/// Scores pairs by the standard deviation across ensemble members of P(left ≻ right), the
/// softmax of the two summed predicted rewards, with the exported reward ensemble run by
/// ONNX Runtime.
///
/// The score equals [`crate::RewardModel::disagreement`] of the model that was exported, up
/// to float rounding: each member's rewards are summed in f64 in step order, and the
/// standard deviation divides by the member count.
#[derive(Debug)]
pub struct OnnxRewardScorer<'a> {
    model: Model,
    observations: ArrayView2<'a, f32>,
    actions: ArrayView2<'a, f32>,
    episodes: &'a [Episode],
}

impl<'a> OnnxRewardScorer<'a> {
    /// Creates a scorer over the step arrays of a dataset: `observations` `[steps, obs_dim]`
    /// and `actions` `[steps, act_dim]`, split into `episodes`. The model must have the
    /// [`reward_ensemble_signature`].
    pub fn new(
        model: Model,
        observations: ArrayView2<'a, f32>,
        actions: ArrayView2<'a, f32>,
        episodes: &'a [Episode],
    ) -> Result<Self, OnnxScorerError> {
        if observations.nrows() != actions.nrows() {
            return Err(OnnxScorerError::StepCount {
                observations: observations.nrows(),
                actions: actions.nrows(),
            });
        }
        Ok(Self {
            model,
            observations,
            actions,
            episodes,
        })
    }

    /// Creates a scorer over `dataset`'s steps.
    pub fn for_dataset(model: Model, dataset: &'a Dataset) -> Result<Self, OnnxScorerError> {
        Self::new(
            model,
            dataset.observations(),
            dataset.actions(),
            dataset.episodes(),
        )
    }

    /// Loads the exported ensemble at `path` with `runtime` and creates a scorer over
    /// `dataset`'s steps.
    pub fn load(
        runtime: &Runtime,
        path: &Path,
        dataset: &'a Dataset,
    ) -> Result<Self, OnnxScorerError> {
        let model = runtime.load_model(path, &reward_ensemble_signature())?;
        Self::for_dataset(model, dataset)
    }

    /// Returns the loaded model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Runs the ensemble on both segments of every pair and returns, per pair, each
    /// member's summed rewards as `[left, right]`.
    pub fn pair_returns(
        &mut self,
        pairs: &[SegmentPair],
    ) -> Result<Vec<Vec<[f64; 2]>>, OnnxScorerError> {
        let Some(first) = pairs.first() else {
            return Ok(Vec::new());
        };
        let steps = first.left.length;
        let mut segments = Vec::with_capacity(2 * pairs.len());
        for pair in pairs {
            for segment in [pair.left, pair.right] {
                segment
                    .validate(self.episodes)
                    .map_err(|source| OnnxScorerError::Segment {
                        pair: *pair,
                        source,
                    })?;
                if segment.length != steps {
                    return Err(OnnxScorerError::MixedLengths {
                        pair: *pair,
                        expected: steps,
                        found: segment.length,
                    });
                }
                segments.push(segment);
            }
        }

        let observations = self.gather(self.observations, &segments, steps);
        let actions = self.gather(self.actions, &segments, steps);
        let outputs = self
            .model
            .run(&[observations.view().into_dyn(), actions.view().into_dyn()])?;
        let rewards = outputs
            .into_iter()
            .next()
            .and_then(|rewards| rewards.into_dimensionality::<Ix3>().ok())
            .filter(|rewards| {
                let (members, batch, output_steps) = rewards.dim();
                members >= 1 && batch == segments.len() && output_steps == steps
            });
        let Some(rewards) = rewards else {
            return Err(OnnxScorerError::OutputShape {
                found: self.output_shape_hint(),
                segments: segments.len(),
                steps,
            });
        };

        let returns = (0..pairs.len())
            .map(|pair| {
                rewards
                    .outer_iter()
                    .map(|member| {
                        let sum = |segment: usize| -> f64 {
                            member
                                .index_axis(Axis(0), segment)
                                .iter()
                                .map(|&reward| f64::from(reward))
                                .sum()
                        };
                        [sum(2 * pair), sum(2 * pair + 1)]
                    })
                    .collect()
            })
            .collect();
        Ok(returns)
    }

    /// Copies the rows of each segment into `[segments, steps, width]`.
    fn gather(
        &self,
        source: ArrayView2<'_, f32>,
        segments: &[DatasetSegment],
        steps: usize,
    ) -> Array3<f32> {
        let mut batch = Array3::zeros((segments.len(), steps, source.ncols()));
        for (mut target, segment) in batch.outer_iter_mut().zip(segments) {
            // `validate` has checked that the segment lies inside its episode.
            let start = self.episodes[segment.episode].start + segment.start;
            target.assign(&source.slice_axis(Axis(0), (start..start + steps).into()));
        }
        batch
    }

    /// Returns the output shape reported at load time, with 0 for dynamic axes.
    fn output_shape_hint(&self) -> Vec<usize> {
        self.model
            .outputs()
            .first()
            .map(|info| {
                info.dims
                    .iter()
                    .map(|dim| match dim {
                        crate::infer::TensorDim::Fixed(size) => *size,
                        crate::infer::TensorDim::Dynamic(_) => 0,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl DisagreementScorer for OnnxRewardScorer<'_> {
    type Error = OnnxScorerError;

    fn disagreement(&mut self, pairs: &[SegmentPair]) -> Result<Vec<f64>, OnnxScorerError> {
        let returns = self.pair_returns(pairs)?;
        Ok(returns
            .iter()
            .map(|members| preference_std(members))
            .collect())
    }
}

/// Returns the population standard deviation across members of P(left ≻ right) =
/// 1 / (1 + exp(R̂_right − R̂_left)).
pub fn preference_std(member_returns: &[[f64; 2]]) -> f64 {
    let count = member_returns.len() as f64;
    let probabilities: Vec<f64> = member_returns
        .iter()
        .map(|&[left, right]| logistic(left - right))
        .collect();
    let mean = probabilities.iter().sum::<f64>() / count;
    let variance = probabilities
        .iter()
        .map(|p| (p - mean).powi(2))
        .sum::<f64>()
        / count;
    variance.sqrt()
}

/// Computes 1 / (1 + exp(−x)) without overflow for large |x|.
fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

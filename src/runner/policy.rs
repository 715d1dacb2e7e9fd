//! A policy network loaded from a model set and checked before use.

use ndarray::{Array2, ArrayViewD};

use super::error::RunnerError;
use crate::infer::{Model, ModelSignature, Runtime, TensorDim, TensorSpec};
use crate::registry::{ActionBounds, Expectation, ModelSet, ShapeDim, TensorShape};

/// Slack for the probe's bounds check, so that a tanh output of exactly ±1 computed in f32
/// passes bounds of ±1.
const BOUNDS_TOLERANCE: f32 = 1e-6;

/// Something that maps one observation vector to one action vector.
pub trait Policy: Send {
    /// Version of the model set, for logs.
    fn version(&self) -> &str;
    fn observation_dim(&self) -> usize;
    /// Limits that actions are clamped to.
    fn bounds(&self) -> &ActionBounds;
    /// Computes the action for `observation` (raw, not standardised), before clamping.
    fn act(&mut self, observation: &[f32]) -> Result<Vec<f32>, String>;
    /// ONNX Runtime execution provider that runs the policy, when it runs in ONNX Runtime.
    fn execution_provider(&self) -> Option<String> {
        None
    }
}

/// The policy network of a model set, run through ONNX Runtime.
#[derive(Debug)]
pub struct OnnxPolicy {
    version: String,
    model: Model,
    mean: Vec<f32>,
    std: Vec<f32>,
    normalize: bool,
    bounds: ActionBounds,
    observation_dim: usize,
    action_dim: usize,
}

impl OnnxPolicy {
    /// Loads the policy of `set` and validates it. The manifest must match `expected`, and
    /// the graph's inputs and outputs must match the manifest's names and shapes. On probe
    /// observations (the mean and the mean ± one standard deviation) the outputs must be
    /// finite and within the action bounds.
    pub fn load(
        runtime: &Runtime,
        set: &ModelSet,
        expected: &Expectation,
    ) -> Result<Self, RunnerError> {
        let manifest = &set.manifest;
        manifest.check(expected)?;
        let invalid = |detail: String| RunnerError::Validation {
            version: set.version.clone(),
            detail,
        };
        if manifest.inputs.len() != 1 {
            return Err(invalid(format!(
                "the policy has {} inputs, expected one: the observation",
                manifest.inputs.len()
            )));
        }
        let observation = &manifest.inputs[0].shape;
        let batch_first = matches!(
            observation.first(),
            Some(ShapeDim::Named(_) | ShapeDim::Fixed(1))
        );
        if observation.len() != 2 || !batch_first {
            return Err(invalid(format!(
                "inputs[0].shape is {}, expected [\"batch\", {}] or [1, {}]",
                crate::registry::manifest::format_shape(observation),
                manifest.observation_dim,
                manifest.observation_dim
            )));
        }
        let signature = ModelSignature {
            inputs: specs(&manifest.inputs),
            outputs: specs(&manifest.outputs),
        };
        let model = runtime.load_model(&set.policy_path(), &signature)?;
        for (field, listed, found) in [
            ("inputs", &manifest.inputs, model.inputs()),
            ("outputs", &manifest.outputs, model.outputs()),
        ] {
            for (index, (tensor, info)) in listed.iter().zip(found).enumerate() {
                let matches =
                    tensor
                        .shape
                        .iter()
                        .zip(&info.dims)
                        .all(|(dim, found)| match (dim, found) {
                            (ShapeDim::Fixed(size), TensorDim::Fixed(actual)) => size == actual,
                            (ShapeDim::Named(_), TensorDim::Dynamic(_)) => true,
                            _ => false,
                        });
                if !matches {
                    return Err(invalid(format!(
                        "manifest {field}[{index}].shape is {}, but the graph has {info}",
                        crate::registry::manifest::format_shape(&tensor.shape)
                    )));
                }
            }
        }

        let normalization = &manifest.observation_normalization;
        let mut policy = Self {
            version: set.version.clone(),
            model,
            mean: normalization.mean.clone(),
            std: normalization.std.clone(),
            normalize: !normalization.in_graph,
            bounds: manifest.action_bounds.clone(),
            observation_dim: manifest.observation_dim,
            action_dim: manifest.action_dim,
        };
        policy.probe().map_err(invalid)?;
        tracing::info!(
            version = %set.version,
            provider = %policy.model.provider(),
            observation_dim = policy.observation_dim,
            action_dim = policy.action_dim,
            "policy validated"
        );
        Ok(policy)
    }

    fn probe(&mut self) -> Result<(), String> {
        let probes: Vec<(&str, Vec<f32>)> = vec![
            ("the observation mean", self.mean.clone()),
            (
                "mean + std",
                self.mean
                    .iter()
                    .zip(&self.std)
                    .map(|(m, s)| m + s)
                    .collect(),
            ),
            (
                "mean - std",
                self.mean
                    .iter()
                    .zip(&self.std)
                    .map(|(m, s)| m - s)
                    .collect(),
            ),
        ];
        for (name, observation) in probes {
            let action = self
                .act(&observation)
                .map_err(|error| format!("probe on {name} failed: {error}"))?;
            for (index, &value) in action.iter().enumerate() {
                let (low, high) = (self.bounds.low[index], self.bounds.high[index]);
                if value < low - BOUNDS_TOLERANCE || value > high + BOUNDS_TOLERANCE {
                    return Err(format!(
                        "probe on {name}: action[{index}] = {value} is outside the action \
                         bounds [{low}, {high}]"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Policy for OnnxPolicy {
    fn version(&self) -> &str {
        &self.version
    }

    fn execution_provider(&self) -> Option<String> {
        Some(self.model.provider().to_string())
    }

    fn observation_dim(&self) -> usize {
        self.observation_dim
    }

    fn bounds(&self) -> &ActionBounds {
        &self.bounds
    }

    fn act(&mut self, observation: &[f32]) -> Result<Vec<f32>, String> {
        if observation.len() != self.observation_dim {
            return Err(format!(
                "observation has {} values, expected {}",
                observation.len(),
                self.observation_dim
            ));
        }
        let values: Vec<f32> = if self.normalize {
            observation
                .iter()
                .zip(self.mean.iter().zip(&self.std))
                .map(|(x, (m, s))| (x - m) / s)
                .collect()
        } else {
            observation.to_vec()
        };
        let input = Array2::from_shape_vec((1, self.observation_dim), values)
            .map_err(|error| error.to_string())?;
        let input: ArrayViewD<'_, f32> = input.view().into_dyn();
        let outputs = self.model.run(&[input]).map_err(|e| e.to_string())?;
        let action: Vec<f32> = outputs[0].iter().copied().collect();
        if action.len() != self.action_dim {
            return Err(format!(
                "the policy produced {} values, expected action_dim = {}",
                action.len(),
                self.action_dim
            ));
        }
        Ok(action)
    }
}

fn specs(tensors: &[TensorShape]) -> Vec<TensorSpec> {
    tensors
        .iter()
        .map(|t| TensorSpec::new(t.name.clone(), t.shape.len()))
        .collect()
}

//! Export of the IQL policy's deterministic action to ONNX.
//!
//! The model takes raw `observations` `[batch, observation_dim]` (f32), standardises them
//! inside the graph with the training data's mean and standard deviation, and returns
//! `actions` `[batch, action_dim]` = tanh(MLP(standardised observations)), the mean of the
//! Gaussian policy. Layer i stores its parameters as the initializers `layers.{i}.weight`
//! (`[in, out]`) and `layers.{i}.bias`.

use burn::module::Module;

use super::error::IqlError;
use super::trainer::{IqlTrainer, layer_sizes};
use crate::onnx::{
    Activation, DEFAULT_OPSET, DenseLayer, Mlp, MlpExportOptions, ModelInfo, ModelProto,
    Standardization,
};

/// Name of the policy's observation input.
pub const POLICY_OBSERVATIONS_INPUT: &str = "observations";
/// Name of the policy's action output.
pub const POLICY_ACTIONS_OUTPUT: &str = "actions";
/// Name of the exported policy graph.
pub const POLICY_GRAPH_NAME: &str = "iql_policy";

impl IqlTrainer {
    /// Returns the deterministic policy as an MLP description: the observation
    /// standardisation, the actor's mean network with ReLU between layers, and tanh on the
    /// output.
    pub fn policy_mlp(&self) -> Mlp {
        let to_values = |data: burn::prelude::TensorData| -> Vec<f32> {
            data.as_slice::<f32>()
                .expect("the flex backend stores parameters in f32")
                .to_vec()
        };
        let actor = self.actor.valid();
        let last = actor.mean.layers.len() - 1;
        let layers = actor
            .mean
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| DenseLayer {
                weight: to_values(layer.weight.val().into_data()),
                bias: layer
                    .bias
                    .as_ref()
                    .map(|bias| to_values(bias.val().into_data()))
                    .expect("IQL layers have a bias"),
                activation: if index < last {
                    Activation::Relu
                } else {
                    Activation::Identity
                },
            })
            .collect();
        let normalization = self.normalization();
        Mlp {
            sizes: layer_sizes(&self.config, self.observation_dim, self.action_dim),
            layers,
            input_standardization: Some(Standardization {
                mean: normalization.mean.clone(),
                std: normalization.std.clone(),
            }),
            output_tanh: true,
        }
    }

    /// Exports the deterministic policy as an ONNX model with the descriptive fields `info`.
    pub fn policy_to_onnx(&self, info: &ModelInfo) -> Result<ModelProto, IqlError> {
        let options = MlpExportOptions {
            graph_name: POLICY_GRAPH_NAME.to_owned(),
            input_name: POLICY_OBSERVATIONS_INPUT.to_owned(),
            output_name: POLICY_ACTIONS_OUTPUT.to_owned(),
            opset: DEFAULT_OPSET,
            info: info.clone(),
        };
        Ok(self.policy_mlp().to_model(&options)?)
    }
}

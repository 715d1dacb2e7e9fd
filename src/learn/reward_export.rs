//! Export of the whole reward-model ensemble to one ONNX model.
//!
//! The model takes `observations` `[batch, steps, observation_dim]` and `actions` `[batch,
//! steps, action_dim]` (f32, batch and steps symbolic) and returns `rewards` `[members,
//! batch, steps]`, the per-step reward of every member. Member m stores its layer i as the
//! initializers `members.{m}.layers.{i}.weight` (`[in, out]`) and `.bias`.

use super::RewardModel;
use super::error::RewardModelError;
use crate::onnx::{
    Constant, DEFAULT_OPSET, Dim, ElementType, ExportError, GraphBuilder, ModelInfo, ModelProto,
    Value,
};

/// Name of the observation input.
pub const OBSERVATIONS_INPUT: &str = "observations";
/// Name of the action input.
pub const ACTIONS_INPUT: &str = "actions";
/// Name of the per-member, per-step reward output.
pub const REWARDS_OUTPUT: &str = "rewards";
/// Name of the symbolic time axis of the inputs and the output.
pub const STEPS_DIM: &str = "steps";

impl RewardModel {
    /// Exports every member into one ONNX model with the descriptive fields `info`.
    pub fn to_onnx(&self, info: &ModelInfo) -> Result<ModelProto, RewardModelError> {
        let mut graph = GraphBuilder::new("reward_ensemble", DEFAULT_OPSET)?;
        let steps = Dim::Symbolic(STEPS_DIM.to_owned());
        let observations = graph.add_input(
            OBSERVATIONS_INPUT,
            ElementType::F32,
            &[
                Dim::batch(),
                steps.clone(),
                Dim::Fixed(self.observation_dim()),
            ],
        )?;
        let actions = graph.add_input(
            ACTIONS_INPUT,
            ElementType::F32,
            &[Dim::batch(), steps.clone(), Dim::Fixed(self.action_dim())],
        )?;
        let inputs = graph.concat(&[&observations, &actions], 2)?;

        let member_outputs = self
            .member_layers()
            .iter()
            .enumerate()
            .map(|(member, layers)| self.add_member(&mut graph, &inputs, member, layers))
            .collect::<Result<Vec<Value>, ExportError>>()?;
        // Each member gives [batch, steps, 1]; joined on the last axis and moved to the front,
        // they form [members, batch, steps].
        let member_refs: Vec<&Value> = member_outputs.iter().collect();
        let joined = graph.concat(&member_refs, 2)?;
        let rewards = graph.transpose(&joined, &[2, 0, 1])?;

        let output_dims = [Dim::Fixed(member_outputs.len()), Dim::batch(), steps];
        graph.add_output(&rewards, REWARDS_OUTPUT, ElementType::F32, &output_dims)?;
        Ok(graph.build(info)?)
    }

    fn add_member(
        &self,
        graph: &mut GraphBuilder,
        inputs: &Value,
        member: usize,
        layers: &[(Vec<f32>, Vec<f32>)],
    ) -> Result<Value, ExportError> {
        let sizes = self.layer_sizes();
        let slope = self.config().leaky_relu_slope as f32;
        let mut x = inputs.clone();
        for (index, (weight, bias)) in layers.iter().enumerate() {
            let name = format!("members.{member}.layers.{index}");
            let (fan_in, fan_out) = (sizes[index], sizes[index + 1]);
            let weight = Constant::f32(
                &format!("{name}.weight"),
                &[fan_in, fan_out],
                weight.clone(),
            )?;
            let bias = Constant::f32(&format!("{name}.bias"), &[fan_out], bias.clone())?;
            x = graph.linear(&x, &name, &weight, &bias)?;
            if index + 1 < layers.len() {
                x = graph.leaky_relu(&x, slope)?;
            }
        }
        graph.tanh(&x)
    }

    /// Returns each member's layers as (row-major `[in, out]` weight, bias) values.
    fn member_layers(&self) -> Vec<Vec<(Vec<f32>, Vec<f32>)>> {
        let to_values = |data: burn::prelude::TensorData| -> Vec<f32> {
            data.as_slice::<f32>()
                .expect("the flex backend stores parameters in f32")
                .to_vec()
        };
        self.inference_ensemble()
            .members
            .iter()
            .map(|member| {
                member
                    .layers
                    .iter()
                    .map(|layer| {
                        let weight = to_values(layer.weight.val().into_data());
                        let bias = layer
                            .bias
                            .as_ref()
                            .map(|bias| to_values(bias.val().into_data()))
                            .expect("reward model layers have a bias");
                        (weight, bias)
                    })
                    .collect()
            })
            .collect()
    }
}

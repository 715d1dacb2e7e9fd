//! Export of the encoder's embedding path (the aggregator Φ) to ONNX.
//!
//! The model takes raw `states` `[batch, steps, observation_dim]` (f32) and `timesteps`
//! `[batch, steps]` (i64), with batch and steps symbolic, and returns `z` `[batch, z_dim]`.
//! State normalisation (when `normalize_preference_states` is set), the time reversal, the
//! causal mask and the choice of the embedding position all happen inside the graph. With
//! `time_embedding = none` the graph reads no timesteps, but keeps the input so that every
//! encoder model has the same signature. Parameters keep the names of the burn modules,
//! such as `aggregator.stack.blocks.0.qkv.weight` (`[in, out]`).

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::Tensor;

use super::ClarifyEncoder;
use super::config::{EmbedToken, TimeEmbedding};
use super::error::EncoderError;
use super::model::{Block, LAYER_NORM_EPSILON};
use crate::infer::{ModelSignature, TensorSpec};
use crate::onnx::{
    Constant, DEFAULT_OPSET, Dim, ElementType, ExportError, GraphBuilder, ModelInfo, ModelProto,
    Value,
};

/// Name of the raw state input.
pub const STATES_INPUT: &str = "states";
/// Name of the timestep input.
pub const TIMESTEPS_INPUT: &str = "timesteps";
/// Name of the embedding output.
pub const Z_OUTPUT: &str = "z";
/// Name of the symbolic segment-length axis.
const STEPS_DIM: &str = "steps";

/// Returns the signature of every exported encoder, for [`crate::infer::Runtime::load_model`].
pub fn encoder_signature() -> ModelSignature {
    ModelSignature {
        inputs: vec![
            TensorSpec::new(STATES_INPUT, 3),
            TensorSpec::i64(TIMESTEPS_INPUT, 2),
        ],
        outputs: vec![TensorSpec::new(Z_OUTPUT, 2)],
    }
}

impl ClarifyEncoder {
    /// Exports the embedding path into an ONNX model with the descriptive fields `info`.
    pub fn to_onnx(&self, info: &ModelInfo) -> Result<ModelProto, EncoderError> {
        let config = self.config();
        let model = self.inference_model();
        let aggregator = &model.aggregator;
        let mut graph = GraphBuilder::new("clarify_encoder", DEFAULT_OPSET)?;
        let steps = Dim::Symbolic(STEPS_DIM.to_owned());
        let states = graph.add_input(
            STATES_INPUT,
            ElementType::F32,
            &[
                Dim::batch(),
                steps.clone(),
                Dim::Fixed(self.observation_dim()),
            ],
        )?;
        let timesteps =
            graph.add_input(TIMESTEPS_INPUT, ElementType::I64, &[Dim::batch(), steps])?;

        let mut x = states;
        if config.normalize_preference_states {
            let normalization = self.normalization();
            let dim = normalization.dim();
            let mean = Constant::f32("state_mean", &[dim], normalization.mean().to_vec())?;
            let std = Constant::f32("state_std", &[dim], normalization.std().to_vec())?;
            let mean = graph.add_initializer("state_mean", &mean)?;
            let std = graph.add_initializer("state_std", &std)?;
            x = graph.sub(&x, &mean)?;
            x = graph.div(&x, &std)?;
        }
        let reversed_states = reverse_steps(&mut graph, &x)?;

        let mut tokens = add_linear(
            &mut graph,
            &reversed_states,
            "aggregator.state_embedding",
            &aggregator.state_embedding,
        )?;
        if config.time_embedding != TimeEmbedding::None {
            let reversed_timesteps = reverse_steps(&mut graph, &timesteps)?;
            let table = param_constant(
                "aggregator.time_embedding.weight",
                &aggregator.time_embedding.weight,
            )?;
            let table = graph.add_initializer("aggregator.time_embedding.weight", &table)?;
            let time = graph.gather(&table, &reversed_timesteps, 0)?;
            tokens = graph.add(&tokens, &time)?;
        }
        let mut x = add_layer_norm(
            &mut graph,
            &tokens,
            "aggregator.embedding_norm",
            &aggregator.embedding_norm,
        )?;

        let bias = causal_bias(&mut graph, &reversed_states)?;
        for (index, block) in aggregator.stack.blocks.iter().enumerate() {
            let name = format!("aggregator.stack.blocks.{index}");
            x = add_block(&mut graph, &x, &bias, &name, block, config.heads)?;
        }
        let x = add_layer_norm(
            &mut graph,
            &x,
            "aggregator.stack.final_norm",
            &aggregator.stack.final_norm,
        )?;
        let z = add_linear(&mut graph, &x, "aggregator.head", &aggregator.head)?;

        let position = match config.embed_token {
            EmbedToken::FullSegment => -1,
            EmbedToken::OfficialIndex0 => 0,
        };
        let position = Constant::i64("embedding position", &[], vec![position])?;
        let position = graph.add_constant("position", &position)?;
        let z = graph.gather(&z, &position, 1)?;
        graph.add_output(
            &z,
            Z_OUTPUT,
            ElementType::F32,
            &[Dim::batch(), Dim::Fixed(config.z_dim)],
        )?;
        Ok(graph.build(info)?)
    }
}

/// Reverses axis 1 (the steps) of `x`.
fn reverse_steps(graph: &mut GraphBuilder, x: &Value) -> Result<Value, ExportError> {
    graph.slice(x, &[-1], &[i64::MIN], &[1], &[-1])
}

/// Builds the `[steps, steps]` additive causal bias of `x` `[batch, steps, ...]`: f32::MIN
/// above the diagonal, 0 elsewhere. The most negative finite f32 gives the same softmax as
/// burn's −∞ bias, and initializers and attributes must be finite.
fn causal_bias(graph: &mut GraphBuilder, x: &Value) -> Result<Value, ExportError> {
    let shape = graph.shape(x)?;
    let steps = graph.slice(&shape, &[1], &[2], &[0], &[1])?;
    let square = graph.concat(&[&steps, &steps], 0)?;
    let filled = graph.constant_of_shape(&square, f32::MIN)?;
    graph.trilu(&filled, true, 1)
}

fn add_block(
    graph: &mut GraphBuilder,
    x: &Value,
    bias: &Value,
    name: &str,
    block: &Block,
    heads: usize,
) -> Result<Value, ExportError> {
    let hidden = block.attention_norm.gamma.val().dims()[0];
    let head_dim = hidden / heads;
    let heads_i64 = heads as i64;

    let normed = add_layer_norm(
        graph,
        x,
        &format!("{name}.attention_norm"),
        &block.attention_norm,
    )?;
    let qkv = add_linear(graph, &normed, &format!("{name}.qkv"), &block.qkv)?;
    let qkv = graph.reshape(&qkv, &[0, 0, 3 * heads_i64, head_dim as i64])?;
    let qkv = graph.transpose(&qkv, &[0, 2, 1, 3])?;
    let query = graph.slice(&qkv, &[0], &[heads_i64], &[1], &[1])?;
    let key = graph.slice(&qkv, &[heads_i64], &[2 * heads_i64], &[1], &[1])?;
    let value = graph.slice(&qkv, &[2 * heads_i64], &[3 * heads_i64], &[1], &[1])?;

    let key_transposed = graph.transpose(&key, &[0, 1, 3, 2])?;
    let scores = graph.matmul(&query, &key_transposed)?;
    let scale = Constant::f32("attention scale", &[], vec![1.0 / (head_dim as f32).sqrt()])?;
    let scale = graph.add_constant("scale", &scale)?;
    let scores = graph.mul(&scores, &scale)?;
    let scores = graph.add(&scores, bias)?;
    let weights = graph.softmax(&scores, -1)?;
    let attended = graph.matmul(&weights, &value)?;
    let attended = graph.transpose(&attended, &[0, 2, 1, 3])?;
    let attended = graph.reshape(&attended, &[0, 0, hidden as i64])?;
    let attended = add_linear(
        graph,
        &attended,
        &format!("{name}.attention_output"),
        &block.attention_output,
    )?;
    let x = graph.add(x, &attended)?;

    let normed = add_layer_norm(graph, &x, &format!("{name}.mlp_norm"), &block.mlp_norm)?;
    let inner = add_linear(
        graph,
        &normed,
        &format!("{name}.mlp_input"),
        &block.mlp_input,
    )?;
    let inner = graph.relu(&inner)?;
    let output = add_linear(
        graph,
        &inner,
        &format!("{name}.mlp_output"),
        &block.mlp_output,
    )?;
    graph.add(&x, &output)
}

fn add_linear(
    graph: &mut GraphBuilder,
    x: &Value,
    name: &str,
    layer: &Linear,
) -> Result<Value, ExportError> {
    let weight = param_constant(&format!("{name}.weight"), &layer.weight)?;
    let bias = layer
        .bias
        .as_ref()
        .expect("encoder linear layers have a bias");
    let bias = param_constant(&format!("{name}.bias"), bias)?;
    graph.linear(x, name, &weight, &bias)
}

fn add_layer_norm(
    graph: &mut GraphBuilder,
    x: &Value,
    name: &str,
    norm: &LayerNorm,
) -> Result<Value, ExportError> {
    let scale = param_constant(&format!("{name}.scale"), &norm.gamma)?;
    let bias = norm.beta.as_ref().expect("encoder layer norms have a bias");
    let bias = param_constant(&format!("{name}.bias"), bias)?;
    graph.layer_norm(x, name, &scale, &bias, LAYER_NORM_EPSILON as f32)
}

fn param_constant<const D: usize>(
    name: &str,
    param: &Param<Tensor<D>>,
) -> Result<Constant, ExportError> {
    let tensor = param.val();
    let dims = tensor.dims().to_vec();
    let data = tensor.into_data();
    let values = data
        .as_slice::<f32>()
        .expect("the flex backend stores parameters in f32")
        .to_vec();
    Constant::f32(name, &dims, values)
}

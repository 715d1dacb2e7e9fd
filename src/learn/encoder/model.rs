//! The bidirectional decision transformer as burn modules: GPT-2 style blocks with a causal
//! mask and no learned positions, the anti-causal aggregator Φ and the action decoder.
//!
//! Attention is written by hand with one fused QKV projection and an additive causal bias of
//! −∞, which trains faster on burn's `flex` backend than `nn::TransformerEncoder`. Dropout
//! masks come from the encoder's own seeded generator instead of the backend's process-wide
//! one, so that training is reproducible for a seed even while other models train.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::{Device, Int, Tensor, TensorData};
use burn::tensor::activation::{relu, softmax};
use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// ε of every layer normalisation, PyTorch's and GPT-2's default.
pub(crate) const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Standard deviation of GPT-2's normal weight initialisation.
const GPT2_INIT_STD: f64 = 0.02;

/// Additive attention bias of a padded key in the decoder. It is finite so that the rows of
/// padded queries, whose every earlier key is padding, stay defined.
const PADDING_BIAS: f32 = -1e9;

/// Sizes and dropout that the modules need at run time, kept outside the modules.
pub(crate) struct ForwardContext<'a> {
    pub(crate) heads: usize,
    pub(crate) dropout: f64,
    /// Source of dropout masks; `None` runs without dropout (inference).
    pub(crate) rng: Option<&'a mut Xoshiro256PlusPlus>,
}

impl ForwardContext<'_> {
    /// Creates a context without dropout.
    pub(crate) fn inference(heads: usize) -> ForwardContext<'static> {
        ForwardContext {
            heads,
            dropout: 0.0,
            rng: None,
        }
    }

    /// Zeroes each element with probability `dropout` and scales the rest by 1 / (1 −
    /// dropout). The keep decision compares 16 random bits against the keep probability.
    fn dropout<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        let Some(rng) = self.rng.as_deref_mut() else {
            return x;
        };
        if self.dropout == 0.0 {
            return x;
        }
        let keep = 1.0 - self.dropout;
        let threshold = (keep * 65536.0).round() as u64;
        let scale = (1.0 / keep) as f32;
        let dims = x.dims();
        let count: usize = dims.iter().product();
        let mut mask = Vec::with_capacity(count);
        while mask.len() < count {
            let bits = rng.next_u64();
            for shift in [0, 16, 32, 48] {
                if mask.len() == count {
                    break;
                }
                let draw = (bits >> shift) & 0xffff;
                mask.push(if draw < threshold { scale } else { 0.0 });
            }
        }
        let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

/// One pre-norm GPT-2 block: x + attention(LN(x)), then x + MLP(LN(x)).
#[derive(Module, Debug)]
pub(crate) struct Block {
    pub(crate) attention_norm: LayerNorm,
    /// Fused query, key and value projection `[hidden, 3 · hidden]`, in that order.
    pub(crate) qkv: Linear,
    pub(crate) attention_output: Linear,
    pub(crate) mlp_norm: LayerNorm,
    pub(crate) mlp_input: Linear,
    pub(crate) mlp_output: Linear,
}

impl Block {
    /// Maps `[batch, tokens, hidden]` with the additive attention `bias` (broadcast to
    /// `[batch, heads, tokens, tokens]`).
    fn forward(&self, x: Tensor<3>, bias: &Tensor<4>, context: &mut ForwardContext) -> Tensor<3> {
        let [batch, tokens, hidden] = x.dims();
        let heads = context.heads;
        let head_dim = hidden / heads;

        let qkv = self.qkv.forward(self.attention_norm.forward(x.clone()));
        let qkv = qkv
            .reshape([batch, tokens, 3 * heads, head_dim])
            .swap_dims(1, 2);
        let query = qkv.clone().narrow(1, 0, heads);
        let key = qkv.clone().narrow(1, heads, heads);
        let value = qkv.narrow(1, 2 * heads, heads);

        let scores = query
            .matmul(key.swap_dims(2, 3))
            .mul_scalar(1.0 / (head_dim as f64).sqrt())
            + bias.clone();
        let weights = context.dropout(softmax(scores, 3));
        let attended = weights
            .matmul(value)
            .swap_dims(1, 2)
            .reshape([batch, tokens, hidden]);
        let x = x + context.dropout(self.attention_output.forward(attended));

        let inner = relu(self.mlp_input.forward(self.mlp_norm.forward(x.clone())));
        x.clone() + context.dropout(self.mlp_output.forward(inner))
    }
}

/// A GPT-2 stack without position embeddings: embedding dropout, blocks, final norm.
#[derive(Module, Debug)]
pub(crate) struct Stack {
    pub(crate) blocks: Vec<Block>,
    pub(crate) final_norm: LayerNorm,
}

impl Stack {
    fn forward(&self, x: Tensor<3>, bias: &Tensor<4>, context: &mut ForwardContext) -> Tensor<3> {
        let mut x = context.dropout(x);
        for block in &self.blocks {
            x = block.forward(x, bias, context);
        }
        self.final_norm.forward(x)
    }
}

/// The anti-causal aggregator Φ: token LN(Linear(s) + TimeEmb(t)) per state of the
/// time-reversed segment, a causal stack, and a Linear head to z at every position.
#[derive(Module, Debug)]
pub(crate) struct Aggregator {
    pub(crate) state_embedding: Linear,
    pub(crate) time_embedding: Embedding,
    pub(crate) embedding_norm: LayerNorm,
    pub(crate) stack: Stack,
    pub(crate) head: Linear,
}

impl Aggregator {
    /// Maps reversed states `[batch, H, obs]` and their timesteps `[batch, H]` (`None`
    /// without time embedding) to per-position embeddings `[batch, H, z_dim]`.
    pub(crate) fn forward(
        &self,
        reversed_states: Tensor<3>,
        reversed_timesteps: Option<Tensor<2, Int>>,
        context: &mut ForwardContext,
    ) -> Tensor<3> {
        let [_, steps, _] = reversed_states.dims();
        let mut tokens = self.state_embedding.forward(reversed_states);
        if let Some(timesteps) = reversed_timesteps {
            tokens = tokens + self.time_embedding.forward(timesteps);
        }
        let tokens = self.embedding_norm.forward(tokens);
        let bias = causal_bias(steps, &tokens.device());
        self.head
            .forward(self.stack.forward(tokens, &bias, context))
    }
}

/// The decoder: tokens (z_t, s_t, a_t) for t = 1..K, each modality with its own Linear
/// embedding plus a shared TimeEmb(t), then LN, a causal stack and a tanh action head read
/// at the s_t tokens.
#[derive(Module, Debug)]
pub(crate) struct Decoder {
    pub(crate) z_embedding: Linear,
    pub(crate) state_embedding: Linear,
    pub(crate) action_embedding: Linear,
    pub(crate) time_embedding: Embedding,
    pub(crate) embedding_norm: LayerNorm,
    pub(crate) stack: Stack,
    pub(crate) action_head: Linear,
}

/// Decoder inputs for one batch of windows.
pub(crate) struct DecoderInput {
    /// `[batch, K, z_dim]`.
    pub(crate) z: Tensor<3>,
    /// `[batch, K, obs]`.
    pub(crate) states: Tensor<3>,
    /// `[batch, K, act]`.
    pub(crate) actions: Tensor<3>,
    /// `[batch, K]`.
    pub(crate) timesteps: Tensor<2, Int>,
    /// 1 for a real step, 0 for left padding, per window: `[batch][K]`.
    pub(crate) mask: Vec<Vec<bool>>,
}

impl Decoder {
    /// Predicts the action at every step, `[batch, K, act]`, in (−1, 1).
    pub(crate) fn forward(&self, input: DecoderInput, context: &mut ForwardContext) -> Tensor<3> {
        let [batch, steps, _] = input.states.dims();
        let device = input.states.device();
        let hidden = self.embedding_norm.gamma.val().dims()[0];
        let time = self.time_embedding.forward(input.timesteps);
        let z = self.z_embedding.forward(input.z) + time.clone();
        let states = self.state_embedding.forward(input.states) + time.clone();
        let actions = self.action_embedding.forward(input.actions) + time;
        let tokens: Tensor<4> = Tensor::stack(vec![z, states, actions], 2);
        let tokens = self
            .embedding_norm
            .forward(tokens.reshape([batch, 3 * steps, hidden]));

        let bias = causal_bias(3 * steps, &device) + padding_bias(&input.mask, &device);
        let output = self.stack.forward(tokens, &bias, context);
        let at_states = output
            .reshape([batch, steps, 3, hidden])
            .narrow(2, 1, 1)
            .reshape([batch, steps, hidden]);
        self.action_head.forward(at_states).tanh()
    }
}

/// Both stacks, trained by one optimizer.
#[derive(Module, Debug)]
pub(crate) struct BidirectionalModel {
    pub(crate) aggregator: Aggregator,
    pub(crate) decoder: Decoder,
}

/// Widths that define the model's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModelShape {
    pub(crate) observation_dim: usize,
    pub(crate) action_dim: usize,
    pub(crate) hidden: usize,
    pub(crate) layers: usize,
    pub(crate) z_dim: usize,
    pub(crate) mlp_ratio: usize,
    pub(crate) max_timestep: usize,
}

impl BidirectionalModel {
    /// Creates the model with GPT-2's initialisation inside the stacks (normal weights of std
    /// 0.02, output projections 0.02 / √(2 · layers), zero biases) and PyTorch's defaults
    /// outside (uniform ±1/√fan_in for Linear layers, N(0, 1) for time embeddings), all
    /// drawn from `rng`.
    pub(crate) fn new(shape: &ModelShape, rng: &mut Xoshiro256PlusPlus, device: &Device) -> Self {
        let hidden = shape.hidden;
        let aggregator = Aggregator {
            state_embedding: uniform_linear(shape.observation_dim, hidden, rng, device),
            time_embedding: normal_embedding(shape.max_timestep, hidden, rng, device),
            embedding_norm: layer_norm(hidden, device),
            stack: new_stack(shape, rng, device),
            head: uniform_linear(hidden, shape.z_dim, rng, device),
        };
        let decoder = Decoder {
            z_embedding: uniform_linear(shape.z_dim, hidden, rng, device),
            state_embedding: uniform_linear(shape.observation_dim, hidden, rng, device),
            action_embedding: uniform_linear(shape.action_dim, hidden, rng, device),
            time_embedding: normal_embedding(shape.max_timestep, hidden, rng, device),
            embedding_norm: layer_norm(hidden, device),
            stack: new_stack(shape, rng, device),
            action_head: uniform_linear(hidden, shape.action_dim, rng, device),
        };
        Self {
            aggregator,
            decoder,
        }
    }
}

/// Returns the `[1, 1, tokens, tokens]` bias that is −∞ above the diagonal (a key after its
/// query) and 0 elsewhere.
pub(crate) fn causal_bias(tokens: usize, device: &Device) -> Tensor<4> {
    let mut values = vec![0.0_f32; tokens * tokens];
    for query in 0..tokens {
        for key in query + 1..tokens {
            values[query * tokens + key] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 1, tokens, tokens]), device)
}

/// Returns the `[batch, 1, 1, 3K]` bias that masks the three tokens of every padded step.
fn padding_bias(mask: &[Vec<bool>], device: &Device) -> Tensor<4> {
    let batch = mask.len();
    let steps = mask.first().map_or(0, Vec::len);
    let mut values = Vec::with_capacity(batch * 3 * steps);
    for window in mask {
        for &real in window {
            let bias = if real { 0.0 } else { PADDING_BIAS };
            values.extend([bias; 3]);
        }
    }
    Tensor::from_data(TensorData::new(values, [batch, 1, 1, 3 * steps]), device)
}

fn new_stack(shape: &ModelShape, rng: &mut Xoshiro256PlusPlus, device: &Device) -> Stack {
    let hidden = shape.hidden;
    let inner = hidden * shape.mlp_ratio;
    let projection_std = GPT2_INIT_STD / ((2 * shape.layers) as f64).sqrt();
    let blocks = (0..shape.layers)
        .map(|_| Block {
            attention_norm: layer_norm(hidden, device),
            qkv: normal_linear(hidden, 3 * hidden, GPT2_INIT_STD, rng, device),
            attention_output: normal_linear(hidden, hidden, projection_std, rng, device),
            mlp_norm: layer_norm(hidden, device),
            mlp_input: normal_linear(hidden, inner, GPT2_INIT_STD, rng, device),
            mlp_output: normal_linear(inner, hidden, projection_std, rng, device),
        })
        .collect();
    Stack {
        blocks,
        final_norm: layer_norm(hidden, device),
    }
}

fn layer_norm(width: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(width)
        .with_epsilon(LAYER_NORM_EPSILON)
        .init(device)
}

fn linear_from(weight: Vec<f32>, bias: Vec<f32>, fan_in: usize, device: &Device) -> Linear {
    let fan_out = bias.len();
    let weight = TensorData::new(weight, [fan_in, fan_out]);
    let bias = TensorData::new(bias, [fan_out]);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(weight, device)),
        bias: Some(Param::from_tensor(Tensor::from_data(bias, device))),
    }
}

fn uniform_linear(
    fan_in: usize,
    fan_out: usize,
    rng: &mut Xoshiro256PlusPlus,
    device: &Device,
) -> Linear {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut draw = |count: usize| -> Vec<f32> {
        (0..count)
            .map(|_| bound * (2.0 * uniform_f32(rng) - 1.0))
            .collect()
    };
    let weight = draw(fan_in * fan_out);
    let bias = draw(fan_out);
    linear_from(weight, bias, fan_in, device)
}

fn normal_linear(
    fan_in: usize,
    fan_out: usize,
    std: f64,
    rng: &mut Xoshiro256PlusPlus,
    device: &Device,
) -> Linear {
    let weight = normal_values(fan_in * fan_out, std, rng);
    linear_from(weight, vec![0.0; fan_out], fan_in, device)
}

fn normal_embedding(
    rows: usize,
    width: usize,
    rng: &mut Xoshiro256PlusPlus,
    device: &Device,
) -> Embedding {
    let weight = TensorData::new(normal_values(rows * width, 1.0, rng), [rows, width]);
    Embedding {
        weight: Param::from_tensor(Tensor::from_data(weight, device)),
    }
}

/// Draws a uniform f32 in [0, 1) from the top 24 bits of one 32-bit draw.
pub(crate) fn uniform_f32(rng: &mut Xoshiro256PlusPlus) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// Draws `count` values of N(0, std²) with the Box-Muller transform.
fn normal_values(count: usize, std: f64, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    let mut values = Vec::with_capacity(count + 1);
    while values.len() < count {
        // 53 random bits give a uniform in (0, 1], so the logarithm stays finite.
        let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let radius = (-2.0 * u1.ln()).sqrt() * std;
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(count);
    values
}

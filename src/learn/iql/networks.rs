//! The IQL networks as burn modules: twin Q on (s‖a), the state value V(s) and the
//! Gaussian actor with mean tanh(MLP(s)) and a state-independent log standard deviation.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::activation::relu;
use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Dense layers with ReLU between them and no activation after the last one.
#[derive(Module, Debug)]
pub(crate) struct Mlp {
    pub(crate) layers: Vec<Linear>,
}

impl Mlp {
    /// Creates layers of widths `sizes` (input, hidden..., output) with PyTorch's default
    /// `nn.Linear` initialisation, U(−1/√fan_in, 1/√fan_in) for weights and biases, drawn
    /// from `rng` layer by layer, weight then bias.
    pub(crate) fn new(sizes: &[usize], rng: &mut Xoshiro256PlusPlus, device: &Device) -> Self {
        let layers = sizes
            .windows(2)
            .map(|pair| uniform_linear(pair[0], pair[1], rng, device))
            .collect();
        Self { layers }
    }

    pub(crate) fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut x = input;
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if index < last {
                x = relu(x);
            }
        }
        x
    }
}

/// Two independently initialised Q networks on the concatenation of state and action.
#[derive(Module, Debug)]
pub(crate) struct TwinQ {
    pub(crate) first: Mlp,
    pub(crate) second: Mlp,
}

impl TwinQ {
    /// Returns both networks' values `[batch, 1]` of `state_actions` `[batch, obs + act]`.
    pub(crate) fn forward(&self, state_actions: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        (
            self.first.forward(state_actions.clone()),
            self.second.forward(state_actions),
        )
    }

    /// Returns the elementwise minimum of the two values, `[batch, 1]`.
    pub(crate) fn min(&self, state_actions: Tensor<2>) -> Tensor<2> {
        let (first, second) = self.forward(state_actions);
        first.min_pair(second)
    }

    /// Moves every parameter of `self` towards the one of `online`:
    /// self ← (1 − rate)·self + rate·online. `self` lives on the device without autodiff.
    pub(crate) fn soft_update(self, online: &TwinQ, rate: f64) -> Self {
        Self {
            first: soft_update_mlp(self.first, &online.first, rate),
            second: soft_update_mlp(self.second, &online.second, rate),
        }
    }
}

/// Gaussian policy N(tanh(MLP(s)), exp(log_std)²), with one log standard deviation per action
/// feature shared by all states.
#[derive(Module, Debug)]
pub(crate) struct Actor {
    pub(crate) mean: Mlp,
    pub(crate) log_std: Param<Tensor<1>>,
}

impl Actor {
    /// Creates the mean network of widths `sizes` and a log standard deviation of zeros.
    pub(crate) fn new(sizes: &[usize], rng: &mut Xoshiro256PlusPlus, device: &Device) -> Self {
        let action_dim = sizes[sizes.len() - 1];
        Self {
            mean: Mlp::new(sizes, rng, device),
            log_std: Param::from_tensor(Tensor::zeros([action_dim], device)),
        }
    }

    /// Returns the deterministic action tanh(MLP(s)), `[batch, action_dim]`.
    pub(crate) fn mean_action(&self, observations: Tensor<2>) -> Tensor<2> {
        self.mean.forward(observations).tanh()
    }

    /// Returns log π(a|s) summed over the action features, `[batch, 1]`, with the log
    /// standard deviation clamped to [`log_std_min`, `log_std_max`].
    pub(crate) fn log_prob(
        &self,
        observations: Tensor<2>,
        actions: Tensor<2>,
        log_std_min: f64,
        log_std_max: f64,
    ) -> Tensor<2> {
        let mean = self.mean_action(observations);
        let log_std: Tensor<2> = self
            .log_std
            .val()
            .clamp(log_std_min, log_std_max)
            .unsqueeze();
        let standardized = (actions - mean) / log_std.clone().exp();
        let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        (standardized.square() * -0.5 - log_std - half_log_two_pi).sum_dim(1)
    }
}

fn soft_update_mlp(target: Mlp, online: &Mlp, rate: f64) -> Mlp {
    let layers = target
        .layers
        .into_iter()
        .zip(&online.layers)
        .map(|(target, online)| {
            let blend = |target: Tensor<2>, online: Tensor<2>| {
                target * (1.0 - rate) + online.without_autodiff() * rate
            };
            let weight = target
                .weight
                .map(|weight| blend(weight, online.weight.val()));
            let bias = match (target.bias, &online.bias) {
                (Some(target), Some(online)) => Some(target.map(|bias| {
                    let bias: Tensor<1> =
                        bias * (1.0 - rate) + online.val().without_autodiff() * rate;
                    bias
                })),
                (target, _) => target,
            };
            Linear { weight, bias }
        })
        .collect();
    Mlp { layers }
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
    let weight = TensorData::new(draw(fan_in * fan_out), [fan_in, fan_out]);
    let bias = TensorData::new(draw(fan_out), [fan_out]);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(weight, device)),
        bias: Some(Param::from_tensor(Tensor::from_data(bias, device))),
    }
}

/// Draws a uniform f32 in [0, 1) from the top 24 bits of one 32-bit draw.
pub(crate) fn uniform_f32(rng: &mut Xoshiro256PlusPlus) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

//! The reward-model ensemble as burn modules, its weight initialisation and the
//! Bradley-Terry loss.

use burn::module::{Module, Param};
use burn::nn::{LeakyRelu, LeakyReluConfig, Linear};
use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::activation::log_softmax;
use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// One member r̂(s, a): dense layers with LeakyReLU between them and tanh on the single
/// output, so each per-step reward lies in (−1, 1).
#[derive(Module, Debug)]
pub(crate) struct RewardMlp {
    pub(crate) layers: Vec<Linear>,
    activation: LeakyRelu,
}

impl RewardMlp {
    /// Maps `[..., input_dim]` to per-step rewards `[..., 1]`.
    pub(crate) fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let last = self.layers.len() - 1;
        let mut x = input;
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if index < last {
                x = self.activation.forward(x);
            }
        }
        x.tanh()
    }
}

/// The members of the ensemble, trained together by one optimizer.
#[derive(Module, Debug)]
pub(crate) struct Ensemble {
    pub(crate) members: Vec<RewardMlp>,
}

impl Ensemble {
    /// Creates `members` MLPs with layer widths `sizes` (input, hidden..., 1) on `device`.
    ///
    /// Weights and biases are drawn from U(−1/√fan_in, 1/√fan_in), the default of PyTorch's
    /// `nn.Linear`, out of `rng` in the order member, layer, weight then bias. burn's own
    /// initialisers draw from the `flex` backend's one process-wide generator (a static in
    /// burn-flex 0.22.1), so models built at once on different threads would not be
    /// reproducible.
    pub(crate) fn new(
        members: usize,
        sizes: &[usize],
        leaky_relu_slope: f64,
        rng: &mut Xoshiro256PlusPlus,
        device: &Device,
    ) -> Self {
        let members = (0..members)
            .map(|_| RewardMlp {
                layers: sizes
                    .windows(2)
                    .map(|pair| uniform_linear(pair[0], pair[1], rng, device))
                    .collect(),
                activation: LeakyReluConfig::new()
                    .with_negative_slope(leaky_relu_slope)
                    .init(),
            })
            .collect();
        Self { members }
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
    let weight = TensorData::new(draw(fan_in * fan_out), [fan_in, fan_out]);
    let bias = TensorData::new(draw(fan_out), [fan_out]);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(weight, device)),
        bias: Some(Param::from_tensor(Tensor::from_data(bias, device))),
    }
}

/// Draws a uniform f32 in [0, 1) from the top 24 bits of one 32-bit draw.
fn uniform_f32(rng: &mut Xoshiro256PlusPlus) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// Shuffles `values` in place with the Fisher-Yates algorithm.
pub(crate) fn shuffle(values: &mut [usize], rng: &mut Xoshiro256PlusPlus) {
    for last in (1..values.len()).rev() {
        // Multiply-shift maps a 64-bit draw onto 0..=last with a bias below 2⁻³².
        let bound = last as u128 + 1;
        let index = ((u128::from(rng.next_u64()) * bound) >> 64) as usize;
        values.swap(last, index);
    }
}

/// Computes the Bradley-Terry loss: the cross-entropy between softmax(`logits`) and
/// `targets`, averaged over the pairs.
///
/// `logits` is `[pairs, 2]` with the summed predicted rewards of the left and the right
/// segment, and `targets` is `[pairs, 2]` with the one-hot answer (`[1, 0]` for left). The
/// result has one element.
pub fn bradley_terry_loss(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let log_probabilities = log_softmax(logits, 1);
    (log_probabilities * targets).sum_dim(1).mean().neg()
}

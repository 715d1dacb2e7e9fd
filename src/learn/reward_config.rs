//! Settings of the reward model and their validation.

use serde::{Deserialize, Serialize};

use super::error::RewardModelError;

/// Settings of the reward-model ensemble and its training. Every field has a default, so a
/// configuration file names only the settings it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardModelConfig {
    /// Number of ensemble members. Default 3.
    pub members: usize,
    /// Widths of the hidden layers of each member, from input to output. Default
    /// `[256, 256, 256]`.
    pub hidden_sizes: Vec<usize>,
    /// Negative slope of the LeakyReLU after each hidden layer. Default 0.01.
    pub leaky_relu_slope: f64,
    /// Adam learning rate. Default 3e-4.
    pub learning_rate: f64,
    /// Adam ε. Default 1e-8, PyTorch's default (burn's own default is 1e-5).
    pub adam_epsilon: f32,
    /// Labelled pairs per minibatch and member. Default 128.
    pub batch_size: usize,
    /// Maximum number of epochs (passes over the clear answers) per training call. Default 50.
    pub max_epochs: usize,
    /// Training stops after an epoch whose mean ensemble training accuracy exceeds this
    /// value. Default 0.97.
    pub target_accuracy: f64,
    /// Seed of the weight initialisation and of the minibatch order. Default 0.
    pub seed: u64,
}

impl Default for RewardModelConfig {
    fn default() -> Self {
        Self {
            members: 3,
            hidden_sizes: vec![256, 256, 256],
            leaky_relu_slope: 0.01,
            learning_rate: 3e-4,
            adam_epsilon: 1e-8,
            batch_size: 128,
            max_epochs: 50,
            target_accuracy: 0.97,
            seed: 0,
        }
    }
}

impl RewardModelConfig {
    /// Checks every setting and names the first invalid one.
    pub fn validate(&self) -> Result<(), RewardModelError> {
        let invalid = |field, value: String, expected| RewardModelError::InvalidConfig {
            field,
            value,
            expected,
        };
        if self.members == 0 {
            return Err(invalid("members", "0".to_owned(), "at least 1"));
        }
        if self.hidden_sizes.is_empty() || self.hidden_sizes.contains(&0) {
            return Err(invalid(
                "hidden_sizes",
                format!("{:?}", self.hidden_sizes),
                "at least one layer, each at least 1 wide",
            ));
        }
        if !(self.leaky_relu_slope.is_finite() && self.leaky_relu_slope >= 0.0) {
            let value = self.leaky_relu_slope.to_string();
            return Err(invalid("leaky_relu_slope", value, "a finite value ≥ 0"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            let value = self.learning_rate.to_string();
            return Err(invalid("learning_rate", value, "a finite value > 0"));
        }
        if !(self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0) {
            let value = self.adam_epsilon.to_string();
            return Err(invalid("adam_epsilon", value, "a finite value > 0"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "0".to_owned(), "at least 1"));
        }
        if self.max_epochs == 0 {
            return Err(invalid("max_epochs", "0".to_owned(), "at least 1"));
        }
        if !(0.0..=1.0).contains(&self.target_accuracy) {
            let value = self.target_accuracy.to_string();
            return Err(invalid("target_accuracy", value, "a value in [0, 1]"));
        }
        Ok(())
    }
}

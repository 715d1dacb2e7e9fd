//! Settings of IQL training, its presets and their validation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::IqlError;

/// Gradient steps of the `cpu` preset, a shorter run than the paper's for CPU training:
/// about 4 minutes at 125 steps per second on two cores. On dial-turn, a policy on the true
/// rewards succeeds in every evaluation episode after 3,000 steps. Policies on a reward
/// model learned from 50 answers (two seeds) succeeded in 45 % and 25 % of 20 episodes
/// after 10,000 steps, and in 95 % and 90 % after 30,000.
pub const CPU_GRADIENT_STEPS: usize = 30_000;
/// Gradient steps of the `paper` preset: 2·10⁵ + 10⁴, as in CLARIFY's IQL runs.
pub const PAPER_GRADIENT_STEPS: usize = 210_000;

/// A named set of IQL settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IqlPreset {
    /// The CLARIFY settings with 30,000 gradient steps instead of 210,000.
    #[default]
    Cpu,
    /// The CLARIFY settings: 210,000 gradient steps.
    Paper,
}

impl IqlPreset {
    /// Returns the preset's name as written in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Paper => "paper",
        }
    }
}

impl fmt::Display for IqlPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IqlPreset {
    type Err = IqlError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "cpu" => Ok(Self::Cpu),
            "paper" => Ok(Self::Paper),
            _ => Err(IqlError::InvalidConfig {
                field: "preset",
                value: name.to_owned(),
                expected: "\"cpu\" or \"paper\"",
            }),
        }
    }
}

/// Settings of implicit Q-learning (IQL, Kostrikov et al., 2022) as CLARIFY runs it on
/// relabelled offline data.
///
/// Every field has a default (the `cpu` preset), so a configuration file names only the
/// settings it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IqlConfig {
    /// Number of gradient steps of a full run. Default 30,000 (`cpu`), and `paper` uses
    /// 210,000.
    pub gradient_steps: usize,
    /// Transitions per gradient step, drawn uniformly with replacement. Default 256.
    pub batch_size: usize,
    /// Widths of the hidden layers of every network (twin Q, V and the actor's mean), each
    /// followed by ReLU. Default `[256, 256]`.
    pub hidden_sizes: Vec<usize>,
    /// Expectile τ of the value loss |τ − 1(A < 0)|·A², with A = min Q_target(s, a) − V(s).
    /// Default 0.7.
    pub expectile: f64,
    /// Inverse temperature β of the actor's advantage weight exp(β·A). Default 3.0.
    pub temperature: f64,
    /// Upper clip of the advantage weight. Default 100.
    pub max_advantage_weight: f64,
    /// Discount γ of the Q target r + γ·V(s'). Default 0.99.
    pub discount: f64,
    /// Rate of the soft update target ← (1 − rate)·target + rate·Q after each step.
    /// Default 0.005.
    pub target_update_rate: f64,
    /// Adam learning rate of the twin Q networks. Default 3e-4.
    pub q_learning_rate: f64,
    /// Adam learning rate of the value network. Default 3e-4.
    pub value_learning_rate: f64,
    /// Adam learning rate of the actor at step 0. Default 3e-4.
    pub actor_learning_rate: f64,
    /// Whether the actor's learning rate follows a cosine decay to 0 over `gradient_steps`
    /// (lr·(1 + cos(π·step / gradient_steps)) / 2). Default true.
    pub actor_cosine_schedule: bool,
    /// Adam ε of all three optimizers. Default 1e-8, PyTorch's default.
    pub adam_epsilon: f32,
    /// Lower clamp of the actor's state-independent log standard deviation. Default −20.
    pub log_std_min: f64,
    /// Upper clamp of the actor's log standard deviation. Default 2.
    pub log_std_max: f64,
    /// Whether terminal transitions drop the bootstrap term (target r instead of
    /// r + γ·V(s')). Default false: CLARIFY ignores terminals, because Meta-World episodes
    /// end only at the time limit.
    pub use_terminals: bool,
    /// Added to each observation feature's standard deviation before standardisation.
    /// Default 1e-3.
    pub observation_std_epsilon: f32,
    /// Seed of the weight initialisation and of the minibatch draws. Default 0.
    pub seed: u64,
}

impl Default for IqlConfig {
    fn default() -> Self {
        Self::cpu()
    }
}

impl IqlConfig {
    /// Returns the `cpu` preset: CLARIFY's settings with 10,000 gradient steps.
    pub fn cpu() -> Self {
        Self {
            gradient_steps: CPU_GRADIENT_STEPS,
            batch_size: 256,
            hidden_sizes: vec![256, 256],
            expectile: 0.7,
            temperature: 3.0,
            max_advantage_weight: 100.0,
            discount: 0.99,
            target_update_rate: 0.005,
            q_learning_rate: 3e-4,
            value_learning_rate: 3e-4,
            actor_learning_rate: 3e-4,
            actor_cosine_schedule: true,
            adam_epsilon: 1e-8,
            log_std_min: -20.0,
            log_std_max: 2.0,
            use_terminals: false,
            observation_std_epsilon: 1e-3,
            seed: 0,
        }
    }

    /// Returns the `paper` preset: CLARIFY's settings with 210,000 gradient steps.
    pub fn paper() -> Self {
        Self {
            gradient_steps: PAPER_GRADIENT_STEPS,
            ..Self::cpu()
        }
    }

    /// Returns the settings of `preset`.
    pub fn preset(preset: IqlPreset) -> Self {
        match preset {
            IqlPreset::Cpu => Self::cpu(),
            IqlPreset::Paper => Self::paper(),
        }
    }

    /// Returns the actor's learning rate for the gradient step that follows `completed`
    /// steps.
    pub fn actor_learning_rate_at(&self, completed: usize) -> f64 {
        if !self.actor_cosine_schedule {
            return self.actor_learning_rate;
        }
        let progress = completed.min(self.gradient_steps) as f64 / self.gradient_steps as f64;
        self.actor_learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// Checks every setting and names the first invalid one.
    pub fn validate(&self) -> Result<(), IqlError> {
        let invalid = |field, value: String, expected| IqlError::InvalidConfig {
            field,
            value,
            expected,
        };
        let positive_finite = |field, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(invalid(field, value.to_string(), "a finite value > 0"))
            }
        };

        if self.gradient_steps == 0 {
            return Err(invalid("gradient_steps", "0".to_owned(), "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "0".to_owned(), "at least 1"));
        }
        if self.hidden_sizes.is_empty() || self.hidden_sizes.contains(&0) {
            return Err(invalid(
                "hidden_sizes",
                format!("{:?}", self.hidden_sizes),
                "at least one layer, each at least 1 wide",
            ));
        }
        if !(self.expectile > 0.0 && self.expectile < 1.0) {
            let value = self.expectile.to_string();
            return Err(invalid("expectile", value, "a value in (0, 1)"));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            let value = self.temperature.to_string();
            return Err(invalid("temperature", value, "a finite value ≥ 0"));
        }
        positive_finite("max_advantage_weight", self.max_advantage_weight)?;
        if !(0.0..=1.0).contains(&self.discount) {
            let value = self.discount.to_string();
            return Err(invalid("discount", value, "a value in [0, 1]"));
        }
        if !(self.target_update_rate > 0.0 && self.target_update_rate <= 1.0) {
            let value = self.target_update_rate.to_string();
            return Err(invalid("target_update_rate", value, "a value in (0, 1]"));
        }
        positive_finite("q_learning_rate", self.q_learning_rate)?;
        positive_finite("value_learning_rate", self.value_learning_rate)?;
        positive_finite("actor_learning_rate", self.actor_learning_rate)?;
        positive_finite("adam_epsilon", f64::from(self.adam_epsilon))?;
        if !(self.log_std_min.is_finite()
            && self.log_std_max.is_finite()
            && self.log_std_min < self.log_std_max)
        {
            return Err(invalid(
                "log_std_min, log_std_max",
                format!("{}, {}", self.log_std_min, self.log_std_max),
                "finite values with log_std_min < log_std_max",
            ));
        }
        positive_finite(
            "observation_std_epsilon",
            f64::from(self.observation_std_epsilon),
        )?;
        Ok(())
    }
}

//! Learning from operator answers: the reward model, the trajectory encoder and the IQL
//! policy.
//!
//! This module trains on CPU with burn's `flex` backend and reads no ROS or HTTP code. Its
//! models leave the module as ONNX files, which [`crate::infer`] runs.

pub mod encoder;
mod ensemble;
mod error;
pub mod iql;
mod reward;
mod reward_config;
mod reward_export;

pub use ensemble::bradley_terry_loss;
pub use error::RewardModelError;
pub use reward::{PreferencePairs, RewardModel, RewardScale, TrainingReport, normalize_min_max};
pub use reward_config::RewardModelConfig;
pub use reward_export::{ACTIONS_INPUT, OBSERVATIONS_INPUT, REWARDS_OUTPUT, STEPS_DIM};

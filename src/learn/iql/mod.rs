//! Offline policy learning with implicit Q-learning (IQL) on relabelled transitions.
//!
//! [`IqlData`] standardises observations and min-max normalises the rewards (relabelled by
//! the reward model, or the true ones for an oracle run) to [0, 1]. [`IqlTrainer`] trains
//! twin Q networks, a value network and a Gaussian actor on burn's `flex` CPU backend with
//! the settings of [`IqlConfig`], writes resumable checkpoints, and exports the actor's
//! deterministic action to ONNX with the standardisation inside the graph.

mod checkpoint;
mod config;
mod data;
mod error;
mod export;
mod networks;
mod trainer;

pub use checkpoint::{CHECKPOINT_FORMAT_VERSION, has_checkpoint};
pub use config::{CPU_GRADIENT_STEPS, IqlConfig, IqlPreset, PAPER_GRADIENT_STEPS};
pub use data::{IqlData, ObservationNormalization};
pub use error::IqlError;
pub use export::{POLICY_ACTIONS_OUTPUT, POLICY_GRAPH_NAME, POLICY_OBSERVATIONS_INPUT};
pub use trainer::{IqlLosses, IqlProgress, IqlReport, IqlTrainOptions, IqlTrainer};

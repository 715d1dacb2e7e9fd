//! Errors of IQL training, checkpoints and policy export.

use std::path::PathBuf;

use thiserror::Error;

use crate::onnx::ExportError;

/// An IQL operation that cannot run on the given configuration, data or checkpoint.
#[derive(Debug, Error)]
pub enum IqlError {
    #[error("invalid IQL setting {field} = {value}: expected {expected}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("invalid {what} shape {found:?}: expected {expected}")]
    Shape {
        what: &'static str,
        found: Vec<usize>,
        expected: String,
    },

    #[error("{what} has {found} rows, but the observations have {expected}")]
    Length {
        what: &'static str,
        found: usize,
        expected: usize,
    },

    #[error("{what} contains the non-finite value {value} at row {row}, column {column}")]
    NonFiniteData {
        what: &'static str,
        value: f32,
        row: usize,
        column: usize,
    },

    #[error(
        "cannot min-max normalise rewards in [{min}, {max}]: they must be finite and not all \
         equal; check the relabelled rewards"
    )]
    RewardRange { min: f32, max: f32 },

    #[error(
        "observation feature {feature} has standard deviation {std} after adding the epsilon: \
         expected a finite value > 0"
    )]
    ObservationScale { feature: usize, std: f32 },

    #[error(
        "IQL training diverged at gradient step {step}: losses Q {q_loss}, V {value_loss}, \
         actor {actor_loss}; lower the learning rates or check the rewards"
    )]
    NonFiniteLoss {
        step: usize,
        q_loss: f64,
        value_loss: f64,
        actor_loss: f64,
    },

    #[error("failed to {action} IQL checkpoint {path}: {source}")]
    CheckpointIo {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid IQL checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error(
        "IQL checkpoint {path} does not match the training data: {what} is {found} in the \
         checkpoint but {expected} in the data; resume with the data the run started with"
    )]
    CheckpointMismatch {
        path: PathBuf,
        what: &'static str,
        found: String,
        expected: String,
    },

    #[error("IQL policy export to ONNX failed: {0}")]
    Export(#[from] ExportError),
}

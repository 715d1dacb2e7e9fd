//! Errors of the reward model.

use thiserror::Error;

use crate::onnx::ExportError;

/// A reward-model operation that cannot run on the given configuration or data.
#[derive(Debug, Error)]
pub enum RewardModelError {
    #[error("invalid reward model setting {field} = {value}: expected {expected}")]
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

    #[error("{what} has {found} entries, but the data has {expected} pairs")]
    Length {
        what: &'static str,
        found: usize,
        expected: usize,
    },

    #[error(
        "cannot min-max normalize rewards in [{min}, {max}]: they must be finite and not all \
         equal; check the data for NaN or train the reward model first"
    )]
    Normalization { min: f32, max: f32 },

    #[error("reward model export to ONNX failed: {0}")]
    Export(#[from] ExportError),
}

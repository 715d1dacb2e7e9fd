use thiserror::Error;

use crate::infer::InferError;
use crate::params::ParamsError;
use crate::registry::RegistryError;
use crate::transport::TransportError;

/// Failures of the policy runner.
#[derive(Debug, Error)]
pub enum RunnerError {
    #[error("invalid policy runner setting {field} = {value}: expected {expected}")]
    Config {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(transparent)]
    Registry(#[from] RegistryError),

    #[error(transparent)]
    Infer(#[from] InferError),

    #[error(transparent)]
    Transport(#[from] TransportError),

    #[error(transparent)]
    Params(#[from] ParamsError),

    #[error("model set {version}: {detail}")]
    Validation { version: String, detail: String },
}

impl RunnerError {
    /// Returns whether the error comes from invalid input (settings, a parameter file, a model set)
    /// rather than from the system.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Self::Config { .. } | Self::Params(_) | Self::Validation { .. } => true,
            Self::Registry(error) => error.is_invalid_input(),
            Self::Infer(InferError::InvalidConfig { .. }) => true,
            Self::Transport(TransportError::InvalidConfig { .. })
            | Self::Transport(TransportError::InvalidName { .. }) => true,
            _ => false,
        }
    }
}

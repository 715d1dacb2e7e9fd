//! Errors of the benchmarks.

use std::path::PathBuf;

use thiserror::Error;

use crate::dataset::DatasetError;
use crate::fingerprint::FingerprintError;
use crate::infer::InferError;
use crate::learn::RewardModelError;
use crate::learn::encoder::EncoderError;
use crate::onnx::ExportError;
use crate::select::{OnnxScorerError, SelectConfigError, SelectError};

/// A benchmark that could not run or finish.
#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid benchmark setting {field} = {value}: expected {expected}")]
    InvalidSetting {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(transparent)]
    SelectConfig(#[from] SelectConfigError),

    #[error("invalid reward model settings")]
    RewardConfig(#[source] RewardModelError),

    #[error("invalid encoder settings")]
    EncoderConfig(#[source] EncoderError),

    #[error(transparent)]
    Dataset(#[from] DatasetError),

    #[error("failed to fingerprint the dataset")]
    Fingerprint(#[from] FingerprintError),

    #[error(
        "the dataset has no pair of segments of {segment_length} steps with different \
         returns, so the reward model cannot be evaluated: use another dataset or segment length"
    )]
    NoDecisivePairs { segment_length: usize },

    #[error("failed to start ONNX Runtime")]
    Runtime(#[source] InferError),

    #[error("failed to read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to encode the benchmark results as JSON")]
    Json(#[from] serde_json::Error),

    #[error("round {round} of {method} with seed {seed} failed")]
    Round {
        method: &'static str,
        seed: u64,
        round: usize,
        #[source]
        source: Box<RoundError>,
    },
}

/// A step of one benchmark round that failed.
#[derive(Debug, Error)]
pub enum RoundError {
    #[error("query selection failed")]
    Select(#[from] SelectError),

    #[error("reward model training or evaluation failed")]
    Reward(#[from] RewardModelError),

    #[error("encoder training or export failed")]
    Encoder(#[from] EncoderError),

    #[error("failed to write an ONNX model")]
    Export(#[from] ExportError),

    #[error("failed to load an ONNX model")]
    Infer(#[from] InferError),

    #[error("failed to score pairs with the exported reward ensemble")]
    Scorer(#[from] OnnxScorerError),

    #[error("failed to create the model folder {path}")]
    ModelFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BenchError {
    /// Returns whether the error comes from invalid input: a setting, the dataset file or a
    /// dataset that cannot serve the benchmark.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            BenchError::InvalidSetting { .. }
            | BenchError::SelectConfig(_)
            | BenchError::RewardConfig(_)
            | BenchError::EncoderConfig(_)
            | BenchError::Dataset(_)
            | BenchError::Fingerprint(_)
            | BenchError::NoDecisivePairs { .. } => true,
            BenchError::Runtime(_)
            | BenchError::Io { .. }
            | BenchError::Json(_)
            | BenchError::Round { .. } => false,
        }
    }
}

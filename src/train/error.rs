//! Errors of the training job.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::dataset::DatasetError;
use crate::learn::RewardModelError;
use crate::learn::encoder::EncoderError;
use crate::learn::iql::IqlError;
use crate::onnx::ExportError;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// A training job that cannot run on the given store, settings or registry, or that failed
/// while training or installing.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error(
        "store {path} contains no dataset: import one with `clarify import FILE --store {path}`"
    )]
    NoDataset { path: PathBuf },

    #[error(
        "store {path} contains {count} datasets ({names}): choose one with --dataset ID or NAME"
    )]
    AmbiguousDataset {
        path: PathBuf,
        count: usize,
        names: String,
    },

    #[error("store {path} has no dataset {requested:?}: it contains {names}")]
    UnknownDataset {
        path: PathBuf,
        requested: String,
        names: String,
    },

    #[error(
        "no answered queries for dataset {dataset:?} in {path}: ask the operator some \
         queries before training"
    )]
    NoAnswers { path: PathBuf, dataset: String },

    #[error(
        "too few clear answers for dataset {dataset:?}: {clear} left or right answers \
         ({cant_tell} can't tell, {skip} skip), the reward model needs at least {minimum}"
    )]
    TooFewClearAnswers {
        dataset: String,
        clear: usize,
        cant_tell: usize,
        skip: usize,
        minimum: usize,
    },

    #[error(
        "answered queries use segments of {found:?} steps, expected one segment length \
         for the whole buffer{expected}"
    )]
    SegmentLength { found: Vec<usize>, expected: String },

    #[error(
        "dimension mismatch: the dataset has {field} {found}, but the active model set \
         {version} has {expected}; pass --allow-dimension-change to train a set for \
         another robot"
    )]
    Dimension {
        field: &'static str,
        found: usize,
        expected: usize,
        version: String,
    },

    #[error("invalid training setting {field} = {value}: expected {expected}")]
    InvalidSetting {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("{0}")]
    Settings(String),

    #[error("stored dataset is invalid: {0}")]
    Dataset(#[from] DatasetError),

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("encoder training failed: {0}")]
    Encoder(#[from] EncoderError),

    #[error("reward model training failed: {0}")]
    Reward(#[from] RewardModelError),

    #[error("policy training failed: {0}")]
    Iql(#[from] IqlError),

    #[error("ONNX export failed: {0}")]
    Export(#[from] ExportError),

    #[error(transparent)]
    Registry(#[from] RegistryError),

    #[error("cannot {operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("policy evaluation failed: {0}")]
    Evaluation(String),
}

impl TrainError {
    /// Returns whether the error comes from input that cannot be used (store contents,
    /// settings, a model set for another robot), as opposed to a failure while running.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            TrainError::NoDataset { .. }
            | TrainError::AmbiguousDataset { .. }
            | TrainError::UnknownDataset { .. }
            | TrainError::NoAnswers { .. }
            | TrainError::TooFewClearAnswers { .. }
            | TrainError::SegmentLength { .. }
            | TrainError::Dimension { .. }
            | TrainError::InvalidSetting { .. }
            | TrainError::Settings(_)
            | TrainError::Dataset(_) => true,
            TrainError::Store(error) => error.is_invalid_input(),
            TrainError::Registry(error) => error.is_invalid_input(),
            TrainError::Encoder(_)
            | TrainError::Reward(_)
            | TrainError::Iql(_)
            | TrainError::Export(_)
            | TrainError::Io { .. }
            | TrainError::Evaluation(_) => false,
        }
    }
}

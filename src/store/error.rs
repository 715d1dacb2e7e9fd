//! Errors of the segment store.

use std::path::PathBuf;

use thiserror::Error;

use super::{DatasetId, EpisodeId, QueryId, SegmentRef};
use crate::answer::Answer;

/// A segment store operation that failed. Each variant carries the value at fault.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("failed to open segment store {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "segment store {} has schema version {found}, but this build of clarify supports \
         versions 0 to {supported}: open it with the clarify version that wrote it, or a newer one",
        path.display()
    )]
    UnsupportedSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "failed to migrate segment store {} from schema version {from} to {to}; \
         the file was left at version {from}",
        path.display()
    )]
    Migration {
        path: PathBuf,
        from: i64,
        to: i64,
        #[source]
        source: rusqlite::Error,
    },

    #[error("failed to {operation} in the segment store")]
    Sqlite {
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error("a dataset with sha256 {sha256} is already stored as {existing}")]
    DuplicateDataset { sha256: String, existing: DatasetId },

    #[error("{0} not found in the segment store")]
    DatasetNotFound(DatasetId),

    #[error("{0} not found in the segment store")]
    EpisodeNotFound(EpisodeId),

    #[error("{0} not found in the segment store: an answer must refer to a stored query")]
    QueryNotFound(QueryId),

    #[error(
        "{query} already has the answer {existing}; a query takes one answer, \
         so the new answer {rejected} was not stored"
    )]
    AlreadyAnswered {
        query: QueryId,
        existing: Answer,
        rejected: Answer,
    },

    #[error("segment {segment} ends after the episode's last step (the episode has {steps} steps)")]
    SegmentOutOfRange { segment: SegmentRef, steps: usize },

    #[error("invalid segment {0}: a segment needs at least 1 step")]
    EmptySegment(SegmentRef),

    #[error(
        "invalid segment of {}: start {} plus length {} exceeds the largest step index {}",
        .0.episode, .0.start, .0.length, usize::MAX
    )]
    SegmentEndOverflow(SegmentRef),

    #[error("invalid query: both sides are {0}, a query compares two different segments")]
    SameSegment(SegmentRef),

    #[error(
        "invalid query: the left side {left} and the right side {right} overlap, \
         but the two sides of a query share no step"
    )]
    OverlappingSegments { left: SegmentRef, right: SegmentRef },

    #[error("invalid {field} {value}: expected a finite number{}", if *non_negative { " ≥ 0" } else { "" })]
    InvalidNumber {
        field: &'static str,
        value: f64,
        non_negative: bool,
    },

    #[error(
        "stored {field} of {episode} has {found} bytes, expected {expected} \
         ({rows} rows of {columns} little-endian f32 values); the database is damaged"
    )]
    BlobSize {
        episode: EpisodeId,
        field: &'static str,
        found: usize,
        expected: usize,
        rows: usize,
        columns: usize,
    },

    #[error(
        "episode for {dataset}: {field} has shape {found:?}, expected {expected:?} \
         (steps × the dataset's dimension, at least 1 step)"
    )]
    EpisodeShape {
        dataset: DatasetId,
        field: &'static str,
        found: Vec<usize>,
        expected: Vec<usize>,
    },

    #[error("episode for {dataset}: {field} holds a non-finite value at step {step}")]
    NonFiniteStep {
        dataset: DatasetId,
        field: &'static str,
        step: usize,
    },

    #[error("stored {column} holds {value:?}, which this version of clarify cannot read")]
    StoredValue { column: &'static str, value: String },

    #[error("training run {0} not found in the segment store")]
    TrainingRunNotFound(i64),

    #[error("model version {0:?} not found in the segment store's models table")]
    ModelNotFound(String),
}

impl StoreError {
    /// Returns whether the error comes from invalid input: a file that is not a SQLite
    /// database, a schema newer than this code, or a value or id that the caller passed.
    ///
    /// Failed reads and writes of a valid database, and stored values that this code cannot
    /// read, return `false`.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            StoreError::Open { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)
            }
            StoreError::UnsupportedSchema { .. }
            | StoreError::DuplicateDataset { .. }
            | StoreError::DatasetNotFound(_)
            | StoreError::EpisodeNotFound(_)
            | StoreError::QueryNotFound(_)
            | StoreError::AlreadyAnswered { .. }
            | StoreError::SegmentOutOfRange { .. }
            | StoreError::EmptySegment(_)
            | StoreError::SegmentEndOverflow(_)
            | StoreError::SameSegment(_)
            | StoreError::OverlappingSegments { .. }
            | StoreError::InvalidNumber { .. }
            | StoreError::EpisodeShape { .. }
            | StoreError::NonFiniteStep { .. }
            | StoreError::TrainingRunNotFound(_)
            | StoreError::ModelNotFound(_) => true,
            StoreError::Migration { .. }
            | StoreError::Sqlite { .. }
            | StoreError::BlobSize { .. }
            | StoreError::StoredValue { .. } => false,
        }
    }
}

/// Attaches the failed operation to a SQLite error.
pub(super) trait SqliteContext<T> {
    fn during(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn during(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { operation, source })
    }
}

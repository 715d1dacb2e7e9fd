//! Errors of query selection.

use thiserror::Error;

use super::config::SelectConfigError;
use super::segment::{DatasetSegment, SegmentError, SegmentPair};

/// The error an [`super::Embedder`] or [`super::DisagreementScorer`] returned, boxed so that
/// one selector error type serves every model backend. Callers may downcast it to the
/// backend's own error type.
pub type ModelError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A query selection round that failed. Each variant carries the value at fault.
#[derive(Debug, Error)]
pub enum SelectError {
    #[error(transparent)]
    Config(#[from] SelectConfigError),

    #[error("invalid preference buffer entry {index}")]
    BufferSegment {
        index: usize,
        #[source]
        source: SegmentError,
    },

    #[error("embedder failed on a batch of {segments} segments")]
    Embedder {
        segments: usize,
        #[source]
        source: ModelError,
    },

    #[error("disagreement scorer failed on a batch of {pairs} pairs")]
    Scorer {
        pairs: usize,
        #[source]
        source: ModelError,
    },

    #[error(
        "embedder returned {found} embeddings for {expected} segments: it must return one \
         per segment, in input order"
    )]
    EmbeddingCount { expected: usize, found: usize },

    #[error(
        "embedder returned {found} values for {segment}, but other embeddings have \
         {expected}: every embedding must have z_dim values"
    )]
    EmbeddingDim {
        segment: DatasetSegment,
        expected: usize,
        found: usize,
    },

    #[error("embedder returned an empty embedding for {segment}: expected z_dim ≥ 1 values")]
    EmptyEmbedding { segment: DatasetSegment },

    #[error(
        "embedder returned {value} for {segment}: embeddings must be finite; check the \
         encoder model and the segment's observations"
    )]
    NonFiniteEmbedding { segment: DatasetSegment, value: f32 },

    #[error(
        "disagreement scorer returned {found} scores for {expected} pairs: it must return one \
         per pair, in input order"
    )]
    ScoreCount { expected: usize, found: usize },

    #[error(
        "disagreement scorer returned {value} for pair {pair}: expected a finite standard \
         deviation ≥ 0"
    )]
    InvalidScore { pair: SegmentPair, value: f64 },
}

//! The two models a selector consults, as traits so that selection runs without them in
//! tests: the segment encoder and the reward ensemble's disagreement.

use std::collections::HashMap;

use super::error::SelectError;
use super::segment::{DatasetSegment, SegmentPair};

/// Maps segments to embeddings. In production this is the exported CLARIFY encoder run by
/// ONNX Runtime.
pub trait Embedder {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Embeds a batch of segments. Returns one embedding of z_dim values per segment, in
    /// input order, with the same z_dim for every call.
    fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, Self::Error>;
}

/// Scores how much the reward ensemble disagrees about pairs.
pub trait DisagreementScorer {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Returns, for each pair in input order, the standard deviation across ensemble
    /// members of P(left ≻ right).
    fn disagreement(&mut self, pairs: &[SegmentPair]) -> Result<Vec<f64>, Self::Error>;
}

/// Returns the Euclidean distance ‖a − b‖₂, summed in f64.
pub fn embedding_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Embeds the distinct segments of `pairs` in batches of at most `batch_size` and returns
/// each pair's embedding distance, checking every embedding.
pub(crate) fn pair_distances(
    embedder: &mut impl Embedder,
    pairs: &[SegmentPair],
    batch_size: usize,
) -> Result<Vec<f64>, SelectError> {
    // Distinct segments in first-seen order, so that the embedder's inputs are deterministic.
    let mut index_of = HashMap::new();
    let mut distinct = Vec::new();
    for pair in pairs {
        for segment in [pair.left, pair.right] {
            index_of.entry(segment).or_insert_with(|| {
                distinct.push(segment);
                distinct.len() - 1
            });
        }
    }

    let mut embeddings: Vec<Vec<f32>> = Vec::with_capacity(distinct.len());
    for batch in distinct.chunks(batch_size) {
        let batch_embeddings = embedder
            .embed(batch)
            .map_err(|source| SelectError::Embedder {
                segments: batch.len(),
                source: Box::new(source),
            })?;
        if batch_embeddings.len() != batch.len() {
            return Err(SelectError::EmbeddingCount {
                expected: batch.len(),
                found: batch_embeddings.len(),
            });
        }
        for (segment, embedding) in batch.iter().zip(batch_embeddings) {
            let expected_dim = embeddings.first().map(Vec::len);
            check_embedding(*segment, &embedding, expected_dim)?;
            embeddings.push(embedding);
        }
    }

    Ok(pairs
        .iter()
        .map(|pair| {
            embedding_distance(
                &embeddings[index_of[&pair.left]],
                &embeddings[index_of[&pair.right]],
            )
        })
        .collect())
}

fn check_embedding(
    segment: DatasetSegment,
    embedding: &[f32],
    expected_dim: Option<usize>,
) -> Result<(), SelectError> {
    if embedding.is_empty() {
        return Err(SelectError::EmptyEmbedding { segment });
    }
    if let Some(expected) = expected_dim
        && embedding.len() != expected
    {
        return Err(SelectError::EmbeddingDim {
            segment,
            expected,
            found: embedding.len(),
        });
    }
    if let Some(&value) = embedding.iter().find(|value| !value.is_finite()) {
        return Err(SelectError::NonFiniteEmbedding { segment, value });
    }
    Ok(())
}

/// Scores `pairs` in batches of at most `batch_size`, checking that every score is a
/// finite number ≥ 0.
pub(crate) fn disagreement_scores(
    scorer: &mut impl DisagreementScorer,
    pairs: &[SegmentPair],
    batch_size: usize,
) -> Result<Vec<f64>, SelectError> {
    let mut scores = Vec::with_capacity(pairs.len());
    for batch in pairs.chunks(batch_size) {
        let batch_scores = scorer
            .disagreement(batch)
            .map_err(|source| SelectError::Scorer {
                pairs: batch.len(),
                source: Box::new(source),
            })?;
        if batch_scores.len() != batch.len() {
            return Err(SelectError::ScoreCount {
                expected: batch.len(),
                found: batch_scores.len(),
            });
        }
        for (pair, value) in batch.iter().zip(batch_scores) {
            if !(value.is_finite() && value >= 0.0) {
                return Err(SelectError::InvalidScore { pair: *pair, value });
            }
            scores.push(value);
        }
    }
    Ok(scores)
}

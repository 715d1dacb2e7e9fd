//! Settings of query selection.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::segment::DEFAULT_SEGMENT_LENGTH;

/// Default number of queries per round M, as in Mu et al. (ICML 2025).
pub const DEFAULT_QUERIES_PER_ROUND: usize = 50;

/// Default pool factor L: disagreement and CLARIFY rounds draw M · L candidates.
pub const DEFAULT_POOL_FACTOR: usize = 10;

/// Default number of equal-width histogram bins over the reference distances. The
/// official CLARIFY code uses 32 and ignores its `--n_bins 31` flag.
pub const DEFAULT_BIN_COUNT: usize = 32;

/// Default half-width of the distance range kept by outlier removal, in standard
/// deviations around the mean.
pub const DEFAULT_OUTLIER_STD_DEVS: f64 = 3.0;

/// Default maximum number of segments per embedder call and of pairs per scorer call.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// Default number of random draws allowed per requested candidate pair before a draw
/// stops short.
pub const DEFAULT_DRAW_ATTEMPTS_PER_PAIR: usize = 100;

/// Settings of a [`super::QuerySelector`]. Every field has a default, so `{}` is a valid
/// configuration; unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectConfig {
    /// Segment length H in steps. Default 50.
    pub segment_length: usize,
    /// Queries per round M. Default 50.
    pub queries_per_round: usize,
    /// Pool factor L. Disagreement and CLARIFY rounds draw M · L candidates, and CLARIFY
    /// draws M · L reference queries from the preference buffer. Default 10.
    pub pool_factor: usize,
    /// Number of equal-width bins of the distance histograms. Default 32.
    pub bin_count: usize,
    /// Outlier removal keeps distances d with |d − mean| ≤ `outlier_std_devs` · std.
    /// Default 3.0.
    pub outlier_std_devs: f64,
    /// Maximum number of segments per embedder call and of pairs per scorer call.
    /// Default 256.
    pub batch_size: usize,
    /// Random draws allowed per requested candidate pair. A draw that uses them up
    /// returns fewer pairs with a warning. Default 100.
    pub draw_attempts_per_pair: usize,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self {
            segment_length: DEFAULT_SEGMENT_LENGTH,
            queries_per_round: DEFAULT_QUERIES_PER_ROUND,
            pool_factor: DEFAULT_POOL_FACTOR,
            bin_count: DEFAULT_BIN_COUNT,
            outlier_std_devs: DEFAULT_OUTLIER_STD_DEVS,
            batch_size: DEFAULT_BATCH_SIZE,
            draw_attempts_per_pair: DEFAULT_DRAW_ATTEMPTS_PER_PAIR,
        }
    }
}

impl SelectConfig {
    /// Checks every field and returns the first invalid one.
    pub fn validate(&self) -> Result<(), SelectConfigError> {
        at_least("segment_length", self.segment_length, 1)?;
        at_least("queries_per_round", self.queries_per_round, 1)?;
        at_least("pool_factor", self.pool_factor, 1)?;
        at_least("bin_count", self.bin_count, 2)?;
        at_least("batch_size", self.batch_size, 1)?;
        at_least("draw_attempts_per_pair", self.draw_attempts_per_pair, 1)?;

        if !(self.outlier_std_devs.is_finite() && self.outlier_std_devs > 0.0) {
            return Err(SelectConfigError {
                field: "outlier_std_devs",
                value: self.outlier_std_devs.to_string(),
                expected: "a finite number greater than 0".to_owned(),
            });
        }
        if self.pool_size().is_none() {
            return Err(SelectConfigError {
                field: "pool_factor",
                value: self.pool_factor.to_string(),
                expected: "a value whose product with queries_per_round fits in usize".to_owned(),
            });
        }
        Ok(())
    }

    /// Returns the candidate pool size M · L, or `None` on overflow.
    pub fn pool_size(&self) -> Option<usize> {
        self.queries_per_round.checked_mul(self.pool_factor)
    }
}

/// A configuration field with an invalid value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid query selection setting {field} = {value}: expected {expected}")]
pub struct SelectConfigError {
    /// Name of the field, as written in the configuration.
    pub field: &'static str,
    /// The rejected value.
    pub value: String,
    /// The values the field accepts.
    pub expected: String,
}

fn at_least(field: &'static str, value: usize, minimum: usize) -> Result<(), SelectConfigError> {
    if value >= minimum {
        return Ok(());
    }
    Err(SelectConfigError {
        field,
        value: value.to_string(),
        expected: format!("at least {minimum}"),
    })
}

//! Per-feature state normalisation (s − mean) / std with the dataset's statistics.

use ndarray::{ArrayView1, ArrayView2, Axis};

use super::error::EncoderError;
use crate::dataset::Dataset;

/// Added to each feature's standard deviation, so that constant features divide by a
/// positive number.
pub const STD_EPSILON: f32 = 1e-6;

/// Mean and standard deviation per state feature.
#[derive(Clone, Debug, PartialEq)]
pub struct StateNormalization {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl StateNormalization {
    /// Creates a normalisation from `mean` and `std`, which must have the same length and
    /// finite values, with every `std` entry > 0.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, EncoderError> {
        let invalid = |reason: String| Err(EncoderError::Normalization { reason });
        if mean.len() != std.len() || mean.is_empty() {
            return invalid(format!(
                "mean has {} entries and std {}: expected the same non-zero count",
                mean.len(),
                std.len()
            ));
        }
        if let Some((index, value)) = mean.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return invalid(format!("mean[{index}] = {value}: expected a finite value"));
        }
        if let Some((index, value)) = std
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        {
            return invalid(format!(
                "std[{index}] = {value}: expected a finite value > 0"
            ));
        }
        Ok(Self { mean, std })
    }

    /// Computes the mean and the population standard deviation plus [`STD_EPSILON`] of
    /// every observation feature of `dataset`.
    pub fn from_dataset(dataset: &Dataset) -> Result<Self, EncoderError> {
        Self::from_observations(dataset.observations())
    }

    /// Computes the statistics of `observations` `[steps, obs]` like
    /// [`StateNormalization::from_dataset`].
    pub fn from_observations(observations: ArrayView2<'_, f32>) -> Result<Self, EncoderError> {
        if observations.nrows() == 0 {
            return Err(EncoderError::Normalization {
                reason: "no observations to compute the mean and std from".to_owned(),
            });
        }
        let as_f64 = observations.mapv(f64::from);
        let mean = as_f64.mean_axis(Axis(0)).expect("at least one row");
        let std = as_f64.std_axis(Axis(0), 0.0);
        Self::new(
            mean.iter().map(|&v| v as f32).collect(),
            std.iter().map(|&v| v as f32 + STD_EPSILON).collect(),
        )
    }

    /// Creates the identity normalisation (mean 0, std 1) of `dim` features.
    pub fn identity(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    /// Returns the per-feature means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Returns the per-feature standard deviations, [`STD_EPSILON`] included.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Returns the number of features.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Writes the normalised `state` into `target`.
    pub(crate) fn normalize_into(&self, state: ArrayView1<'_, f32>, target: &mut [f32]) {
        for (((target, &value), &mean), &std) in
            target.iter_mut().zip(state).zip(&self.mean).zip(&self.std)
        {
            *target = (value - mean) / std;
        }
    }
}

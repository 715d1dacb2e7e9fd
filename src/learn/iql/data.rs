//! Offline transitions prepared for IQL: standardised observations and rewards
//! min-max normalised to [0, 1], with the statistics that the exported policy needs.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::error::IqlError;
use crate::dataset::{Dataset, EpisodeEnd};
use crate::learn::{RewardModelError, RewardScale, normalize_min_max};

/// Per-feature observation standardisation (observation − mean) / std, where std already
/// contains the epsilon added to the data's standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservationNormalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ObservationNormalization {
    /// Computes the per-feature mean and population standard deviation (in f64) of
    /// `observations` and adds `std_epsilon` to the standard deviation.
    pub fn fit(observations: ArrayView2<'_, f32>, std_epsilon: f32) -> Result<Self, IqlError> {
        let rows = observations.nrows() as f64;
        let mut mean = Vec::with_capacity(observations.ncols());
        let mut std = Vec::with_capacity(observations.ncols());
        for (feature, column) in observations.axis_iter(Axis(1)).enumerate() {
            let column_mean = column.iter().map(|&v| f64::from(v)).sum::<f64>() / rows;
            let variance = column
                .iter()
                .map(|&v| (f64::from(v) - column_mean).powi(2))
                .sum::<f64>()
                / rows;
            let feature_std = (variance.sqrt() + f64::from(std_epsilon)) as f32;
            if !(feature_std.is_finite() && feature_std > 0.0) {
                return Err(IqlError::ObservationScale {
                    feature,
                    std: feature_std,
                });
            }
            mean.push(column_mean as f32);
            std.push(feature_std);
        }
        Ok(Self { mean, std })
    }

    /// Returns the standardised copy of `observations` `[rows, features]`.
    pub fn apply(&self, observations: ArrayView2<'_, f32>) -> Array2<f32> {
        let mean = ArrayView1::from(&self.mean);
        let std = ArrayView1::from(&self.std);
        (&observations - &mean) / &std
    }
}

/// Transitions for IQL training.
///
/// Observations and next observations are standardised with the statistics of the
/// observations, and rewards are min-max normalised to [0, 1] over all transitions.
#[derive(Clone, Debug)]
pub struct IqlData {
    observations: Array2<f32>,
    actions: Array2<f32>,
    next_observations: Array2<f32>,
    rewards: Array1<f32>,
    terminals: Array1<bool>,
    normalization: ObservationNormalization,
    reward_scale: RewardScale,
}

impl IqlData {
    /// Prepares raw transitions: `observations` and `next_observations` `[N, observation_dim]`,
    /// `actions` `[N, action_dim]`, `rewards` and `terminals` `[N]`.
    ///
    /// `rewards` are the ones to learn from: the reward model's relabelled rewards, or the
    /// true rewards for an oracle run. Each next observation must belong to the same episode
    /// as its observation. Fails on empty or mismatched arrays, non-finite values, rewards
    /// that are all equal, or a feature whose standard deviation plus `std_epsilon` is not
    /// positive.
    pub fn new(
        observations: Array2<f32>,
        actions: Array2<f32>,
        next_observations: Array2<f32>,
        mut rewards: Array1<f32>,
        terminals: Array1<bool>,
        observation_std_epsilon: f32,
    ) -> Result<Self, IqlError> {
        let rows = observations.nrows();
        if rows == 0 || observations.ncols() == 0 {
            return Err(IqlError::Shape {
                what: "observations",
                found: observations.shape().to_vec(),
                expected: "[N ≥ 1, observation_dim ≥ 1]".to_owned(),
            });
        }
        if actions.ncols() == 0 {
            return Err(IqlError::Shape {
                what: "actions",
                found: actions.shape().to_vec(),
                expected: "[N, action_dim ≥ 1]".to_owned(),
            });
        }
        if next_observations.ncols() != observations.ncols() {
            return Err(IqlError::Shape {
                what: "next_observations",
                found: next_observations.shape().to_vec(),
                expected: format!("[{rows}, {}] like the observations", observations.ncols()),
            });
        }
        let row_counts = [
            ("actions", actions.nrows()),
            ("next_observations", next_observations.nrows()),
            ("rewards", rewards.len()),
            ("terminals", terminals.len()),
        ];
        for (what, found) in row_counts {
            if found != rows {
                return Err(IqlError::Length {
                    what,
                    found,
                    expected: rows,
                });
            }
        }
        check_finite("observations", observations.view())?;
        check_finite("actions", actions.view())?;
        check_finite("next_observations", next_observations.view())?;

        let reward_scale = normalize_min_max(rewards.as_slice_mut().expect("an owned array"))
            .map_err(|error| match error {
                RewardModelError::Normalization { min, max } => IqlError::RewardRange { min, max },
                other => unreachable!("min-max normalisation failed with {other}"),
            })?;
        let normalization =
            ObservationNormalization::fit(observations.view(), observation_std_epsilon)?;
        Ok(Self {
            observations: normalization.apply(observations.view()),
            next_observations: normalization.apply(next_observations.view()),
            actions,
            rewards,
            terminals,
            normalization,
            reward_scale,
        })
    }

    /// Prepares the transitions of `dataset` with `rewards` (one per step) in place of its
    /// true rewards.
    ///
    /// Next observations come from the dataset's `next_observations` field, so no transition
    /// crosses an episode boundary. A transition is terminal when it is the last step of an
    /// episode that ended with `terminals` set.
    pub fn from_dataset(
        dataset: &Dataset,
        rewards: ArrayView1<'_, f32>,
        observation_std_epsilon: f32,
    ) -> Result<Self, IqlError> {
        let mut terminals = Array1::from_elem(dataset.step_count(), false);
        for episode in dataset.episodes() {
            if episode.end == EpisodeEnd::Terminated {
                terminals[episode.end_step() - 1] = true;
            }
        }
        Self::new(
            dataset.observations().to_owned(),
            dataset.actions().to_owned(),
            dataset.next_observations().to_owned(),
            rewards.to_owned(),
            terminals,
            observation_std_epsilon,
        )
    }

    /// Returns the number of transitions.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Returns whether there are no transitions (never true for a constructed value).
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Returns the observation width.
    pub fn observation_dim(&self) -> usize {
        self.observations.ncols()
    }

    /// Returns the action width.
    pub fn action_dim(&self) -> usize {
        self.actions.ncols()
    }

    /// Returns the standardisation applied to the observations.
    pub fn normalization(&self) -> &ObservationNormalization {
        &self.normalization
    }

    /// Returns the minimum and maximum of the rewards before normalisation.
    pub fn reward_scale(&self) -> RewardScale {
        self.reward_scale
    }

    /// Returns the standardised observations `[N, observation_dim]`.
    pub fn observations(&self) -> ArrayView2<'_, f32> {
        self.observations.view()
    }

    /// Returns the actions `[N, action_dim]`.
    pub fn actions(&self) -> ArrayView2<'_, f32> {
        self.actions.view()
    }

    /// Returns the standardised next observations `[N, observation_dim]`.
    pub fn next_observations(&self) -> ArrayView2<'_, f32> {
        self.next_observations.view()
    }

    /// Returns the rewards normalised to [0, 1], `[N]`.
    pub fn rewards(&self) -> ArrayView1<'_, f32> {
        self.rewards.view()
    }

    /// Returns the terminal flags, `[N]`.
    pub fn terminals(&self) -> ArrayView1<'_, bool> {
        self.terminals.view()
    }
}

fn check_finite(what: &'static str, values: ArrayView2<'_, f32>) -> Result<(), IqlError> {
    for (row, values) in values.rows().into_iter().enumerate() {
        if let Some((column, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(IqlError::NonFiniteData {
                what,
                value,
                row,
                column,
            });
        }
    }
    Ok(())
}

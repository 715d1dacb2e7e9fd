//! Offline datasets of robot episodes in the D4RL field layout.
//!
//! A [`Dataset`] stores N steps of observations, actions, next observations, rewards and
//! episode-end flags, episodes stored one after another in step order, and the split of
//! those steps into episodes. Every `Dataset` has passed validation, so callers rely on:
//!
//! - N ≥ 1, and every per-step field has N rows;
//! - every float is finite (no NaN, no infinity);
//! - the episodes cover steps 0..N in order, without gaps or overlap, each with at least
//!   one step, and each records how it ended ([`EpisodeEnd`]);
//! - when the file has `episode_ids`, every terminal or timeout flag lies on an episode's
//!   last step, and `timesteps`, when present, counts 0, 1, 2, ... within each episode.
//!
//! The simulator state fields (`rand_vecs`, `qpos`, `qvel`, `mocap_pos`, `mocap_quat`) are
//! allowed in a file but not read.

mod episodes;
mod error;
mod npz;

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

pub use error::DatasetError;

/// Kind of episode end, read from the flags at the episode's last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpisodeEnd {
    /// The task ended (`terminals` is true at the last step). This wins when both flags
    /// are set, because the time limit no longer matters once the task has ended.
    Terminated,
    /// The time limit cut the episode (`timeouts` is true at the last step).
    TimedOut,
    /// Neither flag is set at the last step: the file ended, or `episode_ids` started a new
    /// episode without a flag.
    Unmarked,
}

/// One episode: the global steps `start..start + len` of its dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    /// Global index of the episode's first step.
    pub start: usize,
    /// Number of steps, at least 1.
    pub len: usize,
    /// Kind of end.
    pub end: EpisodeEnd,
}

impl Episode {
    /// Returns the global index one past the episode's last step.
    pub fn end_step(&self) -> usize {
        self.start + self.len
    }
}

/// The fields of a dataset before validation, as read from a file or recorded live.
///
/// Names and meanings follow the D4RL layout. The optional fields are `None` when absent.
#[derive(Clone, Debug)]
pub struct DatasetArrays {
    /// Observation before each step's action, shape `[N, obs_dim]`.
    pub observations: Array2<f32>,
    /// Action applied at each step, shape `[N, act_dim]`.
    pub actions: Array2<f32>,
    /// Observation after each step's action, shape `[N, obs_dim]`.
    pub next_observations: Array2<f32>,
    /// Ground-truth reward of each step, shape `[N]`.
    pub rewards: Array1<f32>,
    /// The task ended at this step, shape `[N]`.
    pub terminals: Array1<bool>,
    /// The time limit cut the episode at this step, shape `[N]`.
    pub timeouts: Array1<bool>,
    /// The task's success flag after each step, shape `[N]`.
    pub success: Option<Array1<bool>>,
    /// Episode index of each step, 0-based, non-decreasing and contiguous, shape `[N]`.
    pub episode_ids: Option<Array1<i64>>,
    /// Step index within the episode, 0-based, shape `[N]`.
    pub timesteps: Option<Array1<i64>>,
}

/// A validated offline dataset with its episode split.
#[derive(Clone, Debug)]
pub struct Dataset {
    path: PathBuf,
    arrays: DatasetArrays,
    episodes: Vec<Episode>,
}

impl Dataset {
    /// Loads and validates a dataset NPZ file (`numpy.savez` or `numpy.savez_compressed`).
    ///
    /// Every error names the file and, where one is at fault, the field, what it contains
    /// and what was expected.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DatasetError> {
        let path = path.as_ref();
        let arrays = npz::read_arrays(path)?;
        Self::from_arrays(path, arrays)
    }

    /// Validates in-memory arrays and splits them into episodes.
    ///
    /// `path` names the arrays' origin in error messages. Episodes come from `episode_ids`
    /// when present, otherwise an episode ends at every step where `terminals` or
    /// `timeouts` is true and at the last step.
    pub fn from_arrays(
        path: impl Into<PathBuf>,
        arrays: DatasetArrays,
    ) -> Result<Self, DatasetError> {
        let path = path.into();
        validate_shapes(&path, &arrays)?;
        validate_finite(&path, &arrays)?;

        let episodes = match &arrays.episode_ids {
            Some(ids) => {
                episodes::split_by_episode_ids(&path, ids, &arrays.terminals, &arrays.timeouts)?
            }
            None => episodes::split_by_flags(&arrays.terminals, &arrays.timeouts),
        };
        if let Some(timesteps) = &arrays.timesteps {
            episodes::validate_timesteps(&path, timesteps, &episodes)?;
        }

        Ok(Self {
            path,
            arrays,
            episodes,
        })
    }

    /// Returns the file the dataset was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the number of steps N.
    pub fn step_count(&self) -> usize {
        self.arrays.rewards.len()
    }

    /// Returns the observation dimension.
    pub fn observation_dim(&self) -> usize {
        self.arrays.observations.ncols()
    }

    /// Returns the action dimension.
    pub fn action_dim(&self) -> usize {
        self.arrays.actions.ncols()
    }

    /// Returns the episodes in step order.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// Returns the observations before each step's action, shape `[N, obs_dim]`.
    pub fn observations(&self) -> ArrayView2<'_, f32> {
        self.arrays.observations.view()
    }

    /// Returns the actions, shape `[N, act_dim]`.
    pub fn actions(&self) -> ArrayView2<'_, f32> {
        self.arrays.actions.view()
    }

    /// Returns the observations after each step's action, shape `[N, obs_dim]`.
    pub fn next_observations(&self) -> ArrayView2<'_, f32> {
        self.arrays.next_observations.view()
    }

    /// Returns the ground-truth rewards, shape `[N]`. Only simulated teachers and benchmarks
    /// read them, because an operator never sees rewards.
    pub fn rewards(&self) -> ArrayView1<'_, f32> {
        self.arrays.rewards.view()
    }

    /// Returns the success flags, shape `[N]`, or `None` when the file has none.
    pub fn success(&self) -> Option<ArrayView1<'_, bool>> {
        self.arrays.success.as_ref().map(|success| success.view())
    }
}

/// Checks that every field has N rows, where N is the length of `observations`, and that
/// `next_observations` matches `observations` in shape.
fn validate_shapes(path: &Path, arrays: &DatasetArrays) -> Result<(), DatasetError> {
    let step_count = arrays.observations.nrows();
    if step_count == 0 {
        return Err(DatasetError::Empty {
            path: path.to_owned(),
        });
    }

    let observation_shape = arrays.observations.shape();
    if arrays.next_observations.shape() != observation_shape {
        return Err(DatasetError::Shape {
            path: path.to_owned(),
            field: "next_observations",
            found: arrays.next_observations.shape().to_vec(),
            expected: format!("{observation_shape:?} (the shape of observations)"),
        });
    }

    let expect_steps = |field: &'static str, found: &[usize]| {
        if found.first() == Some(&step_count) {
            return Ok(());
        }
        let mut expected = found.to_vec();
        expected[0] = step_count;
        Err(DatasetError::Shape {
            path: path.to_owned(),
            field,
            found: found.to_vec(),
            expected: format!("{expected:?} (one per step)"),
        })
    };
    expect_steps("actions", arrays.actions.shape())?;
    expect_steps("rewards", arrays.rewards.shape())?;
    expect_steps("terminals", arrays.terminals.shape())?;
    expect_steps("timeouts", arrays.timeouts.shape())?;

    let optional_fields = [
        ("success", arrays.success.as_ref().map(|a| a.shape())),
        (
            "episode_ids",
            arrays.episode_ids.as_ref().map(|a| a.shape()),
        ),
        ("timesteps", arrays.timesteps.as_ref().map(|a| a.shape())),
    ];
    for (field, shape) in optional_fields {
        if let Some(shape) = shape {
            expect_steps(field, shape)?;
        }
    }
    Ok(())
}

/// Checks that the float fields contain no NaN or infinity, and reports the first one.
fn validate_finite(path: &Path, arrays: &DatasetArrays) -> Result<(), DatasetError> {
    let matrices = [
        ("observations", &arrays.observations),
        ("actions", &arrays.actions),
        ("next_observations", &arrays.next_observations),
    ];
    for (field, matrix) in matrices {
        for (step, row) in matrix.axis_iter(Axis(0)).enumerate() {
            if let Some((column, &value)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(DatasetError::NonFinite {
                    path: path.to_owned(),
                    field,
                    value,
                    step,
                    column: Some(column),
                });
            }
        }
    }

    if let Some((step, &value)) = arrays
        .rewards
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        return Err(DatasetError::NonFinite {
            path: path.to_owned(),
            field: "rewards",
            value,
            step,
            column: None,
        });
    }
    Ok(())
}

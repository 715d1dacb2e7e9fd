//! Errors of dataset loading and validation.

use std::io;
use std::path::PathBuf;

use ndarray_npy::ReadNpzError;
use thiserror::Error;

/// Required dataset fields, in the order the layout lists them.
pub(crate) const REQUIRED_FIELDS: [&str; 6] = [
    "observations",
    "actions",
    "next_observations",
    "rewards",
    "terminals",
    "timeouts",
];

/// A dataset file that cannot be read or does not match the layout.
///
/// Every variant names the file. Variants about a field also name the field, what it
/// contains and what was expected.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("failed to open dataset {}: check the path", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{} is not a valid NPZ archive (expected a file written by numpy.savez_compressed)",
        path.display()
    )]
    Archive {
        path: PathBuf,
        #[source]
        source: ReadNpzError,
    },

    #[error(
        "{} has no field `{field}` (fields present: {present}); required fields: {}",
        path.display(),
        REQUIRED_FIELDS.join(", ")
    )]
    MissingField {
        path: PathBuf,
        field: &'static str,
        present: String,
    },

    #[error("{}: failed to read field `{field}`", path.display())]
    ReadField {
        path: PathBuf,
        field: &'static str,
        #[source]
        source: ReadNpzError,
    },

    #[error("{}: {field} has dtype {found}, expected {expected}", path.display())]
    Dtype {
        path: PathBuf,
        field: &'static str,
        found: String,
        expected: &'static str,
    },

    #[error("{}: {field} has shape {found:?}, expected {expected}", path.display())]
    Shape {
        path: PathBuf,
        field: &'static str,
        found: Vec<usize>,
        expected: String,
    },

    #[error(
        "{}: {field} contains {value} at step {step}{}, expected finite values",
        path.display(),
        column.map(|c| format!(", column {c}")).unwrap_or_default()
    )]
    NonFinite {
        path: PathBuf,
        field: &'static str,
        value: f32,
        step: usize,
        column: Option<usize>,
    },

    #[error("{} contains no steps (observations has 0 rows)", path.display())]
    Empty { path: PathBuf },

    #[error("{}: episode_ids starts at {found}, expected 0", path.display())]
    EpisodeIdStart { path: PathBuf, found: i64 },

    #[error(
        "{}: episode_ids is {found} at step {step} after {previous} at the step before, \
         expected {previous} or {next} (ids must be non-decreasing and contiguous)",
        path.display()
    )]
    EpisodeIdJump {
        path: PathBuf,
        step: usize,
        previous: i64,
        next: i64,
        found: i64,
    },

    #[error(
        "{}: {flag} is true at step {step}, but episode_ids continues episode {episode} \
         at the next step (an episode ends at its terminal or timeout step)",
        path.display()
    )]
    FlagInsideEpisode {
        path: PathBuf,
        flag: &'static str,
        step: usize,
        episode: i64,
    },

    #[error(
        "{}: timesteps is {found} at step {step}, expected {expected} \
         (step {expected} of episode {episode})",
        path.display()
    )]
    Timestep {
        path: PathBuf,
        step: usize,
        found: i64,
        expected: usize,
        episode: usize,
    },
}

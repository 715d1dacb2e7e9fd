//! Datasets that grow one episode at a time, as a live recording writes them.
//!
//! [`Store::insert_dataset`] stores a whole file in one transaction. A recorder instead
//! creates an empty dataset when it starts ([`Store::create_recording`]) and appends each
//! episode when it ends ([`Store::append_episode`]), each append one transaction. Rows are
//! the same as an import's: episode indexes count up from 0, `first_step` is the number of
//! steps stored before the episode, and the step arrays use the same blob encoding.

use ndarray::Axis;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::datasets::{encode_matrix, encode_vector, end_kind_word};
use super::error::SqliteContext;
use super::{
    DatasetId, DatasetMeta, EpisodeArrays, EpisodeId, Store, StoreError, check_number,
    from_sql_int, to_sql_int,
};
use crate::dataset::EpisodeEnd;

impl Store {
    /// Creates an empty dataset for a recording with the given dimensions.
    ///
    /// Fails with [`StoreError::DuplicateDataset`] when a dataset with the same content
    /// hash exists; a recording's hash identifies the recording session.
    pub fn create_recording(
        &mut self,
        meta: &DatasetMeta,
        observation_dim: usize,
        action_dim: usize,
    ) -> Result<DatasetId, StoreError> {
        check_number("imported_at_unix_secs", meta.imported_at_unix_secs, false)?;
        let sha256 = meta.content_hash.to_hex();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin creating a recording")?;
        let existing: Option<i64> = transaction
            .query_row(
                "SELECT id FROM datasets WHERE content_sha256 = ?1",
                [&sha256],
                |row| row.get(0),
            )
            .optional()
            .during("look up the dataset hash")?;
        if let Some(existing) = existing {
            return Err(StoreError::DuplicateDataset {
                sha256,
                existing: DatasetId(existing),
            });
        }
        transaction
            .execute(
                "INSERT INTO datasets (name, source_path, content_sha256, observation_dim, \
                 action_dim, imported_at_unix_secs, sidecar_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    meta.name,
                    meta.source_path.to_string_lossy(),
                    sha256,
                    to_sql_int(observation_dim),
                    to_sql_int(action_dim),
                    meta.imported_at_unix_secs,
                    meta.sidecar_json,
                ],
            )
            .during("insert the recording's dataset row")?;
        let id = transaction.last_insert_rowid();
        transaction
            .commit()
            .during("commit the recording's dataset row")?;
        Ok(DatasetId(id))
    }

    /// Appends one episode with its step arrays to a dataset, in one transaction.
    ///
    /// The arrays must have at least one step, the dataset's dimensions and only finite
    /// values; `success_any` is stored as NULL (a recording has no success flags).
    pub fn append_episode(
        &mut self,
        dataset: DatasetId,
        arrays: &EpisodeArrays,
        end: EpisodeEnd,
    ) -> Result<EpisodeId, StoreError> {
        let record = self.dataset(dataset)?;
        check_episode_arrays(dataset, arrays, record.observation_dim, record.action_dim)?;
        let steps = arrays.rewards.len();

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin appending an episode")?;
        let (count, stored_steps): (i64, i64) = transaction
            .query_row(
                "SELECT count(*), coalesce(sum(step_count), 0) FROM episodes \
                 WHERE dataset_id = ?1",
                [dataset.get()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .during("count the stored episodes")?;
        let index = from_sql_int("count of episodes", count)?;
        let first_step = from_sql_int("sum of episodes.step_count", stored_steps)?;

        transaction
            .execute(
                "INSERT INTO episodes (dataset_id, episode_index, first_step, step_count, \
                 end_kind, success_any) VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![
                    dataset.get(),
                    to_sql_int(index),
                    to_sql_int(first_step),
                    to_sql_int(steps),
                    end_kind_word(end),
                ],
            )
            .during("insert an episode row")?;
        let episode = transaction.last_insert_rowid();
        transaction
            .execute(
                "INSERT INTO steps (episode_id, observations, actions, next_observations, \
                 rewards) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    episode,
                    encode_matrix(arrays.observations.view()),
                    encode_matrix(arrays.actions.view()),
                    encode_matrix(arrays.next_observations.view()),
                    encode_vector(arrays.rewards.view()),
                ],
            )
            .during("insert an episode's step arrays")?;
        transaction.commit().during("commit an appended episode")?;
        Ok(EpisodeId(episode))
    }
}

/// Checks shapes (at least one step, the dataset's dimensions) and that every value is
/// finite.
fn check_episode_arrays(
    dataset: DatasetId,
    arrays: &EpisodeArrays,
    observation_dim: usize,
    action_dim: usize,
) -> Result<(), StoreError> {
    let steps = arrays.rewards.len();
    let shape_error = |field, found: &[usize], expected: Vec<usize>| StoreError::EpisodeShape {
        dataset,
        field,
        found: found.to_vec(),
        expected,
    };
    if steps == 0 {
        return Err(shape_error("rewards", &[0], vec![1]));
    }
    let matrices = [
        ("observations", &arrays.observations, observation_dim),
        ("actions", &arrays.actions, action_dim),
        (
            "next_observations",
            &arrays.next_observations,
            observation_dim,
        ),
    ];
    for (field, matrix, dim) in matrices {
        if matrix.shape() != [steps, dim] {
            return Err(shape_error(field, matrix.shape(), vec![steps, dim]));
        }
        for (step, row) in matrix.axis_iter(Axis(0)).enumerate() {
            if !row.iter().all(|value| value.is_finite()) {
                return Err(StoreError::NonFiniteStep {
                    dataset,
                    field,
                    step,
                });
            }
        }
    }
    if let Some(step) = arrays.rewards.iter().position(|value| !value.is_finite()) {
        return Err(StoreError::NonFiniteStep {
            dataset,
            field: "rewards",
            step,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ndarray::{Array1, Array2};

    use super::*;
    use crate::store::ContentHash;

    fn meta() -> DatasetMeta {
        DatasetMeta {
            name: "live".into(),
            source_path: PathBuf::from("live:/test"),
            content_hash: ContentHash::of_bytes(b"session 1"),
            sidecar_json: None,
            imported_at_unix_secs: 1.0,
        }
    }

    fn arrays(steps: usize, start: f32) -> EpisodeArrays {
        let observations = Array2::from_shape_fn((steps, 2), |(i, j)| start + (i * 2 + j) as f32);
        EpisodeArrays {
            next_observations: observations.clone(),
            observations,
            actions: Array2::from_elem((steps, 1), 0.5),
            rewards: Array1::zeros(steps),
        }
    }

    #[test]
    fn appended_episodes_count_up_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let folder = tempfile::tempdir()?;
        let mut store = Store::open(folder.path().join("rec.sqlite"))?;
        let dataset = store.create_recording(&meta(), 2, 1)?;

        let first = store.append_episode(dataset, &arrays(3, 0.0), EpisodeEnd::Terminated)?;
        let second = store.append_episode(dataset, &arrays(2, 10.0), EpisodeEnd::TimedOut)?;

        let episodes = store.episodes(dataset)?;
        assert_eq!(episodes.len(), 2);
        assert_eq!((episodes[1].index, episodes[1].first_step), (1, 3));
        assert_eq!(episodes[1].end, EpisodeEnd::TimedOut);
        assert_eq!(episodes[0].success_any, None);
        assert_eq!(store.episode_arrays(first)?, arrays(3, 0.0));
        assert_eq!(store.episode_arrays(second)?, arrays(2, 10.0));
        Ok(())
    }

    #[test]
    fn wrong_shape_and_nan_rejected() -> Result<(), Box<dyn std::error::Error>> {
        let folder = tempfile::tempdir()?;
        let mut store = Store::open(folder.path().join("rec.sqlite"))?;
        let dataset = store.create_recording(&meta(), 3, 1)?;

        let error = store
            .append_episode(dataset, &arrays(2, 0.0), EpisodeEnd::Unmarked)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("observations has shape [2, 2], expected [2, 3]"),
            "{error}"
        );

        let dataset = store.create_recording(
            &DatasetMeta {
                content_hash: ContentHash::of_bytes(b"session 2"),
                ..meta()
            },
            2,
            1,
        )?;
        let mut bad = arrays(2, 0.0);
        bad.actions[[1, 0]] = f32::NAN;
        let error = store
            .append_episode(dataset, &bad, EpisodeEnd::Unmarked)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("actions holds a non-finite value at step 1"),
            "{error}"
        );
        assert!(store.episodes(dataset)?.is_empty());
        Ok(())
    }
}

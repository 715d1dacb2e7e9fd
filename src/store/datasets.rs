//! Datasets, episodes and per-episode step arrays in the segment store.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Slice};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use super::error::SqliteContext;
use super::{DatasetId, EpisodeId, Store, StoreError, check_number, from_sql_int, to_sql_int};
use crate::dataset::{Dataset, EpisodeEnd};

/// SHA-256 digest of a dataset file's bytes, which identifies the file across imports.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Hashes a file's bytes, reading it in 1 MiB blocks.
    pub fn of_file(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0_u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(Self(hasher.finalize().into()))
    }

    /// Hashes bytes held in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Returns the digest as 64 lowercase hex digits, the form stored in `content_sha256`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0_u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// The facts about a dataset file that the store records next to its episodes.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetMeta {
    /// Name shown to people, by default the file stem (`dial-turn`).
    pub name: String,
    /// Path the file was imported from.
    pub source_path: PathBuf,
    /// SHA-256 of the file bytes.
    pub content_hash: ContentHash,
    /// Text of the JSON sidecar, when the file has one.
    pub sidecar_json: Option<String>,
    /// Import time in Unix seconds.
    pub imported_at_unix_secs: f64,
}

/// A stored dataset row.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetRecord {
    /// Row id.
    pub id: DatasetId,
    /// The recorded name, source, hash, sidecar and import time.
    pub meta: DatasetMeta,
    /// Observation dimension.
    pub observation_dim: usize,
    /// Action dimension.
    pub action_dim: usize,
}

/// A stored episode row, without its step arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpisodeRecord {
    /// Row id, unique across the datasets of the store.
    pub id: EpisodeId,
    /// The dataset the episode belongs to.
    pub dataset: DatasetId,
    /// 0-based position of the episode in its dataset.
    pub index: usize,
    /// Global index of the episode's first step in its dataset file.
    pub first_step: usize,
    /// Number of steps, at least 1.
    pub step_count: usize,
    /// Kind of episode end.
    pub end: EpisodeEnd,
    /// Whether the success flag was set at any step, or `None` when the file has no flags.
    pub success_any: Option<bool>,
}

/// The step arrays of one episode, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeArrays {
    /// Observation before each step's action, shape `[steps, obs_dim]`.
    pub observations: Array2<f32>,
    /// Action applied at each step, shape `[steps, act_dim]`.
    pub actions: Array2<f32>,
    /// Observation after each step's action, shape `[steps, obs_dim]`.
    pub next_observations: Array2<f32>,
    /// Ground-truth reward of each step, shape `[steps]`.
    pub rewards: Array1<f32>,
}

const DATASET_COLUMNS: &str = "id, name, source_path, content_sha256, sidecar_json, \
    imported_at_unix_secs, observation_dim, action_dim";

const EPISODE_COLUMNS: &str =
    "id, dataset_id, episode_index, first_step, step_count, end_kind, success_any";

impl Store {
    /// Inserts a dataset with all its episodes and step arrays in one transaction.
    ///
    /// Fails with [`StoreError::DuplicateDataset`] when a dataset with the same content
    /// hash is stored already. On any error nothing is written.
    pub fn insert_dataset(
        &mut self,
        meta: &DatasetMeta,
        dataset: &Dataset,
    ) -> Result<DatasetId, StoreError> {
        check_number("imported_at_unix_secs", meta.imported_at_unix_secs, false)?;
        let sha256 = meta.content_hash.to_hex();

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin the dataset import")?;

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
                    to_sql_int(dataset.observation_dim()),
                    to_sql_int(dataset.action_dim()),
                    meta.imported_at_unix_secs,
                    meta.sidecar_json,
                ],
            )
            .during("insert the dataset row")?;
        let dataset_id = transaction.last_insert_rowid();

        {
            let mut insert_episode = transaction
                .prepare(
                    "INSERT INTO episodes (dataset_id, episode_index, first_step, step_count, \
                     end_kind, success_any) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .during("prepare the episode insert")?;
            let mut insert_steps = transaction
                .prepare(
                    "INSERT INTO steps (episode_id, observations, actions, next_observations, \
                     rewards) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .during("prepare the step insert")?;

            for (index, episode) in dataset.episodes().iter().enumerate() {
                // ndarray's `s!` macro expands to code that this crate's `forbid(unsafe_code)`
                // rejects, so rows are selected with `slice_axis`.
                let rows = Slice::from(episode.start..episode.end_step());
                let success_any = dataset
                    .success()
                    .map(|success| success.slice_axis(Axis(0), rows).iter().any(|&flag| flag));

                insert_episode
                    .execute(params![
                        dataset_id,
                        to_sql_int(index),
                        to_sql_int(episode.start),
                        to_sql_int(episode.len),
                        end_kind_word(episode.end),
                        success_any,
                    ])
                    .during("insert an episode row")?;
                let episode_id = transaction.last_insert_rowid();

                insert_steps
                    .execute(params![
                        episode_id,
                        encode_matrix(dataset.observations().slice_axis(Axis(0), rows)),
                        encode_matrix(dataset.actions().slice_axis(Axis(0), rows)),
                        encode_matrix(dataset.next_observations().slice_axis(Axis(0), rows)),
                        encode_vector(dataset.rewards().slice_axis(Axis(0), rows)),
                    ])
                    .during("insert an episode's step arrays")?;
            }
        }

        transaction.commit().during("commit the dataset import")?;
        Ok(DatasetId(dataset_id))
    }

    /// Returns a stored dataset.
    pub fn dataset(&self, id: DatasetId) -> Result<DatasetRecord, StoreError> {
        self.connection
            .query_row(
                &format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?1"),
                [id.get()],
                |row| Ok(read_dataset(row)),
            )
            .optional()
            .during("read a dataset row")?
            .ok_or(StoreError::DatasetNotFound(id))?
    }

    /// Returns the dataset whose file had the given content hash, if one is stored.
    pub fn dataset_by_hash(&self, hash: &ContentHash) -> Result<Option<DatasetRecord>, StoreError> {
        self.connection
            .query_row(
                &format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE content_sha256 = ?1"),
                [hash.to_hex()],
                |row| Ok(read_dataset(row)),
            )
            .optional()
            .during("look up the dataset hash")?
            .transpose()
    }

    /// Returns all stored datasets in id order.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT {DATASET_COLUMNS} FROM datasets ORDER BY id"
            ))
            .during("list the datasets")?;
        let rows = statement
            .query_map([], |row| Ok(read_dataset(row)))
            .during("list the datasets")?;
        rows.map(|row| row.during("list the datasets")?).collect()
    }

    /// Returns the episodes of a dataset in episode order.
    pub fn episodes(&self, dataset: DatasetId) -> Result<Vec<EpisodeRecord>, StoreError> {
        // Reading the dataset first turns an unknown id into an error, not an empty list.
        self.dataset(dataset)?;

        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {EPISODE_COLUMNS} FROM episodes WHERE dataset_id = ?1 \
                 ORDER BY episode_index"
            ))
            .during("list the episodes")?;
        let rows = statement
            .query_map([dataset.get()], |row| Ok(read_episode(row)))
            .during("list the episodes")?;
        rows.map(|row| row.during("list the episodes")?).collect()
    }

    /// Returns one episode row.
    pub fn episode(&self, id: EpisodeId) -> Result<EpisodeRecord, StoreError> {
        self.connection
            .prepare_cached(&format!(
                "SELECT {EPISODE_COLUMNS} FROM episodes WHERE id = ?1"
            ))
            .during("read an episode row")?
            .query_row([id.get()], |row| Ok(read_episode(row)))
            .optional()
            .during("read an episode row")?
            .ok_or(StoreError::EpisodeNotFound(id))?
    }

    /// Loads an episode's step arrays, bit for bit as they were inserted.
    pub fn episode_arrays(&self, id: EpisodeId) -> Result<EpisodeArrays, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT e.step_count, d.observation_dim, d.action_dim, \
                 s.observations, s.actions, s.next_observations, s.rewards \
                 FROM steps s JOIN episodes e ON e.id = s.episode_id \
                 JOIN datasets d ON d.id = e.dataset_id WHERE s.episode_id = ?1",
            )
            .during("read an episode's step arrays")?;
        let row = statement
            .query_row([id.get()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, Vec<u8>>(5)?,
                    row.get::<_, Vec<u8>>(6)?,
                ))
            })
            .optional()
            .during("read an episode's step arrays")?;
        let Some((steps, observation_dim, action_dim, observations, actions, next, rewards)) = row
        else {
            return Err(StoreError::EpisodeNotFound(id));
        };

        let steps = from_sql_int("episodes.step_count", steps)?;
        let observation_dim = from_sql_int("datasets.observation_dim", observation_dim)?;
        let action_dim = from_sql_int("datasets.action_dim", action_dim)?;
        let decoder = BlobDecoder { episode: id, steps };

        Ok(EpisodeArrays {
            observations: decoder.matrix("observations", &observations, observation_dim)?,
            actions: decoder.matrix("actions", &actions, action_dim)?,
            next_observations: decoder.matrix("next_observations", &next, observation_dim)?,
            rewards: decoder.vector("rewards", &rewards)?,
        })
    }
}

/// Reads a `DATASET_COLUMNS` row. Column access errors are SQLite errors, and invalid
/// stored values are store errors, hence the nested result.
fn read_dataset(row: &Row<'_>) -> Result<DatasetRecord, StoreError> {
    let get_error = |source| StoreError::Sqlite {
        operation: "read a dataset row",
        source,
    };
    let sha256: String = row.get(3).map_err(get_error)?;
    let content_hash = ContentHash::from_hex(&sha256).ok_or(StoreError::StoredValue {
        column: "datasets.content_sha256",
        value: sha256.clone(),
    })?;
    let source_path: String = row.get(2).map_err(get_error)?;

    Ok(DatasetRecord {
        id: DatasetId(row.get(0).map_err(get_error)?),
        meta: DatasetMeta {
            name: row.get(1).map_err(get_error)?,
            source_path: PathBuf::from(source_path),
            content_hash,
            sidecar_json: row.get(4).map_err(get_error)?,
            imported_at_unix_secs: row.get(5).map_err(get_error)?,
        },
        observation_dim: from_sql_int("datasets.observation_dim", row.get(6).map_err(get_error)?)?,
        action_dim: from_sql_int("datasets.action_dim", row.get(7).map_err(get_error)?)?,
    })
}

/// Reads an `EPISODE_COLUMNS` row.
fn read_episode(row: &Row<'_>) -> Result<EpisodeRecord, StoreError> {
    let get_error = |source| StoreError::Sqlite {
        operation: "read an episode row",
        source,
    };
    let end_word: String = row.get(5).map_err(get_error)?;
    let end = parse_end_kind(&end_word).ok_or(StoreError::StoredValue {
        column: "episodes.end_kind",
        value: end_word,
    })?;

    Ok(EpisodeRecord {
        id: EpisodeId(row.get(0).map_err(get_error)?),
        dataset: DatasetId(row.get(1).map_err(get_error)?),
        index: from_sql_int("episodes.episode_index", row.get(2).map_err(get_error)?)?,
        first_step: from_sql_int("episodes.first_step", row.get(3).map_err(get_error)?)?,
        step_count: from_sql_int("episodes.step_count", row.get(4).map_err(get_error)?)?,
        end,
        success_any: row.get(6).map_err(get_error)?,
    })
}

/// Returns the word stored in `episodes.end_kind`.
pub(super) fn end_kind_word(end: EpisodeEnd) -> &'static str {
    match end {
        EpisodeEnd::TimedOut => "time_limit",
        EpisodeEnd::Terminated => "task_end",
        EpisodeEnd::Unmarked => "unknown",
    }
}

fn parse_end_kind(word: &str) -> Option<EpisodeEnd> {
    [
        EpisodeEnd::TimedOut,
        EpisodeEnd::Terminated,
        EpisodeEnd::Unmarked,
    ]
    .into_iter()
    .find(|&end| end_kind_word(end) == word)
}

/// Encodes a matrix as little-endian f32 values in row-major order, whatever its memory
/// layout.
pub(super) fn encode_matrix(matrix: ArrayView2<'_, f32>) -> Vec<u8> {
    matrix
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

pub(super) fn encode_vector(vector: ArrayView1<'_, f32>) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// Decodes the blobs of one episode and checks their sizes against its step count.
struct BlobDecoder {
    episode: EpisodeId,
    steps: usize,
}

impl BlobDecoder {
    fn matrix(
        &self,
        field: &'static str,
        blob: &[u8],
        columns: usize,
    ) -> Result<Array2<f32>, StoreError> {
        let values = self.decode(field, blob, columns)?;
        // decode checked that the blob contains exactly steps × columns values.
        Ok(Array2::from_shape_vec((self.steps, columns), values)
            .expect("blob size matches the episode shape"))
    }

    fn vector(&self, field: &'static str, blob: &[u8]) -> Result<Array1<f32>, StoreError> {
        self.decode(field, blob, 1).map(Array1::from)
    }

    fn decode(
        &self,
        field: &'static str,
        blob: &[u8],
        columns: usize,
    ) -> Result<Vec<f32>, StoreError> {
        let expected = self.steps * columns * 4;
        if blob.len() != expected {
            return Err(StoreError::BlobSize {
                episode: self.episode,
                field,
                found: blob.len(),
                expected,
                rows: self.steps,
                columns,
            });
        }
        Ok(blob
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn content_hash_hex_round_trips() {
        let hash = ContentHash::of_bytes(b"abc");
        let hex = hash.to_hex();

        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ContentHash::from_hex(&hex), Some(hash));
        assert_eq!(ContentHash::from_hex(&hex[..62]), None);
        assert_eq!(ContentHash::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn end_kind_words_round_trip() {
        for end in [
            EpisodeEnd::TimedOut,
            EpisodeEnd::Terminated,
            EpisodeEnd::Unmarked,
        ] {
            assert_eq!(parse_end_kind(end_kind_word(end)), Some(end));
        }
        assert_eq!(parse_end_kind("timeout"), None);
    }

    #[test]
    fn blob_encoding_is_little_endian_row_major() -> Result<(), StoreError> {
        let matrix = array![[1.0_f32, -2.5], [f32::MIN_POSITIVE, 3.0e38]];
        let transposed = matrix.t().to_owned();

        let blob = encode_matrix(matrix.view());
        // A column-major copy of the same values encodes the same way.
        let blob_from_fortran_layout = encode_matrix(transposed.t());
        let decoded = BlobDecoder {
            episode: EpisodeId(1),
            steps: 2,
        }
        .matrix("observations", &blob, 2)?;

        assert_eq!(&blob[..4], &1.0_f32.to_le_bytes());
        assert_eq!(&blob[4..8], &(-2.5_f32).to_le_bytes());
        assert_eq!(blob, blob_from_fortran_layout);
        assert_eq!(decoded, matrix);
        Ok(())
    }

    #[test]
    fn blob_of_wrong_size_rejected() {
        let decoder = BlobDecoder {
            episode: EpisodeId(9),
            steps: 3,
        };

        let error = decoder
            .vector("rewards", &[0_u8; 8])
            .unwrap_err()
            .to_string();

        assert!(
            error.contains("rewards of episode 9 has 8 bytes, expected 12"),
            "{error}"
        );
    }
}

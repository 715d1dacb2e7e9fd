//! The segment store: one SQLite database per robot or dataset that stores the episodes,
//! their step arrays, the preference queries, the operator's answers, the trained models
//! and the training runs.
//!
//! # Tables (schema version 2)
//!
//! | table | one row per | contents |
//! |---|---|---|
//! | `datasets` | imported file | name, source path, `content_sha256` (hex SHA-256 of the file bytes, unique), observation and action dims, `imported_at_unix_secs`, `sidecar_json` (the JSON sidecar's text, or NULL) |
//! | `episodes` | episode | `dataset_id`, `episode_index` (0-based within the dataset), `first_step` (global step in the dataset), `step_count`, `end_kind`, `success_any` (NULL when the file has no success flags) |
//! | `steps` | episode | `observations`, `actions`, `next_observations`, `rewards` as blobs |
//! | `queries` | query | left and right segment (episode id, start step within the episode, length), `selector`, `encoder_version` (NULL when none), `created_at_unix_secs`, `expires_at_unix_secs` (NULL: never) |
//! | `answers` | answered query | `query_id` (unique), `operator`, `answer`, `answered_at_unix_secs`, `response_secs` |
//! | `models` | model version | `version` (primary key), `created_at_unix_secs`, `path`, `manifest_json`, `status` |
//! | `training_runs` | trainer run | `started_at_unix_secs`, `finished_at_unix_secs`, `status`, `model_version`, `answers_used`, `log_path` |
//! | `camera_frames` | step with a camera image (version 2) | `episode_id`, `step` (within the episode), `stamp_unix_secs`, `content_type` (`image/jpeg` or `image/png`), `width`, `height`, `data` (the encoded image) |
//!
//! Encodings:
//!
//! - timestamps are Unix time in seconds as a REAL (f64), in columns named `*_unix_secs`,
//!   and durations are seconds as a REAL in columns named `*_secs`;
//! - step blobs hold little-endian f32 values in row-major order, `step_count × dim` values
//!   for the 2-D arrays and `step_count` for rewards, so a dataset of 150,000 steps in 300
//!   episodes is 300 rows, not 150,000;
//! - `end_kind` is `time_limit`, `task_end` or `unknown` (the file ended, or the next
//!   episode started without a flag); `answer` is `left`, `right`, `cant_tell` or `skip`;
//!   `models.status` is `candidate`, `active`, `standby`, `rejected` or `retired`;
//!   `training_runs.status` is `running`, `succeeded` or `failed`. CHECK constraints enforce
//!   these word lists.
//!
//! All tables are `STRICT`, and foreign keys are enforced: an episode needs its dataset, a
//! query its episodes, an answer its query, and a training run's model version a row in
//! `models`. Deleting a dataset deletes its episodes and step arrays, but fails while a
//! query refers to one of its episodes.
//!
//! # Versions and breaking changes
//!
//! `PRAGMA user_version` holds the schema version. Opening a file applies the missing
//! migrations in order in one transaction. A file with a version higher than this code
//! knows is rejected, so every schema change adds a migration and raises the version, and
//! older builds stop opening files that a newer build has touched.
//!
//! A change is breaking when rows already stored would be read differently or fail to
//! read: removing or renaming a table or column, changing a column's type, unit or
//! encoding (the blob byte order or value type, the timestamp unit), changing or removing
//! a word of an enumerated column, or adding a constraint that existing rows may violate.
//! Such a change needs a migration that rewrites the existing rows. Adding a table, an
//! index or a nullable column is not breaking.
//!
//! # Durability and concurrency
//!
//! Every connection runs in WAL mode with `synchronous = FULL` and foreign keys on. With
//! these settings a committed transaction is on disk when the call that commits it returns:
//! an answer that [`Store::record_answer`] accepted survives a crash or power cut, so it
//! can be acknowledged to the operator.
//!
//! A [`Store`] is one SQLite connection. Methods that write take `&mut self`, and one
//! writer thread owns the store that writes. Readers in other threads or processes open
//! their own `Store` on the same file: WAL lets them read while the writer commits, and
//! each read sees every transaction committed before it started. A second writer would
//! wait up to 5 s for the write lock and then fail.

mod datasets;
mod error;
mod frames;
mod ids;
mod import;
mod queries;
mod recording;
mod runs;
mod schema;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

pub use datasets::{ContentHash, DatasetMeta, DatasetRecord, EpisodeArrays, EpisodeRecord};
pub use error::StoreError;
pub use frames::{CameraFrame, FrameFormat, FrameInfo};
pub use ids::{DatasetId, EpisodeId, QueryId, SegmentRef};
pub use import::{
    ImportError, ImportOptions, ImportOutcome, ImportSummary, LoadedDataset, import_loaded,
    import_npz,
};
pub use queries::{AnswerCounts, AnsweredQuery, NewAnswer, NewQuery, Query, StoredAnswer};
pub use runs::{ModelRecord, ModelStatus, RunStatus, TrainingRunRecord};
pub use schema::SCHEMA_VERSION;

/// A connection to a segment store database.
#[derive(Debug)]
pub struct Store {
    connection: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the database at `path`, creating the file when it does not exist, and brings
    /// its schema to [`SCHEMA_VERSION`].
    ///
    /// Fails when the file is not a SQLite database, when its schema version is newer than
    /// this code, or when a migration fails. A failed migration leaves the file unchanged.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut connection = Connection::open_with_flags(path, flags).map_err(open_error)?;
        schema::check_readable(&connection, path)?;
        schema::configure(&connection).map_err(open_error)?;
        schema::migrate(&mut connection, path)?;

        Ok(Self {
            connection,
            path: path.to_owned(),
        })
    }

    /// Returns the database file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        use error::SqliteContext;
        schema::user_version(&self.connection).during("read the schema version")
    }
}

/// Returns the current time as Unix seconds, the unit of every `*_unix_secs` column.
pub fn unix_secs_now() -> f64 {
    // A clock set before 1970 gives 0 instead of failing: the value only orders events.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

/// Converts a count or index to SQLite's integer type.
///
/// Counts in this store are bounded by the number of steps held in memory, far below
/// `i64::MAX`, so the conversion saturates instead of failing.
fn to_sql_int(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Converts a stored integer back to a count or index, rejecting negative values.
fn from_sql_int(column: &'static str, value: i64) -> Result<usize, StoreError> {
    usize::try_from(value).map_err(|_| StoreError::StoredValue {
        column,
        value: value.to_string(),
    })
}

/// Checks that a number is finite and, when `non_negative` is set, at least 0.
fn check_number(field: &'static str, value: f64, non_negative: bool) -> Result<(), StoreError> {
    if value.is_finite() && (!non_negative || value >= 0.0) {
        return Ok(());
    }
    Err(StoreError::InvalidNumber {
        field,
        value,
        non_negative,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_uses_wal_full_sync_and_foreign_keys() -> Result<(), Box<dyn std::error::Error>> {
        let folder = tempfile::tempdir()?;
        let store = Store::open(folder.path().join("pragmas.sqlite"))?;
        let pragma = |name: &str| -> rusqlite::Result<String> {
            store
                .connection
                .query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, rusqlite::types::Value>(0)
                })
                .map(|value| format!("{value:?}"))
        };

        assert_eq!(pragma("journal_mode")?, "Text(\"wal\")");
        // 2 is FULL.
        assert_eq!(pragma("synchronous")?, "Integer(2)");
        assert_eq!(pragma("foreign_keys")?, "Integer(1)");
        Ok(())
    }

    #[test]
    fn check_number_rejects_nan_and_negative() {
        assert!(check_number("response_secs", 0.0, true).is_ok());
        assert!(check_number("response_secs", f64::NAN, false).is_err());
        assert!(check_number("response_secs", -0.5, true).is_err());
        assert!(check_number("created_at_unix_secs", -0.5, false).is_ok());
    }

    #[test]
    fn negative_stored_count_rejected() {
        let error = from_sql_int("episodes.step_count", -3).unwrap_err();
        assert!(error.to_string().contains("\"-3\""), "{error}");
    }
}

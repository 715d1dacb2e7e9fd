//! Connection settings, schema versions and migrations of the segment store.
//!
//! `MIGRATIONS[i]` moves a database from schema version `i` to `i + 1`, so the version that
//! this code writes is `MIGRATIONS.len()`. The version lives in `PRAGMA user_version`, which
//! is 0 in a new, empty file. Migrations are only ever appended: a released entry never
//! changes, because databases in the field already ran it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// How long a connection waits for another connection's write lock before it fails with
/// `SQLITE_BUSY`. Writes in this store are short (a release build imported a generated
/// 150,000-step file in under 1 s on 2 CPU cores), so waiting this long fails only when
/// another connection keeps a write transaction open.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema version 1: datasets, episodes, per-episode step arrays, queries, answers, models
/// and training runs.
const V1: &str = "
CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    source_path TEXT NOT NULL,
    content_sha256 TEXT NOT NULL UNIQUE CHECK (length(content_sha256) = 64),
    observation_dim INTEGER NOT NULL CHECK (observation_dim >= 0),
    action_dim INTEGER NOT NULL CHECK (action_dim >= 0),
    imported_at_unix_secs REAL NOT NULL,
    sidecar_json TEXT
) STRICT;

CREATE TABLE episodes (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    episode_index INTEGER NOT NULL CHECK (episode_index >= 0),
    first_step INTEGER NOT NULL CHECK (first_step >= 0),
    step_count INTEGER NOT NULL CHECK (step_count > 0),
    end_kind TEXT NOT NULL CHECK (end_kind IN ('time_limit', 'task_end', 'unknown')),
    success_any INTEGER CHECK (success_any IN (0, 1)),
    UNIQUE (dataset_id, episode_index)
) STRICT;

CREATE TABLE steps (
    episode_id INTEGER PRIMARY KEY REFERENCES episodes (id) ON DELETE CASCADE,
    observations BLOB NOT NULL,
    actions BLOB NOT NULL,
    next_observations BLOB NOT NULL,
    rewards BLOB NOT NULL
) STRICT;

CREATE TABLE queries (
    id INTEGER PRIMARY KEY,
    left_episode_id INTEGER NOT NULL REFERENCES episodes (id),
    left_start INTEGER NOT NULL CHECK (left_start >= 0),
    left_length INTEGER NOT NULL CHECK (left_length > 0),
    right_episode_id INTEGER NOT NULL REFERENCES episodes (id),
    right_start INTEGER NOT NULL CHECK (right_start >= 0),
    right_length INTEGER NOT NULL CHECK (right_length > 0),
    selector TEXT NOT NULL,
    encoder_version TEXT,
    created_at_unix_secs REAL NOT NULL,
    expires_at_unix_secs REAL
) STRICT;

CREATE INDEX queries_left_episode ON queries (left_episode_id);
CREATE INDEX queries_right_episode ON queries (right_episode_id);

CREATE TABLE answers (
    id INTEGER PRIMARY KEY,
    query_id INTEGER NOT NULL UNIQUE REFERENCES queries (id),
    operator TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('left', 'right', 'cant_tell', 'skip')),
    answered_at_unix_secs REAL NOT NULL,
    response_secs REAL NOT NULL CHECK (response_secs >= 0)
) STRICT;

CREATE TABLE models (
    version TEXT PRIMARY KEY,
    created_at_unix_secs REAL NOT NULL,
    path TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('candidate', 'active', 'standby', 'rejected', 'retired'))
) STRICT;

CREATE TABLE training_runs (
    id INTEGER PRIMARY KEY,
    started_at_unix_secs REAL NOT NULL,
    finished_at_unix_secs REAL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    model_version TEXT REFERENCES models (version),
    answers_used INTEGER NOT NULL CHECK (answers_used >= 0),
    log_path TEXT
) STRICT;

CREATE INDEX training_runs_model ON training_runs (model_version);
";

/// Schema version 2: camera frames of recorded steps, at most one per step.
///
/// Frames are images as a browser shows them (JPEG or PNG bytes), keyed by episode and step
/// within the episode, so that deleting an episode deletes its frames.
const V2: &str = "
CREATE TABLE camera_frames (
    episode_id INTEGER NOT NULL REFERENCES episodes (id) ON DELETE CASCADE,
    step INTEGER NOT NULL CHECK (step >= 0),
    stamp_unix_secs REAL NOT NULL,
    content_type TEXT NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    data BLOB NOT NULL,
    PRIMARY KEY (episode_id, step)
) STRICT;
";

/// Schema migrations in order. Entry `i` upgrades version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version that this code reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Sets the busy timeout and rejects a file whose schema version is newer than this code.
///
/// Runs before [`configure`], because `journal_mode = WAL` writes to the file, and a file
/// that this code rejects is left byte for byte as it was.
pub(super) fn check_readable(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    let found = user_version(connection).map_err(open_error)?;
    check_known(path, found)
}

/// Sets the per-connection pragmas: WAL journal, full fsync on commit and foreign keys.
///
/// `synchronous = FULL` makes SQLite sync the WAL file on every commit, so a transaction has
/// reached the disk when its commit returns. With the WAL default of `NORMAL`, a power cut
/// could lose the last commits, which here are answers already acknowledged to an operator.
pub(super) fn configure(connection: &Connection) -> rusqlite::Result<()> {
    // journal_mode returns the resulting mode as a row, so it is read, not executed.
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // SQLite returns the old mode when it cannot switch to WAL, as for an in-memory
        // database. Commits are still synced, but readers then block the writer.
        tracing::warn!(
            mode,
            "segment store is not in WAL mode: readers will block writes"
        );
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Reads the schema version and applies the missing migrations in one transaction.
///
/// Fails with [`StoreError::UnsupportedSchema`] when the file was written by a newer version
/// of this code, and leaves the file unchanged when a migration fails.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = user_version(connection).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    check_known(path, found)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }

    let migration_error = |from: i64| {
        move |source| StoreError::Migration {
            path: path.to_owned(),
            from,
            to: SCHEMA_VERSION,
            source,
        }
    };

    // IMMEDIATE takes the write lock before reading, so two processes that open the same
    // new file cannot both run the migrations.
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(migration_error(found))?;
    let current = user_version(&transaction).map_err(migration_error(found))?;
    check_known(path, current)?;
    if current == SCHEMA_VERSION {
        // Another connection migrated the file between the two reads.
        return Ok(());
    }

    // check_known accepted `current`, so it lies in 0..=MIGRATIONS.len().
    for migration in &MIGRATIONS[current as usize..] {
        transaction
            .execute_batch(migration)
            .map_err(migration_error(current))?;
    }
    transaction
        .pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(migration_error(current))?;
    transaction.commit().map_err(migration_error(current))?;

    tracing::info!(
        path = %path.display(),
        from = current,
        to = SCHEMA_VERSION,
        "migrated segment store schema"
    );
    Ok(())
}

/// Returns the schema version recorded in the file.
pub(super) fn user_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA user_version", [], |row| row.get(0))
}

fn check_known(path: &Path, found: i64) -> Result<(), StoreError> {
    if (0..=SCHEMA_VERSION).contains(&found) {
        return Ok(());
    }
    Err(StoreError::UnsupportedSchema {
        path: path.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_file_gains_camera_frames() -> Result<(), Box<dyn std::error::Error>> {
        let folder = tempfile::tempdir()?;
        let path = folder.path().join("v1.sqlite");
        let mut connection = Connection::open(&path)?;
        connection.execute_batch(V1)?;
        connection.pragma_update(None, "user_version", 1)?;
        connection.execute(
            "INSERT INTO datasets (name, source_path, content_sha256, observation_dim, \
             action_dim, imported_at_unix_secs) VALUES ('old', 'old.npz', ?1, 2, 1, 1.0)",
            ["0".repeat(64)],
        )?;

        migrate(&mut connection, &path)?;

        assert_eq!(user_version(&connection)?, 2);
        let datasets: i64 =
            connection.query_row("SELECT count(*) FROM datasets", [], |row| row.get(0))?;
        assert_eq!(datasets, 1);
        let frames: i64 =
            connection.query_row("SELECT count(*) FROM camera_frames", [], |row| row.get(0))?;
        assert_eq!(frames, 0);
        Ok(())
    }
}

//! Training runs and model versions: the `training_runs` and `models` tables.
//!
//! `clarify train` opens a run when it starts and closes it as succeeded (with the version
//! it installed) or failed. A run whose process was killed stays `running` until
//! [`Store::fail_interrupted_runs`] closes it. Each installed set has a `models` row whose
//! status follows the registry: `candidate` until the node activates it, then `active`,
//! `standby` when another set replaces it, `rejected` when it fails validation, and
//! `retired` when pruned.

use std::path::Path;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::error::{SqliteContext, StoreError};
use super::{Store, unix_secs_now};

/// State of a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    /// Returns the word stored in `training_runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(text: String) -> Result<Self, StoreError> {
        match text.as_str() {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            _ => Err(StoreError::StoredValue {
                column: "training_runs.status",
                value: text,
            }),
        }
    }
}

/// Status of an installed model set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelStatus {
    /// Installed, not yet validated and activated.
    Candidate,
    /// The registry's active set.
    Active,
    /// Active before and kept for rollback.
    Standby,
    /// Failed validation.
    Rejected,
    /// Removed from the registry.
    Retired,
}

impl ModelStatus {
    /// Returns the word stored in `models.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Candidate => "candidate",
            ModelStatus::Active => "active",
            ModelStatus::Standby => "standby",
            ModelStatus::Rejected => "rejected",
            ModelStatus::Retired => "retired",
        }
    }

    fn parse(text: String) -> Result<Self, StoreError> {
        match text.as_str() {
            "candidate" => Ok(ModelStatus::Candidate),
            "active" => Ok(ModelStatus::Active),
            "standby" => Ok(ModelStatus::Standby),
            "rejected" => Ok(ModelStatus::Rejected),
            "retired" => Ok(ModelStatus::Retired),
            _ => Err(StoreError::StoredValue {
                column: "models.status",
                value: text,
            }),
        }
    }
}

/// One row of `training_runs`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingRunRecord {
    pub id: i64,
    pub started_at_unix_secs: f64,
    pub finished_at_unix_secs: Option<f64>,
    pub status: RunStatus,
    /// The version the run installed, once it succeeded.
    pub model_version: Option<String>,
    pub answers_used: u64,
    pub log_path: Option<String>,
}

/// One row of `models`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRecord {
    pub version: String,
    pub created_at_unix_secs: f64,
    pub path: String,
    pub manifest_json: String,
    pub status: ModelStatus,
}

impl Store {
    /// Opens a training run in state `running` and returns its id.
    pub fn start_training_run(
        &mut self,
        answers_used: u64,
        log_path: Option<&Path>,
    ) -> Result<i64, StoreError> {
        let answers = i64::try_from(answers_used).map_err(|_| StoreError::InvalidNumber {
            field: "answers_used",
            value: answers_used as f64,
            non_negative: true,
        })?;
        self.connection
            .execute(
                "INSERT INTO training_runs (started_at_unix_secs, status, answers_used, \
                 log_path) VALUES (?1, 'running', ?2, ?3)",
                params![
                    unix_secs_now(),
                    answers,
                    log_path.map(|path| path.to_string_lossy().into_owned()),
                ],
            )
            .during("insert a training run")?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Closes a training run as succeeded or failed, with the version it installed.
    /// Closing a run that is already closed overwrites its outcome.
    pub fn finish_training_run(
        &mut self,
        id: i64,
        status: RunStatus,
        model_version: Option<&str>,
    ) -> Result<(), StoreError> {
        let changed = self
            .connection
            .execute(
                "UPDATE training_runs SET finished_at_unix_secs = ?2, status = ?3, \
                 model_version = ?4 WHERE id = ?1",
                params![id, unix_secs_now(), status.as_str(), model_version],
            )
            .during("close a training run")?;
        if changed == 0 {
            return Err(StoreError::TrainingRunNotFound(id));
        }
        Ok(())
    }

    /// Closes every run still marked `running` as failed and returns how many there were.
    /// The node calls it at start-up, before it starts runs of its own. A training child
    /// that outlived a killed node may still close its row afterwards.
    pub fn fail_interrupted_runs(&mut self) -> Result<usize, StoreError> {
        self.connection
            .execute(
                "UPDATE training_runs SET finished_at_unix_secs = ?1, status = 'failed' \
                 WHERE status = 'running'",
                [unix_secs_now()],
            )
            .during("close interrupted training runs")
    }

    /// Returns a training run.
    pub fn training_run(&self, id: i64) -> Result<TrainingRunRecord, StoreError> {
        self.connection
            .query_row(
                "SELECT id, started_at_unix_secs, finished_at_unix_secs, status, \
                 model_version, answers_used, log_path FROM training_runs WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, f64>(1)?,
                        row.get::<_, Option<f64>>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, i64>(5)?,
                        row.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()
            .during("read a training run")?
            .ok_or(StoreError::TrainingRunNotFound(id))
            .and_then(|(id, started, finished, status, version, answers, log)| {
                Ok(TrainingRunRecord {
                    id,
                    started_at_unix_secs: started,
                    finished_at_unix_secs: finished,
                    status: RunStatus::parse(status)?,
                    model_version: version,
                    answers_used: answers.max(0) as u64,
                    log_path: log,
                })
            })
    }

    /// Records an installed model set, or updates the row of a version recorded before.
    pub fn record_model(
        &mut self,
        version: &str,
        path: &Path,
        manifest_json: &str,
        status: ModelStatus,
    ) -> Result<(), StoreError> {
        self.connection
            .execute(
                "INSERT INTO models (version, created_at_unix_secs, path, manifest_json, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (version) DO UPDATE SET \
                 path = excluded.path, manifest_json = excluded.manifest_json, \
                 status = excluded.status",
                params![
                    version,
                    unix_secs_now(),
                    path.to_string_lossy(),
                    manifest_json,
                    status.as_str(),
                ],
            )
            .during("record a model set")?;
        Ok(())
    }

    /// Makes `version` the active model and every other active one `standby`, in one
    /// transaction.
    pub fn activate_model(&mut self, version: &str) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin the model activation")?;
        transaction
            .execute(
                "UPDATE models SET status = 'standby' WHERE status = 'active' AND version != ?1",
                [version],
            )
            .during("demote the active model")?;
        let changed = transaction
            .execute(
                "UPDATE models SET status = 'active' WHERE version = ?1",
                [version],
            )
            .during("activate a model")?;
        if changed == 0 {
            return Err(StoreError::ModelNotFound(version.to_owned()));
        }
        transaction.commit().during("commit the model activation")?;
        Ok(())
    }

    /// Sets the status of a recorded model version.
    pub fn set_model_status(
        &mut self,
        version: &str,
        status: ModelStatus,
    ) -> Result<(), StoreError> {
        let changed = self
            .connection
            .execute(
                "UPDATE models SET status = ?2 WHERE version = ?1",
                params![version, status.as_str()],
            )
            .during("update a model status")?;
        if changed == 0 {
            return Err(StoreError::ModelNotFound(version.to_owned()));
        }
        Ok(())
    }

    /// Returns every recorded model version, oldest first.
    pub fn models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT version, created_at_unix_secs, path, manifest_json, status FROM models \
                 ORDER BY created_at_unix_secs, version",
            )
            .during("read the model versions")?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, f64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .during("read the model versions")?;
        let mut models = Vec::new();
        for row in rows {
            let (version, created, path, manifest_json, status) =
                row.during("read a model version")?;
            models.push(ModelRecord {
                version,
                created_at_unix_secs: created,
                path,
                manifest_json,
                status: ModelStatus::parse(status)?,
            });
        }
        Ok(models)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{ModelStatus, RunStatus};
    use crate::store::{Store, StoreError};

    fn store() -> (tempfile::TempDir, Store) {
        let folder = tempfile::tempdir().expect("temporary folder");
        let store = Store::open(folder.path().join("store.db")).expect("new store");
        (folder, store)
    }

    #[test]
    fn training_run_opens_and_closes() {
        let (_folder, mut store) = store();
        let id = store.start_training_run(42, None).unwrap();
        let running = store.training_run(id).unwrap();
        assert_eq!(running.status, RunStatus::Running);
        assert_eq!(running.answers_used, 42);
        assert_eq!(running.finished_at_unix_secs, None);

        store
            .record_model("v1", Path::new("models/v1"), "{}", ModelStatus::Candidate)
            .unwrap();
        store
            .finish_training_run(id, RunStatus::Succeeded, Some("v1"))
            .unwrap();
        let finished = store.training_run(id).unwrap();
        assert_eq!(finished.status, RunStatus::Succeeded);
        assert_eq!(finished.model_version.as_deref(), Some("v1"));
        assert!(finished.finished_at_unix_secs.is_some());
    }

    #[test]
    fn interrupted_runs_marked_failed() {
        let (_folder, mut store) = store();
        let open = store.start_training_run(1, None).unwrap();
        let closed = store.start_training_run(2, None).unwrap();
        store
            .finish_training_run(closed, RunStatus::Failed, None)
            .unwrap();
        assert_eq!(store.fail_interrupted_runs().unwrap(), 1);
        assert_eq!(store.training_run(open).unwrap().status, RunStatus::Failed);
        assert!(matches!(
            store.finish_training_run(99, RunStatus::Failed, None),
            Err(StoreError::TrainingRunNotFound(99))
        ));
    }

    #[test]
    fn activation_demotes_previous_model() {
        let (_folder, mut store) = store();
        for version in ["v1", "v2"] {
            store
                .record_model(version, Path::new(version), "{}", ModelStatus::Candidate)
                .unwrap();
        }
        store.activate_model("v1").unwrap();
        store.activate_model("v2").unwrap();
        let statuses: Vec<(String, ModelStatus)> = store
            .models()
            .unwrap()
            .into_iter()
            .map(|model| (model.version, model.status))
            .collect();
        assert!(statuses.contains(&("v1".to_owned(), ModelStatus::Standby)));
        assert!(statuses.contains(&("v2".to_owned(), ModelStatus::Active)));
        assert!(matches!(
            store.activate_model("v9"),
            Err(StoreError::ModelNotFound(_))
        ));
        store.set_model_status("v1", ModelStatus::Rejected).unwrap();
    }
}

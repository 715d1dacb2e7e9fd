//! The live node's model lifecycle: retraining, validation, switch-over and rollback.
//!
//! [`ModelManager`] runs `clarify train` as a child process at lower priority, after
//! `retrain_after_answers` committed answers or on the TriggerRetrain service, and relays
//! its JSON progress lines as clarify_msgs/TrainingStatus. The child installs its set into
//! the registry without activating it (`--no-activate`). The manager then checks the set
//! ([`validate::check_candidate`]) and, when it passes, moves the registry's `current`
//! pointer to it, announces it with a ModelUpdate (REASON_TRAINED) and prunes old versions.
//! A failed run, a killed child or a rejected set leaves the active set untouched and is
//! reported with STATE_FAILED and the reason. The RollbackModel service re-activates the
//! previous (or a named) version after checking that it loads, and announces it with
//! REASON_ROLLBACK.
//!
//! Training runs on the manager's own thread, so the node keeps serving meanwhile. Service
//! handlers run on the transport's threads.

mod child;
mod config;
mod manager;
pub mod validate;

pub use child::{ChildCommand, ProgressLine, error_text};
pub use config::{
    DEFAULT_ACCURACY_MARGIN, DEFAULT_KEEP, DEFAULT_NICE, DEFAULT_TRAIN_TIME_LIMIT_SECS,
    DeployConfig, DeployError, DeployTopics,
};
pub use manager::ModelManager;
pub use validate::{HeldOutSource, Validation};

/// State of the training runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum TrainingState {
    /// No run has started since the manager started.
    #[default]
    Idle,
    /// A run is in progress.
    Running {
        run_id: i64,
        /// Stage name as `clarify train` reports it, or `validate`.
        stage: String,
        /// Done fraction of the stage, in [0, 1].
        progress: f32,
    },
    /// The last run produced a set that passed validation and is now active.
    Succeeded { run_id: i64, version: String },
    /// The last run failed, was killed, or produced a set that failed validation.
    Failed { run_id: i64, message: String },
}

impl TrainingState {
    /// Returns whether a run is in progress.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running { .. })
    }
}

/// The lifecycle's state at one moment, for diagnostics and the console.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploySnapshot {
    pub training: TrainingState,
    /// Answers committed since the last run started.
    pub answers_since_training: u64,
    /// The registry's active version.
    pub deployed_version: Option<String>,
    /// The version active before it.
    pub previous_version: Option<String>,
    /// Reason the last candidate set was rejected; `None` when none was.
    pub last_rejection: Option<String>,
}

//! Settings and errors of the model lifecycle.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::infer::{ExecutionProviderKind, InferConfig, InferError};
use crate::registry::{Expectation, RegistryError};
use crate::transport::TransportError;

/// Default number of model versions the registry keeps.
pub const DEFAULT_KEEP: usize = crate::train::DEFAULT_KEEP;
/// Default niceness added to the training child.
pub const DEFAULT_NICE: i32 = 10;
/// Default allowed drop in held-out reward accuracy, as a fraction of answers.
pub const DEFAULT_ACCURACY_MARGIN: f32 = 0.05;
/// Default wall-clock limit of one training run: 4 hours, far above the `cpu` preset's
/// few minutes; paper-sized runs on a CPU need a larger limit.
pub const DEFAULT_TRAIN_TIME_LIMIT_SECS: f64 = 4.0 * 3600.0;

/// Arguments that the manager passes to `clarify train` itself, so `train_args` must not
/// contain them.
const MANAGED_ARGUMENTS: [&str; 6] = [
    "--store",
    "--models",
    "--keep",
    "--activate",
    "--no-activate",
    "--run-id",
];

/// Topic and service names of the model lifecycle. Relative names resolve against the
/// node's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployTopics {
    /// clarify_msgs/TrainingStatus topic.
    pub training_status: String,
    /// clarify_msgs/ModelUpdate topic (latched: late subscribers get the last switch).
    pub model_update: String,
    /// clarify_msgs/TriggerRetrain service.
    pub trigger_retrain: String,
    /// clarify_msgs/RollbackModel service.
    pub rollback_model: String,
}

impl Default for DeployTopics {
    fn default() -> Self {
        Self {
            training_status: "training_status".to_owned(),
            // The policy runner's default `model_update_topic`.
            model_update: "model_update".to_owned(),
            trigger_retrain: "trigger_retrain".to_owned(),
            rollback_model: "rollback_model".to_owned(),
        }
    }
}

/// Settings of [`super::ModelManager`].
#[derive(Clone, Debug)]
pub struct DeployConfig {
    /// Model registry root.
    pub models_dir: PathBuf,
    /// Versions the registry keeps (at least 1); the active and previous ones are never
    /// removed.
    pub keep: usize,
    /// Segment store that the training job reads and validation takes segments and answers
    /// from.
    pub store_path: PathBuf,
    /// The `clarify` binary that runs `clarify train`.
    pub train_program: PathBuf,
    /// Extra `clarify train` arguments (preset, step counts, settings file). The manager
    /// sets `--store`, `--models`, `--keep` and `--no-activate` itself.
    pub train_args: Vec<String>,
    /// Committed answers after which a run starts by itself; 0 turns this off.
    pub retrain_after_answers: u64,
    /// Niceness added to the training child through the `nice` program, 0 to 19.
    pub nice: i32,
    /// Seconds after which a training child is killed and its run fails; 0 sets no limit.
    pub time_limit_secs: f64,
    /// Allowed drop in held-out reward accuracy (a fraction in [0, 1]) of a new set against
    /// the active one.
    pub accuracy_margin: f32,
    /// Values a model set must match: the robot's sizes and observation names.
    pub expectation: Expectation,
    pub topics: DeployTopics,
    /// ONNX Runtime settings of validation. Default: CPU only, one thread, so validation
    /// does not compete with the node's own inference for a GPU.
    pub infer: InferConfig,
}

impl DeployConfig {
    /// Returns settings with the defaults: keep 5, niceness 10, accuracy margin 0.05, a
    /// 4-hour time limit, automatic retraining off, no expectation, the default names and CPU validation.
    pub fn new(
        models_dir: impl Into<PathBuf>,
        store_path: impl Into<PathBuf>,
        train_program: impl Into<PathBuf>,
    ) -> Self {
        Self {
            models_dir: models_dir.into(),
            keep: DEFAULT_KEEP,
            store_path: store_path.into(),
            train_program: train_program.into(),
            train_args: Vec::new(),
            retrain_after_answers: 0,
            nice: DEFAULT_NICE,
            time_limit_secs: DEFAULT_TRAIN_TIME_LIMIT_SECS,
            accuracy_margin: DEFAULT_ACCURACY_MARGIN,
            expectation: Expectation::default(),
            topics: DeployTopics::default(),
            infer: InferConfig {
                execution_providers: vec![ExecutionProviderKind::Cpu],
                intra_op_threads: 1,
                ..InferConfig::default()
            },
        }
    }

    /// Checks the settings, naming the first invalid field.
    pub fn validate(&self) -> Result<(), DeployError> {
        let invalid = |field: &'static str, value: String, expected: &'static str| {
            Err(DeployError::Config {
                field,
                value,
                expected,
            })
        };
        if self.keep == 0 {
            return invalid("keep", "0".to_owned(), "at least 1");
        }
        if !(0..=19).contains(&self.nice) {
            return invalid(
                "nice",
                self.nice.to_string(),
                "0 to 19 (a child cannot run at a higher priority than the node)",
            );
        }
        if !(0.0..=1.0).contains(&self.accuracy_margin) {
            return invalid(
                "accuracy_margin",
                self.accuracy_margin.to_string(),
                "a fraction in [0, 1]",
            );
        }
        if !(self.time_limit_secs.is_finite() && self.time_limit_secs >= 0.0) {
            return invalid(
                "time_limit_secs",
                self.time_limit_secs.to_string(),
                "a number of seconds >= 0 (0: no limit)",
            );
        }
        if self.train_program.as_os_str().is_empty() {
            return invalid(
                "train_program",
                "\"\"".to_owned(),
                "the path of the clarify binary",
            );
        }
        for argument in &self.train_args {
            let name = argument.split('=').next().unwrap_or_default();
            if MANAGED_ARGUMENTS.contains(&name) {
                return invalid(
                    "train_args",
                    format!("{argument:?}"),
                    "no --store, --models, --keep, --activate, --no-activate or --run-id: \
                     the node sets these itself and activates a set only after validating it",
                );
            }
        }
        for (field, name) in [
            ("topics.training_status", &self.topics.training_status),
            ("topics.model_update", &self.topics.model_update),
            ("topics.trigger_retrain", &self.topics.trigger_retrain),
            ("topics.rollback_model", &self.topics.rollback_model),
        ] {
            if name.is_empty() {
                return invalid(field, "\"\"".to_owned(), "a ROS topic or service name");
            }
        }
        Ok(())
    }
}

/// Errors of the model lifecycle that stop it from starting or stopping cleanly. Failures
/// of single training runs and rejected sets are reported on the TrainingStatus topic and
/// in [`super::DeploySnapshot`] instead.
#[derive(Debug, Error)]
pub enum DeployError {
    #[error("invalid deployment setting {field} = {value}: expected {expected}")]
    Config {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "the `nice` program was not found on PATH, which runs the training child at nice {nice}: install coreutils or set nice to 0"
    )]
    NiceNotFound { nice: i32 },

    #[error(transparent)]
    Registry(#[from] RegistryError),

    #[error(transparent)]
    Transport(#[from] TransportError),

    #[error("cannot start ONNX Runtime for model validation")]
    Infer(#[from] InferError),

    #[error("cannot start the deployment thread")]
    Thread(#[source] std::io::Error),

    #[error("the deployment thread panicked")]
    Panicked,
}

/// Returns the first `name` found in the folders of `PATH`.
pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeployConfig {
        DeployConfig::new("models", "store.sqlite", "clarify")
    }

    #[test]
    fn defaults_are_valid() {
        assert!(config().validate().is_ok());
    }

    /// A change that makes the default settings invalid.
    type Change = Box<dyn Fn(&mut DeployConfig)>;

    #[test]
    fn invalid_settings_name_their_field() {
        let cases: Vec<(&str, Change)> = vec![
            ("keep", Box::new(|c| c.keep = 0)),
            ("nice", Box::new(|c| c.nice = -1)),
            ("nice", Box::new(|c| c.nice = 20)),
            (
                "accuracy_margin",
                Box::new(|c| c.accuracy_margin = f32::NAN),
            ),
            ("accuracy_margin", Box::new(|c| c.accuracy_margin = 1.5)),
            (
                "train_program",
                Box::new(|c| c.train_program = PathBuf::new()),
            ),
            (
                "train_args",
                Box::new(|c| c.train_args = vec!["--activate".to_owned()]),
            ),
            (
                "train_args",
                Box::new(|c| c.train_args = vec!["--models=other".to_owned()]),
            ),
            (
                "topics.model_update",
                Box::new(|c| c.topics.model_update.clear()),
            ),
        ];
        for (field, change) in cases {
            let mut config = config();
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert!(
                matches!(&error, DeployError::Config { field: f, .. } if *f == field),
                "{field}: {error}"
            );
        }
    }

    #[test]
    fn preset_arguments_pass() {
        let mut config = config();
        config.train_args = ["--preset", "paper", "--policy-steps", "1000"]
            .map(str::to_owned)
            .to_vec();
        assert!(config.validate().is_ok());
    }
}

//! The offline training job: from a segment store to an installed model set.
//!
//! [`run_job`] reads one dataset's episodes and its answered queries from a store, trains
//! the CLARIFY encoder and the reward ensemble on the answers, relabels every transition
//! with the ensemble's mean reward, trains an IQL policy on the relabelled data, exports the
//! three networks to ONNX and installs them with a manifest as a new version of a model
//! registry.
//!
//! The answers are replayed in the order they were given, in rounds of M answers (default
//! 50), as the live loop trains: after round k the reward model trains on the first k · M
//! answers (up to its epoch limit, with early stopping), and the encoder trains for its
//! first-round iterations after round 1 and its later-round iterations after every other
//! round. Skipped queries are left out; "can't tell" answers train the encoder's ambiguity
//! loss and are dropped by the reward model.
//!
//! Everything is trained in memory. The set is written only at the end, into the
//! registry's staging folder, and renamed into place: a job that fails or is killed leaves
//! the registry as it was.

mod data;
mod error;
pub mod policy_bench;
mod stages;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use data::{
    BufferCounts, TrainingInputs, answers_sha256, buffer_answers, choose_dataset, load_inputs,
    pair_arrays,
};
pub use error::TrainError;
pub use stages::{
    EncoderOutcome, PolicyOutcome, RewardOutcome, replay_rounds, train_encoder, train_policy,
    train_reward,
};

use crate::learn::RewardModelConfig;
use crate::learn::encoder::{EncoderConfig, EncoderPreset};
use crate::learn::iql::{IqlConfig, IqlPreset};
use crate::registry::{ModelSet, Registry};
use crate::store::{ModelStatus, RunStatus, Store};

/// Default number of answers per replayed round, the live loop's M.
pub const DEFAULT_REPLAY_ROUND: usize = 50;
/// Default minimum number of clear answers.
pub const DEFAULT_MIN_CLEAR_ANSWERS: usize = 10;
/// Default number of model versions the registry keeps.
pub const DEFAULT_KEEP: usize = 5;

/// Network sizes and schedule lengths: `cpu` for a few minutes to an hour on a CPU,
/// `paper` for the settings of the CLARIFY paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainPreset {
    Cpu,
    Paper,
}

impl TrainPreset {
    /// Returns `cpu` or `paper`.
    pub fn name(self) -> &'static str {
        match self {
            TrainPreset::Cpu => "cpu",
            TrainPreset::Paper => "paper",
        }
    }
}

impl std::str::FromStr for TrainPreset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "cpu" => Ok(TrainPreset::Cpu),
            "paper" => Ok(TrainPreset::Paper),
            _ => Err(format!("invalid preset {text:?}: expected cpu or paper")),
        }
    }
}

/// Settings of a training job.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Dataset of the store to train on, by row id or name; `None` takes the only one.
    pub dataset: Option<String>,
    /// Seed of the encoder, the reward model and the policy.
    pub seed: u64,
    pub encoder: EncoderConfig,
    pub reward: RewardModelConfig,
    pub iql: IqlConfig,
    /// Answers per replayed round.
    pub replay_round: usize,
    /// The job fails with fewer clear (left or right) answers.
    pub min_clear_answers: usize,
    /// Version name of the new set; `None` names it after the UTC time.
    pub version: Option<String>,
    /// Versions the registry keeps after the install.
    pub keep: usize,
    /// Whether to make the new set the active one.
    pub activate: bool,
    /// Whether a set for other observation or action sizes than the active set's may be
    /// installed.
    pub allow_dimension_change: bool,
    /// Encoder iterations between progress reports.
    pub encoder_progress_interval: usize,
    /// IQL gradient steps between progress reports.
    pub iql_progress_interval: usize,
    /// Folder of IQL checkpoints; `None` keeps none. A job that finds a checkpoint there
    /// trains the encoder and reward model again, which the seed makes repeatable, and
    /// resumes the policy from it.
    pub policy_checkpoint_dir: Option<PathBuf>,
    /// Row of the store's `training_runs` table opened by a supervising program, which the
    /// job closes; `None` opens a new row.
    pub run_id: Option<i64>,
}

impl TrainSettings {
    /// Returns the settings of `preset`: the encoder, reward model and IQL presets of the
    /// same name and the defaults above.
    pub fn preset(preset: TrainPreset) -> Self {
        let (encoder, iql) = match preset {
            TrainPreset::Cpu => (EncoderPreset::Cpu, IqlPreset::Cpu),
            TrainPreset::Paper => (EncoderPreset::Paper, IqlPreset::Paper),
        };
        Self {
            dataset: None,
            seed: 0,
            encoder: EncoderConfig::preset(encoder),
            reward: RewardModelConfig::default(),
            iql: IqlConfig::preset(iql),
            replay_round: DEFAULT_REPLAY_ROUND,
            min_clear_answers: DEFAULT_MIN_CLEAR_ANSWERS,
            version: None,
            keep: DEFAULT_KEEP,
            activate: false,
            allow_dimension_change: false,
            encoder_progress_interval: 50,
            iql_progress_interval: 1000,
            policy_checkpoint_dir: None,
            run_id: None,
        }
    }

    /// Checks the settings that the trainers do not check themselves.
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |field, value: usize| {
            Err(TrainError::InvalidSetting {
                field,
                value: value.to_string(),
                expected: "at least 1",
            })
        };
        for (field, value) in [
            ("replay_round", self.replay_round),
            ("min_clear_answers", self.min_clear_answers),
            ("keep", self.keep),
            ("encoder_progress_interval", self.encoder_progress_interval),
            ("iql_progress_interval", self.iql_progress_interval),
        ] {
            if value == 0 {
                return invalid(field, value);
            }
        }
        if let Some(version) = &self.version {
            crate::registry::check_version_name(version).map_err(|expected| {
                TrainError::InvalidSetting {
                    field: "version",
                    value: format!("{version:?}"),
                    expected,
                }
            })?;
        }
        let settings = |error: &dyn std::error::Error| TrainError::Settings(error.to_string());
        self.encoder.validate().map_err(|error| settings(&error))?;
        self.reward.validate().map_err(|error| settings(&error))?;
        self.iql.validate().map_err(|error| settings(&error))?;
        Ok(())
    }
}

/// A stage of the job, as named in progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Load,
    Encoder,
    Reward,
    Relabel,
    Policy,
    Export,
    Install,
    Done,
}

/// One progress report: `step` of `total` in `stage`, the mean losses since the previous
/// report of the stage, and the seconds since the job started. The `done` report carries
/// the installed version and its folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub stage: Stage,
    pub step: usize,
    pub total: usize,
    pub losses: std::collections::BTreeMap<&'static str, f64>,
    pub elapsed_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Row of the store's `training_runs` table, once the job has opened it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
}

/// Reports progress with the job's start time.
pub struct Reporter<'a> {
    started: Instant,
    sink: &'a mut dyn FnMut(&Progress),
    run_id: Option<i64>,
}

impl<'a> Reporter<'a> {
    /// Starts the clock now.
    pub fn new(sink: &'a mut dyn FnMut(&Progress)) -> Self {
        Self {
            started: Instant::now(),
            sink,
            run_id: None,
        }
    }

    /// Sends one report.
    pub fn report(
        &mut self,
        stage: Stage,
        step: usize,
        total: usize,
        losses: &[(&'static str, f64)],
    ) {
        let progress = Progress {
            stage,
            step,
            total,
            losses: losses.iter().copied().collect(),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            version: None,
            path: None,
            run_id: self.run_id,
        };
        (self.sink)(&progress);
    }

    fn finish(&mut self, set: &ModelSet) {
        let progress = Progress {
            stage: Stage::Done,
            step: 1,
            total: 1,
            losses: Default::default(),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            version: Some(set.version.clone()),
            path: Some(set.path.clone()),
            run_id: self.run_id,
        };
        (self.sink)(&progress);
    }
}

/// Outcome of a finished job.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    /// The installed set.
    pub set: ModelSet,
    /// Whether it was made the active set.
    pub activated: bool,
}

/// Runs the whole job: trains on the store at `store_path` and installs the set into the
/// registry folder `models`.
pub fn run_job(
    store_path: &Path,
    models: &Path,
    settings: &TrainSettings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<JobOutcome, TrainError> {
    settings.validate()?;
    let mut reporter = Reporter::new(progress);
    reporter.report(Stage::Load, 0, 1, &[]);

    if !store_path.is_file() {
        return Err(TrainError::Io {
            operation: "open the store",
            path: store_path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let store = Store::open(store_path)?;
    let record = choose_dataset(&store, settings.dataset.as_deref())?;
    let inputs = load_inputs(&store, record)?;
    drop(store);
    check_answers(&inputs, settings)?;

    let registry = Registry::open(models, settings.keep)?;
    check_dimensions(&registry, &inputs, settings)?;
    let version = match &settings.version {
        Some(version) => version.clone(),
        None => stages::default_version(&registry),
    };
    if registry.version_path(&version).exists() {
        return Err(TrainError::InvalidSetting {
            field: "version",
            value: format!("{version:?}"),
            expected: "a version that is not installed yet",
        });
    }
    tracing::info!(
        dataset = inputs.record.meta.name,
        episodes = inputs.dataset.episodes().len(),
        steps = inputs.dataset.step_count(),
        clear = inputs.counts.clear,
        cant_tell = inputs.counts.cant_tell,
        skip = inputs.counts.skip,
        other_dataset_answers = inputs.other_dataset_answers,
        "loaded training data"
    );
    let mut store = Store::open(store_path)?;
    // Skips carry no information, so like the manifest the row counts only the others.
    let answers_used = (inputs.counts.clear + inputs.counts.cant_tell) as u64;
    let run_id = match settings.run_id {
        Some(id) => store.training_run(id)?.id,
        None => store.start_training_run(answers_used, None)?,
    };
    reporter.run_id = Some(run_id);
    reporter.report(Stage::Load, 1, 1, &[]);

    let outcome = train_install_and_record(
        &inputs,
        &registry,
        &version,
        settings,
        &mut store,
        &mut reporter,
    );
    match &outcome {
        Ok(outcome) => {
            store.finish_training_run(run_id, RunStatus::Succeeded, Some(&outcome.set.version))?;
            reporter.finish(&outcome.set);
        }
        Err(error) => {
            // The job's own error is the one to report, so a failure to close the run is
            // only logged.
            if let Err(store_error) = store.finish_training_run(run_id, RunStatus::Failed, None) {
                tracing::warn!(run_id, %store_error, %error, "failed to close the training run");
            }
        }
    }
    outcome
}

/// Trains and installs the set, then records it in the store's `models` table (`active`
/// when the job activates it, `candidate` otherwise).
fn train_install_and_record(
    inputs: &TrainingInputs,
    registry: &Registry,
    version: &str,
    settings: &TrainSettings,
    store: &mut Store,
    reporter: &mut Reporter<'_>,
) -> Result<JobOutcome, TrainError> {
    let set = stages::train_and_install(inputs, registry, version, settings, reporter)?;
    let status = if settings.activate {
        registry.activate(&set.version)?;
        ModelStatus::Active
    } else {
        ModelStatus::Candidate
    };
    store.record_model(&set.version, &set.path, &set.manifest.to_json(), status)?;
    if settings.activate {
        store.activate_model(&set.version)?;
    }
    Ok(JobOutcome {
        set,
        activated: settings.activate,
    })
}

fn check_answers(inputs: &TrainingInputs, settings: &TrainSettings) -> Result<(), TrainError> {
    let counts = inputs.counts;
    let name = inputs.record.meta.name.clone();
    if counts.clear + counts.cant_tell + counts.skip == 0 {
        return Err(TrainError::NoAnswers {
            path: inputs.dataset.path().to_owned(),
            dataset: name,
        });
    }
    if counts.clear < settings.min_clear_answers {
        return Err(TrainError::TooFewClearAnswers {
            dataset: name,
            clear: counts.clear,
            cant_tell: counts.cant_tell,
            skip: counts.skip,
            minimum: settings.min_clear_answers,
        });
    }
    let longest = inputs
        .dataset
        .episodes()
        .iter()
        .map(|episode| episode.len)
        .max()
        .unwrap_or(0);
    if settings.encoder.context_length > longest {
        return Err(TrainError::InvalidSetting {
            field: "encoder.context_length",
            value: settings.encoder.context_length.to_string(),
            expected: "at most the longest episode's step count",
        });
    }
    Ok(())
}

fn check_dimensions(
    registry: &Registry,
    inputs: &TrainingInputs,
    settings: &TrainSettings,
) -> Result<(), TrainError> {
    if settings.allow_dimension_change || registry.current()?.is_none() {
        return Ok(());
    }
    let active = registry.load_current()?;
    for (field, found, expected) in [
        (
            "observation_dim",
            inputs.dataset.observation_dim(),
            active.manifest.observation_dim,
        ),
        (
            "action_dim",
            inputs.dataset.action_dim(),
            active.manifest.action_dim,
        ),
    ] {
        if found != expected {
            return Err(TrainError::Dimension {
                field,
                found,
                expected,
                version: active.version,
            });
        }
    }
    Ok(())
}

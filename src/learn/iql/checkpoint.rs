//! Resumable IQL checkpoints.
//!
//! A checkpoint folder contains one subfolder per saved step, `step-NNNNNNNNN`, and a file
//! `latest` with the name of the newest complete one. A subfolder is written under a
//! temporary name and renamed into place before `latest` is replaced (also through a rename),
//! so a reader that follows `latest` sees either the previous checkpoint or the new one,
//! complete. Older subfolders are removed after `latest` points at the new one. Only one
//! process may write to a checkpoint folder, because saving also removes the temporary
//! folders that other writers left there.
//!
//! A subfolder contains `state.json` (step count, configuration, data statistics) and burn
//! records in the burnpack format: the online and target Q networks, V, the actor and the
//! Adam state of the three optimizers. The minibatch generator needs no saved state, because
//! each step seeds its own from the configuration's seed and the step count.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use super::config::IqlConfig;
use super::data::{IqlData, ObservationNormalization};
use super::error::IqlError;
use super::trainer::IqlTrainer;

/// Version of the checkpoint layout that this code writes and reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// File in the checkpoint folder that names the newest complete checkpoint.
const LATEST_FILE: &str = "latest";
const STATE_FILE: &str = "state.json";
const STEP_PREFIX: &str = "step-";

const Q_FILE: &str = "q.bpk";
const TARGET_Q_FILE: &str = "target_q.bpk";
const VALUE_FILE: &str = "value.bpk";
const ACTOR_FILE: &str = "actor.bpk";
const Q_OPTIMIZER_FILE: &str = "q_optimizer.bpk";
const VALUE_OPTIMIZER_FILE: &str = "value_optimizer.bpk";
const ACTOR_OPTIMIZER_FILE: &str = "actor_optimizer.bpk";

/// Contents of `state.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointState {
    format_version: u32,
    completed_steps: usize,
    observation_dim: usize,
    action_dim: usize,
    transitions: usize,
    observation_normalization: ObservationNormalization,
    reward_min: f32,
    reward_max: f32,
    config: IqlConfig,
}

impl IqlTrainer {
    /// Saves the networks, target networks, optimizer state and step count under `dir`
    /// (created if missing) and returns the new checkpoint's subfolder.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf, IqlError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| IqlError::CheckpointIo {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let name = format!("{STEP_PREFIX}{:09}", self.completed_steps);
        let staging = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
        }
        fs::create_dir(&staging).map_err(io("create", &staging))?;

        self.write_contents(&staging)?;
        sync_path(&staging).map_err(io("write", &staging))?;

        let target = dir.join(&name);
        if target.exists() {
            // The same step was saved before. Its folder is replaced, so for a moment
            // `latest` may name a missing folder.
            fs::remove_dir_all(&target).map_err(io("replace", &target))?;
        }
        fs::rename(&staging, &target).map_err(io("write", &target))?;
        write_atomically(&dir.join(LATEST_FILE), name.as_bytes())
            .map_err(io("write", &dir.join(LATEST_FILE)))?;
        sync_path(dir).map_err(io("write", dir))?;

        remove_other_checkpoints(dir, &name).map_err(io("clean up", dir))?;
        tracing::debug!(checkpoint = %target.display(), step = self.completed_steps, "saved IQL checkpoint");
        Ok(target)
    }

    /// Restores the training state saved under `dir` by [`IqlTrainer::save_checkpoint`],
    /// with the configuration stored there.
    ///
    /// `data` must be the transitions (and rewards) the run started with: the number of
    /// transitions, their widths, the observation statistics and the reward range are
    /// checked against the checkpoint. Continuing to train gives the same networks and
    /// losses as a run that was never interrupted.
    pub fn resume(dir: &Path, data: &IqlData) -> Result<Self, IqlError> {
        let folder = latest_checkpoint(dir)?;
        let state = read_state(&folder)?;
        check_matches_data(&folder, &state, data)?;

        let mut trainer = IqlTrainer::new(state.config, data)?;
        let load = |file: &str| {
            let path = folder.join(file);
            ModuleRecord::load(&path).map_err(|error| record_error(&path, error))
        };
        let apply =
            |file: &str, error: burn::store::RecordError| record_error(&folder.join(file), error);
        trainer.q = trainer
            .q
            .try_load_record(load(Q_FILE)?)
            .map_err(|error| apply(Q_FILE, error))?;
        trainer.target_q = trainer
            .target_q
            .try_load_record(load(TARGET_Q_FILE)?)
            .map_err(|error| apply(TARGET_Q_FILE, error))?;
        trainer.value = trainer
            .value
            .try_load_record(load(VALUE_FILE)?)
            .map_err(|error| apply(VALUE_FILE, error))?;
        trainer.actor = trainer
            .actor
            .try_load_record(load(ACTOR_FILE)?)
            .map_err(|error| apply(ACTOR_FILE, error))?;

        let adam = AdamConfig::new().with_epsilon(trainer.config.adam_epsilon);
        let load_optimizer = |file: &str| -> Result<ModuleOptimizer, IqlError> {
            let path = folder.join(file);
            adam.init()
                .load(&path)
                .map_err(|error| record_error(&path, error))
        };
        trainer.q_optimizer = load_optimizer(Q_OPTIMIZER_FILE)?;
        trainer.value_optimizer = load_optimizer(VALUE_OPTIMIZER_FILE)?;
        trainer.actor_optimizer = load_optimizer(ACTOR_OPTIMIZER_FILE)?;
        trainer.completed_steps = state.completed_steps;
        tracing::info!(
            checkpoint = %folder.display(),
            step = state.completed_steps,
            "resumed IQL training"
        );
        Ok(trainer)
    }

    fn write_contents(&self, folder: &Path) -> Result<(), IqlError> {
        let state = CheckpointState {
            format_version: CHECKPOINT_FORMAT_VERSION,
            completed_steps: self.completed_steps,
            observation_dim: self.observation_dim,
            action_dim: self.action_dim,
            transitions: self.summary.transitions,
            observation_normalization: self.summary.normalization.clone(),
            reward_min: self.summary.reward_scale.min,
            reward_max: self.summary.reward_scale.max,
            config: self.config.clone(),
        };
        let state_path = folder.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(&state).expect("the checkpoint state serializes");
        write_synced(&state_path, &json).map_err(|source| IqlError::CheckpointIo {
            action: "write",
            path: state_path.clone(),
            source,
        })?;

        let records = [
            (Q_FILE, self.q.clone().into_record()),
            (TARGET_Q_FILE, self.target_q.clone().into_record()),
            (VALUE_FILE, self.value.clone().into_record()),
            (ACTOR_FILE, self.actor.clone().into_record()),
        ];
        for (file, record) in records {
            let path = folder.join(file);
            record
                .save(&path)
                .map_err(|error| record_error(&path, error))?;
        }
        let optimizers = [
            (Q_OPTIMIZER_FILE, &self.q_optimizer),
            (VALUE_OPTIMIZER_FILE, &self.value_optimizer),
            (ACTOR_OPTIMIZER_FILE, &self.actor_optimizer),
        ];
        for (file, optimizer) in optimizers {
            let path = folder.join(file);
            optimizer
                .save(&path)
                .map_err(|error| record_error(&path, error))?;
        }
        for file in [
            Q_FILE,
            TARGET_Q_FILE,
            VALUE_FILE,
            ACTOR_FILE,
            Q_OPTIMIZER_FILE,
            VALUE_OPTIMIZER_FILE,
            ACTOR_OPTIMIZER_FILE,
        ] {
            let path = folder.join(file);
            sync_path(&path).map_err(|source| IqlError::CheckpointIo {
                action: "write",
                path,
                source,
            })?;
        }
        Ok(())
    }
}

/// Returns the subfolder that `dir/latest` names.
/// Returns whether `dir` names a checkpoint to resume from, that is, contains the file
/// that points at the newest complete checkpoint.
pub fn has_checkpoint(dir: &Path) -> bool {
    dir.join(LATEST_FILE).is_file()
}

fn latest_checkpoint(dir: &Path) -> Result<PathBuf, IqlError> {
    let latest = dir.join(LATEST_FILE);
    let name = fs::read_to_string(&latest).map_err(|source| IqlError::CheckpointIo {
        action: "read",
        path: latest.clone(),
        source,
    })?;
    let name = name.trim();
    let valid = name
        .strip_prefix(STEP_PREFIX)
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Err(IqlError::Checkpoint {
            path: latest,
            message: format!("contains {name:?}, expected a folder name like step-000005000"),
        });
    }
    Ok(dir.join(name))
}

fn read_state(folder: &Path) -> Result<CheckpointState, IqlError> {
    let path = folder.join(STATE_FILE);
    let text = fs::read_to_string(&path).map_err(|source| IqlError::CheckpointIo {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|error| IqlError::Checkpoint {
            path: path.clone(),
            message: format!("invalid {STATE_FILE}: {error}"),
        })?;
    if state.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(IqlError::Checkpoint {
            path,
            message: format!(
                "format_version is {}, expected {CHECKPOINT_FORMAT_VERSION}",
                state.format_version
            ),
        });
    }
    Ok(state)
}

fn check_matches_data(
    folder: &Path,
    state: &CheckpointState,
    data: &IqlData,
) -> Result<(), IqlError> {
    let mismatch = |what, found: String, expected: String| IqlError::CheckpointMismatch {
        path: folder.to_path_buf(),
        what,
        found,
        expected,
    };
    let counts = [
        ("the transition count", state.transitions, data.len()),
        (
            "the observation width",
            state.observation_dim,
            data.observation_dim(),
        ),
        ("the action width", state.action_dim, data.action_dim()),
    ];
    for (what, found, expected) in counts {
        if found != expected {
            return Err(mismatch(what, found.to_string(), expected.to_string()));
        }
    }
    if &state.observation_normalization != data.normalization() {
        return Err(mismatch(
            "the observation mean and standard deviation",
            "one set of values".to_owned(),
            "another".to_owned(),
        ));
    }
    let scale = data.reward_scale();
    if (state.reward_min, state.reward_max) != (scale.min, scale.max) {
        return Err(mismatch(
            "the reward range",
            format!("[{}, {}]", state.reward_min, state.reward_max),
            format!("[{}, {}]", scale.min, scale.max),
        ));
    }
    Ok(())
}

fn record_error(path: &Path, error: burn::store::RecordError) -> IqlError {
    IqlError::Checkpoint {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    write_synced(&temporary, bytes)?;
    fs::rename(&temporary, path)
}

/// Flushes a file's or a folder's contents (for a folder: its entries) to disk.
fn sync_path(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Removes every checkpoint subfolder and leftover temporary folder except `keep`.
fn remove_other_checkpoints(dir: &Path, keep: &str) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let is_checkpoint = name.starts_with(STEP_PREFIX) && name != keep;
        let is_staging = name.starts_with(&format!(".{STEP_PREFIX}")) && name.contains(".tmp-");
        if (is_checkpoint || is_staging) && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

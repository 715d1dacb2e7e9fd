//! The stages of the training job: encoder, reward model, relabelling, policy, export and
//! install. The policy benchmark reuses the reward and policy stages.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ndarray::{Array1, ArrayView1, Axis, Slice};

use super::data::{TrainingInputs, buffer_answers, pair_arrays};
use super::error::TrainError;
use super::{Reporter, Stage, TrainSettings};
use crate::dataset::Dataset;
use crate::learn::encoder::{
    ClarifyEncoder, EncoderConfig, EncoderTrainingData, EncoderTrainingReport, STATES_INPUT,
    StateNormalization, TIMESTEPS_INPUT, Z_OUTPUT,
};
use crate::learn::iql::{
    IqlConfig, IqlData, IqlError, IqlReport, IqlTrainOptions, IqlTrainer, POLICY_ACTIONS_OUTPUT,
    POLICY_OBSERVATIONS_INPUT, has_checkpoint,
};
use crate::learn::{
    ACTIONS_INPUT, OBSERVATIONS_INPUT, PreferencePairs, REWARDS_OUTPUT, RewardModel,
    RewardModelConfig, TrainingReport,
};
use crate::onnx::{DEFAULT_OPSET, ModelInfo, encode_model};
use crate::registry::{
    ActionBounds, BATCH_DIM, ComponentVersions, DataProvenance, MANIFEST_FORMAT_VERSION, Manifest,
    ModelSet, NetworkFile, Networks, Normalization, Registry, RobotInterface, ShapeDim,
    TensorShape, sha256_bytes,
};
use crate::select::LabelledPair;

/// File names of the networks in a set.
const ENCODER_FILE: &str = "encoder.onnx";
const REWARD_FILE: &str = "reward.onnx";
const POLICY_FILE: &str = "policy.onnx";

/// Returns the end of each replayed round in the buffer: `round`, `2 · round`, ..., and
/// the buffer's length last.
pub fn replay_rounds(buffer_len: usize, round: usize) -> Vec<usize> {
    let round = round.max(1);
    (1..=buffer_len.div_ceil(round))
        .map(|index| (index * round).min(buffer_len))
        .collect()
}

/// The trained encoder and the report of its last training call.
pub struct EncoderOutcome {
    pub encoder: ClarifyEncoder,
    pub last_report: Option<EncoderTrainingReport>,
    pub seconds: f64,
}

/// Trains a new encoder on the buffer, replayed in rounds of `replay_round` answers.
pub fn train_encoder(
    dataset: &Dataset,
    buffer: &[LabelledPair],
    config: &EncoderConfig,
    seed: u64,
    replay_round: usize,
    progress_interval: usize,
    reporter: &mut Reporter<'_>,
) -> Result<EncoderOutcome, TrainError> {
    let started = Instant::now();
    let normalization = StateNormalization::from_dataset(dataset)?;
    let mut encoder = ClarifyEncoder::new(
        config.clone(),
        dataset.observation_dim(),
        dataset.action_dim(),
        normalization,
        seed,
    )?;
    let rounds = replay_rounds(buffer.len(), replay_round);
    let total: usize = (0..rounds.len())
        .map(|round| config.iterations_for_round(round))
        .sum();
    reporter.report(Stage::Encoder, 0, total, &[]);
    let mut done = 0;
    let mut last_report = None;
    for (round, &end) in rounds.iter().enumerate() {
        let data = EncoderTrainingData {
            dataset,
            buffer: &buffer[..end],
        };
        let mut left = config.iterations_for_round(round);
        while left > 0 {
            let chunk = left.min(progress_interval.max(1));
            let report = encoder.train(&data, chunk)?;
            left -= chunk;
            done += chunk;
            reporter.report(
                Stage::Encoder,
                done,
                total,
                &[
                    ("reconstruction", report.reconstruction_loss),
                    ("norm", report.norm_loss),
                    ("ambiguity", report.ambiguity_loss),
                    ("quadrilateral", report.quadrilateral_loss),
                ],
            );
            last_report = Some(report);
        }
    }
    Ok(EncoderOutcome {
        encoder,
        last_report,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The trained reward model and its reports.
pub struct RewardOutcome {
    pub model: RewardModel,
    /// Report of the last round's training call.
    pub last_report: Option<TrainingReport>,
    /// Agreement of the ensemble mean with the buffer's clear answers.
    pub buffer_accuracy: f64,
    /// Epochs over all rounds.
    pub epochs: usize,
    pub seconds: f64,
}

/// Trains a new reward model on the buffer, replayed in rounds of `replay_round` answers:
/// after each round the model continues training on every answer so far.
pub fn train_reward(
    dataset: &Dataset,
    buffer: &[LabelledPair],
    config: &RewardModelConfig,
    replay_round: usize,
    reporter: &mut Reporter<'_>,
) -> Result<RewardOutcome, TrainError> {
    let started = Instant::now();
    let mut model = RewardModel::new(
        config.clone(),
        dataset.observation_dim(),
        dataset.action_dim(),
    )?;
    let (observations, actions) = pair_arrays(dataset, buffer);
    let answers = buffer_answers(buffer);
    let rounds = replay_rounds(buffer.len(), replay_round);
    reporter.report(Stage::Reward, 0, rounds.len(), &[]);
    let mut last_report = None;
    let mut epochs = 0;
    for (round, &end) in rounds.iter().enumerate() {
        let rows = Slice::from(0..end);
        let pairs = PreferencePairs {
            observations: observations.slice_axis(Axis(0), rows),
            actions: actions.slice_axis(Axis(0), rows),
            answers: &answers[..end],
        };
        let report = model.train(&pairs)?;
        epochs += report.epochs;
        reporter.report(
            Stage::Reward,
            round + 1,
            rounds.len(),
            &[
                ("loss", report.loss),
                ("accuracy", report.accuracy),
                ("epochs", report.epochs as f64),
            ],
        );
        last_report = Some(report);
    }
    let buffer_accuracy = model.accuracy(&PreferencePairs {
        observations: observations.view(),
        actions: actions.view(),
        answers: &answers,
    })?;
    Ok(RewardOutcome {
        model,
        last_report,
        buffer_accuracy,
        epochs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Relabels every transition of `dataset` with the ensemble-mean reward (not normalised;
/// [`IqlData`] min-max normalises it to [0, 1]).
pub fn relabel(model: &RewardModel, dataset: &Dataset) -> Result<Array1<f32>, TrainError> {
    Ok(model.relabel_dataset(dataset)?)
}

/// The trained policy and its report.
pub struct PolicyOutcome {
    pub trainer: IqlTrainer,
    pub report: IqlReport,
}

/// Trains an IQL policy on `dataset` with `rewards` in place of its true rewards.
pub fn train_policy(
    dataset: &Dataset,
    rewards: ArrayView1<'_, f32>,
    config: &IqlConfig,
    progress_interval: usize,
    checkpoint_dir: Option<&Path>,
    reporter: &mut Reporter<'_>,
) -> Result<PolicyOutcome, TrainError> {
    let data = IqlData::from_dataset(dataset, rewards, config.observation_std_epsilon)?;
    let mut trainer = match checkpoint_dir {
        Some(dir) if has_checkpoint(dir) => resume_or_restart(dir, config, &data)?,
        _ => IqlTrainer::new(config.clone(), &data)?,
    };
    drop(data);
    reporter.report(
        Stage::Policy,
        trainer.completed_steps(),
        config.gradient_steps,
        &[],
    );
    let options = IqlTrainOptions {
        progress_interval,
        checkpoint_dir: checkpoint_dir.map(Path::to_path_buf),
        ..IqlTrainOptions::default()
    };
    let report = trainer.train(&options, |progress| {
        reporter.report(
            Stage::Policy,
            progress.step,
            progress.until_step,
            &[
                ("q", progress.losses.q),
                ("value", progress.losses.value),
                ("actor", progress.losses.actor),
                ("steps_per_second", progress.steps_per_second),
            ],
        );
    })?;
    Ok(PolicyOutcome { trainer, report })
}

/// Resumes IQL from the newest checkpoint in `dir`. A checkpoint of other settings or of
/// other data (the relabelled rewards differ) is left behind with a warning, and training
/// starts again from step 0; the next checkpoint replaces it.
fn resume_or_restart(
    dir: &Path,
    config: &IqlConfig,
    data: &IqlData,
) -> Result<IqlTrainer, TrainError> {
    match IqlTrainer::resume(dir, data) {
        Ok(trainer) if trainer.config() == config => Ok(trainer),
        Ok(_) => {
            tracing::warn!(
                checkpoint = %dir.display(),
                "the IQL checkpoint has other settings; training starts from step 0"
            );
            Ok(IqlTrainer::new(config.clone(), data)?)
        }
        Err(error @ IqlError::CheckpointMismatch { .. }) => {
            tracing::warn!(
                checkpoint = %dir.display(),
                %error,
                "the IQL checkpoint does not match the data; training starts from step 0"
            );
            Ok(IqlTrainer::new(config.clone(), data)?)
        }
        Err(error) => Err(error.into()),
    }
}

/// Runs the training stages on `inputs`, then exports and installs the set as `version`.
pub(super) fn train_and_install(
    inputs: &TrainingInputs,
    registry: &Registry,
    version: &str,
    settings: &TrainSettings,
    reporter: &mut Reporter<'_>,
) -> Result<ModelSet, TrainError> {
    let dataset = &inputs.dataset;
    let buffer = &inputs.buffer;
    let mut metrics = BTreeMap::new();

    let encoder = train_encoder(
        dataset,
        buffer,
        &settings.encoder,
        settings.seed,
        settings.replay_round,
        settings.encoder_progress_interval,
        reporter,
    )?;
    if let Some(report) = &encoder.last_report {
        metrics.insert("encoder_reconstruction_loss", report.reconstruction_loss);
        metrics.insert("encoder_norm_loss", report.norm_loss);
        metrics.insert("encoder_ambiguity_loss", report.ambiguity_loss);
        metrics.insert("encoder_quadrilateral_loss", report.quadrilateral_loss);
        metrics.insert("encoder_iterations", report.total_iterations as f64);
    }
    metrics.insert("encoder_seconds", encoder.seconds);

    let reward_config = RewardModelConfig {
        seed: settings.seed,
        ..settings.reward.clone()
    };
    let reward = train_reward(
        dataset,
        buffer,
        &reward_config,
        settings.replay_round,
        reporter,
    )?;
    if let Some(report) = &reward.last_report {
        metrics.insert("reward_train_loss", report.loss);
        metrics.insert("reward_train_accuracy", report.accuracy);
    }
    metrics.insert("reward_buffer_accuracy", reward.buffer_accuracy);
    metrics.insert("reward_epochs", reward.epochs as f64);
    metrics.insert("reward_seconds", reward.seconds);

    reporter.report(Stage::Relabel, 0, 1, &[]);
    let rewards = relabel(&reward.model, dataset)?;
    reporter.report(Stage::Relabel, 1, 1, &[]);

    let iql_config = IqlConfig {
        seed: settings.seed,
        ..settings.iql.clone()
    };
    let policy = train_policy(
        dataset,
        rewards.view(),
        &iql_config,
        settings.iql_progress_interval,
        settings.policy_checkpoint_dir.as_deref(),
        reporter,
    )?;
    let scale = policy.trainer.reward_scale();
    metrics.insert("relabelled_reward_min", f64::from(scale.min));
    metrics.insert("relabelled_reward_max", f64::from(scale.max));
    if let Some(losses) = policy.report.final_losses {
        metrics.insert("policy_q_loss", losses.q);
        metrics.insert("policy_value_loss", losses.value);
        metrics.insert("policy_actor_loss", losses.actor);
    }
    metrics.insert("policy_steps", policy.report.completed_steps as f64);
    metrics.insert("policy_seconds", policy.report.seconds);
    metrics.insert("answers_clear", inputs.counts.clear as f64);
    metrics.insert("answers_cant_tell", inputs.counts.cant_tell as f64);
    metrics.insert("answers_skip", inputs.counts.skip as f64);

    reporter.report(Stage::Export, 0, 3, &[]);
    let info = |part: &str| ModelInfo {
        doc_string: Some(format!("clarify {part} of model set {version}")),
        metadata: vec![("model_set_version".to_owned(), version.to_owned())],
        ..ModelInfo::default()
    };
    let encoder_bytes = encode_model(&encoder.encoder.to_onnx(&info("encoder"))?);
    let reward_bytes = encode_model(&reward.model.to_onnx(&info("reward ensemble"))?);
    let policy_bytes = encode_model(&policy.trainer.policy_to_onnx(&info("policy"))?);
    reporter.report(Stage::Export, 3, 3, &[]);

    let manifest = build_manifest(
        inputs,
        version,
        settings,
        &policy.trainer,
        [&encoder_bytes, &reward_bytes, &policy_bytes],
        reward.model.config().members,
        metrics,
    );

    reporter.report(Stage::Install, 0, 1, &[]);
    let staging = registry.stage(version)?;
    staging.write_file(ENCODER_FILE, &encoder_bytes)?;
    staging.write_file(REWARD_FILE, &reward_bytes)?;
    staging.write_file(POLICY_FILE, &policy_bytes)?;
    staging.write_file(
        crate::registry::MANIFEST_FILE,
        manifest.to_json().as_bytes(),
    )?;
    let set = staging.commit()?;
    reporter.report(Stage::Install, 1, 1, &[]);
    Ok(set)
}

fn build_manifest(
    inputs: &TrainingInputs,
    version: &str,
    settings: &TrainSettings,
    trainer: &IqlTrainer,
    [encoder_bytes, reward_bytes, policy_bytes]: [&Vec<u8>; 3],
    reward_members: usize,
    metrics: BTreeMap<&'static str, f64>,
) -> Manifest {
    let dataset = &inputs.dataset;
    let (observation_dim, action_dim) = (dataset.observation_dim(), dataset.action_dim());
    let batch = || ShapeDim::Named(BATCH_DIM.to_owned());
    let segment = inputs.segment_length;
    let tensor = |name: &str, shape: Vec<ShapeDim>| TensorShape {
        name: name.to_owned(),
        shape,
    };
    let policy_inputs = vec![TensorShape::batched(
        POLICY_OBSERVATIONS_INPUT,
        observation_dim,
    )];
    let policy_outputs = vec![TensorShape::batched(POLICY_ACTIONS_OUTPUT, action_dim)];
    let networks = Networks {
        policy: NetworkFile {
            file: POLICY_FILE.to_owned(),
            sha256: sha256_bytes(policy_bytes),
            inputs: policy_inputs.clone(),
            outputs: policy_outputs.clone(),
        },
        encoder: Some(NetworkFile {
            file: ENCODER_FILE.to_owned(),
            sha256: sha256_bytes(encoder_bytes),
            inputs: vec![
                tensor(
                    STATES_INPUT,
                    vec![
                        batch(),
                        ShapeDim::Fixed(segment),
                        ShapeDim::Fixed(observation_dim),
                    ],
                ),
                tensor(TIMESTEPS_INPUT, vec![batch(), ShapeDim::Fixed(segment)]),
            ],
            outputs: vec![TensorShape::batched(Z_OUTPUT, settings.encoder.z_dim)],
        }),
        reward: Some(NetworkFile {
            file: REWARD_FILE.to_owned(),
            sha256: sha256_bytes(reward_bytes),
            inputs: vec![
                tensor(
                    OBSERVATIONS_INPUT,
                    vec![
                        batch(),
                        ShapeDim::Fixed(segment),
                        ShapeDim::Fixed(observation_dim),
                    ],
                ),
                tensor(
                    ACTIONS_INPUT,
                    vec![
                        batch(),
                        ShapeDim::Fixed(segment),
                        ShapeDim::Fixed(action_dim),
                    ],
                ),
            ],
            outputs: vec![tensor(
                REWARDS_OUTPUT,
                vec![
                    ShapeDim::Fixed(reward_members),
                    batch(),
                    ShapeDim::Fixed(segment),
                ],
            )],
        }),
    };
    // The policy is clamped to the range of actions in the dataset.
    let actions = dataset.actions();
    let low: Vec<f32> = actions
        .axis_iter(Axis(1))
        .map(|column| column.fold(f32::INFINITY, |a, &b| a.min(b)))
        .collect();
    let high: Vec<f32> = actions
        .axis_iter(Axis(1))
        .map(|column| column.fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
        .collect();
    let normalization = trainer.normalization();
    let part_version = |part: &str| format!("{part}-{version}");
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        version: version.to_owned(),
        observation_dim,
        action_dim,
        observation_normalization: Normalization {
            mean: normalization.mean.clone(),
            std: normalization.std.clone(),
            in_graph: true,
        },
        action_bounds: ActionBounds { low, high },
        inputs: policy_inputs,
        outputs: policy_outputs,
        segment_length: segment,
        networks,
        versions: ComponentVersions {
            encoder: part_version("encoder"),
            reward: part_version("reward"),
            policy: part_version("policy"),
        },
        data: DataProvenance {
            dataset_sha256: inputs.record.meta.content_hash.to_hex(),
            answers_sha256: inputs.answers_sha256.clone(),
            answers_used: inputs.buffer.len() as u64,
        },
        robot: RobotInterface::default(),
        metrics: metrics
            .into_iter()
            .filter(|(_, value)| value.is_finite())
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        libraries: BTreeMap::from([
            ("clarify".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("burn".to_owned(), "0.22".to_owned()),
            ("onnx_opset".to_owned(), DEFAULT_OPSET.to_string()),
        ]),
    }
}

/// Returns a version name from the UTC time, `YYYYMMDD-HHMMSS`, with `-2`, `-3`, ...
/// appended while the name is taken.
pub(super) fn default_version(registry: &Registry) -> String {
    let seconds = crate::store::unix_secs_now() as i64;
    let base = utc_stamp(seconds);
    let mut version = base.clone();
    let mut suffix = 2;
    while registry.version_path(&version).exists() {
        version = format!("{base}-{suffix}");
        suffix += 1;
    }
    version
}

/// Formats Unix seconds as `YYYYMMDD-HHMMSS` in UTC (proleptic Gregorian calendar).
fn utc_stamp(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let second_of_day = unix_secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_rounds_end_with_the_buffer() {
        assert_eq!(replay_rounds(120, 50), vec![50, 100, 120]);
        assert_eq!(replay_rounds(50, 50), vec![50]);
        assert_eq!(replay_rounds(3, 50), vec![3]);
        assert!(replay_rounds(0, 50).is_empty());
    }

    #[test]
    fn utc_stamp_formats_known_times() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2026-12-04 20:15:30 UTC.
        assert_eq!(utc_stamp(1_796_415_330), "20261204-201530");
        // 2000-02-29 23:59:59 UTC, a leap day.
        assert_eq!(utc_stamp(951_868_799), "20000229-235959");
    }
}

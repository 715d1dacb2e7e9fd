//! Checks of a model set before it becomes active: it loads in ONNX Runtime, its shapes
//! match the robot, its networks give finite outputs on stored segments, its policy stays
//! within the action bounds, and its reward model is not much less accurate on held-out
//! answers than the active set's.

use std::fmt;
use std::path::Path;

use ndarray::{Array2, Array3, Axis, Slice};

use crate::answer::Answer;
use crate::dataset::Dataset;
use crate::infer::{InputArray, Runtime};
use crate::learn::encoder::encoder_signature;
use crate::registry::{Expectation, ModelSet};
use crate::runner::{OnnxPolicy, Policy};
use crate::select::{DatasetSegment, LabelledPair, OnnxRewardScorer, SegmentPair};
use crate::store::Store;
use crate::train::{TrainingInputs, answers_sha256, load_inputs};

/// Fewest answers given after training that count as a held-out set; with fewer, the
/// most recent clear answers are used instead.
pub const MIN_HELD_OUT: usize = 10;
/// Most recent clear answers used when too few answers came after training.
pub const RECENT_ANSWERS: usize = 100;
/// Stored segments that the encoder embeds in the check.
const ENCODER_SEGMENTS: usize = 32;
/// Stored observations that the policy runs on in the check.
const POLICY_OBSERVATIONS: usize = 256;
/// Slack of the bounds check, so that a tanh output of exactly ±1 passes bounds of ±1.
const BOUNDS_TOLERANCE: f32 = 1e-6;

/// Origin of the held-out answers of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldOutSource {
    /// Clear answers given after the ones the new set was trained on.
    AfterTraining,
    /// The most recent clear answers, which the new set was trained on too, because fewer
    /// than [`MIN_HELD_OUT`] came after training or the store no longer matches the
    /// training answers.
    MostRecent,
    /// No clear answers exist for the set's dataset.
    None,
}

impl fmt::Display for HeldOutSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AfterTraining => "answers given after training",
            Self::MostRecent => "the most recent clear answers, used in training",
            Self::None => "no clear answers",
        })
    }
}

/// The result of a passed check.
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    /// Fraction of held-out clear answers that the new set's reward model predicts; NaN
    /// without a reward model or held-out answers.
    pub reward_accuracy: f32,
    /// The active set's accuracy on the same answers; NaN when not measured.
    pub active_accuracy: f32,
    /// Number of held-out clear answers.
    pub held_out: usize,
    pub source: HeldOutSource,
}

/// Checks that every network of `set` loads in ONNX Runtime, that the manifest matches
/// `expected`, and that the policy's outputs on probe observations (the observation mean
/// and the mean ± one standard deviation) are finite and within the action bounds.
/// Returns the loaded policy. The error text names the failed check.
pub fn check_loads(
    runtime: &Runtime,
    set: &ModelSet,
    expected: &Expectation,
) -> Result<OnnxPolicy, String> {
    set.manifest
        .check(expected)
        .map_err(|error| error.to_string())?;
    let policy = OnnxPolicy::load(runtime, set, expected).map_err(|error| error.to_string())?;
    if let Some(encoder) = &set.manifest.networks.encoder {
        runtime
            .load_model(&set.path.join(&encoder.file), &encoder_signature())
            .map_err(|error| format!("encoder {}: {error}", encoder.file))?;
    }
    if let Some(reward) = &set.manifest.networks.reward {
        runtime
            .load_model(
                &set.path.join(&reward.file),
                &crate::select::onnx::reward_ensemble_signature(),
            )
            .map_err(|error| format!("reward model {}: {error}", reward.file))?;
    }
    Ok(policy)
}

/// Runs every check on `candidate`. After [`check_loads`], its encoder, reward model and
/// policy must give finite outputs on segments of the store at `store_path`, and its policy
/// actions must stay within the manifest's bounds. Its held-out reward accuracy must not be
/// below the `active` set's by more than `margin`. The error text names the failed check.
pub fn check_candidate(
    runtime: &Runtime,
    candidate: &ModelSet,
    active: Option<&ModelSet>,
    expected: &Expectation,
    store_path: &Path,
    margin: f32,
) -> Result<Validation, String> {
    let mut policy = check_loads(runtime, candidate, expected)?;
    let inputs = stored_inputs(candidate, store_path)?;
    let dataset = &inputs.dataset;
    check_policy_on_data(&mut policy, dataset, candidate)?;
    let (held_out, source) = held_out_pairs(&inputs, candidate);
    let segments = probe_segments(dataset, &held_out, candidate.manifest.segment_length);
    check_encoder_on_data(runtime, candidate, dataset, &segments)?;

    let reward_accuracy = match &candidate.manifest.networks.reward {
        Some(_) => {
            // Without held-out answers the reward model still runs on stored pairs, so its
            // outputs are checked for finite values; the accuracy stays NaN.
            let probe_pairs: Vec<SegmentPair> = if held_out.is_empty() {
                segments
                    .chunks_exact(2)
                    .map(|pair| SegmentPair {
                        left: pair[0],
                        right: pair[1],
                    })
                    .collect()
            } else {
                held_out.iter().map(|entry| entry.pair).collect()
            };
            let accuracy =
                measure_reward_accuracy(runtime, candidate, dataset, &probe_pairs, &held_out)
                    .map_err(|error| format!("reward model: {error}"))?;
            if held_out.is_empty() {
                f32::NAN
            } else {
                accuracy
            }
        }
        None => f32::NAN,
    };

    let active_accuracy = match active {
        Some(active) if active.manifest.networks.reward.is_some() && !held_out.is_empty() => {
            let pairs: Vec<SegmentPair> = held_out.iter().map(|entry| entry.pair).collect();
            match measure_reward_accuracy(runtime, active, dataset, &pairs, &held_out) {
                Ok(accuracy) => accuracy,
                Err(error) => {
                    // A broken active set must not block its replacement.
                    tracing::warn!(
                        version = %active.version,
                        %error,
                        "cannot measure the active set's reward accuracy; not comparing"
                    );
                    f32::NAN
                }
            }
        }
        _ => f32::NAN,
    };
    if reward_accuracy.is_finite()
        && active_accuracy.is_finite()
        && reward_accuracy < active_accuracy - margin
    {
        return Err(format!(
            "reward accuracy {reward_accuracy:.3} on {} held-out answers ({source}) is more \
             than {margin} below the active set {}'s {active_accuracy:.3}",
            held_out.len(),
            active.map(|set| set.version.as_str()).unwrap_or_default(),
        ));
    }
    Ok(Validation {
        reward_accuracy,
        active_accuracy,
        held_out: held_out.len(),
        source,
    })
}

/// Reads the dataset that `set` was trained on, identified by its SHA-256, with its
/// answered queries.
fn stored_inputs(set: &ModelSet, store_path: &Path) -> Result<TrainingInputs, String> {
    if !store_path.is_file() {
        return Err(format!(
            "segment store {} not found, so the set cannot be checked on stored segments",
            store_path.display()
        ));
    }
    let store = Store::open(store_path).map_err(|error| error.to_string())?;
    let wanted = &set.manifest.data.dataset_sha256;
    let record = store
        .datasets()
        .map_err(|error| error.to_string())?
        .into_iter()
        .find(|record| record.meta.content_hash.to_hex() == *wanted)
        .ok_or_else(|| {
            format!(
                "segment store {} has no dataset with SHA-256 {wanted}, the data set {} was \
                 trained on",
                store_path.display(),
                set.version
            )
        })?;
    let inputs = load_inputs(&store, record).map_err(|error| error.to_string())?;
    let manifest = &set.manifest;
    let dataset = &inputs.dataset;
    if (dataset.observation_dim(), dataset.action_dim())
        != (manifest.observation_dim, manifest.action_dim)
    {
        return Err(format!(
            "stored dataset has observation_dim {} and action_dim {}, but the manifest has {} \
             and {}",
            dataset.observation_dim(),
            dataset.action_dim(),
            manifest.observation_dim,
            manifest.action_dim
        ));
    }
    Ok(inputs)
}

/// Returns the clear answers held out from `set`'s training, and where they come from.
///
/// The manifest stores how many answers (skips left out, in answer order) the set was
/// trained on and their SHA-256. When the store's first answers still hash to that value,
/// the clear answers after them were not used in training.
fn held_out_pairs(inputs: &TrainingInputs, set: &ModelSet) -> (Vec<LabelledPair>, HeldOutSource) {
    let clear = |entries: &[LabelledPair]| -> Vec<LabelledPair> {
        entries
            .iter()
            .filter(|entry| matches!(entry.answer, Answer::Left | Answer::Right))
            .copied()
            .collect()
    };
    let buffer = &inputs.buffer;
    let used = usize::try_from(set.manifest.data.answers_used).unwrap_or(usize::MAX);
    if used <= buffer.len() && answers_sha256(&buffer[..used]) == set.manifest.data.answers_sha256 {
        let after = clear(&buffer[used..]);
        if after.len() >= MIN_HELD_OUT {
            return (after, HeldOutSource::AfterTraining);
        }
    }
    let all = clear(buffer);
    if all.is_empty() {
        return (all, HeldOutSource::None);
    }
    let start = all.len().saturating_sub(RECENT_ANSWERS);
    (all[start..].to_vec(), HeldOutSource::MostRecent)
}

/// Returns up to [`ENCODER_SEGMENTS`] segments (an even number when possible): those of
/// the held-out pairs, or else segments of `length` steps from the start of each episode.
fn probe_segments(
    dataset: &Dataset,
    held_out: &[LabelledPair],
    length: usize,
) -> Vec<DatasetSegment> {
    let mut segments: Vec<DatasetSegment> = held_out
        .iter()
        .flat_map(|entry| [entry.pair.left, entry.pair.right])
        .take(ENCODER_SEGMENTS)
        .collect();
    if segments.is_empty() {
        let shortest = dataset.episodes().iter().map(|episode| episode.len).min();
        let length = length.min(shortest.unwrap_or(0));
        if length > 0 {
            segments = (0..dataset.episodes().len())
                .take(ENCODER_SEGMENTS)
                .map(|episode| DatasetSegment {
                    episode,
                    start: 0,
                    length,
                })
                .collect();
        }
    }
    segments
}

/// Runs the policy on observations spread over the dataset and checks that every action
/// is finite and within the manifest's bounds.
fn check_policy_on_data(
    policy: &mut OnnxPolicy,
    dataset: &Dataset,
    set: &ModelSet,
) -> Result<(), String> {
    let observations = dataset.observations();
    let rows = observations.nrows();
    let stride = (rows / POLICY_OBSERVATIONS).max(1);
    let bounds = &set.manifest.action_bounds;
    for row in (0..rows).step_by(stride).take(POLICY_OBSERVATIONS) {
        let observation: Vec<f32> = observations.row(row).to_vec();
        let action = policy
            .act(&observation)
            .map_err(|error| format!("policy on stored step {row}: {error}"))?;
        for (index, &value) in action.iter().enumerate() {
            let (low, high) = (bounds.low[index], bounds.high[index]);
            if !value.is_finite() {
                return Err(format!(
                    "policy on stored step {row}: action[{index}] = {value}, expected a finite \
                     number"
                ));
            }
            if value < low - BOUNDS_TOLERANCE || value > high + BOUNDS_TOLERANCE {
                return Err(format!(
                    "policy on stored step {row}: action[{index}] = {value} is outside the \
                     action bounds [{low}, {high}]"
                ));
            }
        }
    }
    Ok(())
}

/// Embeds `segments` with the set's encoder, when it has one, and checks that every
/// embedding value is finite.
fn check_encoder_on_data(
    runtime: &Runtime,
    set: &ModelSet,
    dataset: &Dataset,
    segments: &[DatasetSegment],
) -> Result<(), String> {
    let Some(encoder) = &set.manifest.networks.encoder else {
        return Ok(());
    };
    let Some(first) = segments.first() else {
        return Ok(());
    };
    let mut model = runtime
        .load_model(&set.path.join(&encoder.file), &encoder_signature())
        .map_err(|error| format!("encoder {}: {error}", encoder.file))?;
    let steps = first.length;
    let observations = dataset.observations();
    let mut states = Array3::<f32>::zeros((segments.len(), steps, observations.ncols()));
    // Timesteps count from 0 in every segment, which stays within any encoder's time
    // embedding table; the check is for finite values, not for the exact embedding.
    let mut timesteps = Array2::<i64>::zeros((segments.len(), steps));
    for (index, segment) in segments.iter().enumerate() {
        let start = dataset.episodes()[segment.episode].start + segment.start;
        states
            .index_axis_mut(Axis(0), index)
            .assign(&observations.slice_axis(Axis(0), Slice::from(start..start + steps)));
        for (offset, timestep) in timesteps.row_mut(index).iter_mut().enumerate() {
            *timestep = offset as i64;
        }
    }
    let outputs = model
        .run_mixed(&[
            InputArray::F32(states.view().into_dyn()),
            InputArray::I64(timesteps.view().into_dyn()),
        ])
        .map_err(|error| format!("encoder on stored segments: {error}"))?;
    let embeddings = &outputs[0];
    if embeddings.shape().first() != Some(&segments.len()) {
        return Err(format!(
            "encoder output has shape {:?}, expected {} rows, one per segment",
            embeddings.shape(),
            segments.len()
        ));
    }
    if let Some(value) = embeddings.iter().find(|value| !value.is_finite()) {
        return Err(format!(
            "encoder output on stored segments contains {value}, expected finite numbers"
        ));
    }
    Ok(())
}

/// Runs the set's reward ensemble on `pairs`, checks that every return is finite, and
/// returns the fraction of `answers` (parallel to `pairs`, clear answers only) that the
/// ensemble's mean return predicts; a tie counts half. NaN when `answers` is empty.
fn measure_reward_accuracy(
    runtime: &Runtime,
    set: &ModelSet,
    dataset: &Dataset,
    pairs: &[SegmentPair],
    answers: &[LabelledPair],
) -> Result<f32, String> {
    let reward = set
        .manifest
        .networks
        .reward
        .as_ref()
        .ok_or_else(|| format!("set {} has no reward model", set.version))?;
    let mut scorer = OnnxRewardScorer::load(runtime, &set.path.join(&reward.file), dataset)
        .map_err(|error| error.to_string())?;
    let returns = scorer
        .pair_returns(pairs)
        .map_err(|error| error.to_string())?;
    for (pair, members) in pairs.iter().zip(&returns) {
        if let Some(value) = members.iter().flatten().find(|value| !value.is_finite()) {
            return Err(format!(
                "return {value} on pair {pair}, expected a finite number"
            ));
        }
    }
    if answers.is_empty() {
        return Ok(f32::NAN);
    }
    let mut correct = 0.0;
    for (entry, members) in answers.iter().zip(&returns) {
        let count = members.len() as f64;
        let left: f64 = members.iter().map(|m| m[0]).sum::<f64>() / count;
        let right: f64 = members.iter().map(|m| m[1]).sum::<f64>() / count;
        let predicted_left = left > right;
        correct += if left == right {
            0.5
        } else if predicted_left == (entry.answer == Answer::Left) {
            1.0
        } else {
            0.0
        };
    }
    Ok((correct / answers.len() as f64) as f32)
}

//! What a training job reads from the segment store: one dataset's episodes as a
//! [`Dataset`] and its answered queries as a preference buffer.

use std::collections::HashMap;

use ndarray::{Array1, Array2, Array4, Axis, Slice, concatenate};
use sha2::{Digest, Sha256};

use super::error::TrainError;
use crate::answer::Answer;
use crate::dataset::{Dataset, DatasetArrays, EpisodeEnd};
use crate::select::{DatasetSegment, LabelledPair, SegmentPair};
use crate::store::{DatasetRecord, EpisodeId, SegmentRef, Store};

/// Numbers of answers of each kind in a buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferCounts {
    /// Left or right answers, which train the reward model and the encoder.
    pub clear: usize,
    /// "Can't tell" answers, which train the encoder's ambiguity loss only.
    pub cant_tell: usize,
    /// Skipped queries, which train nothing and are left out of the buffer.
    pub skip: usize,
}

impl BufferCounts {
    /// Counts the answers of `buffer`.
    pub fn of(buffer: &[LabelledPair]) -> Self {
        let mut counts = Self::default();
        for entry in buffer {
            match entry.answer {
                Answer::Left | Answer::Right => counts.clear += 1,
                Answer::CantTell => counts.cant_tell += 1,
                Answer::Skip => counts.skip += 1,
            }
        }
        counts
    }
}

/// The inputs of a training job.
#[derive(Clone, Debug)]
pub struct TrainingInputs {
    /// The stored dataset.
    pub record: DatasetRecord,
    /// Its episodes in `episode_index` order, as one dataset.
    pub dataset: Dataset,
    /// Answered queries on the dataset in answer order, skipped ones left out.
    pub buffer: Vec<LabelledPair>,
    /// Answer counts, skipped queries included.
    pub counts: BufferCounts,
    /// Answered queries whose segments lie in another dataset of the store.
    pub other_dataset_answers: usize,
    /// Segment length of every answered query.
    pub segment_length: usize,
    /// SHA-256 of the buffer (see [`answers_sha256`]).
    pub answers_sha256: String,
}

/// Chooses the dataset of the store that `requested` names (a row id or a name), or the only
/// one when `requested` is `None`.
pub fn choose_dataset(store: &Store, requested: Option<&str>) -> Result<DatasetRecord, TrainError> {
    let datasets = store.datasets()?;
    let names = || {
        datasets
            .iter()
            .map(|record| format!("{} ({})", record.id.get(), record.meta.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match requested {
        None => match datasets.len() {
            0 => Err(TrainError::NoDataset {
                path: store.path().to_owned(),
            }),
            1 => Ok(datasets[0].clone()),
            count => Err(TrainError::AmbiguousDataset {
                path: store.path().to_owned(),
                count,
                names: names(),
            }),
        },
        Some(requested) => datasets
            .iter()
            .find(|record| {
                record.meta.name == requested || requested.parse::<i64>() == Ok(record.id.get())
            })
            .cloned()
            .ok_or_else(|| TrainError::UnknownDataset {
                path: store.path().to_owned(),
                requested: requested.to_owned(),
                names: if datasets.is_empty() {
                    "no dataset".to_owned()
                } else {
                    names()
                },
            }),
    }
}

/// Reads the episodes of `record` and its answered queries.
///
/// Episode boundaries keep their stored end kind, so a time-limit end stays a time-limit
/// end. The store keeps no per-step success flags, so the dataset has none.
pub fn load_inputs(store: &Store, record: DatasetRecord) -> Result<TrainingInputs, TrainError> {
    let episodes = store.episodes(record.id)?;
    let mut observations = Vec::with_capacity(episodes.len());
    let mut actions = Vec::with_capacity(episodes.len());
    let mut next_observations = Vec::with_capacity(episodes.len());
    let mut rewards = Vec::with_capacity(episodes.len());
    let mut terminals = Vec::new();
    let mut timeouts = Vec::new();
    let mut episode_ids = Vec::new();
    let mut index_of = HashMap::with_capacity(episodes.len());
    for (index, episode) in episodes.iter().enumerate() {
        index_of.insert(episode.id, index);
        let arrays = store.episode_arrays(episode.id)?;
        let steps = episode.step_count;
        observations.push(arrays.observations);
        actions.push(arrays.actions);
        next_observations.push(arrays.next_observations);
        rewards.push(arrays.rewards);
        for step in 0..steps {
            let last = step + 1 == steps;
            terminals.push(last && episode.end == EpisodeEnd::Terminated);
            timeouts.push(last && episode.end == EpisodeEnd::TimedOut);
            episode_ids.push(index as i64);
        }
    }
    let stack2 = |parts: &[Array2<f32>], width: usize| -> Array2<f32> {
        if parts.is_empty() {
            return Array2::zeros((0, width));
        }
        let views: Vec<_> = parts.iter().map(|part| part.view()).collect();
        concatenate(Axis(0), &views).expect("episode arrays share their width")
    };
    let reward_views: Vec<_> = rewards.iter().map(|part| part.view()).collect();
    let arrays = DatasetArrays {
        observations: stack2(&observations, record.observation_dim),
        actions: stack2(&actions, record.action_dim),
        next_observations: stack2(&next_observations, record.observation_dim),
        rewards: if reward_views.is_empty() {
            Array1::zeros(0)
        } else {
            concatenate(Axis(0), &reward_views).expect("reward vectors concatenate")
        },
        terminals: Array1::from(terminals),
        timeouts: Array1::from(timeouts),
        success: None,
        episode_ids: Some(Array1::from(episode_ids)),
        timesteps: None,
    };
    let source = format!("{} (dataset {})", store.path().display(), record.id.get());
    let dataset = Dataset::from_arrays(source, arrays)?;

    let mut buffer = Vec::new();
    let mut all = Vec::new();
    let mut other_dataset_answers = 0;
    for answered in store.answered_queries()? {
        let query = &answered.query.query;
        let (Some(left), Some(right)) = (
            dataset_segment(query.left, &index_of),
            dataset_segment(query.right, &index_of),
        ) else {
            other_dataset_answers += 1;
            continue;
        };
        all.push((answered.answer.answered_at_unix_secs, answered.query.id, {
            LabelledPair {
                pair: SegmentPair { left, right },
                answer: answered.answer.answer,
            }
        }));
    }
    // Answer order is the order in which the buffer grew; the query id breaks ties.
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let labelled: Vec<LabelledPair> = all.into_iter().map(|(_, _, entry)| entry).collect();
    let counts = BufferCounts::of(&labelled);
    buffer.extend(
        labelled
            .into_iter()
            .filter(|entry| entry.answer != Answer::Skip),
    );

    let mut lengths: Vec<usize> = buffer
        .iter()
        .flat_map(|entry| [entry.pair.left.length, entry.pair.right.length])
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    let segment_length = match lengths.as_slice() {
        [] => 0,
        [length] => *length,
        _ => {
            return Err(TrainError::SegmentLength {
                found: lengths,
                expected: String::new(),
            });
        }
    };
    let answers_sha256 = answers_sha256(&buffer);
    Ok(TrainingInputs {
        record,
        dataset,
        buffer,
        counts,
        other_dataset_answers,
        segment_length,
        answers_sha256,
    })
}

/// Returns the SHA-256 (lower-case hex) of the buffer's pairs and answers in order, one
/// line `episode start length episode start length answer` per entry.
pub fn answers_sha256(buffer: &[LabelledPair]) -> String {
    let mut hasher = Sha256::new();
    for entry in buffer {
        let (left, right) = (entry.pair.left, entry.pair.right);
        hasher.update(
            format!(
                "{} {} {} {} {} {} {}\n",
                left.episode,
                left.start,
                left.length,
                right.episode,
                right.start,
                right.length,
                entry.answer
            )
            .as_bytes(),
        );
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn dataset_segment(
    segment: SegmentRef,
    index_of: &HashMap<EpisodeId, usize>,
) -> Option<DatasetSegment> {
    Some(DatasetSegment {
        episode: *index_of.get(&segment.episode)?,
        start: segment.start,
        length: segment.length,
    })
}

/// Returns the observations and actions of the buffer's pairs as `[pairs, 2, T, dim]`
/// arrays, with T the segments' common length.
pub fn pair_arrays(dataset: &Dataset, buffer: &[LabelledPair]) -> (Array4<f32>, Array4<f32>) {
    let steps = buffer.first().map_or(0, |entry| entry.pair.left.length);
    let (observation_dim, action_dim) = (dataset.observation_dim(), dataset.action_dim());
    let mut observations = Array4::zeros((buffer.len(), 2, steps, observation_dim));
    let mut actions = Array4::zeros((buffer.len(), 2, steps, action_dim));
    let episodes = dataset.episodes();
    for (index, entry) in buffer.iter().enumerate() {
        for (side, segment) in [entry.pair.left, entry.pair.right].into_iter().enumerate() {
            let start = episodes[segment.episode].start + segment.start;
            let rows = Slice::from(start..start + segment.length);
            observations
                .index_axis_mut(Axis(0), index)
                .index_axis_mut(Axis(0), side)
                .assign(&dataset.observations().slice_axis(Axis(0), rows));
            actions
                .index_axis_mut(Axis(0), index)
                .index_axis_mut(Axis(0), side)
                .assign(&dataset.actions().slice_axis(Axis(0), rows));
        }
    }
    (observations, actions)
}

/// Returns the answers of the buffer in order.
pub fn buffer_answers(buffer: &[LabelledPair]) -> Vec<Answer> {
    buffer.iter().map(|entry| entry.answer).collect()
}

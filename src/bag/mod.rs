//! rosbag2 recordings in MCAP, rosbag2's default storage format: reading the recorder's
//! topics and importing them into the segment store.
//!
//! Messages are CDR, as rosbag2 stores them: a 4-byte encapsulation header (`00 01` little
//! endian, `00 00` big endian, then two option bytes) and the payload, decoded with
//! RustDDS's CDR deserializer into the crate's message types. Each message's log time is
//! its receive time, so [`import_mcap`] gives the episodes that the live recorder gives for
//! the same messages received at the same times (see [`crate::recorder`]).
//!
//! A file that cannot be used is an error that names the topic and what was expected: a
//! configured topic missing from the file, a topic of another type or encoding, a message
//! that does not decode. Messages that decode but fail the recorder's checks (wrong size,
//! NaN, stale) are counted and dropped as in live recording.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis, concatenate};
use ros2_client::dds::rustdds::serialization::{
    RepresentationIdentifier, deserialize_from_cdr_with_rep_id,
};
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::dataset::{Dataset, DatasetArrays, DatasetError, Episode, EpisodeEnd};
use crate::msg::{
    Float32MultiArray, JointState, Odometry, RosMessage, StringMessage, Transition, Twist,
};
use crate::recorder::{
    CounterSnapshot, Incoming, RecordedEpisode, RecorderConfig, RecorderError, TimedMessage,
    TopicPlan, replay,
};
use crate::segment::{Segments, ZeroSegmentLength};
use crate::store::{
    ContentHash, DatasetMeta, ImportOptions, ImportOutcome, ImportSummary, Store, StoreError,
    unix_secs_now,
};

/// An MCAP file that could not be read or imported. Nothing was written to the store.
#[derive(Debug, Error)]
pub enum BagError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a readable MCAP file: {detail}", path.display())]
    Mcap { path: PathBuf, detail: String },
    #[error(
        "{}: topic {topic} ({role}) is not in the file; topics in the file: {present}",
        path.display()
    )]
    MissingTopic {
        path: PathBuf,
        topic: String,
        role: String,
        present: String,
    },
    #[error("{}: topic {topic} has type {found}, expected {expected}", path.display())]
    TopicType {
        path: PathBuf,
        topic: String,
        found: String,
        expected: String,
    },
    #[error(
        "{}: message {sequence} on {topic} (log time {log_time_ns} ns) is not a valid CDR \
         {expected}: {detail}",
        path.display()
    )]
    Decode {
        path: PathBuf,
        topic: String,
        sequence: usize,
        log_time_ns: u64,
        expected: String,
        detail: String,
    },
    #[error(
        "{}: no steps recorded from topics {topics}: every message was dropped or no \
         episode started ({counts})",
        path.display()
    )]
    NothingRecorded {
        path: PathBuf,
        topics: String,
        counts: String,
    },
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    SegmentLength(#[from] ZeroSegmentLength),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BagError {
    /// Returns whether the error comes from invalid input (the file or the settings);
    /// failed reads and store failures return `false`.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            BagError::Read { .. } => false,
            BagError::Store(error) => error.is_invalid_input(),
            BagError::Recorder(RecorderError::Store(error)) => error.is_invalid_input(),
            BagError::Recorder(RecorderError::Config { .. }) => true,
            BagError::Recorder(_) => false,
            _ => true,
        }
    }
}

/// Decodes one CDR message with its encapsulation header.
pub fn decode_cdr<M: DeserializeOwned>(data: &[u8]) -> Result<M, String> {
    if data.len() < 4 {
        return Err(format!(
            "{} bytes, shorter than the 4-byte CDR encapsulation header",
            data.len()
        ));
    }
    let representation = match [data[0], data[1]] {
        [0x00, 0x01] => RepresentationIdentifier::CDR_LE,
        [0x00, 0x00] => RepresentationIdentifier::CDR_BE,
        other => {
            return Err(format!(
                "encapsulation {other:02x?}, expected plain CDR ([00, 01] little endian or \
                 [00, 00] big endian)"
            ));
        }
    };
    deserialize_from_cdr_with_rep_id::<M>(&data[4..], representation)
        .map(|(message, _)| message)
        .map_err(|error| error.to_string())
}

/// Encodes one message as little-endian CDR with its encapsulation header, as rosbag2
/// stores it.
pub fn encode_cdr<M: serde::Serialize>(message: &M) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0x00, 0x01, 0x00, 0x00];
    ros2_client::dds::rustdds::serialization::to_writer_with_rep_id(
        &mut bytes,
        message,
        RepresentationIdentifier::CDR_LE,
    )
    .map_err(|error| error.to_string())?;
    Ok(bytes)
}

fn decode_as(type_name: &str, data: &[u8]) -> Result<Incoming, String> {
    if type_name == JointState::type_name() {
        decode_cdr(data).map(Incoming::JointState)
    } else if type_name == Twist::type_name() {
        decode_cdr(data).map(Incoming::Twist)
    } else if type_name == Odometry::type_name() {
        decode_cdr(data).map(|odometry| Incoming::Odometry(Box::new(odometry)))
    } else if type_name == Float32MultiArray::type_name() {
        decode_cdr(data).map(Incoming::Float32MultiArray)
    } else if type_name == Transition::type_name() {
        decode_cdr(data).map(Incoming::Transition)
    } else if type_name == StringMessage::type_name() {
        decode_cdr(data).map(Incoming::EpisodeEvent)
    } else {
        Err(format!("no decoder for {type_name}"))
    }
}

fn role_name(plan: &[TopicPlan], index: usize) -> String {
    use crate::recorder::Role;
    match &plan[index].role {
        Role::Observation(..) => "an observation source".to_owned(),
        Role::Action(..) => "an action source".to_owned(),
        Role::Transition(_) => "the transition topic".to_owned(),
        Role::EpisodeEvents => "the episode topic".to_owned(),
    }
}

/// Reads the configured topics' messages from MCAP bytes, in log-time order (messages
/// with equal log times keep their file order).
pub fn read_messages(
    path: &Path,
    bytes: &[u8],
    plan: &[TopicPlan],
) -> Result<Vec<TimedMessage>, BagError> {
    let by_topic: BTreeMap<&str, usize> = plan
        .iter()
        .enumerate()
        .map(|(index, entry)| (entry.topic.as_str(), index))
        .collect();
    let mut present: BTreeMap<String, ()> = BTreeMap::new();
    let mut checked = vec![false; plan.len()];
    let mut counts = vec![0_usize; plan.len()];
    let mut messages = Vec::new();

    let mcap_error = |error: mcap::McapError| BagError::Mcap {
        path: path.to_owned(),
        detail: error.to_string(),
    };
    for message in mcap::io::MessageReader::new(Cursor::new(bytes)) {
        let message = message.map_err(mcap_error)?;
        let channel = &message.channel;
        present.insert(channel.topic.clone(), ());
        let Some(&index) = by_topic.get(channel.topic.as_str()) else {
            continue;
        };
        let expected = &plan[index].type_name;
        if !checked[index] {
            let found = channel
                .schema
                .as_ref()
                .map(|schema| schema.name.clone())
                .unwrap_or_default();
            if &found != expected || channel.message_encoding != "cdr" {
                return Err(BagError::TopicType {
                    path: path.to_owned(),
                    topic: channel.topic.clone(),
                    found: format!("{found:?} with encoding {:?}", channel.message_encoding),
                    expected: format!(
                        "{expected} in CDR (encoding \"cdr\") for {}",
                        role_name(plan, index)
                    ),
                });
            }
            checked[index] = true;
        }
        let incoming = decode_as(expected, &message.data).map_err(|detail| BagError::Decode {
            path: path.to_owned(),
            topic: channel.topic.clone(),
            sequence: counts[index],
            log_time_ns: message.log_time,
            expected: expected.clone(),
            detail,
        })?;
        counts[index] += 1;
        let log_time = i64::try_from(message.log_time).unwrap_or(i64::MAX);
        messages.push((index, incoming, log_time));
    }

    if let Some(index) = checked.iter().position(|&seen| !seen) {
        let names: Vec<&str> = present.keys().map(String::as_str).collect();
        return Err(BagError::MissingTopic {
            path: path.to_owned(),
            topic: plan[index].topic.clone(),
            role: role_name(plan, index),
            present: if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        });
    }
    messages.sort_by_key(|&(_, _, time)| time);
    Ok(messages)
}

/// A bag recorded in memory: its episodes, counts and content hash.
#[derive(Debug)]
pub struct RecordedBag {
    /// Episodes in order.
    pub episodes: Vec<RecordedEpisode>,
    /// Counts of the replay.
    pub counters: CounterSnapshot,
    /// SHA-256 of the file bytes followed by a zero byte and the settings as JSON, so that
    /// the same file recorded with other settings is another dataset.
    pub content_hash: ContentHash,
    /// The settings as JSON, stored as the dataset's sidecar.
    pub config_json: String,
}

/// Reads an MCAP file and records its messages with `config`.
pub fn record_mcap(path: &Path, config: &RecorderConfig) -> Result<RecordedBag, BagError> {
    let plan = config.plan()?;
    let bytes = fs::read(path).map_err(|source| BagError::Read {
        path: path.to_owned(),
        source,
    })?;
    let messages = read_messages(path, &bytes, &plan)?;
    let (episodes, counters) = replay(config, messages)?;

    let config_json = serde_json::to_string(config).map_err(|error| RecorderError::Config {
        field: "recorder configuration".into(),
        value: error.to_string(),
        expected: "settings that serialize to JSON".into(),
    })?;
    let mut identity = bytes;
    identity.push(0);
    identity.extend_from_slice(config_json.as_bytes());
    Ok(RecordedBag {
        episodes,
        counters,
        content_hash: ContentHash::of_bytes(&identity),
        config_json,
    })
}

/// Joins recorded episodes into a validated dataset (episode ids and end flags from the
/// episodes).
pub fn episodes_to_dataset(
    path: &Path,
    episodes: &[RecordedEpisode],
) -> Result<Dataset, DatasetError> {
    let view = |field: fn(&RecordedEpisode) -> ndarray::ArrayView2<'_, f32>| {
        episodes.iter().map(field).collect::<Vec<_>>()
    };
    let join = |parts: Vec<ndarray::ArrayView2<'_, f32>>| {
        concatenate(Axis(0), &parts).expect("episodes of one recording share dimensions")
    };
    let observations: Array2<f32> = join(view(|e| e.arrays.observations.view()));
    let actions: Array2<f32> = join(view(|e| e.arrays.actions.view()));
    let next_observations: Array2<f32> = join(view(|e| e.arrays.next_observations.view()));
    let rewards: Array1<f32> = episodes
        .iter()
        .flat_map(|e| e.arrays.rewards.iter().copied())
        .collect();
    let mut terminals = Vec::new();
    let mut timeouts = Vec::new();
    let mut episode_ids = Vec::new();
    let mut timesteps = Vec::new();
    for (id, episode) in episodes.iter().enumerate() {
        let steps = episode.steps();
        for step in 0..steps {
            let last = step + 1 == steps;
            terminals.push(last && episode.end == EpisodeEnd::Terminated);
            timeouts.push(last && episode.end == EpisodeEnd::TimedOut);
            episode_ids.push(id as i64);
            timesteps.push(step as i64);
        }
    }
    Dataset::from_arrays(
        path,
        DatasetArrays {
            observations,
            actions,
            next_observations,
            rewards,
            terminals: Array1::from(terminals),
            timeouts: Array1::from(timeouts),
            success: None,
            episode_ids: Some(Array1::from(episode_ids)),
            timesteps: Some(Array1::from(timesteps)),
        },
    )
}

/// Imports an MCAP file into the store in one transaction: the episodes that the recorder
/// with `config` records from the file's messages. A file and settings imported before
/// are found and not stored again.
pub fn import_mcap(
    store: &mut Store,
    path: &Path,
    config: &RecorderConfig,
    options: &ImportOptions,
) -> Result<(ImportOutcome, CounterSnapshot), BagError> {
    if options.segment_length == 0 {
        return Err(ZeroSegmentLength.into());
    }
    let recorded = record_mcap(path, config)?;
    if let Some(existing) = store.dataset_by_hash(&recorded.content_hash)? {
        let summary = summarize(store, existing, options.segment_length)?;
        return Ok((ImportOutcome::AlreadyImported(summary), recorded.counters));
    }
    if recorded.episodes.is_empty() {
        return Err(BagError::NothingRecorded {
            path: path.to_owned(),
            topics: config
                .plan()?
                .iter()
                .map(|entry| entry.topic.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            counts: serde_json::to_string(&recorded.counters.topics).unwrap_or_default(),
        });
    }
    let dataset = episodes_to_dataset(path, &recorded.episodes)?;
    let name = options.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| config.dataset_name.clone())
    });
    let meta = DatasetMeta {
        name,
        source_path: path.to_owned(),
        content_hash: recorded.content_hash,
        sidecar_json: Some(recorded.config_json),
        imported_at_unix_secs: unix_secs_now(),
    };
    let id = store.insert_dataset(&meta, &dataset)?;
    tracing::info!(
        path = %path.display(),
        dataset = id.get(),
        episodes = dataset.episodes().len(),
        steps = dataset.step_count(),
        "imported MCAP recording"
    );
    let summary = summarize(store, store.dataset(id)?, options.segment_length)?;
    Ok((ImportOutcome::Imported(summary), recorded.counters))
}

fn summarize(
    store: &Store,
    dataset: crate::store::DatasetRecord,
    segment_length: usize,
) -> Result<ImportSummary, BagError> {
    let episodes: Vec<Episode> = store
        .episodes(dataset.id)?
        .iter()
        .map(|record| Episode {
            start: record.first_step,
            len: record.step_count,
            end: record.end,
        })
        .collect();
    let segments = Segments::enumerate(&episodes, segment_length)?;
    Ok(ImportSummary {
        episodes: episodes.len(),
        steps: episodes.iter().map(|episode| episode.len).sum(),
        segment_length,
        segments: segments.len(),
        short_episodes: segments.short_episodes(),
        dataset,
    })
}

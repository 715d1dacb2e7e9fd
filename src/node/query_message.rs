//! `clarify_msgs/PreferenceQuery` messages built from stored queries, with the step data of
//! both segments.

use ndarray::{Array2, Axis, Slice};

use crate::msg::{PreferenceQuery, Time};
use crate::recorder::{RecorderConfig, Source};
use crate::store::{Query, SegmentRef, Store, StoreError};

/// Channel names and step period of the node's recordings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelInfo {
    /// One name per observation channel, or empty.
    pub observation_names: Vec<String>,
    /// One name per action channel, or empty.
    pub action_names: Vec<String>,
    /// Seconds between two recorded steps, or 0 when unknown.
    pub step_period_secs: f32,
}

impl ChannelInfo {
    /// Derives the channel names from the recorder's sources: `joint/position` for joint
    /// states, `topic/linear.x` for twists, `topic/position.x` for odometry and `topic[i]` for
    /// arrays. A Transition source has no names and an unknown step period, because its
    /// steps come at the publisher's rate.
    pub fn of_recorder(config: &RecorderConfig) -> Self {
        let names =
            |sources: &[Source]| -> Vec<String> { sources.iter().flat_map(source_names).collect() };
        Self {
            observation_names: names(&config.observation),
            action_names: names(&config.action),
            step_period_secs: match config.transition {
                Some(_) => 0.0,
                None => (1.0 / config.control_rate_hz) as f32,
            },
        }
    }
}

fn source_names(source: &Source) -> Vec<String> {
    const TWIST: [&str; 6] = [
        "linear.x",
        "linear.y",
        "linear.z",
        "angular.x",
        "angular.y",
        "angular.z",
    ];
    const ODOMETRY: [&str; 13] = [
        "position.x",
        "position.y",
        "position.z",
        "orientation.x",
        "orientation.y",
        "orientation.z",
        "orientation.w",
        "linear.x",
        "linear.y",
        "linear.z",
        "angular.x",
        "angular.y",
        "angular.z",
    ];
    match source {
        Source::JointState {
            position,
            velocity,
            effort,
            ..
        } => [
            (position, "position"),
            (velocity, "velocity"),
            (effort, "effort"),
        ]
        .iter()
        .flat_map(|(joints, field)| joints.iter().map(move |joint| format!("{joint}/{field}")))
        .collect(),
        Source::Twist { topic } => TWIST.iter().map(|name| format!("{topic}/{name}")).collect(),
        Source::Odometry { topic } => ODOMETRY
            .iter()
            .map(|name| format!("{topic}/{name}"))
            .collect(),
        Source::Float32MultiArray { topic, size } => (0..*size)
            .map(|index| format!("{topic}[{index}]"))
            .collect(),
    }
}

/// Builds the message of a stored query.
///
/// `channels` supplies the step period when the query's dataset is a live recording (its
/// source path starts with `ros2:`), and the names when their counts also match the
/// dataset's dimensions. Other datasets get no names and a step period of 0 (unknown).
pub fn query_message(
    store: &Store,
    query: &Query,
    channels: &ChannelInfo,
) -> Result<PreferenceQuery, StoreError> {
    let episode = store.episode(query.query.left.episode)?;
    let dataset = store.dataset(episode.dataset)?;
    let (left_observations, left_actions) = segment_steps(store, query.query.left)?;
    let (right_observations, right_actions) = segment_steps(store, query.query.right)?;

    let recorded = dataset
        .meta
        .source_path
        .to_string_lossy()
        .starts_with("ros2:");
    let named = recorded
        && channels.observation_names.len() == dataset.observation_dim
        && channels.action_names.len() == dataset.action_dim;
    let (observation_names, action_names) = if named {
        (
            channels.observation_names.clone(),
            channels.action_names.clone(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let step_period_sec = if recorded {
        channels.step_period_secs
    } else {
        0.0
    };

    Ok(PreferenceQuery {
        stamp: Time::from_unix_secs(query.query.created_at_unix_secs),
        query_id: query.id.get(),
        left: query.query.left.into(),
        right: query.query.right.into(),
        observation_dim: u32::try_from(dataset.observation_dim).unwrap_or(u32::MAX),
        action_dim: u32::try_from(dataset.action_dim).unwrap_or(u32::MAX),
        observation_names,
        action_names,
        step_period_sec,
        left_observations,
        left_actions,
        right_observations,
        right_actions,
        selector: query.query.selector.clone(),
        encoder_version: query.query.encoder_version.clone().unwrap_or_default(),
        expires_at: query
            .query
            .expires_at_unix_secs
            .map(Time::from_unix_secs)
            .unwrap_or_default(),
    })
}

/// Reads a segment's observation and action rows, row-major.
fn segment_steps(store: &Store, segment: SegmentRef) -> Result<(Vec<f32>, Vec<f32>), StoreError> {
    let arrays = store.episode_arrays(segment.episode)?;
    let rows = |array: &Array2<f32>| -> Vec<f32> {
        // `insert_query` checked that the segment lies inside its episode.
        array
            .slice_axis(
                Axis(0),
                Slice::from(segment.start..segment.start + segment.length),
            )
            .iter()
            .copied()
            .collect()
    };
    Ok((rows(&arrays.observations), rows(&arrays.actions)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_source_order() {
        let config = RecorderConfig {
            control_rate_hz: 20.0,
            observation: vec![
                Source::JointState {
                    topic: "joint_states".to_owned(),
                    position: vec!["elbow".to_owned(), "wrist".to_owned()],
                    velocity: vec!["elbow".to_owned()],
                    effort: Vec::new(),
                },
                Source::Float32MultiArray {
                    topic: "force".to_owned(),
                    size: 2,
                },
            ],
            action: vec![Source::Twist {
                topic: "cmd_vel".to_owned(),
            }],
            ..RecorderConfig::default()
        };

        let channels = ChannelInfo::of_recorder(&config);

        assert_eq!(
            channels.observation_names,
            [
                "elbow/position",
                "wrist/position",
                "elbow/velocity",
                "force[0]",
                "force[1]"
            ]
        );
        assert_eq!(channels.action_names.len(), 6);
        assert_eq!(channels.action_names[3], "cmd_vel/angular.x");
        assert_eq!(channels.step_period_secs, 0.05);
    }
}

//! Settings of the recorder: which topics give the observation and the action, the
//! control rate, staleness, episode boundaries and queue sizes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::RecorderError;
use crate::media::CameraSource;
use crate::msg::{
    Float32MultiArray, JointState, Odometry, RosMessage, StringMessage, Transition, Twist,
};
use crate::transport::QosConfig;

/// One topic that contributes values to the observation or the action vector.
///
/// Values of several sources are concatenated in the order the sources are listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// `sensor_msgs/msg/JointState`, mapped by joint name: the configured joints' positions,
    /// then velocities, then efforts. Any list may be empty. A message must name every
    /// configured joint and carry the arrays the configuration uses; order in the message
    /// does not matter.
    JointState {
        /// Topic name.
        topic: String,
        /// Joints whose position to take, in vector order.
        #[serde(default)]
        position: Vec<String>,
        /// Joints whose velocity to take, in vector order.
        #[serde(default)]
        velocity: Vec<String>,
        /// Joints whose effort to take, in vector order.
        #[serde(default)]
        effort: Vec<String>,
    },
    /// `geometry_msgs/msg/Twist`: 6 values, linear x, y, z then angular x, y, z.
    Twist {
        /// Topic name.
        topic: String,
    },
    /// `nav_msgs/msg/Odometry`: 13 values, position x, y, z, orientation x, y, z, w,
    /// linear velocity x, y, z, angular velocity x, y, z.
    Odometry {
        /// Topic name.
        topic: String,
    },
    /// `std_msgs/msg/Float32MultiArray`: `data` as it is, which must hold `size` values.
    Float32MultiArray {
        /// Topic name.
        topic: String,
        /// Number of values in `data`.
        size: usize,
    },
}

impl Source {
    /// Returns the topic name.
    pub fn topic(&self) -> &str {
        match self {
            Source::JointState { topic, .. }
            | Source::Twist { topic }
            | Source::Odometry { topic }
            | Source::Float32MultiArray { topic, .. } => topic,
        }
    }

    /// Returns the number of values the source contributes.
    pub fn size(&self) -> usize {
        match self {
            Source::JointState {
                position,
                velocity,
                effort,
                ..
            } => position.len() + velocity.len() + effort.len(),
            Source::Twist { .. } => 6,
            Source::Odometry { .. } => 13,
            Source::Float32MultiArray { size, .. } => *size,
        }
    }

    /// Returns the ROS type name of the topic, for example `sensor_msgs/msg/JointState`.
    pub fn type_name(&self) -> String {
        match self {
            Source::JointState { .. } => JointState::type_name(),
            Source::Twist { .. } => Twist::type_name(),
            Source::Odometry { .. } => Odometry::type_name(),
            Source::Float32MultiArray { .. } => Float32MultiArray::type_name(),
        }
    }
}

/// A `clarify_msgs/msg/Transition` topic that carries whole steps: observation, action,
/// reward and episode ends. Each valid message is one step; there is no resampling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionSource {
    /// Topic name.
    pub topic: String,
    /// Length of `observation` in every message.
    pub observation_size: usize,
    /// Length of `action` in every message.
    pub action_size: usize,
}

/// Where episodes begin and end when the sources are sampled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpisodeConfig {
    /// A `std_msgs/msg/String` topic of episode events: `start`, `task_end` (the task
    /// ended) or `time_limit` (the robot's time limit cut the episode). With no topic,
    /// recording is continuous and episodes end only by `max_steps` or an interruption.
    pub topic: Option<String>,
    /// The recorder's own time limit in steps: an episode that reaches it ends as a time
    /// limit. `None` for no limit.
    pub max_steps: Option<usize>,
}

/// Settings of the recorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// Dataset name recorded in the store.
    pub dataset_name: String,
    /// Sampling rate of the sources in Hz (the robot's control rate).
    pub control_rate_hz: f64,
    /// Largest accepted age of a message in seconds, by its header stamp when it has one,
    /// else by its receive time. Older messages are dropped on arrival, and a tick whose
    /// latest value of a source is older than this records no step.
    pub max_age_secs: f64,
    /// Sources of the observation vector, concatenated in order.
    pub observation: Vec<Source>,
    /// Sources of the action vector, concatenated in order.
    pub action: Vec<Source>,
    /// A Transition topic instead of `observation` and `action`.
    pub transition: Option<TransitionSource>,
    /// Episode boundaries.
    pub episode: EpisodeConfig,
    /// A camera topic whose images are stored with the steps, at most one per step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraSource>,
    /// QoS of the subscriptions.
    pub qos: QosConfig,
    /// Capacity of the queue between the subscriptions and the recorder, in messages.
    pub inbox_capacity: usize,
    /// Capacity of the queue between the recorder and the store writer, in episodes.
    pub writer_capacity: usize,
    /// At most one log line per drop reason and topic in this many seconds.
    pub log_interval_secs: f64,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            dataset_name: "recording".to_owned(),
            control_rate_hz: 10.0,
            max_age_secs: 0.5,
            observation: Vec::new(),
            action: Vec::new(),
            transition: None,
            episode: EpisodeConfig::default(),
            camera: None,
            qos: QosConfig {
                depth: 1000,
                ..QosConfig::default()
            },
            inbox_capacity: 4096,
            writer_capacity: 64,
            log_interval_secs: 10.0,
        }
    }
}

/// What a topic contributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Part of the observation vector: the source, and the offset of its values.
    Observation(Source, usize),
    /// Part of the action vector: the source, and the offset of its values.
    Action(Source, usize),
    /// Whole steps.
    Transition(TransitionSource),
    /// Episode events.
    EpisodeEvents,
}

/// One subscribed topic of a checked configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicPlan {
    /// Topic name as configured.
    pub topic: String,
    /// ROS type name of the topic.
    pub type_name: String,
    /// What the topic contributes.
    pub role: Role,
}

impl RecorderConfig {
    /// Checks the settings and returns the subscribed topics in a fixed order: observation
    /// sources, action sources, the Transition topic, the episode topic. Topic indexes
    /// elsewhere refer to this order.
    pub fn plan(&self) -> Result<Vec<TopicPlan>, RecorderError> {
        let invalid = |field: &str, value: String, expected: &str| RecorderError::Config {
            field: field.to_owned(),
            value,
            expected: expected.to_owned(),
        };
        if !(self.control_rate_hz.is_finite()
            && self.control_rate_hz > 0.0
            && self.control_rate_hz <= 1e6)
        {
            return Err(invalid(
                "control_rate_hz",
                self.control_rate_hz.to_string(),
                "a rate in Hz above 0 and at most 1e6",
            ));
        }
        if !(self.max_age_secs.is_finite() && self.max_age_secs > 0.0) {
            return Err(invalid(
                "max_age_secs",
                self.max_age_secs.to_string(),
                "a positive number of seconds",
            ));
        }
        if !(self.log_interval_secs.is_finite() && self.log_interval_secs >= 0.0) {
            return Err(invalid(
                "log_interval_secs",
                self.log_interval_secs.to_string(),
                "a number of seconds ≥ 0",
            ));
        }
        for (field, value) in [
            ("inbox_capacity", self.inbox_capacity),
            ("writer_capacity", self.writer_capacity),
        ] {
            if value == 0 {
                return Err(invalid(field, "0".into(), "at least 1"));
            }
        }
        if self.episode.max_steps == Some(0) {
            return Err(invalid(
                "episode.max_steps",
                "0".into(),
                "at least 1, or absent",
            ));
        }
        self.qos
            .validate()
            .map_err(|error| invalid("qos", format!("{:?}", self.qos), &error.to_string()))?;

        let mut plan = Vec::new();
        match &self.transition {
            Some(transition) => {
                if !self.observation.is_empty() || !self.action.is_empty() {
                    return Err(invalid(
                        "transition",
                        transition.topic.clone(),
                        "either a transition topic or observation and action sources, not both",
                    ));
                }
                if self.episode != EpisodeConfig::default() {
                    return Err(invalid(
                        "episode",
                        format!("{:?}", self.episode),
                        "no episode settings with a transition topic: Transition messages \
                         carry their own episode ends",
                    ));
                }
                for (field, value) in [
                    ("transition.observation_size", transition.observation_size),
                    ("transition.action_size", transition.action_size),
                ] {
                    if value == 0 {
                        return Err(invalid(field, "0".into(), "at least 1"));
                    }
                }
                plan.push(TopicPlan {
                    topic: transition.topic.clone(),
                    type_name: Transition::type_name(),
                    role: Role::Transition(transition.clone()),
                });
            }
            None => {
                for (field, sources) in
                    [("observation", &self.observation), ("action", &self.action)]
                {
                    if sources.is_empty() {
                        return Err(invalid(
                            field,
                            "[]".into(),
                            "at least one source (or a transition topic instead)",
                        ));
                    }
                    let mut offset = 0;
                    for (index, source) in sources.iter().enumerate() {
                        check_source(&format!("{field}[{index}]"), source)?;
                        let role = if field == "observation" {
                            Role::Observation(source.clone(), offset)
                        } else {
                            Role::Action(source.clone(), offset)
                        };
                        offset += source.size();
                        plan.push(TopicPlan {
                            topic: source.topic().to_owned(),
                            type_name: source.type_name(),
                            role,
                        });
                    }
                }
                if let Some(topic) = &self.episode.topic {
                    plan.push(TopicPlan {
                        topic: topic.clone(),
                        type_name: StringMessage::type_name(),
                        role: Role::EpisodeEvents,
                    });
                }
            }
        }

        if let Some(camera) = &self.camera {
            camera
                .check()
                .map_err(|(field, value, expected)| invalid(field, value, expected))?;
            if plan.iter().any(|entry| entry.topic == camera.topic) {
                return Err(invalid(
                    "camera.topic",
                    camera.topic.clone(),
                    "a topic that no observation, action, transition or episode source uses",
                ));
            }
        }

        let mut seen = BTreeSet::new();
        for entry in &plan {
            if entry.topic.is_empty() {
                return Err(invalid("topic", String::new(), "a ROS topic name"));
            }
            if !seen.insert(entry.topic.as_str()) {
                return Err(invalid(
                    "topic",
                    entry.topic.clone(),
                    "each topic once: one subscription per topic",
                ));
            }
        }
        Ok(plan)
    }

    /// Returns the observation dimension.
    pub fn observation_dim(&self) -> usize {
        match &self.transition {
            Some(transition) => transition.observation_size,
            None => self.observation.iter().map(Source::size).sum(),
        }
    }

    /// Returns the action dimension.
    pub fn action_dim(&self) -> usize {
        match &self.transition {
            Some(transition) => transition.action_size,
            None => self.action.iter().map(Source::size).sum(),
        }
    }

    /// Returns the tick period in nanoseconds.
    pub fn period_ns(&self) -> i64 {
        ((1e9 / self.control_rate_hz).round() as i64).max(1)
    }
}

fn check_source(field: &str, source: &Source) -> Result<(), RecorderError> {
    let invalid = |value: String, expected: &str| RecorderError::Config {
        field: field.to_owned(),
        value,
        expected: expected.to_owned(),
    };
    match source {
        Source::JointState {
            position,
            velocity,
            effort,
            ..
        } => {
            if source.size() == 0 {
                return Err(invalid(
                    "no joints".into(),
                    "at least one joint in position, velocity or effort",
                ));
            }
            for (list, names) in [
                ("position", position),
                ("velocity", velocity),
                ("effort", effort),
            ] {
                let mut seen = BTreeSet::new();
                for name in names {
                    if !seen.insert(name) {
                        return Err(invalid(
                            format!("{list}: {name:?} twice"),
                            "each joint at most once per list",
                        ));
                    }
                }
            }
        }
        Source::Float32MultiArray { size, .. } if *size == 0 => {
            return Err(invalid("size 0".into(), "a size of at least 1"));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_config_parses_and_plans_topics() -> Result<(), Box<dyn std::error::Error>> {
        let config: RecorderConfig = serde_json::from_str(
            r#"{
                "control_rate_hz": 20,
                "observation": [
                    {"joint_state": {"topic": "/joint_states", "position": ["a", "b"], "velocity": ["b"]}},
                    {"odometry": {"topic": "/odom"}}
                ],
                "action": [{"twist": {"topic": "/cmd_vel"}}],
                "episode": {"topic": "/episode", "max_steps": 100}
            }"#,
        )?;
        let plan = config.plan()?;

        let topics: Vec<&str> = plan.iter().map(|entry| entry.topic.as_str()).collect();
        assert_eq!(topics, ["/joint_states", "/odom", "/cmd_vel", "/episode"]);
        assert_eq!(config.observation_dim(), 16);
        assert_eq!(config.action_dim(), 6);
        assert_eq!(config.period_ns(), 50_000_000);
        assert!(matches!(plan[1].role, Role::Observation(_, 3)));
        Ok(())
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let base = RecorderConfig {
            observation: vec![Source::Twist { topic: "/a".into() }],
            action: vec![Source::Twist { topic: "/b".into() }],
            ..RecorderConfig::default()
        };
        let cases = [
            (
                "control_rate_hz",
                RecorderConfig {
                    control_rate_hz: 0.0,
                    ..base.clone()
                },
            ),
            (
                "action",
                RecorderConfig {
                    action: vec![],
                    ..base.clone()
                },
            ),
            (
                "topic",
                RecorderConfig {
                    action: vec![Source::Twist { topic: "/a".into() }],
                    ..base.clone()
                },
            ),
            (
                "observation[0]",
                RecorderConfig {
                    observation: vec![Source::JointState {
                        topic: "/j".into(),
                        position: vec!["x".into(), "x".into()],
                        velocity: vec![],
                        effort: vec![],
                    }],
                    ..base.clone()
                },
            ),
            (
                "episode",
                RecorderConfig {
                    observation: vec![],
                    action: vec![],
                    transition: Some(TransitionSource {
                        topic: "/t".into(),
                        observation_size: 2,
                        action_size: 1,
                    }),
                    episode: EpisodeConfig {
                        topic: Some("/e".into()),
                        max_steps: None,
                    },
                    ..base.clone()
                },
            ),
        ];
        for (field, config) in cases {
            let error = config.plan().unwrap_err().to_string();
            assert!(error.contains(field), "{field}: {error}");
        }
        assert!(base.plan().is_ok());
    }
}

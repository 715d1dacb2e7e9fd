//! Parameters of `clarify node`, read from the `ros__parameters` of its section in a ROS 2
//! parameter file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::NodeError;
use super::query_message::ChannelInfo;
use crate::console::ConsoleSettings;
use crate::deploy::{DeployConfig, DeployTopics};
use crate::infer::InferConfig;
use crate::learn::encoder::{EncoderConfig, TimeEmbedding};
use crate::media::{ClipSettings, MediaError};
use crate::recorder::{RecorderConfig, RecorderError};
use crate::registry::Expectation;
use crate::segment::DEFAULT_SEGMENT_LENGTH;
use crate::select::SelectConfig;
use crate::transport::QosConfig;

/// Button indices of a gamepad (`sensor_msgs/Joy`) that answer the oldest open query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JoyButtons {
    /// Joy topic; empty for none.
    pub topic: String,
    /// Index in `Joy.buttons` of the "left is better" button.
    pub left: usize,
    /// Index of the "right is better" button.
    pub right: usize,
    /// Index of the "can't tell" button.
    pub cant_tell: usize,
    /// Index of the "skip" button.
    pub skip: usize,
    /// Operator name stored with gamepad answers.
    pub operator_id: String,
}

impl Default for JoyButtons {
    fn default() -> Self {
        Self {
            topic: String::new(),
            left: 4,
            right: 5,
            cant_tell: 0,
            skip: 1,
            operator_id: "gamepad".to_owned(),
        }
    }
}

/// Names of the node's topics and services. Relative names resolve against the node's
/// namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeTopics {
    /// `clarify_msgs/PreferenceQuery` publications.
    pub queries: String,
    /// `clarify_msgs/PreferenceAnswer` subscription.
    pub answers: String,
    /// `clarify_msgs/SubmitAnswer` service.
    pub submit_answer: String,
    /// `diagnostic_msgs/DiagnosticArray` publications.
    pub diagnostics: String,
    /// `clarify_msgs/TrainingStatus` publications of the deployment part.
    pub training_status: String,
    /// `clarify_msgs/ModelUpdate` publications of the deployment part.
    pub model_update: String,
    /// `clarify_msgs/TriggerRetrain` service of the deployment part.
    pub trigger_retrain: String,
    /// `clarify_msgs/RollbackModel` service of the deployment part.
    pub rollback_model: String,
}

impl Default for NodeTopics {
    fn default() -> Self {
        Self {
            queries: "clarify/preference_query".to_owned(),
            answers: "clarify/preference_answer".to_owned(),
            submit_answer: "clarify/submit_answer".to_owned(),
            diagnostics: "/diagnostics".to_owned(),
            training_status: "clarify/training_status".to_owned(),
            model_update: "model_update".to_owned(),
            trigger_retrain: "clarify/trigger_retrain".to_owned(),
            rollback_model: "clarify/rollback_model".to_owned(),
        }
    }
}

/// Settings of retraining, passed to the deployment part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrainSettings {
    /// Model versions the registry keeps.
    pub keep: usize,
    /// Extra `clarify train` arguments (presets, step counts).
    pub train_args: Vec<String>,
    /// Start a training run after this many new answers; 0 turns automatic runs off.
    pub retrain_after_answers: u64,
    /// Niceness added to the training process, 0 to 19.
    pub nice: i32,
    /// Seconds after which a training run is killed and reported failed; 0 sets no limit.
    pub time_limit_secs: f64,
    /// Allowed drop of the held-out reward accuracy of a new model set, in [0, 1].
    pub accuracy_margin: f32,
}

impl Default for RetrainSettings {
    fn default() -> Self {
        Self {
            keep: 5,
            train_args: Vec::new(),
            retrain_after_answers: 0,
            nice: 10,
            time_limit_secs: crate::deploy::DEFAULT_TRAIN_TIME_LIMIT_SECS,
            accuracy_margin: 0.05,
        }
    }
}

/// Settings of the exported encoder that CLARIFY rounds run. They must match the
/// configuration that the model set's encoder was trained with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderSettings {
    /// Timesteps passed to the encoder (`true`, `random` or `none`).
    pub time_embedding: TimeEmbedding,
    /// Rows of the encoder's time-embedding table; every timestep must be below it.
    pub max_timestep: usize,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        let defaults = EncoderConfig::default();
        Self {
            time_embedding: defaults.time_embedding,
            max_timestep: defaults.max_timestep,
        }
    }
}

/// Settings of `clarify node`. Every field has a default, and unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Segment store (SQLite file), created when missing.
    pub store_path: PathBuf,
    /// Model registry folder.
    pub models_dir: PathBuf,
    /// Recorder settings: topics, control rate, episodes.
    pub recorder: RecorderConfig,
    /// Stored dataset whose segments the queries compare, by name or row id; empty for
    /// the recording of this run.
    pub select_dataset: String,
    /// Segment length H in steps.
    pub segment_length: usize,
    /// Queries per round M.
    pub queries_per_round: usize,
    /// Pool factor L: CLARIFY rounds draw M · L candidates.
    pub pool_factor: usize,
    /// Seconds after creation at which an unanswered query expires.
    pub query_lifetime_secs: f64,
    /// No new round is selected while this many queries are open.
    pub max_open_queries: usize,
    /// No round is selected before the selection dataset has this many episodes, so the
    /// first queries compare segments from a varied pool rather than from the first
    /// episodes only. 0 selects as soon as one segment exists.
    pub min_selection_episodes: usize,
    /// Seconds between two publications of the open queries.
    pub republish_period_secs: f64,
    /// Seconds between two diagnostics publications.
    pub diagnostics_period_secs: f64,
    /// Seed of the query selection; each round derives its own seed from it.
    pub seed: u64,
    /// Gamepad answers.
    pub joy: JoyButtons,
    /// Topic and service names.
    pub topics: NodeTopics,
    /// QoS of the query publications. Reliable and transient-local by default, so a late
    /// subscriber receives the open queries.
    pub query_qos: QosConfig,
    /// QoS of the answer subscription.
    pub answer_qos: QosConfig,
    /// Encoder settings of CLARIFY rounds.
    pub encoder: EncoderSettings,
    /// ONNX Runtime settings of the encoder and the reward model.
    pub infer: InferConfig,
    /// Retraining settings.
    pub retrain: RetrainSettings,
    /// Operator console (web page) settings.
    pub console: ConsoleSettings,
    /// Rendered clips of simulator datasets for the operator console.
    pub clips: ClipSettings,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            store_path: PathBuf::from("clarify.sqlite"),
            models_dir: PathBuf::from("models"),
            recorder: RecorderConfig::default(),
            select_dataset: String::new(),
            segment_length: DEFAULT_SEGMENT_LENGTH,
            queries_per_round: 10,
            pool_factor: crate::select::DEFAULT_POOL_FACTOR,
            query_lifetime_secs: 600.0,
            max_open_queries: 20,
            min_selection_episodes: 0,
            republish_period_secs: 5.0,
            diagnostics_period_secs: 1.0,
            seed: 0,
            joy: JoyButtons::default(),
            topics: NodeTopics::default(),
            query_qos: QosConfig::latched(100),
            answer_qos: QosConfig {
                depth: 100,
                ..QosConfig::default()
            },
            encoder: EncoderSettings::default(),
            infer: InferConfig::default(),
            retrain: RetrainSettings::default(),
            console: ConsoleSettings::default(),
            clips: ClipSettings::default(),
        }
    }
}

/// Returns the error for parameter `field` with the rejected `value`.
fn invalid(field: &str, value: String, expected: &str) -> Result<(), NodeError> {
    Err(NodeError::Config {
        field: field.to_owned(),
        value,
        expected: expected.to_owned(),
    })
}

impl NodeSettings {
    /// Checks the settings that serde cannot, naming the first invalid value and what is
    /// expected.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.validate_values()?;
        self.validate_names()?;
        self.validate_nested()
    }

    /// Checks paths, counts, periods and the retraining numbers.
    fn validate_values(&self) -> Result<(), NodeError> {
        for (field, path) in [
            ("store_path", &self.store_path),
            ("models_dir", &self.models_dir),
        ] {
            if path.as_os_str().is_empty() {
                return invalid(field, "\"\"".to_owned(), "a file or folder path");
            }
        }
        for (field, value) in [
            ("segment_length", self.segment_length),
            ("queries_per_round", self.queries_per_round),
            ("pool_factor", self.pool_factor),
            ("max_open_queries", self.max_open_queries),
            ("retrain.keep", self.retrain.keep),
            ("encoder.max_timestep", self.encoder.max_timestep),
        ] {
            if value == 0 {
                return invalid(field, "0".to_owned(), "at least 1");
            }
        }
        for (field, value) in [
            ("query_lifetime_secs", self.query_lifetime_secs),
            ("republish_period_secs", self.republish_period_secs),
            ("diagnostics_period_secs", self.diagnostics_period_secs),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return invalid(field, value.to_string(), "a positive number of seconds");
            }
        }
        let limit = self.retrain.time_limit_secs;
        if !(limit.is_finite() && limit >= 0.0) {
            return invalid(
                "retrain.time_limit_secs",
                limit.to_string(),
                "a number of seconds >= 0 (0: no limit)",
            );
        }
        let margin = self.retrain.accuracy_margin;
        if !(margin.is_finite() && (0.0..=1.0).contains(&margin)) {
            return invalid(
                "retrain.accuracy_margin",
                margin.to_string(),
                "a fraction in [0, 1]",
            );
        }
        if !(0..=19).contains(&self.retrain.nice) {
            return invalid(
                "retrain.nice",
                self.retrain.nice.to_string(),
                "a niceness from 0 to 19",
            );
        }
        Ok(())
    }

    /// Checks that the gamepad buttons are distinct and that no name is empty.
    fn validate_names(&self) -> Result<(), NodeError> {
        let buttons = [
            ("joy.left", self.joy.left),
            ("joy.right", self.joy.right),
            ("joy.cant_tell", self.joy.cant_tell),
            ("joy.skip", self.joy.skip),
        ];
        for (index, (field, button)) in buttons.iter().enumerate() {
            if let Some((other, _)) = buttons[..index].iter().find(|(_, b)| b == button) {
                return invalid(
                    field,
                    button.to_string(),
                    &format!("a button index different from {other}"),
                );
            }
        }
        let topics = &self.topics;
        for (field, name) in [
            ("topics.queries", &topics.queries),
            ("topics.answers", &topics.answers),
            ("topics.submit_answer", &topics.submit_answer),
            ("topics.diagnostics", &topics.diagnostics),
            ("topics.training_status", &topics.training_status),
            ("topics.model_update", &topics.model_update),
            ("topics.trigger_retrain", &topics.trigger_retrain),
            ("topics.rollback_model", &topics.rollback_model),
        ] {
            if name.is_empty() {
                return invalid(field, "\"\"".to_owned(), "a topic or service name");
            }
        }
        Ok(())
    }

    /// Checks the recorder, selector, QoS and ONNX Runtime settings.
    fn validate_nested(&self) -> Result<(), NodeError> {
        if let Err(MediaError::Config {
            field,
            value,
            expected,
        }) = self.clips.validate()
        {
            return Err(NodeError::Config {
                field,
                value,
                expected,
            });
        }
        self.recorder.plan().map_err(|error| match error {
            RecorderError::Config {
                field,
                value,
                expected,
            } => NodeError::Config {
                field: format!("recorder.{field}"),
                value,
                expected,
            },
            other => NodeError::Recorder(other),
        })?;
        self.select_config()
            .validate()
            .map_err(|error| NodeError::Config {
                field: error.field.to_owned(),
                value: error.value,
                expected: error.expected,
            })?;
        for (field, qos) in [
            ("query_qos", &self.query_qos),
            ("answer_qos", &self.answer_qos),
        ] {
            qos.validate().map_err(|error| NodeError::Config {
                field: field.to_owned(),
                value: format!("{qos:?}"),
                expected: error.to_string(),
            })?;
        }
        self.infer.validate().map_err(|error| NodeError::Config {
            field: "infer".to_owned(),
            value: format!("{:?}", self.infer),
            expected: error.to_string(),
        })?;
        if self.console.enabled {
            let token = self
                .console
                .resolve_token(std::env::var(crate::console::TOKEN_ENV).ok());
            self.console
                .validate(token.as_deref())
                .map_err(|error| NodeError::Config {
                    field: format!("console.{}", error.field),
                    value: error.value,
                    expected: error.expected,
                })?;
        }
        Ok(())
    }

    /// Returns the deployment settings: registry, store, retraining and topic names from
    /// these settings, `train_program` as the `clarify` binary, and the recorder's sizes,
    /// channel names and the segment length as what a model set must match.
    pub fn deploy_config(&self, train_program: PathBuf) -> DeployConfig {
        let mut config = DeployConfig::new(&self.models_dir, &self.store_path, train_program);
        config.keep = self.retrain.keep;
        config.train_args = self.retrain.train_args.clone();
        config.retrain_after_answers = self.retrain.retrain_after_answers;
        config.nice = self.retrain.nice;
        config.time_limit_secs = self.retrain.time_limit_secs;
        config.accuracy_margin = self.retrain.accuracy_margin;
        let robot = "the recorder settings".to_owned();
        let names = ChannelInfo::of_recorder(&self.recorder).observation_names;
        config.expectation = Expectation {
            observation_dim: Some((self.recorder.observation_dim(), robot.clone())),
            action_dim: Some((self.recorder.action_dim(), robot.clone())),
            segment_length: Some((self.segment_length, "segment_length".to_owned())),
            dataset_sha256: None,
            observation_names: (!names.is_empty()).then_some((names, robot)),
        };
        config.topics = DeployTopics {
            training_status: self.topics.training_status.clone(),
            model_update: self.topics.model_update.clone(),
            trigger_retrain: self.topics.trigger_retrain.clone(),
            rollback_model: self.topics.rollback_model.clone(),
        };
        config
    }

    /// Returns the selector settings: H, M and L from these settings, the rest defaults.
    pub fn select_config(&self) -> SelectConfig {
        SelectConfig {
            segment_length: self.segment_length,
            queries_per_round: self.queries_per_round,
            pool_factor: self.pool_factor,
            ..SelectConfig::default()
        }
    }

    /// Returns the encoder configuration that [`crate::learn::encoder::OnnxEncoder`] reads:
    /// the defaults with this node's time embedding and maximum timestep.
    pub fn encoder_config(&self) -> EncoderConfig {
        EncoderConfig {
            time_embedding: self.encoder.time_embedding,
            max_timestep: self.encoder.max_timestep,
            context_length: EncoderConfig::default()
                .context_length
                .min(self.encoder.max_timestep),
            ..EncoderConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the defaults with a Transition recorder, which the defaults lack.
    fn valid() -> NodeSettings {
        NodeSettings {
            recorder: RecorderConfig {
                transition: Some(crate::recorder::TransitionSource {
                    topic: "transition".to_owned(),
                    observation_size: 3,
                    action_size: 2,
                }),
                ..RecorderConfig::default()
            },
            ..NodeSettings::default()
        }
    }

    #[test]
    fn defaults_with_recorder_are_valid() {
        valid().validate().expect("settings validate");
    }

    #[test]
    fn defaults_without_recorder_sources_rejected() {
        let message = NodeSettings::default()
            .validate()
            .expect_err("no recorder sources")
            .to_string();
        assert!(message.contains("recorder"), "{message}");
    }

    #[test]
    fn invalid_values_named_in_errors() {
        let cases: Vec<(NodeSettings, &str)> = vec![
            (
                NodeSettings {
                    segment_length: 0,
                    ..valid()
                },
                "segment_length",
            ),
            (
                NodeSettings {
                    query_lifetime_secs: -1.0,
                    ..valid()
                },
                "query_lifetime_secs",
            ),
            (
                NodeSettings {
                    joy: JoyButtons {
                        skip: 4,
                        ..JoyButtons::default()
                    },
                    ..valid()
                },
                "joy.skip",
            ),
            (
                NodeSettings {
                    topics: NodeTopics {
                        answers: String::new(),
                        ..NodeTopics::default()
                    },
                    ..valid()
                },
                "topics.answers",
            ),
            (
                NodeSettings {
                    console: ConsoleSettings {
                        enabled: true,
                        bind: "0.0.0.0".to_owned(),
                        ..ConsoleSettings::default()
                    },
                    ..valid()
                },
                "console.token",
            ),
        ];
        for (settings, field) in cases {
            let message = settings.validate().expect_err(field).to_string();
            assert!(message.contains(field), "{message}");
        }
    }
}

//! Settings of the policy runner, read from the `ros__parameters` of its node.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::RunnerError;
use crate::infer::InferConfig;
use crate::transport::QosConfig;

/// Message type of the observation topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationType {
    /// std_msgs/Float32MultiArray whose `data` is the observation vector.
    #[default]
    Float32MultiArray,
    /// sensor_msgs/JointState mapped by joint name (`joint_names`, `joint_fields`).
    JointState,
}

/// A JointState array that contributes to the observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointField {
    Position,
    Velocity,
    Effort,
}

/// Settings of `clarify policy run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerConfig {
    /// Registry folder of the model sets.
    pub models_dir: PathBuf,
    /// Version to run; empty runs the registry's active version.
    pub model_version: String,
    /// Policy steps per second.
    pub control_rate_hz: f64,
    /// An observation older than this (seconds) is stale: the safe action is published.
    pub max_observation_age_s: f64,
    /// Action published on stale, missing, rejected or non-finite observations. Empty means
    /// zeros. Must lie within the model set's action bounds.
    pub safe_action: Vec<f32>,
    /// Whether one safe action is published when the runner becomes disabled.
    pub safe_action_on_disable: bool,
    pub observation_type: ObservationType,
    pub observation_topic: String,
    /// Joint names in observation order (JointState observations).
    pub joint_names: Vec<String>,
    /// JointState arrays that contribute (JointState observations). The observation holds the
    /// positions of all joints, then their velocities, then their efforts, as the recorder
    /// lays them out, whatever the order of this list.
    pub joint_fields: Vec<JointField>,
    /// Topic of the std_msgs/Float32MultiArray actions.
    pub action_topic: String,
    /// Name of the clarify_msgs/SetPolicyEnabled service.
    pub enable_service: String,
    /// Whether the service state starts as enabled.
    pub start_enabled: bool,
    /// sensor_msgs/Joy topic of the deadman button; empty for none. When set, the policy
    /// drives only while the button is held (and the service state is enabled).
    pub deadman_topic: String,
    /// Index of the deadman button in `Joy.buttons`.
    pub deadman_button: usize,
    /// A deadman reading older than this (seconds) counts as released.
    pub deadman_timeout_s: f64,
    /// clarify_msgs/ModelUpdate topic; empty to ignore model updates.
    pub model_update_topic: String,
    /// diagnostic_msgs/DiagnosticArray topic of the runner's state (running version,
    /// execution provider, enabled, action counts); empty publishes none.
    pub diagnostics_topic: String,
    /// Seconds between two diagnostics publications.
    pub diagnostics_period_s: f64,
    /// Node name that prefixes the diagnostics status; set from the command line, not
    /// read from the parameter file.
    #[serde(skip)]
    pub node_name: String,
    pub observation_qos: QosConfig,
    pub action_qos: QosConfig,
    pub infer: InferConfig,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            models_dir: PathBuf::from("models"),
            model_version: String::new(),
            control_rate_hz: 50.0,
            max_observation_age_s: 0.1,
            safe_action: Vec::new(),
            safe_action_on_disable: true,
            observation_type: ObservationType::Float32MultiArray,
            observation_topic: "observation".to_owned(),
            joint_names: Vec::new(),
            joint_fields: vec![JointField::Position, JointField::Velocity],
            action_topic: "action".to_owned(),
            enable_service: "set_policy_enabled".to_owned(),
            start_enabled: false,
            deadman_topic: String::new(),
            deadman_button: 0,
            deadman_timeout_s: 0.5,
            model_update_topic: "model_update".to_owned(),
            diagnostics_topic: "/diagnostics".to_owned(),
            diagnostics_period_s: 1.0,
            node_name: "clarify_policy".to_owned(),
            observation_qos: QosConfig {
                depth: 1,
                ..QosConfig::default()
            },
            action_qos: QosConfig::default(),
            infer: InferConfig::default(),
        }
    }
}

impl RunnerConfig {
    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<(), RunnerError> {
        let invalid = |field: &'static str, value: String, expected: &'static str| {
            Err(RunnerError::Config {
                field,
                value,
                expected,
            })
        };
        let rate = self.control_rate_hz;
        if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
            return invalid(
                "control_rate_hz",
                rate.to_string(),
                "a rate in (0, 10000] Hz",
            );
        }
        for (field, value) in [
            ("max_observation_age_s", self.max_observation_age_s),
            ("deadman_timeout_s", self.deadman_timeout_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return invalid(field, value.to_string(), "a positive number of seconds");
            }
        }
        if let Some(index) = self.safe_action.iter().position(|v| !v.is_finite()) {
            return invalid(
                "safe_action",
                format!("{:?} (entry {index})", self.safe_action),
                "finite numbers",
            );
        }
        if self.observation_type == ObservationType::JointState {
            if self.joint_names.is_empty() {
                return invalid(
                    "joint_names",
                    "[]".to_owned(),
                    "the joint names in observation order (observation_type is joint_state)",
                );
            }
            if self.joint_fields.is_empty() {
                return invalid(
                    "joint_fields",
                    "[]".to_owned(),
                    "one or more of position, velocity, effort",
                );
            }
        }
        for (field, topic, required) in [
            ("observation_topic", &self.observation_topic, true),
            ("action_topic", &self.action_topic, true),
            ("enable_service", &self.enable_service, true),
            ("deadman_topic", &self.deadman_topic, false),
            ("model_update_topic", &self.model_update_topic, false),
            ("diagnostics_topic", &self.diagnostics_topic, false),
        ] {
            if required && topic.is_empty() {
                return invalid(field, "\"\"".to_owned(), "a topic or service name");
            }
        }
        let period = self.diagnostics_period_s;
        if !(period.is_finite() && period > 0.0) {
            return invalid(
                "diagnostics_period_s",
                period.to_string(),
                "a positive number of seconds",
            );
        }
        self.infer.validate()?;
        self.observation_qos.validate()?;
        self.action_qos.validate()?;
        Ok(())
    }

    /// Time between policy steps.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.control_rate_hz)
    }

    /// Size of the observation that JointState mapping produces, or `None` for arrays.
    pub fn mapped_observation_dim(&self) -> Option<usize> {
        match self.observation_type {
            ObservationType::Float32MultiArray => None,
            ObservationType::JointState => self.observation_names().map(|names| names.len()),
        }
    }

    /// Returns the names of the observation entries (`joint.field`: all positions, then
    /// velocities, then efforts, as the recorder lays them out), or `None` for arrays.
    pub fn observation_names(&self) -> Option<Vec<String>> {
        match self.observation_type {
            ObservationType::Float32MultiArray => None,
            ObservationType::JointState => {
                let mut names = Vec::new();
                for (field, label) in [
                    (JointField::Position, "position"),
                    (JointField::Velocity, "velocity"),
                    (JointField::Effort, "effort"),
                ] {
                    if self.joint_fields.contains(&field) {
                        names.extend(self.joint_names.iter().map(|j| format!("{j}.{label}")));
                    }
                }
                Some(names)
            }
        }
    }
}

//! Turning observation messages into observation vectors, or into a reason for rejecting
//! them. The values and their order come from the recorder's extraction, so the policy sees
//! observations laid out as in the data it was trained on.

use super::config::{JointField, ObservationType, RunnerConfig};
use crate::msg::{Float32MultiArray, JointState};
use crate::recorder::{Incoming, Source, extract};

/// Maps observation messages of the configured type to vectors of a fixed size.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservationMapping {
    source: Source,
    dim: usize,
}

impl ObservationMapping {
    /// Creates a mapping for `config`'s observation type that produces `dim` values.
    pub fn new(config: &RunnerConfig, dim: usize) -> Self {
        let topic = config.observation_topic.clone();
        let source = match config.observation_type {
            ObservationType::Float32MultiArray => Source::Float32MultiArray { topic, size: dim },
            ObservationType::JointState => {
                let joints_with = |field: JointField| {
                    if config.joint_fields.contains(&field) {
                        config.joint_names.clone()
                    } else {
                        Vec::new()
                    }
                };
                Source::JointState {
                    topic,
                    position: joints_with(JointField::Position),
                    velocity: joints_with(JointField::Velocity),
                    effort: joints_with(JointField::Effort),
                }
            }
        };
        Self { source, dim }
    }

    /// Returns the observation size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Takes the values of a Float32MultiArray, which must hold exactly `dim` finite values.
    pub fn from_array(&self, message: &Float32MultiArray) -> Result<Vec<f32>, String> {
        self.extract(Incoming::Float32MultiArray(message.clone()))
    }

    /// Takes the configured fields of the configured joints, looked up by name: the
    /// positions of all joints, then their velocities, then their efforts.
    pub fn from_joint_state(&self, message: &JointState) -> Result<Vec<f32>, String> {
        self.extract(Incoming::JointState(message.clone()))
    }

    fn extract(&self, message: Incoming) -> Result<Vec<f32>, String> {
        if self.source.size() != self.dim {
            return Err(format!(
                "the observation settings give {} values, but the policy expects {}",
                self.source.size(),
                self.dim
            ));
        }
        let mut values = vec![0.0; self.dim];
        extract(&self.source, &message, &mut values).map_err(|rejected| rejected.to_string())?;
        Ok(values)
    }
}

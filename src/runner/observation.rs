//! Turning observation messages into observation vectors, or into a reason for rejecting
//! them.

use super::config::{JointField, ObservationType, RunnerConfig};
use crate::msg::{Float32MultiArray, JointState};

/// Maps observation messages of the configured type to vectors of a fixed size.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservationMapping {
    kind: ObservationType,
    dim: usize,
    joint_names: Vec<String>,
    joint_fields: Vec<JointField>,
}

impl ObservationMapping {
    /// Creates a mapping for `config`'s observation type that produces `dim` values.
    pub fn new(config: &RunnerConfig, dim: usize) -> Self {
        Self {
            kind: config.observation_type,
            dim,
            joint_names: config.joint_names.clone(),
            joint_fields: config.joint_fields.clone(),
        }
    }

    /// Returns the observation size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Takes the values of a Float32MultiArray from `layout.data_offset` on.
    pub fn from_array(&self, message: &Float32MultiArray) -> Result<Vec<f32>, String> {
        let offset = message.layout.data_offset as usize;
        let Some(values) = message.data.get(offset..) else {
            return Err(format!(
                "layout.data_offset {offset} is beyond the {} values of data",
                message.data.len()
            ));
        };
        if values.len() != self.dim {
            return Err(format!(
                "Float32MultiArray has {} values after data_offset {offset}, expected {}",
                values.len(),
                self.dim
            ));
        }
        Ok(values.to_vec())
    }

    /// Takes the configured fields of the configured joints, looked up by name.
    pub fn from_joint_state(&self, message: &JointState) -> Result<Vec<f32>, String> {
        let mut values = Vec::with_capacity(self.dim);
        for joint in &self.joint_names {
            let index = message
                .name
                .iter()
                .position(|name| name == joint)
                .ok_or_else(|| {
                    format!(
                        "JointState lacks joint {joint:?} (it names {:?})",
                        message.name
                    )
                })?;
            for field in &self.joint_fields {
                let (array, field_name) = match field {
                    JointField::Position => (&message.position, "position"),
                    JointField::Velocity => (&message.velocity, "velocity"),
                    JointField::Effort => (&message.effort, "effort"),
                };
                if array.len() != message.name.len() {
                    return Err(format!(
                        "JointState.{field_name} has {} values for {} names",
                        array.len(),
                        message.name.len()
                    ));
                }
                values.push(array[index] as f32);
            }
        }
        if values.len() != self.dim {
            return Err(format!(
                "JointState mapping gives {} values, expected {}",
                values.len(),
                self.dim
            ));
        }
        Ok(values)
    }

    /// Returns the configured observation message type.
    pub fn kind(&self) -> ObservationType {
        self.kind
    }
}

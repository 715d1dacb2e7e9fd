//! Turning received messages into checked observation and action values.

use std::fmt;

use super::config::Source;
use super::counters::DropReason;
use crate::msg::{
    Float32MultiArray, Header, JointState, Odometry, RosMessage, StringMessage, Transition, Twist,
};

/// A message of one of the types the recorder reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// `sensor_msgs/msg/JointState`.
    JointState(JointState),
    /// `geometry_msgs/msg/Twist`.
    Twist(Twist),
    /// `nav_msgs/msg/Odometry`, boxed because its two covariance matrices make it about
    /// six times larger than the other messages.
    Odometry(Box<Odometry>),
    /// `std_msgs/msg/Float32MultiArray`.
    Float32MultiArray(Float32MultiArray),
    /// `clarify_msgs/msg/Transition`.
    Transition(Transition),
    /// `std_msgs/msg/String` on the episode topic.
    EpisodeEvent(StringMessage),
}

impl Incoming {
    /// Returns the ROS type name of the message.
    pub fn type_name(&self) -> String {
        match self {
            Incoming::JointState(_) => JointState::type_name(),
            Incoming::Twist(_) => Twist::type_name(),
            Incoming::Odometry(_) => Odometry::type_name(),
            Incoming::Float32MultiArray(_) => Float32MultiArray::type_name(),
            Incoming::Transition(_) => Transition::type_name(),
            Incoming::EpisodeEvent(_) => StringMessage::type_name(),
        }
    }

    /// Returns the header stamp in Unix nanoseconds, or `None` when the message has no
    /// header or the stamp is zero (unset).
    pub fn stamp_ns(&self) -> Option<i64> {
        let header: &Header = match self {
            Incoming::JointState(message) => &message.header,
            Incoming::Odometry(message) => &message.header,
            Incoming::Transition(message) => &message.header,
            _ => return None,
        };
        let stamp = header.stamp;
        (!stamp.is_zero()).then(|| i64::from(stamp.sec) * 1_000_000_000 + i64::from(stamp.nanosec))
    }
}

/// A message that failed a check, with what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The counted reason.
    pub reason: DropReason,
    /// What was found and what was expected.
    pub detail: String,
}

impl Rejected {
    pub(crate) fn new(reason: DropReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Writes the values `source` takes from `message` into `out` (`source.size()` values).
pub fn extract(source: &Source, message: &Incoming, out: &mut [f32]) -> Result<(), Rejected> {
    debug_assert_eq!(out.len(), source.size());
    match (source, message) {
        (
            Source::JointState {
                position,
                velocity,
                effort,
                ..
            },
            Incoming::JointState(message),
        ) => extract_joint_state(message, [position, velocity, effort], out),
        (Source::Twist { .. }, Incoming::Twist(twist)) => {
            let values = twist_values(twist);
            write_finite(&values, &TWIST_LABELS, out)
        }
        (Source::Odometry { .. }, Incoming::Odometry(odometry)) => {
            let pose = &odometry.pose.pose;
            let twist = twist_values(&odometry.twist.twist);
            let values = [
                pose.position.x,
                pose.position.y,
                pose.position.z,
                pose.orientation.x,
                pose.orientation.y,
                pose.orientation.z,
                pose.orientation.w,
                twist[0],
                twist[1],
                twist[2],
                twist[3],
                twist[4],
                twist[5],
            ];
            write_finite(&values, &ODOMETRY_LABELS, out)
        }
        (Source::Float32MultiArray { size, .. }, Incoming::Float32MultiArray(array)) => {
            if array.data.len() != *size {
                return Err(Rejected::new(
                    DropReason::WrongSize,
                    format!("data has {} values, expected {size}", array.data.len()),
                ));
            }
            if let Some(index) = array.data.iter().position(|value| !value.is_finite()) {
                return Err(Rejected::new(
                    DropReason::NonFinite,
                    format!("data[{index}] is {}", array.data[index]),
                ));
            }
            out.copy_from_slice(&array.data);
            Ok(())
        }
        (source, message) => Err(Rejected::new(
            DropReason::Malformed,
            format!(
                "got a {} message, expected {}",
                message.type_name(),
                source.type_name()
            ),
        )),
    }
}

fn twist_values(twist: &Twist) -> [f64; 6] {
    [
        twist.linear.x,
        twist.linear.y,
        twist.linear.z,
        twist.angular.x,
        twist.angular.y,
        twist.angular.z,
    ]
}

const TWIST_LABELS: [&str; 6] = [
    "linear.x",
    "linear.y",
    "linear.z",
    "angular.x",
    "angular.y",
    "angular.z",
];

const ODOMETRY_LABELS: [&str; 13] = [
    "pose.pose.position.x",
    "pose.pose.position.y",
    "pose.pose.position.z",
    "pose.pose.orientation.x",
    "pose.pose.orientation.y",
    "pose.pose.orientation.z",
    "pose.pose.orientation.w",
    "twist.twist.linear.x",
    "twist.twist.linear.y",
    "twist.twist.linear.z",
    "twist.twist.angular.x",
    "twist.twist.angular.y",
    "twist.twist.angular.z",
];

/// Converts to f32, rejecting values that are not finite as f64 or overflow f32.
fn write_finite(values: &[f64], labels: &[&str], out: &mut [f32]) -> Result<(), Rejected> {
    for ((&value, label), slot) in values.iter().zip(labels).zip(out.iter_mut()) {
        let narrowed = value as f32;
        if !narrowed.is_finite() {
            return Err(Rejected::new(
                DropReason::NonFinite,
                format!("{label} is {value}, not a finite f32"),
            ));
        }
        *slot = narrowed;
    }
    Ok(())
}

const JOINT_FIELDS: [&str; 3] = ["position", "velocity", "effort"];

fn extract_joint_state(
    message: &JointState,
    configured: [&Vec<String>; 3],
    out: &mut [f32],
) -> Result<(), Rejected> {
    let names = &message.name;
    let arrays = [&message.position, &message.velocity, &message.effort];

    // Every array is either empty or as long as `name`.
    for (field, array) in JOINT_FIELDS.iter().zip(arrays) {
        if !array.is_empty() && array.len() != names.len() {
            return Err(Rejected::new(
                DropReason::WrongSize,
                format!(
                    "{field} has {} values for {} joint names, expected {} or none",
                    array.len(),
                    names.len(),
                    names.len()
                ),
            ));
        }
    }
    for (index, name) in names.iter().enumerate() {
        if names[..index].contains(name) {
            return Err(Rejected::new(
                DropReason::Malformed,
                format!("joint {name:?} appears twice in name"),
            ));
        }
    }

    let mut slot = 0;
    for ((field, array), joints) in JOINT_FIELDS.iter().zip(arrays).zip(configured) {
        if joints.is_empty() {
            continue;
        }
        if array.is_empty() {
            return Err(Rejected::new(
                DropReason::Malformed,
                format!(
                    "{field} is empty, but the recorder takes the {field} of {}",
                    joints.join(", ")
                ),
            ));
        }
        for joint in joints {
            let Some(index) = names.iter().position(|name| name == joint) else {
                return Err(Rejected::new(
                    DropReason::Malformed,
                    format!("joint {joint:?} is missing from name {names:?}"),
                ));
            };
            let value = array[index];
            let narrowed = value as f32;
            if !narrowed.is_finite() {
                return Err(Rejected::new(
                    DropReason::NonFinite,
                    format!("{field} of joint {joint:?} is {value}, not a finite f32"),
                ));
            }
            out[slot] = narrowed;
            slot += 1;
        }
    }
    Ok(())
}

/// Checks a Transition's sizes and values against the configured sizes.
pub fn check_transition(
    message: &Transition,
    observation_size: usize,
    action_size: usize,
) -> Result<(), Rejected> {
    for (field, values, expected) in [
        ("observation", &message.observation, observation_size),
        ("action", &message.action, action_size),
    ] {
        if values.len() != expected {
            return Err(Rejected::new(
                DropReason::WrongSize,
                format!("{field} has {} values, expected {expected}", values.len()),
            ));
        }
        if let Some(index) = values.iter().position(|value| !value.is_finite()) {
            return Err(Rejected::new(
                DropReason::NonFinite,
                format!("{field}[{index}] is {}", values[index]),
            ));
        }
    }
    if message.has_reward && !message.reward.is_finite() {
        return Err(Rejected::new(
            DropReason::NonFinite,
            format!("reward is {}", message.reward),
        ));
    }
    Ok(())
}

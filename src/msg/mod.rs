//! ROS 2 message types: the project's `clarify_msgs` interfaces (defined in `msg/msg/*.msg`
//! and `msg/srv/*.srv`) and the standard messages the recorder and the operator interfaces
//! use.
//!
//! Every type serializes with serde in the field order of its ROS definition, so CDR
//! encoders (RustDDS's) produce the same bytes as a ROS 2 node. Each type also describes
//! its fields ([`RosMessage::fields`]), and a test compares those descriptions with the
//! parsed interface files, so the Rust types cannot drift from the files.
//!
//! A change to an interface file is breaking for other ROS nodes when it removes, renames,
//! reorders or retypes a field, or changes a constant's value. CDR carries no field names,
//! so peers with the old definition would misread every message. Adding a field is breaking
//! too, for the same reason. Editing comments is not.

mod clarify;
pub mod definition;
mod standard;

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use clarify::{
    ModelUpdate, PreferenceAnswer, PreferenceQuery, RollbackModel, RollbackModelRequest,
    RollbackModelResponse, SegmentRef, SetPolicyEnabled, SetPolicyEnabledRequest,
    SetPolicyEnabledResponse, SubmitAnswer, SubmitAnswerRequest, SubmitAnswerResponse,
    TrainingStatus, Transition, TriggerRetrain, TriggerRetrainRequest, TriggerRetrainResponse,
};
pub use standard::{
    Byte, CompressedImage, Covariance, DiagnosticArray, DiagnosticStatus, Duration,
    Float32MultiArray, Header, Image, JointState, Joy, KeyValue, MultiArrayDimension,
    MultiArrayLayout, Odometry, Point, Pose, PoseWithCovariance, Quaternion, StringMessage, Time,
    Twist, TwistWithCovariance, Vector3,
};

/// Package of the project's own interfaces.
pub const PACKAGE: &str = "clarify_msgs";

/// A Rust type with a ROS 2 interface type name, as a `.msg` file writes it.
pub trait RosType {
    /// Returns the type as a `.msg` field declaration spells it, with the package always
    /// written out: `float32`, `float32[]`, `std_msgs/Header`.
    fn ros_type() -> String;
}

/// Name and type of one message field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDescription {
    /// Field name.
    pub name: &'static str,
    /// Field type as a `.msg` file spells it (see [`RosType::ros_type`]).
    pub ros_type: String,
}

/// Name, type and value of one message constant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConstantDescription {
    /// Constant name.
    pub name: &'static str,
    /// Constant type as a `.msg` file spells it.
    pub ros_type: String,
    /// Value, formatted with `Display`.
    pub value: String,
}

/// A ROS 2 message type, a service request or a service response.
pub trait RosMessage:
    RosType + Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + 'static
{
    /// Package, for example `sensor_msgs`.
    const PACKAGE: &'static str;
    /// Interface kind: `msg`, or `srv` for service requests and responses.
    const INTERFACE: &'static str;
    /// Type name within the package: `JointState`, or `SubmitAnswer_Request` for a
    /// service request.
    const NAME: &'static str;

    /// Returns the fields in definition (and serialization) order.
    fn fields() -> Vec<FieldDescription>;

    /// Returns the constants in definition order.
    fn constants() -> Vec<ConstantDescription>;

    /// Returns the full type name, for example `sensor_msgs/msg/JointState`.
    fn type_name() -> String {
        format!("{}/{}/{}", Self::PACKAGE, Self::INTERFACE, Self::NAME)
    }

    /// Returns the DDS type name that ROS 2 middlewares register, for example
    /// `sensor_msgs::msg::dds_::JointState_`.
    fn dds_type_name() -> String {
        format!(
            "{}::{}::dds_::{}_",
            Self::PACKAGE,
            Self::INTERFACE,
            Self::NAME
        )
    }
}

/// A ROS 2 service: a request type and a response type.
pub trait RosService: Send + 'static {
    /// Request message.
    type Request: RosMessage;
    /// Response message.
    type Response: RosMessage;
    /// Package of the service.
    const PACKAGE: &'static str;
    /// Service name within the package, for example `SubmitAnswer`.
    const NAME: &'static str;
}

macro_rules! primitive_ros_type {
    ($($rust:ty => $ros:literal),* $(,)?) => {
        $(impl RosType for $rust {
            fn ros_type() -> String {
                $ros.to_owned()
            }
        })*
    };
}

primitive_ros_type!(
    bool => "bool",
    u8 => "uint8",
    i8 => "int8",
    u16 => "uint16",
    i16 => "int16",
    u32 => "uint32",
    i32 => "int32",
    u64 => "uint64",
    i64 => "int64",
    f32 => "float32",
    f64 => "float64",
    String => "string",
);

/// An unbounded sequence (`T[]`). Arrays of arrays do not exist in the ROS format, so `T`
/// is a primitive, a string or a message.
impl<T: RosType> RosType for Vec<T> {
    fn ros_type() -> String {
        format!("{}[]", T::ros_type())
    }
}

/// Defines a message struct with serde derives, and its [`RosType`] and [`RosMessage`]
/// implementations from the same field list, so field order and descriptions match the
/// struct by construction.
macro_rules! ros_message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $package:literal / $interface:literal / $ros_name:literal {
            $( $(#[$field_meta:meta])* pub $field:ident : $field_type:ty, )*
        }
        $( constants {
            $( $(#[$const_meta:meta])* $constant:ident : $const_type:ty = $value:expr; )*
        } )?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $field_type, )*
        }

        $( impl $name {
            $( $(#[$const_meta])* pub const $constant: $const_type = $value; )*
        } )?

        impl $crate::msg::RosType for $name {
            fn ros_type() -> String {
                format!("{}/{}", $package, $ros_name)
            }
        }

        impl $crate::msg::RosMessage for $name {
            const PACKAGE: &'static str = $package;
            const INTERFACE: &'static str = $interface;
            const NAME: &'static str = $ros_name;

            fn fields() -> Vec<$crate::msg::FieldDescription> {
                vec![$( $crate::msg::FieldDescription {
                    name: stringify!($field),
                    ros_type: <$field_type as $crate::msg::RosType>::ros_type(),
                }, )*]
            }

            fn constants() -> Vec<$crate::msg::ConstantDescription> {
                vec![$($( $crate::msg::ConstantDescription {
                    name: stringify!($constant),
                    ros_type: <$const_type as $crate::msg::RosType>::ros_type(),
                    value: $name::$constant.to_string(),
                }, )*)?]
            }
        }
    };
}

pub(crate) use ros_message;

/// Defines a service marker type that ties a request and a response together.
macro_rules! ros_service {
    ($(#[$meta:meta])* $name:ident = $package:literal / $ros_name:literal ($request:ty, $response:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name;

        impl $crate::msg::RosService for $name {
            type Request = $request;
            type Response = $response;
            const PACKAGE: &'static str = $package;
            const NAME: &'static str = $ros_name;
        }
    };
}

pub(crate) use ros_service;

/// Field and constant descriptions of one interface type, for checks against the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDescription {
    /// Full type name, for example `clarify_msgs/msg/Transition`.
    pub type_name: String,
    /// Fields in order.
    pub fields: Vec<FieldDescription>,
    /// Constants in order.
    pub constants: Vec<ConstantDescription>,
}

impl MessageDescription {
    /// Describes message type `M`.
    pub fn of<M: RosMessage>() -> Self {
        Self {
            type_name: M::type_name(),
            fields: M::fields(),
            constants: M::constants(),
        }
    }
}

/// Returns the descriptions of every message, request and response type of the
/// `clarify_msgs` package that this crate defines.
pub fn project_descriptions() -> Vec<MessageDescription> {
    vec![
        MessageDescription::of::<SegmentRef>(),
        MessageDescription::of::<Transition>(),
        MessageDescription::of::<PreferenceQuery>(),
        MessageDescription::of::<PreferenceAnswer>(),
        MessageDescription::of::<ModelUpdate>(),
        MessageDescription::of::<TrainingStatus>(),
        MessageDescription::of::<SubmitAnswerRequest>(),
        MessageDescription::of::<SubmitAnswerResponse>(),
        MessageDescription::of::<TriggerRetrainRequest>(),
        MessageDescription::of::<TriggerRetrainResponse>(),
        MessageDescription::of::<RollbackModelRequest>(),
        MessageDescription::of::<RollbackModelResponse>(),
        MessageDescription::of::<SetPolicyEnabledRequest>(),
        MessageDescription::of::<SetPolicyEnabledResponse>(),
    ]
}

/// Returns the descriptions of the standard ROS 2 message types that this crate defines.
pub fn standard_descriptions() -> Vec<MessageDescription> {
    vec![
        MessageDescription::of::<Time>(),
        MessageDescription::of::<Duration>(),
        MessageDescription::of::<Header>(),
        MessageDescription::of::<StringMessage>(),
        MessageDescription::of::<MultiArrayDimension>(),
        MessageDescription::of::<MultiArrayLayout>(),
        MessageDescription::of::<Float32MultiArray>(),
        MessageDescription::of::<JointState>(),
        MessageDescription::of::<Joy>(),
        MessageDescription::of::<Image>(),
        MessageDescription::of::<CompressedImage>(),
        MessageDescription::of::<Vector3>(),
        MessageDescription::of::<Twist>(),
        MessageDescription::of::<Point>(),
        MessageDescription::of::<Quaternion>(),
        MessageDescription::of::<Pose>(),
        MessageDescription::of::<PoseWithCovariance>(),
        MessageDescription::of::<TwistWithCovariance>(),
        MessageDescription::of::<Odometry>(),
        MessageDescription::of::<KeyValue>(),
        MessageDescription::of::<DiagnosticStatus>(),
        MessageDescription::of::<DiagnosticArray>(),
    ]
}

//! Standard ROS 2 messages (field layouts of ROS 2 Jazzy's builtin_interfaces, std_msgs,
//! sensor_msgs, geometry_msgs, nav_msgs and diagnostic_msgs packages) that the recorder, the
//! policy runner, the gamepad interface and the node's diagnostics use.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{RosType, ros_message};

ros_message! {
    /// A point in time: seconds and nanoseconds since the Unix epoch (or since the start
    /// of simulated time).
    #[derive(Default, Copy, Eq, Hash)]
    pub struct Time = "builtin_interfaces" / "msg" / "Time" {
        /// Whole seconds.
        pub sec: i32,
        /// Nanoseconds within the second, in [0, 1e9).
        pub nanosec: u32,
    }
}

ros_message! {
    /// A time span: seconds plus nanoseconds, in [0, 1e9).
    #[derive(Default, Copy, Eq, Hash)]
    pub struct Duration = "builtin_interfaces" / "msg" / "Duration" {
        /// Whole seconds.
        pub sec: i32,
        /// Nanoseconds added to `sec`, in [0, 1e9).
        pub nanosec: u32,
    }
}

impl Time {
    /// Returns the current system time. A clock before 1970 gives zero, and times after
    /// 2038 saturate at `i32::MAX` seconds, the limit of the message format.
    pub fn now() -> Self {
        let elapsed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_unix_secs(elapsed.as_secs_f64())
    }

    /// Converts Unix seconds to a time, rounding to whole nanoseconds. Negative and NaN
    /// values give zero; values past `i32::MAX` seconds saturate.
    pub fn from_unix_secs(unix_secs: f64) -> Self {
        if unix_secs.is_nan() || unix_secs <= 0.0 {
            return Self::default();
        }
        if unix_secs >= f64::from(i32::MAX) + 1.0 {
            return Self {
                sec: i32::MAX,
                nanosec: 999_999_999,
            };
        }
        // Whole seconds and the fraction are split before scaling, because Unix times in
        // nanoseconds exceed the 53-bit precision of f64.
        let whole = unix_secs.floor();
        let nanos = ((unix_secs - whole) * 1e9).round() as u32;
        let (sec, nanosec) = if nanos >= 1_000_000_000 {
            ((whole as i32).saturating_add(1), 0)
        } else {
            (whole as i32, nanos)
        };
        Self { sec, nanosec }
    }

    /// Returns the time as Unix seconds.
    pub fn as_unix_secs(self) -> f64 {
        f64::from(self.sec) + f64::from(self.nanosec) * 1e-9
    }

    /// Returns whether both parts are zero, the value that means "unset" in ROS messages.
    pub fn is_zero(self) -> bool {
        self.sec == 0 && self.nanosec == 0
    }
}

ros_message! {
    /// Timestamp and coordinate frame of a message's data.
    #[derive(Default)]
    pub struct Header = "std_msgs" / "msg" / "Header" {
        /// Time the data was measured.
        pub stamp: Time,
        /// Coordinate frame of the data, empty when it has none.
        pub frame_id: String,
    }
}

ros_message! {
    /// A text message (`std_msgs/msg/String`). The recorder reads episode events from it.
    #[derive(Default, Eq, Hash)]
    pub struct StringMessage = "std_msgs" / "msg" / "String" {
        /// The text.
        pub data: String,
    }
}

ros_message! {
    /// One dimension of a multi-dimensional array.
    #[derive(Default)]
    pub struct MultiArrayDimension = "std_msgs" / "msg" / "MultiArrayDimension" {
        /// Name of the dimension.
        pub label: String,
        /// Number of elements along the dimension.
        pub size: u32,
        /// Number of values spanned by one step along the dimension.
        pub stride: u32,
    }
}

ros_message! {
    /// Layout of a multi-dimensional array stored flat.
    #[derive(Default)]
    pub struct MultiArrayLayout = "std_msgs" / "msg" / "MultiArrayLayout" {
        /// Dimensions, outermost first.
        pub dim: Vec<MultiArrayDimension>,
        /// Index of the first value in `data`.
        pub data_offset: u32,
    }
}

ros_message! {
    /// A multi-dimensional array of f32 values.
    #[derive(Default)]
    pub struct Float32MultiArray = "std_msgs" / "msg" / "Float32MultiArray" {
        /// Shape of `data`.
        pub layout: MultiArrayLayout,
        /// Values, laid out as `layout` describes.
        pub data: Vec<f32>,
    }
}

ros_message! {
    /// State of named joints. Each array is either empty or as long as `name`.
    #[derive(Default)]
    pub struct JointState = "sensor_msgs" / "msg" / "JointState" {
        /// Time of the measurement.
        pub header: Header,
        /// Joint names.
        pub name: Vec<String>,
        /// Positions in radians (revolute joints) or metres (prismatic joints).
        pub position: Vec<f64>,
        /// Velocities in rad/s or m/s.
        pub velocity: Vec<f64>,
        /// Efforts in N·m or N.
        pub effort: Vec<f64>,
    }
}

ros_message! {
    /// State of a joystick or gamepad.
    #[derive(Default)]
    pub struct Joy = "sensor_msgs" / "msg" / "Joy" {
        /// Time of the reading.
        pub header: Header,
        /// Axis positions, usually in [-1, 1].
        pub axes: Vec<f32>,
        /// Button states, 1 while pressed.
        pub buttons: Vec<i32>,
    }
}

ros_message! {
    /// An uncompressed camera image. Row `r` starts at byte `r * step` of `data`.
    #[derive(Default)]
    pub struct Image = "sensor_msgs" / "msg" / "Image" {
        /// Time the image was captured; `frame_id` is the camera's optical frame.
        pub header: Header,
        /// Number of rows.
        pub height: u32,
        /// Number of columns.
        pub width: u32,
        /// Pixel layout, such as `rgb8`, `bgr8` or `mono8` (names of ROS 2's
        /// `sensor_msgs/image_encodings.hpp`).
        pub encoding: String,
        /// 1 when multi-byte channel values are big-endian.
        pub is_bigendian: u8,
        /// Length of one row in bytes, at least `width` times the bytes per pixel.
        pub step: u32,
        /// Pixel bytes, `step * height` of them.
        pub data: Vec<u8>,
    }
}

ros_message! {
    /// A compressed camera image.
    #[derive(Default)]
    pub struct CompressedImage = "sensor_msgs" / "msg" / "CompressedImage" {
        /// Time the image was captured; `frame_id` is the camera's optical frame.
        pub header: Header,
        /// Compression format: `jpeg` or `png`, optionally preceded by the original
        /// encoding, as in `rgb8; jpeg compressed bgr8` from image_transport.
        pub format: String,
        /// The compressed image file's bytes.
        pub data: Vec<u8>,
    }
}

ros_message! {
    /// A 3-D vector.
    #[derive(Default, Copy)]
    pub struct Vector3 = "geometry_msgs" / "msg" / "Vector3" {
        /// X component.
        pub x: f64,
        /// Y component.
        pub y: f64,
        /// Z component.
        pub z: f64,
    }
}

ros_message! {
    /// Velocity in free space: linear in m/s, angular in rad/s.
    #[derive(Default, Copy)]
    pub struct Twist = "geometry_msgs" / "msg" / "Twist" {
        /// Linear velocity in m/s.
        pub linear: Vector3,
        /// Angular velocity in rad/s.
        pub angular: Vector3,
    }
}

ros_message! {
    /// A position in metres.
    #[derive(Default, Copy)]
    pub struct Point = "geometry_msgs" / "msg" / "Point" {
        /// X coordinate.
        pub x: f64,
        /// Y coordinate.
        pub y: f64,
        /// Z coordinate.
        pub z: f64,
    }
}

ros_message! {
    /// An orientation as a unit quaternion. The default is the identity rotation (w = 1),
    /// as in the ROS 2 definition.
    #[derive(Copy)]
    pub struct Quaternion = "geometry_msgs" / "msg" / "Quaternion" {
        /// X component.
        pub x: f64,
        /// Y component.
        pub y: f64,
        /// Z component.
        pub z: f64,
        /// W (scalar) component.
        pub w: f64,
    }
}

impl Default for Quaternion {
    fn default() -> Self {
        Self {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 1.0,
        }
    }
}

ros_message! {
    /// A position and an orientation.
    #[derive(Default, Copy)]
    pub struct Pose = "geometry_msgs" / "msg" / "Pose" {
        /// Position in metres.
        pub position: Point,
        /// Orientation.
        pub orientation: Quaternion,
    }
}

ros_message! {
    /// A pose with its uncertainty.
    #[derive(Default)]
    pub struct PoseWithCovariance = "geometry_msgs" / "msg" / "PoseWithCovariance" {
        /// The pose.
        pub pose: Pose,
        /// Row-major 6×6 covariance of (x, y, z, rotation about X, Y, Z).
        pub covariance: Covariance,
    }
}

ros_message! {
    /// A velocity with its uncertainty.
    #[derive(Default)]
    pub struct TwistWithCovariance = "geometry_msgs" / "msg" / "TwistWithCovariance" {
        /// The velocity.
        pub twist: Twist,
        /// Row-major 6×6 covariance of (vx, vy, vz, angular velocity about X, Y, Z).
        pub covariance: Covariance,
    }
}

ros_message! {
    /// Estimated pose and velocity of a moving frame.
    #[derive(Default)]
    pub struct Odometry = "nav_msgs" / "msg" / "Odometry" {
        /// Time of the estimate; `frame_id` is the frame of the pose.
        pub header: Header,
        /// Frame of the twist, usually the robot's base.
        pub child_frame_id: String,
        /// Pose in `header.frame_id`.
        pub pose: PoseWithCovariance,
        /// Velocity in `child_frame_id`.
        pub twist: TwistWithCovariance,
    }
}

/// A row-major 6×6 covariance matrix, the `float64[36]` field of the geometry messages.
///
/// serde implements arrays only up to 32 elements, so this type serializes the 36 values
/// itself, as a fixed-length tuple (no length prefix), the CDR layout of a fixed array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Covariance(pub [f64; 36]);

impl Default for Covariance {
    fn default() -> Self {
        Self([0.0; 36])
    }
}

impl RosType for Covariance {
    fn ros_type() -> String {
        "float64[36]".to_owned()
    }
}

impl Serialize for Covariance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(36)?;
        for value in &self.0 {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Covariance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CovarianceVisitor;

        impl<'de> Visitor<'de> for CovarianceVisitor {
            type Value = Covariance;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("36 float64 values")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Covariance, A::Error> {
                let mut values = [0.0; 36];
                for (index, value) in values.iter_mut().enumerate() {
                    *value = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(index, &self))?;
                }
                Ok(Covariance(values))
            }
        }

        deserializer.deserialize_tuple(36, CovarianceVisitor)
    }
}

/// A ROS `byte` value (an octet), the type of `DiagnosticStatus.level`. It serializes as one
/// unsigned byte, like `uint8`, but describes itself as `byte` so that field checks match
/// the interface file.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Byte(pub u8);

impl RosType for Byte {
    fn ros_type() -> String {
        "byte".to_owned()
    }
}

impl fmt::Display for Byte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

ros_message! {
    /// One key and value of a diagnostic status.
    #[derive(Default, Eq, Hash)]
    pub struct KeyValue = "diagnostic_msgs" / "msg" / "KeyValue" {
        /// Name of the value.
        pub key: String,
        /// The value, as text.
        pub value: String,
    }
}

ros_message! {
    /// The state of one component or area of a robot system, as `/diagnostics` carries it.
    #[derive(Default)]
    pub struct DiagnosticStatus = "diagnostic_msgs" / "msg" / "DiagnosticStatus" {
        /// One of the level constants.
        pub level: Byte,
        /// Name of the component, conventionally prefixed with the node name.
        pub name: String,
        /// Short summary of the state.
        pub message: String,
        /// Identifier of the hardware the component runs on; empty for software parts.
        pub hardware_id: String,
        /// Details as key-value pairs.
        pub values: Vec<KeyValue>,
    }
    constants {
        /// Working as expected.
        OK: Byte = Byte(0);
        /// Working, but something needs attention.
        WARN: Byte = Byte(1);
        /// Not working.
        ERROR: Byte = Byte(2);
        /// No recent report.
        STALE: Byte = Byte(3);
    }
}

ros_message! {
    /// A set of diagnostic statuses published together on `/diagnostics`.
    #[derive(Default)]
    pub struct DiagnosticArray = "diagnostic_msgs" / "msg" / "DiagnosticArray" {
        /// Time of the report.
        pub header: Header,
        /// One status per component.
        pub status: Vec<DiagnosticStatus>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_converts_unix_seconds_both_ways() {
        let time = Time::from_unix_secs(1_700_000_000.25);

        assert_eq!(time.sec, 1_700_000_000);
        assert_eq!(time.nanosec, 250_000_000);
        assert_eq!(time.as_unix_secs(), 1_700_000_000.25);
        assert!(Time::from_unix_secs(-3.0).is_zero());
        assert!(Time::from_unix_secs(f64::NAN).is_zero());
        assert_eq!(Time::from_unix_secs(1e12).sec, i32::MAX);
    }

    #[test]
    fn covariance_round_trips_through_json_as_36_values() -> Result<(), serde_json::Error> {
        let mut values = [0.0; 36];
        values[0] = 0.5;
        values[35] = -2.0;

        let json = serde_json::to_string(&Covariance(values))?;
        let back: Covariance = serde_json::from_str(&json)?;

        assert_eq!(back, Covariance(values));
        assert!(serde_json::from_str::<Covariance>("[1.0, 2.0]").is_err());
        Ok(())
    }
}

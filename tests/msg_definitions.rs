//! Checks that the Rust message types match the interface files in msg/ field by field,
//! and the standard message types match the ROS 2 Jazzy definitions.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clarify::msg::definition::{Definition, parse_message, parse_service};
use clarify::msg::{
    self, MessageDescription, PreferenceAnswer, PreferenceQuery, RosMessage, SegmentRef,
    SubmitAnswerRequest, Transition,
};

/// Field layouts of the standard messages, as in ROS 2 Jazzy's interface files (comments
/// left out).
const STANDARD_DEFINITIONS: &[(&str, &str)] = &[
    ("builtin_interfaces/msg/Time", "int32 sec\nuint32 nanosec\n"),
    (
        "builtin_interfaces/msg/Duration",
        "int32 sec\nuint32 nanosec\n",
    ),
    (
        "std_msgs/msg/Header",
        "builtin_interfaces/Time stamp\nstring frame_id\n",
    ),
    ("std_msgs/msg/String", "string data\n"),
    (
        "std_msgs/msg/MultiArrayDimension",
        "string label\nuint32 size\nuint32 stride\n",
    ),
    (
        "std_msgs/msg/MultiArrayLayout",
        "MultiArrayDimension[] dim\nuint32 data_offset\n",
    ),
    (
        "std_msgs/msg/Float32MultiArray",
        "MultiArrayLayout layout\nfloat32[] data\n",
    ),
    (
        "sensor_msgs/msg/JointState",
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n",
    ),
    (
        "sensor_msgs/msg/Joy",
        "std_msgs/Header header\nfloat32[] axes\nint32[] buttons\n",
    ),
    (
        "sensor_msgs/msg/Image",
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n",
    ),
    (
        "sensor_msgs/msg/CompressedImage",
        "std_msgs/Header header\nstring format\nuint8[] data\n",
    ),
    (
        "geometry_msgs/msg/Vector3",
        "float64 x\nfloat64 y\nfloat64 z\n",
    ),
    (
        "geometry_msgs/msg/Twist",
        "Vector3 linear\nVector3 angular\n",
    ),
    (
        "geometry_msgs/msg/Point",
        "float64 x\nfloat64 y\nfloat64 z\n",
    ),
    (
        "geometry_msgs/msg/Quaternion",
        "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n",
    ),
    (
        "geometry_msgs/msg/Pose",
        "Point position\nQuaternion orientation\n",
    ),
    (
        "geometry_msgs/msg/PoseWithCovariance",
        "Pose pose\nfloat64[36] covariance\n",
    ),
    (
        "geometry_msgs/msg/TwistWithCovariance",
        "Twist twist\nfloat64[36] covariance\n",
    ),
    (
        "nav_msgs/msg/Odometry",
        "std_msgs/Header header\nstring child_frame_id\ngeometry_msgs/PoseWithCovariance pose\ngeometry_msgs/TwistWithCovariance twist\n",
    ),
    ("diagnostic_msgs/msg/KeyValue", "string key\nstring value\n"),
    (
        "diagnostic_msgs/msg/DiagnosticStatus",
        "byte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\nstring name\nstring message\nstring hardware_id\nKeyValue[] values\n",
    ),
    (
        "diagnostic_msgs/msg/DiagnosticArray",
        "std_msgs/Header header\nDiagnosticStatus[] status\n",
    ),
];

fn interface_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("msg").join(kind)
}

/// Lists `(file stem, text)` of every file with `extension` in msg/`kind`, sorted.
fn interface_files(kind: &str, extension: &str) -> Result<Vec<(String, String)>> {
    let dir = interface_dir(kind);
    let mut files = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(extension) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("file name is not UTF-8")?
            .to_owned();
        let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        files.push((stem, text));
    }
    files.sort();
    Ok(files)
}

/// Lists the differences between a parsed definition and a Rust type's description.
fn differences(definition: &Definition, description: &MessageDescription) -> Vec<String> {
    let mut found = Vec::new();
    let parsed: Vec<(String, String)> = definition
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.field_type.to_string()))
        .collect();
    let rust: Vec<(String, String)> = description
        .fields
        .iter()
        .map(|f| (f.name.to_owned(), f.ros_type.clone()))
        .collect();
    if parsed != rust {
        found.push(format!("fields: file {parsed:?}, Rust {rust:?}"));
    }

    let parsed: Vec<(String, String, String)> = definition
        .constants
        .iter()
        .map(|c| (c.name.clone(), c.field_type.to_string(), c.value.clone()))
        .collect();
    let rust: Vec<(String, String, String)> = description
        .constants
        .iter()
        .map(|c| (c.name.to_owned(), c.ros_type.clone(), c.value.clone()))
        .collect();
    if parsed != rust {
        found.push(format!("constants: file {parsed:?}, Rust {rust:?}"));
    }
    found
}

fn find<'a>(
    descriptions: &'a [MessageDescription],
    type_name: &str,
) -> Result<&'a MessageDescription> {
    match descriptions.iter().find(|d| d.type_name == type_name) {
        Some(description) => Ok(description),
        None => bail!("no Rust type for {type_name}: add one to src/msg"),
    }
}

#[test]
fn message_files_match_rust_types() -> Result<()> {
    let descriptions = msg::project_descriptions();
    let files = interface_files("msg", "msg")?;
    assert!(
        files.len() >= 6,
        "expected the clarify_msgs messages, found {files:?}"
    );

    for (name, text) in &files {
        let definition =
            parse_message(msg::PACKAGE, text).with_context(|| format!("parse {name}.msg"))?;
        let description = find(&descriptions, &format!("clarify_msgs/msg/{name}"))?;

        let found = differences(&definition, description);
        assert!(found.is_empty(), "{name}.msg: {found:#?}");
    }
    Ok(())
}

#[test]
fn service_files_match_rust_types() -> Result<()> {
    let descriptions = msg::project_descriptions();
    let files = interface_files("srv", "srv")?;
    assert_eq!(files.len(), 4, "{files:?}");

    for (name, text) in &files {
        let service =
            parse_service(msg::PACKAGE, text).with_context(|| format!("parse {name}.srv"))?;
        let request = find(&descriptions, &format!("clarify_msgs/srv/{name}_Request"))?;
        let response = find(&descriptions, &format!("clarify_msgs/srv/{name}_Response"))?;

        let found = differences(&service.request, request);
        assert!(found.is_empty(), "{name}.srv request: {found:#?}");
        let found = differences(&service.response, response);
        assert!(found.is_empty(), "{name}.srv response: {found:#?}");
    }
    Ok(())
}

#[test]
fn every_rust_type_has_a_file() -> Result<()> {
    let messages = interface_files("msg", "msg")?;
    let services = interface_files("srv", "srv")?;

    for description in msg::project_descriptions() {
        let (kind, name) = description
            .type_name
            .strip_prefix("clarify_msgs/")
            .and_then(|rest| rest.split_once('/'))
            .context("project type outside clarify_msgs")?;
        let exists = match kind {
            "msg" => messages.iter().any(|(stem, _)| stem == name),
            _ => {
                let stem = name.rsplit_once('_').map_or(name, |(stem, _)| stem);
                services.iter().any(|(file, _)| file == stem)
            }
        };
        assert!(exists, "{} has no interface file", description.type_name);
    }
    Ok(())
}

#[test]
fn standard_types_match_ros_definitions() -> Result<()> {
    let descriptions = msg::standard_descriptions();
    assert_eq!(descriptions.len(), STANDARD_DEFINITIONS.len());

    for (type_name, text) in STANDARD_DEFINITIONS {
        let package = type_name
            .split('/')
            .next()
            .context("type name without package")?;
        let definition =
            parse_message(package, text).with_context(|| format!("parse {type_name}"))?;
        let description = find(&descriptions, type_name)?;

        let found = differences(&definition, description);
        assert!(found.is_empty(), "{type_name}: {found:#?}");
    }
    Ok(())
}

#[test]
fn package_xml_and_cmake_declare_used_packages() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("msg");
    let package_xml = fs::read_to_string(root.join("package.xml"))?;
    let cmake = fs::read_to_string(root.join("CMakeLists.txt"))?;
    let mut used = std::collections::BTreeSet::new();
    for (kind, extension) in [("msg", "msg"), ("srv", "srv")] {
        for (_, text) in interface_files(kind, extension)? {
            for line in text.lines().map(|l| l.trim()) {
                let type_text = line.split_whitespace().next().unwrap_or("");
                if let Some((package, _)) = type_text.split_once('/')
                    && !line.starts_with('#')
                {
                    used.insert(package.to_owned());
                }
            }
        }
    }

    assert!(!used.is_empty());
    for package in &used {
        assert!(
            package_xml.contains(&format!("<depend>{package}</depend>")),
            "package.xml lacks {package}"
        );
        assert!(
            cmake.contains(&format!("find_package({package} REQUIRED)")),
            "CMakeLists.txt lacks {package}"
        );
    }
    Ok(())
}

#[test]
fn dds_type_names_follow_ros_convention() {
    assert_eq!(
        Transition::dds_type_name(),
        "clarify_msgs::msg::dds_::Transition_"
    );
    assert_eq!(
        SubmitAnswerRequest::dds_type_name(),
        "clarify_msgs::srv::dds_::SubmitAnswer_Request_"
    );
    assert_eq!(
        msg::JointState::dds_type_name(),
        "sensor_msgs::msg::dds_::JointState_"
    );
    assert_eq!(msg::Odometry::type_name(), "nav_msgs/msg/Odometry");
}

#[test]
fn messages_round_trip_through_json() -> Result<()> {
    let query = PreferenceQuery {
        stamp: msg::Time { sec: 5, nanosec: 7 },
        query_id: 42,
        left: SegmentRef {
            episode_id: 3,
            start_step: 10,
            length_steps: 1,
        },
        right: SegmentRef {
            episode_id: 4,
            start_step: 0,
            length_steps: 1,
        },
        observation_dim: 2,
        action_dim: 1,
        observation_names: vec!["x".into(), "y".into()],
        left_observations: vec![0.1, -2.5],
        left_actions: vec![1.0],
        right_observations: vec![3.25, f32::MIN_POSITIVE],
        right_actions: vec![-1.0],
        selector: "clarify".into(),
        ..PreferenceQuery::default()
    };
    let mut odometry = msg::Odometry::default();
    odometry.pose.covariance.0[35] = 0.125;

    assert_eq!(round_trip(&query)?, query);
    assert_eq!(round_trip(&odometry)?, odometry);
    assert_eq!(
        round_trip(&PreferenceAnswer {
            answer: PreferenceAnswer::SKIP,
            ..Default::default()
        })?
        .answer,
        4
    );
    Ok(())
}

fn round_trip<M: RosMessage>(message: &M) -> Result<M> {
    Ok(serde_json::from_str(&serde_json::to_string(message)?)?)
}

//! The manifest of a model set (`manifest.json`): what its networks expect and produce, and
//! where they came from.
//!
//! Format version 2 keeps every field of version 1 (which the Python policy evaluator reads)
//! with the same meaning, and adds the network files with their SHA-256, the segment length,
//! the versions of the networks, the hashes of the training data, training metrics and
//! library versions. Readers ignore fields they do not know.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::RegistryError;

/// Manifest format version that this crate writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 2;

/// File name of the manifest inside a model set folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Shape entry of a manifest tensor that accepts a batch of any size.
pub const BATCH_DIM: &str = "batch";

/// One axis of a tensor shape in a manifest: a fixed size or `"batch"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShapeDim {
    Fixed(usize),
    /// Only `"batch"` is accepted; [`Manifest::validate`] rejects other names.
    Named(String),
}

impl fmt::Display for ShapeDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(size) => write!(f, "{size}"),
            Self::Named(name) => write!(f, "\"{name}\""),
        }
    }
}

/// Name and shape of a network input or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorShape {
    pub name: String,
    pub shape: Vec<ShapeDim>,
}

impl TensorShape {
    /// Creates a `[batch, size]` tensor spec named `name`.
    pub fn batched(name: &str, size: usize) -> Self {
        Self {
            name: name.to_owned(),
            shape: vec![ShapeDim::Named(BATCH_DIM.to_owned()), ShapeDim::Fixed(size)],
        }
    }
}

/// Per-entry observation standardisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// True when the graph standardises raw observations itself; false when the caller feeds
    /// `(observation − mean) / std`.
    pub in_graph: bool,
}

/// Per-entry action limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionBounds {
    pub low: Vec<f32>,
    pub high: Vec<f32>,
}

/// One ONNX file of the set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFile {
    /// File name inside the set folder.
    pub file: String,
    /// SHA-256 of the file bytes, lower-case hex.
    pub sha256: String,
    pub inputs: Vec<TensorShape>,
    pub outputs: Vec<TensorShape>,
}

/// The networks of a set. Only the policy is required.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Networks {
    pub policy: NetworkFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<NetworkFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<NetworkFile>,
}

impl Networks {
    /// Returns the networks that are present, with their role names.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &NetworkFile)> {
        [
            ("policy", Some(&self.policy)),
            ("encoder", self.encoder.as_ref()),
            ("reward", self.reward.as_ref()),
        ]
        .into_iter()
        .filter_map(|(role, network)| network.map(|n| (role, n)))
    }
}

/// Versions of the method parts that produced the set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentVersions {
    pub encoder: String,
    pub reward: String,
    pub policy: String,
}

/// The training data a set was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataProvenance {
    /// SHA-256 of the dataset file (or of the store's episode data), lower-case hex.
    pub dataset_sha256: String,
    /// SHA-256 of the preference answers used, lower-case hex.
    pub answers_sha256: String,
    /// Number of preference answers used.
    pub answers_used: u64,
}

/// Names of the observation and action entries, in vector order. Empty lists mean unnamed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotInterface {
    #[serde(default)]
    pub observation_names: Vec<String>,
    #[serde(default)]
    pub action_names: Vec<String>,
}

/// The manifest of a model set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The set's version; equal to its folder name in the registry.
    pub version: String,
    pub observation_dim: usize,
    pub action_dim: usize,
    pub observation_normalization: Normalization,
    pub action_bounds: ActionBounds,
    /// The policy's inputs (first: the observation), as in format version 1.
    pub inputs: Vec<TensorShape>,
    /// The policy's outputs (first: the action), as in format version 1.
    pub outputs: Vec<TensorShape>,
    /// Steps per segment that the encoder and the reward model were trained on.
    pub segment_length: usize,
    pub networks: Networks,
    pub versions: ComponentVersions,
    pub data: DataProvenance,
    #[serde(default)]
    pub robot: RobotInterface,
    /// Training metrics by name (losses, reward accuracy, ...).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Versions of the libraries that trained and exported the set, by library name.
    #[serde(default)]
    pub libraries: BTreeMap<String, String>,
}

/// Values a manifest must match before its set is used, each with the place it comes from
/// ("the robot", "the dataset", ...). `None` fields are not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectation {
    pub observation_dim: Option<(usize, String)>,
    pub action_dim: Option<(usize, String)>,
    pub segment_length: Option<(usize, String)>,
    pub dataset_sha256: Option<(String, String)>,
    /// Observation entry names in order; checked when the manifest names its entries.
    pub observation_names: Option<(Vec<String>, String)>,
}

impl Manifest {
    /// Parses a manifest from JSON and validates it. `source` names the file in errors.
    pub fn from_json(text: &str, source: &str) -> Result<Self, RegistryError> {
        let manifest: Self =
            serde_json::from_str(text).map_err(|error| RegistryError::ManifestParse {
                path: source.to_owned(),
                message: error.to_string(),
            })?;
        manifest.validate(source)?;
        Ok(manifest)
    }

    /// Serialises the manifest as indented JSON.
    pub fn to_json(&self) -> String {
        // A manifest holds only strings, numbers, lists and maps with string keys.
        serde_json::to_string_pretty(self).expect("a manifest always serialises")
    }

    /// Checks the fields against each other: format version, list lengths, finite numbers,
    /// positive standard deviations, ordered bounds, shapes and the policy's tensors.
    pub fn validate(&self, source: &str) -> Result<(), RegistryError> {
        let invalid = |field: &str, value: String, expected: String| RegistryError::Manifest {
            path: source.to_owned(),
            field: field.to_owned(),
            value,
            expected,
        };
        if self.format_version != MANIFEST_FORMAT_VERSION {
            return Err(invalid(
                "format_version",
                self.format_version.to_string(),
                format!("{MANIFEST_FORMAT_VERSION}"),
            ));
        }
        check_version_name(&self.version).map_err(|reason| {
            invalid("version", format!("{:?}", self.version), reason.to_owned())
        })?;
        for (field, value) in [
            ("observation_dim", self.observation_dim),
            ("action_dim", self.action_dim),
            ("segment_length", self.segment_length),
        ] {
            if value == 0 {
                return Err(invalid(field, "0".to_owned(), "at least 1".to_owned()));
            }
        }
        let normalization = &self.observation_normalization;
        let bounds = &self.action_bounds;
        for (field, values, length, length_name) in [
            (
                "observation_normalization.mean",
                &normalization.mean,
                self.observation_dim,
                "observation_dim",
            ),
            (
                "observation_normalization.std",
                &normalization.std,
                self.observation_dim,
                "observation_dim",
            ),
            (
                "action_bounds.low",
                &bounds.low,
                self.action_dim,
                "action_dim",
            ),
            (
                "action_bounds.high",
                &bounds.high,
                self.action_dim,
                "action_dim",
            ),
        ] {
            if values.len() != length {
                return Err(invalid(
                    field,
                    format!("{} entries", values.len()),
                    format!("{length_name} = {length} entries"),
                ));
            }
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(invalid(
                    &format!("{field}[{index}]"),
                    values[index].to_string(),
                    "a finite number".to_owned(),
                ));
            }
        }
        if let Some(index) = normalization.std.iter().position(|&s| s <= 0.0) {
            return Err(invalid(
                &format!("observation_normalization.std[{index}]"),
                normalization.std[index].to_string(),
                "a positive number".to_owned(),
            ));
        }
        if let Some(index) = (0..self.action_dim).find(|&i| bounds.low[i] > bounds.high[i]) {
            return Err(invalid(
                &format!("action_bounds.low[{index}]"),
                bounds.low[index].to_string(),
                format!(
                    "at most action_bounds.high[{index}] = {}",
                    bounds.high[index]
                ),
            ));
        }

        for (role, network) in self.networks.iter() {
            let prefix = format!("networks.{role}");
            check_file_name(&network.file).map_err(|reason| {
                invalid(
                    &format!("{prefix}.file"),
                    format!("{:?}", network.file),
                    reason.to_owned(),
                )
            })?;
            let sha_ok = network.sha256.len() == 64
                && network
                    .sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !sha_ok {
                return Err(invalid(
                    &format!("{prefix}.sha256"),
                    format!("{:?}", network.sha256),
                    "64 lower-case hex digits".to_owned(),
                ));
            }
            check_tensors(&format!("{prefix}.inputs"), &network.inputs)
                .map_err(|(field, value, expected)| invalid(&field, value, expected.to_owned()))?;
            check_tensors(&format!("{prefix}.outputs"), &network.outputs)
                .map_err(|(field, value, expected)| invalid(&field, value, expected.to_owned()))?;
        }
        let policy = &self.networks.policy;
        if self.inputs != policy.inputs {
            return Err(invalid(
                "inputs",
                format_tensors(&self.inputs),
                format!(
                    "networks.policy.inputs = {}",
                    format_tensors(&policy.inputs)
                ),
            ));
        }
        if self.outputs != policy.outputs {
            return Err(invalid(
                "outputs",
                format_tensors(&self.outputs),
                format!(
                    "networks.policy.outputs = {}",
                    format_tensors(&policy.outputs)
                ),
            ));
        }
        let observation = &self.inputs[0];
        if fixed_size(observation) != self.observation_dim {
            return Err(invalid(
                "inputs[0].shape",
                format_shape(&observation.shape),
                format!(
                    "{} values per observation (observation_dim)",
                    self.observation_dim
                ),
            ));
        }
        let action = &self.outputs[0];
        if fixed_size(action) != self.action_dim {
            return Err(invalid(
                "outputs[0].shape",
                format_shape(&action.shape),
                format!("{} values per action (action_dim)", self.action_dim),
            ));
        }
        for (field, names, length, length_name) in [
            (
                "robot.observation_names",
                &self.robot.observation_names,
                self.observation_dim,
                "observation_dim",
            ),
            (
                "robot.action_names",
                &self.robot.action_names,
                self.action_dim,
                "action_dim",
            ),
        ] {
            if !names.is_empty() && names.len() != length {
                return Err(invalid(
                    field,
                    format!("{} names", names.len()),
                    format!("none or {length_name} = {length} names"),
                ));
            }
        }
        if let Some((name, value)) = self.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(invalid(
                &format!("metrics.{name}"),
                value.to_string(),
                "a finite number".to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks the manifest against what the data or the robot provide. The error names the
    /// first field that differs, with the expected and the found value.
    pub fn check(&self, expected: &Expectation) -> Result<(), RegistryError> {
        let mismatch =
            |field: &str, want: String, found: String, source: &str| RegistryError::Mismatch {
                version: self.version.clone(),
                field: field.to_owned(),
                expected: want,
                found,
                origin: source.to_owned(),
            };
        let sizes = [
            (
                "observation_dim",
                &expected.observation_dim,
                self.observation_dim,
            ),
            ("action_dim", &expected.action_dim, self.action_dim),
            (
                "segment_length",
                &expected.segment_length,
                self.segment_length,
            ),
        ];
        for (field, want, found) in sizes {
            if let Some((want, source)) = want
                && *want != found
            {
                return Err(mismatch(field, want.to_string(), found.to_string(), source));
            }
        }
        if let Some((want, source)) = &expected.dataset_sha256
            && *want != self.data.dataset_sha256
        {
            return Err(mismatch(
                "data.dataset_sha256",
                want.clone(),
                self.data.dataset_sha256.clone(),
                source,
            ));
        }
        if let Some((want, source)) = &expected.observation_names
            && !self.robot.observation_names.is_empty()
            && *want != self.robot.observation_names
        {
            let index = want
                .iter()
                .zip(&self.robot.observation_names)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(self.robot.observation_names.len()));
            return Err(mismatch(
                &format!("robot.observation_names[{index}]"),
                want.get(index)
                    .cloned()
                    .unwrap_or_else(|| "(none)".to_owned()),
                self.robot
                    .observation_names
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| "(none)".to_owned()),
                source,
            ));
        }
        Ok(())
    }
}

/// Checks a version name: 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`,
/// and not `current`.
pub fn check_version_name(version: &str) -> Result<(), &'static str> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && !version.starts_with('.')
        && version != "current"
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("1 to 64 letters, digits, '.', '_' or '-', not starting with '.' and not \"current\"")
    }
}

fn check_file_name(file: &str) -> Result<(), &'static str> {
    let ok = !file.is_empty()
        && !file.starts_with('.')
        && file != MANIFEST_FILE
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("a plain file name inside the set folder (letters, digits, '.', '_', '-')")
    }
}

fn check_tensors(
    field: &str,
    tensors: &[TensorShape],
) -> Result<(), (String, String, &'static str)> {
    if tensors.is_empty() {
        return Err((field.to_owned(), "[]".to_owned(), "at least one tensor"));
    }
    for (index, tensor) in tensors.iter().enumerate() {
        if tensor.name.is_empty() {
            return Err((
                format!("{field}[{index}].name"),
                "\"\"".to_owned(),
                "a non-empty name",
            ));
        }
        if tensor.shape.is_empty() {
            return Err((
                format!("{field}[{index}].shape"),
                "[]".to_owned(),
                "at least one axis",
            ));
        }
        for (axis, dim) in tensor.shape.iter().enumerate() {
            let ok = match dim {
                ShapeDim::Fixed(size) => *size > 0,
                ShapeDim::Named(name) => name == BATCH_DIM,
            };
            if !ok {
                return Err((
                    format!("{field}[{index}].shape[{axis}]"),
                    dim.to_string(),
                    "a positive integer or \"batch\"",
                ));
            }
        }
    }
    Ok(())
}

/// Product of the fixed axes: the values per batch entry.
pub(crate) fn fixed_size(tensor: &TensorShape) -> usize {
    tensor
        .shape
        .iter()
        .map(|dim| match dim {
            ShapeDim::Fixed(size) => *size,
            ShapeDim::Named(_) => 1,
        })
        .product()
}

pub(crate) fn format_shape(shape: &[ShapeDim]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

fn format_tensors(tensors: &[TensorShape]) -> String {
    let parts: Vec<String> = tensors
        .iter()
        .map(|t| format!("{}: {}", t.name, format_shape(&t.shape)))
        .collect();
    format!("[{}]", parts.join(", "))
}

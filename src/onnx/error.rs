use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use thiserror::Error;

/// A graph or model that the exporter cannot write.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error(
        "unsupported opset {opset}: the exporter writes opsets {}..={}",
        supported.start(),
        supported.end()
    )]
    UnsupportedOpset {
        opset: i64,
        supported: RangeInclusive<i64>,
    },

    #[error("invalid empty {kind} name")]
    EmptyName { kind: &'static str },

    #[error("duplicate name `{name}` in the graph: value, node and output names must be unique")]
    DuplicateName { name: String },

    #[error(
        "{node} reads the undefined value `{value}`: add the graph input, initializer or node \
         that produces it first"
    )]
    UndefinedValue { node: String, value: String },

    #[error("tensor `{name}` with dims {dims:?} needs their product of elements, but has {found}")]
    ElementCount {
        name: String,
        dims: Vec<usize>,
        found: usize,
    },

    #[error("tensor `{name}` has the non-finite value {value} at flat index {index}")]
    NonFiniteValue {
        name: String,
        index: usize,
        value: f32,
    },

    #[error("invalid {parameter} {value}: {expected}")]
    InvalidParameter {
        parameter: String,
        value: String,
        expected: &'static str,
    },

    #[error("graph `{graph}` has no outputs: declare at least one with add_output")]
    NoOutputs { graph: String },

    #[error("duplicate metadata key `{key}`")]
    DuplicateMetadataKey { key: String },

    #[error("failed to write ONNX model {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

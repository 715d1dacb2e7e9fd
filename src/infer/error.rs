use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use super::config::ExecutionProviderKind;

/// The ONNX Runtime release that this build of clarify is written for, as `major.minor`.
pub const ONNX_RUNTIME_VERSION: &str = "1.31";

const INSTALL_HINT: &str = "install ONNX Runtime 1.31 into the project's Python environment with \
     `.venv/bin/pip install onnxruntime==1.31.1` (CPU) or `onnxruntime-gpu==1.31.1` (needs CUDA \
     13), or set library_path or ORT_DYLIB_PATH to its libonnxruntime.so.1.31.x";

/// A place where the runtime looked for the ONNX Runtime library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriedPath {
    /// Origin of the path: `library_path`, `ORT_DYLIB_PATH` or `.venv search`.
    pub source: &'static str,
    /// A file path, or a pattern with `*` for a directory search.
    pub path: PathBuf,
}

impl fmt::Display for TriedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.source)
    }
}

/// Tried paths as a `; `-separated list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriedPaths(pub Vec<TriedPath>);

impl fmt::Display for TriedPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, tried) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{tried}")?;
        }
        Ok(())
    }
}

/// Whether a tensor is a model input or output, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    Input,
    Output,
}

impl fmt::Display for TensorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TensorRole::Input => "input",
            TensorRole::Output => "output",
        })
    }
}

/// Failures of the inference runtime: configuration, library loading, model loading and runs.
#[derive(Debug, Error)]
pub enum InferError {
    #[error("invalid inference setting {field} = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "execution provider {provider} is requested and require_gpu is true, but this build of \
         clarify lacks it: rebuild with `--features {provider}` or remove {provider} from \
         execution_providers"
    )]
    ProviderNotCompiled { provider: ExecutionProviderKind },

    #[error("ONNX Runtime library not found, tried {tried}. To fix it, {INSTALL_HINT}")]
    LibraryNotFound { tried: TriedPaths },

    #[error(
        "ONNX Runtime library {path} is version {found}, but clarify needs \
         {ONNX_RUNTIME_VERSION}.x; {INSTALL_HINT}"
    )]
    LibraryVersion { path: PathBuf, found: String },

    #[error("failed to load the ONNX Runtime library {path}: {message}; {INSTALL_HINT}")]
    LibraryLoad { path: PathBuf, message: String },

    #[error(
        "ONNX Runtime is already loaded from {loaded} in this process, so {requested} cannot be \
         loaded: use one library_path for every runtime of a process"
    )]
    LibraryConflict { loaded: PathBuf, requested: PathBuf },

    #[error("failed to create the ONNX Runtime environment: {0}")]
    Environment(#[source] ort::Error),

    #[error(
        "model {model}: require_gpu is true, but no GPU execution provider could be used: \
         {reasons}"
    )]
    GpuUnavailable { model: PathBuf, reasons: String },

    #[error("failed to load ONNX model {model}: {source}")]
    ModelLoad {
        model: PathBuf,
        #[source]
        source: ort::Error,
    },

    #[error("model {model} has {role}s {found:?}, expected {expected:?}")]
    TensorCount {
        model: PathBuf,
        role: TensorRole,
        found: Vec<String>,
        expected: Vec<String>,
    },

    #[error(
        "model {model}: {role} {index} is named `{found}`, expected `{expected}`: export the \
         model with the expected names or load the model that matches this caller"
    )]
    TensorName {
        model: PathBuf,
        role: TensorRole,
        index: usize,
        found: String,
        expected: String,
    },

    #[error("model {model}: {role} `{name}` is {found}, expected {expected}")]
    TensorType {
        model: PathBuf,
        role: TensorRole,
        name: String,
        found: String,
        expected: &'static str,
    },

    #[error("model {model}: input `{name}` is {found}, expected {expected}")]
    InputType {
        model: PathBuf,
        name: String,
        found: &'static str,
        expected: &'static str,
    },

    #[error("model {model}: {role} `{name}` has rank {found}, expected rank {expected}")]
    TensorRank {
        model: PathBuf,
        role: TensorRole,
        name: String,
        found: usize,
        expected: usize,
    },

    #[error("model {model}: run got {found} input arrays, expected {expected}")]
    InputCount {
        model: PathBuf,
        found: usize,
        expected: usize,
    },

    #[error("model {model}: input `{name}` has shape {found:?}, expected {expected}")]
    InputShape {
        model: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: String,
    },

    #[error("model {model}: run failed: {source}")]
    Run {
        model: PathBuf,
        #[source]
        source: ort::Error,
    },

    #[error("model {model}: output `{output}` has the non-finite value {value} at index {index:?}")]
    NonFiniteOutput {
        model: PathBuf,
        output: String,
        index: Vec<usize>,
        value: f32,
    },
}

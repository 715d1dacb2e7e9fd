//! Inference with ONNX Runtime through the `ort` crate.
//!
//! ONNX Runtime 1.31 is loaded at run time from a shared library: the `library_path` setting,
//! then `ORT_DYLIB_PATH`, then the `onnxruntime` or `onnxruntime-gpu` wheel in the project's
//! `.venv`. Execution providers are tried in the configured order (default TensorRT, CUDA,
//! CPU). TensorRT and CUDA need the `tensorrt` and `cuda` cargo features and a GPU build of the
//! library. Without them, models run on CPU, or fail to load when `require_gpu` is set.
//!
//! A [`Model`] checks the names, element type and rank of its inputs and outputs when it is
//! loaded, and the finiteness of its outputs on every run. ONNX Runtime's own log messages are
//! forwarded to `tracing` under the target [`ONNX_RUNTIME_LOG_TARGET`].

mod config;
mod error;
mod library;
mod model;
mod providers;
mod runtime;

pub use config::{ExecutionProviderKind, InferConfig};
pub use error::{InferError, ONNX_RUNTIME_VERSION, TensorRole, TriedPath, TriedPaths};
pub use library::{LIBRARY_PATH_VARIABLE, LibraryLocation, LibrarySearch};
pub use model::{
    InputArray, Model, ModelSignature, TensorDim, TensorElement, TensorInfo, TensorSpec,
};
pub use runtime::{ONNX_RUNTIME_LOG_TARGET, Runtime};

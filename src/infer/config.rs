//! Settings of the inference runtime.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::InferError;

/// An ONNX Runtime execution provider that the configuration can request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProviderKind {
    /// NVIDIA TensorRT (`TensorrtExecutionProvider`). Needs the `tensorrt` cargo feature.
    TensorRt,
    /// NVIDIA CUDA (`CUDAExecutionProvider`). Needs the `cuda` cargo feature.
    Cuda,
    /// ONNX Runtime's own CPU kernels (`CPUExecutionProvider`), always available.
    Cpu,
}

impl ExecutionProviderKind {
    /// Returns the configuration spelling: `tensorrt`, `cuda` or `cpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TensorRt => "tensorrt",
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }

    /// Returns whether the provider runs on a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::TensorRt | Self::Cuda)
    }

    /// Returns whether this build of clarify includes the provider (the cargo feature of the
    /// same name for `tensorrt` and `cuda`).
    pub fn is_compiled_in(self) -> bool {
        match self {
            Self::TensorRt => cfg!(feature = "tensorrt"),
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Cpu => true,
        }
    }
}

impl fmt::Display for ExecutionProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of the inference runtime, usually read from the node's configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferConfig {
    /// Path of the ONNX Runtime shared library (`libonnxruntime.so.1.31.1`). When unset, the
    /// runtime tries `ORT_DYLIB_PATH`, then the project's Python environment `.venv`.
    pub library_path: Option<PathBuf>,
    /// Execution providers in order of preference. ONNX Runtime gives each node to the first
    /// registered provider that supports it and runs the rest on CPU, so `cpu` must come last
    /// when listed. Default: `tensorrt`, `cuda`, `cpu`.
    pub execution_providers: Vec<ExecutionProviderKind>,
    /// Whether TensorRT may build FP16 engines. Default: false.
    pub tensorrt_fp16: bool,
    /// Directory where TensorRT stores built engines, so later sessions skip the engine build.
    /// Default: unset (no engine cache).
    pub tensorrt_engine_cache_dir: Option<PathBuf>,
    /// Whether a model must run on a GPU provider. When true, loading fails instead of falling
    /// back to CPU. Default: false.
    pub require_gpu: bool,
    /// Threads that one operator may use. 0 lets ONNX Runtime choose, which its thread
    /// management guide gives as one thread per physical core. Default: 0.
    pub intra_op_threads: usize,
}

impl Default for InferConfig {
    fn default() -> Self {
        Self {
            library_path: None,
            execution_providers: vec![
                ExecutionProviderKind::TensorRt,
                ExecutionProviderKind::Cuda,
                ExecutionProviderKind::Cpu,
            ],
            tensorrt_fp16: false,
            tensorrt_engine_cache_dir: None,
            require_gpu: false,
            intra_op_threads: 0,
        }
    }
}

impl InferConfig {
    /// Checks the settings that serde cannot: the provider list and the paths.
    pub fn validate(&self) -> Result<(), InferError> {
        let providers = &self.execution_providers;
        if providers.is_empty() {
            return Err(invalid(
                "execution_providers",
                "[]",
                "list at least one of tensorrt, cuda, cpu",
            ));
        }
        for (index, provider) in providers.iter().enumerate() {
            if providers[..index].contains(provider) {
                return Err(invalid(
                    "execution_providers",
                    &format_providers(providers),
                    &format!("{provider} is listed twice: list each provider once"),
                ));
            }
        }
        let cpu_position = providers
            .iter()
            .position(|&p| p == ExecutionProviderKind::Cpu);
        if cpu_position.is_some_and(|position| position + 1 != providers.len()) {
            return Err(invalid(
                "execution_providers",
                &format_providers(providers),
                "cpu must be last, because the CPU provider takes every node and providers after \
                 it would never run",
            ));
        }
        if self.require_gpu && !providers.iter().any(|p| p.is_gpu()) {
            return Err(invalid(
                "execution_providers",
                &format_providers(providers),
                "require_gpu is true, so list tensorrt or cuda",
            ));
        }
        for (field, path) in [
            ("library_path", &self.library_path),
            ("tensorrt_engine_cache_dir", &self.tensorrt_engine_cache_dir),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(invalid(field, "\"\"", "give a path or leave the field out"));
            }
        }
        Ok(())
    }
}

/// Formats a provider list in the configuration spelling, as in `[tensorrt, cuda, cpu]`.
pub(crate) fn format_providers(providers: &[ExecutionProviderKind]) -> String {
    let names: Vec<&str> = providers.iter().map(|p| p.as_str()).collect();
    format!("[{}]", names.join(", "))
}

fn invalid(field: &'static str, value: &str, reason: &str) -> InferError {
    InferError::InvalidConfig {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

//! Registration of the configured execution providers on a session.
//!
//! Providers are registered one at a time, in the configured order, so a failure is attributed
//! to its provider. The first GPU provider that registers is the one reported as in use:
//! ONNX Runtime gives each node to the first registered provider that supports it, and nodes
//! that no GPU provider takes run on CPU.

use std::path::Path;

use ort::session::builder::SessionBuilder;

use super::config::{ExecutionProviderKind, InferConfig};
use super::error::InferError;

/// Registers the GPU providers of `config` on `builder` and returns the provider in use.
///
/// A compiled-in provider that fails to register is logged at WARN with the provider used
/// instead, unless no GPU provider registers and `require_gpu` is set, which is an error.
pub(crate) fn register_providers(
    builder: &mut SessionBuilder,
    config: &InferConfig,
    model: &Path,
) -> Result<ExecutionProviderKind, InferError> {
    let mut in_use = None;
    let mut failures = Vec::new();
    for &provider in config.execution_providers.iter().filter(|p| p.is_gpu()) {
        let result = if provider.is_compiled_in() {
            register(builder, provider, config)
        } else {
            Err(format!("this build lacks the `{provider}` cargo feature"))
        };
        match result {
            Ok(()) => {
                in_use.get_or_insert(provider);
            }
            Err(reason) => failures.push((provider, reason)),
        }
    }

    if in_use.is_none() && config.require_gpu {
        let reasons: Vec<String> = failures
            .iter()
            .map(|(provider, reason)| format!("{provider}: {reason}"))
            .collect();
        return Err(InferError::GpuUnavailable {
            model: model.to_path_buf(),
            reasons: reasons.join("; "),
        });
    }
    let in_use = in_use.unwrap_or(ExecutionProviderKind::Cpu);
    // Runtime::new already logged the providers that are not compiled in.
    for (provider, reason) in failures.iter().filter(|(p, _)| p.is_compiled_in()) {
        tracing::warn!(
            model = %model.display(),
            %provider,
            fallback = %in_use,
            "execution provider {provider} is unavailable ({reason}); the model runs on {in_use}"
        );
    }
    Ok(in_use)
}

// `builder` is unused without both GPU features and `config` without `tensorrt`.
#[cfg_attr(
    not(all(feature = "cuda", feature = "tensorrt")),
    allow(unused_variables)
)]
fn register(
    builder: &mut SessionBuilder,
    provider: ExecutionProviderKind,
    config: &InferConfig,
) -> Result<(), String> {
    match provider {
        #[cfg(feature = "tensorrt")]
        ExecutionProviderKind::TensorRt => register_tensorrt(builder, config),
        #[cfg(feature = "cuda")]
        ExecutionProviderKind::Cuda => register_cuda(builder),
        // The caller only registers GPU providers that are compiled in.
        _ => Err(format!("{provider} cannot be registered in this build")),
    }
}

// NOTE: register_tensorrt and register_cuda past the availability check have not run against a
// GPU build of ONNX Runtime. The tests use the CPU wheel, which stops at that check.
#[cfg(feature = "tensorrt")]
fn register_tensorrt(builder: &mut SessionBuilder, config: &InferConfig) -> Result<(), String> {
    use ort::ep::{ExecutionProvider, TensorRT};

    check_available::<TensorRT>(
        "install onnxruntime-gpu==1.31.1 and the TensorRT 10, CUDA 13 and cuDNN 9 libraries",
    )?;
    let mut tensorrt = TensorRT::default().with_fp16(config.tensorrt_fp16);
    if let Some(dir) = &config.tensorrt_engine_cache_dir {
        std::fs::create_dir_all(dir).map_err(|error| {
            format!(
                "failed to create the TensorRT engine cache directory {}: {error}",
                dir.display()
            )
        })?;
        tensorrt = tensorrt
            .with_engine_cache(true)
            .with_engine_cache_path(dir.display());
    }
    tensorrt
        .register(builder)
        .map_err(|error| error.to_string())
}

#[cfg(feature = "cuda")]
fn register_cuda(builder: &mut SessionBuilder) -> Result<(), String> {
    use ort::ep::{CUDA, ExecutionProvider};

    check_available::<CUDA>(
        "install onnxruntime-gpu==1.31.1 with the CUDA 13 and cuDNN 9 libraries",
    )?;
    CUDA::default()
        .register(builder)
        .map_err(|error| error.to_string())
}

/// Checks that the loaded library was built with provider `E`. A CPU build of ONNX Runtime
/// (the `onnxruntime` wheel) has neither CUDA nor TensorRT.
#[cfg(any(feature = "cuda", feature = "tensorrt"))]
fn check_available<E: ort::ep::ExecutionProvider>(fix: &str) -> Result<(), String> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "the loaded ONNX Runtime library was built without {}: {fix}",
            E::NAME
        )),
        Err(error) => Err(format!("failed to list the library's providers: {error}")),
    }
}

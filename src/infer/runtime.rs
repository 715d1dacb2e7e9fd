//! The process-wide ONNX Runtime environment and the [`Runtime`] handle that loads models.
//!
//! ort loads one ONNX Runtime library per process and allows one environment per process, so
//! every [`Runtime`] shares one environment created by the first successful
//! [`Runtime::new`]. Later runtimes may use other provider settings but must name the same
//! library.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use ort::environment::{Environment, EnvironmentBuilder};
use ort::logging::LogLevel;

use super::config::{ExecutionProviderKind, InferConfig};
use super::error::InferError;
use super::library::{LibraryLocation, LibrarySearch};
use super::model::{Model, ModelSignature};

/// `tracing` target of the messages that ONNX Runtime itself logs.
pub const ONNX_RUNTIME_LOG_TARGET: &str = "onnxruntime";

struct SharedEnvironment {
    environment: Environment,
    library: LibraryLocation,
}

/// Library and environment that this process has loaded. The library stays loaded even when
/// creating the environment fails, so a retry must not name another library.
struct ProcessState {
    loaded_library: Option<LibraryLocation>,
    shared: Option<Arc<SharedEnvironment>>,
}

static PROCESS_STATE: Mutex<ProcessState> = Mutex::new(ProcessState {
    loaded_library: None,
    shared: None,
});

/// A handle to ONNX Runtime with one set of provider settings, which loads [`Model`]s.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<SharedEnvironment>,
    config: InferConfig,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.shared.library)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Validates `config`, finds and loads the ONNX Runtime library (once per process) and
    /// creates the shared environment.
    ///
    /// Providers in `config` that this build lacks are logged at WARN with the provider used
    /// instead, or rejected when `require_gpu` is set.
    pub fn new(config: InferConfig) -> Result<Self, InferError> {
        config.validate()?;
        check_compiled_providers(&config)?;
        let search = LibrarySearch::from_process(config.library_path.as_deref());
        let shared = shared_environment(&search)?;
        Ok(Self { shared, config })
    }

    /// Returns the loaded ONNX Runtime library.
    pub fn library(&self) -> &LibraryLocation {
        &self.shared.library
    }

    /// Returns the settings this runtime loads models with.
    pub fn config(&self) -> &InferConfig {
        &self.config
    }

    /// Loads the ONNX model at `path` and checks its inputs and outputs against `signature`.
    pub fn load_model(&self, path: &Path, signature: &ModelSignature) -> Result<Model, InferError> {
        Model::load(&self.shared.environment, &self.config, path, signature)
    }
}

fn check_compiled_providers(config: &InferConfig) -> Result<(), InferError> {
    let providers = &config.execution_providers;
    for (index, &provider) in providers.iter().enumerate() {
        if provider.is_compiled_in() {
            continue;
        }
        if config.require_gpu {
            return Err(InferError::ProviderNotCompiled { provider });
        }
        let fallback = providers[index + 1..]
            .iter()
            .copied()
            .find(|p| p.is_compiled_in())
            .unwrap_or(ExecutionProviderKind::Cpu);
        tracing::warn!(
            %provider,
            %fallback,
            "execution provider {provider} is requested, but this build of clarify lacks the \
             `{provider}` cargo feature; using {fallback} instead"
        );
    }
    Ok(())
}

fn shared_environment(search: &LibrarySearch) -> Result<Arc<SharedEnvironment>, InferError> {
    let library = search.find()?;
    library.check_version()?;
    let mut state = PROCESS_STATE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(loaded) = &state.loaded_library
        && loaded.path != library.path
    {
        return Err(InferError::LibraryConflict {
            loaded: loaded.path.clone(),
            requested: library.path,
        });
    }
    if let Some(shared) = &state.shared {
        return Ok(Arc::clone(shared));
    }

    let builder = if state.loaded_library.is_some() {
        ort::init()
    } else {
        let builder = load_library(&library)?;
        state.loaded_library = Some(library.clone());
        builder
    };
    let environment = builder
        .with_name("clarify")
        .with_telemetry(false)
        .with_logger(Arc::new(forward_onnxruntime_log))
        .build()
        .map_err(InferError::Environment)?;
    environment.set_log_level(onnxruntime_log_level());

    let shared = Arc::new(SharedEnvironment {
        environment,
        library,
    });
    state.shared = Some(Arc::clone(&shared));
    Ok(shared)
}

fn load_library(library: &LibraryLocation) -> Result<EnvironmentBuilder, InferError> {
    if library.version.is_none() {
        tracing::warn!(
            library = %library.path.display(),
            "the ONNX Runtime library's file name has no version, so only ort's own check \
             (1.31 or newer) applies"
        );
    }
    let builder = ort::init_from(&library.path).map_err(|error| InferError::LibraryLoad {
        path: library.path.clone(),
        message: error.to_string(),
    })?;
    tracing::info!(
        library = %library.path.display(),
        source = library.source,
        version = library.version.as_deref().unwrap_or("unknown"),
        "loaded ONNX Runtime"
    );
    Ok(builder)
}

/// Sends one ONNX Runtime log message to `tracing` under [`ONNX_RUNTIME_LOG_TARGET`]. ONNX
/// Runtime's INFO messages describe internal steps (graph transforms, allocations), so they
/// become DEBUG events. VERBOSE becomes TRACE and FATAL becomes ERROR.
fn forward_onnxruntime_log(
    level: LogLevel,
    category: &str,
    log_id: &str,
    code_location: &str,
    message: &str,
) {
    match level {
        LogLevel::Verbose => tracing::trace!(
            target: ONNX_RUNTIME_LOG_TARGET, category, log_id, code_location, "{message}"
        ),
        LogLevel::Info => tracing::debug!(
            target: ONNX_RUNTIME_LOG_TARGET, category, log_id, code_location, "{message}"
        ),
        LogLevel::Warning => tracing::warn!(
            target: ONNX_RUNTIME_LOG_TARGET, category, log_id, code_location, "{message}"
        ),
        LogLevel::Error | LogLevel::Fatal => tracing::error!(
            target: ONNX_RUNTIME_LOG_TARGET, category, log_id, code_location, "{message}"
        ),
    }
}

/// Returns the most detailed ONNX Runtime severity whose messages the `tracing` subscriber of
/// this moment would record. ONNX Runtime filters below this severity itself, which saves
/// formatting messages that would be dropped. The severity is fixed when the environment is
/// created.
fn onnxruntime_log_level() -> LogLevel {
    use tracing::Level;
    if tracing::enabled!(target: ONNX_RUNTIME_LOG_TARGET, Level::TRACE) {
        LogLevel::Verbose
    } else if tracing::enabled!(target: ONNX_RUNTIME_LOG_TARGET, Level::DEBUG) {
        LogLevel::Info
    } else if tracing::enabled!(target: ONNX_RUNTIME_LOG_TARGET, Level::WARN) {
        LogLevel::Warning
    } else {
        LogLevel::Error
    }
}

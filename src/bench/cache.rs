//! The run cache: one JSON file per finished run (method × seed). Each file is named by a
//! hash of every setting the run depends on and of the dataset file, so an interrupted
//! benchmark resumes with the runs it has not finished.
//!
//! A run is cached only when all its rounds are done, because resuming inside a run would
//! need the reward model's and encoder's weights and optimizer state.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::BenchError;
use super::run::RunResult;
use super::settings::{ClaritySettings, Method};
use crate::learn::RewardModelConfig;
use crate::learn::encoder::EncoderConfig;

/// Version of the cached file layout and of the run procedure. Raising it makes every
/// cached run stale.
const CACHE_FORMAT: u32 = 1;

/// Everything a run's results depend on.
#[derive(Serialize)]
struct RunKey<'a> {
    format: u32,
    crate_version: &'a str,
    dataset_sha256: &'a str,
    method: Method,
    seed: u64,
    epsilon: f64,
    budget: usize,
    queries_per_round: usize,
    pool_factor: usize,
    segment_length: usize,
    reward: &'a RewardModelConfig,
    /// Only CLARIFY runs train an encoder, so only their key includes its settings.
    encoder: Option<&'a EncoderConfig>,
    eval_pairs: usize,
    eval_seed: u64,
}

/// Returns the cache key of the run of `method` with `seed`: 32 hex digits of the SHA-256
/// of the run's settings as JSON.
pub fn run_key(
    settings: &ClaritySettings,
    dataset_sha256: &str,
    method: Method,
    seed: u64,
) -> String {
    let key = RunKey {
        format: CACHE_FORMAT,
        crate_version: env!("CARGO_PKG_VERSION"),
        dataset_sha256,
        method,
        seed,
        epsilon: settings.epsilon,
        budget: settings.budget,
        queries_per_round: settings.queries_per_round,
        pool_factor: settings.pool_factor,
        segment_length: settings.segment_length,
        reward: &settings.reward,
        encoder: (method == Method::Clarify).then_some(&settings.encoder),
        eval_pairs: settings.eval_pairs,
        eval_seed: settings.eval_seed,
    };
    let json = serde_json::to_vec(&key).expect("the run key serializes to JSON");
    let digest = Sha256::digest(&json);
    digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A folder of cached runs.
#[derive(Clone, Debug)]
pub struct RunCache {
    dir: PathBuf,
}

impl RunCache {
    /// Uses `dir` as the cache folder. It is created on the first store.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Returns the cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the folder where a running run keeps its exported models.
    pub fn model_dir(&self, key: &str) -> PathBuf {
        self.dir.join("models").join(key)
    }

    fn run_path(&self, key: &str) -> PathBuf {
        self.dir.join("runs").join(format!("{key}.json"))
    }

    /// Returns the cached run with `key`, or `None` when there is none. A file that cannot
    /// be read or parsed, or that belongs to another key, is logged and ignored, so the run
    /// is repeated.
    pub fn load(&self, key: &str) -> Option<RunResult> {
        let path = self.run_path(key);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an unreadable cached run");
                return None;
            }
        };
        match serde_json::from_str::<RunResult>(&text) {
            Ok(result) if result.key == key => Some(result),
            Ok(result) => {
                tracing::warn!(
                    path = %path.display(),
                    found = result.key,
                    "ignoring a cached run stored under another key"
                );
                None
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an invalid cached run");
                None
            }
        }
    }

    /// Writes `result` to the cache. The file is written under a temporary name and then
    /// renamed, so an interrupted write leaves no partial file under the key's name.
    pub fn store(&self, result: &RunResult) -> Result<(), BenchError> {
        let path = self.run_path(&result.key);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BenchError::Io { path, source }
        };
        let folder = path.parent().expect("run paths have a parent folder");
        fs::create_dir_all(folder).map_err(io_error(folder))?;
        let temporary = path.with_extension("json.partial");
        let json = serde_json::to_string_pretty(result)?;
        fs::write(&temporary, json).map_err(io_error(&temporary))?;
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        Ok(())
    }
}

//! Rendered clips of simulator segments, cached on disk.
//!
//! [`ClipCache`] renders a segment of a dataset that stores simulator state with
//! `clarify_sim render` (an animated WebP), in the background: one worker thread, one
//! `nice`d child process at a time, a bounded queue and at most one queued render per
//! clip. A finished clip is a file `<key>.webp` in the cache folder. The key is a SHA-256
//! of the dataset's content hash, the episode index, the segment and the render settings,
//! so a changed dataset or setting never returns an old clip. The renderer
//! writes the clip under a temporary name, and the worker renames it into place, so a
//! file with the final name is always complete.
//!
//! A failed render is remembered for the life of the cache and not retried, so a clip
//! that cannot render does not start a child process at every request. A new cache (a
//! restarted node) tries again.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use ndarray_npy::NpzReader;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::MediaError;
use crate::store::ContentHash;

/// Fields of a dataset file that the renderer needs to restore the simulator state of a
/// step (see `sim/clarify_sim/dataset.py`).
pub const STATE_FIELDS: [&str; 5] = ["rand_vecs", "qpos", "qvel", "mocap_pos", "mocap_quat"];

/// How often the worker checks a running render for exit and for a stop request.
const POLL: Duration = Duration::from_millis(50);

/// Settings of the clip cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipSettings {
    /// Whether segments of simulator datasets get rendered clips.
    pub enabled: bool,
    /// Folder of the cached clips, created when missing.
    pub cache_dir: PathBuf,
    /// Python interpreter with `clarify_sim` importable.
    pub python: PathBuf,
    /// Folder of the `clarify_sim` package, added to `PYTHONPATH`.
    pub sim_dir: PathBuf,
    /// Camera name of the renderer (`corner`, `topview`, `free`, ...).
    pub camera: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Renders that may wait in the queue; requests beyond it stay pending and are queued
    /// when requested again.
    pub queue_capacity: usize,
    /// Niceness added to the render process, 0 to 19; 0 runs it without `nice`.
    pub nice: i32,
    /// A render that runs longer than this many seconds is killed and marked failed.
    pub timeout_secs: f64,
}

impl Default for ClipSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_dir: PathBuf::from("clip-cache"),
            python: PathBuf::from(".venv/bin/python"),
            sim_dir: PathBuf::from("sim"),
            camera: "corner".to_owned(),
            width: 320,
            height: 240,
            queue_capacity: 16,
            nice: 10,
            timeout_secs: 300.0,
        }
    }
}

impl ClipSettings {
    /// Checks the settings, naming the first invalid one.
    pub fn validate(&self) -> Result<(), MediaError> {
        let invalid = |field: &str, value: String, expected: &str| {
            Err(MediaError::Config {
                field: field.to_owned(),
                value,
                expected: expected.to_owned(),
            })
        };
        for (field, path) in [
            ("clips.cache_dir", &self.cache_dir),
            ("clips.python", &self.python),
            ("clips.sim_dir", &self.sim_dir),
        ] {
            if path.as_os_str().is_empty() {
                return invalid(field, "\"\"".into(), "a path");
            }
        }
        if self.camera.is_empty() {
            return invalid(
                "clips.camera",
                "\"\"".into(),
                "a camera name such as corner",
            );
        }
        for (field, value) in [("clips.width", self.width), ("clips.height", self.height)] {
            if !(1..=4096).contains(&value) {
                return invalid(field, value.to_string(), "1 to 4096 pixels");
            }
        }
        if self.queue_capacity == 0 {
            return invalid("clips.queue_capacity", "0".into(), "at least 1");
        }
        if !(0..=19).contains(&self.nice) {
            return invalid("clips.nice", self.nice.to_string(), "0 to 19");
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            return invalid(
                "clips.timeout_secs",
                self.timeout_secs.to_string(),
                "a positive number of seconds",
            );
        }
        Ok(())
    }
}

/// One segment of a dataset file to render.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClipRequest {
    /// The dataset file (NPZ) as imported.
    pub dataset_path: PathBuf,
    /// Hex SHA-256 of the dataset file at import (`datasets.content_sha256`).
    pub dataset_sha256: String,
    /// Episode index within the dataset, 0-based.
    pub episode_index: usize,
    /// First step within the episode.
    pub start: usize,
    /// Number of steps.
    pub length: usize,
}

/// State of a clip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClipState {
    /// The clip is rendered; the file's path.
    Ready(PathBuf),
    /// The clip is queued or rendering.
    Pending,
    /// The dataset cannot be rendered; why.
    Unavailable(String),
    /// The render failed; why. The cache does not try again.
    Failed(String),
}

/// A queued render.
struct Job {
    key: String,
    request: ClipRequest,
}

#[derive(Default)]
struct Shared {
    /// Clips queued or rendering (`None`) or failed (the reason), by key.
    states: HashMap<String, Option<String>>,
    /// Whether a dataset can be rendered (`Ok`) or why not, by path and hash.
    renderable: HashMap<(PathBuf, String), Result<(), String>>,
    /// Datasets whose file was hashed and matched the stored hash, by path and hash.
    verified: HashMap<(PathBuf, String), Result<(), String>>,
}

/// Renders and caches segment clips; see the module documentation.
pub struct ClipCache {
    settings: ClipSettings,
    shared: Arc<Mutex<Shared>>,
    sender: Option<Sender<Job>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl ClipCache {
    /// Creates the cache folder when missing and starts the render worker.
    ///
    /// Fails on invalid settings, when the folder cannot be created, or when `nice` is
    /// set but the `nice` program is not on `PATH`.
    pub fn new(settings: ClipSettings) -> Result<Self, MediaError> {
        settings.validate()?;
        fs::create_dir_all(&settings.cache_dir).map_err(|source| MediaError::Io {
            operation: "create the clip cache folder",
            path: settings.cache_dir.clone(),
            source,
        })?;
        let nice_program = if settings.nice > 0 {
            Some(find_on_path("nice").ok_or_else(|| MediaError::Config {
                field: "clips.nice".into(),
                value: settings.nice.to_string(),
                expected: "0, because the `nice` program was not found on PATH".into(),
            })?)
        } else {
            None
        };
        remove_partial_files(&settings.cache_dir);

        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = bounded(settings.queue_capacity);
        let worker = Worker {
            settings: settings.clone(),
            nice_program,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
        };
        let worker = thread::Builder::new()
            .name("clip-render".to_owned())
            .spawn(move || worker.run(&receiver))
            .map_err(|source| MediaError::Thread {
                name: "clip render",
                source,
            })?;
        info!(folder = %settings.cache_dir.display(), "clip cache started");
        Ok(Self {
            settings,
            shared,
            sender: Some(sender),
            stop,
            worker: Some(worker),
        })
    }

    /// Returns the settings.
    pub fn settings(&self) -> &ClipSettings {
        &self.settings
    }

    /// Returns the cache key of a clip: the hex SHA-256 of the dataset hash, the segment
    /// and the render settings.
    pub fn key(&self, request: &ClipRequest) -> String {
        let settings = &self.settings;
        let identity = format!(
            "clarify clip 1\n{}\n{}\n{}\n{}\n{}\n{}x{}\n",
            request.dataset_sha256,
            request.episode_index,
            request.start,
            request.length,
            settings.camera,
            settings.width,
            settings.height
        );
        let digest = Sha256::digest(identity.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }

    /// Returns the path that the clip has once rendered.
    pub fn clip_path(&self, request: &ClipRequest) -> PathBuf {
        self.settings
            .cache_dir
            .join(format!("{}.webp", self.key(request)))
    }

    /// Returns the clip's state without starting a render.
    pub fn state(&self, request: &ClipRequest) -> ClipState {
        let path = self.clip_path(request);
        if path.is_file() {
            return ClipState::Ready(path);
        }
        let key = self.key(request);
        let shared = lock(&self.shared);
        match shared.states.get(&key) {
            Some(Some(reason)) => ClipState::Failed(reason.clone()),
            Some(None) => ClipState::Pending,
            None => match shared.renderable.get(&dataset_id(request)) {
                Some(Err(reason)) => ClipState::Unavailable(reason.clone()),
                _ => ClipState::Pending,
            },
        }
    }

    /// Returns the clip's state and queues a render when the clip is neither rendered,
    /// queued nor failed and its dataset can be rendered.
    ///
    /// A full queue leaves the clip unqueued and returns [`ClipState::Pending`]; the next
    /// request queues it.
    pub fn request(&self, request: &ClipRequest) -> ClipState {
        let path = self.clip_path(request);
        if path.is_file() {
            return ClipState::Ready(path);
        }
        let key = self.key(request);
        let id = dataset_id(request);
        let mut shared = lock(&self.shared);
        match shared.states.get(&key) {
            Some(Some(reason)) => return ClipState::Failed(reason.clone()),
            Some(None) => return ClipState::Pending,
            None => {}
        }

        let renderable = shared
            .renderable
            .entry(id)
            .or_insert_with(|| check_renderable(&request.dataset_path))
            .clone();
        if let Err(reason) = renderable {
            return ClipState::Unavailable(reason);
        }

        let Some(sender) = &self.sender else {
            return ClipState::Pending;
        };
        let job = Job {
            key: key.clone(),
            request: request.clone(),
        };
        match sender.try_send(job) {
            Ok(()) => {
                shared.states.insert(key, None);
                debug!(
                    episode = request.episode_index,
                    start = request.start,
                    length = request.length,
                    "clip render queued"
                );
            }
            Err(TrySendError::Full(_)) => {
                debug!(
                    capacity = self.settings.queue_capacity,
                    "clip render queue full; the request stays pending"
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                return ClipState::Failed("the clip render worker has stopped".into());
            }
        }
        ClipState::Pending
    }
}

impl Drop for ClipCache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.sender = None;
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            warn!("the clip render thread panicked");
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // The maps stay consistent across a panic: every update is one insert.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn dataset_id(request: &ClipRequest) -> (PathBuf, String) {
    (request.dataset_path.clone(), request.dataset_sha256.clone())
}

/// Checks that a dataset file has the state fields and a sidecar naming its task; returns
/// why not otherwise.
pub fn check_renderable(path: &Path) -> Result<(), String> {
    if path.extension().and_then(|extension| extension.to_str()) != Some("npz") {
        return Err(format!(
            "{} is not an NPZ dataset file, and only simulator datasets can be rendered",
            path.display()
        ));
    }
    let file = File::open(path)
        .map_err(|error| format!("dataset file {} cannot be opened: {error}", path.display()))?;
    let names = NpzReader::new(BufReader::new(file))
        .and_then(|mut npz| npz.names())
        .map_err(|error| {
            format!(
                "dataset file {} is not a readable NPZ archive: {error}",
                path.display()
            )
        })?;
    let missing: Vec<&str> = STATE_FIELDS
        .iter()
        .copied()
        .filter(|field| !names.iter().any(|name| name == field))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "dataset {} has no simulator state ({} missing), so its steps cannot be rendered",
            path.display(),
            missing.join(", ")
        ));
    }
    let sidecar = path.with_extension("json");
    let text = fs::read_to_string(&sidecar).map_err(|error| {
        format!(
            "sidecar {} cannot be read ({error}), so the dataset's task is unknown",
            sidecar.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("sidecar {} is not valid JSON: {error}", sidecar.display()))?;
    if !value["task"].is_string() {
        return Err(format!(
            "sidecar {} names no task, so the dataset cannot be rendered",
            sidecar.display()
        ));
    }
    Ok(())
}

/// Removes renders that a stopped process left unfinished.
///
/// NOTE: this also removes the unfinished renders of another running process that shares
/// the folder, so that render fails. Give each node its own cache folder.
fn remove_partial_files(folder: &Path) {
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".partial") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

struct Worker {
    settings: ClipSettings,
    nice_program: Option<PathBuf>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(&self, receiver: &Receiver<Job>) {
        for job in receiver.iter() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let started = Instant::now();
            let outcome = self.render(&job);
            let mut shared = lock(&self.shared);
            match outcome {
                Ok(()) => {
                    shared.states.remove(&job.key);
                    info!(
                        episode = job.request.episode_index,
                        start = job.request.start,
                        length = job.request.length,
                        secs = started.elapsed().as_secs_f64(),
                        "clip rendered"
                    );
                }
                Err(reason) => {
                    warn!(
                        episode = job.request.episode_index,
                        start = job.request.start,
                        length = job.request.length,
                        %reason,
                        "clip render failed; it will not be retried"
                    );
                    shared.states.insert(job.key, Some(reason));
                }
            }
        }
    }

    /// Renders one clip into the cache folder.
    fn render(&self, job: &Job) -> Result<(), String> {
        self.verify_dataset(&job.request)?;
        let folder = &self.settings.cache_dir;
        let partial = folder.join(format!(".{}.{}.partial.webp", job.key, std::process::id()));
        let target = folder.join(format!("{}.webp", job.key));
        let outcome = self.run_renderer(&job.request, &partial).and_then(|()| {
            fs::rename(&partial, &target).map_err(|error| {
                format!("failed to move the clip to {}: {error}", target.display())
            })
        });
        if outcome.is_err() {
            let _ = fs::remove_file(&partial);
        }
        outcome
    }

    /// Checks once per dataset that the file still has the content hash recorded at
    /// import, so that a replaced file never renders under the old dataset's name.
    fn verify_dataset(&self, request: &ClipRequest) -> Result<(), String> {
        let id = dataset_id(request);
        if let Some(known) = lock(&self.shared).verified.get(&id) {
            return known.clone();
        }
        let outcome = match ContentHash::of_file(&request.dataset_path) {
            Ok(hash) if hash.to_hex() == request.dataset_sha256 => Ok(()),
            Ok(hash) => Err(format!(
                "dataset file {} has changed since it was imported (sha256 {}, imported as {})",
                request.dataset_path.display(),
                hash.to_hex(),
                request.dataset_sha256
            )),
            Err(error) => Err(format!(
                "failed to read dataset file {}: {error}",
                request.dataset_path.display()
            )),
        };
        lock(&self.shared).verified.insert(id, outcome.clone());
        outcome
    }

    fn command(&self, request: &ClipRequest, out: &Path) -> Command {
        let settings = &self.settings;
        let mut command = match &self.nice_program {
            Some(nice) => {
                let mut command = Command::new(nice);
                command
                    .arg("-n")
                    .arg(settings.nice.to_string())
                    .arg(&settings.python);
                command
            }
            None => Command::new(&settings.python),
        };
        command
            .args(["-m", "clarify_sim", "--log-level", "WARNING", "render"])
            .arg(&request.dataset_path)
            .args(["--episode", &request.episode_index.to_string()])
            .args(["--start", &request.start.to_string()])
            .args(["--length", &request.length.to_string()])
            .args(["--camera", &settings.camera])
            .args(["--width", &settings.width.to_string()])
            .args(["--height", &settings.height.to_string()])
            .arg("--out")
            .arg(out)
            .env("PYTHONPATH", &settings.sim_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Runs the renderer, killing it on timeout or stop; returns its error output on
    /// failure.
    fn run_renderer(&self, request: &ClipRequest, out: &Path) -> Result<(), String> {
        let mut child = self.command(request, out).spawn().map_err(|error| {
            format!(
                "failed to start {}: {error}",
                self.settings.python.display()
            )
        })?;
        // The error output is read on its own thread, so a child that writes much of it
        // cannot block on a full pipe while this thread waits for it to exit.
        let stderr = child.stderr.take();
        let reader = thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut text);
            }
            text
        });
        let deadline = Instant::now() + Duration::from_secs_f64(self.settings.timeout_secs);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(error) => break Err(format!("failed to wait for the renderer: {error}")),
            }
            if self.stop.load(Ordering::Relaxed) {
                let _ = child.kill();
                let _ = child.wait();
                break Err("the clip cache stopped during the render".to_owned());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "the render ran longer than clips.timeout_secs = {} and was killed",
                    self.settings.timeout_secs
                ));
            }
            thread::sleep(POLL);
        };
        let stderr = reader.join().unwrap_or_default();
        let status = status?;
        if status.success() && out.is_file() {
            return Ok(());
        }
        Err(format!(
            "clarify_sim render exited with {status}: {}",
            last_lines(&stderr, 5)
        ))
    }
}

/// Returns the last `count` non-empty lines of `text`, joined by " | ".
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let first = lines.len().saturating_sub(count);
    let joined = lines[first..].join(" | ");
    if joined.is_empty() {
        "no error output".to_owned()
    } else {
        joined
    }
}

/// Reads a cached clip.
pub(super) fn read_clip(path: &Path) -> Result<Vec<u8>, MediaError> {
    fs::read(path).map_err(|source: io::Error| MediaError::Io {
        operation: "read the clip",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ClipRequest {
        ClipRequest {
            dataset_path: PathBuf::from("data/x.npz"),
            dataset_sha256: "ab".repeat(32),
            episode_index: 3,
            start: 10,
            length: 20,
        }
    }

    fn settings(folder: &Path) -> ClipSettings {
        ClipSettings {
            cache_dir: folder.join("clips"),
            nice: 0,
            ..ClipSettings::default()
        }
    }

    #[test]
    fn key_changes_with_segment_and_settings() {
        let folder = tempfile::tempdir().unwrap();
        let cache = ClipCache::new(settings(folder.path())).unwrap();
        let base = cache.key(&request());
        assert_eq!(base.len(), 64);
        assert_eq!(base, cache.key(&request()));
        let moved = ClipRequest {
            start: 11,
            ..request()
        };
        assert_ne!(base, cache.key(&moved));
        let wider = ClipCache::new(ClipSettings {
            width: 640,
            ..settings(folder.path())
        })
        .unwrap();
        assert_ne!(base, wider.key(&request()));
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let cases = [
            (
                "clips.width",
                ClipSettings {
                    width: 0,
                    ..ClipSettings::default()
                },
            ),
            (
                "clips.nice",
                ClipSettings {
                    nice: 20,
                    ..ClipSettings::default()
                },
            ),
            (
                "clips.timeout_secs",
                ClipSettings {
                    timeout_secs: f64::NAN,
                    ..ClipSettings::default()
                },
            ),
            (
                "clips.queue_capacity",
                ClipSettings {
                    queue_capacity: 0,
                    ..ClipSettings::default()
                },
            ),
        ];
        for (field, settings) in cases {
            let text = settings.validate().unwrap_err().to_string();
            assert!(text.contains(field), "{field}: {text}");
        }
    }

    #[test]
    fn non_npz_dataset_unavailable() {
        let folder = tempfile::tempdir().unwrap();
        let cache = ClipCache::new(settings(folder.path())).unwrap();
        let state = cache.request(&ClipRequest {
            dataset_path: PathBuf::from("ros2:/joint_states"),
            ..request()
        });
        let ClipState::Unavailable(reason) = state else {
            panic!("expected unavailable, got {state:?}");
        };
        assert!(reason.contains("not an NPZ dataset file"), "{reason}");
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(last_lines("", 2), "no error output");
    }
}

//! [`ModelManager`]: the services, publishers and thread of the model lifecycle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::child::{ChildCommand, ChildOutput, ProgressLine, TrainingChild, error_text};
use super::config::{DeployConfig, DeployError, find_on_path};
use super::validate::{self, Validation};
use super::{DeploySnapshot, TrainingState};
use crate::infer::Runtime;
use crate::msg::{
    ModelUpdate, RollbackModel, RollbackModelRequest, RollbackModelResponse, Time, TrainingStatus,
    TriggerRetrain, TriggerRetrainResponse,
};
use crate::registry::{Expectation, ModelSet, Registry};
use crate::store::{ModelStatus, RunStatus, Store, StoreError};
use crate::transport::{Publish, QosConfig, Transport, TransportError};

/// How often the thread checks for a stop request while idle or training.
const POLL: Duration = Duration::from_millis(200);
/// Minimum time between two RUNNING reports of the same stage.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// A thread-safe publish function, so the manager needs no transport type parameter.
type Sink<M> = Box<dyn Fn(M) -> Result<(), TransportError> + Send + Sync>;

fn sink<M, P>(publisher: P) -> Sink<M>
where
    M: crate::msg::RosMessage,
    P: Publish<M> + 'static,
{
    let publisher = Mutex::new(publisher);
    Box::new(move |message| lock(&publisher).publish(message))
}

/// Locks a mutex, taking the data of a poisoned one: every value behind these mutexes is
/// left consistent at each unlock, so a panic elsewhere does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum Command {
    Train { run_id: i64 },
}

struct State {
    snapshot: DeploySnapshot,
    /// Held-out reward accuracy measured at validation, by version.
    accuracies: HashMap<String, f32>,
}

struct Inner {
    config: DeployConfig,
    registry: Registry,
    runtime: Runtime,
    /// The `nice` program, when the child runs at a niceness above 0.
    nice_program: Option<PathBuf>,
    state: Mutex<State>,
    /// Held while the registry pointer is read, checked against and moved, so validation
    /// and rollback do not interleave.
    registry_lock: Mutex<()>,
    stop: AtomicBool,
    commands: Sender<Command>,
    publish_status: Sink<TrainingStatus>,
    publish_update: Sink<ModelUpdate>,
}

/// Runs training children, validates their sets, activates and announces them, and serves
/// TriggerRetrain and RollbackModel.
pub struct ModelManager {
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
    _servers: Vec<Box<dyn Send>>,
}

impl ModelManager {
    /// Creates the TriggerRetrain and RollbackModel services and the TrainingStatus and
    /// ModelUpdate publishers on `transport`, and a thread that runs training children,
    /// validates new sets, activates them and announces them. When a version is active, it
    /// is announced once with REASON_MANUAL, so that late subscribers of the latched
    /// ModelUpdate topic learn it.
    pub fn start<T>(transport: &mut T, config: DeployConfig) -> Result<Self, DeployError>
    where
        T: Transport,
        T::Publisher<TrainingStatus>: 'static,
        T::Publisher<ModelUpdate>: 'static,
        T::ServiceServer<TriggerRetrain>: 'static,
        T::ServiceServer<RollbackModel>: 'static,
    {
        config.validate()?;
        let nice_program = if config.nice > 0 {
            Some(find_on_path("nice").ok_or(DeployError::NiceNotFound { nice: config.nice })?)
        } else {
            None
        };
        let registry = Registry::open(&config.models_dir, config.keep)?;
        let runtime = Runtime::new(config.infer.clone())?;
        let pointer = registry.current()?;

        let status_publisher = transport.create_publisher::<TrainingStatus>(
            &config.topics.training_status,
            &QosConfig::latched(1),
        )?;
        let update_publisher = transport
            .create_publisher::<ModelUpdate>(&config.topics.model_update, &QosConfig::latched(1))?;
        let (commands, receiver) = crossbeam_channel::unbounded();
        let inner = Arc::new(Inner {
            registry,
            runtime,
            nice_program,
            state: Mutex::new(State {
                snapshot: DeploySnapshot {
                    deployed_version: pointer.as_ref().map(|p| p.version.clone()),
                    previous_version: pointer.as_ref().and_then(|p| p.previous.clone()),
                    ..DeploySnapshot::default()
                },
                accuracies: HashMap::new(),
            }),
            registry_lock: Mutex::new(()),
            stop: AtomicBool::new(false),
            commands,
            publish_status: sink(status_publisher),
            publish_update: sink(update_publisher),
            config,
        });

        let trigger_inner = Arc::clone(&inner);
        let trigger = transport.create_service_server::<TriggerRetrain, _>(
            &inner.config.topics.trigger_retrain,
            move |request| {
                let reason = if request.reason.is_empty() {
                    "TriggerRetrain service".to_owned()
                } else {
                    request.reason
                };
                match trigger_inner.try_start(&reason) {
                    Ok(run_id) => TriggerRetrainResponse {
                        accepted: true,
                        run_id,
                        message: String::new(),
                    },
                    Err(message) => {
                        tracing::info!(%reason, %message, "training request rejected");
                        TriggerRetrainResponse {
                            accepted: false,
                            run_id: 0,
                            message,
                        }
                    }
                }
            },
        )?;
        let rollback_inner = Arc::clone(&inner);
        let rollback = transport.create_service_server::<RollbackModel, _>(
            &inner.config.topics.rollback_model,
            move |request| rollback_inner.rollback(&request),
        )?;

        inner.publish_idle();
        if let Some(pointer) = &pointer {
            inner.announce_active(&pointer.version, pointer.previous.as_deref());
        }
        let worker_inner = Arc::clone(&inner);
        let worker = thread::Builder::new()
            .name("model-manager".to_owned())
            .spawn(move || worker_inner.work(receiver))
            .map_err(DeployError::Thread)?;
        tracing::info!(
            models = %inner.config.models_dir.display(),
            store = %inner.config.store_path.display(),
            active = pointer.as_ref().map(|p| p.version.as_str()).unwrap_or(""),
            retrain_after_answers = inner.config.retrain_after_answers,
            "model manager started"
        );
        Ok(Self {
            inner,
            worker: Some(worker),
            _servers: vec![Box::new(trigger), Box::new(rollback)],
        })
    }

    /// Counts one answer committed to the store, and starts a run when
    /// `retrain_after_answers` answers came since the last one started and none is running.
    pub fn answer_committed(&self) {
        let threshold = self.inner.config.retrain_after_answers;
        let due = {
            let mut state = lock(&self.inner.state);
            state.snapshot.answers_since_training += 1;
            threshold > 0
                && state.snapshot.answers_since_training >= threshold
                && !state.snapshot.training.is_running()
        };
        if due {
            let reason = format!("{threshold} new answers");
            if let Err(message) = self.inner.try_start(&reason) {
                tracing::warn!(%message, "automatic training run not started");
            }
        }
    }

    /// Takes back the count of one answer that an undo deleted. Does nothing when no
    /// answer came since the last run started, because that run already used it.
    pub fn answer_undone(&self) {
        let mut state = lock(&self.inner.state);
        state.snapshot.answers_since_training =
            state.snapshot.answers_since_training.saturating_sub(1);
    }

    /// Starts a training run as the TriggerRetrain service does; returns its run id, or
    /// why none started.
    pub fn trigger(&self, reason: &str) -> Result<i64, String> {
        self.inner.try_start(reason)
    }

    /// Returns the current state.
    pub fn snapshot(&self) -> DeploySnapshot {
        lock(&self.inner.state).snapshot.clone()
    }

    /// Stops the thread; a running training child is killed and its run reported as
    /// failed.
    pub fn stop(mut self) -> Result<(), DeployError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), DeployError> {
        self.inner.stop.store(true, Ordering::SeqCst);
        match self.worker.take() {
            Some(worker) => worker.join().map_err(|_| DeployError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for ModelManager {
    fn drop(&mut self) {
        if let Err(error) = self.shut_down() {
            tracing::error!(%error, "model manager did not stop cleanly");
        }
    }
}

impl Inner {
    fn work(&self, commands: Receiver<Command>) {
        while !self.stop.load(Ordering::SeqCst) {
            match commands.recv_timeout(POLL) {
                Ok(Command::Train { run_id }) => self.run_training(run_id),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        tracing::info!("model manager stopped");
    }

    /// Marks a run as started and hands it to the thread. The error explains why none started.
    fn try_start(&self, reason: &str) -> Result<i64, String> {
        let store_path = &self.config.store_path;
        if !store_path.is_file() {
            return Err(format!(
                "segment store {} not found: check the node's store_path",
                store_path.display()
            ));
        }
        if self.count_answers() == Some(0) {
            return Err(format!(
                "the segment store {} contains no answers (skips aside) to train on",
                self.config.store_path.display()
            ));
        }
        let mut state = lock(&self.state);
        if let TrainingState::Running { run_id, stage, .. } = &state.snapshot.training {
            return Err(format!(
                "training run {run_id} is already running (stage {stage}); try again when it \
                 has finished"
            ));
        }
        if self.stop.load(Ordering::SeqCst) {
            return Err("the model manager is stopping".to_owned());
        }
        // The run's row in the store gives it its id; the child closes it and the manager
        // overwrites the outcome when validation rejects the set.
        let run_id = Store::open(store_path)
            .and_then(|mut store| {
                store.start_training_run(self.count_answers().unwrap_or(0).into(), None)
            })
            .map_err(|error| {
                format!("cannot record a training run in the segment store: {error}")
            })?;
        if self.commands.send(Command::Train { run_id }).is_err() {
            self.close_run(run_id, "the model manager's thread has stopped");
            return Err("the model manager's thread has stopped".to_owned());
        }
        state.snapshot.answers_since_training = 0;
        state.snapshot.training = TrainingState::Running {
            run_id,
            stage: "start".to_owned(),
            progress: 0.0,
        };
        tracing::info!(run_id, reason, "training run requested");
        Ok(run_id)
    }

    fn run_training(&self, run_id: i64) {
        let mut run = Run {
            inner: self,
            run_id,
            started: Instant::now(),
            answers_used: self.count_answers(),
            last_report: None,
        };
        run.report_running("start", 0.0, "starting clarify train");

        let command = ChildCommand {
            program: &self.config.train_program,
            nice: self
                .nice_program
                .as_deref()
                .map(|nice| (nice, self.config.nice)),
            store: &self.config.store_path,
            models: &self.config.models_dir,
            keep: self.config.keep,
            run_id,
            extra: &self.config.train_args,
        }
        .build();
        tracing::info!(run_id, command = ?command, "starting training child");
        let mut child = match TrainingChild::spawn(command) {
            Ok(child) => child,
            Err(error) => {
                return run.fail(format!(
                    "cannot start {}: {error}",
                    self.config.train_program.display()
                ));
            }
        };

        let mut installed: Option<String> = None;
        let mut stopped = false;
        let mut timed_out = false;
        let limit = (self.config.time_limit_secs > 0.0)
            .then(|| Duration::from_secs_f64(self.config.time_limit_secs));
        loop {
            if self.stop.load(Ordering::SeqCst) {
                child.kill();
                stopped = true;
                break;
            }
            if limit.is_some_and(|limit| run.started.elapsed() >= limit) {
                child.kill();
                timed_out = true;
                break;
            }
            match child.next_line(POLL) {
                ChildOutput::Line(line) => match ProgressLine::parse(&line) {
                    Some(progress) => {
                        if progress.stage == "done" {
                            installed = progress.version.clone();
                        }
                        run.relay(&progress);
                    }
                    None => tracing::debug!(run_id, %line, "ignoring a non-progress line"),
                },
                ChildOutput::Quiet => {}
                ChildOutput::Closed => break,
            }
        }
        let (status, stderr) = child.finish();
        if stopped {
            return run.fail("the node stopped, so the training child was killed".to_owned());
        }
        if timed_out {
            return run.fail(format!(
                "clarify train ran longer than retrain.time_limit_secs = {} s and was killed",
                self.config.time_limit_secs
            ));
        }
        let status = match status {
            Ok(status) => status,
            Err(error) => return run.fail(format!("cannot wait for clarify train: {error}")),
        };
        if !status.success() {
            return run.fail(format!(
                "clarify train failed ({status}): {}",
                error_text(&stderr)
            ));
        }
        let Some(version) = installed else {
            return run.fail(
                "clarify train exited without reporting an installed version (no `done` line)"
                    .to_owned(),
            );
        };
        run.report_running("validate", 0.0, &format!("validating model set {version}"));
        self.deploy_candidate(&mut run, &version);
    }

    /// Validates `version`, and activates and announces it when it passes.
    fn deploy_candidate(&self, run: &mut Run<'_>, version: &str) {
        let _guard = lock(&self.registry_lock);
        let candidate = match self.registry.load(version) {
            Ok(set) => set,
            Err(error) => return run.reject(version, error.to_string()),
        };
        run.answers_used = u32::try_from(candidate.manifest.data.answers_used).ok();
        let active = self.active_set();
        let expected = self.expectation(active.as_ref());
        let result = validate::check_candidate(
            &self.runtime,
            &candidate,
            active.as_ref(),
            &expected,
            &self.config.store_path,
            self.config.accuracy_margin,
        );
        let validation = match result {
            Ok(validation) => validation,
            Err(reason) => return run.reject(version, reason),
        };
        let pointer = match self.registry.activate(version) {
            Ok(pointer) => pointer,
            Err(error) => return run.fail(format!("cannot activate model set {version}: {error}")),
        };
        self.publish_update(
            &candidate,
            pointer.previous.as_deref(),
            ModelUpdate::REASON_TRAINED,
            validation.reward_accuracy,
        );
        match self.registry.prune() {
            Ok(removed) => {
                for version in removed {
                    self.record_model_status(&version, ModelStatus::Retired);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot remove old model versions"),
        }
        {
            let mut state = lock(&self.state);
            state
                .accuracies
                .insert(version.to_owned(), validation.reward_accuracy);
            state.snapshot.deployed_version = Some(version.to_owned());
            state.snapshot.previous_version = pointer.previous.clone();
        }
        run.succeed(version, &validation);
    }

    /// Closes run `run_id` in the store as failed; a store error is logged, because the
    /// run's failure is already reported on TrainingStatus.
    fn close_run(&self, run_id: i64, message: &str) {
        let result = Store::open(&self.config.store_path)
            .and_then(|mut store| store.finish_training_run(run_id, RunStatus::Failed, None));
        if let Err(error) = result {
            tracing::warn!(run_id, %error, message, "failed to close the training run in the store");
        }
    }

    /// Records a model set's new status in the store. Sets installed outside the node may
    /// have no row, which is logged at debug level only.
    fn record_model_status(&self, version: &str, status: ModelStatus) {
        let result = Store::open(&self.config.store_path).and_then(|mut store| match status {
            ModelStatus::Active => store.activate_model(version),
            other => store.set_model_status(version, other),
        });
        match result {
            Ok(()) => {}
            Err(StoreError::ModelNotFound(_)) => {
                tracing::debug!(version, "model set has no row in the store");
            }
            Err(error) => {
                tracing::warn!(version, %error, "failed to record the model status in the store");
            }
        }
    }

    /// Serves RollbackModel: re-activates the previous or the named version after checking
    /// that it loads, and announces it.
    fn rollback(&self, request: &RollbackModelRequest) -> RollbackModelResponse {
        let _guard = lock(&self.registry_lock);
        let result = self.roll_back_to(&request.version);
        let active_version = self
            .registry
            .current()
            .ok()
            .flatten()
            .map(|pointer| pointer.version)
            .unwrap_or_default();
        match result {
            Ok(()) => RollbackModelResponse {
                success: true,
                active_version,
                message: String::new(),
            },
            Err(message) => {
                tracing::warn!(requested = %request.version, %message, "rollback rejected");
                RollbackModelResponse {
                    success: false,
                    active_version,
                    message,
                }
            }
        }
    }

    fn roll_back_to(&self, requested: &str) -> Result<(), String> {
        let pointer = self
            .registry
            .current()
            .map_err(|error| error.to_string())?
            .ok_or_else(|| {
                format!(
                    "no version is active in {}, so there is nothing to roll back from",
                    self.registry.root().display()
                )
            })?;
        let target = if requested.is_empty() {
            pointer.previous.clone().ok_or_else(|| {
                format!(
                    "version {} has no previous version: name the version to activate",
                    pointer.version
                )
            })?
        } else {
            requested.to_owned()
        };
        if target == pointer.version {
            return Err(format!("version {target} is already active"));
        }
        let set = self
            .registry
            .load(&target)
            .map_err(|error| error.to_string())?;
        let active = self.active_set();
        let expected = self.expectation(active.as_ref());
        validate::check_loads(&self.runtime, &set, &expected)
            .map_err(|reason| format!("version {target} failed validation: {reason}"))?;
        let new_pointer = self
            .registry
            .activate(&target)
            .map_err(|error| error.to_string())?;
        let accuracy = {
            let mut state = lock(&self.state);
            state.snapshot.deployed_version = Some(target.clone());
            state.snapshot.previous_version = new_pointer.previous.clone();
            state.accuracies.get(&target).copied().unwrap_or(f32::NAN)
        };
        self.publish_update(
            &set,
            new_pointer.previous.as_deref(),
            ModelUpdate::REASON_ROLLBACK,
            accuracy,
        );
        self.record_model_status(&target, ModelStatus::Active);
        tracing::info!(version = %target, previous = %pointer.version, "rolled back");
        Ok(())
    }

    /// Returns the active set, or `None` when none is active or it fails to load.
    fn active_set(&self) -> Option<ModelSet> {
        match self.registry.current() {
            Ok(Some(_)) => match self.registry.load_current() {
                Ok(set) => Some(set),
                Err(error) => {
                    tracing::warn!(%error, "cannot load the active model set");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot read the registry pointer");
                None
            }
        }
    }

    /// Returns the configured expectation, with the active set's sizes where the
    /// configuration fixes none, so that a new set keeps the robot's sizes.
    fn expectation(&self, active: Option<&ModelSet>) -> Expectation {
        let mut expected = self.config.expectation.clone();
        if let Some(active) = active {
            let source = format!("the active model set {}", active.version);
            expected
                .observation_dim
                .get_or_insert((active.manifest.observation_dim, source.clone()));
            expected
                .action_dim
                .get_or_insert((active.manifest.action_dim, source));
        }
        expected
    }

    /// Counts the stored answers that are not skips, the number a run trains on when the
    /// store holds one dataset. `None` when the store cannot be read.
    fn count_answers(&self) -> Option<u32> {
        if !self.config.store_path.is_file() {
            return None;
        }
        let counts = Store::open(&self.config.store_path)
            .and_then(|store| store.answer_counts())
            .map_err(|error| tracing::warn!(%error, "cannot count the stored answers"))
            .ok()?;
        let skips = counts.get(crate::Answer::Skip);
        u32::try_from(counts.total() - skips).ok()
    }

    fn publish_idle(&self) {
        self.publish_status(TrainingStatus {
            stamp: Time::now(),
            state: TrainingStatus::STATE_IDLE,
            ..TrainingStatus::default()
        });
    }

    fn publish_status(&self, status: TrainingStatus) {
        if let Err(error) = (self.publish_status)(status) {
            tracing::warn!(%error, "cannot publish the training status");
        }
    }

    fn announce_active(&self, version: &str, previous: Option<&str>) {
        match self.registry.load(version) {
            Ok(set) => self.publish_update(&set, previous, ModelUpdate::REASON_MANUAL, f32::NAN),
            Err(error) => tracing::warn!(%error, version, "cannot read the active model set"),
        }
    }

    fn publish_update(&self, set: &ModelSet, previous: Option<&str>, reason: u8, accuracy: f32) {
        let update = ModelUpdate {
            stamp: Time::now(),
            version: set.version.clone(),
            previous_version: previous.unwrap_or_default().to_owned(),
            reason,
            path: set.path.display().to_string(),
            answers_used: u32::try_from(set.manifest.data.answers_used).unwrap_or(u32::MAX),
            reward_accuracy: accuracy,
        };
        tracing::info!(
            version = %update.version,
            previous = %update.previous_version,
            reason,
            reward_accuracy = accuracy,
            "announcing model update"
        );
        if let Err(error) = (self.publish_update)(update) {
            tracing::error!(%error, version = %set.version, "cannot publish the model update");
        }
    }
}

/// One training run's reporting.
struct Run<'a> {
    inner: &'a Inner,
    run_id: i64,
    started: Instant,
    answers_used: Option<u32>,
    /// Stage and time of the last RUNNING report.
    last_report: Option<(String, Instant)>,
}

impl Run<'_> {
    fn status(&self, state: u8, stage: &str, progress: f32, message: String) -> TrainingStatus {
        TrainingStatus {
            stamp: Time::now(),
            run_id: self.run_id,
            state,
            stage: stage.to_owned(),
            stage_progress: progress,
            answers_used: self.answers_used.unwrap_or(0),
            elapsed_sec: self.started.elapsed().as_secs_f32(),
            message,
        }
    }

    fn report_running(&mut self, stage: &str, progress: f32, message: &str) {
        lock(&self.inner.state).snapshot.training = TrainingState::Running {
            run_id: self.run_id,
            stage: stage.to_owned(),
            progress,
        };
        self.last_report = Some((stage.to_owned(), Instant::now()));
        let status = self.status(
            TrainingStatus::STATE_RUNNING,
            stage,
            progress,
            message.to_owned(),
        );
        self.inner.publish_status(status);
    }

    /// Relays one progress line; reports within a stage are rate-limited, except the last
    /// of the stage.
    fn relay(&mut self, progress: &ProgressLine) {
        let fraction = progress.fraction();
        let due = match &self.last_report {
            Some((stage, at)) => {
                *stage != progress.stage
                    || at.elapsed() >= STATUS_INTERVAL
                    || progress.step >= progress.total
            }
            None => true,
        };
        if !due {
            lock(&self.inner.state).snapshot.training = TrainingState::Running {
                run_id: self.run_id,
                stage: progress.stage.clone(),
                progress: fraction,
            };
            return;
        }
        let message = format!(
            "{} {}/{}{}{}",
            progress.stage,
            progress.step,
            progress.total,
            if progress.losses.is_empty() { "" } else { ": " },
            progress.loss_summary()
        );
        self.report_running(&progress.stage, fraction, message.trim_end_matches(": "));
    }

    fn fail(&mut self, message: String) {
        tracing::warn!(run_id = self.run_id, %message, "training run failed");
        self.inner.close_run(self.run_id, &message);
        lock(&self.inner.state).snapshot.training = TrainingState::Failed {
            run_id: self.run_id,
            message: message.clone(),
        };
        let stage = self
            .last_report
            .as_ref()
            .map(|(stage, _)| stage.clone())
            .unwrap_or_default();
        let status = self.status(TrainingStatus::STATE_FAILED, &stage, 0.0, message);
        self.inner.publish_status(status);
    }

    fn reject(&mut self, version: &str, reason: String) {
        let active = lock(&self.inner.state)
            .snapshot
            .deployed_version
            .clone()
            .unwrap_or_else(|| "no set".to_owned());
        tracing::warn!(version, %reason, %active, "model set rejected");
        lock(&self.inner.state).snapshot.last_rejection =
            Some(format!("model set {version}: {reason}"));
        self.inner
            .record_model_status(version, ModelStatus::Rejected);
        self.fail(format!(
            "model set {version} failed validation: {reason}; {active} stays active"
        ));
    }

    fn succeed(&mut self, version: &str, validation: &Validation) {
        let message = format!(
            "model set {version} is active; held-out reward accuracy {} on {} answers ({}), \
             previous set {}",
            format_accuracy(validation.reward_accuracy),
            validation.held_out,
            validation.source,
            format_accuracy(validation.active_accuracy),
        );
        tracing::info!(run_id = self.run_id, %message, "training run succeeded");
        self.inner.record_model_status(version, ModelStatus::Active);
        lock(&self.inner.state).snapshot.training = TrainingState::Succeeded {
            run_id: self.run_id,
            version: version.to_owned(),
        };
        let status = self.status(TrainingStatus::STATE_SUCCEEDED, "validate", 1.0, message);
        self.inner.publish_status(status);
    }
}

fn format_accuracy(value: f32) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "not measured".to_owned()
    }
}

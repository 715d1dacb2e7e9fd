//! The runner on a ROS 2 graph: subscriptions, the action publisher, the enable service and
//! model updates around a [`PolicyCore`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::config::{ObservationType, RunnerConfig};
use super::core::{CoreConfig, Decision, PolicyCore};
use super::error::RunnerError;
use super::observation::ObservationMapping;
use super::policy::{OnnxPolicy, Policy};
use crate::diagnostics::{RunnerStatus, runner_diagnostic_array};
use crate::infer::Runtime;
use crate::msg::{
    DiagnosticArray, Float32MultiArray, JointState, Joy, ModelUpdate, MultiArrayDimension,
    MultiArrayLayout, SetPolicyEnabled, SetPolicyEnabledResponse, Time,
};
use crate::registry::{Expectation, ModelSet, Registry};
use crate::transport::{Publish, QosConfig, Subscribe, Transport};

/// Versions kept by a registry opened for reading only; the runner never installs.
const READ_ONLY_KEEP: usize = usize::MAX;

/// Counters of a finished run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Control steps taken.
    pub steps: u64,
    /// Policy actions published.
    pub actions: u64,
    /// Safe actions published.
    pub safe_actions: u64,
    /// Steps that published nothing (disabled).
    pub idle_steps: u64,
    /// Steps that started more than one period late.
    pub overruns: u64,
    /// Model sets swapped in.
    pub swaps: u64,
    /// Model sets rejected by validation.
    pub rejected_updates: u64,
    /// Seconds from the start of each step (after receiving) to the publish returning, for
    /// the last 100 000 steps that published.
    pub step_seconds: Vec<f64>,
}

const MAX_STEP_SAMPLES: usize = 100_000;

/// Loads the model set that `config` names (or the active one) and validates its policy.
pub fn load_policy(
    config: &RunnerConfig,
    runtime: &Runtime,
    expected: &Expectation,
) -> Result<OnnxPolicy, RunnerError> {
    let registry = Registry::open(&config.models_dir, READ_ONLY_KEEP)?;
    let set = if config.model_version.is_empty() {
        registry.load_current()?
    } else {
        registry.load(&config.model_version)?
    };
    OnnxPolicy::load(runtime, &set, expected)
}

/// Returns the values that the runner's settings fix about a model set (observation size
/// and names for JointState observations).
pub fn robot_expectation(config: &RunnerConfig) -> Expectation {
    let source = "the joint_names and joint_fields settings".to_owned();
    Expectation {
        observation_dim: config.mapped_observation_dim().map(|d| (d, source.clone())),
        observation_names: config.observation_names().map(|n| (n, source)),
        ..Expectation::default()
    }
}

enum ObservationSubscription<T: Transport> {
    Array(T::Subscription<Float32MultiArray>),
    Joints(T::Subscription<JointState>),
}

impl<T: Transport> ObservationSubscription<T> {
    /// Waits up to `timeout` for one message and maps it.
    #[allow(clippy::type_complexity)]
    fn recv(
        &self,
        mapping: &ObservationMapping,
        timeout: Duration,
    ) -> Result<Option<Result<Vec<f32>, String>>, RunnerError> {
        Ok(match self {
            Self::Array(subscription) => subscription
                .recv_timeout(timeout)?
                .map(|message| mapping.from_array(&message)),
            Self::Joints(subscription) => subscription
                .recv_timeout(timeout)?
                .map(|message| mapping.from_joint_state(&message)),
        })
    }
}

/// Runs the policy on `transport` until `stop` is set: loads and validates the model set,
/// then steps at the control rate, publishing actions while enabled.
pub fn run<T: Transport>(
    transport: &mut T,
    config: &RunnerConfig,
    runtime: Runtime,
    stop: &AtomicBool,
) -> Result<RunStats, RunnerError> {
    config.validate()?;
    let mut expected = robot_expectation(config);
    let policy = load_policy(config, &runtime, &expected)?;
    // Later sets must keep the robot's sizes.
    let observation_dim = policy.observation_dim();
    let action_dim = policy.bounds().low.len();
    expected.observation_dim = Some((observation_dim, "the running model set".to_owned()));
    let mapping = ObservationMapping::new(config, observation_dim);
    let core_config = CoreConfig {
        max_observation_age: Duration::from_secs_f64(config.max_observation_age_s),
        safe_action: config.safe_action.clone(),
        safe_action_on_disable: config.safe_action_on_disable,
        deadman_timeout: (!config.deadman_topic.is_empty())
            .then(|| Duration::from_secs_f64(config.deadman_timeout_s)),
    };
    let mut core = PolicyCore::new(Box::new(policy), core_config).map_err(|detail| {
        RunnerError::Validation {
            version: config.model_version.clone(),
            detail,
        }
    })?;

    let observations: ObservationSubscription<T> = match config.observation_type {
        ObservationType::Float32MultiArray => ObservationSubscription::Array(
            transport.create_subscription(&config.observation_topic, &config.observation_qos)?,
        ),
        ObservationType::JointState => ObservationSubscription::Joints(
            transport.create_subscription(&config.observation_topic, &config.observation_qos)?,
        ),
    };
    let actions = transport
        .create_publisher::<Float32MultiArray>(&config.action_topic, &config.action_qos)?;
    let deadman = if config.deadman_topic.is_empty() {
        None
    } else {
        Some(transport.create_subscription::<Joy>(&config.deadman_topic, &QosConfig::default())?)
    };
    let updates = if config.model_update_topic.is_empty() {
        None
    } else {
        Some(transport.create_subscription::<ModelUpdate>(
            &config.model_update_topic,
            &QosConfig::latched(1),
        )?)
    };

    let service_enabled = Arc::new(AtomicBool::new(config.start_enabled));
    let handler_flag = Arc::clone(&service_enabled);
    let deadman_note = if config.deadman_topic.is_empty() {
        String::new()
    } else {
        format!(
            "enabled; the policy drives only while button {} on {} is held",
            config.deadman_button, config.deadman_topic
        )
    };
    let _server = transport.create_service_server::<SetPolicyEnabled, _>(
        &config.enable_service,
        move |request| {
            handler_flag.store(request.enabled, Ordering::SeqCst);
            tracing::info!(enabled = request.enabled, "policy enable requested");
            SetPolicyEnabledResponse {
                success: true,
                enabled: request.enabled,
                message: if request.enabled {
                    deadman_note.clone()
                } else {
                    String::new()
                },
            }
        },
    )?;

    let diagnostics = if config.diagnostics_topic.is_empty() {
        None
    } else {
        Some(transport.create_publisher::<DiagnosticArray>(
            &config.diagnostics_topic,
            &QosConfig::default(),
        )?)
    };
    let diagnostics_period = Duration::from_secs_f64(config.diagnostics_period_s);
    let mut last_diagnostics: Option<Instant> = None;

    let (loaded_sender, loaded) = mpsc::channel::<(String, Result<OnnxPolicy, RunnerError>)>();
    let layout = MultiArrayLayout {
        dim: vec![MultiArrayDimension {
            label: "action".to_owned(),
            size: action_dim as u32,
            stride: action_dim as u32,
        }],
        data_offset: 0,
    };

    tracing::info!(
        version = core.policy().version(),
        rate_hz = config.control_rate_hz,
        observation_topic = %config.observation_topic,
        action_topic = actions.topic(),
        "policy runner started"
    );
    let period = config.period();
    let mut stats = RunStats::default();
    let mut last_safe_kind: Option<&'static str> = None;
    let mut next_tick = Instant::now() + period;
    while !stop.load(Ordering::SeqCst) {
        // Observations are taken until the tick; the newest one wins.
        loop {
            let now = Instant::now();
            if now >= next_tick {
                break;
            }
            match observations.recv(&mapping, next_tick - now)? {
                Some(Ok(values)) => core.observe(values, Instant::now()),
                Some(Err(reason)) => core.reject(reason, Instant::now()),
                None => break,
            }
        }
        let step_start = Instant::now();
        if let Some(deadman) = &deadman {
            while let Some(joy) = deadman.try_recv()? {
                let held = joy
                    .buttons
                    .get(config.deadman_button)
                    .is_some_and(|&b| b != 0);
                core.deadman(held, Instant::now());
            }
        }
        if let Some(updates) = &updates {
            while let Some(update) = updates.try_recv()? {
                start_model_load(
                    &update,
                    config,
                    &runtime,
                    &expected,
                    core.policy().version(),
                    &loaded_sender,
                );
            }
        }
        while let Ok((version, result)) = loaded.try_recv() {
            swap_policy(&mut core, version, result, &mut stats);
        }
        core.set_service_enabled(service_enabled.load(Ordering::SeqCst));

        let now = Instant::now();
        let decision = core.step(now);
        stats.steps += 1;
        let safe_reason = match &decision {
            Decision::Safe { reason, .. } => Some(reason.to_string()),
            _ => None,
        };
        match &decision {
            Decision::Idle => stats.idle_steps += 1,
            Decision::Act { .. } => {
                stats.actions += 1;
                if let Some(kind) = last_safe_kind.take() {
                    tracing::info!(previous = kind, "policy drives again");
                }
            }
            Decision::Safe { reason, .. } => {
                stats.safe_actions += 1;
                if last_safe_kind != Some(reason.kind()) {
                    tracing::warn!(%reason, "publishing the safe action");
                    last_safe_kind = Some(reason.kind());
                }
            }
        }
        if let Some(action) = decision.action() {
            actions.publish(Float32MultiArray {
                layout: layout.clone(),
                data: action.to_vec(),
            })?;
            if stats.step_seconds.len() < MAX_STEP_SAMPLES {
                stats.step_seconds.push(step_start.elapsed().as_secs_f64());
            }
        }

        if let Some(diagnostics) = &diagnostics
            && last_diagnostics.is_none_or(|at| at.elapsed() >= diagnostics_period)
        {
            let provider = core.policy().execution_provider();
            let status = RunnerStatus {
                node_name: &config.node_name,
                version: core.policy().version(),
                execution_provider: provider.as_deref(),
                enabled: core.is_enabled(now),
                actions: stats.actions,
                safe_actions: stats.safe_actions,
                swaps: stats.swaps,
                rejected_updates: stats.rejected_updates,
                safe_reason,
            };
            if let Err(error) = diagnostics.publish(runner_diagnostic_array(&status, Time::now())) {
                tracing::warn!(%error, "failed to publish diagnostics");
            }
            last_diagnostics = Some(Instant::now());
        }

        next_tick += period;
        let now = Instant::now();
        if next_tick + period < now {
            stats.overruns += 1;
            next_tick = now + period;
        }
    }
    tracing::info!(
        steps = stats.steps,
        actions = stats.actions,
        safe_actions = stats.safe_actions,
        overruns = stats.overruns,
        "policy runner stopped"
    );
    Ok(stats)
}

/// Loads and validates an announced set on a thread of its own, so the control loop keeps
/// its rate; the result arrives on `sender`.
fn start_model_load(
    update: &ModelUpdate,
    config: &RunnerConfig,
    runtime: &Runtime,
    expected: &Expectation,
    running: &str,
    sender: &mpsc::Sender<(String, Result<OnnxPolicy, RunnerError>)>,
) {
    if update.version == running {
        tracing::debug!(version = %update.version, "model update names the running version");
        return;
    }
    tracing::info!(version = %update.version, path = %update.path, "model update received; validating");
    let version = update.version.clone();
    let models_dir = config.models_dir.clone();
    let runtime = runtime.clone();
    let expected = expected.clone();
    let sender = sender.clone();
    let spawned = thread::Builder::new()
        .name("policy-load".to_owned())
        .spawn(move || {
            let result = Registry::open(&models_dir, READ_ONLY_KEEP)
                .and_then(|registry| registry.load(&version))
                .map_err(RunnerError::from)
                .and_then(|set: ModelSet| OnnxPolicy::load(&runtime, &set, &expected));
            // The receiver is gone only when the runner stopped.
            let _ = sender.send((version, result));
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start a thread to load the model update");
    }
}

/// Swaps in a validated policy, or keeps the running one and logs why.
fn swap_policy(
    core: &mut PolicyCore,
    version: String,
    result: Result<OnnxPolicy, RunnerError>,
    stats: &mut RunStats,
) {
    let running = core.policy().version().to_owned();
    let outcome = result
        .map_err(|error| error.to_string())
        .and_then(|policy| core.replace_policy(Box::new(policy)));
    match outcome {
        Ok(_) => {
            stats.swaps += 1;
            tracing::info!(version = %version, previous = %running, "switched to the new model set");
        }
        Err(error) => {
            stats.rejected_updates += 1;
            tracing::warn!(
                version = %version,
                running = %running,
                %error,
                "model update failed validation; keeping the running model set"
            );
        }
    }
}

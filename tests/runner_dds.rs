//! The policy runner on DDS, against a stand-in robot node in the same process: no actions
//! while disabled, actions after the enable service, the safe action on NaN and stale input,
//! and model updates that swap a valid set and keep the running one on a failed validation.
//!
//! Run through `.ci/netns-run`, which gives the test a private loopback-only network.

#[path = "registry_fixture.rs"]
mod registry_fixture;
#[path = "transport_netns.rs"]
mod transport_netns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::msg::{
    DiagnosticArray, DiagnosticStatus, Float32MultiArray, ModelUpdate, SetPolicyEnabled,
    SetPolicyEnabledRequest, SetPolicyEnabledResponse,
};
use clarify::registry::Registry;
use clarify::runner::{self, RunnerConfig};
use clarify::transport::dds::DdsNode;
use clarify::transport::{
    CallService, NodeConfig, Publish, QosConfig, Subscribe, Transport, TransportError,
};
use registry_fixture::{LinearPolicy, temp_dir};

const DOMAIN: u16 = 41;
const TIMEOUT: Duration = Duration::from_secs(20);

struct Robot {
    _node: DdsNode,
    observations: <DdsNode as Transport>::Publisher<Float32MultiArray>,
    actions: <DdsNode as Transport>::Subscription<Float32MultiArray>,
    updates: <DdsNode as Transport>::Publisher<ModelUpdate>,
    enable: <DdsNode as Transport>::ServiceClient<SetPolicyEnabled>,
    diagnostics: <DdsNode as Transport>::Subscription<DiagnosticArray>,
}

impl Robot {
    /// Waits for a diagnostics report of the runner whose values match `expected` pairs.
    fn wait_for_report(&self, expected: &[(&str, &str)]) -> Result<DiagnosticStatus> {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            while let Some(array) = self.diagnostics.try_recv()? {
                for status in array.status {
                    let value = |key: &str| {
                        status
                            .values
                            .iter()
                            .find(|entry| entry.key == key)
                            .map(|entry| entry.value.clone())
                    };
                    let matches = expected
                        .iter()
                        .all(|(key, wanted)| value(key).as_deref() == Some(*wanted));
                    if status.name == "clarify_policy: policy" && matches {
                        return Ok(status);
                    }
                    last = Some(status);
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!("no runner diagnostics with {expected:?}; last report: {last:?}")
    }
}

impl Robot {
    fn observe(&self, values: &[f32]) -> Result<()> {
        self.observations.publish(Float32MultiArray {
            data: values.to_vec(),
            ..Float32MultiArray::default()
        })?;
        Ok(())
    }

    fn drain(&self) -> Result<()> {
        while self.actions.try_recv()?.is_some() {}
        Ok(())
    }

    /// Publishes `observation` every 10 ms until an action arrives for which `accept`
    /// holds; returns it.
    fn wait_for_action(
        &self,
        observation: Option<&[f32]>,
        accept: impl Fn(&[f32]) -> bool,
    ) -> Result<Vec<f32>> {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(values) = observation {
                self.observe(values)?;
            }
            if let Some(action) = self.actions.recv_timeout(Duration::from_millis(10))? {
                if accept(&action.data) {
                    return Ok(action.data);
                }
                last = Some(action.data);
            }
        }
        bail!("no matching action within {TIMEOUT:?}; last action: {last:?}")
    }

    /// Publishes `observation` for `duration`; returns the actions received meanwhile.
    fn actions_during(&self, observation: &[f32], duration: Duration) -> Result<Vec<Vec<f32>>> {
        let end = Instant::now() + duration;
        let mut received = Vec::new();
        while Instant::now() < end {
            self.observe(observation)?;
            if let Some(action) = self.actions.recv_timeout(Duration::from_millis(10))? {
                received.push(action.data);
            }
        }
        Ok(received)
    }

    fn set_enabled(&self, enabled: bool) -> Result<SetPolicyEnabledResponse> {
        // A request sent before discovery matched the server is lost, so retry until then.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.enable.call(
                SetPolicyEnabledRequest { enabled },
                Duration::from_millis(500),
            ) {
                Ok(response) => return Ok(response),
                Err(TransportError::Timeout { .. }) if Instant::now() < deadline => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn announce(&self, version: &str) -> Result<()> {
        self.updates.publish(ModelUpdate {
            version: version.to_owned(),
            reason: ModelUpdate::REASON_TRAINED,
            reward_accuracy: f32::NAN,
            ..ModelUpdate::default()
        })?;
        Ok(())
    }
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn runner_drives_only_when_enabled_and_swaps_validated_sets() -> Result<()> {
    transport_netns::require_private_network();
    let models = temp_dir("runner-dds");
    let registry = Registry::open(&models, 5)?;
    for (version, gain) in [("v1", 1.0), ("v2", 10.0), ("v3", 0.5)] {
        let source = temp_dir("runner-dds-source");
        LinearPolicy {
            gain,
            ..LinearPolicy::default()
        }
        .write_set(&source, version)?;
        registry.install_from_dir(version, &source)?;
    }
    registry.activate("v1")?;

    let config = RunnerConfig {
        models_dir: models.clone(),
        control_rate_hz: 100.0,
        max_observation_age_s: 0.2,
        infer: InferConfig {
            execution_providers: vec![ExecutionProviderKind::Cpu],
            intra_op_threads: 1,
            ..InferConfig::default()
        },
        ..RunnerConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runner_stop = Arc::clone(&stop);
    let runner_config = config.clone();
    let runner_thread = thread::spawn(move || -> Result<runner::RunStats> {
        let runtime = Runtime::new(runner_config.infer.clone())?;
        let mut node = DdsNode::new(NodeConfig {
            name: "clarify_policy".into(),
            namespace: "/".into(),
            domain_id: DOMAIN,
        })?;
        Ok(runner::run(
            &mut node,
            &runner_config,
            runtime,
            &runner_stop,
        )?)
    });

    let outcome = exercise_runner(&config);
    stop.store(true, Ordering::SeqCst);
    let stats = runner_thread
        .join()
        .map_err(|_| anyhow::anyhow!("runner thread panicked"))??;
    outcome?;

    assert_eq!(stats.swaps, 1, "{stats:?}");
    assert_eq!(stats.rejected_updates, 1, "{stats:?}");
    assert!(stats.safe_actions >= 2, "{stats:?}");
    Ok(())
}

fn exercise_runner(config: &RunnerConfig) -> Result<()> {
    let mut node = DdsNode::new(NodeConfig {
        name: "robot".into(),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?;
    let robot = Robot {
        observations: node.create_publisher(&config.observation_topic, &config.observation_qos)?,
        actions: node.create_subscription(&config.action_topic, &QosConfig::default())?,
        updates: node.create_publisher(&config.model_update_topic, &QosConfig::latched(1))?,
        enable: node.create_service_client(&config.enable_service)?,
        diagnostics: node.create_subscription(&config.diagnostics_topic, &QosConfig::default())?,
        _node: node,
    };
    let observation = [0.5, 0.5, 0.0];

    // Disabled at start: observations flow, no action comes back.
    let deadline = Instant::now() + TIMEOUT;
    while robot._node.subscription_count(&config.observation_topic)? == 0 {
        if Instant::now() > deadline {
            bail!("the runner's observation subscription was not discovered");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let while_disabled = robot.actions_during(&observation, Duration::from_millis(500))?;
    assert!(
        while_disabled.is_empty(),
        "actions while disabled: {while_disabled:?}"
    );

    let response = robot.set_enabled(true)?;
    assert!(response.success, "{response:?}");
    assert!(response.enabled, "{response:?}");
    robot.wait_for_action(Some(&observation), |a| close(a, &[0.5, 0.5]))?;

    // NaN input: the safe action (zeros by default).
    robot.wait_for_action(Some(&[0.5, f32::NAN, 0.0]), |a| close(a, &[0.0, 0.0]))?;
    robot.wait_for_action(Some(&observation), |a| close(a, &[0.5, 0.5]))?;

    // v2 fails validation (its outputs leave the bounds): v1 keeps driving.
    robot.announce("v2")?;
    let after_v2 = robot.actions_during(&observation, Duration::from_millis(1500))?;
    let last = after_v2
        .last()
        .context("no actions after the v2 announcement")?;
    assert!(close(last, &[0.5, 0.5]), "{last:?}");

    // v3 is valid: its gain of 0.5 shows in the actions, and the runner's diagnostics
    // report it with the rejected v2. Observations stop between the actions, so the
    // report's level may already be the stale-input warning.
    robot.announce("v3")?;
    robot.wait_for_action(Some(&observation), |a| close(a, &[0.25, 0.25]))?;
    robot.wait_for_report(&[
        ("version", "v3"),
        ("execution_provider", "cpu"),
        ("enabled", "true"),
        ("swaps", "1"),
        ("rejected_updates", "1"),
    ])?;

    // No more observations: stale input gives the safe action, reported as a warning.
    robot.drain()?;
    robot.wait_for_action(None, |a| close(a, &[0.0, 0.0]))?;
    let deadline = Instant::now() + TIMEOUT;
    let mut stale = robot.wait_for_report(&[("version", "v3")])?;
    while stale.level != DiagnosticStatus::WARN && Instant::now() < deadline {
        stale = robot.wait_for_report(&[("version", "v3")])?;
    }
    assert_eq!(stale.level, DiagnosticStatus::WARN, "{stale:?}");
    assert!(stale.message.contains("safe action"), "{stale:?}");

    // Disabled again: at most the one stop command, then silence.
    robot.set_enabled(false)?;
    thread::sleep(Duration::from_millis(100));
    robot.drain()?;
    let after_disable = robot.actions_during(&observation, Duration::from_millis(500))?;
    assert!(
        after_disable.is_empty(),
        "actions after disabling: {after_disable:?}"
    );
    Ok(())
}

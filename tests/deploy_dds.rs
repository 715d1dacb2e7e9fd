//! The model lifecycle on DDS while the policy runner drives a stand-in robot. A model set
//! with a truncated ONNX file and one whose manifest has the wrong observation size are
//! rejected (pointer unchanged, no ModelUpdate, STATE_FAILED with the reason), and the
//! previous policy keeps driving. A valid set is activated, announced and swapped in by the
//! runner, and RollbackModel restores the previous set.
//!
//! The training child is a shell script that installs prepared sets the way `clarify
//! train --no-activate` does and prints its `done` line, so each case controls exactly
//! what gets installed. Run through `.ci/netns-run`.

#[path = "registry_fixture.rs"]
mod registry_fixture;
#[path = "train_support/mod.rs"]
mod train_support;
#[path = "transport_netns.rs"]
mod transport_netns;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::deploy::{DeployConfig, ModelManager};
use clarify::infer::{ExecutionProviderKind, InferConfig, Runtime};
use clarify::msg::{
    Float32MultiArray, ModelUpdate, RollbackModel, RollbackModelRequest, RollbackModelResponse,
    SetPolicyEnabled, SetPolicyEnabledRequest, TrainingStatus, TriggerRetrain,
    TriggerRetrainRequest, TriggerRetrainResponse,
};
use clarify::registry::{Expectation, MANIFEST_FILE, Manifest, Registry, ShapeDim, sha256_bytes};
use clarify::runner::{self, RunnerConfig};
use clarify::store::ContentHash;
use clarify::transport::dds::DdsNode;
use clarify::transport::{
    CallService, NodeConfig, Publish, QosConfig, Subscribe, Transport, TransportError,
};
use registry_fixture::{LinearPolicy, OBSERVATION_DIM, POLICY_FILE, temp_dir};
use train_support::{make_store, synthetic_dataset};

const DOMAIN: u16 = 47;
const TIMEOUT: Duration = Duration::from_secs(30);
const OBSERVATION: [f32; 3] = [0.5, 0.5, 0.0];

/// Installs the first prepared set of `--queue DIR` into `--models DIR`, as `clarify train
/// --no-activate` installs a new version, and prints progress lines ending with `done`.
const STAND_IN_TRAINER: &str = r#"#!/bin/sh
models=""
queue=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift ;;
    --queue) queue="$2"; shift ;;
  esac
  shift
done
nice > "$queue/../niceness"
printf '{"stage":"load","step":0,"total":1,"losses":{},"elapsed_secs":0.0}\n'
sleep 1
for dir in "$queue"/*; do
  [ -d "$dir" ] || continue
  version=$(basename "$dir")
  mv "$dir" "$models/$version"
  printf '{"stage":"done","step":1,"total":1,"losses":{},"elapsed_secs":1.0,"version":"%s","path":"%s"}\n' "$version" "$models/$version"
  exit 0
done
echo "error: no prepared set in $queue" >&2
exit 1
"#;

fn cpu_infer() -> InferConfig {
    InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    }
}

/// Writes a set of `policy` into `folder` whose manifest names the store's dataset.
fn write_set(
    policy: &LinearPolicy,
    folder: &Path,
    version: &str,
    dataset: &str,
) -> Result<Manifest> {
    let mut manifest = policy.write_set(folder, version)?;
    manifest.data.dataset_sha256 = dataset.to_owned();
    fs::write(folder.join(MANIFEST_FILE), manifest.to_json())?;
    Ok(manifest)
}

/// Writes a set whose policy file is cut in half. The manifest lists the cut file's hash,
/// so only loading it in ONNX Runtime can find the damage.
fn write_truncated_set(folder: &Path, version: &str, dataset: &str) -> Result<()> {
    let mut manifest = write_set(&LinearPolicy::default(), folder, version, dataset)?;
    let bytes = fs::read(folder.join(POLICY_FILE))?;
    let cut = &bytes[..bytes.len() / 2];
    fs::write(folder.join(POLICY_FILE), cut)?;
    manifest.networks.policy.sha256 = sha256_bytes(cut);
    fs::write(folder.join(MANIFEST_FILE), manifest.to_json())?;
    Ok(())
}

/// Writes a valid set for one more observation entry than the robot has.
fn write_wide_set(folder: &Path, version: &str, dataset: &str) -> Result<()> {
    let mut manifest = write_set(&LinearPolicy::default(), folder, version, dataset)?;
    let wide = OBSERVATION_DIM + 1;
    manifest.observation_dim = wide;
    manifest.observation_normalization.mean = vec![0.0; wide];
    manifest.observation_normalization.std = vec![1.0; wide];
    for tensors in [&mut manifest.inputs, &mut manifest.networks.policy.inputs] {
        tensors[0].shape[1] = ShapeDim::Fixed(wide);
    }
    manifest.validate("test")?;
    fs::write(folder.join(MANIFEST_FILE), manifest.to_json())?;
    Ok(())
}

/// Writes a prepared set into a folder: folder, version, dataset SHA-256.
type WriteSet = fn(&Path, &str, &str) -> Result<()>;

struct Operator {
    _node: DdsNode,
    observations: <DdsNode as Transport>::Publisher<Float32MultiArray>,
    actions: <DdsNode as Transport>::Subscription<Float32MultiArray>,
    updates: <DdsNode as Transport>::Subscription<ModelUpdate>,
    statuses: <DdsNode as Transport>::Subscription<TrainingStatus>,
    enable: <DdsNode as Transport>::ServiceClient<SetPolicyEnabled>,
    trigger: <DdsNode as Transport>::ServiceClient<TriggerRetrain>,
    rollback: <DdsNode as Transport>::ServiceClient<RollbackModel>,
}

/// Calls a service until discovery has matched it (a request sent before is lost).
fn call<S: clarify::msg::RosService>(
    client: &impl CallService<S>,
    request: S::Request,
) -> Result<S::Response> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match client.call(request.clone(), Duration::from_millis(500)) {
            Ok(response) => return Ok(response),
            Err(TransportError::Timeout { .. }) if Instant::now() < deadline => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Returns this process's niceness, as the `nice` program prints it.
fn own_niceness() -> Result<i32> {
    let output = std::process::Command::new("nice").output()?;
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

impl Operator {
    fn trigger(&self, reason: &str) -> Result<TriggerRetrainResponse> {
        call(
            &self.trigger,
            TriggerRetrainRequest {
                reason: reason.to_owned(),
            },
        )
    }

    fn roll_back(&self, version: &str) -> Result<RollbackModelResponse> {
        call(
            &self.rollback,
            RollbackModelRequest {
                version: version.to_owned(),
            },
        )
    }

    /// Publishes the observation every 10 ms until an action close to `expected` arrives.
    fn wait_for_action(&self, expected: &[f32]) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            self.observations.publish(Float32MultiArray {
                data: OBSERVATION.to_vec(),
                ..Float32MultiArray::default()
            })?;
            if let Some(action) = self.actions.recv_timeout(Duration::from_millis(10))? {
                if close(&action.data, expected) {
                    return Ok(());
                }
                last = Some(action.data);
            }
        }
        bail!("no action {expected:?} within {TIMEOUT:?}; last action: {last:?}")
    }

    /// Publishes observations for `duration` and returns the actions received.
    fn actions_during(&self, duration: Duration) -> Result<Vec<Vec<f32>>> {
        let end = Instant::now() + duration;
        let mut received = Vec::new();
        while Instant::now() < end {
            self.observations.publish(Float32MultiArray {
                data: OBSERVATION.to_vec(),
                ..Float32MultiArray::default()
            })?;
            if let Some(action) = self.actions.recv_timeout(Duration::from_millis(10))? {
                received.push(action.data);
            }
        }
        Ok(received)
    }

    /// Waits for the final status (succeeded or failed) of run `run_id`, returning every
    /// status of the run in order.
    fn wait_for_run(&self, run_id: i64) -> Result<Vec<TrainingStatus>> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(status) = self.statuses.recv_timeout(Duration::from_millis(50))?
                && status.run_id == run_id
            {
                let done = matches!(
                    status.state,
                    TrainingStatus::STATE_SUCCEEDED | TrainingStatus::STATE_FAILED
                );
                seen.push(status);
                if done {
                    return Ok(seen);
                }
            }
        }
        bail!("run {run_id} did not finish within {TIMEOUT:?}; statuses: {seen:?}")
    }

    fn drain_updates(&self) -> Result<Vec<ModelUpdate>> {
        let mut updates = Vec::new();
        while let Some(update) = self.updates.try_recv()? {
            updates.push(update);
        }
        Ok(updates)
    }
}

#[test]
fn broken_sets_are_rejected_while_previous_policy_drives() -> Result<()> {
    transport_netns::require_private_network();
    let folder = temp_dir("deploy-dds");
    let models = folder.join("models");
    let queue = folder.join("queue");
    fs::create_dir_all(&queue)?;
    let store = folder.join("store.sqlite");
    make_store(
        &store,
        &synthetic_dataset(6, 40, OBSERVATION_DIM, 2, 1),
        30,
        2,
    )?;
    // make_store names its dataset's content hash after the seed.
    let dataset = ContentHash::of_bytes(b"synthetic 2").to_hex();

    let registry = Registry::open(&models, 5)?;
    let source = folder.join("v1-source");
    write_set(&LinearPolicy::default(), &source, "v1", &dataset)?;
    registry.install_from_dir("v1", &source)?;
    registry.activate("v1")?;

    let trainer = folder.join("stand-in-train");
    fs::write(&trainer, STAND_IN_TRAINER)?;
    fs::set_permissions(&trainer, fs::Permissions::from_mode(0o755))?;

    let runner_config = RunnerConfig {
        models_dir: models.clone(),
        control_rate_hz: 100.0,
        max_observation_age_s: 0.5,
        start_enabled: true,
        infer: cpu_infer(),
        ..RunnerConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runner_stop = Arc::clone(&stop);
    let config = runner_config.clone();
    let runner_thread = thread::spawn(move || -> Result<runner::RunStats> {
        let runtime = Runtime::new(config.infer.clone())?;
        let mut node = DdsNode::new(NodeConfig {
            name: "clarify_policy".into(),
            namespace: "/".into(),
            domain_id: DOMAIN,
        })?;
        Ok(runner::run(&mut node, &config, runtime, &runner_stop)?)
    });

    let mut manager_node = DdsNode::new(NodeConfig {
        name: "clarify".into(),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?;
    let mut deploy_config = DeployConfig::new(&models, &store, &trainer);
    deploy_config.train_args = vec!["--queue".to_owned(), queue.display().to_string()];
    deploy_config.expectation = Expectation {
        observation_dim: Some((OBSERVATION_DIM, "the robot".to_owned())),
        ..Expectation::default()
    };
    let manager = ModelManager::start(&mut manager_node, deploy_config)?;

    let outcome = exercise(&runner_config, &manager, &registry, &queue, &dataset);
    stop.store(true, Ordering::SeqCst);
    let stats = runner_thread
        .join()
        .map_err(|_| anyhow::anyhow!("runner thread panicked"))??;
    manager.stop()?;
    outcome?;
    // The runner swapped in v2 and then v1 again; it was never offered a broken set.
    assert_eq!(stats.swaps, 2, "{stats:?}");
    assert_eq!(stats.rejected_updates, 0, "{stats:?}");
    fs::remove_dir_all(&folder)?;
    Ok(())
}

fn exercise(
    runner_config: &RunnerConfig,
    manager: &ModelManager,
    registry: &Registry,
    queue: &Path,
    dataset: &str,
) -> Result<()> {
    let mut node = DdsNode::new(NodeConfig {
        name: "operator".into(),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?;
    let operator = Operator {
        observations: node.create_publisher(
            &runner_config.observation_topic,
            &runner_config.observation_qos,
        )?,
        actions: node.create_subscription(&runner_config.action_topic, &QosConfig::default())?,
        updates: node.create_subscription("model_update", &QosConfig::latched(1))?,
        statuses: node.create_subscription(
            "training_status",
            &QosConfig {
                depth: 50,
                ..QosConfig::latched(1)
            },
        )?,
        enable: node.create_service_client(&runner_config.enable_service)?,
        trigger: node.create_service_client("trigger_retrain")?,
        rollback: node.create_service_client("rollback_model")?,
        _node: node,
    };
    call(&operator.enable, SetPolicyEnabledRequest { enabled: true })?;
    operator.wait_for_action(&[0.5, 0.5])?;
    // Before any run, the latched topic contains the start-up announcement of v1.
    let deadline = Instant::now() + TIMEOUT;
    let mut startup = Vec::new();
    while startup.is_empty() && Instant::now() < deadline {
        startup = operator.drain_updates()?;
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(startup.len(), 1, "{startup:?}");
    assert_eq!(startup[0].version, "v1");
    assert_eq!(startup[0].reason, ModelUpdate::REASON_MANUAL);

    let pointer_before = registry.current()?;
    let cases: [(&str, WriteSet, &str); 2] = [
        ("truncated", write_truncated_set, "policy.onnx"),
        ("wide", write_wide_set, "observation_dim"),
    ];
    for (version, write, reason) in cases {
        write(&queue.join(version), version, dataset)?;
        let response = operator.trigger(&format!("deploy {version}"))?;
        assert!(response.accepted, "{response:?}");
        // A second request while the run is going is rejected with the reason.
        let second = operator.trigger("second request")?;
        assert!(!second.accepted, "{second:?}");
        assert!(second.message.contains("already running"), "{second:?}");

        let statuses = operator.wait_for_run(response.run_id)?;
        let last = statuses.last().context("no status")?;
        assert_eq!(last.state, TrainingStatus::STATE_FAILED, "{statuses:?}");
        // The child ran at the default niceness of 10 above this process's.
        let niceness: i32 = fs::read_to_string(queue.join("../niceness"))?
            .trim()
            .parse()?;
        assert_eq!(niceness, (own_niceness()? + 10).min(19));
        assert!(last.message.contains("failed validation"), "{last:?}");
        assert!(last.message.contains(reason), "{last:?}");
        assert!(last.message.contains("v1 stays active"), "{last:?}");

        assert_eq!(
            registry.current()?,
            pointer_before,
            "{version} moved the pointer"
        );
        let rejection = manager.snapshot().last_rejection.unwrap_or_default();
        assert!(rejection.contains(version), "{rejection}");
        // While no observations were published the runner sent safe actions; once they
        // flow again, every action comes from v1.
        operator.wait_for_action(&[0.5, 0.5])?;
        let actions = operator.actions_during(Duration::from_millis(500))?;
        assert!(!actions.is_empty(), "no actions after rejecting {version}");
        for action in &actions {
            assert!(close(action, &[0.5, 0.5]), "{version}: {action:?}");
        }
    }
    let updates = operator.drain_updates()?;
    assert!(
        updates.is_empty(),
        "model updates for rejected sets: {updates:?}"
    );

    // A valid set (gain 0.5) is activated, announced and driven by the runner.
    let good = LinearPolicy {
        gain: 0.5,
        ..LinearPolicy::default()
    };
    write_set(&good, &queue.join("v2"), "v2", dataset)?;
    let response = operator.trigger("deploy v2")?;
    assert!(response.accepted, "{response:?}");
    let statuses = operator.wait_for_run(response.run_id)?;
    let last = statuses.last().context("no status")?;
    assert_eq!(last.state, TrainingStatus::STATE_SUCCEEDED, "{statuses:?}");
    assert_eq!(
        registry.current()?.map(|p| p.version),
        Some("v2".to_owned())
    );
    operator.wait_for_action(&[0.25, 0.25])?;
    let updates = operator.drain_updates()?;
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].version, "v2");
    assert_eq!(updates[0].previous_version, "v1");
    assert_eq!(updates[0].reason, ModelUpdate::REASON_TRAINED);
    assert_eq!(updates[0].answers_used, 40);

    // RollbackModel restores v1, which the runner drives again.
    let response = operator.roll_back("")?;
    assert!(response.success, "{response:?}");
    assert_eq!(response.active_version, "v1");
    operator.wait_for_action(&[0.5, 0.5])?;
    let updates = operator.drain_updates()?;
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].version, "v1");
    assert_eq!(updates[0].previous_version, "v2");
    assert_eq!(updates[0].reason, ModelUpdate::REASON_ROLLBACK);
    let snapshot = manager.snapshot();
    assert_eq!(snapshot.deployed_version.as_deref(), Some("v1"));
    assert_eq!(snapshot.previous_version.as_deref(), Some("v2"));

    // Rolling back to a rejected or unknown version fails and changes nothing.
    for (version, reason) in [("truncated", "failed validation"), ("v9", "v9")] {
        let response = operator.roll_back(version)?;
        assert!(!response.success, "{response:?}");
        assert_eq!(response.active_version, "v1");
        assert!(response.message.contains(reason), "{response:?}");
    }
    assert!(operator.drain_updates()?.is_empty());
    Ok(())
}

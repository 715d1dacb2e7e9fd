//! Interoperability of the DDS transport with another DDS implementation: Eclipse Cyclone
//! DDS through its Python binding (`cyclonedds` in the project's .venv), the middleware
//! that rmw_cyclonedds ROS 2 nodes use.
//!
//! The peer script tests/interop/ros_peer.py publishes JointState, Twist and Transition
//! messages that this side checks field by field, receives a PreferenceQuery from this
//! side, checks it and sends it back, and looks for this node in `ros_discovery_info`.
//! The fixture both sides check against is written here and passed to the script.
//!
//! Run through `.ci/netns-run`, which gives the test a private loopback-only network.

#[path = "transport_netns.rs"]
mod transport_netns;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::msg::{
    Header, JointState, PreferenceQuery, RosMessage, SegmentRef, Time, Transition, Twist, Vector3,
};
use clarify::transport::dds::DdsNode;
use clarify::transport::{NodeConfig, Publish, QosConfig, Subscribe, Transport};
use serde_json::{Value, json};

/// Time limit of each step on either side: discovery, a message, the peer's exit.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const DOMAIN_ID: u16 = 31;

/// Kills the peer process if the test fails before it exits.
struct PeerProcess(Child);

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn python() -> PathBuf {
    match std::env::var_os("CLARIFY_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

fn joint_states() -> Vec<JointState> {
    (0..3)
        .map(|index| JointState {
            header: Header {
                stamp: Time {
                    sec: 1_700_000_000 + index,
                    nanosec: 250_000_000,
                },
                frame_id: "base_link".into(),
            },
            name: vec!["shoulder_pan".into(), "elbow".into(), "wrist".into()],
            position: vec![0.5 * f64::from(index), -1.0e-9, std::f64::consts::PI],
            velocity: vec![0.0, 1.5, -2.25],
            effort: vec![],
        })
        .collect()
}

fn twists() -> Vec<Twist> {
    vec![
        Twist {
            linear: Vector3 {
                x: 0.25,
                y: 0.0,
                z: 0.0,
            },
            angular: Vector3 {
                x: 0.0,
                y: 0.0,
                z: -0.5,
            },
        },
        Twist {
            linear: Vector3 {
                x: -1.0,
                y: 2.0,
                z: 1e-300,
            },
            angular: Vector3 {
                x: 3.0,
                y: -4.0,
                z: 5.0,
            },
        },
    ]
}

fn transitions() -> Vec<Transition> {
    (0..3)
        .map(|step| Transition {
            header: Header {
                stamp: Time {
                    sec: 12,
                    nanosec: step * 50_000_000,
                },
                frame_id: String::new(),
            },
            episode_id: u64::MAX - 1,
            step,
            observation: vec![0.1, -0.2, 3.5e-8, step as f32],
            action: vec![1.0, -1.0],
            reward: if step == 2 { 10.0 } else { 0.5 },
            has_reward: true,
            terminated: false,
            truncated: step == 2,
        })
        .collect()
}

fn query() -> PreferenceQuery {
    PreferenceQuery {
        stamp: Time {
            sec: 1_700_000_100,
            nanosec: 1,
        },
        query_id: 9_000_000_001,
        left: SegmentRef {
            episode_id: 3,
            start_step: 10,
            length_steps: 2,
        },
        right: SegmentRef {
            episode_id: 8,
            start_step: 0,
            length_steps: 2,
        },
        observation_dim: 3,
        action_dim: 1,
        observation_names: vec!["x".into(), "y".into(), "gripper".into()],
        action_names: vec!["torque".into()],
        step_period_sec: 0.0125,
        left_observations: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        left_actions: vec![-1.0, 1.0],
        right_observations: vec![1e-7, -2.5, 1e30, 0.0, 0.0, 7.75],
        right_actions: vec![0.333, -0.333],
        selector: "clarify".into(),
        encoder_version: "enc-2".into(),
        expires_at: Time::default(),
    }
}

/// Waits for `count` messages, failing early when the peer process has exited.
fn receive_all<M: RosMessage, S: Subscribe<M>>(
    subscription: &S,
    count: usize,
    peer: &mut PeerProcess,
) -> Result<Vec<M>> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut received = Vec::new();
    while received.len() < count {
        if let Some(status) = peer.0.try_wait()? {
            bail!(
                "peer exited with {status} before {} sent {count} messages (its stderr is above)",
                subscription.topic()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "received {} of {count} messages on {} within {STEP_TIMEOUT:?}: \
                 did the Cyclone DDS peer discover this node?",
                received.len(),
                subscription.topic()
            );
        }
        if let Some(message) = subscription.recv_timeout(Duration::from_millis(200))? {
            received.push(message);
        }
    }
    Ok(received)
}

/// Waits for the peer's next report line with `event` set to `name`.
fn wait_for_event(
    lines: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    name: &str,
) -> Result<Value> {
    if let Some(event) = seen.iter().find(|e| e["event"] == name) {
        return Ok(event.clone());
    }
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = lines
            .recv_timeout(left)
            .with_context(|| format!("peer reported no {name:?} event; its reports: {seen:?}"))?;
        seen.push(event.clone());
        if event["event"] == name {
            return Ok(event);
        }
    }
}

#[test]
fn cyclone_dds_peer_exchanges_messages_both_ways() -> Result<()> {
    transport_netns::require_private_network();
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ros_peer.py");
    let folder = tempfile::tempdir()?;
    let fixture_path = folder.path().join("fixture.json");
    let fixture = json!({
        "joint_states": joint_states(),
        "twists": twists(),
        "transitions": transitions(),
        "query": query(),
        "node_name": "/clarify_interop",
    });
    std::fs::write(&fixture_path, serde_json::to_vec_pretty(&fixture)?)?;

    let mut node = DdsNode::new(NodeConfig {
        name: "clarify_interop".into(),
        namespace: "/".into(),
        domain_id: DOMAIN_ID,
    })?;
    let latched = QosConfig::latched(16);
    let joint_subscription = node.create_subscription::<JointState>("joint_states", &latched)?;
    let twist_subscription = node.create_subscription::<Twist>("cmd_vel", &latched)?;
    let transition_subscription =
        node.create_subscription::<Transition>("clarify/transitions", &latched)?;
    let echo_subscription =
        node.create_subscription::<PreferenceQuery>("interop/query_echo", &latched)?;
    let query_publisher =
        node.create_publisher::<PreferenceQuery>("clarify/preference_query", &latched)?;
    // Transient-local durability keeps the query for the peer even if it joins later.
    query_publisher.publish(query())?;

    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&fixture_path)
        .args(["--timeout", &STEP_TIMEOUT.as_secs().to_string()])
        .args(["--domain-id", &DOMAIN_ID.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "start {} (set CLARIFY_PYTHON to a Python with cyclonedds==11.0.1)",
                python.display()
            )
        })?;
    let stdout = child.stdout.take().context("peer stdout")?;
    let stdin = child.stdin.take().context("peer stdin")?;
    let mut peer = PeerProcess(child);
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let event = serde_json::from_str(&line)
                .unwrap_or_else(|_| json!({"event": "text", "line": line}));
            if sender.send(event).is_err() {
                break;
            }
        }
    });

    let received_joints = receive_all(&joint_subscription, 3, &mut peer)?;
    let received_twists = receive_all(&twist_subscription, 2, &mut peer)?;
    let received_transitions = receive_all(&transition_subscription, 3, &mut peer)?;
    let echo = receive_all(&echo_subscription, 1, &mut peer)?;
    let mut seen = Vec::new();
    let query_report = wait_for_event(&lines, &mut seen, "query_received")?;
    let discovery_report = wait_for_event(&lines, &mut seen, "discovery")?;

    drop(stdin);
    let done = wait_for_event(&lines, &mut seen, "done")?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let status = loop {
        if let Some(status) = peer.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            bail!("peer did not exit within {STEP_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };

    // Shown with --nocapture or when an assertion fails.
    println!("peer reports: {seen:#?}");
    for (index, (received, sent)) in received_joints.iter().zip(joint_states()).enumerate() {
        assert_eq!(received.header, sent.header, "joint state {index}");
        assert_eq!(received.name, sent.name, "joint state {index}");
        assert_eq!(received.position, sent.position, "joint state {index}");
        assert_eq!(received.velocity, sent.velocity, "joint state {index}");
        assert_eq!(received.effort, sent.effort, "joint state {index}");
    }
    assert_eq!(received_twists, twists());
    for (index, (received, sent)) in received_transitions.iter().zip(transitions()).enumerate() {
        assert_eq!(received.header, sent.header, "transition {index}");
        assert_eq!(received.episode_id, sent.episode_id, "transition {index}");
        assert_eq!(received.step, sent.step, "transition {index}");
        assert_eq!(received.observation, sent.observation, "transition {index}");
        assert_eq!(received.action, sent.action, "transition {index}");
        assert_eq!(received.reward, sent.reward, "transition {index}");
        assert_eq!(received.has_reward, sent.has_reward, "transition {index}");
        assert_eq!(received.terminated, sent.terminated, "transition {index}");
        assert_eq!(received.truncated, sent.truncated, "transition {index}");
    }
    assert_eq!(
        query_report["mismatches"],
        json!([]),
        "peer's field check of the query"
    );
    assert_eq!(echo[0], query(), "query echoed by the peer");
    assert_eq!(
        discovery_report["found"],
        json!(true),
        "peer did not find /clarify_interop in ros_discovery_info: {discovery_report}"
    );
    assert_eq!(done["ok"], json!(true), "{seen:?}");
    assert!(
        status.success(),
        "peer exited with {status}; reports: {seen:?}"
    );
    Ok(())
}

//! The recorder against a robot on another DDS implementation: the Cyclone DDS script
//! tests/interop/ros_stream_peer.py publishes episode events, JointState, Twist and
//! Transition messages, and this test checks the episodes that land in the stores.
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
use clarify::dataset::EpisodeEnd;
use clarify::recorder::{EpisodeConfig, LiveRecorder, RecorderConfig, Source, TransitionSource};
use clarify::store::Store;
use clarify::transport::NodeConfig;
use clarify::transport::dds::DdsNode;
use serde_json::{Value, json};

const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const DOMAIN_ID: u16 = 63;
const COUNT: u64 = 100;

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

fn wait_for_event(lines: &mpsc::Receiver<Value>, seen: &mut Vec<Value>, name: &str) -> Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !seen.iter().any(|event| event["event"] == name) {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = lines
            .recv_timeout(left)
            .with_context(|| format!("peer reported no {name:?} event; its reports: {seen:?}"))?;
        seen.push(event);
    }
    Ok(())
}

#[test]
fn cyclone_dds_robot_is_recorded_into_the_store() -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let mut node = DdsNode::new(NodeConfig {
        name: "clarify_recorder".into(),
        namespace: "/".into(),
        domain_id: DOMAIN_ID,
    })?;
    let sampled = RecorderConfig {
        control_rate_hz: 20.0,
        max_age_secs: 0.5,
        observation: vec![Source::JointState {
            topic: "/rec/joint_states".into(),
            position: vec!["shoulder".into(), "elbow".into()],
            velocity: vec![],
            effort: vec![],
        }],
        action: vec![Source::Twist {
            topic: "/rec/cmd_vel".into(),
        }],
        episode: EpisodeConfig {
            topic: Some("/rec/episode".into()),
            max_steps: None,
        },
        ..RecorderConfig::default()
    };
    let whole_steps = RecorderConfig {
        transition: Some(TransitionSource {
            topic: "/rec/transitions".into(),
            observation_size: 2,
            action_size: 1,
        }),
        ..RecorderConfig::default()
    };
    let sampled_recorder = LiveRecorder::start(
        &mut node,
        &sampled,
        Store::open(folder.path().join("a.sqlite"))?,
    )?;
    let transition_recorder = LiveRecorder::start(
        &mut node,
        &whole_steps,
        Store::open(folder.path().join("b.sqlite"))?,
    )?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ros_stream_peer.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args(["--count", &COUNT.to_string(), "--rate", "50"])
        .args(["--timeout", &STEP_TIMEOUT.as_secs().to_string()])
        .args(["--domain-id", &DOMAIN_ID.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start the Cyclone DDS peer (set CLARIFY_PYTHON to a Python with cyclonedds)")?;
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
    let mut seen = Vec::new();
    wait_for_event(&lines, &mut seen, "stream_done")?;

    // Wait until every message has arrived.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let a = sampled_recorder.counters();
        let b = transition_recorder.counters();
        let received = |snapshot: &clarify::recorder::CounterSnapshot, topic| {
            snapshot.topic(topic).map_or(0, |counts| counts.received)
        };
        if received(&a, "/rec/joint_states") == COUNT
            && received(&a, "/rec/cmd_vel") == COUNT
            && received(&a, "/rec/episode") == 2
            && received(&b, "/rec/transitions") == 10
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("not every message arrived: {a:#?} {b:#?}; peer reports {seen:?}");
        }
        if let Some(status) = peer.0.try_wait()? {
            bail!("peer exited with {status}; reports {seen:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let a = sampled_recorder.stop()?;
    let b = transition_recorder.stop()?;
    drop(stdin);
    wait_for_event(&lines, &mut seen, "done")?;

    // Joint states and twists: one episode, ended by the robot's task end.
    println!("sampled: {:#?}", a.counters);
    let episodes = a.store.episodes(a.dataset)?;
    assert_eq!(episodes.len(), 1, "{episodes:?}");
    assert_eq!(episodes[0].end, EpisodeEnd::Terminated);
    // 2 s at 20 Hz.
    assert!((30..=45).contains(&episodes[0].step_count), "{episodes:?}");
    let arrays = a.store.episode_arrays(episodes[0].id)?;
    let mut previous = -1.0;
    for (observation, action) in arrays
        .observations
        .rows()
        .into_iter()
        .zip(arrays.actions.rows())
    {
        // Message k has shoulder k and elbow -k, mapped by name; its twist has x = k.
        let k = observation[0];
        assert_eq!(observation[1], -k);
        assert!(k >= previous && k.fract() == 0.0, "{observation}");
        assert!((action[0] - k).abs() <= 1.0, "{observation} {action}");
        previous = k;
    }
    assert_eq!(a.counters.steps_written, episodes[0].step_count as u64);

    // Transitions: two episodes, kept as sent.
    let episodes = b.store.episodes(b.dataset)?;
    let ends: Vec<_> = episodes.iter().map(|e| (e.step_count, e.end)).collect();
    assert_eq!(
        ends,
        [(5, EpisodeEnd::Terminated), (5, EpisodeEnd::TimedOut)]
    );
    let second = b.store.episode_arrays(episodes[1].id)?;
    assert_eq!(second.observations.column(0).to_vec(), [1.0; 5]);
    assert_eq!(
        second.observations.column(1).to_vec(),
        [0.0, 1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(second.actions.column(0).to_vec(), [0.0, 0.1, 0.2, 0.3, 0.4]);
    Ok(())
}

//! A DDS stream for the recorder: one node publishes joint states and actions at a fixed
//! rate, with some invalid messages mixed in, and a second node in the same process
//! records them into a store. `tests/recorder_dds.rs` and `examples/recorder_rate.rs`
//! include this file with `#[path]`; on its own it has no tests. Run inside
//! `.ci/netns-run`.

#![allow(dead_code)]

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::msg::{Float32MultiArray, Header, JointState, Time};
use clarify::recorder::{CounterSnapshot, EpisodeConfig, LiveRecorder, RecorderConfig, Source};
use clarify::store::Store;
use clarify::transport::dds::DdsNode;
use clarify::transport::{NodeConfig, Publish, QosConfig, Transport};
use serde::Serialize;

pub const JOINT_TOPIC: &str = "/rate/joint_states";
pub const ACTION_TOPIC: &str = "/rate/action";
pub const JOINTS: usize = 7;
pub const ACTION_SIZE: usize = 4;
/// Every this many joint states one has a NaN position in a recorded joint.
pub const NAN_EVERY: u64 = 100;
/// Every this many actions one has the wrong number of values.
pub const SHORT_ACTION_EVERY: u64 = 250;

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub rate_hz: f64,
    pub duration: Duration,
    pub control_rate_hz: f64,
    pub max_steps: usize,
    pub domain_id: u16,
}

/// What one run sent, what the recorder counted and what the store holds.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    pub rate_hz: f64,
    pub duration_secs: f64,
    /// Messages published per topic.
    pub sent_joint_states: u64,
    pub sent_actions: u64,
    /// Invalid messages among them.
    pub sent_nan_joint_states: u64,
    pub sent_short_actions: u64,
    /// Achieved publish rate per topic, messages per second.
    pub publish_rate_hz: f64,
    pub counters: CounterSnapshot,
    /// Steps and episodes found in the store after the recorder stopped.
    pub stored_steps: usize,
    pub stored_episodes: usize,
    /// CPU time of the whole process (publisher, DDS and recorder) and of the recorder's
    /// own threads (subscription hand-over, core and store writer, without the DDS
    /// library's threads), as a share of one core over the recording's wall time.
    pub process_cpu_share: f64,
    pub recorder_threads_cpu_share: f64,
}

fn stamp_now() -> Header {
    Header {
        stamp: Time::now(),
        frame_id: String::new(),
    }
}

pub fn joint_names() -> Vec<String> {
    (0..JOINTS).map(|index| format!("joint_{index}")).collect()
}

pub fn recorder_config(settings: &StreamSettings) -> RecorderConfig {
    RecorderConfig {
        dataset_name: "rate".into(),
        control_rate_hz: settings.control_rate_hz,
        max_age_secs: 0.5,
        log_interval_secs: 5.0,
        observation: vec![Source::JointState {
            topic: JOINT_TOPIC.into(),
            position: joint_names(),
            velocity: joint_names(),
            effort: vec![],
        }],
        action: vec![Source::Float32MultiArray {
            topic: ACTION_TOPIC.into(),
            size: ACTION_SIZE,
        }],
        episode: EpisodeConfig {
            topic: None,
            max_steps: Some(settings.max_steps),
        },
        // Reliable, keeping enough samples for a second of the stream.
        qos: QosConfig {
            depth: 4096,
            ..QosConfig::default()
        },
        inbox_capacity: 8192,
        ..RecorderConfig::default()
    }
}

/// CPU time in clock ticks (utime + stime) from a /proc stat line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Returns (process ticks, ticks of threads whose name starts with "recorder").
fn cpu_ticks() -> (u64, u64) {
    let process = fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_ticks(&stat))
        .unwrap_or(0);
    let mut recorder = 0;
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let name = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if name.starts_with("recorder") {
                recorder += fs::read_to_string(task.path().join("stat"))
                    .ok()
                    .and_then(|stat| stat_ticks(&stat))
                    .unwrap_or(0);
            }
        }
    }
    (process, recorder)
}

/// Clock ticks per second of /proc times (USER_HZ), 100 on Linux.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// Publishes and records for `settings.duration`, then waits until the recorder has
/// counted every message that arrives and stops it.
pub fn run_stream(settings: &StreamSettings, store: Store) -> Result<(StreamReport, Store)> {
    let config = recorder_config(settings);
    let node_config = |name: &str| NodeConfig {
        name: name.into(),
        namespace: "/".into(),
        domain_id: settings.domain_id,
    };
    let mut robot = DdsNode::new(node_config("rate_robot"))?;
    let mut recorder_node = DdsNode::new(node_config("rate_recorder"))?;
    let joint_publisher = robot.create_publisher::<JointState>(JOINT_TOPIC, &config.qos)?;
    let action_publisher =
        robot.create_publisher::<Float32MultiArray>(ACTION_TOPIC, &config.qos)?;

    let (cpu_before, recorder_cpu_before) = cpu_ticks();
    let recorder = LiveRecorder::start(&mut recorder_node, &config, store)?;

    // Volatile samples published before discovery are lost: wait for both subscriptions.
    let deadline = Instant::now() + Duration::from_secs(20);
    for topic in [JOINT_TOPIC, ACTION_TOPIC] {
        while robot.subscription_count(topic)? < 1 {
            if Instant::now() > deadline {
                bail!("no subscription to {topic} discovered in 20 s");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    // Discovery of the publisher by the subscriber can lag behind the other direction.
    thread::sleep(Duration::from_millis(300));

    let names = joint_names();
    let period = Duration::from_secs_f64(1.0 / settings.rate_hz);
    let total = (settings.rate_hz * settings.duration.as_secs_f64()).round() as u64;
    let started = Instant::now();
    let (mut sent_nan, mut sent_short) = (0, 0);
    for index in 0..total {
        let due = started + period.mul_f64(index as f64);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let phase = index as f64 * 1e-3;
        let mut position: Vec<f64> = (0..JOINTS).map(|j| (phase + j as f64).sin()).collect();
        if index % NAN_EVERY == NAN_EVERY - 1 {
            position[3] = f64::NAN;
            sent_nan += 1;
        }
        joint_publisher.publish(JointState {
            header: stamp_now(),
            name: names.clone(),
            position,
            velocity: (0..JOINTS).map(|j| (phase + j as f64).cos()).collect(),
            effort: vec![],
        })?;
        let size = if index % SHORT_ACTION_EVERY == SHORT_ACTION_EVERY - 1 {
            sent_short += 1;
            ACTION_SIZE - 1
        } else {
            ACTION_SIZE
        };
        action_publisher.publish(Float32MultiArray {
            data: (0..size)
                .map(|a| (phase * (a + 1) as f64).sin() as f32)
                .collect(),
            ..Float32MultiArray::default()
        })?;
    }
    let publish_secs = started.elapsed().as_secs_f64();

    // Wait until the counts stop growing (or match what was sent).
    let mut last = (u64::MAX, Instant::now());
    loop {
        let snapshot = recorder.counters();
        let received: u64 = snapshot.topics.iter().map(|topic| topic.received).sum();
        if received == 2 * total {
            break;
        }
        if received != last.0 {
            last = (received, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64();
    // Read before stopping: the recorder's threads end with it.
    let (cpu_after, recorder_cpu_after) = cpu_ticks();
    let summary = recorder.stop()?;

    let episodes = summary.store.episodes(summary.dataset)?;
    let stored_steps = episodes.iter().map(|episode| episode.step_count).sum();
    let report = StreamReport {
        rate_hz: settings.rate_hz,
        duration_secs: settings.duration.as_secs_f64(),
        sent_joint_states: total,
        sent_actions: total,
        sent_nan_joint_states: sent_nan,
        sent_short_actions: sent_short,
        publish_rate_hz: total as f64 / publish_secs,
        counters: summary.counters,
        stored_steps,
        stored_episodes: episodes.len(),
        process_cpu_share: (cpu_after - cpu_before) as f64 / CLOCK_TICKS_PER_SEC / wall,
        recorder_threads_cpu_share: (recorder_cpu_after.saturating_sub(recorder_cpu_before)) as f64
            / CLOCK_TICKS_PER_SEC
            / wall,
    };
    Ok((report, summary.store))
}

/// Checks the accounting of a report; returns a description of the first violation.
pub fn check_accounting(report: &StreamReport) -> Result<()> {
    let counters = &report.counters;
    for topic in &counters.topics {
        if topic.received != topic.accepted + topic.dropped_total() {
            bail!(
                "{}: received {} != accepted + dropped {:?}",
                topic.topic,
                topic.received,
                topic
            );
        }
    }
    for topic in [JOINT_TOPIC, ACTION_TOPIC] {
        counters
            .topic(topic)
            .with_context(|| format!("{topic} not counted"))?;
    }
    let dropped_steps: u64 = counters.steps_dropped.values().sum();
    if counters.steps_recorded != counters.steps_written + dropped_steps {
        bail!(
            "steps recorded {} != written {} + dropped {dropped_steps}",
            counters.steps_recorded,
            counters.steps_written
        );
    }
    if counters.steps_written != report.stored_steps as u64 {
        bail!(
            "steps written {} != steps in the store {}",
            counters.steps_written,
            report.stored_steps
        );
    }
    Ok(())
}

//! Importing rosbag2 MCAP recordings: the same episodes as live recording of the same
//! messages, and clear errors for files that cannot be used.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use clarify::bag::{self, BagError, encode_cdr};
use clarify::msg::{
    Float32MultiArray, Header, JointState, RosMessage, StringMessage, Time, Transition, Twist,
    Vector3,
};
use clarify::recorder::{
    Counters, EpisodeConfig, Incoming, RecorderConfig, RecorderCore, Source, StoreWriter,
    TimedMessage, TransitionSource, feed,
};
use clarify::store::{ContentHash, DatasetId, DatasetMeta, ImportOptions, ImportOutcome, Store};
use mcap::records::MessageHeader;

const T0: i64 = 1_700_000_000 * 1_000_000_000;
const MS: i64 = 1_000_000;

fn header(ns: i64) -> Header {
    Header {
        stamp: Time {
            sec: (ns / 1_000_000_000) as i32,
            nanosec: (ns % 1_000_000_000) as u32,
        },
        frame_id: String::new(),
    }
}

fn config() -> RecorderConfig {
    RecorderConfig {
        control_rate_hz: 50.0,
        max_age_secs: 0.1,
        log_interval_secs: 0.0,
        observation: vec![Source::JointState {
            topic: "/joint_states".into(),
            position: vec!["a".into(), "b".into()],
            velocity: vec![],
            effort: vec!["a".into()],
        }],
        action: vec![
            Source::Twist {
                topic: "/cmd_vel".into(),
            },
            Source::Float32MultiArray {
                topic: "/gripper".into(),
                size: 1,
            },
        ],
        episode: EpisodeConfig {
            topic: Some("/episode".into()),
            max_steps: Some(40),
        },
        ..RecorderConfig::default()
    }
}

/// A stream of 3 s: joint states at 200 Hz (every 37th with a NaN), twists at 100 Hz,
/// gripper commands at 25 Hz, and episode events at 50 Hz ticks: a start and a task end
/// 32 ticks later, a start that the recorder's limit of 40 steps ends, and a start that
/// the end of the bag cuts after 24 ticks.
fn stream() -> Vec<(&'static str, Incoming, i64)> {
    let mut messages = Vec::new();
    for k in 0..600_i64 {
        let time = T0 + k * 5 * MS;
        let mut position = vec![k as f64 * 0.01, -(k as f64)];
        if k % 37 == 36 {
            position[1] = f64::NAN;
        }
        messages.push((
            "/joint_states",
            Incoming::JointState(JointState {
                header: header(time - MS),
                name: vec!["b".into(), "a".into()],
                position: position.into_iter().rev().collect(),
                velocity: vec![],
                effort: vec![0.5, k as f64],
            }),
            time,
        ));
        if k % 2 == 0 {
            messages.push((
                "/cmd_vel",
                Incoming::Twist(Twist {
                    linear: Vector3 {
                        x: k as f64,
                        y: 0.0,
                        z: 0.0,
                    },
                    angular: Vector3::default(),
                }),
                time + MS,
            ));
        }
        if k % 8 == 0 {
            messages.push((
                "/gripper",
                Incoming::Float32MultiArray(Float32MultiArray {
                    data: vec![(k % 3) as f32],
                    ..Float32MultiArray::default()
                }),
                time + 2 * MS,
            ));
        }
    }
    for (k, word) in [
        (20, "start"),
        (150, "task_end"),
        (250, "start"),
        (500, "start"),
    ] {
        messages.push((
            "/episode",
            Incoming::EpisodeEvent(StringMessage { data: word.into() }),
            T0 + k * 5 * MS + 3 * MS,
        ));
    }
    messages.sort_by_key(|&(_, _, time)| time);
    messages
}

fn encode(message: &Incoming) -> Vec<u8> {
    let bytes = match message {
        Incoming::JointState(m) => encode_cdr(m),
        Incoming::Twist(m) => encode_cdr(m),
        Incoming::Odometry(m) => encode_cdr(m.as_ref()),
        Incoming::Float32MultiArray(m) => encode_cdr(m),
        Incoming::Transition(m) => encode_cdr(m),
        Incoming::EpisodeEvent(m) => encode_cdr(m),
    };
    bytes.expect("messages encode")
}

/// Writes an MCAP file as rosbag2 does: ros2msg schemas, CDR channels, log times.
fn write_bag(
    path: &Path,
    messages: &[(&str, Incoming, i64)],
    type_override: Option<(&str, &str)>,
) -> Result<()> {
    let mut writer = mcap::Writer::new(BufWriter::new(File::create(path)?))?;
    let mut channels = BTreeMap::new();
    for (sequence, (topic, message, time)) in messages.iter().enumerate() {
        let channel = match channels.get(topic) {
            Some(&channel) => channel,
            None => {
                let mut type_name = message.type_name();
                if let Some((override_topic, name)) = type_override
                    && override_topic == *topic
                {
                    type_name = name.to_owned();
                }
                let schema = writer.add_schema(&type_name, "ros2msg", b"")?;
                let channel = writer.add_channel(schema, topic, "cdr", &BTreeMap::new())?;
                channels.insert(*topic, channel);
                channel
            }
        };
        writer.write_to_known_channel(
            &MessageHeader {
                channel_id: channel,
                sequence: sequence as u32,
                log_time: *time as u64,
                publish_time: *time as u64,
            },
            &encode(message),
        )?;
    }
    writer.finish()?;
    Ok(())
}

fn timed(config: &RecorderConfig, messages: &[(&str, Incoming, i64)]) -> Vec<TimedMessage> {
    let plan = config.plan().unwrap();
    messages
        .iter()
        .map(|(topic, message, time)| {
            let index = plan.iter().position(|entry| entry.topic == *topic).unwrap();
            (index, message.clone(), *time)
        })
        .collect()
}

/// Records the messages through the live path's core, writer channel and writer thread.
fn record_live(
    store: Store,
    config: &RecorderConfig,
    messages: Vec<TimedMessage>,
) -> Result<(Store, DatasetId)> {
    let mut store = store;
    let plan = config.plan()?;
    let counters = Arc::new(Counters::new(plan.into_iter().map(|entry| entry.topic)));
    let dataset = store.create_recording(
        &DatasetMeta {
            name: "live".into(),
            source_path: "ros2:test".into(),
            content_hash: ContentHash::of_bytes(b"live"),
            sidecar_json: None,
            imported_at_unix_secs: 0.0,
        },
        config.observation_dim(),
        config.action_dim(),
    )?;
    let (sink, writer) = StoreWriter::spawn(store, dataset, 4, Arc::clone(&counters))?;
    let core = RecorderCore::new(config, Arc::clone(&counters), sink)?;
    drop(feed(core, messages));
    Ok((writer.join()?, dataset))
}

fn assert_same_episodes(a: &Store, a_id: DatasetId, b: &Store, b_id: DatasetId) -> Result<usize> {
    let left = a.episodes(a_id)?;
    let right = b.episodes(b_id)?;
    assert_eq!(left.len(), right.len(), "episode counts");
    for (x, y) in left.iter().zip(&right) {
        assert_eq!(
            (x.index, x.first_step, x.step_count, x.end),
            (y.index, y.first_step, y.step_count, y.end)
        );
        assert_eq!(
            a.episode_arrays(x.id)?,
            b.episode_arrays(y.id)?,
            "episode {}",
            x.index
        );
    }
    Ok(left.len())
}

#[test]
fn mcap_import_equals_live_recording_of_same_stream() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let bag_path = folder.path().join("run.mcap");
    let messages = stream();
    write_bag(&bag_path, &messages, None)?;
    let config = config();

    let mut imported = Store::open(folder.path().join("imported.sqlite"))?;
    let (outcome, counts) =
        bag::import_mcap(&mut imported, &bag_path, &config, &ImportOptions::default())?;
    let ImportOutcome::Imported(summary) = outcome else {
        panic!("first import stores the bag");
    };
    let live = Store::open(folder.path().join("live.sqlite"))?;
    let (live, live_id) = record_live(live, &config, timed(&config, &messages))?;

    let episodes = assert_same_episodes(&imported, summary.dataset.id, &live, live_id)?;
    let ends: Vec<_> = imported
        .episodes(summary.dataset.id)?
        .iter()
        .map(|e| (e.step_count, e.end))
        .collect();
    use clarify::dataset::EpisodeEnd;
    assert_eq!(episodes, 3);
    assert_eq!(
        ends,
        [
            (32, EpisodeEnd::Terminated),
            (40, EpisodeEnd::TimedOut),
            (24, EpisodeEnd::Unmarked)
        ]
    );
    assert_eq!(
        counts
            .topic("/joint_states")
            .unwrap()
            .dropped_for(clarify::recorder::DropReason::NonFinite),
        16
    );
    assert_eq!(summary.dataset.observation_dim, 3);
    assert_eq!(summary.dataset.action_dim, 7);

    // The same file with the same settings is found, not stored again.
    let (again, _) =
        bag::import_mcap(&mut imported, &bag_path, &config, &ImportOptions::default())?;
    assert!(matches!(again, ImportOutcome::AlreadyImported(_)));
    assert_eq!(imported.datasets()?.len(), 1);
    Ok(())
}

#[test]
fn transition_bag_imports_steps_as_sent() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let bag_path = folder.path().join("transitions.mcap");
    let messages: Vec<(&str, Incoming, i64)> = (0..12_u32)
        .map(|i| {
            let (episode, step) = (u64::from(i / 6), i % 6);
            let transition = Transition {
                header: header(T0 + i64::from(i) * 10 * MS),
                episode_id: episode,
                step,
                observation: vec![i as f32, 1.0],
                action: vec![-(i as f32)],
                reward: 0.5,
                has_reward: true,
                terminated: episode == 0 && step == 5,
                truncated: episode == 1 && step == 5,
            };
            (
                "/clarify/transitions",
                Incoming::Transition(transition),
                T0 + i64::from(i) * 10 * MS + MS,
            )
        })
        .collect();
    write_bag(&bag_path, &messages, None)?;
    let config = RecorderConfig {
        transition: Some(TransitionSource {
            topic: "/clarify/transitions".into(),
            observation_size: 2,
            action_size: 1,
        }),
        ..RecorderConfig::default()
    };

    let mut store = Store::open(folder.path().join("store.sqlite"))?;
    let (outcome, _) = bag::import_mcap(&mut store, &bag_path, &config, &ImportOptions::default())?;
    let dataset = outcome.summary().dataset.id;

    let episodes = store.episodes(dataset)?;
    let ends: Vec<_> = episodes.iter().map(|e| (e.step_count, e.end)).collect();
    use clarify::dataset::EpisodeEnd;
    assert_eq!(
        ends,
        [(6, EpisodeEnd::Terminated), (6, EpisodeEnd::TimedOut)]
    );
    let arrays = store.episode_arrays(episodes[1].id)?;
    assert_eq!(
        arrays.observations.column(0).to_vec(),
        [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    );
    assert_eq!(arrays.rewards.to_vec(), [0.5; 6]);
    Ok(())
}

fn import_error(path: &Path, config: &RecorderConfig) -> BagError {
    let folder = tempfile::tempdir().unwrap();
    let mut store = Store::open(folder.path().join("store.sqlite")).unwrap();
    let error = bag::import_mcap(&mut store, path, config, &ImportOptions::default()).unwrap_err();
    assert!(store.datasets().unwrap().is_empty());
    error
}

#[test]
fn bad_files_name_topic_and_expectation() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let config = config();
    let messages = stream();

    // The gripper topic is missing.
    let missing = folder.path().join("missing.mcap");
    let without: Vec<_> = messages
        .iter()
        .filter(|(topic, _, _)| *topic != "/gripper")
        .cloned()
        .collect();
    write_bag(&missing, &without, None)?;
    let error = import_error(&missing, &config).to_string();
    assert!(
        error.contains("topic /gripper (an action source) is not in the file")
            && error.contains("/cmd_vel"),
        "{error}"
    );

    // /cmd_vel recorded with another type.
    let retyped = folder.path().join("retyped.mcap");
    write_bag(
        &retyped,
        &messages,
        Some(("/cmd_vel", "geometry_msgs/msg/TwistStamped")),
    )?;
    let error = import_error(&retyped, &config);
    assert!(error.is_invalid_input());
    let text = error.to_string();
    assert!(
        text.contains("topic /cmd_vel has type \"geometry_msgs/msg/TwistStamped\"")
            && text.contains(&format!("expected {}", Twist::type_name())),
        "{text}"
    );

    // A truncated JointState payload.
    let corrupt = folder.path().join("corrupt.mcap");
    {
        let mut writer = mcap::Writer::new(BufWriter::new(File::create(&corrupt)?))?;
        let schema = writer.add_schema(&JointState::type_name(), "ros2msg", b"")?;
        let channel = writer.add_channel(schema, "/joint_states", "cdr", &BTreeMap::new())?;
        let bytes = encode_cdr(&JointState::default()).unwrap();
        writer.write_to_known_channel(
            &MessageHeader {
                channel_id: channel,
                sequence: 0,
                log_time: T0 as u64,
                publish_time: T0 as u64,
            },
            &bytes[..bytes.len() - 3],
        )?;
        writer.finish()?;
    }
    let error = import_error(&corrupt, &config).to_string();
    assert!(
        error.contains("message 0 on /joint_states")
            && error.contains("not a valid CDR sensor_msgs/msg/JointState"),
        "{error}"
    );

    // Not an MCAP file at all.
    let text_file = folder.path().join("notes.mcap");
    std::fs::write(&text_file, "not a bag")?;
    let error = import_error(&text_file, &config).to_string();
    assert!(error.contains("is not a readable MCAP file"), "{error}");
    Ok(())
}

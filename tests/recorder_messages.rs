//! The recorder core on hand-made message streams: JointState mapping by name, bad
//! messages of every kind, episode boundaries, Transition streams and a full writer queue.

use std::sync::Arc;

use clarify::dataset::EpisodeEnd;
use clarify::msg::{Float32MultiArray, Header, JointState, StringMessage, Time, Transition};
use clarify::recorder::{
    CounterSnapshot, Counters, DropReason, EpisodeConfig, EpisodeSink, Incoming, RecordedEpisode,
    RecorderConfig, RecorderCore, Source, StepDropReason, TimedMessage, TransitionSource, feed,
    replay,
};

/// 100 Hz ticks: one every 10 ms.
const TICK: i64 = 10_000_000;
/// A time on the tick grid, far from zero so that stamps are realistic.
const T0: i64 = 1_700_000_000 * 1_000_000_000;

fn config() -> RecorderConfig {
    RecorderConfig {
        control_rate_hz: 100.0,
        max_age_secs: 0.05,
        log_interval_secs: 0.0,
        observation: vec![Source::JointState {
            topic: "/joint_states".into(),
            position: vec!["shoulder".into(), "elbow".into()],
            velocity: vec!["elbow".into()],
            effort: vec![],
        }],
        action: vec![Source::Float32MultiArray {
            topic: "/action".into(),
            size: 2,
        }],
        ..RecorderConfig::default()
    }
}

fn stamp(ns: i64) -> Header {
    Header {
        stamp: Time {
            sec: (ns / 1_000_000_000) as i32,
            nanosec: (ns % 1_000_000_000) as u32,
        },
        frame_id: String::new(),
    }
}

fn joints(names: &[&str], position: &[f64], velocity: &[f64], stamp_ns: i64) -> Incoming {
    Incoming::JointState(JointState {
        header: stamp(stamp_ns),
        name: names.iter().map(|name| name.to_string()).collect(),
        position: position.to_vec(),
        velocity: velocity.to_vec(),
        effort: vec![],
    })
}

fn action(values: [f32; 2]) -> Incoming {
    Incoming::Float32MultiArray(Float32MultiArray {
        data: values.to_vec(),
        ..Float32MultiArray::default()
    })
}

/// A good joint state and action just before tick `k` (at T0 + k × TICK).
fn good_step(k: i64, value: f64) -> Vec<TimedMessage> {
    let time = T0 + k * TICK - 1_000_000;
    vec![
        (
            0,
            joints(
                &["shoulder", "elbow"],
                &[value, value + 0.5],
                &[0.0, -value],
                time,
            ),
            time,
        ),
        (1, action([value as f32, 1.0]), time),
    ]
}

/// Appends a valid action one tick after the last message, so that the ticks up to the
/// last message run (a replay runs the ticks up to its last message's time).
fn with_clock(mut messages: Vec<TimedMessage>) -> Vec<TimedMessage> {
    let last = messages
        .iter()
        .map(|&(_, _, time)| time)
        .max()
        .unwrap_or(T0);
    messages.push((1, action([7.0, 7.0]), last + TICK));
    messages
}

fn run(messages: Vec<TimedMessage>) -> (Vec<RecordedEpisode>, CounterSnapshot) {
    replay(&config(), with_clock(messages)).expect("valid configuration")
}

fn joint_counts(snapshot: &CounterSnapshot) -> (u64, u64, Vec<(DropReason, u64)>) {
    let topic = snapshot.topic("/joint_states").expect("subscribed");
    (
        topic.received,
        topic.accepted,
        topic
            .dropped
            .iter()
            .map(|(&reason, &count)| (reason, count))
            .collect(),
    )
}

#[test]
fn reordered_names_map_by_joint_name() {
    let time = T0 - 1_000_000;
    // The message lists the joints in another order and has one the recorder ignores.
    let messages = vec![
        (
            0,
            joints(
                &["gripper", "elbow", "shoulder"],
                &[9.0, 2.0, 1.0],
                &[9.5, -2.0, -1.0],
                time,
            ),
            time,
        ),
        (1, action([0.1, 0.2]), time),
    ];

    let (episodes, counts) = run(messages);

    assert_eq!(episodes.len(), 1);
    let observations = &episodes[0].arrays.observations;
    // shoulder position, elbow position, elbow velocity.
    assert_eq!(observations.row(0).to_vec(), [1.0, 2.0, -2.0]);
    assert_eq!(episodes[0].arrays.actions.row(0).to_vec(), [0.1, 0.2]);
    assert_eq!(joint_counts(&counts), (1, 1, vec![]));
}

#[test]
fn empty_unused_array_accepted_empty_used_array_dropped() {
    let time = T0 - 1_000_000;
    let mut config = config();
    config.observation = vec![Source::JointState {
        topic: "/joint_states".into(),
        position: vec!["shoulder".into()],
        velocity: vec![],
        effort: vec![],
    }];
    // Velocity and effort empty: fine while only positions are used.
    let fine = joints(&["shoulder"], &[0.3], &[], time);
    let (episodes, counts) = replay(
        &config,
        with_clock(vec![(0, fine, time), (1, action([0.0, 0.0]), time)]),
    )
    .unwrap();
    assert_eq!(episodes.len(), 1);
    assert_eq!(joint_counts(&counts), (1, 1, vec![]));

    // The default configuration uses the elbow velocity.
    let no_velocity = joints(&["shoulder", "elbow"], &[0.3, 0.4], &[], time);
    let (episodes, counts) = run(vec![(0, no_velocity, time), (1, action([0.0, 0.0]), time)]);
    assert!(episodes.is_empty());
    assert_eq!(
        joint_counts(&counts),
        (1, 0, vec![(DropReason::Malformed, 1)])
    );
}

#[test]
fn missing_or_duplicated_joint_is_malformed() {
    let time = T0 - 1_000_000;
    let missing = joints(&["shoulder"], &[0.3], &[0.1], time);
    let twice = joints(&["shoulder", "elbow", "elbow"], &[0.3, 0.4, 0.5], &[], time);

    let (episodes, counts) = run(vec![(0, missing, time), (0, twice, time)]);

    assert!(episodes.is_empty());
    assert_eq!(
        joint_counts(&counts),
        (2, 0, vec![(DropReason::Malformed, 2)])
    );
}

#[test]
fn nan_in_used_joint_dropped_nan_in_other_joint_kept() {
    let time = T0 - 1_000_000;
    let used = joints(&["shoulder", "elbow"], &[f64::NAN, 0.4], &[0.0, 0.0], time);
    let used_velocity = joints(
        &["shoulder", "elbow"],
        &[0.1, 0.4],
        &[0.0, f64::INFINITY],
        time,
    );
    let too_big_for_f32 = joints(&["shoulder", "elbow"], &[1e300, 0.4], &[0.0, 0.0], time);
    // The shoulder velocity is not configured, so its NaN does not matter.
    let unused = joints(&["shoulder", "elbow"], &[0.1, 0.4], &[f64::NAN, 0.2], time);
    let nan_action = action([f32::NAN, 0.0]);

    let (episodes, counts) = run(vec![
        (0, used, time),
        (0, used_velocity, time),
        (0, too_big_for_f32, time),
        (0, unused, time),
        (1, nan_action, time),
        (1, action([0.5, 0.5]), time),
    ]);

    assert_eq!(
        joint_counts(&counts),
        (4, 1, vec![(DropReason::NonFinite, 3)])
    );
    let action_counts = counts.topic("/action").unwrap();
    assert_eq!(action_counts.dropped_for(DropReason::NonFinite), 1);
    assert_eq!(episodes.len(), 1);
    assert_eq!(
        episodes[0].arrays.observations.row(0).to_vec(),
        [0.1, 0.4, 0.2]
    );
}

#[test]
fn wrong_lengths_dropped() {
    let time = T0 - 1_000_000;
    // Position has 1 value for 2 names; velocity has 3 for 2.
    let short = joints(&["shoulder", "elbow"], &[0.1], &[0.0, 0.0], time);
    let long = joints(&["shoulder", "elbow"], &[0.1, 0.2], &[0.0, 0.0, 0.0], time);
    let wrong_action = (
        1,
        Incoming::Float32MultiArray(Float32MultiArray {
            data: vec![1.0, 2.0, 3.0],
            ..Float32MultiArray::default()
        }),
        time,
    );

    let (episodes, counts) = run(vec![(0, short, time), (0, long, time), wrong_action]);

    assert!(episodes.is_empty());
    assert_eq!(
        joint_counts(&counts),
        (2, 0, vec![(DropReason::WrongSize, 2)])
    );
    assert_eq!(
        counts
            .topic("/action")
            .unwrap()
            .dropped_for(DropReason::WrongSize),
        1
    );
}

#[test]
fn stale_stamp_dropped_and_stale_source_ends_episode() {
    // Received now, but measured 60 ms ago (max age 50 ms).
    let time = T0 - 1_000_000;
    let old = joints(
        &["shoulder", "elbow"],
        &[0.1, 0.2],
        &[0.0, 0.0],
        time - 60_000_000,
    );
    let mut messages = vec![(0, old, time)];
    // Three good ticks, then the joint states stop while actions go on: after 50 ms the
    // observation is stale, which ends the episode.
    for k in 0..3 {
        messages.extend(good_step(k, k as f64));
    }
    for k in 3..12 {
        messages.push((1, action([0.0, 0.0]), T0 + k * TICK - 1_000_000));
    }
    // Joint states come back: a new episode starts.
    for k in 12..14 {
        messages.extend(good_step(k, k as f64));
    }

    let (episodes, counts) = run(messages);

    assert_eq!(joint_counts(&counts), (6, 5, vec![(DropReason::Stale, 1)]));
    let lengths: Vec<usize> = episodes.iter().map(RecordedEpisode::steps).collect();
    // Ticks 0..=6 see a joint state at most 50 ms old (the last one 1 ms before tick 2);
    // ticks 7..=11 see none.
    assert_eq!(lengths, [7, 2]);
    assert_eq!(episodes[0].end, EpisodeEnd::Unmarked);
    assert_eq!(counts.episodes_interrupted, 1);
    assert_eq!(counts.ticks_missed, 5);
}

#[test]
fn steps_sample_latest_values_and_next_observation_follows() {
    let mut messages = Vec::new();
    for k in 0..4 {
        messages.extend(good_step(k, k as f64));
    }

    let (episodes, counts) = run(messages);

    assert_eq!(episodes.len(), 1);
    let arrays = &episodes[0].arrays;
    assert_eq!(arrays.observations.column(0).to_vec(), [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(
        arrays.next_observations.column(0).to_vec(),
        [1.0, 2.0, 3.0, 3.0]
    );
    assert_eq!(arrays.actions.column(0).to_vec(), [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(counts.steps_recorded, 4);
    // Every message the recorder received is accounted for.
    for topic in &counts.topics {
        assert_eq!(topic.received, topic.accepted + topic.dropped_total());
    }
}

fn event(word: &str) -> Incoming {
    Incoming::EpisodeEvent(StringMessage { data: word.into() })
}

#[test]
fn episode_events_and_step_limit_keep_end_kinds_apart() {
    let mut config = config();
    config.episode = EpisodeConfig {
        topic: Some("/episode".into()),
        max_steps: Some(3),
    };
    let at = |k: i64| T0 + k * TICK - 500_000;
    let mut messages = Vec::new();
    for k in 0..20 {
        messages.extend(good_step(k, k as f64));
    }
    // Idle until the start at tick 2; task end after tick 3 (2 steps); start at 5 and the
    // recorder's limit of 3 steps ends it; start at 10, then an unknown word, then the
    // robot's time limit after 2 steps; the last start gets tick 18 before the stream
    // ends.
    for (k, word) in [
        (2, "start"),
        (4, "task_end"),
        (5, "start"),
        (10, "start"),
        (11, "pause"),
        (12, "time_limit"),
        (18, "start"),
    ] {
        messages.push((2, event(word), at(k)));
    }
    messages.sort_by_key(|&(_, _, time)| time);

    let (episodes, counts) = replay(&config, messages).unwrap();

    let summary: Vec<(usize, EpisodeEnd)> = episodes.iter().map(|e| (e.steps(), e.end)).collect();
    assert_eq!(
        summary,
        [
            (2, EpisodeEnd::Terminated),
            (3, EpisodeEnd::TimedOut),
            (2, EpisodeEnd::TimedOut),
            (1, EpisodeEnd::Unmarked),
        ]
    );
    let events = counts.topic("/episode").unwrap();
    assert_eq!(
        (events.accepted, events.dropped_for(DropReason::Malformed)),
        (6, 1)
    );
}

fn transition(episode_id: u64, step: u32, ends: (bool, bool)) -> Incoming {
    Incoming::Transition(Transition {
        header: Header::default(),
        episode_id,
        step,
        observation: vec![step as f32, episode_id as f32],
        action: vec![0.5],
        reward: step as f32,
        has_reward: true,
        terminated: ends.0,
        truncated: ends.1,
    })
}

#[test]
fn transition_stream_splits_on_flags_ids_and_gaps() {
    let config = RecorderConfig {
        transition: Some(TransitionSource {
            topic: "/transitions".into(),
            observation_size: 2,
            action_size: 1,
        }),
        ..RecorderConfig::default()
    };
    let none = (false, false);
    let mut bad = transition(1, 2, none);
    if let Incoming::Transition(message) = &mut bad {
        message.action.push(1.0);
    }
    let stream = vec![
        transition(0, 0, none),
        transition(0, 1, (true, false)),
        transition(1, 0, none),
        transition(1, 1, none),
        bad,
        // Step 2 was dropped: a gap within episode 1.
        transition(1, 3, none),
        transition(1, 4, (false, true)),
        transition(2, 0, none),
        // A new id without an end flag ends episode 2 as unmarked.
        transition(3, 0, none),
    ];
    let messages = stream
        .into_iter()
        .enumerate()
        .map(|(i, message)| (0, message, T0 + i as i64 * TICK))
        .collect::<Vec<_>>();

    let (episodes, counts) = replay(&config, messages).unwrap();

    let summary: Vec<(usize, EpisodeEnd)> = episodes.iter().map(|e| (e.steps(), e.end)).collect();
    assert_eq!(
        summary,
        [
            (2, EpisodeEnd::Terminated),
            (2, EpisodeEnd::Unmarked),
            (2, EpisodeEnd::TimedOut),
            (1, EpisodeEnd::Unmarked),
            (1, EpisodeEnd::Unmarked),
        ]
    );
    assert_eq!(episodes[0].arrays.rewards.to_vec(), [0.0, 1.0]);
    assert_eq!(
        episodes[0].arrays.next_observations.row(0).to_vec(),
        [1.0, 0.0]
    );
    assert_eq!(counts.episodes_interrupted, 1);
    assert_eq!(
        counts.topics[0].dropped.iter().collect::<Vec<_>>(),
        [(&DropReason::WrongSize, &1)]
    );
}

/// A sink with room for a fixed number of episodes, like a full writer queue.
struct Bounded {
    room: usize,
    taken: Vec<RecordedEpisode>,
}

impl EpisodeSink for Bounded {
    fn submit(&mut self, episode: RecordedEpisode) -> Result<(), StepDropReason> {
        if self.taken.len() == self.room {
            return Err(StepDropReason::WriterFull);
        }
        self.taken.push(episode);
        Ok(())
    }
}

#[test]
fn full_writer_queue_drops_episode_with_its_own_reason() {
    let mut config = config();
    config.episode.max_steps = Some(2);
    let plan = config.plan().unwrap();
    let counters = Arc::new(Counters::new(plan.into_iter().map(|entry| entry.topic)));
    let core = RecorderCore::new(
        &config,
        Arc::clone(&counters),
        Bounded {
            room: 1,
            taken: Vec::new(),
        },
    )
    .unwrap();
    let mut messages = Vec::new();
    for k in 0..6 {
        messages.extend(good_step(k, k as f64));
    }

    let sink = feed(core, messages);

    let counts = counters.snapshot();
    assert_eq!(sink.taken.len(), 1);
    assert_eq!(counts.episodes_completed, 3);
    // Ticks 0..=4 run (tick 5 lies after the last message): episodes of 2, 2 and 1 steps.
    assert_eq!(counts.steps_recorded, 5);
    assert_eq!(
        counts.steps_dropped.get(&StepDropReason::WriterFull),
        Some(&3)
    );
}

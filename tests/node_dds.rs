//! The query node on DDS, against an operator console stand-in in the same process: stored
//! and newly selected queries are published, answers arrive through the service, the topic
//! and gamepad buttons, and unknown, duplicate, expired and invalid answers are rejected
//! with their reasons.
//!
//! Run through `.ci/netns-run`, which gives the test a private loopback-only network.

#[path = "transport_netns.rs"]
mod transport_netns;

mod node_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::Answer;
use clarify::msg::{
    DiagnosticArray, Header, Joy, PreferenceAnswer, PreferenceQuery, SubmitAnswer,
    SubmitAnswerRequest, SubmitAnswerResponse, Time, Transition,
};
use clarify::node::{self, JoyButtons, NodeSettings};
use clarify::recorder::{RecorderConfig, TransitionSource};
use clarify::store::{QueryId, Store, unix_secs_now};
use clarify::transport::dds::DdsNode;
use clarify::transport::{CallService, NodeConfig, Publish, QosConfig, Subscribe, Transport};
use node_support::{ACTION_DIM, DATASET_NAME, OBSERVATION_DIM, create_dataset, insert_query};

const DOMAIN: u16 = 71;
const TIMEOUT: Duration = Duration::from_secs(20);
const SEGMENT: usize = 5;

struct Console {
    node: DdsNode,
    queries: <DdsNode as Transport>::Subscription<PreferenceQuery>,
    answers: <DdsNode as Transport>::Publisher<PreferenceAnswer>,
    joy: <DdsNode as Transport>::Publisher<Joy>,
    submit: <DdsNode as Transport>::ServiceClient<SubmitAnswer>,
}

impl Console {
    fn submit(&self, query: i64, answer: u8) -> Result<SubmitAnswerResponse> {
        let request = SubmitAnswerRequest {
            answer: PreferenceAnswer {
                query_id: query,
                answer,
                operator_id: "test".to_owned(),
                response_time_sec: 1.5,
                ..PreferenceAnswer::default()
            },
        };
        // The first calls may go out before discovery matched the server.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.submit.call(request.clone(), Duration::from_secs(2)) {
                Ok(response) => return Ok(response),
                Err(error) if Instant::now() < deadline => {
                    eprintln!("retrying SubmitAnswer: {error}");
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Collects query messages by id until `done` holds for the collection.
    fn collect_queries(
        &self,
        seen: &mut BTreeMap<i64, PreferenceQuery>,
        done: impl Fn(&BTreeMap<i64, PreferenceQuery>) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        while !done(seen) {
            if Instant::now() > deadline {
                bail!("queries seen so far: {:?}", seen.keys().collect::<Vec<_>>());
            }
            if let Some(message) = self.queries.recv_timeout(Duration::from_millis(100))? {
                seen.insert(message.query_id, message);
            }
        }
        Ok(())
    }
}

/// Polls the store until query `id` has an answer, and returns it.
fn wait_for_answer(store: &Store, id: QueryId) -> Result<clarify::store::StoredAnswer> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(answer) = store.answer(id)? {
            return Ok(answer);
        }
        if Instant::now() > deadline {
            bail!("query {id} has no stored answer");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn answers_over_dds_stored_or_rejected() -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let store_path = folder.path().join("store.sqlite");
    let mut store = Store::open(&store_path)?;
    let (_, episodes) = create_dataset(&mut store, 4, 20);
    let far = Some(unix_secs_now() + 3600.0);
    let first = insert_query(&mut store, episodes[0], episodes[1], 2, SEGMENT, far);
    let second = insert_query(&mut store, episodes[2], episodes[3], 0, SEGMENT, far);
    let expired = insert_query(&mut store, episodes[0], episodes[2], 0, SEGMENT, Some(1.0));

    let settings = NodeSettings {
        store_path: store_path.clone(),
        models_dir: folder.path().join("models"),
        recorder: RecorderConfig {
            transition: Some(TransitionSource {
                topic: "transition".to_owned(),
                observation_size: OBSERVATION_DIM,
                action_size: ACTION_DIM,
            }),
            ..RecorderConfig::default()
        },
        select_dataset: DATASET_NAME.to_owned(),
        segment_length: SEGMENT,
        queries_per_round: 2,
        max_open_queries: 4,
        joy: JoyButtons {
            topic: "joy".to_owned(),
            left: 0,
            right: 1,
            cant_tell: 2,
            skip: 3,
            ..JoyButtons::default()
        },
        ..NodeSettings::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let node_stop = Arc::clone(&stop);
    let node_settings = settings.clone();
    let node_thread = thread::spawn(move || -> Result<node::NodeSummary> {
        let mut transport = DdsNode::new(NodeConfig {
            name: "clarify_node".into(),
            namespace: "/".into(),
            domain_id: DOMAIN,
        })?;
        Ok(node::run(
            &mut transport,
            &node_settings,
            "clarify_node",
            &node_stop,
        )?)
    });

    let result = exercise_node(&settings, &store, [first, second, expired]);
    stop.store(true, Ordering::SeqCst);
    let summary = node_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the node thread panicked"))??;
    result?;

    assert_eq!(summary.answers.accepted, 3, "{summary:?}");
    assert_eq!(summary.answers.duplicate, 2, "{summary:?}");
    assert_eq!(summary.answers.unknown_query, 1, "{summary:?}");
    assert_eq!(summary.answers.expired, 1, "{summary:?}");
    assert_eq!(summary.answers.invalid, 1, "{summary:?}");
    // Answers make room, so later rounds may add queries after the first two.
    assert!(summary.queries_selected >= 2, "{summary:?}");
    Ok(())
}

fn exercise_node(settings: &NodeSettings, store: &Store, ids: [QueryId; 3]) -> Result<()> {
    let [first, second, expired] = ids;
    let mut node = DdsNode::new(NodeConfig {
        name: "console".into(),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?;
    let console = Console {
        queries: node.create_subscription(&settings.topics.queries, &settings.query_qos)?,
        answers: node.create_publisher(&settings.topics.answers, &QosConfig::default())?,
        joy: node.create_publisher(&settings.joy.topic, &QosConfig::default())?,
        submit: node.create_service_client(&settings.topics.submit_answer)?,
        node,
    };

    // The two open stored queries and a selected round of two; never the expired one.
    let mut seen = BTreeMap::new();
    console.collect_queries(&mut seen, |seen| seen.len() >= 4)?;
    assert!(!seen.contains_key(&expired.get()), "{:?}", seen.keys());
    let message = &seen[&first.get()];
    message.check_shape()?;
    assert_eq!(
        message.left.episode_id,
        store.query(first)?.query.left.episode.get()
    );
    assert_eq!(message.left.start_step, 2);
    assert_eq!(message.left.length_steps, SEGMENT as u32);
    assert_eq!(message.observation_dim, OBSERVATION_DIM as u32);
    assert_eq!(message.selector, "random");
    assert!(!message.expires_at.is_zero(), "{message:?}");
    // Episode 0 step 2 is global step 2: observation [2, 2.25, 2.5], action [-2, 2].
    assert_eq!(message.left_observations[..3], [2.0, 2.25, 2.5]);
    assert_eq!(message.left_actions[..2], [-2.0, 2.0]);
    let selected: Vec<i64> = seen
        .keys()
        .copied()
        .filter(|id| *id != first.get() && *id != second.get())
        .collect();
    assert_eq!(selected.len(), 2, "{:?}", seen.keys());
    for id in &selected {
        let query = store.query(QueryId(*id))?;
        assert_eq!(query.query.left.length, SEGMENT);
        assert!(query.query.expires_at_unix_secs.is_some(), "{query:?}");
    }

    // Service answers: accepted once, then rejected with a reason.
    let response = console.submit(first.get(), PreferenceAnswer::LEFT)?;
    assert!(response.accepted, "{response:?}");
    assert!(response.message.is_empty(), "{response:?}");
    let stored = store.answer(first)?.context("accepted answer not stored")?;
    assert_eq!(stored.answer, Answer::Left);
    assert_eq!(stored.operator, "test");

    let duplicate = console.submit(first.get(), PreferenceAnswer::RIGHT)?;
    assert!(!duplicate.accepted, "{duplicate:?}");
    assert!(
        duplicate.message.contains("already answered"),
        "{duplicate:?}"
    );
    assert_eq!(store.answer(first)?.map(|a| a.answer), Some(Answer::Left));

    let unknown = console.submit(999_999, PreferenceAnswer::LEFT)?;
    assert!(!unknown.accepted, "{unknown:?}");
    assert!(
        unknown.message.contains("unknown query 999999"),
        "{unknown:?}"
    );

    let late = console.submit(expired.get(), PreferenceAnswer::LEFT)?;
    assert!(!late.accepted, "{late:?}");
    assert!(late.message.contains("expired"), "{late:?}");
    assert_eq!(store.answer(expired)?, None);

    let invalid = console.submit(second.get(), 9)?;
    assert!(!invalid.accepted, "{invalid:?}");
    assert!(
        invalid.message.contains("invalid answer value 9"),
        "{invalid:?}"
    );

    // Topic answers: stored, and a second one counted as a duplicate.
    let deadline = Instant::now() + TIMEOUT;
    // The console only publishes on these topics, so the node's subscription is the one
    // to discover.
    while console.node.subscription_count(&settings.topics.answers)? < 1 {
        if Instant::now() > deadline {
            bail!("the node's answer subscription was not discovered");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let topic_answer = |id: QueryId, answer: u8| PreferenceAnswer {
        query_id: id.get(),
        answer,
        operator_id: "topic".to_owned(),
        ..PreferenceAnswer::default()
    };
    console
        .answers
        .publish(topic_answer(second, PreferenceAnswer::RIGHT))?;
    let stored = wait_for_answer(store, second)?;
    assert_eq!(stored.answer, Answer::Right);
    assert_eq!(stored.operator, "topic");
    console
        .answers
        .publish(topic_answer(second, PreferenceAnswer::SKIP))?;

    // Gamepad: a press of the can't-tell button answers the oldest open query, which is the
    // first selected one.
    let oldest = QueryId(selected[0]);
    let buttons = |states: [i32; 4]| Joy {
        buttons: states.to_vec(),
        ..Joy::default()
    };
    let deadline = Instant::now() + TIMEOUT;
    while console.node.subscription_count(&settings.joy.topic)? < 1 {
        if Instant::now() > deadline {
            bail!("the node's Joy subscription was not discovered");
        }
        thread::sleep(Duration::from_millis(20));
    }
    console.joy.publish(buttons([0, 0, 0, 0]))?;
    thread::sleep(Duration::from_millis(200));
    console.joy.publish(buttons([0, 0, 1, 0]))?;
    console.joy.publish(buttons([0, 0, 1, 0]))?;
    let stored = wait_for_answer(store, oldest)?;
    assert_eq!(stored.answer, Answer::CantTell);
    assert_eq!(stored.operator, "gamepad");
    // The held button answered once: the other selected query stays open.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(store.answer(QueryId(selected[1]))?, None);
    Ok(())
}

#[test]
fn answer_desk_connection_is_full_sync() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let desk = node::AnswerDesk::open(&folder.path().join("store.sqlite"))?;

    // 2 is FULL: a commit is on disk when it returns.
    assert_eq!(desk.store().synchronous_level()?, 2);
    Ok(())
}

#[test]
fn recorded_episodes_give_random_queries() -> Result<()> {
    transport_netns::require_private_network();
    const RECORDING_DOMAIN: u16 = 74;
    let folder = tempfile::tempdir()?;
    let settings = NodeSettings {
        store_path: folder.path().join("store.sqlite"),
        models_dir: folder.path().join("models"),
        recorder: RecorderConfig {
            transition: Some(TransitionSource {
                topic: "transition".to_owned(),
                observation_size: OBSERVATION_DIM,
                action_size: ACTION_DIM,
            }),
            ..RecorderConfig::default()
        },
        segment_length: SEGMENT,
        queries_per_round: 3,
        max_open_queries: 3,
        ..NodeSettings::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let node_stop = Arc::clone(&stop);
    let node_settings = settings.clone();
    let node_thread = thread::spawn(move || -> Result<node::NodeSummary> {
        let mut transport = DdsNode::new(NodeConfig {
            name: "clarify_node".into(),
            namespace: "/".into(),
            domain_id: RECORDING_DOMAIN,
        })?;
        Ok(node::run(
            &mut transport,
            &node_settings,
            "clarify_node",
            &node_stop,
        )?)
    });

    let result = record_and_collect(&settings, RECORDING_DOMAIN);
    stop.store(true, Ordering::SeqCst);
    let summary = node_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the node thread panicked"))??;
    let seen = result?;

    assert_eq!(summary.queries_selected, 3, "{summary:?}");
    assert_eq!(summary.recorder.episodes_written, 2, "{summary:?}");
    let store = Store::open(&settings.store_path)?;
    let episodes = store.episodes(summary.recording)?;
    assert_eq!(episodes.len(), 2);
    for message in seen.values() {
        message.check_shape()?;
        assert_eq!(message.selector, "random");
        assert_eq!(message.left.length_steps, SEGMENT as u32);
        assert_eq!(
            message.step_period_sec, 0.0,
            "Transition steps have no fixed period"
        );
        assert!(message.observation_names.is_empty(), "{message:?}");
        for side in [message.left, message.right] {
            assert!(
                episodes.iter().any(|e| e.id.get() == side.episode_id),
                "{side:?} is not in the recording"
            );
        }
    }
    Ok(())
}

/// Publishes two 20-step episodes on the Transition topic and returns the queries the node
/// publishes on them.
fn record_and_collect(
    settings: &NodeSettings,
    domain: u16,
) -> Result<BTreeMap<i64, PreferenceQuery>> {
    let mut node = DdsNode::new(NodeConfig {
        name: "robot".into(),
        namespace: "/".into(),
        domain_id: domain,
    })?;
    let transitions = node.create_publisher::<Transition>("transition", &QosConfig::default())?;
    let queries =
        node.create_subscription::<PreferenceQuery>(&settings.topics.queries, &settings.query_qos)?;
    let diagnostics = node.create_subscription::<DiagnosticArray>(
        &settings.topics.diagnostics,
        &QosConfig::default(),
    )?;
    let deadline = Instant::now() + TIMEOUT;
    while node.subscription_count("transition")? < 1 {
        if Instant::now() > deadline {
            bail!("the recorder's subscription was not discovered");
        }
        thread::sleep(Duration::from_millis(20));
    }
    for episode in 0..2_u64 {
        for step in 0..20_u32 {
            let value = step as f32;
            transitions.publish(Transition {
                header: Header {
                    stamp: Time::now(),
                    frame_id: String::new(),
                },
                episode_id: episode,
                step,
                observation: vec![value; OBSERVATION_DIM],
                action: vec![-value; ACTION_DIM],
                terminated: step == 19,
                ..Transition::default()
            })?;
            thread::sleep(Duration::from_millis(5));
        }
    }
    let mut seen = BTreeMap::new();
    while seen.len() < 3 {
        if Instant::now() > deadline {
            bail!("queries seen so far: {:?}", seen.keys().collect::<Vec<_>>());
        }
        if let Some(message) = queries.recv_timeout(Duration::from_millis(100))? {
            seen.insert(message.query_id, message);
        }
    }

    // Diagnostics come once per second, one status per area, named after the node.
    let report = loop {
        if Instant::now() > deadline {
            bail!("no diagnostics arrived");
        }
        if let Some(report) = diagnostics.recv_timeout(Duration::from_millis(100))? {
            break report;
        }
    };
    assert!(!report.status.is_empty(), "{report:?}");
    for status in &report.status {
        assert!(status.name.starts_with("clarify_node"), "{status:?}");
    }
    Ok(seen)
}

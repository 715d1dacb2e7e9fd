//! Crash safety of `clarify node`: the binary is killed with SIGKILL at seeded random moments
//! while a client streams SubmitAnswer calls, then restarted. Every acknowledged answer must
//! be in the store, and the store must pass `PRAGMA integrity_check`.
//!
//! Run through `.ci/netns-run`, which gives the test a private loopback-only network.

#[path = "transport_netns.rs"]
mod transport_netns;

mod node_support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clarify::Answer;
use clarify::msg::{PreferenceAnswer, SubmitAnswer, SubmitAnswerRequest};
use clarify::store::{QueryId, Store, unix_secs_now};
use clarify::transport::dds::DdsNode;
use clarify::transport::{CallService, NodeConfig, Transport};
use node_support::{create_dataset, insert_query, write_params};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const DOMAIN: u16 = 72;
const RESTARTS: usize = 4;
const QUERIES: usize = 2000;
const SEED: u64 = 7;

/// Starts the node binary on the parameter file, logging to `log`.
fn start_node(params: &Path, log: &Path) -> Result<Child> {
    let log = File::create(log)?;
    Ok(Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["node", "--params"])
        .arg(params)
        .env("ROS_DOMAIN_ID", DOMAIN.to_string())
        .env("RUST_LOG", "info,rustdds=warn,ros2_client=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

/// Sends SubmitAnswer calls from a new client for `queries` in order, from index `next`,
/// until `stop` is set, and records each
/// acknowledged answer. A call without a response (the node is down, starting or was
/// killed mid-call) is repeated; if its answer was committed before the kill, the repeat is
/// rejected as a duplicate and the stream moves on without counting it.
fn stream_answers(
    run: usize,
    queries: &[QueryId],
    next: &AtomicUsize,
    acknowledged: &Mutex<BTreeMap<QueryId, Answer>>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut node = DdsNode::new(NodeConfig {
        name: format!("kill_test_client_{run}"),
        namespace: "/".into(),
        domain_id: DOMAIN,
    })?;
    let client = node.create_service_client::<SubmitAnswer>("clarify/submit_answer")?;
    let answers = [Answer::Left, Answer::Right, Answer::CantTell, Answer::Skip];
    while !stop.load(Ordering::SeqCst) {
        let index = next.load(Ordering::SeqCst);
        let Some(&query) = queries.get(index) else {
            bail!(
                "all {} queries answered before the last kill",
                queries.len()
            );
        };
        let answer = answers[index % answers.len()];
        match client.call(request(query, answer), Duration::from_millis(500)) {
            Ok(response) if response.accepted => {
                acknowledged
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .insert(query, answer);
                next.fetch_add(1, Ordering::SeqCst);
            }
            Ok(response) if response.message.contains("already answered") => {
                next.fetch_add(1, Ordering::SeqCst);
            }
            Ok(response) => bail!("query {query} rejected: {response:?}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(())
}

fn request(query: QueryId, answer: Answer) -> SubmitAnswerRequest {
    SubmitAnswerRequest {
        answer: PreferenceAnswer {
            query_id: query.get(),
            answer: PreferenceAnswer::code(answer),
            operator_id: "kill-test".to_owned(),
            response_time_sec: 0.5,
            ..PreferenceAnswer::default()
        },
    }
}

#[test]
fn acknowledged_answers_survive_sigkill() -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let store_path = folder.path().join("store.sqlite");
    let mut store = Store::open(&store_path)?;
    let (_, episodes) = create_dataset(&mut store, 2, 2 * QUERIES);
    let far = Some(unix_secs_now() + 3600.0);
    let queries: Vec<QueryId> = (0..QUERIES)
        .map(|index| insert_query(&mut store, episodes[0], episodes[1], index * 2, 2, far))
        .collect();
    drop(store);
    let params = write_params(
        folder.path(),
        &format!(
            "    store_path: {}\n    models_dir: {}\n    recorder:\n      transition:\n        \
             topic: transition\n        observation_size: 3\n        action_size: 2\n",
            store_path.display(),
            folder.path().join("models").display()
        ),
    );

    let acknowledged: Arc<Mutex<BTreeMap<QueryId, Answer>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    for run in 0..RESTARTS {
        let log = folder.path().join(format!("node-{run}.log"));
        let before = acknowledged.lock().map_or(0, |map| map.len());
        let mut child = start_node(&params, &log)?;
        // NOTE: each run gets a new client participant. A RustDDS 0.15 client that outlived
        // two killed servers stopped getting responses from the next one within 30 s,
        // presumably until the dead participants' leases expire.
        let stop = Arc::new(AtomicBool::new(false));
        let streamer = {
            let acknowledged = Arc::clone(&acknowledged);
            let next = Arc::clone(&next);
            let stop = Arc::clone(&stop);
            let queries = queries.clone();
            thread::spawn(move || stream_answers(run, &queries, &next, &acknowledged, &stop))
        };

        // Kill between 0.2 s and 1.2 s after the first answer this run acknowledged, at a
        // moment unrelated to the calls in flight.
        let kill_after = Duration::from_millis(200 + rng.next_u64() % 1000);
        let started = Instant::now();
        let mut result = Ok(());
        while acknowledged.lock().map_or(0, |map| map.len()) == before {
            if started.elapsed() > Duration::from_secs(30) || streamer.is_finished() {
                result = Err(anyhow::anyhow!(
                    "run {run}: no answer acknowledged within 30 s; node log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(kill_after);
        child.kill()?;
        child.wait()?;
        stop.store(true, Ordering::SeqCst);
        let streamed = streamer
            .join()
            .map_err(|_| anyhow::anyhow!("the answer stream thread panicked"))?;
        streamed?;
        result?;
        let text = std::fs::read_to_string(&log)?;
        assert!(
            text.contains("synchronous=2"),
            "run {run}: the answer connection does not report synchronous=2:\n{text}"
        );
    }
    let acknowledged = acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();

    assert!(
        acknowledged.len() >= RESTARTS,
        "only {} answers acknowledged",
        acknowledged.len()
    );

    let store = Store::open(&store_path)?;
    for (query, answer) in &acknowledged {
        let stored = store
            .answer(*query)?
            .with_context(|| format!("acknowledged answer to query {query} is missing"))?;
        assert_eq!(stored.answer, *answer, "query {query}");
    }
    let connection = rusqlite::Connection::open(&store_path)?;
    let check: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    assert_eq!(check, "ok");
    eprintln!(
        "{} answers acknowledged over {RESTARTS} SIGKILLed runs",
        acknowledged.len()
    );
    Ok(())
}

#[test]
fn sigterm_stops_node_cleanly() -> Result<()> {
    transport_netns::require_private_network();
    let folder = tempfile::tempdir()?;
    let store_path = folder.path().join("store.sqlite");
    let mut store = Store::open(&store_path)?;
    create_dataset(&mut store, 2, 20);
    drop(store);
    let params = write_params(
        folder.path(),
        &format!(
            "    store_path: {}\n    models_dir: {}\n    recorder:\n      transition:\n        \
             topic: transition\n        observation_size: 3\n        action_size: 2\n",
            store_path.display(),
            folder.path().join("models").display()
        ),
    );
    let log = folder.path().join("node.log");
    let child = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["node", "--params"])
        .arg(&params)
        .env("ROS_DOMAIN_ID", (DOMAIN + 1).to_string())
        .env("RUST_LOG", "info,rustdds=warn,ros2_client=warn")
        .stdout(Stdio::piped())
        .stderr(File::create(&log)?)
        .spawn()?;

    // Wait until the node runs, then ask it to stop as a process manager would.
    let started = Instant::now();
    while !std::fs::read_to_string(&log)?.contains("node started") {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the node did not start: {}", std::fs::read_to_string(&log)?);
        }
        thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(status.success());

    let output = child.wait_with_output()?;
    let log_text = std::fs::read_to_string(&log)?;
    assert!(output.status.success(), "{:?}: {log_text}", output.status);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("no JSON summary on stdout; log: {log_text}"))?;
    assert!(summary.get("answers_accepted").is_some(), "{summary}");
    assert!(summary.get("recording_dataset").is_some(), "{summary}");
    Ok(())
}

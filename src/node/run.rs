//! The node's main loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::NodeError;
use super::answers::{AnswerCounters, AnswerDesk, AnswerListener, AnswerSource};
use super::config::NodeSettings;
use super::joy::JoyMapper;
use super::query_message::{ChannelInfo, query_message};
use super::selection::RoundPlanner;
use crate::console::{Console, ConsoleContext};
use crate::deploy::ModelManager;
use crate::diagnostics::{NodeStatus, diagnostic_array};
use crate::media::{CameraCounterSnapshot, MediaService};
use crate::msg::{
    DiagnosticArray, Joy, ModelUpdate, PreferenceAnswer, PreferenceQuery, RollbackModel,
    SubmitAnswer, SubmitAnswerRequest, SubmitAnswerResponse, Time, TrainingStatus, TriggerRetrain,
};
use crate::recorder::{CounterSnapshot, LiveRecorder};
use crate::store::{DatasetId, Query, QueryId, Store, unix_secs_now};
use crate::transport::{Publish, QosConfig, Subscribe, Transport};

/// Longest wait for an answer message before the loop does its other work.
const TICK: Duration = Duration::from_millis(20);

/// Interval between two reads of the registry's active version.
const MODEL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Counts of a finished run.
#[derive(Clone, Debug)]
pub struct NodeSummary {
    /// Answers stored and rejected.
    pub answers: AnswerCounters,
    /// Queries selected and stored by this run.
    pub queries_selected: u64,
    /// Queries that expired unanswered while this run was up.
    pub queries_expired: u64,
    /// The dataset of this run's recording.
    pub recording: DatasetId,
    /// The recorder's final counts.
    pub recorder: CounterSnapshot,
    /// Final counts of the camera topic; absent without one.
    pub camera: Option<CameraCounterSnapshot>,
}

/// Locks the desk. A panic while holding the lock cannot leave a half-written answer,
/// because each answer is one store transaction, so a poisoned lock is still usable.
fn lock(desk: &Mutex<AnswerDesk>) -> MutexGuard<'_, AnswerDesk> {
    desk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the node on `transport` until `stop` is set, then stops the recorder and returns
/// the counts. `node_name` names the node in its diagnostics.
///
/// The model manager starts with the node, with this program (`std::env::current_exe`) as
/// the `clarify` binary of its training runs, and hears of each committed answer.
pub fn run<T>(
    transport: &mut T,
    settings: &NodeSettings,
    node_name: &str,
    stop: &AtomicBool,
) -> Result<NodeSummary, NodeError>
where
    T: Transport + 'static,
    T::Publisher<TrainingStatus>: 'static,
    T::Publisher<ModelUpdate>: 'static,
    T::ServiceServer<TriggerRetrain>: 'static,
    T::ServiceServer<RollbackModel>: 'static,
{
    settings.validate()?;
    let path = &settings.store_path;
    let program = std::env::current_exe().map_err(|error| NodeError::Config {
        field: "train_program".to_owned(),
        value: error.to_string(),
        expected: "the path of the running clarify binary".to_owned(),
    })?;
    let mut store = Store::open(path)?;
    let interrupted = store.fail_interrupted_runs()?;
    if interrupted > 0 {
        warn!(
            runs = interrupted,
            "closed training runs of an earlier node as failed"
        );
    }
    let recorder = LiveRecorder::start(transport, &settings.recorder, Store::open(path)?)?;
    let dataset = match settings.select_dataset.as_str() {
        "" => recorder.dataset(),
        name => crate::train::choose_dataset(&store, Some(name))?.id,
    };
    // Training reads the dataset that the queries come from, also when the store contains
    // recordings of earlier sessions or imported datasets.
    let mut deploy = settings.deploy_config(program);
    if !deploy.train_args.iter().any(|arg| arg == "--dataset") {
        deploy.train_args.push("--dataset".to_owned());
        deploy.train_args.push(dataset.get().to_string());
    }
    let manager = Arc::new(Mutex::new(ModelManager::start(transport, deploy)?));
    let mut desk = AnswerDesk::open(path)?;
    desk.set_listener(Arc::clone(&manager) as Arc<dyn AnswerListener>);
    info!(
        store = %path.display(),
        synchronous = desk.store().synchronous_level()?,
        "store opened for answers"
    );
    let desk = Arc::new(Mutex::new(desk));

    let topics = &settings.topics;
    let queries =
        transport.create_publisher::<PreferenceQuery>(&topics.queries, &settings.query_qos)?;
    let answers =
        transport.create_subscription::<PreferenceAnswer>(&topics.answers, &settings.answer_qos)?;
    let joy = if settings.joy.topic.is_empty() {
        None
    } else {
        Some(transport.create_subscription::<Joy>(&settings.joy.topic, &QosConfig::default())?)
    };
    let service = serve_submit_answer(transport, &topics.submit_answer, Arc::clone(&desk))?;
    let console = start_console(settings, &desk, &manager, dataset)?;
    info!(
        queries = %queries.topic(),
        answers = %answers.topic(),
        service = %topics.submit_answer,
        selection_dataset = dataset.get(),
        "node started"
    );

    let mut state = LoopState {
        planner: RoundPlanner::new(settings)?,
        channels: ChannelInfo::of_recorder(&settings.recorder),
        joy_mapper: JoyMapper::new(&settings.joy),
        published: BTreeMap::new(),
        unpublishable: BTreeSet::new(),
        last_attempt: None,
        min_selection_episodes: settings.min_selection_episodes,
        last_republish: None,
        last_model_check: None,
        queries_selected: 0,
        queries_expired: 0,
    };
    let diagnostics = transport
        .create_publisher::<DiagnosticArray>(&topics.diagnostics, &QosConfig::default())?;
    let mut diagnostics_clock = DiagnosticsClock::default();
    let republish_period = Duration::from_secs_f64(settings.republish_period_secs);
    let diagnostics_period = Duration::from_secs_f64(settings.diagnostics_period_secs);
    while !stop.load(Ordering::Relaxed) {
        let mut arrived: Vec<PreferenceAnswer> = answers.recv_timeout(TICK)?.into_iter().collect();
        while let Some(answer) = answers.try_recv()? {
            arrived.push(answer);
        }
        let now = unix_secs_now();
        for answer in &arrived {
            // A rejection is logged and counted by the desk; a topic has no reply.
            let _ = lock(&desk).submit(answer, AnswerSource::Topic, now);
        }
        if let Some(joy) = &joy {
            while let Some(message) = joy.try_recv()? {
                state.joy_answers(&desk, &message, settings, now)?;
            }
        }

        if state
            .last_model_check
            .is_none_or(|at: Instant| at.elapsed() >= MODEL_CHECK_INTERVAL)
        {
            state.planner.refresh_models();
            state.last_model_check = Some(Instant::now());
        }

        let open = store.unanswered_queries(now)?;
        state.forget_closed(&store, &open)?;
        if open.len() < settings.max_open_queries {
            let room = settings.max_open_queries - open.len();
            for query in state.select(&mut store, dataset, open.len(), room, now) {
                state.publish_new(&store, &queries, &query);
            }
        }
        for query in &open {
            if !state.published.contains_key(&query.id) && !state.unpublishable.contains(&query.id)
            {
                state.publish_new(&store, &queries, query);
            }
        }
        if state
            .last_republish
            .is_none_or(|at: Instant| at.elapsed() >= republish_period)
        {
            for message in state.published.values() {
                if let Err(error) = queries.publish(message.clone()) {
                    warn!(query = message.query_id, %error, "failed to republish a query");
                }
            }
            state.last_republish = Some(Instant::now());
        }
        if diagnostics_clock.due(diagnostics_period) {
            let counters = recorder.counters();
            let snapshot = manager
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .snapshot();
            let answers_total = lock(&desk).counters().accepted;
            let previous = diagnostics_clock.previous();
            let status = NodeStatus {
                node_name,
                recorder: Some(&counters),
                recorder_previous: previous,
                open_queries: state.published.len(),
                answers_total,
                deploy: &snapshot,
                execution_provider: state.planner.execution_provider(),
            };
            if let Err(error) = diagnostics.publish(diagnostic_array(&status, Time::now())) {
                warn!(%error, "failed to publish diagnostics");
            }
            diagnostics_clock.reported(counters);
        }
    }

    info!("node stopping");
    if let Some(console) = console
        && let Err(error) = console.stop()
    {
        warn!(%error, "the operator console did not stop cleanly");
    }
    drop(service);
    let answers_counted = {
        let mut desk = lock(&desk);
        desk.clear_listener();
        desk.counters()
    };
    match Arc::try_unwrap(manager) {
        Ok(manager) => {
            let manager = manager
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = manager.stop() {
                warn!(%error, "the model manager did not stop cleanly");
            }
        }
        // Dropping the last handle stops it as well.
        Err(_) => warn!("the model manager is still shared at shutdown"),
    }
    let recording = recorder.stop()?;
    Ok(NodeSummary {
        answers: answers_counted,
        queries_selected: state.queries_selected,
        queries_expired: state.queries_expired,
        recording: recording.dataset,
        recorder: recording.counters,
        camera: recording.camera,
    })
}

/// Starts the operator console when `console.enabled` is set. It commits answers through
/// the node's desk and reads the model manager's state.
fn start_console(
    settings: &NodeSettings,
    desk: &Arc<Mutex<AnswerDesk>>,
    manager: &Arc<Mutex<ModelManager>>,
    dataset: DatasetId,
) -> Result<Option<Console>, NodeError> {
    if !settings.console.enabled {
        return Ok(None);
    }
    let manager = Arc::clone(manager);
    let context = ConsoleContext {
        desk: Arc::clone(desk),
        store_path: settings.store_path.clone(),
        models_dir: settings.models_dir.clone(),
        snapshot: Arc::new(move || {
            manager
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .snapshot()
        }),
        dataset,
        channels: ChannelInfo::of_recorder(&settings.recorder),
        retrain_after_answers: settings.retrain.retrain_after_answers,
        media: Some(Arc::new(MediaService::open(
            &settings.store_path,
            &settings.clips,
        )?)),
    };
    let token = std::env::var(crate::console::TOKEN_ENV).ok();
    Ok(Some(Console::start(&settings.console, token, context)?))
}

/// Serves the SubmitAnswer service: each request is committed (or rejected) by the desk
/// before its response is sent.
fn serve_submit_answer<T: Transport>(
    transport: &mut T,
    name: &str,
    desk: Arc<Mutex<AnswerDesk>>,
) -> Result<T::ServiceServer<SubmitAnswer>, NodeError> {
    let server = transport.create_service_server::<SubmitAnswer, _>(
        name,
        move |request: SubmitAnswerRequest| {
            let result =
                lock(&desk).submit(&request.answer, AnswerSource::Service, unix_secs_now());
            match result {
                Ok(_) => SubmitAnswerResponse {
                    accepted: true,
                    message: String::new(),
                },
                Err(rejection) => SubmitAnswerResponse {
                    accepted: false,
                    message: rejection.to_string(),
                },
            }
        },
    )?;
    Ok(server)
}

/// Timing of the diagnostics and the recorder counts of the last report, from which the
/// diagnostics compute rates.
#[derive(Default)]
struct DiagnosticsClock {
    last: Option<(CounterSnapshot, Instant)>,
}

impl DiagnosticsClock {
    fn due(&self, period: Duration) -> bool {
        self.last
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() >= period)
    }

    fn previous(&self) -> Option<(&CounterSnapshot, f64)> {
        self.last
            .as_ref()
            .map(|(counters, at)| (counters, at.elapsed().as_secs_f64()))
    }

    fn reported(&mut self, counters: CounterSnapshot) {
        self.last = Some((counters, Instant::now()));
    }
}

/// State of the main loop between ticks.
struct LoopState {
    planner: RoundPlanner,
    channels: ChannelInfo,
    joy_mapper: JoyMapper,
    /// Messages of the open queries, published at least once.
    published: BTreeMap<QueryId, PreferenceQuery>,
    /// Open queries whose message could not be built; they are not tried again.
    unpublishable: BTreeSet<QueryId>,
    /// Episode count, open query count and encoder version at the last selection that
    /// found no queries. No new attempt is made until one of them changes.
    last_attempt: Option<(usize, usize, Option<String>)>,
    /// Episodes the selection dataset needs before the first round.
    min_selection_episodes: usize,
    last_republish: Option<Instant>,
    last_model_check: Option<Instant>,
    queries_selected: u64,
    queries_expired: u64,
}

impl LoopState {
    /// Answers the oldest open query for each button press in `message`.
    fn joy_answers(
        &mut self,
        desk: &Mutex<AnswerDesk>,
        message: &Joy,
        settings: &NodeSettings,
        now: f64,
    ) -> Result<(), NodeError> {
        for answer in self.joy_mapper.update(&message.buttons) {
            let mut desk = lock(desk);
            let Some(oldest) = desk.open_queries(now)?.into_iter().next() else {
                info!(%answer, "gamepad answer ignored: no query is open");
                continue;
            };
            let shown = (now - oldest.query.created_at_unix_secs).max(0.0);
            let message = PreferenceAnswer {
                stamp: Time::from_unix_secs(now),
                query_id: oldest.id.get(),
                answer: PreferenceAnswer::code(answer),
                operator_id: settings.joy.operator_id.clone(),
                response_time_sec: shown as f32,
            };
            // A rejection is logged and counted by the desk.
            let _ = desk.submit(&message, AnswerSource::Joy, now);
        }
        Ok(())
    }

    /// Drops the messages of queries that are no longer open and counts the expired ones.
    fn forget_closed(&mut self, store: &Store, open: &[Query]) -> Result<(), NodeError> {
        let open_ids: BTreeSet<QueryId> = open.iter().map(|query| query.id).collect();
        let closed: Vec<QueryId> = self
            .published
            .keys()
            .filter(|id| !open_ids.contains(id))
            .copied()
            .collect();
        for id in closed {
            self.published.remove(&id);
            if store.answer(id)?.is_none() {
                self.queries_expired += 1;
                info!(query = id.get(), "query expired unanswered");
            } else {
                debug!(query = id.get(), "query answered");
            }
        }
        Ok(())
    }

    /// Selects a round when the selection inputs changed since the last empty attempt.
    /// Failures are logged, and the node goes on with the open queries.
    fn select(
        &mut self,
        store: &mut Store,
        dataset: DatasetId,
        open: usize,
        room: usize,
        now: f64,
    ) -> Vec<Query> {
        let episodes = match store.episodes(dataset) {
            Ok(episodes) => episodes.len(),
            Err(error) => {
                warn!(dataset = dataset.get(), %error, "cannot read the selection dataset");
                return Vec::new();
            }
        };
        if episodes < self.min_selection_episodes {
            return Vec::new();
        }
        let key = (
            episodes,
            open,
            self.planner.encoder_version().map(str::to_owned),
        );
        if self.last_attempt.as_ref() == Some(&key) {
            return Vec::new();
        }
        match self.planner.select_round(store, dataset, room, now) {
            Ok(queries) => {
                self.last_attempt = queries.is_empty().then_some(key);
                self.queries_selected += queries.len() as u64;
                queries
            }
            Err(error) => {
                warn!(dataset = dataset.get(), %error, "query selection failed");
                self.last_attempt = Some(key);
                Vec::new()
            }
        }
    }

    /// Builds and publishes the message of a query that has not been published yet.
    fn publish_new<P: Publish<PreferenceQuery>>(
        &mut self,
        store: &Store,
        publisher: &P,
        query: &Query,
    ) {
        let message = match query_message(store, query, &self.channels) {
            Ok(message) => message,
            Err(error) => {
                warn!(query = query.id.get(), %error, "cannot build the query message; it is not published");
                self.unpublishable.insert(query.id);
                return;
            }
        };
        if let Err(error) = publisher.publish(message.clone()) {
            warn!(query = query.id.get(), %error, "failed to publish a query");
        }
        debug!(query = query.id.get(), "query published");
        self.published.insert(query.id, message);
    }
}

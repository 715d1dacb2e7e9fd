//! Live recording from ROS 2 topics through any [`Transport`].
//!
//! Threads: one per subscription, which takes messages from the transport, stamps their
//! receive time and passes them on through a bounded channel (the inbox); the recorder
//! thread, which runs [`RecorderCore`] and the control-rate ticks; and the store writer.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use tracing::{info, warn};

use super::RecorderError;
use super::config::{RecorderConfig, TopicPlan};
use super::core::RecorderCore;
use super::counters::{CounterSnapshot, Counters, DropLog, DropReason};
use super::extract::Incoming;
use super::writer::{ChannelSink, StoreWriter};
use crate::media::{
    CameraCounterSnapshot, CameraCounters, CameraMessageType, CameraSource, EncodedFrame,
    FrameError, check_compressed, encode_image,
};
use crate::msg::{
    CompressedImage, Float32MultiArray, Image, JointState, Odometry, RosMessage, StringMessage,
    Transition, Twist,
};
use crate::store::{ContentHash, DatasetId, DatasetMeta, Store, unix_secs_now};
use crate::transport::{Subscribe, Transport};

/// How long a subscription thread waits for a message before checking for a stop.
const POLL: Duration = Duration::from_millis(20);

/// A message on its way to the recorder thread.
enum Arrival {
    /// A message of topic `index` of the plan.
    Message {
        index: usize,
        message: Incoming,
        receive_ns: i64,
    },
    /// A converted camera image.
    Frame {
        frame: EncodedFrame,
        receive_ns: i64,
    },
}

/// Unix time from a monotonic clock: the wall clock read once at start plus the time
/// elapsed since, so that ticks never jump when the wall clock is adjusted.
#[derive(Clone, Copy, Debug)]
struct Clock {
    start: Instant,
    start_unix_ns: i64,
}

impl Clock {
    fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            start: Instant::now(),
            start_unix_ns: i64::try_from(unix.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    fn now_ns(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.start_unix_ns.saturating_add(elapsed)
    }

    fn instant_at(&self, unix_ns: i64) -> Instant {
        let offset = unix_ns.saturating_sub(self.start_unix_ns).max(0);
        self.start + Duration::from_nanos(offset as u64)
    }
}

/// A running recorder. Dropping it without [`LiveRecorder::stop`] stops it too, but
/// loses the final counts.
pub struct LiveRecorder {
    stop: Arc<AtomicBool>,
    subscription_threads: Vec<JoinHandle<()>>,
    recorder_thread: Option<JoinHandle<()>>,
    writer: Option<StoreWriter>,
    counters: Arc<Counters>,
    camera: Option<Arc<CameraCounters>>,
    dataset: DatasetId,
}

/// Result of stopping a recorder.
#[derive(Debug)]
pub struct RecordingSummary {
    /// The store, after every recorded episode was written.
    pub store: Store,
    /// The dataset of the recording.
    pub dataset: DatasetId,
    /// Final counts.
    pub counters: CounterSnapshot,
    /// Final counts of the camera topic; `None` without one.
    pub camera: Option<CameraCounterSnapshot>,
}

impl LiveRecorder {
    /// Subscribes to the configured topics on `transport`, creates a new dataset for the
    /// recording in `store` and starts recording.
    ///
    /// The dataset's sidecar holds the configuration as JSON, and its source path names
    /// the topics (`ros2:/joint_states,/cmd_vel`).
    pub fn start<T>(
        transport: &mut T,
        config: &RecorderConfig,
        mut store: Store,
    ) -> Result<Self, RecorderError>
    where
        T: Transport + 'static,
    {
        let plan = config.plan()?;
        let counters = Arc::new(Counters::new(plan.iter().map(|entry| entry.topic.clone())));
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Clock::new();
        let (inbox, arrivals) = bounded(config.inbox_capacity);
        let mut subscription_threads = Vec::new();
        for (index, entry) in plan.iter().enumerate() {
            let forward = Forwarder {
                index,
                inbox: inbox.clone(),
                counters: Arc::clone(&counters),
                stop: Arc::clone(&stop),
                clock,
                log_interval_secs: config.log_interval_secs,
            };
            let thread = subscribe(transport, config, entry, forward)?;
            subscription_threads.push(thread);
        }
        let camera = match &config.camera {
            Some(source) => {
                let counters = Arc::new(CameraCounters::new(source.topic.clone()));
                let forward = CameraForwarder {
                    source: source.clone(),
                    inbox: inbox.clone(),
                    counters: Arc::clone(&counters),
                    stop: Arc::clone(&stop),
                    clock,
                    log_interval_secs: config.log_interval_secs,
                };
                subscription_threads.push(subscribe_camera(transport, forward)?);
                Some(counters)
            }
            None => None,
        };
        drop(inbox);

        let dataset = store.create_recording(
            &recording_meta(config, &plan)?,
            config.observation_dim(),
            config.action_dim(),
        )?;
        let (sink, writer) = StoreWriter::spawn_with_camera(
            store,
            dataset,
            config.writer_capacity,
            Arc::clone(&counters),
            camera.clone(),
        )?;
        let mut core = RecorderCore::new(config, Arc::clone(&counters), sink)?;
        if let Some(camera) = &camera {
            core = core.with_camera(Arc::clone(camera));
        }
        let recorder_thread = thread::Builder::new()
            .name("recorder".to_owned())
            .spawn(move || run_recorder(core, &arrivals, clock))
            .map_err(|source| RecorderError::Thread {
                name: "recorder",
                source,
            })?;
        info!(
            topics = ?plan.iter().map(|entry| entry.topic.as_str()).collect::<Vec<_>>(),
            dataset = dataset.get(),
            "recorder started"
        );
        Ok(Self {
            stop,
            subscription_threads,
            recorder_thread: Some(recorder_thread),
            writer: Some(writer),
            counters,
            camera,
            dataset,
        })
    }

    /// Returns the current counts.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Returns the current counts of the camera topic, `None` without one.
    pub fn camera_counters(&self) -> Option<CameraCounterSnapshot> {
        self.camera.as_ref().map(|counters| counters.snapshot())
    }

    /// Returns the dataset the recording writes to.
    pub fn dataset(&self) -> DatasetId {
        self.dataset
    }

    /// Stops the subscriptions, ends the running episode as unmarked, waits until every
    /// episode is written and returns the store with the final counts.
    pub fn stop(mut self) -> Result<RecordingSummary, RecorderError> {
        self.shut_down();
        let writer = self
            .writer
            .take()
            .ok_or(RecorderError::Panicked("recorder"))?;
        let store = writer.join()?;
        Ok(RecordingSummary {
            store,
            dataset: self.dataset,
            counters: self.counters.snapshot(),
            camera: self.camera_counters(),
        })
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.subscription_threads.drain(..) {
            if thread.join().is_err() {
                warn!("a recorder subscription thread panicked");
            }
        }
        // The subscription threads held the inbox senders; with them gone the recorder
        // thread drains the inbox, ends the episode and drops the writer's sink.
        if let Some(thread) = self.recorder_thread.take()
            && thread.join().is_err()
        {
            warn!("the recorder thread panicked");
        }
    }
}

impl Drop for LiveRecorder {
    fn drop(&mut self) {
        self.shut_down();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            warn!("the store writer thread panicked");
        }
    }
}

fn recording_meta(
    config: &RecorderConfig,
    plan: &[TopicPlan],
) -> Result<DatasetMeta, RecorderError> {
    let sidecar = serde_json::to_string(config).map_err(|error| RecorderError::Config {
        field: "recorder configuration".into(),
        value: error.to_string(),
        expected: "settings that serialize to JSON".into(),
    })?;
    let topics: Vec<&str> = plan.iter().map(|entry| entry.topic.as_str()).collect();
    let started = unix_secs_now();
    // A recording has no file; its identity is the session: start time, process and
    // settings.
    let identity = format!(
        "live recording {started:.9} pid {} {sidecar}",
        std::process::id()
    );
    Ok(DatasetMeta {
        name: config.dataset_name.clone(),
        source_path: PathBuf::from(format!("ros2:{}", topics.join(","))),
        content_hash: ContentHash::of_bytes(identity.as_bytes()),
        sidecar_json: Some(sidecar),
        imported_at_unix_secs: started,
    })
}

/// State of a subscription thread besides its subscription.
struct Forwarder {
    index: usize,
    inbox: Sender<Arrival>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    clock: Clock,
    log_interval_secs: f64,
}

impl Forwarder {
    fn run<M, S>(self, subscription: S, wrap: fn(M) -> Incoming)
    where
        M: RosMessage,
        S: Subscribe<M>,
    {
        let mut log = DropLog::new(self.log_interval_secs);
        let mut transport_dropped = 0;
        while !self.stop.load(Ordering::Relaxed) {
            match subscription.recv_timeout(POLL) {
                Ok(Some(message)) => {
                    let receive_ns = self.clock.now_ns();
                    let arrival = Arrival::Message {
                        index: self.index,
                        message: wrap(message),
                        receive_ns,
                    };
                    if self.inbox.try_send(arrival).is_err() {
                        self.counters.dropped(self.index, DropReason::InboxFull, 1);
                        log.drop(
                            &self.counters,
                            self.index,
                            DropReason::InboxFull,
                            receive_ns,
                            &"the recorder's inbox is full",
                        );
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    warn!(%error, "recorder subscription closed");
                    break;
                }
            }
            let dropped = subscription.dropped_count();
            if dropped > transport_dropped {
                self.counters.dropped(
                    self.index,
                    DropReason::Transport,
                    dropped - transport_dropped,
                );
                log.drop(
                    &self.counters,
                    self.index,
                    DropReason::Transport,
                    self.clock.now_ns(),
                    &"the subscription's queue overflowed or a message did not deserialize",
                );
                transport_dropped = dropped;
            }
        }
    }
}

/// Creates the subscription of one plan entry and starts its thread.
fn subscribe<T>(
    transport: &mut T,
    config: &RecorderConfig,
    entry: &TopicPlan,
    forward: Forwarder,
) -> Result<JoinHandle<()>, RecorderError>
where
    T: Transport + 'static,
{
    fn spawn<T, M>(
        transport: &mut T,
        config: &RecorderConfig,
        topic: &str,
        forward: Forwarder,
        wrap: fn(M) -> Incoming,
    ) -> Result<JoinHandle<()>, RecorderError>
    where
        T: Transport + 'static,
        M: RosMessage,
    {
        let subscription = transport.create_subscription::<M>(topic, &config.qos)?;
        thread::Builder::new()
            .name(format!("recorder-sub-{topic}"))
            .spawn(move || forward.run(subscription, wrap))
            .map_err(|source| RecorderError::Thread {
                name: "subscription",
                source,
            })
    }

    let topic = entry.topic.as_str();
    let type_name = entry.type_name.as_str();
    if type_name == JointState::type_name() {
        spawn::<T, JointState>(transport, config, topic, forward, Incoming::JointState)
    } else if type_name == Twist::type_name() {
        spawn::<T, Twist>(transport, config, topic, forward, Incoming::Twist)
    } else if type_name == Odometry::type_name() {
        spawn::<T, Odometry>(transport, config, topic, forward, |odometry| {
            Incoming::Odometry(Box::new(odometry))
        })
    } else if type_name == Float32MultiArray::type_name() {
        spawn::<T, Float32MultiArray>(
            transport,
            config,
            topic,
            forward,
            Incoming::Float32MultiArray,
        )
    } else if type_name == Transition::type_name() {
        spawn::<T, Transition>(transport, config, topic, forward, Incoming::Transition)
    } else {
        debug_assert_eq!(type_name, StringMessage::type_name());
        spawn::<T, StringMessage>(transport, config, topic, forward, Incoming::EpisodeEvent)
    }
}

fn run_recorder(mut core: RecorderCore<ChannelSink>, arrivals: &Receiver<Arrival>, clock: Clock) {
    loop {
        let now = clock.now_ns();
        let wake = core
            .next_tick_ns()
            .map_or(now + POLL.as_nanos() as i64, |tick| {
                tick.min(now + POLL.as_nanos() as i64)
            });
        match arrivals.recv_deadline(clock.instant_at(wake)) {
            Ok(Arrival::Message {
                index,
                message,
                receive_ns,
            }) => core.push(index, message, receive_ns),
            Ok(Arrival::Frame { frame, receive_ns }) => core.push_frame(frame, receive_ns),
            Err(RecvTimeoutError::Timeout) => core.advance_to(clock.now_ns()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    core.advance_to(clock.now_ns());
    drop(core.finish());
}

/// State of the camera's subscription thread besides its subscription. The thread
/// converts each image before it reaches the recorder thread, so that the encoding work
/// stays off the thread that runs the control-rate ticks.
struct CameraForwarder {
    source: CameraSource,
    inbox: Sender<Arrival>,
    counters: Arc<CameraCounters>,
    stop: Arc<AtomicBool>,
    clock: Clock,
    log_interval_secs: f64,
}

impl CameraForwarder {
    fn run<M, S>(self, subscription: S, convert: impl Fn(&M) -> Result<EncodedFrame, FrameError>)
    where
        M: RosMessage,
        S: Subscribe<M>,
    {
        let mut log = FrameDropLog::new(self.log_interval_secs);
        let mut transport_dropped = 0;
        while !self.stop.load(Ordering::Relaxed) {
            match subscription.recv_timeout(POLL) {
                Ok(Some(message)) => {
                    let receive_ns = self.clock.now_ns();
                    match convert(&message) {
                        Ok(frame) => {
                            let arrival = Arrival::Frame { frame, receive_ns };
                            if self.inbox.try_send(arrival).is_err() {
                                self.counters.dropped("inbox_full", 1);
                                log.drop(
                                    &self.counters,
                                    "inbox_full",
                                    receive_ns,
                                    &"the recorder's inbox is full",
                                );
                            }
                        }
                        Err(error) => {
                            self.counters.dropped(error.reason(), 1);
                            log.drop(&self.counters, error.reason(), receive_ns, &error);
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    warn!(%error, topic = self.counters.topic(), "camera subscription closed");
                    break;
                }
            }
            let dropped = subscription.dropped_count();
            if dropped > transport_dropped {
                self.counters
                    .dropped("transport", dropped - transport_dropped);
                log.drop(
                    &self.counters,
                    "transport",
                    self.clock.now_ns(),
                    &"the subscription's queue overflowed or a message did not deserialize",
                );
                transport_dropped = dropped;
            }
        }
    }
}

/// At most one log line per camera drop reason per interval, with the count so far.
struct FrameDropLog {
    interval_ns: i64,
    last_ns: std::collections::BTreeMap<&'static str, i64>,
}

impl FrameDropLog {
    fn new(interval_secs: f64) -> Self {
        Self {
            interval_ns: (interval_secs * 1e9) as i64,
            last_ns: std::collections::BTreeMap::new(),
        }
    }

    fn drop(
        &mut self,
        counters: &CameraCounters,
        reason: &'static str,
        now_ns: i64,
        detail: &dyn std::fmt::Display,
    ) {
        if let Some(last) = self.last_ns.get(reason)
            && now_ns.saturating_sub(*last) < self.interval_ns
        {
            return;
        }
        self.last_ns.insert(reason, now_ns);
        warn!(
            topic = counters.topic(),
            reason,
            dropped = counters.snapshot().dropped_for(reason),
            "dropped a camera image: {detail}"
        );
    }
}

/// Creates the camera subscription and starts its thread.
fn subscribe_camera<T>(
    transport: &mut T,
    forward: CameraForwarder,
) -> Result<JoinHandle<()>, RecorderError>
where
    T: Transport + 'static,
{
    let topic = forward.source.topic.clone();
    let name = format!("recorder-camera-{topic}");
    let spawned = match forward.source.message_type {
        CameraMessageType::Image => {
            let subscription =
                transport.create_subscription::<Image>(&topic, &forward.source.qos)?;
            let (max_width, quality) = (forward.source.max_width, forward.source.jpeg_quality);
            thread::Builder::new().name(name).spawn(move || {
                forward.run(subscription, |image: &Image| {
                    encode_image(image, max_width, quality)
                })
            })
        }
        CameraMessageType::CompressedImage => {
            let subscription =
                transport.create_subscription::<CompressedImage>(&topic, &forward.source.qos)?;
            let max_bytes = forward.source.max_frame_bytes;
            thread::Builder::new().name(name).spawn(move || {
                forward.run(subscription, |image: &CompressedImage| {
                    check_compressed(image, max_bytes)
                })
            })
        }
    };
    spawned.map_err(|source| RecorderError::Thread {
        name: "camera subscription",
        source,
    })
}

//! Counts of what the recorder received, kept and dropped, readable from any thread while
//! it runs, and rate-limited logging of drops.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tracing::warn;

/// Reason for dropping a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The message lacks something the configuration needs: a configured joint, an array
    /// the configuration uses, a duplicated joint name, or an unknown episode event.
    Malformed,
    /// A used value is NaN or infinite.
    NonFinite,
    /// An array has the wrong length: a JointState array that is neither empty nor as
    /// long as `name`, or an observation or action of the wrong size.
    WrongSize,
    /// The header stamp (or, without one, the receive time) is older than the maximum age.
    Stale,
    /// The queue between the subscriptions and the recorder was full.
    InboxFull,
    /// The transport dropped it after delivery: the subscription's queue overflowed or the
    /// message did not deserialize.
    Transport,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Malformed,
        DropReason::NonFinite,
        DropReason::WrongSize,
        DropReason::Stale,
        DropReason::InboxFull,
        DropReason::Transport,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Returns the reason as a snake_case word, as logs and snapshots write it.
    pub fn word(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NonFinite => "non_finite",
            DropReason::WrongSize => "wrong_size",
            DropReason::Stale => "stale",
            DropReason::InboxFull => "inbox_full",
            DropReason::Transport => "transport",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Reason that recorded steps did not reach the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepDropReason {
    /// The queue to the store writer was full, so the whole episode was dropped.
    WriterFull,
    /// The store rejected or failed to write the episode.
    StoreFailed,
}

#[derive(Debug, Default)]
struct TopicCounters {
    received: AtomicU64,
    accepted: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

/// Counters shared between the recorder's threads. Every count only grows.
#[derive(Debug)]
pub struct Counters {
    topics: Vec<(String, TopicCounters)>,
    ticks: AtomicU64,
    ticks_missed: AtomicU64,
    steps_recorded: AtomicU64,
    episodes_completed: AtomicU64,
    episodes_interrupted: AtomicU64,
    episodes_written: AtomicU64,
    steps_written: AtomicU64,
    steps_dropped_writer_full: AtomicU64,
    steps_dropped_store_failed: AtomicU64,
}

impl Counters {
    /// Creates zeroed counters for the given topics, in plan order.
    pub fn new(topics: impl IntoIterator<Item = String>) -> Self {
        Self {
            topics: topics
                .into_iter()
                .map(|topic| (topic, TopicCounters::default()))
                .collect(),
            ticks: AtomicU64::new(0),
            ticks_missed: AtomicU64::new(0),
            steps_recorded: AtomicU64::new(0),
            episodes_completed: AtomicU64::new(0),
            episodes_interrupted: AtomicU64::new(0),
            episodes_written: AtomicU64::new(0),
            steps_written: AtomicU64::new(0),
            steps_dropped_writer_full: AtomicU64::new(0),
            steps_dropped_store_failed: AtomicU64::new(0),
        }
    }

    fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts a message received on topic `index` and accepted.
    pub fn accepted(&self, index: usize) {
        let topic = &self.topics[index].1;
        Self::add(&topic.received, 1);
        Self::add(&topic.accepted, 1);
    }

    /// Counts `count` messages received on topic `index` and dropped for `reason`.
    pub fn dropped(&self, index: usize, reason: DropReason, count: u64) {
        let topic = &self.topics[index].1;
        Self::add(&topic.received, count);
        Self::add(&topic.dropped[reason.index()], count);
    }

    pub(crate) fn tick(&self, missed: bool) {
        Self::add(&self.ticks, 1);
        if missed {
            Self::add(&self.ticks_missed, 1);
        }
    }

    pub(crate) fn ticks_missed_in_bulk(&self, count: u64) {
        Self::add(&self.ticks, count);
        Self::add(&self.ticks_missed, count);
    }

    pub(crate) fn ticks_idle_in_bulk(&self, count: u64) {
        Self::add(&self.ticks, count);
    }

    pub(crate) fn step_recorded(&self) {
        Self::add(&self.steps_recorded, 1);
    }

    pub(crate) fn episode_completed(&self, interrupted: bool) {
        Self::add(&self.episodes_completed, 1);
        if interrupted {
            Self::add(&self.episodes_interrupted, 1);
        }
    }

    pub(crate) fn episode_written(&self, steps: usize) {
        Self::add(&self.episodes_written, 1);
        Self::add(&self.steps_written, steps as u64);
    }

    pub(crate) fn steps_dropped(&self, reason: StepDropReason, steps: usize) {
        let counter = match reason {
            StepDropReason::WriterFull => &self.steps_dropped_writer_full,
            StepDropReason::StoreFailed => &self.steps_dropped_store_failed,
        };
        Self::add(counter, steps as u64);
    }

    /// Returns the topic name at `index`.
    pub fn topic(&self, index: usize) -> &str {
        &self.topics[index].0
    }

    /// Reads every counter. Counters are read one after another while the recorder runs,
    /// so a snapshot taken then may be a few messages apart between counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let topics = self
            .topics
            .iter()
            .map(|(topic, counts)| TopicSnapshot {
                topic: topic.clone(),
                received: load(&counts.received),
                accepted: load(&counts.accepted),
                dropped: DropReason::ALL
                    .iter()
                    .map(|&reason| (reason, load(&counts.dropped[reason.index()])))
                    .filter(|&(_, count)| count > 0)
                    .collect(),
            })
            .collect();
        let mut steps_dropped = BTreeMap::new();
        for (reason, counter) in [
            (StepDropReason::WriterFull, &self.steps_dropped_writer_full),
            (
                StepDropReason::StoreFailed,
                &self.steps_dropped_store_failed,
            ),
        ] {
            let count = load(counter);
            if count > 0 {
                steps_dropped.insert(reason, count);
            }
        }
        CounterSnapshot {
            topics,
            ticks: load(&self.ticks),
            ticks_missed: load(&self.ticks_missed),
            steps_recorded: load(&self.steps_recorded),
            episodes_completed: load(&self.episodes_completed),
            episodes_interrupted: load(&self.episodes_interrupted),
            episodes_written: load(&self.episodes_written),
            steps_written: load(&self.steps_written),
            steps_dropped,
        }
    }
}

/// Counts of one topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicSnapshot {
    /// Topic name.
    pub topic: String,
    /// Messages the transport delivered: `accepted` plus the sum of `dropped`.
    pub received: u64,
    /// Messages that passed every check.
    pub accepted: u64,
    /// Dropped messages by reason; reasons with no drop are left out.
    pub dropped: BTreeMap<DropReason, u64>,
}

impl TopicSnapshot {
    /// Returns the number of dropped messages, all reasons together.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Returns the drops for one reason.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }
}

/// All counters of a recorder at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Per-topic message counts, in plan order.
    pub topics: Vec<TopicSnapshot>,
    /// Control ticks (sampled sources only).
    pub ticks: u64,
    /// Ticks that recorded no step because a source had no value younger than the maximum
    /// age, while an episode was running or could start.
    pub ticks_missed: u64,
    /// Steps added to episodes.
    pub steps_recorded: u64,
    /// Episodes ended and handed to the writer (or dropped at a full writer queue).
    pub episodes_completed: u64,
    /// Of those, episodes cut short because a source went stale or a Transition stream
    /// skipped steps.
    pub episodes_interrupted: u64,
    /// Episodes committed to the store.
    pub episodes_written: u64,
    /// Steps committed to the store.
    pub steps_written: u64,
    /// Recorded steps that never reached the store, by reason.
    pub steps_dropped: BTreeMap<StepDropReason, u64>,
}

impl CounterSnapshot {
    /// Returns the counts of `topic`, if it is subscribed.
    pub fn topic(&self, topic: &str) -> Option<&TopicSnapshot> {
        self.topics.iter().find(|counts| counts.topic == topic)
    }
}

/// Logs a drop at most once per (topic, reason) in an interval of recorder time, with the
/// number of drops since the last line.
#[derive(Debug)]
pub(crate) struct DropLog {
    interval_ns: i64,
    // Per (topic, reason): time of the last line and drops since.
    last: BTreeMap<(usize, DropReason), (i64, u64)>,
}

impl DropLog {
    pub(crate) fn new(interval_secs: f64) -> Self {
        Self {
            interval_ns: (interval_secs * 1e9) as i64,
            last: BTreeMap::new(),
        }
    }

    /// Records a drop at `now_ns` and logs it unless the same topic and reason were logged
    /// less than an interval ago.
    pub(crate) fn drop(
        &mut self,
        counters: &Counters,
        index: usize,
        reason: DropReason,
        now_ns: i64,
        detail: &dyn fmt::Display,
    ) {
        let entry = self.last.entry((index, reason)).or_insert((i64::MIN, 0));
        entry.1 += 1;
        if entry.0 == i64::MIN || now_ns.saturating_sub(entry.0) >= self.interval_ns {
            warn!(
                topic = counters.topic(index),
                reason = reason.word(),
                drops_since_last_line = entry.1,
                "dropped a message: {detail}"
            );
            *entry = (now_ns, 0);
        }
    }
}

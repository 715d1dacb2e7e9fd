//! The recorder: samples observation and action topics at the control rate, cuts the
//! samples into episodes and writes them to the segment store.
//!
//! # Sources
//!
//! Observation and action vectors are concatenations of configured sources
//! ([`Source`]): `sensor_msgs/JointState` mapped by joint name, `geometry_msgs/Twist`,
//! `nav_msgs/Odometry` and `std_msgs/Float32MultiArray`. At every tick of the control rate
//! the latest valid value of each source makes one step. Alternatively a
//! `clarify_msgs/Transition` topic ([`TransitionSource`]) supplies whole steps, each valid
//! message one step.
//!
//! # Episodes
//!
//! With sampled sources, an episode topic (`std_msgs/String`: `start`, `task_end`,
//! `time_limit`) marks episodes; without one, recording is continuous. The recorder's own
//! step limit ends an episode as a time limit; the robot's `task_end` ends it as a task
//! end, and the store keeps the two apart ([`crate::dataset::EpisodeEnd`]). A tick at which
//! some source has no value younger than `max_age_secs` records nothing and ends the
//! running episode as unmarked, so no episode spans a gap. Transition streams end episodes
//! by their `terminated` and `truncated` flags, a new `episode_id`, or a skipped `step`.
//!
//! # Bad messages
//!
//! A message that is malformed, non-finite, of the wrong size or stale is counted by
//! reason ([`DropReason`]), logged at most once per reason and topic per interval, and
//! dropped; recording continues. So are messages that find the recorder's inbox full. An
//! episode that finds the store writer's queue full is dropped and its steps counted
//! ([`StepDropReason`]). [`Counters::snapshot`] reads every count at any time.
//!
//! # One core, several feeds
//!
//! [`RecorderCore`] is driven only by messages and their receive times. The live recorder
//! ([`LiveRecorder`]) feeds it from transport subscriptions; [`replay`] feeds it from
//! stored messages such as an MCAP bag's ([`crate::bag`]). The same messages at the same
//! times give the same episodes.

mod config;
mod core;
mod counters;
mod extract;
mod live;
mod writer;

use std::io;
use std::sync::Arc;

use thiserror::Error;

pub use config::{EpisodeConfig, RecorderConfig, Role, Source, TopicPlan, TransitionSource};
pub use core::{EpisodeSink, RecordedEpisode, RecorderCore};
pub use counters::{CounterSnapshot, Counters, DropReason, StepDropReason, TopicSnapshot};
pub use extract::{Incoming, Rejected, check_transition, extract};
pub use live::{LiveRecorder, RecordingSummary};
pub use writer::{ChannelSink, StoreWriter};

use crate::store::StoreError;
use crate::transport::TransportError;

/// Errors of the recorder. Bad messages are not errors: they are counted and dropped.
#[derive(Debug, Error)]
pub enum RecorderError {
    /// A setting is out of range or contradicts another.
    #[error("invalid recorder setting {field} = {value}: expected {expected}")]
    Config {
        /// The setting's name.
        field: String,
        /// The rejected value.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// Subscribing failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread could not be started.
    #[error("failed to start the recorder's {name} thread")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A thread panicked.
    #[error("the recorder's {0} thread panicked")]
    Panicked(&'static str),
}

/// A stored message: the index of its topic in the configuration's plan, the message and
/// its receive time in Unix nanoseconds.
pub type TimedMessage = (usize, Incoming, i64);

/// Feeds messages in the given order to a core with `sink`, runs the ticks up to the last
/// message's time, ends the running episode and returns the sink.
pub fn feed<S: EpisodeSink>(
    mut core: RecorderCore<S>,
    messages: impl IntoIterator<Item = TimedMessage>,
) -> S {
    let mut last = None;
    for (index, message, receive_ns) in messages {
        core.push(index, message, receive_ns);
        last = Some(receive_ns);
    }
    if let Some(last) = last {
        core.advance_to(last);
    }
    core.finish()
}

/// Records stored messages in memory: the episodes and the counts.
pub fn replay(
    config: &RecorderConfig,
    messages: impl IntoIterator<Item = TimedMessage>,
) -> Result<(Vec<RecordedEpisode>, CounterSnapshot), RecorderError> {
    let plan = config.plan()?;
    let counters = Arc::new(Counters::new(plan.into_iter().map(|entry| entry.topic)));
    let core = RecorderCore::new(config, Arc::clone(&counters), Vec::new())?;
    let episodes = feed(core, messages);
    Ok((episodes, counters.snapshot()))
}

//! The recorder's state machine: messages in, episodes out, driven by message times only.
//!
//! [`RecorderCore`] has no clock and no transport. Each message comes with its receive
//! time (Unix nanoseconds): the live recorder stamps it when the subscription hands it
//! over, and an MCAP replay uses the bag's log time. Ticks of the control rate lie on a
//! fixed grid of multiples of the period since the Unix epoch, and a tick at time τ sees
//! the messages received before τ. The same messages with the same times therefore give
//! the same episodes, whichever source feeds them.

use std::sync::Arc;

use ndarray::{Array1, Array2, Axis};
use tracing::warn;

use super::RecorderError;
use super::config::{RecorderConfig, Role, TopicPlan};
use super::counters::{Counters, DropLog, DropReason, StepDropReason};
use super::extract::{self, Incoming, Rejected};
use crate::dataset::EpisodeEnd;
use crate::store::EpisodeArrays;

/// A finished episode, ready for the store.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEpisode {
    /// Step arrays. The observation after an episode's last action is not in the stream,
    /// so the last step's next observation repeats its observation.
    pub arrays: EpisodeArrays,
    /// Kind of episode end.
    pub end: EpisodeEnd,
}

impl RecordedEpisode {
    /// Returns the number of steps.
    pub fn steps(&self) -> usize {
        self.arrays.rewards.len()
    }
}

/// Destination of finished episodes.
pub trait EpisodeSink {
    /// Takes an episode, or returns the reason it was dropped.
    fn submit(&mut self, episode: RecordedEpisode) -> Result<(), StepDropReason>;
}

/// Collects episodes in memory (replays and tests).
impl EpisodeSink for Vec<RecordedEpisode> {
    fn submit(&mut self, episode: RecordedEpisode) -> Result<(), StepDropReason> {
        self.push(episode);
        Ok(())
    }
}

/// Episode events on the episode topic.
const EVENT_START: &str = "start";
const EVENT_TASK_END: &str = "task_end";
const EVENT_TIME_LIMIT: &str = "time_limit";

#[derive(Debug)]
struct Latest {
    values: Vec<f32>,
    time_ns: i64,
}

#[derive(Debug, Default)]
struct Buffer {
    observations: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    steps: usize,
    // Transition streams: episode id and the step expected next.
    transition: Option<(u64, u32)>,
}

/// Samples sources into steps and cuts the steps into episodes.
pub struct RecorderCore<S: EpisodeSink> {
    plan: Vec<TopicPlan>,
    observation_dim: usize,
    action_dim: usize,
    period_ns: i64,
    max_age_ns: i64,
    max_steps: Option<usize>,
    sampled: bool,
    episode_topic: bool,
    latest: Vec<Option<Latest>>,
    next_tick_ns: Option<i64>,
    // With an episode topic: between a start event and the episode's end.
    armed: bool,
    buffer: Buffer,
    counters: Arc<Counters>,
    log: DropLog,
    sink: S,
}

impl<S: EpisodeSink> RecorderCore<S> {
    /// Creates a core for a configuration; counts go to `counters`, which must have one
    /// topic per entry of `config.plan()`.
    pub fn new(
        config: &RecorderConfig,
        counters: Arc<Counters>,
        sink: S,
    ) -> Result<Self, RecorderError> {
        let plan = config.plan()?;
        Ok(Self {
            observation_dim: config.observation_dim(),
            action_dim: config.action_dim(),
            period_ns: config.period_ns(),
            max_age_ns: (config.max_age_secs * 1e9).round() as i64,
            max_steps: config.episode.max_steps,
            sampled: config.transition.is_none(),
            episode_topic: config.episode.topic.is_some(),
            latest: plan.iter().map(|_| None).collect(),
            next_tick_ns: None,
            armed: false,
            buffer: Buffer::default(),
            counters,
            log: DropLog::new(config.log_interval_secs),
            sink,
            plan,
        })
    }

    /// Returns the subscribed topics, in the order that topic indexes refer to.
    pub fn plan(&self) -> &[TopicPlan] {
        &self.plan
    }

    /// Returns the time of the next tick, once the first message or time has been seen;
    /// `None` for Transition streams, which have no ticks.
    pub fn next_tick_ns(&self) -> Option<i64> {
        if self.sampled {
            self.next_tick_ns
        } else {
            None
        }
    }

    /// Handles one message received at `receive_ns` on topic `index` of the plan. Ticks
    /// before `receive_ns` run first.
    pub fn push(&mut self, index: usize, message: Incoming, receive_ns: i64) {
        if index >= self.plan.len() {
            warn!(
                index,
                "message for a topic index outside the recorder's plan ignored"
            );
            return;
        }
        self.run_ticks(receive_ns, false);

        if let Some(stamp) = message.stamp_ns()
            && receive_ns.saturating_sub(stamp) > self.max_age_ns
        {
            let age = (receive_ns - stamp) as f64 * 1e-9;
            let rejected = Rejected::new(
                DropReason::Stale,
                format!(
                    "header stamp is {age:.3} s old, more than max_age_secs = {}",
                    self.max_age_ns as f64 * 1e-9
                ),
            );
            self.reject(index, &rejected, receive_ns);
            return;
        }

        let outcome = match self.plan[index].role.clone() {
            Role::Observation(source, _) | Role::Action(source, _) => {
                let mut values = vec![0.0; source.size()];
                extract::extract(&source, &message, &mut values).map(|()| {
                    self.latest[index] = Some(Latest {
                        values,
                        time_ns: message.stamp_ns().unwrap_or(receive_ns),
                    });
                })
            }
            Role::Transition(source) => match message {
                Incoming::Transition(transition) => extract::check_transition(
                    &transition,
                    source.observation_size,
                    source.action_size,
                )
                .map(|()| self.record_transition(transition)),
                other => Err(type_mismatch(&other, "clarify_msgs/msg/Transition")),
            },
            Role::EpisodeEvents => match message {
                Incoming::EpisodeEvent(event) => self.episode_event(event.data.trim()),
                other => Err(type_mismatch(&other, "std_msgs/msg/String")),
            },
        };
        match outcome {
            Ok(()) => self.counters.accepted(index),
            Err(rejected) => self.reject(index, &rejected, receive_ns),
        }
    }

    /// Runs every tick up to and including `now_ns`.
    pub fn advance_to(&mut self, now_ns: i64) {
        self.run_ticks(now_ns, true);
    }

    /// Ends the running episode as unmarked (recording stopped) and returns the sink.
    pub fn finish(mut self) -> S {
        self.close(EpisodeEnd::Unmarked, false);
        self.sink
    }

    fn reject(&mut self, index: usize, rejected: &Rejected, now_ns: i64) {
        self.counters.dropped(index, rejected.reason, 1);
        self.log.drop(
            &self.counters,
            index,
            rejected.reason,
            now_ns,
            &rejected.detail,
        );
    }

    fn episode_event(&mut self, word: &str) -> Result<(), Rejected> {
        match word {
            EVENT_START => {
                self.close(EpisodeEnd::Unmarked, false);
                self.armed = true;
            }
            EVENT_TASK_END => {
                self.close(EpisodeEnd::Terminated, false);
                self.armed = false;
            }
            EVENT_TIME_LIMIT => {
                self.close(EpisodeEnd::TimedOut, false);
                self.armed = false;
            }
            other => {
                return Err(Rejected::new(
                    DropReason::Malformed,
                    format!(
                        "episode event {other:?}, expected {EVENT_START:?}, \
                         {EVENT_TASK_END:?} or {EVENT_TIME_LIMIT:?}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs the ticks before `limit_ns` (or up to it, with `inclusive`).
    fn run_ticks(&mut self, limit_ns: i64, inclusive: bool) {
        if !self.sampled {
            return;
        }
        let period = self.period_ns;
        let next = *self
            .next_tick_ns
            .get_or_insert_with(|| limit_ns.div_euclid(period) * period + period);
        let due = |tick: i64| {
            if inclusive {
                tick <= limit_ns
            } else {
                tick < limit_ns
            }
        };
        let mut tick = next;
        while due(tick) {
            let recorded = self.tick(tick);
            tick += period;
            if !recorded && self.buffer.steps == 0 && due(tick) {
                // Until the next message, every further tick has the same outcome: count
                // them at once instead of one by one.
                let last = if inclusive { limit_ns } else { limit_ns - 1 };
                let remaining = (last - tick).div_euclid(period) + 1;
                let missed = !self.episode_topic || self.armed;
                if missed {
                    self.counters.ticks_missed_in_bulk(remaining as u64);
                } else {
                    self.counters.ticks_idle_in_bulk(remaining as u64);
                }
                tick += remaining * period;
            }
        }
        self.next_tick_ns = Some(tick);
    }

    /// Runs one tick; returns whether it recorded a step.
    fn tick(&mut self, tick_ns: i64) -> bool {
        if self.episode_topic && !self.armed {
            self.counters.tick(false);
            return false;
        }
        let fresh = self.plan.iter().enumerate().all(|(index, entry)| {
            !matches!(entry.role, Role::Observation(..) | Role::Action(..))
                || self.latest[index]
                    .as_ref()
                    .is_some_and(|latest| tick_ns.saturating_sub(latest.time_ns) <= self.max_age_ns)
        });
        if !fresh {
            self.counters.tick(true);
            self.close(EpisodeEnd::Unmarked, true);
            return false;
        }
        self.counters.tick(false);

        let start_obs = self.buffer.observations.len();
        let start_act = self.buffer.actions.len();
        self.buffer
            .observations
            .resize(start_obs + self.observation_dim, 0.0);
        self.buffer.actions.resize(start_act + self.action_dim, 0.0);
        for (index, entry) in self.plan.iter().enumerate() {
            let (target, start, offset) = match &entry.role {
                Role::Observation(_, offset) => (&mut self.buffer.observations, start_obs, *offset),
                Role::Action(_, offset) => (&mut self.buffer.actions, start_act, *offset),
                _ => continue,
            };
            // `fresh` checked that every source has a value.
            if let Some(latest) = &self.latest[index] {
                let begin = start + offset;
                target[begin..begin + latest.values.len()].copy_from_slice(&latest.values);
            }
        }
        self.buffer.rewards.push(0.0);
        self.buffer.steps += 1;
        self.counters.step_recorded();

        if self.max_steps.is_some_and(|max| self.buffer.steps >= max) {
            self.close(EpisodeEnd::TimedOut, false);
            self.armed = false;
        }
        true
    }

    fn record_transition(&mut self, transition: crate::msg::Transition) {
        if let Some((episode_id, expected_step)) = self.buffer.transition
            && (episode_id != transition.episode_id || expected_step != transition.step)
        {
            // A step gap within an episode means lost or dropped messages.
            let interrupted = episode_id == transition.episode_id;
            self.close(EpisodeEnd::Unmarked, interrupted);
        }
        self.buffer
            .observations
            .extend_from_slice(&transition.observation);
        self.buffer.actions.extend_from_slice(&transition.action);
        self.buffer.rewards.push(if transition.has_reward {
            transition.reward
        } else {
            0.0
        });
        self.buffer.steps += 1;
        self.buffer.transition = Some((transition.episode_id, transition.step.wrapping_add(1)));
        self.counters.step_recorded();

        if transition.terminated {
            self.close(EpisodeEnd::Terminated, false);
        } else if transition.truncated {
            self.close(EpisodeEnd::TimedOut, false);
        }
    }

    /// Ends the running episode, if it has steps, and hands it to the sink.
    fn close(&mut self, end: EpisodeEnd, interrupted: bool) {
        let buffer = std::mem::take(&mut self.buffer);
        if buffer.steps == 0 {
            return;
        }
        let steps = buffer.steps;
        let observations =
            Array2::from_shape_vec((steps, self.observation_dim), buffer.observations)
                .expect("observation buffer holds steps × observation_dim values");
        let actions = Array2::from_shape_vec((steps, self.action_dim), buffer.actions)
            .expect("action buffer holds steps × action_dim values");
        let mut next_observations = Array2::zeros((steps, self.observation_dim));
        for step in 0..steps {
            let source = (step + 1).min(steps - 1);
            next_observations
                .index_axis_mut(Axis(0), step)
                .assign(&observations.index_axis(Axis(0), source));
        }
        let episode = RecordedEpisode {
            arrays: EpisodeArrays {
                observations,
                actions,
                next_observations,
                rewards: Array1::from(buffer.rewards),
            },
            end,
        };
        self.counters.episode_completed(interrupted);
        if let Err(reason) = self.sink.submit(episode) {
            self.counters.steps_dropped(reason, steps);
            warn!(
                steps,
                ?reason,
                "dropped a recorded episode: the store writer did not take it"
            );
        }
    }
}

fn type_mismatch(message: &Incoming, expected: &str) -> Rejected {
    Rejected::new(
        DropReason::Malformed,
        format!("got a {} message, expected {expected}", message.type_name()),
    )
}

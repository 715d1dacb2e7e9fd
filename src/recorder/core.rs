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
use crate::media::{CameraCounters, EncodedFrame};
use crate::store::{CameraFrame, EpisodeArrays};

/// A finished episode, ready for the store.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEpisode {
    /// Step arrays. The observation after an episode's last action is not in the stream,
    /// so the last step's next observation repeats its observation.
    pub arrays: EpisodeArrays,
    /// Kind of episode end.
    pub end: EpisodeEnd,
    /// Camera frames of the episode's steps, in step order, at most one per step; empty
    /// without a camera topic.
    pub frames: Vec<CameraFrame>,
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

/// The newest camera frame and whether a step has taken it.
#[derive(Debug)]
struct LatestFrame {
    frame: EncodedFrame,
    time_ns: i64,
    attached: bool,
}

#[derive(Debug, Default)]
struct Buffer {
    frames: Vec<CameraFrame>,
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
    camera: Option<Arc<CameraCounters>>,
    latest_frame: Option<LatestFrame>,
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
            camera: None,
            latest_frame: None,
        })
    }

    /// Counts camera frames in `counters`. Without this, [`RecorderCore::push_frame`]
    /// still attaches frames but counts nothing.
    pub fn with_camera(mut self, counters: Arc<CameraCounters>) -> Self {
        self.camera = Some(counters);
        self
    }

    /// Handles one camera frame received at `receive_ns`. Ticks before `receive_ns` run
    /// first. The next step (tick or Transition message) takes the frame when it is no
    /// older than `max_age_secs` then, by its header stamp or else its receive time.
    pub fn push_frame(&mut self, frame: EncodedFrame, receive_ns: i64) {
        self.run_ticks(receive_ns, false);
        let time_ns = frame.stamp_ns.unwrap_or(receive_ns);
        if receive_ns.saturating_sub(time_ns) > self.max_age_ns {
            if let Some(camera) = &self.camera {
                camera.dropped("stale", 1);
            }
            return;
        }
        if let Some(camera) = &self.camera {
            camera.converted();
        }
        let previous = self.latest_frame.replace(LatestFrame {
            frame,
            time_ns,
            attached: false,
        });
        if let (Some(previous), Some(camera)) = (previous, &self.camera)
            && !previous.attached
        {
            camera.superseded();
        }
    }

    /// Attaches the newest frame to the step just recorded, unless a step took it already
    /// or it is older than `max_age_secs` at `now_ns`.
    fn attach_frame(&mut self, now_ns: i64) {
        let Some(latest) = self.latest_frame.as_mut() else {
            return;
        };
        if latest.attached || now_ns.saturating_sub(latest.time_ns) > self.max_age_ns {
            return;
        }
        latest.attached = true;
        let frame = &latest.frame;
        self.buffer.frames.push(CameraFrame {
            step: self.buffer.steps - 1,
            stamp_unix_secs: latest.time_ns as f64 * 1e-9,
            format: frame.format,
            width: frame.width,
            height: frame.height,
            data: frame.data.clone(),
        });
        if let Some(camera) = &self.camera {
            camera.attached();
        }
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
                .map(|()| self.record_transition(transition, receive_ns)),
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
        self.attach_frame(tick_ns);

        if self.max_steps.is_some_and(|max| self.buffer.steps >= max) {
            self.close(EpisodeEnd::TimedOut, false);
            self.armed = false;
        }
        true
    }

    fn record_transition(&mut self, transition: crate::msg::Transition, receive_ns: i64) {
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
        self.attach_frame(receive_ns);

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
            frames: buffer.frames,
        };
        let frames = episode.frames.len();
        self.counters.episode_completed(interrupted);
        if let Err(reason) = self.sink.submit(episode) {
            self.counters.steps_dropped(reason, steps);
            if let Some(camera) = &self.camera {
                camera.lost(frames);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Twist;
    use crate::recorder::Source;
    use crate::store::FrameFormat;

    const MS: i64 = 1_000_000;
    /// A multiple of the 100 ms tick period, so ticks fall at BASE + 100 ms, + 200 ms, ...
    const BASE: i64 = 1_700_000_000_000 * MS;

    fn frame(marker: u8, stamp_ns: Option<i64>) -> EncodedFrame {
        EncodedFrame {
            format: FrameFormat::Jpeg,
            width: 1,
            height: 1,
            data: vec![marker],
            stamp_ns,
        }
    }

    #[test]
    fn frames_attach_once_per_step() -> Result<(), RecorderError> {
        let config = RecorderConfig {
            control_rate_hz: 10.0,
            max_age_secs: 0.5,
            observation: vec![Source::Twist {
                topic: "/observation".into(),
            }],
            action: vec![Source::Twist {
                topic: "/action".into(),
            }],
            ..RecorderConfig::default()
        };
        let topics = config.plan()?.into_iter().map(|entry| entry.topic);
        let counters = Arc::new(Counters::new(topics));
        let camera = Arc::new(CameraCounters::new("/camera"));
        let mut core =
            RecorderCore::new(&config, counters, Vec::new())?.with_camera(Arc::clone(&camera));

        // Sources arrive every 50 ms. A 33 Hz camera pauses from 400 ms to 700 ms, and one
        // image at 500 ms has a stamp 2 s old.
        for t in (0..1000).step_by(10) {
            let now = BASE + t * MS;
            if t % 50 == 0 {
                core.push(0, Incoming::Twist(Twist::default()), now);
                core.push(1, Incoming::Twist(Twist::default()), now);
            }
            if t % 30 == 0 && !(400..700).contains(&t) {
                core.push_frame(frame((t / 30) as u8, None), now);
            }
            if t == 500 {
                core.push_frame(frame(200, Some(now - 2000 * MS)), now);
            }
        }
        core.advance_to(BASE + 1000 * MS);
        let episodes = core.finish();

        assert_eq!(episodes.len(), 1);
        assert_eq!(episodes[0].steps(), 10);
        let frames = &episodes[0].frames;
        let steps: Vec<usize> = frames.iter().map(|frame| frame.step).collect();
        // Each tick takes the newest image received up to its time, as for the other
        // sources (so the image at 300 ms goes to the tick at 300 ms). The pause leaves
        // steps 4 to 6 without a frame instead of repeating the image of step 3.
        assert_eq!(steps, [0, 1, 2, 3, 7, 8, 9]);
        let markers: Vec<u8> = frames.iter().map(|frame| frame.data[0]).collect();
        assert_eq!(markers, [3, 6, 10, 13, 26, 30, 33]);
        assert_eq!(frames[0].stamp_unix_secs, (BASE + 90 * MS) as f64 * 1e-9);

        let counts = camera.snapshot();
        assert_eq!(counts.received, 25);
        assert_eq!(counts.dropped_for("stale"), 1);
        assert_eq!(counts.converted, 24);
        assert_eq!(counts.attached, 7);
        assert_eq!(counts.superseded, 17);
        Ok(())
    }
}

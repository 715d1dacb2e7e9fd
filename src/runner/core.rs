//! The runner's decisions without any transport: the latest observation, the enable state
//! and the time go in, and an action, the safe action or nothing comes out.

use std::fmt;
use std::time::{Duration, Instant};

use super::policy::Policy;
use crate::registry::ActionBounds;

/// Settings of [`PolicyCore`].
#[derive(Clone, Debug, PartialEq)]
pub struct CoreConfig {
    /// Observations older than this are stale.
    pub max_observation_age: Duration,
    /// Action published when the policy cannot be used. Empty means zeros.
    pub safe_action: Vec<f32>,
    /// Whether one safe action is published when the runner becomes disabled.
    pub safe_action_on_disable: bool,
    /// When set, a deadman button is required and a reading older than this is released.
    pub deadman_timeout: Option<Duration>,
}

/// Reason for publishing the safe action instead of the policy's.
#[derive(Clone, Debug, PartialEq)]
pub enum SafeReason {
    /// No observation has arrived yet.
    NoObservation,
    /// The newest observation is older than the configured maximum age.
    Stale { age: Duration },
    /// The newest observation has a NaN or infinite entry.
    NonFinite { index: usize, value: f32 },
    /// The newest message could not be turned into an observation.
    Rejected { reason: String },
    /// Running the policy failed.
    PolicyFailed { error: String },
    /// The runner was just disabled.
    Disabled,
}

impl SafeReason {
    /// Returns a short name of the kind, so that each kind is logged once.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoObservation => "no observation",
            Self::Stale { .. } => "stale observation",
            Self::NonFinite { .. } => "non-finite observation",
            Self::Rejected { .. } => "rejected observation",
            Self::PolicyFailed { .. } => "policy failure",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for SafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoObservation => f.write_str("no observation received yet"),
            Self::Stale { age } => write!(f, "the newest observation is {age:?} old"),
            Self::NonFinite { index, value } => {
                write!(f, "observation entry {index} is {value}")
            }
            Self::Rejected { reason } => write!(f, "observation rejected: {reason}"),
            Self::PolicyFailed { error } => write!(f, "the policy failed: {error}"),
            Self::Disabled => f.write_str("the runner was disabled"),
        }
    }
}

/// Outcome of one control step.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Publish nothing: the runner is disabled.
    Idle,
    /// Publish the policy's action, clamped to the bounds.
    Act {
        action: Vec<f32>,
        /// Whether any entry was clamped.
        clamped: bool,
    },
    /// Publish the safe action.
    Safe {
        action: Vec<f32>,
        reason: SafeReason,
    },
}

impl Decision {
    /// Returns the action to publish, if any.
    pub fn action(&self) -> Option<&[f32]> {
        match self {
            Self::Idle => None,
            Self::Act { action, .. } | Self::Safe { action, .. } => Some(action),
        }
    }
}

enum Latest {
    Observation { values: Vec<f32>, at: Instant },
    Rejected { reason: String, at: Instant },
}

/// The runner's state: the policy, the newest observation and the enable inputs.
pub struct PolicyCore {
    policy: Box<dyn Policy>,
    config: CoreConfig,
    safe_action: Vec<f32>,
    latest: Option<Latest>,
    service_enabled: bool,
    deadman_pressed_at: Option<Instant>,
    was_enabled: bool,
}

impl PolicyCore {
    /// Creates a core that runs `policy`. Fails when the safe action does not fit the
    /// policy's action size or bounds.
    pub fn new(policy: Box<dyn Policy>, config: CoreConfig) -> Result<Self, String> {
        let safe_action = safe_action_for(&config.safe_action, policy.bounds())?;
        Ok(Self {
            policy,
            config,
            safe_action,
            latest: None,
            service_enabled: false,
            deadman_pressed_at: None,
            was_enabled: false,
        })
    }

    /// Returns the running policy.
    pub fn policy(&self) -> &dyn Policy {
        self.policy.as_ref()
    }

    /// Returns the safe action in use.
    pub fn safe_action(&self) -> &[f32] {
        &self.safe_action
    }

    /// Replaces the policy, keeping the old one when the safe action does not fit the new
    /// one's action size or bounds. Returns the old policy.
    pub fn replace_policy(&mut self, policy: Box<dyn Policy>) -> Result<Box<dyn Policy>, String> {
        let safe_action = safe_action_for(&self.config.safe_action, policy.bounds())?;
        self.safe_action = safe_action;
        Ok(std::mem::replace(&mut self.policy, policy))
    }

    /// Records an observation received at `at`.
    pub fn observe(&mut self, values: Vec<f32>, at: Instant) {
        self.latest = Some(Latest::Observation { values, at });
    }

    /// Records a message received at `at` that could not become an observation.
    pub fn reject(&mut self, reason: String, at: Instant) {
        self.latest = Some(Latest::Rejected { reason, at });
    }

    /// Sets the state requested through the enable service.
    pub fn set_service_enabled(&mut self, enabled: bool) {
        self.service_enabled = enabled;
    }

    /// Returns the state requested through the enable service.
    pub fn service_enabled(&self) -> bool {
        self.service_enabled
    }

    /// Records a deadman reading at `at`: held or released.
    pub fn deadman(&mut self, held: bool, at: Instant) {
        self.deadman_pressed_at = held.then_some(at);
    }

    /// Returns whether the policy may drive the robot at `now`.
    pub fn is_enabled(&self, now: Instant) -> bool {
        let deadman_ok = match self.config.deadman_timeout {
            None => true,
            Some(timeout) => self
                .deadman_pressed_at
                .is_some_and(|at| now.saturating_duration_since(at) <= timeout),
        };
        self.service_enabled && deadman_ok
    }

    /// Decides what to publish at `now`.
    pub fn step(&mut self, now: Instant) -> Decision {
        let enabled = self.is_enabled(now);
        let was_enabled = std::mem::replace(&mut self.was_enabled, enabled);
        if !enabled {
            if was_enabled && self.config.safe_action_on_disable {
                return self.safe(SafeReason::Disabled);
            }
            return Decision::Idle;
        }
        let values = match &self.latest {
            None => return self.safe(SafeReason::NoObservation),
            Some(Latest::Rejected { reason, at }) => {
                let reason = if now.saturating_duration_since(*at) > self.config.max_observation_age
                {
                    SafeReason::Stale {
                        age: now.saturating_duration_since(*at),
                    }
                } else {
                    SafeReason::Rejected {
                        reason: reason.clone(),
                    }
                };
                return self.safe(reason);
            }
            Some(Latest::Observation { values, at }) => {
                let age = now.saturating_duration_since(*at);
                if age > self.config.max_observation_age {
                    return self.safe(SafeReason::Stale { age });
                }
                if let Some((index, &value)) =
                    values.iter().enumerate().find(|(_, v)| !v.is_finite())
                {
                    return self.safe(SafeReason::NonFinite { index, value });
                }
                values.clone()
            }
        };
        match self.policy.act(&values) {
            Ok(action) => {
                let (action, clamped) = clamp(action, self.policy.bounds());
                Decision::Act { action, clamped }
            }
            Err(error) => self.safe(SafeReason::PolicyFailed { error }),
        }
    }

    fn safe(&self, reason: SafeReason) -> Decision {
        Decision::Safe {
            action: self.safe_action.clone(),
            reason,
        }
    }
}

/// Clamps each entry to its bounds; returns whether any entry changed.
pub fn clamp(mut action: Vec<f32>, bounds: &ActionBounds) -> (Vec<f32>, bool) {
    let mut clamped = false;
    for (value, (&low, &high)) in action.iter_mut().zip(bounds.low.iter().zip(&bounds.high)) {
        let limited = value.clamp(low, high);
        clamped |= limited != *value;
        *value = limited;
    }
    (action, clamped)
}

fn safe_action_for(configured: &[f32], bounds: &ActionBounds) -> Result<Vec<f32>, String> {
    let dim = bounds.low.len();
    let action = if configured.is_empty() {
        vec![0.0; dim]
    } else {
        configured.to_vec()
    };
    if action.len() != dim {
        return Err(format!(
            "safe_action has {} values, but the policy's actions have {dim}",
            action.len()
        ));
    }
    for (index, &value) in action.iter().enumerate() {
        let (low, high) = (bounds.low[index], bounds.high[index]);
        if !(low..=high).contains(&value) {
            return Err(format!(
                "safe_action[{index}] = {value} is outside the action bounds [{low}, {high}]"
            ));
        }
    }
    Ok(action)
}

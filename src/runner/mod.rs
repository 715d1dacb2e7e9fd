//! The policy runner: drives the robot with the policy of a model set.
//!
//! It loads a set from the registry and validates it ([`OnnxPolicy::load`]), then, at the
//! control rate, runs the policy on the newest observation and publishes the action clamped to
//! the manifest's bounds. A missing, stale, rejected or non-finite observation gives the
//! configured safe action instead. Actions go out only while the runner is enabled: through
//! the SetPolicyEnabled service and, when configured, while a deadman button on a Joy topic
//! is held. A ModelUpdate message makes it load and validate the announced set on another
//! thread and swap it in. A set that fails validation is logged, and the running one stays.
//!
//! [`PolicyCore`] holds the decisions without any transport, so they are tested directly;
//! [`run`] connects it to a [`crate::transport::Transport`].

mod config;
mod core;
mod error;
mod node;
mod observation;
mod policy;

pub use config::{JointField, ObservationType, RunnerConfig};
pub use core::{CoreConfig, Decision, PolicyCore, SafeReason, clamp};
pub use error::RunnerError;
pub use node::{RunStats, load_policy, robot_expectation, run};
pub use observation::ObservationMapping;
pub use policy::{OnnxPolicy, Policy};

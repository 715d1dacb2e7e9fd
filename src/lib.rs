//! clarify learns a robot policy from an operator's answers to preference queries ("which
//! of these two trajectory segments is better?") with the CLARIFY method (Mu et al., ICML
//! 2025), which learns from "can't tell" answers as well as from clear ones.
//!
//! This crate contains the foundations: operator answers, offline datasets in the D4RL
//! layout, fixed-length segments, simulated teachers and the dataset fingerprint. The
//! `clarify` binary exposes them on the command line.

pub mod answer;
pub mod dataset;
pub mod fingerprint;
pub mod segment;
pub mod teacher;

pub use answer::{Answer, ParseAnswerError};
pub use dataset::{Dataset, DatasetArrays, DatasetError, Episode, EpisodeEnd};
pub use fingerprint::{Fingerprint, FingerprintConfig, FingerprintError, FingerprintReport};
pub use segment::{RewardPrefixSum, Segments};
pub use teacher::{SkipTeacher, Teacher};

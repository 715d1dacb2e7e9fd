//! The live query node (`clarify node`): records the robot into the segment store, selects
//! preference queries, publishes them and stores the operator's answers.
//!
//! One main loop ([`run`]) owns the query side. Per tick (20 ms while idle) it:
//!
//! - stores the answers that arrived on the answer topic and the gamepad presses (a press
//!   answers the oldest open query);
//! - notices queries that were answered or expired since the last tick;
//! - selects a new round when fewer than `max_open_queries` are open and the selection
//!   dataset has segments: random pairs (MR) while no model set with an encoder and a reward
//!   model is active, CLARIFY once one is;
//! - publishes new queries at once and every open query once per `republish_period_secs`.
//!
//! The recorder ([`crate::recorder::LiveRecorder`]) runs on its own threads and store
//! connection. The SubmitAnswer service runs on the transport's service thread and shares
//! the [`AnswerDesk`] with the main loop through a mutex, so an answer is committed before
//! its response is sent. Queries live in the store: after a restart the node offers the
//! open queries again, and an answer to a query of an earlier run is accepted.
//!
//! The deployment part ([`crate::deploy::ModelManager`]) hears of each committed answer,
//! runs retraining and switches model sets. The node reads the registry's active version
//! once per second, so CLARIFY rounds use a new encoder and reward model as soon as the
//! manager activates them, and it publishes `/diagnostics` once per diagnostics period.

mod answers;
mod config;
mod joy;
mod query_message;
mod run;
mod selection;

use thiserror::Error;

pub use answers::{AnswerCounters, AnswerDesk, AnswerListener, AnswerSource, Rejection};
pub use config::{EncoderSettings, JoyButtons, NodeSettings, NodeTopics, RetrainSettings};
pub use joy::JoyMapper;
pub use query_message::{ChannelInfo, query_message};
pub use run::{NodeSummary, run};
pub use selection::RoundPlanner;

use crate::console::ConsoleError;
use crate::deploy::DeployError;
use crate::infer::InferError;
use crate::learn::encoder::EncoderError;
use crate::media::MediaError;
use crate::recorder::RecorderError;
use crate::registry::RegistryError;
use crate::select::{OnnxScorerError, SelectError, StoreRoundError};
use crate::store::StoreError;
use crate::train::TrainError;
use crate::transport::TransportError;

/// Errors of the node.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A parameter is out of range or contradicts another.
    #[error("invalid node parameter {field} = {value}: expected {expected}")]
    Config {
        /// The parameter's name.
        field: String,
        /// The rejected value.
        value: String,
        /// Accepted values.
        expected: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    StoreRound(#[from] StoreRoundError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Scorer(#[from] OnnxScorerError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error("cannot start the console's segment media: {0}")]
    Media(#[from] MediaError),
}

impl NodeError {
    /// Returns whether the error comes from settings or files that cannot be used, as
    /// opposed to a failure while running.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            NodeError::Config { .. } => true,
            NodeError::Store(error) => error.is_invalid_input(),
            NodeError::Recorder(error) => matches!(error, RecorderError::Config { .. }),
            NodeError::Transport(error) => matches!(
                error,
                TransportError::InvalidConfig { .. } | TransportError::InvalidName { .. }
            ),
            NodeError::Registry(error) => error.is_invalid_input(),
            NodeError::Train(error) => error.is_invalid_input(),
            NodeError::Deploy(error) => matches!(error, DeployError::Config { .. }),
            NodeError::Console(error) => matches!(error, ConsoleError::Config(_)),
            NodeError::Media(error) => error.is_invalid_input(),
            _ => false,
        }
    }
}

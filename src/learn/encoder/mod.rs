//! The CLARIFY trajectory encoder: a bidirectional decision transformer whose anti-causal
//! aggregator Φ maps a segment of states to an embedding z.
//!
//! Training follows the official CLARIFY code (Mu et al., ICML 2025): each iteration takes
//! one AdamW step on the reconstruction loss of a decoder that predicts the dataset's
//! actions from (z_t, s_t, a_t) tokens, and one on the weighted norm, ambiguity and
//! quadrilateral losses of preference-buffer segments. Flags in [`EncoderConfig`] select
//! between the official code's behaviour and the fixes proposed for it.
//!
//! The embedding path leaves the module as an ONNX model ([`ClarifyEncoder::to_onnx`]),
//! which [`OnnxEncoder`] runs for query selection.

mod batch;
mod clip;
mod config;
#[allow(clippy::module_inception)]
mod encoder;
mod error;
mod export;
pub mod losses;
mod model;
mod normalization;
mod onnx_embedder;

pub use clip::clip_global_norm;
pub use config::{AmbiguityLossMode, EmbedToken, EncoderConfig, EncoderPreset, TimeEmbedding};
pub use encoder::{ClarifyEncoder, EncoderTrainingData, EncoderTrainingReport};
pub use error::EncoderError;
pub use export::{STATES_INPUT, TIMESTEPS_INPUT, Z_OUTPUT, encoder_signature};
pub use normalization::{STD_EPSILON, StateNormalization};
pub use onnx_embedder::OnnxEncoder;

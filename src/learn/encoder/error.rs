//! Errors of the trajectory encoder.

use thiserror::Error;

use crate::infer::InferError;
use crate::onnx::ExportError;
use crate::select::SegmentError;

/// An encoder operation that cannot run on the given configuration or data.
#[derive(Debug, Error)]
pub enum EncoderError {
    #[error("invalid encoder setting {field} = {value}: expected {expected}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("invalid {what} shape {found:?}: expected {expected}")]
    Shape {
        what: &'static str,
        found: Vec<usize>,
        expected: String,
    },

    #[error(
        "timestep {found} is out of range: the encoder's time embedding covers 0..{max_timestep}; \
         raise max_timestep to at least {needed}"
    )]
    Timestep {
        found: i64,
        max_timestep: usize,
        needed: i64,
    },

    #[error(
        "the dataset's longest episode has {episode_len} steps, but the encoder's time \
         embedding covers only {max_timestep} timesteps: set max_timestep to at least \
         {episode_len}"
    )]
    EpisodeTooLong {
        episode_len: usize,
        max_timestep: usize,
    },

    #[error("invalid state normalisation: {reason}")]
    Normalization { reason: String },

    #[error("invalid preference buffer entry {index}")]
    BufferSegment {
        index: usize,
        #[source]
        source: SegmentError,
    },

    #[error(
        "preference buffer entry {index} has segments of {found} steps, but earlier entries \
         have {expected}: every segment of the buffer must have the same length"
    )]
    SegmentLength {
        index: usize,
        found: usize,
        expected: usize,
    },

    #[error("cannot embed a segment of this dataset")]
    Segment(#[from] SegmentError),

    #[error(
        "the encoder model returned {found:?} for {segments} segments: expected [{segments}, \
         z_dim]"
    )]
    OutputShape { segments: usize, found: Vec<usize> },

    #[error("encoder export to ONNX failed: {0}")]
    Export(#[from] ExportError),

    #[error("encoder inference with ONNX Runtime failed: {0}")]
    Infer(#[from] InferError),
}

//! Query selection: which pairs of segments to show the operator in each round.
//!
//! A [`QuerySelector`] picks M pairs per round (default 50) from the segments of length H of
//! a dataset's episodes, with one of three rules ([`SelectorKind`]):
//!
//! - `random`: uniform pairs;
//! - `disagreement`: the M pairs with the highest reward-ensemble disagreement among M · L
//!   uniform candidates (default L = 10);
//! - `clarify`: CLARIFY's rejection sampling on the embedding distance of the two segments
//!   (Mu et al., ICML 2025), which favours distances at which past queries were answered
//!   clearly, followed by the same disagreement ranking. [`density`] holds the arithmetic.
//!
//! Round 0 of every method is `random` ([`SelectorKind::for_round`]).
//!
//! Guarantees of every selector:
//!
//! - no pair contains one segment twice or two overlapping segments of one episode;
//! - no unordered pair repeats within a round or repeats a pair in the caller's
//!   [`AskedPairs`];
//! - a round returns M pairs unless the candidate draw runs short, which it reports with a
//!   warning and [`RoundSelection::pool_exhausted`] instead of searching without end;
//! - the same configuration, dataset, inputs and seed give the same pairs.
//!
//! The selector reads models only through the [`Embedder`] and [`DisagreementScorer`]
//! traits and reads no files, stores nothing and sends nothing: the caller records the
//! chosen queries.

mod clarify;
mod config;
pub mod density;
mod error;
mod model;
pub mod onnx;
mod random;
mod round;
mod sampler;
mod segment;
mod selector;

pub use config::{
    DEFAULT_BATCH_SIZE, DEFAULT_BIN_COUNT, DEFAULT_DRAW_ATTEMPTS_PER_PAIR,
    DEFAULT_OUTLIER_STD_DEVS, DEFAULT_POOL_FACTOR, DEFAULT_QUERIES_PER_ROUND, SelectConfig,
    SelectConfigError,
};
pub use density::{ClarifyFallback, ReferenceDensity};
pub use error::{ModelError, SelectError};
pub use model::{DisagreementScorer, Embedder, embedding_distance};
pub use onnx::{OnnxRewardScorer, OnnxScorerError};
pub use random::round_seed;
pub use round::{
    NoModel, RoundModels, StoreRoundError, StoredRound, select_and_store_round, select_round,
};
pub use sampler::{PairDraw, SegmentPool};
pub use segment::{AskedPairs, DatasetSegment, LabelledPair, SegmentError, SegmentPair};
pub use selector::{
    ClarifyTrace, ExaminedCandidate, QuerySelector, ReferencePoint, RoundSelection, SelectedPair,
    SelectorKind,
};

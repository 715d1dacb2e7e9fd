//! clarify learns a robot policy from an operator's answers to preference queries ("which
//! of these two trajectory segments is better?") with the CLARIFY method (Mu et al., ICML
//! 2025), which learns from "can't tell" answers as well as from clear ones.
//!
//! Modules, from the foundations up: operator answers (`answer`), offline datasets in the
//! D4RL layout (`dataset`) and their fingerprint (`fingerprint`), fixed-length segments
//! (`segment`), simulated teachers (`teacher`), the SQLite segment store (`store`) and label
//! files (`labels`), the ONNX writer (`onnx`) and the ONNX Runtime wrapper (`infer`), the
//! reward model (`learn`), query selection (`select`), and the ROS 2 edge: message types
//! (`msg`) and transports (`transport`). The `clarify` binary exposes them on the command
//! line. Learning and selection never import the ROS 2 edge.

pub mod answer;
pub mod bag;
pub mod bench;
pub mod console;
pub mod dataset;
pub mod deploy;
pub mod diagnostics;
pub mod fingerprint;
pub mod infer;
pub mod labels;
pub mod learn;
pub mod media;
pub mod msg;
pub mod node;
pub mod onnx;
pub mod params;
pub mod recorder;
pub mod registry;
pub mod runner;
pub mod segment;
pub mod select;
pub mod store;
pub mod teacher;
pub mod train;
pub mod transport;

pub use answer::{Answer, ParseAnswerError};
pub use dataset::{Dataset, DatasetArrays, DatasetError, Episode, EpisodeEnd};
pub use fingerprint::{Fingerprint, FingerprintConfig, FingerprintError, FingerprintReport};
pub use infer::{InferConfig, InferError, Model, ModelSignature, Runtime};
pub use labels::{LabelError, LabelFileError, LabelRecord};
pub use learn::{PreferencePairs, RewardModel, RewardModelConfig, RewardModelError};
pub use onnx::{ExportError, GraphBuilder, Mlp};
pub use segment::{RewardPrefixSum, Segments};
pub use select::{
    AskedPairs, DatasetSegment, DisagreementScorer, Embedder, LabelledPair, QuerySelector,
    RoundSelection, SegmentPair, SelectConfig, SelectError, SelectorKind,
};
pub use store::{DatasetId, EpisodeId, QueryId, SegmentRef, Store, StoreError};
pub use teacher::{
    BoltzmannTeacher, EqualTeacher, InvalidTeacherParameter, MistakeTeacher, MyopicTeacher,
    QueryRewards, SkipTeacher, Teacher,
};

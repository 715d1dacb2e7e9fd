//! Settings of the query clarity benchmark and the methods it compares.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::BenchError;
use crate::learn::RewardModelConfig;
use crate::learn::encoder::{EncoderConfig, EncoderPreset};
use crate::segment::DEFAULT_SEGMENT_LENGTH;
use crate::select::SelectorKind;

/// A query selection method of the benchmark: the same reward model with a different
/// query rule after the shared random first round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// CLARIFY: rejection sampling on the encoder's embedding distance, then disagreement.
    Clarify,
    /// MR: uniform random queries.
    Mr,
    /// OPRL: the most disputed of M · L random candidates.
    Oprl,
}

impl Method {
    /// All methods, in report order.
    pub const ALL: [Method; 3] = [Method::Clarify, Method::Mr, Method::Oprl];

    /// Returns the name used on the command line and in JSON: `clarify`, `mr` or `oprl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Clarify => "clarify",
            Method::Mr => "mr",
            Method::Oprl => "oprl",
        }
    }

    /// Returns the name used in the report table: `CLARIFY`, `MR` or `OPRL`.
    pub fn label(self) -> &'static str {
        match self {
            Method::Clarify => "CLARIFY",
            Method::Mr => "MR",
            Method::Oprl => "OPRL",
        }
    }

    /// Returns the query selector of the method's rounds after the first.
    pub fn selector(self) -> SelectorKind {
        match self {
            Method::Clarify => SelectorKind::Clarify,
            Method::Mr => SelectorKind::Random,
            Method::Oprl => SelectorKind::Disagreement,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|method| method.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("invalid method {text:?}: expected clarify, mr or oprl"))
    }
}

/// Default ε of the skip teacher.
pub const DEFAULT_EPSILON: f64 = 0.5;
/// Default total number of queries per run, first round included.
pub const DEFAULT_BUDGET: usize = 500;
/// Default number of held-out oracle pairs for the reward-model accuracy.
pub const DEFAULT_EVAL_PAIRS: usize = 1000;
/// Seed of the held-out pairs, the same for every method and run seed.
pub const DEFAULT_EVAL_SEED: u64 = 0x00c1_a71f_e7a1;

/// Settings of one clarity benchmark. Every run (method × seed) uses the same dataset,
/// budget, teacher and held-out pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaritySettings {
    /// ε of the skip teacher, whose threshold is ε · H · r̄ with r̄ the dataset's mean step
    /// reward.
    pub epsilon: f64,
    /// Queries per run, first round included. The last round shrinks to fit.
    pub budget: usize,
    /// Queries per round M.
    pub queries_per_round: usize,
    /// Pool factor L: disagreement and CLARIFY rounds draw M · L candidates.
    pub pool_factor: usize,
    /// Segment length H in steps.
    pub segment_length: usize,
    /// Run seeds. Each seeds the round selection, the reward model and the encoder.
    pub seeds: Vec<u64>,
    /// Methods to compare.
    pub methods: Vec<Method>,
    /// The preset the encoder settings came from, as shown in the report.
    pub encoder_preset: EncoderPreset,
    /// Settings of CLARIFY's encoder and its training schedule.
    pub encoder: EncoderConfig,
    /// Settings of the reward model. Its `seed` is replaced by the run seed.
    pub reward: RewardModelConfig,
    /// Held-out oracle pairs with different returns for the reward-model accuracy.
    pub eval_pairs: usize,
    /// Seed of the held-out pairs.
    pub eval_seed: u64,
}

impl Default for ClaritySettings {
    fn default() -> Self {
        Self {
            epsilon: DEFAULT_EPSILON,
            budget: DEFAULT_BUDGET,
            queries_per_round: crate::select::DEFAULT_QUERIES_PER_ROUND,
            pool_factor: crate::select::DEFAULT_POOL_FACTOR,
            segment_length: DEFAULT_SEGMENT_LENGTH,
            seeds: vec![0, 1, 2],
            methods: Method::ALL.to_vec(),
            encoder_preset: EncoderPreset::Cpu,
            encoder: EncoderConfig::preset(EncoderPreset::Cpu),
            reward: RewardModelConfig::default(),
            eval_pairs: DEFAULT_EVAL_PAIRS,
            eval_seed: DEFAULT_EVAL_SEED,
        }
    }
}

impl ClaritySettings {
    /// Checks the settings that the selector, reward model and encoder do not check
    /// themselves, and those too.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |field: &'static str, value: String, expected: &'static str| {
            Err(BenchError::InvalidSetting {
                field,
                value,
                expected,
            })
        };
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return invalid("epsilon", self.epsilon.to_string(), "a finite value ≥ 0");
        }
        if self.budget == 0 {
            return invalid("budget", "0".to_owned(), "at least 1 query");
        }
        if self.queries_per_round == 0 {
            return invalid("queries_per_round", "0".to_owned(), "at least 1 query");
        }
        if self.seeds.is_empty() {
            return invalid("seeds", "[]".to_owned(), "at least one seed");
        }
        if self.methods.is_empty() {
            return invalid("methods", "[]".to_owned(), "at least one method");
        }
        if self.eval_pairs == 0 {
            return invalid("eval_pairs", "0".to_owned(), "at least 1 pair");
        }
        self.select_config(self.queries_per_round).validate()?;
        self.reward.validate().map_err(BenchError::RewardConfig)?;
        if self.methods.contains(&Method::Clarify) {
            self.encoder.validate().map_err(BenchError::EncoderConfig)?;
        }
        Ok(())
    }

    /// Returns the number of rounds: ⌈budget / M⌉.
    pub fn round_count(&self) -> usize {
        self.budget.div_ceil(self.queries_per_round)
    }

    /// Returns the queries of round `round` (0-based): M, or what is left of the budget in
    /// the last round.
    pub fn round_queries(&self, round: usize) -> usize {
        let spent = round * self.queries_per_round;
        self.queries_per_round
            .min(self.budget.saturating_sub(spent))
    }

    /// Returns the selector settings for rounds of `queries` queries.
    pub fn select_config(&self, queries: usize) -> crate::select::SelectConfig {
        crate::select::SelectConfig {
            segment_length: self.segment_length,
            queries_per_round: queries,
            pool_factor: self.pool_factor,
            ..crate::select::SelectConfig::default()
        }
    }
}

//! The state that every run of a benchmark shares: the dataset, its teacher, the held-out
//! pairs and the ONNX Runtime.

use std::path::Path;

use ndarray::Array4;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use super::error::BenchError;
use super::run::gather_pairs;
use super::settings::ClaritySettings;
use crate::answer::Answer;
use crate::dataset::Dataset;
use crate::fingerprint::{self, Fingerprint, FingerprintConfig};
use crate::infer::{ExecutionProviderKind, InferConfig, Runtime};
use crate::segment::RewardPrefixSum;
use crate::select::{AskedPairs, SegmentPair, SegmentPool};
use crate::store::ContentHash;
use crate::teacher::{SkipTeacher, oracle_answer};

/// The dataset's identity and statistics, as printed and written with the results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetSummary {
    /// The path given on the command line.
    pub path: String,
    /// SHA-256 of the file's bytes, in hex.
    pub sha256: String,
    /// The skip teacher's threshold ε · H · r̄ on the return difference.
    pub teacher_threshold: f64,
    /// Held-out oracle pairs drawn, fewer than requested when the dataset has too few pairs
    /// with different returns.
    pub eval_pairs: usize,
    pub fingerprint: Fingerprint,
}

/// Held-out pairs answered by the oracle, for the reward-model accuracy.
#[derive(Clone, Debug)]
pub struct EvalPairs {
    pub pairs: Vec<SegmentPair>,
    /// `[pairs, 2, H, observation_dim]`.
    pub observations: Array4<f32>,
    /// `[pairs, 2, H, action_dim]`.
    pub actions: Array4<f32>,
    pub answers: Vec<Answer>,
}

/// The parts of a benchmark that every run reads.
pub struct BenchContext {
    pub settings: ClaritySettings,
    pub dataset: Dataset,
    pub summary: DatasetSummary,
    pub runtime: Runtime,
    pub teacher: SkipTeacher,
    pub eval: EvalPairs,
    prefix: RewardPrefixSum,
}

impl BenchContext {
    /// Loads the dataset at `path`, derives the teacher from its true rewards, draws the
    /// held-out pairs and starts ONNX Runtime with the CPU provider and `threads` threads
    /// per operator (0: ONNX Runtime's default).
    pub fn load(
        path: &Path,
        settings: ClaritySettings,
        threads: usize,
    ) -> Result<Self, BenchError> {
        settings.validate()?;
        let dataset = Dataset::load(path)?;
        let sha256 = ContentHash::of_file(path)
            .map_err(|source| BenchError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .to_hex();
        let report = fingerprint::compute(
            &dataset,
            &FingerprintConfig {
                segment_length: settings.segment_length,
                ..FingerprintConfig::default()
            },
        )?;
        let prefix = RewardPrefixSum::new(dataset.rewards());
        // r̄ is the mean of every step's true reward, as in the fingerprint.
        let mean_step_reward = report.fingerprint.mean_step_reward;
        let teacher = SkipTeacher::new(settings.epsilon, settings.segment_length, mean_step_reward);
        let eval = draw_eval_pairs(&dataset, &prefix, &settings)?;
        let runtime = Runtime::new(InferConfig {
            execution_providers: vec![ExecutionProviderKind::Cpu],
            intra_op_threads: threads,
            ..InferConfig::default()
        })
        .map_err(BenchError::Runtime)?;

        Ok(Self {
            summary: DatasetSummary {
                path: path.display().to_string(),
                sha256,
                teacher_threshold: teacher.threshold(),
                eval_pairs: eval.pairs.len(),
                fingerprint: report.fingerprint,
            },
            settings,
            dataset,
            runtime,
            teacher,
            eval,
            prefix,
        })
    }

    /// Returns the skip teacher's answer to `pair`.
    pub fn teacher_answer(&self, pair: &SegmentPair) -> Answer {
        let (left, right) = pair_returns(&self.dataset, &self.prefix, pair);
        self.teacher.answer(left, right)
    }

    /// Returns the step arrays and answers of `buffer` for reward training.
    pub fn pair_arrays(
        &self,
        buffer: &[crate::select::LabelledPair],
    ) -> (Array4<f32>, Array4<f32>, Vec<Answer>) {
        let pairs: Vec<SegmentPair> = buffer.iter().map(|entry| entry.pair).collect();
        let (observations, actions) = gather_pairs(
            self.dataset.observations(),
            self.dataset.actions(),
            self.dataset.episodes(),
            &pairs,
        );
        let answers = buffer.iter().map(|entry| entry.answer).collect();
        (observations, actions, answers)
    }
}

/// Returns the true returns of both segments of `pair`.
fn pair_returns(dataset: &Dataset, prefix: &RewardPrefixSum, pair: &SegmentPair) -> (f64, f64) {
    let segment_return = |segment: crate::select::DatasetSegment| {
        let start = dataset.episodes()[segment.episode].start + segment.start;
        prefix.range_sum(start, segment.length)
    };
    (segment_return(pair.left), segment_return(pair.right))
}

/// Draws `eval_pairs` distinct random pairs whose true returns differ, with the fixed
/// evaluation seed, and labels them with the oracle.
fn draw_eval_pairs(
    dataset: &Dataset,
    prefix: &RewardPrefixSum,
    settings: &ClaritySettings,
) -> Result<EvalPairs, BenchError> {
    let pool = SegmentPool::new(dataset.episodes(), settings.segment_length)
        .expect("settings validation rejects segment length 0");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.eval_seed);
    // Twice the requested count leaves room for pairs with equal returns, which are dropped.
    let draw = pool.draw_pairs(
        settings.eval_pairs.saturating_mul(2),
        &AskedPairs::new(),
        crate::select::DEFAULT_DRAW_ATTEMPTS_PER_PAIR,
        &mut rng,
    );
    let mut pairs = Vec::with_capacity(settings.eval_pairs);
    let mut answers = Vec::with_capacity(settings.eval_pairs);
    for pair in draw.pairs {
        let (left, right) = pair_returns(dataset, prefix, &pair);
        let answer = oracle_answer(left, right);
        if answer.is_clear() {
            pairs.push(pair);
            answers.push(answer);
        }
        if pairs.len() == settings.eval_pairs {
            break;
        }
    }
    if pairs.is_empty() {
        return Err(BenchError::NoDecisivePairs {
            segment_length: settings.segment_length,
        });
    }
    if pairs.len() < settings.eval_pairs {
        tracing::warn!(
            found = pairs.len(),
            requested = settings.eval_pairs,
            "the dataset has fewer held-out pairs with different returns than requested"
        );
    }
    let (observations, actions) = gather_pairs(
        dataset.observations(),
        dataset.actions(),
        dataset.episodes(),
        &pairs,
    );
    Ok(EvalPairs {
        pairs,
        observations,
        actions,
        answers,
    })
}

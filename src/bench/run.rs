//! One benchmark run: a method and a seed, from the random first round to the end of the
//! budget.

use std::fs;
use std::path::Path;
use std::time::Instant;

use ndarray::{Array4, Axis};
use serde::{Deserialize, Serialize};

use super::context::BenchContext;
use super::diagnostics::RoundDiagnostics;
use super::error::{BenchError, RoundError};
use super::settings::Method;
use crate::answer::Answer;
use crate::learn::encoder::{ClarifyEncoder, EncoderTrainingData, OnnxEncoder, StateNormalization};
use crate::learn::{PreferencePairs, RewardModel, RewardModelConfig};
use crate::onnx::{ModelInfo, write_model};
use crate::select::{
    AskedPairs, LabelledPair, OnnxRewardScorer, QuerySelector, RoundModels, RoundSelection,
    SegmentPair, SelectorKind, round_seed, select_round,
};

/// The outcome of one round of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundRecord {
    /// 0-based round index. Round 0 is the random round that every method shares.
    pub round: usize,
    pub selector: SelectorKind,
    /// Queries requested: M, or what was left of the budget.
    pub requested: usize,
    /// Queries selected and labelled.
    pub queries: usize,
    /// Queries the teacher answered left or right.
    pub clear: usize,
    /// Queries the teacher could not tell apart.
    pub cant_tell: usize,
    /// Candidates drawn by the selector.
    pub candidates: usize,
    /// Candidates accepted by CLARIFY's rejection sampling, `None` in other rounds.
    pub accepted: Option<usize>,
    /// Rejected candidates added to fill the round to M: the top-up shortfall.
    pub top_ups: usize,
    /// The reason a CLARIFY round ranked all candidates by disagreement, if it did.
    pub fallback: Option<String>,
    /// Whether the candidate draw returned fewer pairs than requested.
    pub pool_exhausted: bool,
    /// Reward-model epochs run after this round.
    pub reward_epochs: usize,
    /// Mean training accuracy of the last epoch, `None` without clear answers.
    pub reward_train_accuracy: Option<f64>,
    /// Accuracy of the ensemble mean on the held-out oracle pairs after this round.
    pub eval_accuracy: f64,
    /// Encoder training iterations after this round (CLARIFY only).
    pub encoder_iterations: usize,
    /// Wall time of selection, reward training, encoder training and the whole round, in
    /// seconds.
    pub select_seconds: f64,
    pub reward_seconds: f64,
    pub encoder_seconds: f64,
    pub seconds: f64,
    /// The round's queries with the teacher's answers, in the order asked. Empty in runs
    /// cached before this field existed.
    #[serde(default)]
    pub answers: Vec<LabelledPair>,
    /// Embedding-distance diagnostics of CLARIFY rounds with a rejection step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<RoundDiagnostics>,
}

impl RoundRecord {
    /// Returns the share of the round's queries answered clearly, or `None` without queries.
    pub fn clarity(&self) -> Option<f64> {
        (self.queries > 0).then(|| self.clear as f64 / self.queries as f64)
    }
}

/// The metrics of one finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMetrics {
    /// Share of the queries after the first round that the teacher answered clearly
    /// ("can't tell" counts as unclear), `None` when there is only one round.
    pub clarity_after_first: Option<f64>,
    /// The same share over all rounds, the first included.
    pub clarity_all: f64,
    /// Top-up queries summed over the rounds.
    pub shortfall: usize,
    /// Queries missing because a candidate draw ran short, summed over the rounds.
    pub missing: usize,
    /// Accuracy of the final reward model on the held-out oracle pairs.
    pub eval_accuracy: f64,
}

impl RunMetrics {
    fn from_rounds(rounds: &[RoundRecord]) -> Self {
        let share = |records: &[RoundRecord]| -> Option<f64> {
            let queries: usize = records.iter().map(|round| round.queries).sum();
            let clear: usize = records.iter().map(|round| round.clear).sum();
            (queries > 0).then(|| clear as f64 / queries as f64)
        };
        Self {
            clarity_after_first: rounds.get(1..).and_then(share),
            clarity_all: share(rounds).unwrap_or(f64::NAN),
            shortfall: rounds.iter().map(|round| round.top_ups).sum(),
            missing: rounds
                .iter()
                .map(|round| round.requested - round.queries)
                .sum(),
            eval_accuracy: rounds.last().map_or(f64::NAN, |round| round.eval_accuracy),
        }
    }
}

/// A finished run of one method with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    pub method: Method,
    pub seed: u64,
    /// Cache key: a hash of every setting that the run depends on and of the dataset file.
    pub key: String,
    pub rounds: Vec<RoundRecord>,
    pub metrics: RunMetrics,
    /// Wall time of the run in seconds, when it ran (a cached result keeps the original).
    pub seconds: f64,
}

/// Runs `method` with `seed` over the whole budget and calls `on_round` after each round.
///
/// `model_dir` receives the exported ONNX models that select the next round's queries.
pub fn run_method(
    context: &BenchContext,
    method: Method,
    seed: u64,
    key: String,
    model_dir: &Path,
    on_round: &mut dyn FnMut(&RoundRecord),
) -> Result<RunResult, BenchError> {
    let started = Instant::now();
    let round_error = |round: usize| {
        move |source: RoundError| BenchError::Round {
            method: method.as_str(),
            seed,
            round,
            source: Box::new(source),
        }
    };
    let mut state = RunState::new(context, method, seed, model_dir).map_err(round_error(0))?;

    let mut rounds = Vec::with_capacity(context.settings.round_count());
    for round in 0..context.settings.round_count() {
        let record = state.run_round(round).map_err(round_error(round))?;
        on_round(&record);
        rounds.push(record);
    }
    // The models are only needed between rounds.
    let _ = fs::remove_dir_all(model_dir);

    Ok(RunResult {
        method,
        seed,
        key,
        metrics: RunMetrics::from_rounds(&rounds),
        rounds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The models and answers of a run between rounds.
struct RunState<'c> {
    context: &'c BenchContext,
    method: Method,
    seed: u64,
    model_dir: &'c Path,
    reward: RewardModel,
    encoder: Option<ClarifyEncoder>,
    asked: AskedPairs,
    buffer: Vec<LabelledPair>,
}

impl<'c> RunState<'c> {
    fn new(
        context: &'c BenchContext,
        method: Method,
        seed: u64,
        model_dir: &'c Path,
    ) -> Result<Self, RoundError> {
        let dataset = &context.dataset;
        let reward_config = RewardModelConfig {
            seed,
            ..context.settings.reward.clone()
        };
        let reward = RewardModel::new(
            reward_config,
            dataset.observation_dim(),
            dataset.action_dim(),
        )?;
        let encoder = match method {
            Method::Clarify => Some(ClarifyEncoder::new(
                context.settings.encoder.clone(),
                dataset.observation_dim(),
                dataset.action_dim(),
                StateNormalization::from_dataset(dataset)?,
                seed,
            )?),
            Method::Mr | Method::Oprl => None,
        };
        fs::create_dir_all(model_dir).map_err(|source| RoundError::ModelFolder {
            path: model_dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            context,
            method,
            seed,
            model_dir,
            reward,
            encoder,
            asked: AskedPairs::new(),
            buffer: Vec::new(),
        })
    }

    fn run_round(&mut self, round: usize) -> Result<RoundRecord, RoundError> {
        let started = Instant::now();
        let settings = &self.context.settings;
        let requested = settings.round_queries(round);
        let selector = QuerySelector::new(
            settings.select_config(requested),
            self.context.dataset.episodes(),
        )?;

        let selection = self.select(&selector, round)?;
        let select_seconds = started.elapsed().as_secs_f64();
        let diagnostics = RoundDiagnostics::of(self.context, &selection);
        let (clear, cant_tell) = self.label(&selection);

        let reward_started = Instant::now();
        let (observations, actions, answers) = self.context.pair_arrays(&self.buffer);
        let report = self.reward.train(&PreferencePairs {
            observations: observations.view(),
            actions: actions.view(),
            answers: &answers,
        })?;
        let eval = &self.context.eval;
        let eval_accuracy = self.reward.accuracy(&PreferencePairs {
            observations: eval.observations.view(),
            actions: eval.actions.view(),
            answers: &eval.answers,
        })?;
        let reward_seconds = reward_started.elapsed().as_secs_f64();

        let encoder_started = Instant::now();
        let mut encoder_iterations = 0;
        if let Some(encoder) = &mut self.encoder {
            encoder_iterations = settings.encoder.iterations_for_round(round);
            encoder.train(
                &EncoderTrainingData {
                    dataset: &self.context.dataset,
                    buffer: &self.buffer,
                },
                encoder_iterations,
            )?;
        }
        let encoder_seconds = encoder_started.elapsed().as_secs_f64();

        Ok(RoundRecord {
            round,
            selector: selection.selector,
            requested,
            queries: selection.pairs.len(),
            clear,
            cant_tell,
            candidates: selection.candidate_count,
            accepted: selection.accepted_count,
            top_ups: selection.top_up_count,
            fallback: selection
                .fallback
                .map(|reason| reason.describe().to_string()),
            pool_exhausted: selection.pool_exhausted,
            reward_epochs: report.epochs,
            reward_train_accuracy: report.accuracy.is_finite().then_some(report.accuracy),
            eval_accuracy,
            encoder_iterations,
            select_seconds,
            reward_seconds,
            encoder_seconds,
            seconds: started.elapsed().as_secs_f64(),
            answers: self.buffer[self.buffer.len() - selection.pairs.len()..].to_vec(),
            diagnostics,
        })
    }

    /// Selects the round's queries through the ONNX models exported after the previous
    /// round, as a running node does.
    fn select(
        &mut self,
        selector: &QuerySelector,
        round: usize,
    ) -> Result<RoundSelection, RoundError> {
        let seed = round_seed(self.seed, round as u64);
        let kind = self.method.selector().for_round(round);
        let dataset = &self.context.dataset;
        let runtime = &self.context.runtime;
        let selection = match kind {
            SelectorKind::Random => select_round(
                selector,
                seed,
                &self.asked,
                &self.buffer,
                RoundModels::random(),
            )?,
            SelectorKind::Disagreement => {
                let path = self.export_reward()?;
                let mut scorer = OnnxRewardScorer::load(runtime, &path, dataset)?;
                select_round(
                    selector,
                    seed,
                    &self.asked,
                    &self.buffer,
                    RoundModels::disagreement(&mut scorer),
                )?
            }
            SelectorKind::Clarify => {
                let reward_path = self.export_reward()?;
                let encoder_path = self.export_encoder()?;
                let mut scorer = OnnxRewardScorer::load(runtime, &reward_path, dataset)?;
                let mut embedder = OnnxEncoder::load(
                    runtime,
                    &encoder_path,
                    dataset,
                    &self.context.settings.encoder,
                    seed,
                )?;
                select_round(
                    selector,
                    seed,
                    &self.asked,
                    &self.buffer,
                    RoundModels::Clarify {
                        embedder: &mut embedder,
                        scorer: &mut scorer,
                    },
                )?
            }
        };
        Ok(selection)
    }

    /// Asks the teacher about every selected pair, adds the answers to the buffer and
    /// returns the clear and can't-tell counts.
    fn label(&mut self, selection: &RoundSelection) -> (usize, usize) {
        let mut clear = 0;
        let mut cant_tell = 0;
        for selected in &selection.pairs {
            let answer = self.context.teacher_answer(&selected.pair);
            match answer {
                Answer::Left | Answer::Right => clear += 1,
                Answer::CantTell | Answer::Skip => cant_tell += 1,
            }
            self.asked.insert(selected.pair);
            self.buffer.push(LabelledPair {
                pair: selected.pair,
                answer,
            });
        }
        (clear, cant_tell)
    }

    fn export_reward(&self) -> Result<std::path::PathBuf, RoundError> {
        let path = self.model_dir.join("reward.onnx");
        write_model(&self.reward.to_onnx(&ModelInfo::default())?, &path)?;
        Ok(path)
    }

    fn export_encoder(&self) -> Result<std::path::PathBuf, RoundError> {
        let encoder = self
            .encoder
            .as_ref()
            .expect("CLARIFY runs create an encoder");
        let path = self.model_dir.join("encoder.onnx");
        write_model(&encoder.to_onnx(&ModelInfo::default())?, &path)?;
        Ok(path)
    }
}

/// Copies the steps of both segments of every pair into `[pairs, 2, H, width]` arrays.
pub(super) fn gather_pairs(
    observations: ndarray::ArrayView2<'_, f32>,
    actions: ndarray::ArrayView2<'_, f32>,
    episodes: &[crate::dataset::Episode],
    pairs: &[SegmentPair],
) -> (Array4<f32>, Array4<f32>) {
    let steps = pairs.first().map_or(0, |pair| pair.left.length);
    let mut observation_batch = Array4::zeros((pairs.len(), 2, steps, observations.ncols()));
    let mut action_batch = Array4::zeros((pairs.len(), 2, steps, actions.ncols()));
    for (index, pair) in pairs.iter().enumerate() {
        for (side, segment) in [pair.left, pair.right].into_iter().enumerate() {
            let start = episodes[segment.episode].start + segment.start;
            let rows = (start..start + segment.length).into();
            observation_batch
                .index_axis_mut(Axis(0), index)
                .index_axis_mut(Axis(0), side)
                .assign(&observations.slice_axis(Axis(0), rows));
            action_batch
                .index_axis_mut(Axis(0), index)
                .index_axis_mut(Axis(0), side)
                .assign(&actions.slice_axis(Axis(0), rows));
        }
    }
    (observation_batch, action_batch)
}

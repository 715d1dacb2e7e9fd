//! Summaries over seeds and the Markdown table of the clarity benchmark.

use std::fmt::Write;

use serde::Serialize;

use super::context::DatasetSummary;
use super::run::RunResult;
use super::settings::{ClaritySettings, Method};
use crate::learn::encoder::EncoderPreset;

/// Mean and population standard deviation (divided by the count) of one metric over seeds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    /// Seeds with a value.
    pub count: usize,
}

impl Spread {
    /// Returns the spread of the finite `values`, or `None` when there is none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let values: Vec<f64> = values
            .into_iter()
            .filter(|value| value.is_finite())
            .collect();
        if values.is_empty() {
            return None;
        }
        let count = values.len() as f64;
        let mean = values.iter().sum::<f64>() / count;
        let variance = values
            .iter()
            .map(|value| (value - mean).powi(2))
            .sum::<f64>()
            / count;
        Some(Self {
            mean,
            std: variance.sqrt(),
            count: values.len(),
        })
    }
}

/// One method's metrics over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MethodSummary {
    pub method: Method,
    pub seeds: Vec<u64>,
    /// Share of the queries after the first round answered clearly.
    pub clarity_after_first: Option<Spread>,
    /// Share of the queries after the first round answered "can't tell".
    pub unclear_after_first: Option<Spread>,
    /// Share of all queries answered clearly, the first round included.
    pub clarity_all: Option<Spread>,
    /// Per-round share of clear answers; entry r covers round r (0-based).
    pub clarity_per_round: Vec<Option<Spread>>,
    /// Top-up queries per run.
    pub shortfall: Option<Spread>,
    /// Accuracy of the final reward model on the held-out oracle pairs.
    pub eval_accuracy: Option<Spread>,
    /// Wall time per run in seconds.
    pub seconds: Option<Spread>,
}

impl MethodSummary {
    /// Summarizes the runs of `method` in `runs`.
    pub fn of(method: Method, runs: &[RunResult]) -> Self {
        let runs: Vec<&RunResult> = runs.iter().filter(|run| run.method == method).collect();
        let metric = |value: fn(&RunResult) -> Option<f64>| {
            Spread::of(runs.iter().filter_map(|run| value(run)))
        };
        let round_count = runs.iter().map(|run| run.rounds.len()).max().unwrap_or(0);
        let clarity_per_round = (0..round_count)
            .map(|round| {
                Spread::of(
                    runs.iter()
                        .filter_map(|run| run.rounds.get(round)?.clarity()),
                )
            })
            .collect();
        Self {
            method,
            seeds: runs.iter().map(|run| run.seed).collect(),
            clarity_after_first: metric(|run| run.metrics.clarity_after_first),
            unclear_after_first: metric(|run| run.metrics.clarity_after_first.map(|c| 1.0 - c)),
            clarity_all: metric(|run| Some(run.metrics.clarity_all)),
            clarity_per_round,
            shortfall: metric(|run| Some(run.metrics.shortfall as f64)),
            eval_accuracy: metric(|run| Some(run.metrics.eval_accuracy)),
            seconds: metric(|run| Some(run.seconds)),
        }
    }
}

/// The results of a clarity benchmark, as written to the JSON output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClarityReport {
    pub settings: ClaritySettings,
    pub dataset: DatasetSummary,
    /// Per method, in the order of `settings.methods`.
    pub summary: Vec<MethodSummary>,
    /// Every run, seed by seed.
    pub runs: Vec<RunResult>,
}

impl ClarityReport {
    /// Builds the report and its per-method summaries.
    pub fn new(settings: ClaritySettings, dataset: DatasetSummary, runs: Vec<RunResult>) -> Self {
        let summary = settings
            .methods
            .iter()
            .map(|&method| MethodSummary::of(method, &runs))
            .collect();
        Self {
            settings,
            dataset,
            summary,
            runs,
        }
    }

    /// Formats the dataset line, the settings line and a Markdown table with one row per
    /// method: mean ± std over seeds of each metric, shares in percent.
    pub fn to_markdown(&self) -> String {
        let dataset = &self.dataset;
        let fingerprint = &dataset.fingerprint;
        let settings = &self.settings;
        let clear_share = fingerprint
            .clear_share
            .0
            .iter()
            .map(|(epsilon, share)| format!("{:.1} % at ε = {epsilon}", 100.0 * share))
            .collect::<Vec<_>>()
            .join(", ");

        let mut text = String::new();
        let _ = writeln!(
            text,
            "Dataset {} (SHA-256 {}): {} episodes, {} steps, mean step reward {:.4}, \
             {} segments of {} steps, random pairs answered clearly: {clear_share}.",
            dataset.path,
            dataset.sha256,
            fingerprint.episodes,
            fingerprint.steps,
            fingerprint.mean_step_reward,
            fingerprint.segments,
            fingerprint.segment_length,
        );
        let _ = writeln!(
            text,
            "Skip teacher ε = {} (threshold {:.3}), budget {}, {} queries per round, pool \
             factor {}, seeds {:?}, encoder preset {}, {} held-out oracle pairs. Values are \
             mean ± population std over seeds.",
            settings.epsilon,
            dataset.teacher_threshold,
            settings.budget,
            settings.queries_per_round,
            settings.pool_factor,
            settings.seeds,
            preset_name(settings.encoder_preset),
            dataset.eval_pairs,
        );
        text.push('\n');
        text.push_str(
            "| method | unclear after round 1 (%) | clear after round 1 (%) | clear incl. round 1 (%) | top-up shortfall | reward accuracy (%) | seeds |\n",
        );
        text.push_str("|---|---|---|---|---|---|---|\n");
        for summary in &self.summary {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {} | {} | {} |",
                summary.method.label(),
                percent(summary.unclear_after_first),
                percent(summary.clarity_after_first),
                percent(summary.clarity_all),
                plain(summary.shortfall),
                percent(summary.eval_accuracy),
                summary.seeds.len(),
            );
        }
        text.push('\n');
        text.push_str(&self.per_round_table());
        text
    }

    /// Formats the share of clear answers per round and method, in percent.
    fn per_round_table(&self) -> String {
        let rounds = self.settings.round_count();
        let mut text = String::from("| clear answers per round (%) |");
        for round in 1..=rounds {
            let _ = write!(text, " {round} |");
        }
        text.push_str("\n|---|");
        text.push_str(&"---|".repeat(rounds));
        text.push('\n');
        for summary in &self.summary {
            let _ = write!(text, "| {} |", summary.method.label());
            for round in 0..rounds {
                let spread = summary.clarity_per_round.get(round).copied().flatten();
                let _ = write!(text, " {} |", percent(spread));
            }
            text.push('\n');
        }
        text
    }
}

fn preset_name(preset: EncoderPreset) -> &'static str {
    match preset {
        EncoderPreset::Cpu => "cpu",
        EncoderPreset::Paper => "paper",
    }
}

fn percent(spread: Option<Spread>) -> String {
    match spread {
        Some(spread) => format!("{:.1} ± {:.1}", 100.0 * spread.mean, 100.0 * spread.std),
        None => "n/a".to_owned(),
    }
}

fn plain(spread: Option<Spread>) -> String {
    match spread {
        Some(spread) => format!("{:.1} ± {:.1}", spread.mean, spread.std),
        None => "n/a".to_owned(),
    }
}

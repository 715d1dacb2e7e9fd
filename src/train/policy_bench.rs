//! The policy benchmark: the success rate of policies trained on the answers of the
//! clarity benchmark's runs.
//!
//! For each method (CLARIFY, MR, OPRL) and seed, the answers that the clarity benchmark's
//! run collected are replayed into a new reward model round by round, as the run trained
//! it; the dataset is relabelled with the ensemble's mean reward and an IQL policy is
//! trained on it. The oracle trains IQL on the dataset's true rewards. Each policy runs in
//! the simulator (`clarify-sim evaluate`) for a fixed set of seeded episodes, and the
//! success rate counts episodes with success at any step.
//!
//! Every finished policy run is cached as JSON under a key that hashes all settings it
//! depends on, so an interrupted benchmark resumes with the runs it has not finished.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::TrainError;
use super::stages::{relabel, train_policy, train_reward};
use super::{Progress, Reporter};
use crate::bench::{BenchContext, Method, RunCache, RunResult, run_key, run_method};
use crate::learn::RewardModelConfig;
use crate::learn::iql::IqlConfig;
use crate::onnx::{ModelInfo, write_model};
use crate::select::LabelledPair;

/// Version of the cached policy-run layout; raising it makes every cached run stale.
const CACHE_FORMAT: u32 = 1;

/// Default number of evaluation episodes per policy.
pub const DEFAULT_EVAL_EPISODES: usize = 50;
/// Seed of the first evaluation episode; episode i uses this seed + i.
pub const DEFAULT_EVAL_SEED: u64 = 1_000_000;

/// A row of the policy benchmark: a query method, or the oracle that learns from the
/// true rewards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    Method(Method),
    Oracle,
}

impl PolicySource {
    /// Returns the name in the report table.
    pub fn label(self) -> &'static str {
        match self {
            PolicySource::Method(method) => method.label(),
            PolicySource::Oracle => "Oracle (true rewards)",
        }
    }
}

/// Settings of the policy benchmark beyond the clarity benchmark's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicySettings {
    /// Meta-World task the dataset comes from.
    pub task: String,
    /// IQL settings; the seed is replaced by the run seed.
    pub iql: IqlConfig,
    /// Evaluation episodes per policy.
    pub eval_episodes: usize,
    /// Seed of the first evaluation episode.
    pub eval_seed: u64,
    /// Python interpreter with `clarify_sim` importable.
    #[serde(skip)]
    pub python: PathBuf,
    /// Folder of the `clarify_sim` package, added to `PYTHONPATH`.
    #[serde(skip)]
    pub sim_dir: PathBuf,
    /// Whether to include the oracle row.
    pub oracle: bool,
}

/// A finished policy run: training and evaluation of one method with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRun {
    pub source: PolicySource,
    pub seed: u64,
    pub key: String,
    /// Share of evaluation episodes with success at any step.
    pub success_rate_any: f64,
    /// Share of evaluation episodes with success at the last step.
    pub success_rate_final: f64,
    pub return_mean: f64,
    /// Answers used (0 for the oracle).
    pub answers: usize,
    /// Agreement of the reward model with the clear answers, `None` for the oracle.
    pub reward_buffer_accuracy: Option<f64>,
    pub reward_seconds: f64,
    pub policy_seconds: f64,
    pub eval_seconds: f64,
}

/// Events of the policy benchmark, for progress displays.
pub enum PolicyBenchEvent<'a> {
    /// A clarity run is missing from the cache and runs now.
    ClarityRun { method: Method, seed: u64 },
    /// A policy run starts.
    Started { source: PolicySource, seed: u64 },
    /// A cached policy run is reused.
    Cached { source: PolicySource, seed: u64 },
    /// Training progress of the running policy run.
    Training(&'a Progress),
    /// The policy runs in the simulator.
    Evaluating { source: PolicySource, seed: u64 },
    /// A policy run finished.
    Finished(&'a PolicyRun),
}

#[derive(Serialize)]
struct PolicyKey<'a> {
    format: u32,
    crate_version: &'a str,
    source: PolicySource,
    /// The clarity run whose answers train the reward model; `None` for the oracle.
    clarity_run: Option<&'a str>,
    dataset_sha256: &'a str,
    seed: u64,
    reward: &'a RewardModelConfig,
    queries_per_round: usize,
    settings: &'a PolicySettings,
}

fn policy_key(key: &PolicyKey<'_>) -> String {
    let json = serde_json::to_vec(key).expect("the key serialises to JSON");
    Sha256::digest(&json)[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Runs the policy benchmark. Clarity runs missing from `clarity_cache` run first and are
/// added to it; policy runs found in `policy_dir` are reused.
pub fn run_policy_bench(
    context: &BenchContext,
    clarity_cache: &RunCache,
    settings: &PolicySettings,
    policy_dir: &Path,
    events: &mut dyn FnMut(PolicyBenchEvent<'_>),
) -> Result<PolicyReport, TrainError> {
    let clarity = &context.settings;
    let dataset_sha256 = context.summary.sha256.as_str();
    let mut sources: Vec<PolicySource> = clarity
        .methods
        .iter()
        .map(|&method| PolicySource::Method(method))
        .collect();
    if settings.oracle {
        sources.push(PolicySource::Oracle);
    }
    let mut runs = Vec::new();
    for &seed in &clarity.seeds {
        for &source in &sources {
            let clarity_run = match source {
                PolicySource::Method(method) => Some(clarity_result(
                    context,
                    clarity_cache,
                    method,
                    seed,
                    events,
                )?),
                PolicySource::Oracle => None,
            };
            let reward = RewardModelConfig {
                seed,
                ..clarity.reward.clone()
            };
            let key = policy_key(&PolicyKey {
                format: CACHE_FORMAT,
                crate_version: env!("CARGO_PKG_VERSION"),
                source,
                clarity_run: clarity_run.as_ref().map(|run| run.key.as_str()),
                dataset_sha256,
                seed,
                reward: &reward,
                queries_per_round: clarity.queries_per_round,
                settings,
            });
            let result_path = policy_dir.join("runs").join(format!("{key}.json"));
            if let Some(run) = load_cached(&result_path, &key) {
                events(PolicyBenchEvent::Cached { source, seed });
                runs.push(run);
                continue;
            }
            events(PolicyBenchEvent::Started { source, seed });
            let run = policy_run(
                context,
                settings,
                source,
                seed,
                &reward,
                clarity_run.as_ref(),
                &key,
                &policy_dir.join("policies").join(&key),
                events,
            )?;
            store_cached(&result_path, &run)?;
            events(PolicyBenchEvent::Finished(&run));
            runs.push(run);
        }
    }
    Ok(PolicyReport {
        task: settings.task.clone(),
        dataset_path: context.summary.path.clone(),
        dataset_success_rate: dataset_success_rate(context),
        eval_episodes: settings.eval_episodes,
        policy_steps: settings.iql.gradient_steps,
        runs,
    })
}

/// Returns the cached clarity run of `method` with `seed`, running it when missing.
fn clarity_result(
    context: &BenchContext,
    cache: &RunCache,
    method: Method,
    seed: u64,
    events: &mut dyn FnMut(PolicyBenchEvent<'_>),
) -> Result<RunResult, TrainError> {
    let key = run_key(&context.settings, &context.summary.sha256, method, seed);
    if let Some(result) = cache.load(&key) {
        let queries: usize = result.rounds.iter().map(|round| round.queries).sum();
        if run_answers(&result).len() == queries {
            return Ok(result);
        }
        tracing::info!(%method, seed, key, "the cached clarity run has no answers; running it again");
    }
    events(PolicyBenchEvent::ClarityRun { method, seed });
    let result = run_method(
        context,
        method,
        seed,
        key.clone(),
        &cache.model_dir(&key),
        &mut |_| {},
    )
    .map_err(|error| TrainError::Evaluation(format!("clarity run failed: {error}")))?;
    cache.store(&result).map_err(|error| {
        TrainError::Evaluation(format!("cannot cache the clarity run: {error}"))
    })?;
    Ok(result)
}

/// Returns the answers of a clarity run in the order they were given.
fn run_answers(run: &RunResult) -> Vec<LabelledPair> {
    run.rounds
        .iter()
        .flat_map(|round| round.answers.iter().copied())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn policy_run(
    context: &BenchContext,
    settings: &PolicySettings,
    source: PolicySource,
    seed: u64,
    reward: &RewardModelConfig,
    clarity_run: Option<&RunResult>,
    key: &str,
    folder: &Path,
    events: &mut dyn FnMut(PolicyBenchEvent<'_>),
) -> Result<PolicyRun, TrainError> {
    let dataset = &context.dataset;
    let mut sink = |progress: &Progress| events(PolicyBenchEvent::Training(progress));
    let mut reporter = Reporter::new(&mut sink);
    let (rewards, answers, reward_buffer_accuracy, reward_seconds) = match clarity_run {
        Some(run) => {
            let buffer = run_answers(run);
            let outcome = train_reward(
                dataset,
                &buffer,
                reward,
                context.settings.queries_per_round,
                &mut reporter,
            )?;
            (
                relabel(&outcome.model, dataset)?,
                buffer.len(),
                Some(outcome.buffer_accuracy),
                outcome.seconds,
            )
        }
        None => (dataset.rewards().to_owned(), 0, None, 0.0),
    };
    let iql = IqlConfig {
        seed,
        ..settings.iql.clone()
    };
    let progress_interval = (iql.gradient_steps / 20).max(1);
    // An interrupted run resumes its policy from the newest checkpoint; the reward model
    // trains again first, which the seed makes repeatable.
    let checkpoints = folder.join("iql-checkpoints");
    let policy = train_policy(
        dataset,
        rewards.view(),
        &iql,
        progress_interval,
        Some(&checkpoints),
        &mut reporter,
    )?;

    fs::create_dir_all(folder).map_err(|source| TrainError::Io {
        operation: "create",
        path: folder.to_owned(),
        source,
    })?;
    let model_path = folder.join("policy.onnx");
    let info = ModelInfo {
        doc_string: Some(format!("policy bench run {key}")),
        ..ModelInfo::default()
    };
    write_model(&policy.trainer.policy_to_onnx(&info)?, &model_path)?;
    write_policy_manifest(folder, &policy.trainer, dataset)?;
    fs::remove_dir_all(&checkpoints).map_err(|source| TrainError::Io {
        operation: "remove",
        path: checkpoints.clone(),
        source,
    })?;

    events(PolicyBenchEvent::Evaluating { source, seed });
    let started = Instant::now();
    let evaluation = evaluate(settings, &model_path)?;
    Ok(PolicyRun {
        source,
        seed,
        key: key.to_owned(),
        success_rate_any: number(&evaluation, "success_rate_any")?,
        success_rate_final: number(&evaluation, "success_rate_final")?,
        return_mean: number(&evaluation, "return_mean")?,
        answers,
        reward_buffer_accuracy,
        reward_seconds,
        policy_seconds: policy.report.seconds,
        eval_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes the manifest fields that the evaluator reads (format version 1).
fn write_policy_manifest(
    folder: &Path,
    trainer: &crate::learn::iql::IqlTrainer,
    dataset: &crate::dataset::Dataset,
) -> Result<(), TrainError> {
    let (observation_dim, action_dim) = (dataset.observation_dim(), dataset.action_dim());
    let normalization = trainer.normalization();
    let manifest = serde_json::json!({
        "format_version": 1,
        "observation_dim": observation_dim,
        "action_dim": action_dim,
        "observation_normalization": {
            "mean": normalization.mean,
            "std": normalization.std,
            "in_graph": true,
        },
        "action_bounds": {"low": vec![-1.0; action_dim], "high": vec![1.0; action_dim]},
        "inputs": [{"name": crate::learn::iql::POLICY_OBSERVATIONS_INPUT, "shape": ["batch", observation_dim]}],
        "outputs": [{"name": crate::learn::iql::POLICY_ACTIONS_OUTPUT, "shape": ["batch", action_dim]}],
    });
    let path = folder.join("manifest.json");
    fs::write(&path, manifest.to_string()).map_err(|source| TrainError::Io {
        operation: "write",
        path,
        source,
    })
}

/// Runs `python -m clarify_sim evaluate` and returns its JSON result.
fn evaluate(settings: &PolicySettings, model: &Path) -> Result<serde_json::Value, TrainError> {
    let output = Command::new(&settings.python)
        .args(["-m", "clarify_sim", "--log-level", "WARNING", "evaluate"])
        .arg(model)
        .args(["--task", &settings.task, "--json"])
        .args(["--episodes", &settings.eval_episodes.to_string()])
        .args(["--seed", &settings.eval_seed.to_string()])
        .env("PYTHONPATH", &settings.sim_dir)
        .output()
        .map_err(|source| TrainError::Io {
            operation: "start the evaluator with",
            path: settings.python.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(TrainError::Evaluation(format!(
            "clarify-sim evaluate {} exited with {}: {}",
            model.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| {
        TrainError::Evaluation(format!("the evaluator printed no JSON result: {error}"))
    })
}

fn number(value: &serde_json::Value, field: &str) -> Result<f64, TrainError> {
    value[field].as_f64().ok_or_else(|| {
        TrainError::Evaluation(format!("the evaluator's result has no number {field}"))
    })
}

fn load_cached(path: &Path, key: &str) -> Option<PolicyRun> {
    let text = fs::read_to_string(path).ok()?;
    match serde_json::from_str::<PolicyRun>(&text) {
        Ok(run) if run.key == key => Some(run),
        _ => {
            tracing::warn!(path = %path.display(), "ignoring an invalid cached policy run");
            None
        }
    }
}

fn store_cached(path: &Path, run: &PolicyRun) -> Result<(), TrainError> {
    let io_error = |operation, path: &Path| {
        let path = path.to_owned();
        move |source| TrainError::Io {
            operation,
            path,
            source,
        }
    };
    let folder = path.parent().expect("cache files have a folder");
    fs::create_dir_all(folder).map_err(io_error("create", folder))?;
    let temporary = path.with_extension("json.partial");
    let json = serde_json::to_string_pretty(run).expect("a run serialises to JSON");
    fs::write(&temporary, json).map_err(io_error("write", &temporary))?;
    fs::rename(&temporary, path).map_err(io_error("rename", &temporary))
}

/// Share of the dataset's episodes with success at any step, or `None` without success
/// flags.
fn dataset_success_rate(context: &BenchContext) -> Option<f64> {
    let success = context.dataset.success()?;
    let episodes = context.dataset.episodes();
    let successful = episodes
        .iter()
        .filter(|episode| (episode.start..episode.end_step()).any(|step| success[step]))
        .count();
    Some(successful as f64 / episodes.len() as f64)
}

/// The results of a policy benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    pub task: String,
    pub dataset_path: String,
    pub dataset_success_rate: Option<f64>,
    pub eval_episodes: usize,
    pub policy_steps: usize,
    pub runs: Vec<PolicyRun>,
}

impl PolicyReport {
    /// Formats the report as Markdown: success rate (%) mean ± std over seeds per method,
    /// the per-seed difference CLARIFY − MR, and the dataset's own success rate.
    pub fn to_markdown(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Policy success rate on {} ({} evaluation episodes, success at any step, {} IQL steps)\n",
            self.task, self.eval_episodes, self.policy_steps
        );
        let _ = writeln!(text, "| method | success % (mean ± std) | per seed |");
        let _ = writeln!(text, "|---|---|---|");
        let mut sources: Vec<PolicySource> = self.runs.iter().map(|run| run.source).collect();
        sources.sort();
        sources.dedup();
        for source in &sources {
            let runs: Vec<&PolicyRun> = self
                .runs
                .iter()
                .filter(|run| run.source == *source)
                .collect();
            let values: Vec<f64> = runs
                .iter()
                .map(|run| 100.0 * run.success_rate_any)
                .collect();
            let (mean, std) = mean_std(&values);
            let per_seed: Vec<String> = runs
                .iter()
                .map(|run| format!("{}: {:.1}", run.seed, 100.0 * run.success_rate_any))
                .collect();
            let _ = writeln!(
                text,
                "| {} | {mean:.1} ± {std:.1} | {} |",
                source.label(),
                per_seed.join(", ")
            );
        }
        let by_seed = |method: Method, seed: u64| {
            self.runs
                .iter()
                .find(|run| run.source == PolicySource::Method(method) && run.seed == seed)
                .map(|run| 100.0 * run.success_rate_any)
        };
        let mut seeds: Vec<u64> = self.runs.iter().map(|run| run.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let differences: Vec<String> = seeds
            .iter()
            .filter_map(|&seed| {
                let difference = by_seed(Method::Clarify, seed)? - by_seed(Method::Mr, seed)?;
                Some(format!("seed {seed}: {difference:+.1}"))
            })
            .collect();
        if !differences.is_empty() {
            let _ = writeln!(
                text,
                "\nCLARIFY − MR per seed (percentage points): {}",
                differences.join(", ")
            );
        }
        match self.dataset_success_rate {
            Some(rate) => {
                let _ = writeln!(
                    text,
                    "\nDataset episodes with success at any step: {:.1} %",
                    100.0 * rate
                );
            }
            None => {
                let _ = writeln!(text, "\nThe dataset has no success flags.");
            }
        }
        text
    }
}

/// Returns the mean and the sample standard deviation (0 for one value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let variance = values
        .iter()
        .map(|value| (value - mean).powi(2))
        .sum::<f64>()
        / (values.len() - 1) as f64;
    (mean, variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_uses_the_sample_deviation() {
        let (mean, std) = mean_std(&[10.0, 20.0, 30.0]);
        assert_eq!(mean, 20.0);
        assert!((std - 10.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    }
}

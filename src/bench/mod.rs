//! Benchmarks of query selection on offline datasets with a simulated teacher.
//!
//! The clarity benchmark runs the iterative schedule of CLARIFY (Mu et al., ICML 2025) for
//! CLARIFY, MR (random queries) and OPRL (disagreement queries) on one dataset, with the
//! same budget, queries per round and seeds. Every method starts with the same random
//! round, so with one seed all methods ask the same first queries and get the same answers.
//! Each round selects M queries, the ε-skip teacher answers them, the reward model
//! continues training on all answers so far (up to its epoch limit, with early stopping),
//! and CLARIFY's encoder continues training. The next round selects through the ONNX
//! exports of these models, as a running node does.
//!
//! The benchmark reports per method the query clarity ratio (the share of queries the
//! teacher answers clearly; "can't tell" counts as unclear) after the first round and
//! including it, the top-up shortfall of CLARIFY's rejection sampling, and the final reward
//! model's accuracy on held-out oracle pairs.

mod cache;
mod context;
mod diagnostics;
mod error;
mod report;
mod run;
mod settings;

pub use cache::{RunCache, run_key};
pub use context::{BenchContext, DatasetSummary, EvalPairs};
pub use diagnostics::{RoundDiagnostics, roc_auc};
pub use error::{BenchError, RoundError};
pub use report::{ClarityReport, MethodSummary, Spread};
pub use run::{RoundRecord, RunMetrics, RunResult, run_method};
pub use settings::{
    ClaritySettings, DEFAULT_BUDGET, DEFAULT_EPSILON, DEFAULT_EVAL_PAIRS, DEFAULT_EVAL_SEED, Method,
};

/// A step of the benchmark, for progress displays.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A run starts; it has `rounds` rounds.
    RunStarted {
        method: Method,
        seed: u64,
        rounds: usize,
    },
    /// A run was found in the cache and is not repeated.
    RunCached {
        method: Method,
        seed: u64,
        rounds: usize,
    },
    /// A round of a running run finished.
    RoundFinished {
        method: Method,
        seed: u64,
        record: &'a RoundRecord,
    },
}

/// Runs every method with every seed, seed by seed, and returns the report. Runs found in
/// `cache` are not repeated, and every finished run is added to it.
pub fn run_clarity(
    context: &BenchContext,
    cache: &RunCache,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ClarityReport, BenchError> {
    let settings = &context.settings;
    let rounds = settings.round_count();
    let mut runs = Vec::with_capacity(settings.seeds.len() * settings.methods.len());
    for &seed in &settings.seeds {
        for &method in &settings.methods {
            let key = run_key(settings, &context.summary.sha256, method, seed);
            if let Some(result) = cache.load(&key) {
                tracing::info!(%method, seed, key, "reusing a cached run");
                progress(Progress::RunCached {
                    method,
                    seed,
                    rounds,
                });
                runs.push(result);
                continue;
            }

            progress(Progress::RunStarted {
                method,
                seed,
                rounds,
            });
            let result = run_method(
                context,
                method,
                seed,
                key.clone(),
                &cache.model_dir(&key),
                &mut |record| {
                    progress(Progress::RoundFinished {
                        method,
                        seed,
                        record,
                    })
                },
            )?;
            cache.store(&result)?;
            tracing::info!(
                %method,
                seed,
                seconds = result.seconds,
                clarity_after_first = result.metrics.clarity_after_first,
                eval_accuracy = result.metrics.eval_accuracy,
                "finished a run"
            );
            runs.push(result);
        }
    }
    Ok(ClarityReport::new(
        settings.clone(),
        context.summary.clone(),
        runs,
    ))
}

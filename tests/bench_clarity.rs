//! The clarity benchmark on a tiny dataset: the shared first round, the per-round records,
//! resuming from the run cache, and the `clarify bench clarity` command.

mod common;
mod onnx_common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use clarify::bench::{self, BenchContext, ClaritySettings, Method, Progress, RunCache, RunResult};
use clarify::learn::RewardModelConfig;
use clarify::learn::encoder::{EncoderConfig, EncoderPreset};
use common::NpzFixture;
use ndarray::{Array2, Axis};
use onnx_common::{Uniform, require_onnx_runtime_library, temp_dir};

const EPISODES: usize = 8;
const EPISODE_LENGTH: usize = 30;

/// Writes a dataset of eight 30-step episodes with random states and actions, and rewards
/// that follow the first state feature, so that some segment pairs are clear and some not.
fn write_dataset(name: &str) -> Result<PathBuf> {
    let steps = EPISODES * EPISODE_LENGTH;
    let mut rng = Uniform::new(40);
    let observations = Array2::from_shape_vec((steps, 3), rng.vector(steps * 3, -1.0, 1.0))?;
    let actions = Array2::from_shape_vec((steps, 2), rng.vector(steps * 2, -1.0, 1.0))?;
    let rewards: Vec<f32> = observations
        .axis_iter(Axis(0))
        .map(|row| 1.0 + row[0])
        .collect();
    let mut fixture = NpzFixture::valid(&[EPISODE_LENGTH; EPISODES], &rewards);
    fixture.set("observations", observations.clone());
    fixture.set("next_observations", observations);
    fixture.set("actions", actions);
    fixture.write(name)
}

/// Settings small enough for CI: 3 rounds of 4 queries, small networks, short schedules.
fn tiny_settings() -> ClaritySettings {
    let encoder = EncoderConfig {
        hidden_size: 8,
        layers: 1,
        heads: 1,
        z_dim: 4,
        mlp_ratio: 2,
        context_length: 5,
        max_timestep: EPISODE_LENGTH,
        warmup_iterations: 1,
        first_round_iterations: 3,
        later_round_iterations: 2,
        batch_size: 8,
        quadrilateral_partners: 3,
        ..EncoderConfig::preset(EncoderPreset::Cpu)
    };
    ClaritySettings {
        epsilon: 0.5,
        budget: 10,
        queries_per_round: 4,
        pool_factor: 3,
        segment_length: 5,
        seeds: vec![0, 1],
        methods: Method::ALL.to_vec(),
        encoder_preset: EncoderPreset::Cpu,
        encoder,
        reward: RewardModelConfig {
            hidden_sizes: vec![16, 16],
            max_epochs: 5,
            batch_size: 8,
            ..RewardModelConfig::default()
        },
        eval_pairs: 60,
        eval_seed: 3,
    }
}

fn run_of(runs: &[RunResult], method: Method, seed: u64) -> &RunResult {
    runs.iter()
        .find(|run| run.method == method && run.seed == seed)
        .unwrap_or_else(|| panic!("no run of {method} with seed {seed}"))
}

#[test]
fn clarity_bench_runs_and_resumes_from_cache() -> Result<()> {
    require_onnx_runtime_library();
    let path = write_dataset("bench-clarity-library.npz")?;
    let cache = RunCache::new(temp_dir("bench-clarity-library"));
    let context = BenchContext::load(&path, tiny_settings(), 1)?;

    let mut started = 0;
    let mut rounds_finished = 0;
    let first = bench::run_clarity(&context, &cache, &mut |event| match event {
        Progress::RunStarted { .. } => started += 1,
        Progress::RoundFinished { .. } => rounds_finished += 1,
        Progress::RunCached { .. } => panic!("the cache folder was empty"),
    })?;

    assert_eq!(started, 6);
    assert_eq!(rounds_finished, 6 * 3);
    assert_eq!(first.runs.len(), 6);
    for run in &first.runs {
        let requested: Vec<usize> = run.rounds.iter().map(|round| round.requested).collect();
        assert_eq!(requested, [4, 4, 2], "{} seed {}", run.method, run.seed);
        for round in &run.rounds {
            assert_eq!(
                round.queries, round.requested,
                "{} round {}",
                run.method, round.round
            );
            assert_eq!(round.clear + round.cant_tell, round.queries);
            assert!(round.eval_accuracy.is_finite());
            // Diagnostics exactly where rejection sampling ran.
            assert_eq!(
                round.diagnostics.is_some(),
                round.accepted.is_some(),
                "{} round {}",
                run.method,
                round.round
            );
            if let Some(diagnostics) = &round.diagnostics {
                assert!((0.0..=1.0).contains(&diagnostics.candidate_clear));
                assert!((0.0..=1.0).contains(&diagnostics.mean_acceptance));
                for auc in [diagnostics.reference_auc, diagnostics.candidate_auc]
                    .into_iter()
                    .flatten()
                {
                    assert!((0.0..=1.0).contains(&auc), "{auc}");
                }
            }
        }
        let expected_selector = run.method.selector();
        assert_eq!(
            run.rounds[0].selector,
            clarify::select::SelectorKind::Random
        );
        assert_eq!(run.rounds[1].selector, expected_selector);
    }

    // All methods share the first round: same answers, so the same clear count.
    for seed in [0, 1] {
        let mr = &run_of(&first.runs, Method::Mr, seed).rounds[0];
        for method in [Method::Clarify, Method::Oprl] {
            let other = &run_of(&first.runs, method, seed).rounds[0];
            assert_eq!(other.clear, mr.clear, "{method} seed {seed}");
            assert_eq!(
                other.eval_accuracy, mr.eval_accuracy,
                "{method} seed {seed}"
            );
        }
    }
    let clarify_run = run_of(&first.runs, Method::Clarify, 0);
    assert_eq!(clarify_run.rounds[0].encoder_iterations, 3);
    assert_eq!(clarify_run.rounds[1].encoder_iterations, 2);
    assert_eq!(
        run_of(&first.runs, Method::Mr, 0).rounds[0].encoder_iterations,
        0
    );

    // The clarity metrics follow from the round records.
    let run = run_of(&first.runs, Method::Oprl, 1);
    let clear_after: usize = run.rounds[1..].iter().map(|round| round.clear).sum();
    assert_eq!(
        run.metrics.clarity_after_first,
        Some(clear_after as f64 / 6.0)
    );
    let clear_all: usize = run.rounds.iter().map(|round| round.clear).sum();
    assert_eq!(run.metrics.clarity_all, clear_all as f64 / 10.0);

    let markdown = first.to_markdown();
    for label in ["CLARIFY", "MR", "OPRL", "unclear after round 1", "SHA-256"] {
        assert!(markdown.contains(label), "{markdown}");
    }

    // A second benchmark with the same settings reuses every run.
    let context = BenchContext::load(&path, tiny_settings(), 1)?;
    let mut cached = 0;
    let second = bench::run_clarity(&context, &cache, &mut |event| match event {
        Progress::RunCached { .. } => cached += 1,
        other => panic!("the cached benchmark ran again: {other:?}"),
    })?;
    assert_eq!(cached, 6);
    assert_eq!(second, first);
    assert_eq!(
        serde_json::to_string(&second)?,
        serde_json::to_string(&first)?
    );

    // A changed setting changes every key, so nothing is reused.
    let mut changed = tiny_settings();
    changed.epsilon = 0.7;
    changed.methods = vec![Method::Mr];
    changed.seeds = vec![0];
    let context = BenchContext::load(&path, changed, 1)?;
    let mut reused = 0;
    bench::run_clarity(&context, &cache, &mut |event| {
        if let Progress::RunCached { .. } = event {
            reused += 1;
        }
    })?;
    assert_eq!(reused, 0);
    Ok(())
}

#[test]
fn clarity_settings_reject_empty_budget() -> Result<()> {
    let path = write_dataset("bench-clarity-invalid.npz")?;
    let settings = ClaritySettings {
        budget: 0,
        ..tiny_settings()
    };

    let error = BenchContext::load(&path, settings, 1)
        .err()
        .expect("budget 0 accepted")
        .to_string();

    assert!(error.contains("budget = 0"), "{error}");
    Ok(())
}

#[test]
fn bench_command_prints_table_and_reuses_cache() -> Result<()> {
    require_onnx_runtime_library();
    let path = write_dataset("bench-clarity-cli.npz")?;
    let folder = temp_dir("bench-clarity-cli");
    let output_path = folder.join("report.json");
    let run = || -> Result<std::process::Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_clarify"))
            .args(["--quiet", "bench", "clarity", "--dataset"])
            .arg(&path)
            .args([
                "--budget",
                "8",
                "--queries-per-round",
                "4",
                "--pool-factor",
                "2",
                "--segment-length",
                "5",
                "--seeds",
                "0",
                "--methods",
                "mr,oprl",
                "--cache-dir",
            ])
            .arg(folder.join("cache"))
            .arg("--output")
            .arg(&output_path)
            .env_remove("RUST_LOG")
            .output()?)
    };

    let first = run()?;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8(first.stdout)?;
    assert!(stdout.contains("| MR |"), "{stdout}");
    assert!(stdout.contains("| OPRL |"), "{stdout}");
    assert!(!stdout.contains("CLARIFY"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&fs::read_to_string(&output_path)?)?;
    assert_eq!(report["runs"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["settings"]["budget"], 8);

    let first_json = fs::read_to_string(&output_path)?;
    let second = run()?;
    assert!(second.status.success());
    assert_eq!(String::from_utf8(second.stdout)?, stdout);
    assert_eq!(fs::read_to_string(&output_path)?, first_json);
    Ok(())
}

#[test]
fn bench_command_rejects_unknown_method() -> Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["bench", "clarity", "--methods", "clarify,pt"])
        .env_remove("RUST_LOG")
        .output()?;

    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid method \"pt\""), "{stderr}");
    Ok(())
}

//! The exported IQL policy: the ONNX checker's verdict, parity between ONNX Runtime and
//! burn's forward pass, and one episode in the simulator's policy evaluator.

mod onnx_common;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clarify::infer::{ExecutionProviderKind, InferConfig, ModelSignature, Runtime, TensorSpec};
use clarify::learn::iql::{
    IqlConfig, IqlData, IqlTrainOptions, IqlTrainer, POLICY_ACTIONS_OUTPUT,
    POLICY_OBSERVATIONS_INPUT,
};
use clarify::onnx::{ModelInfo, write_model};
use ndarray::{Array1, Array2};
use onnx_common::{
    Uniform, assert_passes_onnx_checker, require_onnx_runtime_library, temp_dir, venv_python,
};
use serde_json::{Value, json};

/// Meta-World widths, which the evaluator checks against the task.
const OBSERVATION_DIM: usize = 39;
const ACTION_DIM: usize = 4;
const MAX_RELATIVE_ERROR: f64 = 1e-4;

/// Observations with per-feature offsets and scales far from 0 and 1, so that a wrong
/// standardisation shows in the actions.
fn raw_observations(rng: &mut Uniform, rows: usize) -> Array2<f32> {
    let mut observations = rng.matrix(rows, OBSERVATION_DIM, -1.0, 1.0);
    for (feature, mut column) in observations.columns_mut().into_iter().enumerate() {
        let offset = feature as f32 * 0.3 - 4.0;
        let scale = 0.05 + feature as f32 * 0.2;
        column.mapv_inplace(|value| offset + scale * value);
    }
    observations
}

/// Trains the `cpu`-preset networks for a few steps on random transitions, so that the
/// exported weights are not the initial ones.
fn trained_policy(seed: u64) -> Result<IqlTrainer> {
    let mut rng = Uniform::new(seed);
    let rows = 512;
    let observations = raw_observations(&mut rng, rows);
    let next_observations = raw_observations(&mut rng, rows);
    let actions = rng.matrix(rows, ACTION_DIM, -1.0, 1.0);
    let rewards = Array1::from(rng.vector(rows, 0.0, 10.0));
    let config = IqlConfig {
        gradient_steps: 20,
        batch_size: 64,
        seed,
        ..IqlConfig::cpu()
    };
    let data = IqlData::new(
        observations,
        actions,
        next_observations,
        rewards,
        Array1::from_elem(rows, false),
        config.observation_std_epsilon,
    )?;
    let mut trainer = IqlTrainer::new(config, &data)?;
    trainer.train(&IqlTrainOptions::default(), |_| {})?;
    Ok(trainer)
}

fn relative_error(actual: &[f32], expected: &[f32]) -> f64 {
    let difference: f64 = actual
        .iter()
        .zip(expected)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = expected
        .iter()
        .map(|&b| f64::from(b).powi(2))
        .sum::<f64>()
        .sqrt();
    difference / norm
}

#[test]
fn policy_export_matches_burn() -> Result<()> {
    require_onnx_runtime_library();
    let trainer = trained_policy(21)?;
    let path = temp_dir("iql-policy").join("policy.onnx");
    write_model(&trainer.policy_to_onnx(&ModelInfo::default())?, &path)?;
    assert_passes_onnx_checker(&path);

    let runtime = Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?;
    let signature = ModelSignature {
        inputs: vec![TensorSpec::new(POLICY_OBSERVATIONS_INPUT, 2)],
        outputs: vec![TensorSpec::new(POLICY_ACTIONS_OUTPUT, 2)],
    };
    let mut session = runtime.load_model(&path, &signature)?;

    let mut rng = Uniform::new(22);
    for batch in [1, 17, 256] {
        let observations = raw_observations(&mut rng, batch);
        let expected = trainer.act(observations.view())?;
        let outputs = session.run(&[observations.view().into_dyn()])?;
        let actual = &outputs[0];

        assert_eq!(actual.shape(), [batch, ACTION_DIM], "batch {batch}");
        assert!(actual.iter().all(|v| v.is_finite()), "batch {batch}");
        assert!(expected.iter().all(|v| v.is_finite()), "batch {batch}");
        let actual: Vec<f32> = actual.iter().copied().collect();
        let expected: Vec<f32> = expected.iter().copied().collect();
        let relative = relative_error(&actual, &expected);
        assert!(relative <= MAX_RELATIVE_ERROR, "batch {batch}: {relative}");
    }
    Ok(())
}

/// Writes a format-1 manifest for the exported policy beside it.
fn write_manifest(trainer: &IqlTrainer, folder: &Path) -> Result<()> {
    let normalization = trainer.normalization();
    let low = vec![-1.0; ACTION_DIM];
    let high = vec![1.0; ACTION_DIM];
    let manifest = json!({
        "format_version": 1,
        "observation_dim": OBSERVATION_DIM,
        "action_dim": ACTION_DIM,
        "observation_normalization": {
            "mean": normalization.mean,
            "std": normalization.std,
            "in_graph": true,
        },
        "action_bounds": {"low": low, "high": high},
        "inputs": [{"name": POLICY_OBSERVATIONS_INPUT, "shape": ["batch", OBSERVATION_DIM]}],
        "outputs": [{"name": POLICY_ACTIONS_OUTPUT, "shape": ["batch", ACTION_DIM]}],
    });
    std::fs::write(
        folder.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(())
}

#[test]
fn evaluator_runs_exported_policy() -> Result<()> {
    let python = venv_python();
    assert!(
        python.is_file(),
        "{} not found: run .ci/setup to create the Python environment",
        python.display()
    );
    let trainer = trained_policy(23)?;
    let folder = temp_dir("iql-evaluate");
    let model = folder.join("policy.onnx");
    write_model(&trainer.policy_to_onnx(&ModelInfo::default())?, &model)?;
    write_manifest(&trainer, &folder)?;

    let output = Command::new(&python)
        .args(["-m", "clarify_sim", "--log-level", "WARNING", "evaluate"])
        .arg(&model)
        .args([
            "--task",
            "dial-turn",
            "--episodes",
            "1",
            "--seed",
            "3",
            "--json",
        ])
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sim"),
        )
        .output()
        .context("failed to start the Python interpreter")?;
    if !output.status.success() {
        bail!(
            "clarify_sim evaluate failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("bad JSON: {}", String::from_utf8_lossy(&output.stdout)))?;
    assert_eq!(result["episodes"], 1);
    assert_eq!(result["seeds"], json!([3]));
    let episode_return = result["return_mean"]
        .as_f64()
        .context("return_mean is not a number")?;
    assert!(episode_return.is_finite(), "{result}");
    assert!(
        episode_return >= 0.0,
        "Meta-World rewards are non-negative: {result}"
    );
    Ok(())
}

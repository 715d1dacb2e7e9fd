//! The training job: a tiny run on a small store installs a model set whose manifest
//! validates and whose networks load and run in ONNX Runtime; bad stores fail with errors
//! that name the problem, and a killed `clarify train` leaves the registry as it was.

mod train_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clarify::infer::{ExecutionProviderKind, ModelSignature, TensorSpec};
use clarify::learn::encoder::encoder_signature;
use clarify::learn::iql::{POLICY_ACTIONS_OUTPUT, POLICY_OBSERVATIONS_INPUT};
use clarify::learn::{ACTIONS_INPUT, OBSERVATIONS_INPUT, REWARDS_OUTPUT};
use clarify::registry::Registry;
use clarify::store::{ModelStatus, RunStatus, Store};
use clarify::train::{self, Stage, TrainError};
use clarify::{InferConfig, Runtime};
use ndarray::Array3;
use serde_json::Value;
use train_support::{
    SEGMENT, folder_entries, folder_files, make_store, synthetic_dataset, tiny_settings,
    write_tiny_settings,
};

fn cpu_runtime() -> Result<Runtime> {
    Ok(Runtime::new(InferConfig {
        execution_providers: vec![ExecutionProviderKind::Cpu],
        intra_op_threads: 1,
        ..InferConfig::default()
    })?)
}

#[test]
fn tiny_job_installs_a_set_that_loads_in_onnx_runtime() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("store.sqlite");
    let models = folder.path().join("models");
    let dataset = synthetic_dataset(6, 40, 5, 2, 1);
    make_store(&store, &dataset, 30, 2)?;
    let mut settings = tiny_settings(100);
    settings.version = Some("v1".to_owned());
    settings.activate = true;

    let mut reports = Vec::new();
    let outcome = train::run_job(&store, &models, &settings, &mut |progress| {
        reports.push(progress.clone())
    })?;

    // Progress covers every stage in order and ends with the installed set.
    let stages: Vec<Stage> = reports.iter().map(|report| report.stage).collect();
    let mut order = stages.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            Stage::Load,
            Stage::Encoder,
            Stage::Reward,
            Stage::Relabel,
            Stage::Policy,
            Stage::Export,
            Stage::Install,
            Stage::Done
        ]
    );
    let last = reports.last().expect("reports");
    assert_eq!(last.version.as_deref(), Some("v1"));

    // The job opened a training run row, reported its id and closed it with the version,
    // and recorded the set as the active model.
    let run_id = last.run_id.expect("the done report names the run");
    assert!(
        reports
            .iter()
            .skip(1)
            .all(|report| report.run_id == Some(run_id))
    );
    let recorded = Store::open(&store)?;
    let run = recorded.training_run(run_id)?;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.model_version.as_deref(), Some("v1"));
    assert_eq!(run.answers_used, 26);
    let models_table = recorded.models()?;
    assert_eq!(models_table.len(), 1);
    assert_eq!(models_table[0].version, "v1");
    assert_eq!(models_table[0].status, ModelStatus::Active);
    drop(recorded);
    assert_eq!(last.path.as_deref(), Some(models.join("v1").as_path()));
    let policy_steps: Vec<usize> = reports
        .iter()
        .filter(|report| report.stage == Stage::Policy && report.step > 0)
        .map(|report| report.step)
        .collect();
    assert_eq!(policy_steps, [50, 100]);

    // The manifest validates, names the data and matches the files.
    let registry = Registry::open(&models, 5)?;
    let set = registry.load_current()?;
    assert_eq!(set.version, "v1");
    assert!(outcome.activated);
    let manifest = &set.manifest;
    assert_eq!((manifest.observation_dim, manifest.action_dim), (5, 2));
    assert_eq!(manifest.segment_length, SEGMENT);
    // 30 answers, of which indices 6, 13, 20 and 27 are skips.
    assert_eq!(manifest.data.answers_used, 26);
    assert_eq!(manifest.data.dataset_sha256.len(), 64);
    assert_eq!(manifest.data.answers_sha256.len(), 64);
    assert_eq!(manifest.metrics["policy_steps"], 100.0);
    assert_eq!(manifest.metrics["answers_skip"], 4.0);
    assert!(manifest.metrics.contains_key("reward_buffer_accuracy"));
    assert_eq!(
        folder_entries(&set.path)?,
        [
            "encoder.onnx",
            "manifest.json",
            "policy.onnx",
            "reward.onnx"
        ]
    );

    // The three networks load and run in ONNX Runtime.
    let runtime = cpu_runtime()?;
    let mut policy = runtime.load_model(
        &set.policy_path(),
        &ModelSignature {
            inputs: vec![TensorSpec::new(POLICY_OBSERVATIONS_INPUT, 2)],
            outputs: vec![TensorSpec::new(POLICY_ACTIONS_OUTPUT, 2)],
        },
    )?;
    let observations = dataset
        .observations()
        .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..3))
        .to_owned();
    let actions = policy.run(&[observations.view().into_dyn()])?;
    assert_eq!(actions[0].shape(), [3, 2]);
    assert!(
        actions[0]
            .iter()
            .all(|value| value.is_finite() && value.abs() <= 1.0)
    );

    let mut reward = runtime.load_model(
        &set.path.join("reward.onnx"),
        &ModelSignature {
            inputs: vec![
                TensorSpec::new(OBSERVATIONS_INPUT, 3),
                TensorSpec::new(ACTIONS_INPUT, 3),
            ],
            outputs: vec![TensorSpec::new(REWARDS_OUTPUT, 3)],
        },
    )?;
    let segment_observations = Array3::<f32>::zeros((2, SEGMENT, 5));
    let segment_actions = Array3::<f32>::zeros((2, SEGMENT, 2));
    let rewards = reward.run(&[
        segment_observations.view().into_dyn(),
        segment_actions.view().into_dyn(),
    ])?;
    assert_eq!(rewards[0].shape(), [3, 2, SEGMENT]);

    runtime.load_model(&set.path.join("encoder.onnx"), &encoder_signature())?;
    Ok(())
}

#[test]
fn store_without_enough_answers_is_rejected() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let dataset = synthetic_dataset(4, 30, 3, 2, 5);
    let models = folder.path().join("models");
    let settings = tiny_settings(10);

    let empty = folder.path().join("empty.sqlite");
    make_store(&empty, &dataset, 0, 1)?;
    let error = train::run_job(&empty, &models, &settings, &mut |_| {}).unwrap_err();
    assert!(matches!(error, TrainError::NoAnswers { .. }), "{error}");
    assert!(error.is_invalid_input());

    let few = folder.path().join("few.sqlite");
    make_store(&few, &dataset, 5, 1)?;
    let error = train::run_job(&few, &models, &settings, &mut |_| {}).unwrap_err();
    assert!(
        error.to_string().contains("4 left or right answers"),
        "{error}"
    );
    assert!(error.is_invalid_input());
    // Nothing was installed, and no staging folder is left.
    assert!(folder_entries(&models).map_or(true, |names| names.is_empty()));
    Ok(())
}

#[test]
fn set_for_other_dimensions_is_rejected_unless_allowed() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let models = folder.path().join("models");
    let first = folder.path().join("first.sqlite");
    make_store(&first, &synthetic_dataset(4, 30, 3, 2, 5), 12, 1)?;
    let mut settings = tiny_settings(10);
    settings.activate = true;
    settings.version = Some("three".to_owned());
    train::run_job(&first, &models, &settings, &mut |_| {})?;

    let second = folder.path().join("second.sqlite");
    make_store(&second, &synthetic_dataset(4, 30, 4, 2, 6), 12, 1)?;
    settings.version = Some("four".to_owned());
    let error = train::run_job(&second, &models, &settings, &mut |_| {}).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("observation_dim 4, but the active model set three has 3"),
        "{error}"
    );
    settings.allow_dimension_change = true;
    train::run_job(&second, &models, &settings, &mut |_| {})?;
    Ok(())
}

/// Reads progress lines until one of the policy stage with a step above 0.
fn wait_for_policy_progress(stdout: impl std::io::Read) -> Result<Vec<Value>> {
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let value: Value = serde_json::from_str(&line?)?;
        let policy_step = value["stage"] == "policy" && value["step"].as_u64() > Some(0);
        lines.push(value);
        if policy_step {
            return Ok(lines);
        }
    }
    anyhow::bail!("the job ended before the policy stage: {lines:?}")
}

#[test]
fn killed_job_leaves_the_previous_set_untouched() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("store.sqlite");
    let models = folder.path().join("models");
    make_store(&store, &synthetic_dataset(6, 40, 5, 2, 3), 30, 4)?;
    let settings = write_tiny_settings(folder.path(), 50)?;
    let store_arg = store.to_str().context("path")?;
    let models_arg = models.to_str().context("path")?;
    let settings_arg = settings.to_str().context("path")?;

    // A finished run installs and activates v1.
    let output = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["-q", "train", "--store", store_arg, "--models", models_arg])
        .args(["--settings", settings_arg, "--version", "v1", "--activate"])
        .args(["--min-clear-answers", "5", "--replay-round", "10"])
        .args(["--progress-interval", "25"])
        .output()?;
    ensure!(
        output.status.success(),
        "first run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let done = lines.last().context("no progress")?;
    assert_eq!(done["stage"], "done");
    assert_eq!(done["version"], "v1");
    assert!(lines.iter().all(|line| line["elapsed_secs"].is_number()));
    let before = folder_files(&models.join("v1"))?;
    let pointer_before = std::fs::read(models.join("current"))?;

    // A second, long run is killed during the policy stage.
    let mut child = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["-q", "train", "--store", store_arg, "--models", models_arg])
        .args(["--settings", settings_arg, "--version", "v2", "--activate"])
        .args(["--min-clear-answers", "5", "--replay-round", "10"])
        .args(["--policy-steps", "1000000", "--progress-interval", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let seen = wait_for_policy_progress(stdout);
    child.kill()?;
    child.wait()?;
    let seen = seen?;
    assert!(seen.iter().any(|line| line["stage"] == "reward"));

    assert_eq!(folder_entries(&models)?, ["current", "v1"]);
    assert_eq!(folder_files(&models.join("v1"))?, before);
    assert_eq!(std::fs::read(models.join("current"))?, pointer_before);
    Registry::open(&models, 5)?.load_current()?;
    Ok(())
}

#[test]
fn killed_job_resumes_policy_from_checkpoint() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("store.sqlite");
    let models = folder.path().join("models");
    let checkpoints = folder.path().join("checkpoints");
    make_store(&store, &synthetic_dataset(6, 40, 5, 2, 3), 30, 4)?;
    let settings = write_tiny_settings(folder.path(), 50)?;
    let train = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_clarify"));
        command
            .args(["-q", "train", "--store"])
            .arg(&store)
            .arg("--models")
            .arg(&models)
            .arg("--settings")
            .arg(&settings)
            .arg("--policy-checkpoints")
            .arg(&checkpoints)
            .args(["--version", "v1", "--min-clear-answers", "5"])
            .args(["--replay-round", "10", "--policy-steps", "12000"])
            .args(["--progress-interval", "1000"]);
        command
    };

    // The first job is killed once it has written a checkpoint (every 5,000 steps).
    let mut child = train()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !checkpoints.join("latest").is_file() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the job ended ({status}) before writing a checkpoint");
        }
        ensure!(Instant::now() < deadline, "no checkpoint after 300 s");
        thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    assert!(!models.join("v1").exists());

    // The rerun starts its policy stage at the checkpoint's step and installs the set.
    let output = train().output()?;
    ensure!(
        output.status.success(),
        "rerun failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let first_policy = lines
        .iter()
        .find(|line| line["stage"] == "policy")
        .context("no policy progress")?;
    let resumed_at = first_policy["step"].as_u64().context("no step")?;
    assert!(resumed_at >= 5000, "{first_policy}");
    assert_eq!(lines.last().context("no progress")?["version"], "v1");
    Registry::open(&models, 5)?.load("v1")?;
    Ok(())
}

#[test]
fn cli_reports_bad_input_with_exit_status_2() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("store.sqlite");
    make_store(&store, &synthetic_dataset(4, 30, 3, 2, 5), 0, 1)?;
    let output = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["train", "--store", store.to_str().context("path")?])
        .args([
            "--models",
            folder.path().join("models").to_str().context("path")?,
        ])
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("no answered queries"), "{stderr}");
    Ok(())
}

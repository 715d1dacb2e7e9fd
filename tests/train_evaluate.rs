//! A model set made by `clarify train` runs in the Python evaluator (`clarify-sim
//! evaluate`) in Meta-World.
//!
//! The evaluator runs from the project's Python environment, `.venv` at the repository
//! root (created by `.ci/setup`), or from the interpreter in `CLARIFY_PYTHON`.

mod train_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use clarify::train;
use serde_json::Value;
use train_support::{make_store, synthetic_dataset, tiny_settings};

fn python() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CLARIFY_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    ensure!(
        path.exists(),
        "Python environment not found at {}: run .ci/setup, or set CLARIFY_PYTHON",
        path.display()
    );
    Ok(path)
}

#[test]
fn evaluator_runs_a_trained_set_for_one_episode() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let store = folder.path().join("store.sqlite");
    let models = folder.path().join("models");
    // Meta-World's observation and action sizes.
    make_store(&store, &synthetic_dataset(4, 40, 39, 4, 8), 20, 9)?;
    let mut settings = tiny_settings(20);
    settings.version = Some("meta-world".to_owned());
    let outcome = train::run_job(&store, &models, &settings, &mut |_| {})?;

    let output = Command::new(python()?)
        .args(["-m", "clarify_sim", "--log-level", "WARNING", "evaluate"])
        .arg(outcome.set.policy_path())
        .args([
            "--task",
            "dial-turn",
            "--episodes",
            "1",
            "--max-steps",
            "20",
        ])
        .args(["--seed", "3", "--json"])
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sim"),
        )
        .output()
        .context("failed to start the Python interpreter")?;
    ensure!(
        output.status.success(),
        "evaluation failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(result["episodes"], 1);
    assert_eq!(result["seeds"], serde_json::json!([3]));
    let rate = result["success_rate_any"]
        .as_f64()
        .context("no success rate")?;
    assert!((0.0..=1.0).contains(&rate));
    assert!(result["return_mean"].as_f64().is_some_and(f64::is_finite));
    Ok(())
}

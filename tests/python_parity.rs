//! The Rust and Python sides agree on datasets: a dataset written by the Python generator
//! (`sim/`) loads here, and both languages compute the same fingerprint and give the same
//! ε-skip teacher answer to every sampled pair.
//!
//! The test runs the generator from the project's Python environment, `.venv` at the
//! repository root (created by `.ci/setup`), or from the interpreter in `CLARIFY_PYTHON`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clarify::Dataset;
use clarify::fingerprint::{self, FingerprintConfig};
use serde_json::Value;

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

/// Runs `python -m clarify_sim ARGS` and returns its standard output.
fn run_clarify_sim(args: &[&str]) -> Result<String> {
    let output = Command::new(python()?)
        .args(["-m", "clarify_sim", "--log-level", "WARNING"])
        .args(args)
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sim"),
        )
        .output()
        .context("failed to start the Python interpreter")?;
    if !output.status.success() {
        bail!(
            "clarify_sim {args:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn read_json_lines(path: &Path) -> Result<Vec<Value>> {
    fs::read_to_string(path)?
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("bad line {line:?}")))
        .collect()
}

/// Generates a small mixed-quality dial-turn dataset with episodes of 120 steps.
fn generate_dataset(folder: &Path) -> Result<PathBuf> {
    let path = folder.join("dial-turn.npz");
    run_clarify_sim(&[
        "generate",
        "--task",
        "dial-turn",
        "--episodes",
        "6",
        "--episode-steps",
        "120",
        "--seed",
        "11",
        "--out",
        path.to_str().context("temporary path is not UTF-8")?,
    ])?;
    Ok(path)
}

#[test]
fn fingerprint_and_answers_match_python() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let dataset_path = generate_dataset(folder.path())?;
    let dataset = Dataset::load(&dataset_path)?;

    for (segment_length, pair_seed) in [(50, 0), (7, 12_345), (120, u64::MAX)] {
        let python_pairs = folder.path().join(format!("pairs-{segment_length}.jsonl"));
        let python_fingerprint: Value = serde_json::from_str(&run_clarify_sim(&[
            "fingerprint",
            dataset_path
                .to_str()
                .context("temporary path is not UTF-8")?,
            "--json",
            "--segment-length",
            &segment_length.to_string(),
            "--pairs",
            "500",
            "--pair-seed",
            &pair_seed.to_string(),
            "--pairs-out",
            python_pairs
                .to_str()
                .context("temporary path is not UTF-8")?,
        ])?)?;

        let config = FingerprintConfig {
            segment_length,
            pairs: 500,
            pair_seed,
        };
        let report = fingerprint::compute(&dataset, &config)?;
        let rust_fingerprint = serde_json::to_value(&report.fingerprint)?;
        assert_eq!(
            rust_fingerprint, python_fingerprint,
            "fingerprints differ for H = {segment_length}, pair seed {pair_seed}"
        );

        let python_pairs = read_json_lines(&python_pairs)?;
        assert_eq!(python_pairs.len(), report.pairs.len());
        for (index, (rust_pair, python_pair)) in report.pairs.iter().zip(&python_pairs).enumerate()
        {
            assert_eq!(
                &serde_json::to_value(rust_pair)?,
                python_pair,
                "pair {index} differs for H = {segment_length}, pair seed {pair_seed}"
            );
        }
    }
    Ok(())
}

#[test]
fn sidecar_fingerprint_matches_rust() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let dataset_path = generate_dataset(folder.path())?;
    let sidecar: Value =
        serde_json::from_str(&fs::read_to_string(dataset_path.with_extension("json"))?)?;

    let dataset = Dataset::load(&dataset_path)?;
    let report = fingerprint::compute(&dataset, &FingerprintConfig::default())?;

    assert_eq!(
        serde_json::to_value(&report.fingerprint)?,
        sidecar["fingerprint"]
    );
    Ok(())
}

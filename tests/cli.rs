//! The `clarify` binary: help text, `dataset inspect` output and exit statuses.

mod common;

use std::fs;
use std::process::{Command, Output};

use common::{NpzFixture, temp_path};

fn clarify(args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()?;
    Ok(output)
}

fn write_dataset(name: &str) -> anyhow::Result<String> {
    let rewards: Vec<f32> = (0..30).map(|step| (step % 7) as f32).collect();
    let path = NpzFixture::valid(&[10, 12, 8], &rewards).write(name)?;
    Ok(path.display().to_string())
}

#[test]
fn help_lists_dataset_command() -> anyhow::Result<()> {
    let output = clarify(&["--help"])?;
    let stdout = String::from_utf8(output.stdout)?;

    assert!(output.status.success());
    assert!(stdout.contains("preference answers"), "{stdout}");
    assert!(stdout.contains("dataset"), "{stdout}");
    Ok(())
}

#[test]
fn inspect_help_gives_option_units() -> anyhow::Result<()> {
    let output = clarify(&["dataset", "inspect", "--help"])?;
    let stdout = String::from_utf8(output.stdout)?;

    assert!(output.status.success());
    assert!(stdout.contains("--segment-length <STEPS>"), "{stdout}");
    assert!(stdout.contains("[default: 50]"), "{stdout}");
    assert!(stdout.contains("--pairs <N>"), "{stdout}");
    assert!(stdout.contains("--pair-seed <SEED>"), "{stdout}");
    assert!(stdout.contains("--pairs-out <FILE>"), "{stdout}");
    Ok(())
}

#[test]
fn inspect_prints_readable_summary() -> anyhow::Result<()> {
    let path = write_dataset("cli-summary.npz")?;

    let output = clarify(&["dataset", "inspect", &path, "--segment-length", "5"])?;
    let stdout = String::from_utf8(output.stdout)?;

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&path), "{stdout}");
    assert!(
        stdout.contains("episodes          3 (3 time limit"),
        "{stdout}"
    );
    assert!(
        stdout.contains("segments          18 of 5 steps"),
        "{stdout}"
    );
    assert!(stdout.contains("clear share"), "{stdout}");
    Ok(())
}

#[test]
fn inspect_json_and_pair_dump() -> anyhow::Result<()> {
    let path = write_dataset("cli-json.npz")?;
    let pairs_path = temp_path("cli-json-pairs.jsonl");
    let pairs_arg = pairs_path.display().to_string();

    let output = clarify(&[
        "dataset",
        "inspect",
        &path,
        "--json",
        "--segment-length",
        "4",
        "--pairs",
        "25",
        "--pair-seed",
        "9",
        "--pairs-out",
        &pairs_arg,
    ])?;

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fingerprint: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(fingerprint["steps"], 30);
    assert_eq!(fingerprint["segments"], 7 + 9 + 5);
    assert_eq!(fingerprint["pairs"], 25);
    assert_eq!(fingerprint["pair_seed"], 9);

    let dump = fs::read_to_string(&pairs_path)?;
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 25);
    for line in lines {
        let pair: serde_json::Value = serde_json::from_str(line)?;
        assert!(pair["a"].as_u64().is_some_and(|a| a < 21), "{line}");
        assert!(pair["b"].as_u64().is_some_and(|b| b < 21), "{line}");
        assert!(pair["return_a"].is_f64(), "{line}");
        assert!(pair["return_b"].is_f64(), "{line}");
        for epsilon in ["0.5", "0.7"] {
            let answer = pair["answers"][epsilon].as_str().unwrap_or_default();
            assert!(["left", "right", "cant_tell"].contains(&answer), "{line}");
        }
    }
    Ok(())
}

#[test]
fn invalid_file_exits_2_naming_file_and_field() -> anyhow::Result<()> {
    let rewards: Vec<f32> = vec![1.0; 6];
    let mut fixture = NpzFixture::valid(&[6], &rewards);
    fixture.remove("timeouts");
    let path = fixture
        .write("cli-missing-field.npz")?
        .display()
        .to_string();

    let output = clarify(&["dataset", "inspect", &path])?;
    let stderr = String::from_utf8(output.stderr)?;

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&path), "{stderr}");
    assert!(stderr.contains("`timeouts`"), "{stderr}");
    Ok(())
}

#[test]
fn missing_file_exits_2_with_cause() -> anyhow::Result<()> {
    let path = temp_path("cli-does-not-exist.npz").display().to_string();

    let output = clarify(&["dataset", "inspect", &path])?;
    let stderr = String::from_utf8(output.stderr)?;

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("failed to open dataset {path}")),
        "{stderr}"
    );
    assert!(stderr.contains("caused by: "), "{stderr}");
    Ok(())
}

#[test]
fn too_long_segment_length_exits_2() -> anyhow::Result<()> {
    let path = write_dataset("cli-long-segments.npz")?;

    let output = clarify(&["dataset", "inspect", &path, "--segment-length", "13"])?;
    let stderr = String::from_utf8(output.stderr)?;

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("use a shorter segment length"), "{stderr}");
    Ok(())
}

#[test]
fn zero_pairs_is_usage_error() -> anyhow::Result<()> {
    let path = write_dataset("cli-zero-pairs.npz")?;

    let output = clarify(&["dataset", "inspect", &path, "--pairs", "0"])?;
    let stderr = String::from_utf8(output.stderr)?;

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("must be at least 1"), "{stderr}");
    Ok(())
}

#[test]
fn unwritable_pair_dump_exits_1() -> anyhow::Result<()> {
    let path = write_dataset("cli-unwritable-dump.npz")?;
    let dump = temp_path("cli-no-such-folder").join("pairs.jsonl");
    let dump_arg = dump.display().to_string();

    let output = clarify(&[
        "dataset",
        "inspect",
        &path,
        "--segment-length",
        "4",
        "--pairs-out",
        &dump_arg,
    ])?;
    let stderr = String::from_utf8(output.stderr)?;

    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&dump_arg), "{stderr}");
    Ok(())
}

#[test]
fn archive_error_prints_each_cause_once() -> anyhow::Result<()> {
    let path = temp_path("cli-not-zip.npz");
    fs::write(&path, "not a zip archive\n")?;

    let output = clarify(&["dataset", "inspect", &path.display().to_string()])?;
    let stderr = String::from_utf8(output.stderr)?;

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let causes: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("caused by: "))
        .collect();
    assert_eq!(causes.len(), 1, "{stderr}");
    assert!(causes[0].contains("invalid Zip archive"), "{stderr}");
    Ok(())
}

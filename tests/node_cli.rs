//! `clarify node` rejects invalid parameters before it opens a socket or a store: exit
//! status 2 and a message naming the parameter, its value and what is expected.

mod node_support;

use std::process::Command;

use anyhow::Result;
use node_support::write_params;

const RECORDER: &str = "    recorder:\n      transition:\n        topic: transition\n        \
                        observation_size: 3\n        action_size: 2\n";

fn run_with_params(body: &str) -> Result<(Option<i32>, String)> {
    let folder = tempfile::tempdir()?;
    let params = write_params(folder.path(), body);
    let output = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(["node", "--params"])
        .arg(&params)
        .current_dir(folder.path())
        .env("ROS_DOMAIN_ID", "73")
        .output()?;
    let files: Vec<_> = std::fs::read_dir(folder.path())?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(files, ["params.yaml"], "an invalid run created files");
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn invalid_parameters_exit_with_status_2() -> Result<()> {
    let cases = [
        (
            format!("{RECORDER}    query_lifetime_secs: -5.0\n"),
            "query_lifetime_secs = -5",
            "a positive number of seconds",
        ),
        (
            format!("{RECORDER}    joy:\n      left: 1\n      right: 1\n"),
            "joy.right = 1",
            "a button index different from joy.left",
        ),
        (
            format!("{RECORDER}    max_open_queries: 0\n"),
            "max_open_queries = 0",
            "at least 1",
        ),
        (
            "    store_path: x.sqlite\n".to_owned(),
            "recorder.observation",
            "at least one source",
        ),
        (
            format!("{RECORDER}    queries_per_round: many\n"),
            "parameter queries_per_round: invalid type: string \"many\"",
            "expected usize",
        ),
        (
            format!("{RECORDER}    retrain:\n      nice: [1]\n"),
            "parameter retrain.nice",
            "expected i32",
        ),
        (
            format!("{RECORDER}    retrain:\n      time_limit_secs: -1.0\n"),
            "retrain.time_limit_secs = -1",
            "a number of seconds >= 0",
        ),
    ];
    for (body, named, expected) in cases {
        let (status, stderr) = run_with_params(&body)?;
        assert_eq!(status, Some(2), "{body}: {stderr}");
        assert!(stderr.contains(named), "{body}: {stderr}");
        assert!(stderr.contains(expected), "{body}: {stderr}");
    }
    Ok(())
}

//! The training child: `clarify train` started at lower priority, its JSON progress lines
//! read from stdout and its error read from stderr.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Deserialize;

/// Lines of the child's stderr kept for the failure message.
const STDERR_LINES: usize = 40;

/// One progress line of `clarify train` (see [`crate::train::Progress`]). Losses that are
/// NaN arrive as JSON `null`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ProgressLine {
    pub stage: String,
    pub step: usize,
    pub total: usize,
    #[serde(default)]
    pub losses: BTreeMap<String, Option<f64>>,
    pub elapsed_secs: f64,
    /// The installed version, on the `done` line.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl ProgressLine {
    /// Parses one stdout line; `None` for a line that is not a progress object.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }

    /// Returns the done fraction of the stage, in [0, 1].
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            return 0.0;
        }
        (self.step as f32 / self.total as f32).clamp(0.0, 1.0)
    }

    /// Returns the finite losses as `name value` pairs, for the status message.
    pub fn loss_summary(&self) -> String {
        self.losses
            .iter()
            .filter_map(|(name, value)| value.filter(|v| v.is_finite()).map(|v| (name, v)))
            .map(|(name, value)| format!("{name} {value:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parts of the `clarify train` command line that the manager starts.
pub struct ChildCommand<'a> {
    pub program: &'a Path,
    /// The `nice` program and the niceness, or `None` to run at the node's priority.
    pub nice: Option<(&'a Path, i32)>,
    pub store: &'a Path,
    pub models: &'a Path,
    pub keep: usize,
    pub extra: &'a [String],
}

impl ChildCommand<'_> {
    /// Returns the command line: `[nice -n N] program -q train --store S --models M
    /// --keep K --no-activate EXTRA...`.
    pub fn build(&self) -> Command {
        let mut command = match self.nice {
            Some((nice, niceness)) => {
                let mut command = Command::new(nice);
                command
                    .arg("-n")
                    .arg(niceness.to_string())
                    .arg(self.program);
                command
            }
            None => Command::new(self.program),
        };
        command
            .args(["-q", "train", "--store"])
            .arg(self.store)
            .arg("--models")
            .arg(self.models)
            .arg("--keep")
            .arg(self.keep.to_string())
            .arg("--no-activate")
            .args(self.extra);
        command
    }
}

/// A running training child with threads that read its output.
pub struct TrainingChild {
    child: Child,
    lines: Receiver<String>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<VecDeque<String>>>,
}

/// Result of [`TrainingChild::next_line`].
pub enum ChildOutput {
    Line(String),
    /// No line within the timeout.
    Quiet,
    /// stdout closed: the child exited or closed it.
    Closed,
}

impl TrainingChild {
    /// Starts `command` with piped stdout and stderr.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = crossbeam_channel::unbounded();
        let stdout_reader = thread::Builder::new()
            .name("train-stdout".to_owned())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        let stderr_reader = thread::Builder::new()
            .name("train-stderr".to_owned())
            .spawn(move || keep_last_lines(stderr));
        let (stdout_reader, stderr_reader) = match (stdout_reader, stderr_reader) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(error), _) | (_, Err(error)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error);
            }
        };
        Ok(Self {
            child,
            lines,
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        })
    }

    /// Waits up to `timeout` for the next stdout line.
    pub fn next_line(&self, timeout: Duration) -> ChildOutput {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => ChildOutput::Line(line),
            Err(RecvTimeoutError::Timeout) => ChildOutput::Quiet,
            Err(RecvTimeoutError::Disconnected) => ChildOutput::Closed,
        }
    }

    /// Kills the child (it may have exited already).
    pub fn kill(&mut self) {
        if let Err(error) = self.child.kill() {
            tracing::debug!(%error, "training child already gone");
        }
    }

    /// Waits for the child to exit and returns its status with the last stderr lines.
    pub fn finish(mut self) -> (std::io::Result<ExitStatus>, Vec<String>) {
        let status = self.child.wait();
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|reader| reader.join().ok())
            .map(Vec::from)
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for TrainingChild {
    fn drop(&mut self) {
        // Reached only when `finish` was not called: no child may outlive its manager.
        if self.stderr_reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn keep_last_lines(stream: impl Read) -> VecDeque<String> {
    let mut kept = VecDeque::with_capacity(STDERR_LINES);
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if kept.len() == STDERR_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    kept
}

/// Returns the error that `clarify` printed (the `error:` line and its causes), or else
/// the last stderr lines, as one line.
pub fn error_text(stderr: &[String]) -> String {
    let start = stderr.iter().rposition(|line| line.starts_with("error:"));
    let lines: Vec<&str> = match start {
        Some(start) => stderr[start..].iter().map(|line| line.trim()).collect(),
        None => stderr
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|line| line.trim())
            .collect(),
    };
    let text = lines.join(" ");
    if text.is_empty() {
        "no error output".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_parses_null_losses_and_version() {
        let line = r#"{"stage":"done","step":1,"total":1,"losses":{"q":null,"v":0.5},"elapsed_secs":2.5,"version":"v7","path":"/m/v7"}"#;
        let progress = ProgressLine::parse(line).expect("a progress line");
        assert_eq!(progress.stage, "done");
        assert_eq!(progress.version.as_deref(), Some("v7"));
        assert_eq!(progress.fraction(), 1.0);
        assert_eq!(progress.loss_summary(), "v 0.5000");
        assert!(ProgressLine::parse("not json").is_none());
    }

    #[test]
    fn error_text_takes_error_and_causes() {
        let stderr = [
            "WARN something".to_owned(),
            "error: training on a into b failed".to_owned(),
            "  caused by: store not found".to_owned(),
        ];
        assert_eq!(
            error_text(&stderr),
            "error: training on a into b failed caused by: store not found"
        );
        assert_eq!(error_text(&["x".to_owned()]), "x");
        assert_eq!(error_text(&[]), "no error output");
    }
}

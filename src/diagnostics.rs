//! The node's state as a diagnostic_msgs/DiagnosticArray for `/diagnostics`: one status per
//! area (recorder, queries, training, models), each with a level and key-value details.

use crate::deploy::{DeploySnapshot, TrainingState};
use crate::msg::{Byte, DiagnosticArray, DiagnosticStatus, Header, KeyValue, Time};
use crate::recorder::{CounterSnapshot, StepDropReason};

/// Share of received messages dropped above which the recorder status is WARN.
pub const DROP_WARN_FRACTION: f64 = 0.01;
/// Share of received messages dropped above which the recorder status is ERROR.
pub const DROP_ERROR_FRACTION: f64 = 0.10;

/// The node's state, as its diagnostics report it.
#[derive(Clone, Copy, Debug)]
pub struct NodeStatus<'a> {
    /// Node name, the prefix of every status name.
    pub node_name: &'a str,
    /// Recorder counters, `None` when the recorder is off.
    pub recorder: Option<&'a CounterSnapshot>,
    /// The recorder counters of the previous report and the seconds since then, for
    /// message and step rates; `None` on the first report.
    pub recorder_previous: Option<(&'a CounterSnapshot, f64)>,
    /// Queries published and not yet answered or expired.
    pub open_queries: usize,
    /// Answers committed to the store since the node started.
    pub answers_total: u64,
    pub deploy: &'a DeploySnapshot,
    /// ONNX Runtime execution provider of the encoder in use.
    pub execution_provider: Option<&'a str>,
}

/// Builds the diagnostic array of `status`, stamped `stamp`.
pub fn diagnostic_array(status: &NodeStatus, stamp: Time) -> DiagnosticArray {
    DiagnosticArray {
        header: Header {
            stamp,
            frame_id: String::new(),
        },
        status: vec![
            recorder_status(status),
            queries_status(status),
            training_status(status),
            models_status(status),
        ],
    }
}

fn entry(key: &str, value: impl ToString) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_string(),
    }
}

fn named(
    status: &NodeStatus,
    area: &str,
    level: Byte,
    message: String,
    values: Vec<KeyValue>,
) -> DiagnosticStatus {
    DiagnosticStatus {
        level,
        name: format!("{}: {area}", status.node_name),
        message,
        hardware_id: String::new(),
        values,
    }
}

fn recorder_status(status: &NodeStatus) -> DiagnosticStatus {
    let Some(counters) = status.recorder else {
        return named(
            status,
            "recorder",
            DiagnosticStatus::OK,
            "recorder off".to_owned(),
            Vec::new(),
        );
    };
    let received: u64 = counters.topics.iter().map(|t| t.received).sum();
    let dropped: u64 = counters.topics.iter().map(|t| t.dropped_total()).sum();
    let store_failed = counters
        .steps_dropped
        .get(&StepDropReason::StoreFailed)
        .copied()
        .unwrap_or(0);
    let writer_full = counters
        .steps_dropped
        .get(&StepDropReason::WriterFull)
        .copied()
        .unwrap_or(0);

    let mut values = vec![
        entry("steps recorded", counters.steps_recorded),
        entry("steps written", counters.steps_written),
        entry("episodes written", counters.episodes_written),
        entry("episodes interrupted", counters.episodes_interrupted),
        entry("ticks missed", counters.ticks_missed),
        entry("steps dropped: writer full", writer_full),
        entry("steps dropped: store failed", store_failed),
    ];
    // Fractions and rates over the window since the previous report when there is one, so
    // an old burst of drops does not keep the status raised.
    let (window_received, window_dropped) = match status.recorder_previous {
        Some((previous, seconds)) if seconds > 0.0 => {
            let previous_received: u64 = previous.topics.iter().map(|t| t.received).sum();
            let previous_dropped: u64 = previous.topics.iter().map(|t| t.dropped_total()).sum();
            let steps = counters
                .steps_recorded
                .saturating_sub(previous.steps_recorded);
            values.push(entry(
                "step rate (Hz)",
                format!("{:.1}", steps as f64 / seconds),
            ));
            for topic in &counters.topics {
                let before = previous
                    .topic(&topic.topic)
                    .map_or(0, |snapshot| snapshot.received);
                let rate = topic.received.saturating_sub(before) as f64 / seconds;
                values.push(entry(
                    &format!("{} rate (Hz)", topic.topic),
                    format!("{rate:.1}"),
                ));
            }
            (
                received.saturating_sub(previous_received),
                dropped.saturating_sub(previous_dropped),
            )
        }
        _ => (received, dropped),
    };
    for topic in &counters.topics {
        values.push(entry(&format!("{} received", topic.topic), topic.received));
        for (reason, count) in &topic.dropped {
            values.push(entry(&format!("{} dropped: {reason}", topic.topic), count));
        }
    }
    let fraction = if window_received == 0 {
        0.0
    } else {
        window_dropped as f64 / window_received as f64
    };
    let percent = 100.0 * fraction;
    let (level, message) = if store_failed > 0 {
        (
            DiagnosticStatus::ERROR,
            format!("{store_failed} recorded steps failed to reach the store"),
        )
    } else if fraction > DROP_ERROR_FRACTION {
        (
            DiagnosticStatus::ERROR,
            format!("{percent:.1} % of received messages dropped"),
        )
    } else if fraction > DROP_WARN_FRACTION || writer_full > 0 {
        (
            DiagnosticStatus::WARN,
            format!(
                "{percent:.1} % of received messages dropped, {writer_full} steps lost at a full writer queue"
            ),
        )
    } else {
        (
            DiagnosticStatus::OK,
            format!("recording, {} steps written", counters.steps_written),
        )
    };
    named(status, "recorder", level, message, values)
}

fn queries_status(status: &NodeStatus) -> DiagnosticStatus {
    named(
        status,
        "queries",
        DiagnosticStatus::OK,
        format!(
            "{} open queries, {} answers",
            status.open_queries, status.answers_total
        ),
        vec![
            entry("open queries", status.open_queries),
            entry("answers committed", status.answers_total),
            entry(
                "answers since training",
                status.deploy.answers_since_training,
            ),
        ],
    )
}

fn training_status(status: &NodeStatus) -> DiagnosticStatus {
    let deploy = status.deploy;
    let mut values = Vec::new();
    let (level, message) = match &deploy.training {
        TrainingState::Idle => (DiagnosticStatus::OK, "idle".to_owned()),
        TrainingState::Running {
            run_id,
            stage,
            progress,
        } => {
            values.push(entry("run id", run_id));
            values.push(entry("stage", stage));
            values.push(entry("stage progress", format!("{progress:.2}")));
            (
                DiagnosticStatus::OK,
                format!("run {run_id}: {stage} {:.0} %", 100.0 * progress),
            )
        }
        TrainingState::Succeeded { run_id, version } => {
            values.push(entry("run id", run_id));
            values.push(entry("version", version));
            (
                DiagnosticStatus::OK,
                format!("run {run_id} deployed {version}"),
            )
        }
        TrainingState::Failed { run_id, message } => {
            values.push(entry("run id", run_id));
            values.push(entry("error", message));
            // The models in use stay as they were, so a failed run needs attention but
            // does not stop the node.
            (DiagnosticStatus::WARN, format!("run {run_id} failed"))
        }
    };
    if let Some(rejection) = &deploy.last_rejection {
        values.push(entry("last rejection", rejection));
    }
    named(status, "training", level, message, values)
}

fn models_status(status: &NodeStatus) -> DiagnosticStatus {
    let deploy = status.deploy;
    let provider = status.execution_provider.unwrap_or("unknown");
    let values = vec![
        entry(
            "deployed version",
            deploy.deployed_version.as_deref().unwrap_or(""),
        ),
        entry(
            "previous version",
            deploy.previous_version.as_deref().unwrap_or(""),
        ),
        entry("execution provider", provider),
    ];
    let (level, message) = match &deploy.deployed_version {
        None => (
            DiagnosticStatus::ERROR,
            "no model set is active: train one or activate one with clarify policy".to_owned(),
        ),
        Some(version) if status.execution_provider.is_none() => (
            DiagnosticStatus::WARN,
            format!("{version} active, but no encoder is loaded"),
        ),
        Some(version) => (
            DiagnosticStatus::OK,
            format!("{version} active on {provider}"),
        ),
    };
    named(status, "models", level, message, values)
}

/// The policy runner's state, as its diagnostics report it.
#[derive(Clone, Debug)]
pub struct RunnerStatus<'a> {
    /// Node name, the prefix of the status name.
    pub node_name: &'a str,
    /// Version of the model set that drives the robot.
    pub version: &'a str,
    /// ONNX Runtime execution provider of the policy.
    pub execution_provider: Option<&'a str>,
    /// Whether the policy may drive (service enabled and, with a deadman, button held).
    pub enabled: bool,
    /// Policy actions published since the start.
    pub actions: u64,
    /// Safe actions published since the start.
    pub safe_actions: u64,
    /// Model sets swapped in since the start.
    pub swaps: u64,
    /// Announced model sets that failed validation since the start.
    pub rejected_updates: u64,
    /// Reason the last step published the safe action; `None` after a policy action.
    pub safe_reason: Option<String>,
}

/// Builds the runner's diagnostic array: one status, WARN while the safe action replaces
/// the policy's and OK otherwise.
pub fn runner_diagnostic_array(status: &RunnerStatus, stamp: Time) -> DiagnosticArray {
    let (level, message) = match &status.safe_reason {
        Some(reason) => (
            DiagnosticStatus::WARN,
            format!("publishing the safe action: {reason}"),
        ),
        None if status.enabled => (
            DiagnosticStatus::OK,
            format!("model set {} drives", status.version),
        ),
        None => (DiagnosticStatus::OK, "disabled".to_owned()),
    };
    DiagnosticArray {
        header: Header {
            stamp,
            frame_id: String::new(),
        },
        status: vec![DiagnosticStatus {
            level,
            name: format!("{}: policy", status.node_name),
            message,
            hardware_id: String::new(),
            values: vec![
                entry("version", status.version),
                entry(
                    "execution_provider",
                    status.execution_provider.unwrap_or("none"),
                ),
                entry("enabled", status.enabled),
                entry("actions", status.actions),
                entry("safe_actions", status.safe_actions),
                entry("swaps", status.swaps),
                entry("rejected_updates", status.rejected_updates),
            ],
        }],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::recorder::{DropReason, TopicSnapshot};

    fn counters(received: u64, dropped: u64, steps: u64) -> CounterSnapshot {
        CounterSnapshot {
            topics: vec![TopicSnapshot {
                topic: "/joint_states".to_owned(),
                received,
                accepted: received - dropped,
                dropped: if dropped > 0 {
                    BTreeMap::from([(DropReason::Stale, dropped)])
                } else {
                    BTreeMap::new()
                },
            }],
            ticks: steps,
            ticks_missed: 0,
            steps_recorded: steps,
            episodes_completed: 1,
            episodes_interrupted: 0,
            episodes_written: 1,
            steps_written: steps,
            steps_dropped: BTreeMap::new(),
        }
    }

    fn value<'a>(status: &'a DiagnosticStatus, key: &str) -> Option<&'a str> {
        status
            .values
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }

    fn deployed() -> DeploySnapshot {
        DeploySnapshot {
            deployed_version: Some("v2".to_owned()),
            previous_version: Some("v1".to_owned()),
            answers_since_training: 7,
            ..DeploySnapshot::default()
        }
    }

    #[test]
    fn healthy_node_reports_ok_in_every_area() {
        let recorder = counters(1000, 0, 1000);
        let previous = counters(500, 0, 500);
        let deploy = deployed();
        let status = NodeStatus {
            node_name: "clarify",
            recorder: Some(&recorder),
            recorder_previous: Some((&previous, 10.0)),
            open_queries: 2,
            answers_total: 40,
            deploy: &deploy,
            execution_provider: Some("cuda"),
        };

        let array = diagnostic_array(&status, Time { sec: 5, nanosec: 0 });

        assert_eq!(array.header.stamp, Time { sec: 5, nanosec: 0 });
        let names: Vec<&str> = array.status.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clarify: recorder",
                "clarify: queries",
                "clarify: training",
                "clarify: models"
            ]
        );
        for entry in &array.status {
            assert_eq!(entry.level, DiagnosticStatus::OK, "{entry:?}");
        }
        let [recorder, queries, _, models] = &array.status[..] else {
            panic!("four statuses expected");
        };
        assert_eq!(value(recorder, "step rate (Hz)"), Some("50.0"));
        assert_eq!(value(recorder, "/joint_states rate (Hz)"), Some("50.0"));
        assert_eq!(value(queries, "open queries"), Some("2"));
        assert_eq!(value(queries, "answers since training"), Some("7"));
        assert_eq!(value(models, "deployed version"), Some("v2"));
        assert_eq!(value(models, "previous version"), Some("v1"));
        assert_eq!(value(models, "execution provider"), Some("cuda"));
    }

    #[test]
    fn drops_failed_runs_and_missing_models_raise_levels() {
        let warn_drops = counters(1000, 50, 950);
        let error_drops = counters(1000, 200, 800);
        let mut store_failed = counters(1000, 0, 1000);
        store_failed
            .steps_dropped
            .insert(StepDropReason::StoreFailed, 30);
        let deploy = DeploySnapshot {
            training: TrainingState::Failed {
                run_id: 3,
                message: "clarify train failed: store not found".to_owned(),
            },
            last_rejection: Some("model set v3: reward accuracy too low".to_owned()),
            ..DeploySnapshot::default()
        };
        let base = NodeStatus {
            node_name: "clarify",
            recorder: None,
            recorder_previous: None,
            open_queries: 0,
            answers_total: 0,
            deploy: &deploy,
            execution_provider: None,
        };
        let recorder_level = |counters: &CounterSnapshot| {
            let status = NodeStatus {
                recorder: Some(counters),
                ..base
            };
            diagnostic_array(&status, Time::default()).status[0].level
        };

        assert_eq!(recorder_level(&warn_drops), DiagnosticStatus::WARN);
        assert_eq!(recorder_level(&error_drops), DiagnosticStatus::ERROR);
        assert_eq!(recorder_level(&store_failed), DiagnosticStatus::ERROR);

        let array = diagnostic_array(&base, Time::default());
        let [recorder, _, training, models] = &array.status[..] else {
            panic!("four statuses expected");
        };
        assert_eq!(recorder.level, DiagnosticStatus::OK);
        assert_eq!(recorder.message, "recorder off");
        assert_eq!(training.level, DiagnosticStatus::WARN);
        assert_eq!(
            value(training, "error"),
            Some("clarify train failed: store not found")
        );
        assert_eq!(
            value(training, "last rejection"),
            Some("model set v3: reward accuracy too low")
        );
        assert_eq!(models.level, DiagnosticStatus::ERROR);
        assert_eq!(value(models, "execution provider"), Some("unknown"));
    }

    #[test]
    fn drop_window_uses_previous_report() {
        // 100 drops long ago, none since the previous report: OK again.
        let previous = counters(1000, 100, 900);
        let now = counters(2000, 100, 1900);
        let deploy = deployed();
        let status = NodeStatus {
            node_name: "clarify",
            recorder: Some(&now),
            recorder_previous: Some((&previous, 1.0)),
            open_queries: 0,
            answers_total: 0,
            deploy: &deploy,
            execution_provider: Some("cpu"),
        };

        let array = diagnostic_array(&status, Time::default());

        assert_eq!(array.status[0].level, DiagnosticStatus::OK);
        assert_eq!(
            value(&array.status[0], "/joint_states dropped: stale"),
            Some("100")
        );
    }
}

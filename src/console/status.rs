//! The status panel's data: answers of the current round and until retraining, training
//! progress, the deployed model with its validation metrics and recent answers per
//! operator.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Shared, lock};
use crate::deploy::TrainingState;
use crate::registry::{MANIFEST_FILE, Manifest};
use crate::store::{AnsweredQuery, Query, StoreError, unix_secs_now};

/// Answers listed per operator.
const RECENT_PER_OPERATOR: usize = 5;
/// Operators listed, most recently active first.
const MAX_OPERATORS: usize = 20;

/// Returns the JSON form of a training state.
pub(crate) fn training_json(state: &TrainingState) -> Value {
    match state {
        TrainingState::Idle => json!({ "state": "idle" }),
        TrainingState::Running {
            run_id,
            stage,
            progress,
        } => json!({
            "state": "running", "run_id": run_id, "stage": stage, "progress": progress,
        }),
        TrainingState::Succeeded { run_id, version } => json!({
            "state": "succeeded", "run_id": run_id, "version": version,
        }),
        TrainingState::Failed { run_id, message } => json!({
            "state": "failed", "run_id": run_id, "message": message,
        }),
    }
}

/// Returns the run id of a training state, if it has one.
fn run_id(state: &TrainingState) -> Option<i64> {
    match state {
        TrainingState::Idle => None,
        TrainingState::Running { run_id, .. }
        | TrainingState::Succeeded { run_id, .. }
        | TrainingState::Failed { run_id, .. } => Some(*run_id),
    }
}

/// Builds the status document. Runs store reads, so it belongs on a blocking thread.
pub(crate) fn status(shared: &Shared) -> Result<Value, StoreError> {
    let context = &shared.context;
    let snapshot = (context.snapshot)();
    let accepted_this_run = lock(&context.desk).counters();
    let store = lock(&shared.reader);
    let now = unix_secs_now();
    let open = store.unanswered_queries(now)?;
    let answered = store.answered_queries()?;

    let mut training = training_json(&snapshot.training);
    if let Some(id) = run_id(&snapshot.training)
        && let Ok(run) = store.training_run(id)
    {
        training["run"] = json!({
            "id": run.id,
            "status": run.status.as_str(),
            "started_at_unix_secs": run.started_at_unix_secs,
            "finished_at_unix_secs": run.finished_at_unix_secs,
            "answers_used": run.answers_used,
        });
    }
    let threshold = context.retrain_after_answers;
    let since = snapshot.answers_since_training;
    let dataset_name = store
        .dataset(context.dataset)
        .map(|record| record.meta.name)
        .unwrap_or_default();
    Ok(json!({
        "dataset": { "id": context.dataset.get(), "name": dataset_name },
        "open_queries": open.len(),
        "round": round(&answered, &open),
        "answers": {
            "stored_total": answered.len(),
            "accepted_this_run": accepted_this_run.accepted,
            "undone_this_run": accepted_this_run.undone,
            "since_training": since,
            "retrain_after_answers": threshold,
            "until_retraining": (threshold > 0).then(|| threshold.saturating_sub(since)),
        },
        "training": training,
        "model": model(shared, &snapshot.deployed_version, &snapshot.previous_version),
        "last_rejection": snapshot.last_rejection,
        "operators": operators(&answered),
    }))
}

/// Returns the size and answered count of the newest round: the queries created at the
/// newest creation time, because a round's queries are stored with one timestamp.
fn round(answered: &[AnsweredQuery], open: &[Query]) -> Value {
    let newest = answered
        .iter()
        .map(|entry| &entry.query)
        .chain(open.iter())
        .map(|query| query.query.created_at_unix_secs)
        .fold(None, |newest: Option<f64>, created| {
            Some(newest.map_or(created, |newest| newest.max(created)))
        });
    let Some(created) = newest else {
        return Value::Null;
    };
    let answered_in_round = answered
        .iter()
        .filter(|entry| entry.query.query.created_at_unix_secs == created)
        .count();
    let open_in_round = open
        .iter()
        .filter(|query| query.query.created_at_unix_secs == created)
        .count();
    // Expired unanswered queries of the round count as neither answered nor open.
    json!({
        "created_at_unix_secs": created,
        "answered": answered_in_round,
        "open": open_in_round,
    })
}

/// Returns the deployed version with its manifest's metrics and answer count, read from
/// the registry folder. A missing or unreadable manifest is reported in `error`.
fn model(shared: &Shared, version: &Option<String>, previous: &Option<String>) -> Value {
    let Some(version) = version else {
        return json!({ "version": null });
    };
    let path = shared.context.models_dir.join(version).join(MANIFEST_FILE);
    let manifest = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
        .and_then(|text| {
            Manifest::from_json(&text, &path.display().to_string())
                .map_err(|error| error.to_string())
        });
    match manifest {
        Ok(manifest) => json!({
            "version": version,
            "previous": previous,
            "metrics": manifest.metrics,
            "answers_used": manifest.data.answers_used,
        }),
        Err(error) => json!({ "version": version, "previous": previous, "error": error }),
    }
}

/// Returns each operator's answer count and most recent answers, most recently active
/// operator first.
fn operators(answered: &[AnsweredQuery]) -> Value {
    let mut by_operator: BTreeMap<&str, Vec<&AnsweredQuery>> = BTreeMap::new();
    for entry in answered {
        by_operator
            .entry(entry.answer.operator.as_str())
            .or_default()
            .push(entry);
    }
    let mut rows: Vec<(f64, Value)> = by_operator
        .into_iter()
        .map(|(operator, mut entries)| {
            entries.sort_by(|a, b| {
                b.answer
                    .answered_at_unix_secs
                    .total_cmp(&a.answer.answered_at_unix_secs)
            });
            let last = entries[0].answer.answered_at_unix_secs;
            let recent: Vec<Value> = entries
                .iter()
                .take(RECENT_PER_OPERATOR)
                .map(|entry| {
                    json!({
                        "query_id": entry.query.id.get(),
                        "answer": entry.answer.answer.as_str(),
                        "answered_at_unix_secs": entry.answer.answered_at_unix_secs,
                    })
                })
                .collect();
            let row = json!({
                "operator": operator,
                "answers": entries.len(),
                "last_answered_at_unix_secs": last,
                "recent": recent,
            });
            (last, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    Value::Array(
        rows.into_iter()
            .take(MAX_OPERATORS)
            .map(|(_, row)| row)
            .collect(),
    )
}

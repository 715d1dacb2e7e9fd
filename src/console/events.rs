//! Live updates: the store poller and the server-sent event stream.
//!
//! The poller reads the store and the deployment state twice a second and sends an event
//! when something changed, so answers from the topic, the service, the gamepad and other
//! consoles all reach every page. Answers and undos through this console are sent at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tracing::warn;

use super::{Shared, lock, status};
use crate::deploy::TrainingState;
use crate::store::unix_secs_now;

/// Interval between two store reads of the poller.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One server-sent event: its name and JSON data.
#[derive(Clone, Debug)]
pub(crate) struct ConsoleEvent {
    /// `queries`, `answers`, `training`, `model` or `resync`.
    pub(crate) kind: &'static str,
    pub(crate) data: Value,
}

impl ConsoleEvent {
    pub(crate) fn new(kind: &'static str, data: Value) -> Self {
        Self { kind, data }
    }
}

/// Store and deployment state that the poller compares between two reads.
#[derive(Clone, Debug, Default, PartialEq)]
struct Observed {
    open_queries: Vec<i64>,
    answers: usize,
    training: Option<Value>,
    deployed_version: Option<String>,
}

/// Reads what the poller compares.
fn observe(shared: &Shared) -> Result<Observed, String> {
    let (open_queries, answers) = {
        let store = lock(&shared.reader);
        let open = store
            .unanswered_queries(unix_secs_now())
            .map_err(|error| error.to_string())?;
        let counts = store.answer_counts().map_err(|error| error.to_string())?;
        (
            open.iter().map(|query| query.id.get()).collect(),
            counts.total(),
        )
    };
    let snapshot = (shared.context.snapshot)();
    let training = match &snapshot.training {
        TrainingState::Idle => None,
        state => Some(status::training_json(state)),
    };
    Ok(Observed {
        open_queries,
        answers,
        training,
        deployed_version: snapshot.deployed_version,
    })
}

/// Sends an event for each change of the store or the deployment state until the console
/// closes.
pub(crate) async fn poll_store(shared: Arc<Shared>) {
    let mut closing = shared.closing.subscribe();
    let mut last: Option<Observed> = None;
    let mut failures: u64 = 0;
    loop {
        tokio::select! {
            _ = closing.wait_for(|closed| *closed) => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let reader = Arc::clone(&shared);
        let observed = match tokio::task::spawn_blocking(move || observe(&reader)).await {
            Ok(Ok(observed)) => observed,
            Ok(Err(error)) => {
                failures += 1;
                // The first failure and every 100th are logged; the poller keeps trying.
                if failures % 100 == 1 {
                    warn!(%error, failures, "the operator console failed to read the store");
                }
                continue;
            }
            Err(error) => {
                warn!(%error, "the operator console's store read panicked");
                continue;
            }
        };
        if let Some(previous) = &last {
            for event in changes(previous, &observed) {
                // An error only means that no page is listening.
                let _ = shared.events.send(event);
            }
        }
        last = Some(observed);
    }
}

/// Returns the events that tell pages of the differences from `before` to `after`.
fn changes(before: &Observed, after: &Observed) -> Vec<ConsoleEvent> {
    let mut events = Vec::new();
    if before.open_queries != after.open_queries {
        events.push(ConsoleEvent::new(
            "queries",
            json!({ "open": after.open_queries.len() }),
        ));
    }
    if before.answers != after.answers {
        events.push(ConsoleEvent::new(
            "answers",
            json!({ "total": after.answers }),
        ));
    }
    if before.training != after.training {
        events.push(ConsoleEvent::new(
            "training",
            after.training.clone().unwrap_or(Value::Null),
        ));
    }
    if before.deployed_version != after.deployed_version {
        events.push(ConsoleEvent::new(
            "model",
            json!({ "version": after.deployed_version }),
        ));
    }
    events
}

/// Streams the console's events to one page until the console closes.
pub(crate) async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = shared.events.subscribe();
    let closing = shared.closing.subscribe();
    let events = futures::stream::unfold(
        (receiver, closing),
        |(mut receiver, mut closing)| async move {
            let event = tokio::select! {
                _ = closing.wait_for(|closed| *closed) => return None,
                received = receiver.recv() => match received {
                    Ok(event) => Event::default()
                        .event(event.kind)
                        .data(event.data.to_string()),
                    // A slow page missed events; it reloads everything.
                    Err(RecvError::Lagged(missed)) => Event::default()
                        .event("resync")
                        .data(json!({ "missed": missed }).to_string()),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(event), (receiver, closing)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_difference() {
        let before = Observed::default();
        let after = Observed {
            open_queries: vec![1],
            answers: 2,
            training: Some(json!({ "state": "running" })),
            deployed_version: Some("v1".to_owned()),
        };
        let kinds: Vec<&str> = changes(&before, &after)
            .iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(kinds, ["queries", "answers", "training", "model"]);
        assert!(changes(&after, &after).is_empty());
    }
}

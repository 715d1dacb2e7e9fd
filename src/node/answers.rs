//! The answer desk: checks an operator's answer against the store, commits it and only then
//! acknowledges it.
//!
//! Every answer, whether from the answer topic, the SubmitAnswer service or the gamepad,
//! goes through [`AnswerDesk::submit`]. The desk owns one store connection, whose commits are
//! on disk when they return (WAL with `synchronous = FULL`), so an answer that `submit`
//! accepted survives a crash of the node.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;
use tracing::{info, warn};

use crate::answer::Answer;
use crate::msg::PreferenceAnswer;
use crate::store::{NewAnswer, Query, QueryId, Store, StoreError, StoredAnswer};

/// Receives a call for every answer committed to the store. The deployment part counts them
/// to start retraining.
pub trait AnswerListener: Send + Sync {
    /// Called once per committed answer, after the commit.
    fn answer_committed(&self);

    /// Called once per answer deleted by an undo, after the commit, so that the answer no
    /// longer counts.
    fn answer_undone(&self) {}
}

/// The model manager behind a mutex, because it is `Send` but not `Sync`.
impl AnswerListener for std::sync::Mutex<crate::deploy::ModelManager> {
    fn answer_committed(&self) {
        self.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .answer_committed();
    }

    fn answer_undone(&self) {
        self.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .answer_undone();
    }
}

/// Source of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerSource {
    /// The `PreferenceAnswer` topic.
    Topic,
    /// The `SubmitAnswer` service.
    Service,
    /// A gamepad button.
    Joy,
    /// The operator console (web).
    Console,
}

impl fmt::Display for AnswerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnswerSource::Topic => "topic",
            AnswerSource::Service => "service",
            AnswerSource::Joy => "joy",
            AnswerSource::Console => "console",
        })
    }
}

/// Reason an answer was not stored. The text is the message of a rejected SubmitAnswer
/// call.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum Rejection {
    /// The answer field holds none of the answer constants.
    #[error("invalid answer value {0}: expected LEFT (1), RIGHT (2), CANT_TELL (3) or SKIP (4)")]
    InvalidAnswer(u8),
    /// The response time is negative or not a number.
    #[error("invalid response_time_sec {0}: expected a number of seconds ≥ 0")]
    InvalidResponseTime(f32),
    /// No query with this id is stored.
    #[error("unknown query {0}: no query with this id is stored")]
    UnknownQuery(i64),
    /// The query expired before the answer arrived.
    #[error(
        "query {query} expired at Unix time {expired_at:.3}, {late_secs:.3} s before the answer"
    )]
    Expired {
        /// The query's id.
        query: i64,
        /// Its expiry time in Unix seconds.
        expired_at: f64,
        /// Seconds between the expiry and the answer.
        late_secs: f64,
    },
    /// The query has an answer already.
    #[error("query {query} is already answered ({existing}); the stored answer is kept")]
    Duplicate {
        /// The query's id.
        query: i64,
        /// The stored answer.
        existing: Answer,
    },
    /// The store failed, so the answer is not stored.
    #[error("the store failed to record the answer: {0}")]
    StoreFailed(String),
}

impl Rejection {
    /// Returns a short name of the rejection kind, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::InvalidAnswer(_) | Rejection::InvalidResponseTime(_) => "invalid",
            Rejection::UnknownQuery(_) => "unknown_query",
            Rejection::Expired { .. } => "expired",
            Rejection::Duplicate { .. } => "duplicate",
            Rejection::StoreFailed(_) => "store_failed",
        }
    }
}

/// Counts of the desk's answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCounters {
    /// Answers stored since the node started.
    pub accepted: u64,
    /// Rejected answers with an invalid answer value or response time.
    pub invalid: u64,
    /// Rejected answers to unknown queries.
    pub unknown_query: u64,
    /// Rejected answers to expired queries.
    pub expired: u64,
    /// Rejected second answers to a query.
    pub duplicate: u64,
    /// Answers lost to a store failure (not acknowledged).
    pub store_failed: u64,
    /// Stored answers deleted again by an undo; `accepted` still counts them.
    pub undone: u64,
}

impl AnswerCounters {
    /// Returns the number of rejected answers of every kind.
    pub fn rejected(&self) -> u64 {
        self.invalid + self.unknown_query + self.expired + self.duplicate + self.store_failed
    }

    fn count(&mut self, rejection: &Rejection) {
        let counter = match rejection {
            Rejection::InvalidAnswer(_) | Rejection::InvalidResponseTime(_) => &mut self.invalid,
            Rejection::UnknownQuery(_) => &mut self.unknown_query,
            Rejection::Expired { .. } => &mut self.expired,
            Rejection::Duplicate { .. } => &mut self.duplicate,
            Rejection::StoreFailed(_) => &mut self.store_failed,
        };
        *counter += 1;
    }
}

/// Checks and commits answers on its own store connection.
pub struct AnswerDesk {
    store: Store,
    counters: AnswerCounters,
    listener: Option<Arc<dyn AnswerListener>>,
}

impl fmt::Debug for AnswerDesk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerDesk")
            .field("store", &self.store.path())
            .field("counters", &self.counters)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl AnswerDesk {
    /// Opens a connection to the store at `path` for answers.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::new(Store::open(path)?))
    }

    /// Wraps an open store connection.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            counters: AnswerCounters::default(),
            listener: None,
        }
    }

    /// Sets the listener that hears of each committed answer.
    pub fn set_listener(&mut self, listener: Arc<dyn AnswerListener>) {
        self.listener = Some(listener);
    }

    /// Removes the listener, so that it can be stopped.
    pub fn clear_listener(&mut self) {
        self.listener = None;
    }

    /// Returns the desk's store connection.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Returns the counts since the desk was created.
    pub fn counters(&self) -> AnswerCounters {
        self.counters
    }

    /// Returns the queries that are unanswered and unexpired at `now_unix_secs`, oldest
    /// first. After a restart these are the queries the node offers again.
    pub fn open_queries(&self, now_unix_secs: f64) -> Result<Vec<Query>, StoreError> {
        self.store.unanswered_queries(now_unix_secs)
    }

    /// Checks `answer` and commits it at `now_unix_secs`. `Ok` means the answer is on disk.
    ///
    /// The answer time is the message's stamp, or `now_unix_secs` when the stamp is zero.
    /// An answer to a query whose expiry time is at or before `now_unix_secs` is rejected,
    /// so the deadline is judged by the node's clock, not by the operator's stamp.
    pub fn submit(
        &mut self,
        answer: &PreferenceAnswer,
        source: AnswerSource,
        now_unix_secs: f64,
    ) -> Result<QueryId, Rejection> {
        let result = self.check_and_record(answer, now_unix_secs);
        match &result {
            Ok(query) => {
                self.counters.accepted += 1;
                info!(
                    query = query.get(),
                    answer = %decode(answer.answer).map_or("?", Answer::as_str),
                    operator = %answer.operator_id,
                    %source,
                    "answer stored"
                );
                if let Some(listener) = &self.listener {
                    listener.answer_committed();
                }
            }
            Err(rejection) => {
                self.counters.count(rejection);
                warn!(
                    query = answer.query_id,
                    %source,
                    reason = rejection.kind(),
                    rejected_total = self.counters.rejected(),
                    "answer rejected: {rejection}"
                );
            }
        }
        result
    }

    /// Deletes the most recent answer of `operator` if it was committed at most
    /// `window_secs` before `now_unix_secs`, and returns it. Its query is open again until at
    /// least `reopen_until_unix_secs`. The listener hears of the undo, so the answer no
    /// longer counts towards retraining.
    ///
    /// The window is judged by the answer's stored time, which is the node's clock for
    /// console answers but the sender's stamp for topic and service answers.
    pub fn undo(
        &mut self,
        operator: &str,
        window_secs: f64,
        now_unix_secs: f64,
        reopen_until_unix_secs: f64,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        let undone = self.store.undo_answer(
            operator,
            now_unix_secs - window_secs,
            reopen_until_unix_secs,
        )?;
        if let Some(answer) = &undone {
            self.counters.undone += 1;
            info!(
                query = answer.query.get(),
                answer = %answer.answer,
                %operator,
                "answer undone"
            );
            if let Some(listener) = &self.listener {
                listener.answer_undone();
            }
        }
        Ok(undone)
    }

    fn check_and_record(
        &mut self,
        answer: &PreferenceAnswer,
        now_unix_secs: f64,
    ) -> Result<QueryId, Rejection> {
        let value = decode(answer.answer).ok_or(Rejection::InvalidAnswer(answer.answer))?;
        let response = answer.response_time_sec;
        if !(response.is_finite() && response >= 0.0) {
            return Err(Rejection::InvalidResponseTime(response));
        }
        let id = QueryId(answer.query_id);
        let query = match self.store.query(id) {
            Ok(query) => query,
            Err(StoreError::QueryNotFound(_)) => return Err(Rejection::UnknownQuery(id.get())),
            Err(error) => return Err(Rejection::StoreFailed(error.to_string())),
        };
        if let Some(expired_at) = query.query.expires_at_unix_secs
            && expired_at <= now_unix_secs
        {
            // A duplicate is the more useful reason when the query was answered in time.
            if let Ok(Some(existing)) = self.store.answer(id) {
                return Err(Rejection::Duplicate {
                    query: id.get(),
                    existing: existing.answer,
                });
            }
            return Err(Rejection::Expired {
                query: id.get(),
                expired_at,
                late_secs: now_unix_secs - expired_at,
            });
        }
        let answered_at = if answer.stamp.is_zero() {
            now_unix_secs
        } else {
            answer.stamp.as_unix_secs()
        };
        let record = NewAnswer {
            query: id,
            operator: answer.operator_id.clone(),
            answer: value,
            answered_at_unix_secs: answered_at,
            response_secs: f64::from(response),
        };
        match self.store.record_answer(&record) {
            Ok(()) => Ok(id),
            Err(StoreError::AlreadyAnswered { existing, .. }) => Err(Rejection::Duplicate {
                query: id.get(),
                existing,
            }),
            Err(StoreError::QueryNotFound(_)) => Err(Rejection::UnknownQuery(id.get())),
            Err(error) => Err(Rejection::StoreFailed(error.to_string())),
        }
    }
}

/// Decodes a `PreferenceAnswer.answer` code; `None` for values that are no answer.
fn decode(code: u8) -> Option<Answer> {
    PreferenceAnswer {
        answer: code,
        ..PreferenceAnswer::default()
    }
    .decoded_answer()
    .ok()
}

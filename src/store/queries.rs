//! Preference queries and the operator's answers in the segment store.

use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::error::SqliteContext;
use super::{
    EpisodeId, QueryId, SegmentRef, Store, StoreError, check_number, from_sql_int, to_sql_int,
};
use crate::answer::Answer;

/// A query to insert: two segments to compare and where the pair came from.
#[derive(Clone, Debug, PartialEq)]
pub struct NewQuery {
    /// The first segment, shown on the left.
    pub left: SegmentRef,
    /// The second segment, shown on the right.
    pub right: SegmentRef,
    /// Name of the selector that chose the pair (`clarify`, `random`, `disagreement`).
    pub selector: String,
    /// Version of the encoder whose embeddings the selector used, if any.
    pub encoder_version: Option<String>,
    /// Creation time in Unix seconds.
    pub created_at_unix_secs: f64,
    /// Time in Unix seconds after which the query is no longer offered, or `None`.
    pub expires_at_unix_secs: Option<f64>,
}

/// A stored query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Row id.
    pub id: QueryId,
    /// The segments, selector and times as inserted.
    pub query: NewQuery,
}

/// An answer to record for a stored query.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAnswer {
    /// The query answered.
    pub query: QueryId,
    /// Operator name or console session id of the person who answered.
    pub operator: String,
    /// The answer.
    pub answer: Answer,
    /// Time of the answer in Unix seconds.
    pub answered_at_unix_secs: f64,
    /// Seconds from showing the query to the answer, at least 0.
    pub response_secs: f64,
}

/// A stored answer. The fields are those of [`NewAnswer`].
pub type StoredAnswer = NewAnswer;

/// A query together with its answer.
#[derive(Clone, Debug, PartialEq)]
pub struct AnsweredQuery {
    /// The query.
    pub query: Query,
    /// Its answer.
    pub answer: StoredAnswer,
}

/// Number of stored answers of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCounts {
    /// Answers preferring the left segment.
    pub left: usize,
    /// Answers preferring the right segment.
    pub right: usize,
    /// "Can't tell" answers.
    pub cant_tell: usize,
    /// Skipped queries.
    pub skip: usize,
}

impl AnswerCounts {
    /// Returns the count of one kind of answer.
    pub fn get(&self, answer: Answer) -> usize {
        match answer {
            Answer::Left => self.left,
            Answer::Right => self.right,
            Answer::CantTell => self.cant_tell,
            Answer::Skip => self.skip,
        }
    }

    /// Returns the number of answers of all kinds.
    pub fn total(&self) -> usize {
        self.left + self.right + self.cant_tell + self.skip
    }

    fn get_mut(&mut self, answer: Answer) -> &mut usize {
        match answer {
            Answer::Left => &mut self.left,
            Answer::Right => &mut self.right,
            Answer::CantTell => &mut self.cant_tell,
            Answer::Skip => &mut self.skip,
        }
    }
}

const QUERY_COLUMNS: &str = "q.id, q.left_episode_id, q.left_start, q.left_length, \
    q.right_episode_id, q.right_start, q.right_length, q.selector, q.encoder_version, \
    q.created_at_unix_secs, q.expires_at_unix_secs";

/// Columns of `answers` that follow `QUERY_COLUMNS` in joined reads.
const ANSWER_COLUMNS: &str = "a.operator, a.answer, a.answered_at_unix_secs, a.response_secs";

impl Store {
    /// Inserts a query after checking that both segments lie inside their episodes and
    /// share no step.
    pub fn insert_query(&mut self, query: &NewQuery) -> Result<QueryId, StoreError> {
        check_number("created_at_unix_secs", query.created_at_unix_secs, false)?;
        if let Some(expires) = query.expires_at_unix_secs {
            check_number("expires_at_unix_secs", expires, false)?;
        }
        for segment in [query.left, query.right] {
            if segment.length == 0 {
                return Err(StoreError::EmptySegment(segment));
            }
            if segment.end().is_none() {
                return Err(StoreError::SegmentEndOverflow(segment));
            }
        }
        if query.left == query.right {
            return Err(StoreError::SameSegment(query.left));
        }
        if query.left.overlaps(&query.right) {
            return Err(StoreError::OverlappingSegments {
                left: query.left,
                right: query.right,
            });
        }

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin the query insert")?;
        check_segment(&transaction, query.left)?;
        check_segment(&transaction, query.right)?;

        transaction
            .execute(
                "INSERT INTO queries (left_episode_id, left_start, left_length, \
                 right_episode_id, right_start, right_length, selector, encoder_version, \
                 created_at_unix_secs, expires_at_unix_secs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    query.left.episode.get(),
                    to_sql_int(query.left.start),
                    to_sql_int(query.left.length),
                    query.right.episode.get(),
                    to_sql_int(query.right.start),
                    to_sql_int(query.right.length),
                    query.selector,
                    query.encoder_version,
                    query.created_at_unix_secs,
                    query.expires_at_unix_secs,
                ],
            )
            .during("insert a query")?;
        let id = transaction.last_insert_rowid();
        transaction.commit().during("commit a query")?;
        Ok(QueryId(id))
    }

    /// Records the answer to a query. The answer is on disk when this returns `Ok`, so the
    /// caller may acknowledge it to the operator.
    ///
    /// Fails with [`StoreError::QueryNotFound`] for an unknown query and with
    /// [`StoreError::AlreadyAnswered`] when the query has an answer; the stored answer is
    /// kept. An expired query still takes its answer, because the operator did see it.
    pub fn record_answer(&mut self, answer: &NewAnswer) -> Result<(), StoreError> {
        check_number("answered_at_unix_secs", answer.answered_at_unix_secs, false)?;
        check_number("response_secs", answer.response_secs, true)?;

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin the answer insert")?;

        let query_exists = transaction
            .query_row(
                "SELECT 1 FROM queries WHERE id = ?1",
                [answer.query.get()],
                |_| Ok(()),
            )
            .optional()
            .during("look up the answered query")?
            .is_some();
        if !query_exists {
            return Err(StoreError::QueryNotFound(answer.query));
        }

        let existing: Option<String> = transaction
            .query_row(
                "SELECT answer FROM answers WHERE query_id = ?1",
                [answer.query.get()],
                |row| row.get(0),
            )
            .optional()
            .during("look up an earlier answer")?;
        if let Some(existing) = existing {
            return Err(StoreError::AlreadyAnswered {
                query: answer.query,
                existing: parse_answer(existing)?,
                rejected: answer.answer,
            });
        }

        transaction
            .execute(
                "INSERT INTO answers (query_id, operator, answer, answered_at_unix_secs, \
                 response_secs) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    answer.query.get(),
                    answer.operator,
                    answer.answer.as_str(),
                    answer.answered_at_unix_secs,
                    answer.response_secs,
                ],
            )
            .during("insert an answer")?;
        transaction.commit().during("commit an answer")?;
        Ok(())
    }

    /// Deletes the most recent answer of `operator` when it was answered at or after
    /// `answered_after_unix_secs`, so that its query is unanswered again, and returns it.
    /// Returns `None` when `operator` has no answer that recent.
    ///
    /// A query whose expiry time is before `open_until_unix_secs` gets that expiry time, so
    /// the reopened query is offered again even when it expired while it was answered.
    /// Both changes are one transaction, on disk when this returns `Ok`.
    pub fn undo_answer(
        &mut self,
        operator: &str,
        answered_after_unix_secs: f64,
        open_until_unix_secs: f64,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        check_number("answered_after_unix_secs", answered_after_unix_secs, false)?;
        check_number("open_until_unix_secs", open_until_unix_secs, false)?;

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .during("begin the answer undo")?;
        let found = transaction
            .query_row(
                &format!(
                    "SELECT a.query_id, {ANSWER_COLUMNS} FROM answers a \
                     WHERE a.operator = ?1 AND a.answered_at_unix_secs >= ?2 \
                     ORDER BY a.answered_at_unix_secs DESC, a.query_id DESC LIMIT 1"
                ),
                params![operator, answered_after_unix_secs],
                |row| {
                    let query = QueryId(row.get(0)?);
                    Ok(read_answer(row, query, 1))
                },
            )
            .optional()
            .during("find the answer to undo")?
            .transpose()?;
        let Some(answer) = found else {
            return Ok(None);
        };

        transaction
            .execute(
                "DELETE FROM answers WHERE query_id = ?1",
                [answer.query.get()],
            )
            .during("delete an answer")?;
        transaction
            .execute(
                "UPDATE queries SET expires_at_unix_secs = ?2 \
                 WHERE id = ?1 AND expires_at_unix_secs < ?2",
                params![answer.query.get(), open_until_unix_secs],
            )
            .during("reopen an answered query")?;
        transaction.commit().during("commit an answer undo")?;
        Ok(Some(answer))
    }

    /// Sets or clears (`None`) the expiry time of a stored query, in Unix seconds.
    pub fn set_query_expiry(
        &mut self,
        id: QueryId,
        expires_at_unix_secs: Option<f64>,
    ) -> Result<(), StoreError> {
        if let Some(expires) = expires_at_unix_secs {
            check_number("expires_at_unix_secs", expires, false)?;
        }
        let changed = self
            .connection
            .execute(
                "UPDATE queries SET expires_at_unix_secs = ?1 WHERE id = ?2",
                params![expires_at_unix_secs, id.get()],
            )
            .during("set a query's expiry time")?;
        if changed == 0 {
            return Err(StoreError::QueryNotFound(id));
        }
        Ok(())
    }

    /// Returns the connection's `PRAGMA synchronous` level: 2 is FULL, the level at which a
    /// commit is on disk when it returns.
    pub fn synchronous_level(&self) -> Result<i64, StoreError> {
        self.connection
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .during("read PRAGMA synchronous")
    }

    /// Returns a stored query.
    pub fn query(&self, id: QueryId) -> Result<Query, StoreError> {
        self.connection
            .prepare_cached(&format!(
                "SELECT {QUERY_COLUMNS} FROM queries q WHERE q.id = ?1"
            ))
            .during("read a query")?
            .query_row([id.get()], |row| Ok(read_query(row)))
            .optional()
            .during("read a query")?
            .ok_or(StoreError::QueryNotFound(id))?
    }

    /// Returns the answer to a query, or `None` while it has none.
    pub fn answer(&self, query: QueryId) -> Result<Option<StoredAnswer>, StoreError> {
        // Reading the query first turns an unknown id into an error, not `None`.
        self.query(query)?;

        self.connection
            .prepare_cached(&format!(
                "SELECT {ANSWER_COLUMNS} FROM answers a WHERE a.query_id = ?1"
            ))
            .during("read an answer")?
            .query_row([query.get()], |row| Ok(read_answer(row, query, 0)))
            .optional()
            .during("read an answer")?
            .transpose()
    }

    /// Returns the queries without an answer that have not expired at `now_unix_secs`, in
    /// id order, which is creation order.
    pub fn unanswered_queries(&self, now_unix_secs: f64) -> Result<Vec<Query>, StoreError> {
        check_number("now_unix_secs", now_unix_secs, false)?;

        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {QUERY_COLUMNS} FROM queries q \
                 WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.query_id = q.id) \
                 AND (q.expires_at_unix_secs IS NULL OR q.expires_at_unix_secs > ?1) \
                 ORDER BY q.id"
            ))
            .during("list the unanswered queries")?;
        let rows = statement
            .query_map([now_unix_secs], |row| Ok(read_query(row)))
            .during("list the unanswered queries")?;
        rows.map(|row| row.during("list the unanswered queries")?)
            .collect()
    }

    /// Returns every answered query with its answer, in query id order.
    pub fn answered_queries(&self) -> Result<Vec<AnsweredQuery>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {QUERY_COLUMNS}, {ANSWER_COLUMNS} FROM queries q \
                 JOIN answers a ON a.query_id = q.id ORDER BY q.id"
            ))
            .during("list the answered queries")?;
        let rows = statement
            .query_map([], |row| {
                Ok(read_query(row).and_then(|query| {
                    let answer = read_answer(row, query.id, 11)?;
                    Ok(AnsweredQuery { query, answer })
                }))
            })
            .during("list the answered queries")?;
        rows.map(|row| row.during("list the answered queries")?)
            .collect()
    }

    /// Counts the stored answers of each kind.
    pub fn answer_counts(&self) -> Result<AnswerCounts, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT answer, COUNT(*) FROM answers GROUP BY answer")
            .during("count the answers")?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .during("count the answers")?;

        let mut counts = AnswerCounts::default();
        for row in rows {
            let (word, count) = row.during("count the answers")?;
            *counts.get_mut(parse_answer(word)?) = from_sql_int("COUNT(answers)", count)?;
        }
        Ok(counts)
    }
}

/// Checks that a segment's episode exists and that the segment ends inside it.
fn check_segment(transaction: &Transaction<'_>, segment: SegmentRef) -> Result<(), StoreError> {
    let steps: Option<i64> = transaction
        .query_row(
            "SELECT step_count FROM episodes WHERE id = ?1",
            [segment.episode.get()],
            |row| row.get(0),
        )
        .optional()
        .during("look up a query's episode")?;
    let steps = from_sql_int(
        "episodes.step_count",
        steps.ok_or(StoreError::EpisodeNotFound(segment.episode))?,
    )?;

    let end = segment
        .end()
        .ok_or(StoreError::SegmentEndOverflow(segment))?;
    if end > steps {
        return Err(StoreError::SegmentOutOfRange { segment, steps });
    }
    Ok(())
}

fn parse_answer(word: String) -> Result<Answer, StoreError> {
    word.parse().map_err(|_| StoreError::StoredValue {
        column: "answers.answer",
        value: word,
    })
}

/// Reads a `QUERY_COLUMNS` row.
fn read_query(row: &Row<'_>) -> Result<Query, StoreError> {
    let get_error = |source| StoreError::Sqlite {
        operation: "read a query",
        source,
    };
    // Each side is three columns: episode id, start, length.
    let segment = |first: usize, start_column, length_column| -> Result<SegmentRef, StoreError> {
        Ok(SegmentRef {
            episode: EpisodeId(row.get(first).map_err(get_error)?),
            start: from_sql_int(start_column, row.get(first + 1).map_err(get_error)?)?,
            length: from_sql_int(length_column, row.get(first + 2).map_err(get_error)?)?,
        })
    };

    Ok(Query {
        id: QueryId(row.get(0).map_err(get_error)?),
        query: NewQuery {
            left: segment(1, "queries.left_start", "queries.left_length")?,
            right: segment(4, "queries.right_start", "queries.right_length")?,
            selector: row.get(7).map_err(get_error)?,
            encoder_version: row.get(8).map_err(get_error)?,
            created_at_unix_secs: row.get(9).map_err(get_error)?,
            expires_at_unix_secs: row.get(10).map_err(get_error)?,
        },
    })
}

/// Reads the `ANSWER_COLUMNS` that start at column `first`.
fn read_answer(row: &Row<'_>, query: QueryId, first: usize) -> Result<StoredAnswer, StoreError> {
    let get_error = |source| StoreError::Sqlite {
        operation: "read an answer",
        source,
    };
    Ok(NewAnswer {
        query,
        operator: row.get(first).map_err(get_error)?,
        answer: parse_answer(row.get(first + 1).map_err(get_error)?)?,
        answered_at_unix_secs: row.get(first + 2).map_err(get_error)?,
        response_secs: row.get(first + 3).map_err(get_error)?,
    })
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::store::DatasetId;

    /// Opens a store in a new temporary folder with one dataset of two 4-step episodes,
    /// inserted with SQL so that the test needs no NPZ file. The folder is deleted when the
    /// returned `TempDir` is dropped.
    fn store_with_episodes() -> Result<(TempDir, Store, [EpisodeId; 2]), StoreError> {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let store = Store::open(folder.path().join("store.sqlite"))?;
        store
            .connection
            .execute_batch(&format!(
                "INSERT INTO datasets (id, name, source_path, content_sha256, observation_dim, \
                 action_dim, imported_at_unix_secs) VALUES (1, 'd', 'd.npz', '{}', 1, 1, 0.0);
                 INSERT INTO episodes (id, dataset_id, episode_index, first_step, step_count, \
                 end_kind) VALUES (1, 1, 0, 0, 4, 'time_limit'), (2, 1, 1, 4, 4, 'time_limit');",
                "0".repeat(64)
            ))
            .during("insert test rows")?;
        Ok((folder, store, [EpisodeId(1), EpisodeId(2)]))
    }

    fn new_query(episodes: [EpisodeId; 2]) -> NewQuery {
        NewQuery {
            left: SegmentRef {
                episode: episodes[0],
                start: 0,
                length: 4,
            },
            right: SegmentRef {
                episode: episodes[1],
                start: 0,
                length: 4,
            },
            selector: "random".to_owned(),
            encoder_version: None,
            created_at_unix_secs: 0.0,
            expires_at_unix_secs: None,
        }
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .connection
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .expect("count rows")
    }

    #[test]
    fn dataset_delete_blocked_while_query_refers_to_it() -> Result<(), StoreError> {
        let (_folder, mut store, episodes) = store_with_episodes()?;
        store.insert_query(&new_query(episodes))?;

        let result = store
            .connection
            .execute("DELETE FROM datasets WHERE id = 1", []);

        let error = result.expect_err("delete succeeded").to_string();
        assert!(error.contains("FOREIGN KEY"), "{error}");
        assert_eq!(count(&store, "episodes"), 2);
        Ok(())
    }

    #[test]
    fn dataset_delete_cascades_to_episodes() -> Result<(), StoreError> {
        let (_folder, store, _) = store_with_episodes()?;

        store
            .connection
            .execute("DELETE FROM datasets WHERE id = ?1", [DatasetId(1).get()])
            .during("delete the dataset")?;

        assert_eq!(count(&store, "episodes"), 0);
        Ok(())
    }

    #[test]
    fn unknown_answer_word_rejected_by_schema() -> Result<(), StoreError> {
        let (_folder, mut store, episodes) = store_with_episodes()?;
        let query = store.insert_query(&new_query(episodes))?;

        let result = store.connection.execute(
            "INSERT INTO answers (query_id, operator, answer, answered_at_unix_secs, \
             response_secs) VALUES (?1, 'alice', 'maybe', 0.0, 1.0)",
            [query.get()],
        );

        let error = result.expect_err("insert succeeded").to_string();
        assert!(error.contains("CHECK"), "{error}");
        Ok(())
    }

    fn answer_by(query: QueryId, operator: &str, at: f64) -> NewAnswer {
        NewAnswer {
            query,
            operator: operator.to_owned(),
            answer: Answer::Left,
            answered_at_unix_secs: at,
            response_secs: 1.0,
        }
    }

    #[test]
    fn undo_answer_deletes_latest_of_operator() -> Result<(), StoreError> {
        let (_folder, mut store, episodes) = store_with_episodes()?;
        let first = store.insert_query(&new_query(episodes))?;
        let second = store.insert_query(&new_query(episodes))?;
        let third = store.insert_query(&new_query(episodes))?;
        store.record_answer(&answer_by(first, "alice", 100.0))?;
        store.record_answer(&answer_by(second, "alice", 101.0))?;
        store.record_answer(&answer_by(third, "bob", 102.0))?;

        let undone = store.undo_answer("alice", 95.0, 0.0)?;

        assert_eq!(undone.map(|answer| answer.query), Some(second));
        assert!(store.answer(second)?.is_none());
        assert!(store.answer(first)?.is_some());
        assert!(store.answer(third)?.is_some());
        Ok(())
    }

    #[test]
    fn undo_answer_outside_window_keeps_answer() -> Result<(), StoreError> {
        let (_folder, mut store, episodes) = store_with_episodes()?;
        let query = store.insert_query(&new_query(episodes))?;
        store.record_answer(&answer_by(query, "alice", 100.0))?;

        assert_eq!(store.undo_answer("alice", 100.5, 0.0)?, None);
        assert_eq!(store.undo_answer("bob", 0.0, 0.0)?, None);
        assert!(store.answer(query)?.is_some());
        Ok(())
    }

    #[test]
    fn undo_answer_extends_passed_expiry() -> Result<(), StoreError> {
        let (_folder, mut store, episodes) = store_with_episodes()?;
        let expired = store.insert_query(&NewQuery {
            expires_at_unix_secs: Some(50.0),
            ..new_query(episodes)
        })?;
        let later = store.insert_query(&NewQuery {
            expires_at_unix_secs: Some(500.0),
            ..new_query(episodes)
        })?;
        store.record_answer(&answer_by(expired, "alice", 40.0))?;
        store.record_answer(&answer_by(later, "bob", 40.0))?;

        store.undo_answer("alice", 0.0, 200.0)?;
        store.undo_answer("bob", 0.0, 200.0)?;

        let open: Vec<QueryId> = store
            .unanswered_queries(150.0)?
            .into_iter()
            .map(|query| query.id)
            .collect();
        assert_eq!(open, [expired, later]);
        assert_eq!(
            store.query(expired)?.query.expires_at_unix_secs,
            Some(200.0)
        );
        assert_eq!(store.query(later)?.query.expires_at_unix_secs, Some(500.0));
        Ok(())
    }

    #[test]
    fn answer_counts_start_at_zero() -> Result<(), StoreError> {
        let (_folder, store, _) = store_with_episodes()?;
        assert_eq!(store.answer_counts()?, AnswerCounts::default());
        Ok(())
    }
}

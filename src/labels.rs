//! Label files: operator answers as JSON lines, one answer per line.
//!
//! Each line is one JSON object with exactly these keys:
//!
//! ```json
//! {"query_id": 12, "left": {"episode": 3, "start": 40, "length": 50},
//!  "right": {"episode": 7, "start": 0, "length": 50}, "answer": "cant_tell",
//!  "operator": "alice", "answered_at_unix_secs": 1767225600.25, "response_secs": 4.5}
//! ```
//!
//! (shown on three lines here; a file has it on one). `query_id` and `episode` are row ids
//! of the segment store that the queries came from, `start` counts steps within the
//! episode, `answer` is one of `left`, `right`, `cant_tell`, `skip`, and times are in
//! seconds. A file contains at most one answer per query. Lines that contain only whitespace
//! are ignored.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::answer::{Answer, ParseAnswerError};
use crate::store::{AnsweredQuery, QueryId, SegmentRef};

/// Maximum number of characters of an invalid line that an error message quotes.
const QUOTED_LINE_CHARS: usize = 120;

/// One answer of a label file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelRecord {
    /// The answered query.
    pub query_id: QueryId,
    /// The first segment of the query.
    pub left: SegmentRef,
    /// The second segment of the query.
    pub right: SegmentRef,
    /// The operator's answer.
    pub answer: Answer,
    /// Who answered.
    pub operator: String,
    /// Time of the answer in Unix seconds.
    pub answered_at_unix_secs: f64,
    /// Seconds from showing the query to the answer, at least 0.
    pub response_secs: f64,
}

impl From<&AnsweredQuery> for LabelRecord {
    fn from(answered: &AnsweredQuery) -> Self {
        Self {
            query_id: answered.query.id,
            left: answered.query.query.left,
            right: answered.query.query.right,
            answer: answered.answer.answer,
            operator: answered.answer.operator.clone(),
            answered_at_unix_secs: answered.answer.answered_at_unix_secs,
            response_secs: answered.answer.response_secs,
        }
    }
}

/// A line as parsed from JSON, before the answer word and the numbers are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    query_id: QueryId,
    left: SegmentRef,
    right: SegmentRef,
    answer: String,
    operator: String,
    answered_at_unix_secs: f64,
    response_secs: f64,
}

/// An invalid label line or a failed read or write. `line` is 1-based.
///
/// Messages include the underlying error's text, and no variant reports it again as
/// `source()`, so a printed error chain shows each detail once.
#[derive(Debug, Error)]
pub enum LabelError {
    #[error("failed to open: {error}")]
    Open { error: io::Error },

    #[error("failed to create: {error}")]
    Create { error: io::Error },

    #[error("line {line}: failed to read: {error}")]
    Read { line: usize, error: io::Error },

    #[error("line {line}: invalid label ({error}): {text}")]
    Json {
        line: usize,
        text: String,
        error: serde_json::Error,
    },

    #[error("line {line}: {error}")]
    Answer {
        line: usize,
        error: ParseAnswerError,
    },

    #[error("line {line}: invalid {field} {value}: expected {expected}")]
    Field {
        line: usize,
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "line {line}: {query} was answered already on line {first_line}, \
         but a file may contain one answer per query"
    )]
    DuplicateQuery {
        line: usize,
        query: QueryId,
        first_line: usize,
    },

    #[error("failed to write label line {line}: {error}")]
    Write { line: usize, error: io::Error },

    #[error("failed to flush or sync the written labels to disk: {error}")]
    Flush { error: io::Error },
}

/// A label file that could not be read or written.
#[derive(Debug, Error)]
#[error("label file {}: {error}", path.display())]
pub struct LabelFileError {
    /// The file.
    pub path: PathBuf,
    /// The cause, with the line number where one applies.
    pub error: LabelError,
}

/// Reads label lines from `reader`, checking every line.
///
/// Fails on the first invalid line: malformed JSON, a missing or unknown key, an unknown
/// answer word, a segment of length 0, a negative or non-finite response time, or a
/// second answer to the same query.
pub fn read_labels(reader: impl BufRead) -> Result<Vec<LabelRecord>, LabelError> {
    let mut records = Vec::new();
    let mut first_lines: HashMap<QueryId, usize> = HashMap::new();

    for (index, text) in reader.lines().enumerate() {
        let line = index + 1;
        let text = text.map_err(|error| LabelError::Read { line, error })?;
        if text.trim().is_empty() {
            continue;
        }

        let record = parse_line(line, &text)?;
        if let Some(&first_line) = first_lines.get(&record.query_id) {
            return Err(LabelError::DuplicateQuery {
                line,
                query: record.query_id,
                first_line,
            });
        }
        first_lines.insert(record.query_id, line);
        records.push(record);
    }
    Ok(records)
}

/// Writes one JSON line per record, after the same checks as [`read_labels`], so that
/// every file written here reads back.
pub fn write_labels(mut writer: impl Write, records: &[LabelRecord]) -> Result<(), LabelError> {
    let mut first_lines: HashMap<QueryId, usize> = HashMap::new();

    for (index, record) in records.iter().enumerate() {
        let line = index + 1;
        check_record(line, record)?;
        if let Some(&first_line) = first_lines.get(&record.query_id) {
            return Err(LabelError::DuplicateQuery {
                line,
                query: record.query_id,
                first_line,
            });
        }
        first_lines.insert(record.query_id, line);

        let write_error = |error| LabelError::Write { line, error };
        serde_json::to_writer(&mut writer, record).map_err(|error| write_error(error.into()))?;
        writer.write_all(b"\n").map_err(write_error)?;
    }
    writer.flush().map_err(|error| LabelError::Flush { error })
}

/// Reads a label file.
pub fn read_label_file(path: &Path) -> Result<Vec<LabelRecord>, LabelFileError> {
    let file_error = |error| LabelFileError {
        path: path.to_owned(),
        error,
    };
    let file = File::open(path).map_err(|error| file_error(LabelError::Open { error }))?;
    read_labels(BufReader::new(file)).map_err(file_error)
}

/// Writes a label file, replacing any file at `path`, and syncs it to disk.
pub fn write_label_file(path: &Path, records: &[LabelRecord]) -> Result<(), LabelFileError> {
    let file_error = |error| LabelFileError {
        path: path.to_owned(),
        error,
    };
    let file = File::create(path).map_err(|error| file_error(LabelError::Create { error }))?;
    let mut writer = BufWriter::new(file);
    write_labels(&mut writer, records).map_err(file_error)?;

    let file = writer.into_inner().map_err(|error| {
        file_error(LabelError::Flush {
            error: error.into_error(),
        })
    })?;
    file.sync_all()
        .map_err(|error| file_error(LabelError::Flush { error }))
}

fn parse_line(line: usize, text: &str) -> Result<LabelRecord, LabelError> {
    let raw: RawLabel = serde_json::from_str(text).map_err(|error| LabelError::Json {
        line,
        text: quote(text),
        error,
    })?;
    let answer = raw
        .answer
        .parse::<Answer>()
        .map_err(|error| LabelError::Answer { line, error })?;

    let record = LabelRecord {
        query_id: raw.query_id,
        left: raw.left,
        right: raw.right,
        answer,
        operator: raw.operator,
        answered_at_unix_secs: raw.answered_at_unix_secs,
        response_secs: raw.response_secs,
    };
    check_record(line, &record)?;
    Ok(record)
}

/// Checks the values that JSON types alone do not constrain.
fn check_record(line: usize, record: &LabelRecord) -> Result<(), LabelError> {
    let field_error = |field, value: String, expected| LabelError::Field {
        line,
        field,
        value,
        expected,
    };

    for (field, segment) in [("left.length", record.left), ("right.length", record.right)] {
        if segment.length == 0 {
            return Err(field_error(field, "0".to_owned(), "at least 1 step"));
        }
    }
    if !record.answered_at_unix_secs.is_finite() {
        return Err(field_error(
            "answered_at_unix_secs",
            record.answered_at_unix_secs.to_string(),
            "a finite number of seconds",
        ));
    }
    if !(record.response_secs.is_finite() && record.response_secs >= 0.0) {
        return Err(field_error(
            "response_secs",
            record.response_secs.to_string(),
            "a finite number of seconds ≥ 0",
        ));
    }
    Ok(())
}

/// Returns the line, cut to `QUOTED_LINE_CHARS` characters with `…` when longer.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_line_quoted_with_ellipsis() {
        let text = "x".repeat(200);
        let quoted = quote(&text);
        assert_eq!(quoted.chars().count(), QUOTED_LINE_CHARS + 1);
        assert!(quoted.ends_with('…'));
        assert_eq!(quote("short"), "short");
    }
}

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
//! seconds. A file contains at most one answer per query, and the two sides of a query share
//! no step of the same episode. Lines that contain only whitespace are ignored.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process;
use std::time::{SystemTime, UNIX_EPOCH};

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

    #[error(
        "line {line}: the left side {left} and the right side {right} overlap, \
         but the two sides of a query share no step"
    )]
    OverlappingSegments {
        line: usize,
        left: SegmentRef,
        right: SegmentRef,
    },

    #[error("failed to write label line {line}: {error}")]
    Write { line: usize, error: io::Error },

    #[error("failed to flush or sync the written labels to disk: {error}")]
    Flush { error: io::Error },

    #[error("failed to replace the file with the written labels: {error}")]
    Replace { error: io::Error },

    #[error(
        "replaced the file but failed to sync its folder, so the new file may not survive \
         a power cut: {error}"
    )]
    SyncFolder { error: io::Error },
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
/// answer word, a segment of length 0 or with `start + length` past `usize::MAX`, two sides
/// that share a step of the same episode, a negative or non-finite response time, or a
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
/// every file written here reads back. Every record is checked before the first line is
/// written, so an invalid record writes nothing.
pub fn write_labels(mut writer: impl Write, records: &[LabelRecord]) -> Result<(), LabelError> {
    check_records(records)?;
    for (index, record) in records.iter().enumerate() {
        let write_error = |error| LabelError::Write {
            line: index + 1,
            error,
        };
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
///
/// The records are checked first and written to a temporary file in the same folder, which
/// is synced and then renamed over `path`. An invalid record, a full disk or a crash
/// therefore leaves the file at `path` as it was, and a reader sees either the old or the
/// new file, never part of one.
pub fn write_label_file(path: &Path, records: &[LabelRecord]) -> Result<(), LabelFileError> {
    let file_error = |error| LabelFileError {
        path: path.to_owned(),
        error,
    };
    check_records(records).map_err(file_error)?;

    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let (temporary_path, file) =
        create_temporary(folder, path).map_err(|error| file_error(LabelError::Create { error }))?;
    let written = write_and_sync(file, records).and_then(|()| {
        fs::rename(&temporary_path, path).map_err(|error| LabelError::Replace { error })
    });
    if let Err(error) = written {
        // The temporary file contains no data that the caller can use, so it is removed, and a
        // failure to remove it is not reported over the error that caused it.
        let _ = fs::remove_file(&temporary_path);
        return Err(file_error(error));
    }
    sync_folder(folder).map_err(|error| file_error(LabelError::SyncFolder { error }))
}

/// Creates a new, empty file in `folder` named after `target`, with the permissions of an
/// existing `target` when there is one.
fn create_temporary(folder: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "labels".to_owned());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let temporary_path = folder.join(format!(".{name}.{}.{nanos}.tmp", process::id()));
    // `create_new` fails instead of truncating a file that another writer created.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary_path)?;
    if let Ok(metadata) = fs::metadata(target) {
        // Best effort: a file that cannot take the old permissions keeps the default ones.
        let _ = file.set_permissions(metadata.permissions());
    }
    Ok((temporary_path, file))
}

fn write_and_sync(file: File, records: &[LabelRecord]) -> Result<(), LabelError> {
    let mut writer = BufWriter::new(file);
    write_labels(&mut writer, records)?;
    let file = writer.into_inner().map_err(|error| LabelError::Flush {
        error: error.into_error(),
    })?;
    file.sync_all().map_err(|error| LabelError::Flush { error })
}

/// Syncs the folder entry that a rename changed, so that the new file survives a power cut.
#[cfg(unix)]
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

/// Does nothing: outside Unix a folder cannot be opened as a file to sync it.
#[cfg(not(unix))]
fn sync_folder(_folder: &Path) -> io::Result<()> {
    Ok(())
}

/// Checks every record as [`read_labels`] checks a line, and that no query is answered
/// twice. `line` in an error is the record's 1-based position.
fn check_records(records: &[LabelRecord]) -> Result<(), LabelError> {
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
    }
    Ok(())
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

    let sides = [
        ("left.length", "left.start", record.left),
        ("right.length", "right.start", record.right),
    ];
    for (length_field, start_field, segment) in sides {
        if segment.length == 0 {
            return Err(field_error(length_field, "0".to_owned(), "at least 1 step"));
        }
        if segment.end().is_none() {
            return Err(field_error(
                start_field,
                segment.start.to_string(),
                "a step index with start + length ≤ usize::MAX",
            ));
        }
    }
    if record.left.overlaps(&record.right) {
        return Err(LabelError::OverlappingSegments {
            line,
            left: record.left,
            right: record.right,
        });
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

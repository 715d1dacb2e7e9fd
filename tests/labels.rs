//! Label files: JSON lines written and read back, and invalid lines rejected with their
//! line number and value.

mod common;

use std::fs;
use std::io::Cursor;

use clarify::labels::{
    LabelError, LabelRecord, read_label_file, read_labels, write_label_file, write_labels,
};
use clarify::store::{ContentHash, DatasetMeta, NewAnswer, NewQuery};
use clarify::{Answer, Dataset, EpisodeId, QueryId, SegmentRef, Store};
use common::{NpzFixture, temp_path};

fn segment(episode: i64, start: usize) -> SegmentRef {
    SegmentRef {
        episode: EpisodeId(episode),
        start,
        length: 50,
    }
}

fn record(query: i64, answer: Answer) -> LabelRecord {
    LabelRecord {
        query_id: QueryId(query),
        left: segment(1, 10),
        right: segment(2, 0),
        answer,
        operator: "alice".to_owned(),
        answered_at_unix_secs: 1_767_225_600.0 + query as f64 * 0.1,
        response_secs: 2.75,
    }
}

fn line(query: i64, answer_word: &str) -> String {
    format!(
        "{{\"query_id\":{query},\"left\":{{\"episode\":1,\"start\":10,\"length\":50}},\
         \"right\":{{\"episode\":2,\"start\":0,\"length\":50}},\"answer\":\"{answer_word}\",\
         \"operator\":\"alice\",\"answered_at_unix_secs\":1767225600.5,\"response_secs\":2.75}}"
    )
}

fn read_text(text: &str) -> Result<Vec<LabelRecord>, LabelError> {
    read_labels(Cursor::new(text.as_bytes()))
}

#[test]
fn label_file_round_trips_every_answer_kind() -> anyhow::Result<()> {
    let records: Vec<LabelRecord> = Answer::ALL
        .into_iter()
        .enumerate()
        .map(|(index, answer)| record(index as i64 + 1, answer))
        .collect();
    let path = temp_path("labels-round-trip.jsonl");

    write_label_file(&path, &records)?;
    let read_back = read_label_file(&path)?;

    assert_eq!(read_back, records);
    let text = fs::read_to_string(&path)?;
    assert_eq!(text.lines().count(), 4);
    assert!(text.ends_with('\n'));
    Ok(())
}

#[test]
fn written_line_has_documented_keys() -> anyhow::Result<()> {
    let label = record(7, Answer::CantTell);
    let mut output = Vec::new();

    write_labels(&mut output, std::slice::from_ref(&label))?;

    let value: serde_json::Value = serde_json::from_slice(&output)?;
    let expected = serde_json::json!({
        "query_id": 7,
        "left": {"episode": 1, "start": 10, "length": 50},
        "right": {"episode": 2, "start": 0, "length": 50},
        "answer": "cant_tell",
        "operator": "alice",
        "answered_at_unix_secs": label.answered_at_unix_secs,
        "response_secs": 2.75,
    });
    assert_eq!(value, expected);
    Ok(())
}

#[test]
fn documented_line_reads() -> anyhow::Result<()> {
    let records = read_text(&format!("{}\n", line(12, "skip")))?;

    assert_eq!(records.len(), 1);
    assert_eq!(records[0].query_id, QueryId(12));
    assert_eq!(records[0].answer, Answer::Skip);
    assert_eq!(records[0].left, segment(1, 10));
    assert_eq!(records[0].answered_at_unix_secs, 1_767_225_600.5);
    Ok(())
}

#[test]
fn unknown_answer_word_rejected_with_line_number() {
    let text = [line(1, "left"), line(2, "Left"), line(3, "right")].join("\n");

    let error = read_text(&text).unwrap_err();

    match &error {
        LabelError::Answer { line, error } => {
            assert_eq!(*line, 2);
            assert_eq!(error.value, "Left");
        }
        other => panic!("expected an answer error, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.starts_with("line 2: "), "{message}");
    assert!(message.contains("\"Left\""), "{message}");
    assert!(message.contains("cant_tell"), "{message}");
}

#[test]
fn malformed_line_rejected_with_line_number_and_text() {
    let truncated = "{\"query_id\": 3, \"left\": {\"episode\": 1";
    let text = [line(1, "left"), line(2, "right"), truncated.to_owned()].join("\n");

    let error = read_text(&text).unwrap_err();

    assert!(
        matches!(error, LabelError::Json { line: 3, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.starts_with("line 3: invalid label"), "{message}");
    assert!(message.contains(truncated), "{message}");
}

#[test]
fn unknown_and_missing_keys_rejected() {
    let extra = line(1, "left").replace("\"operator\"", "\"reward\":1.0,\"operator\"");
    let missing = line(1, "left").replace(",\"response_secs\":2.75", "");

    let extra_error = read_text(&extra).unwrap_err().to_string();
    let missing_error = read_text(&missing).unwrap_err().to_string();

    assert!(
        extra_error.contains("unknown field `reward`"),
        "{extra_error}"
    );
    assert!(
        missing_error.contains("missing field `response_secs`"),
        "{missing_error}"
    );
    assert!(missing_error.starts_with("line 1: "), "{missing_error}");
}

#[test]
fn invalid_numbers_rejected_with_value() {
    let negative_time = line(1, "left").replace("\"response_secs\":2.75", "\"response_secs\":-0.5");
    let empty_segment =
        line(1, "left").replace("\"start\":10,\"length\":50", "\"start\":10,\"length\":0");
    let negative_start = line(1, "left").replace("\"start\":10", "\"start\":-1");

    let time_error = read_text(&negative_time).unwrap_err().to_string();
    let segment_error = read_text(&empty_segment).unwrap_err().to_string();
    let start_error = read_text(&negative_start).unwrap_err().to_string();

    assert_eq!(
        time_error,
        "line 1: invalid response_secs -0.5: expected a finite number of seconds ≥ 0"
    );
    assert_eq!(
        segment_error,
        "line 1: invalid left.length 0: expected at least 1 step"
    );
    assert!(start_error.contains("-1"), "{start_error}");
}

#[test]
fn second_answer_to_query_rejected() {
    let text = [line(5, "left"), line(6, "left"), line(5, "right")].join("\n");

    let error = read_text(&text).unwrap_err();

    assert!(
        matches!(
            error,
            LabelError::DuplicateQuery {
                line: 3,
                first_line: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("query 5"), "{error}");
}

#[test]
fn blank_lines_skipped_and_counted() -> anyhow::Result<()> {
    let text = format!("\n{}\n   \n{}\n", line(1, "left"), line(2, "Right"));

    let error = read_text(&text).unwrap_err();
    let valid = read_text(&format!("\n{}\n\n", line(1, "left")))?;

    assert!(
        matches!(error, LabelError::Answer { line: 4, .. }),
        "{error:?}"
    );
    assert_eq!(valid.len(), 1);
    Ok(())
}

#[test]
fn writer_rejects_non_finite_time() {
    let mut invalid = record(1, Answer::Left);
    invalid.response_secs = f64::INFINITY;
    let mut output = Vec::new();

    let error = write_labels(&mut output, &[record(2, Answer::Right), invalid]).unwrap_err();

    assert!(
        matches!(
            error,
            LabelError::Field {
                line: 2,
                field: "response_secs",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn missing_label_file_error_names_path() {
    let path = temp_path("labels-does-not-exist.jsonl");
    let _ = fs::remove_file(&path);

    let error = read_label_file(&path).unwrap_err().to_string();

    assert!(error.starts_with("label file "), "{error}");
    assert!(
        error.contains("labels-does-not-exist.jsonl: failed to open"),
        "{error}"
    );
}

#[test]
fn stored_answers_export_to_label_file() -> anyhow::Result<()> {
    let npz = NpzFixture::valid(&[6, 6], &[0.5; 12]).write("labels-export.npz")?;
    let database = temp_path("labels-export.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", database.display()));
    }
    let mut store = Store::open(&database)?;
    let meta = DatasetMeta {
        name: "export".to_owned(),
        source_path: npz.clone(),
        content_hash: ContentHash::of_file(&npz)?,
        sidecar_json: None,
        imported_at_unix_secs: 0.0,
    };
    let dataset = store.insert_dataset(&meta, &Dataset::load(&npz)?)?;
    let episodes = store.episodes(dataset)?;
    let query = store.insert_query(&NewQuery {
        left: SegmentRef {
            episode: episodes[0].id,
            start: 1,
            length: 5,
        },
        right: SegmentRef {
            episode: episodes[1].id,
            start: 0,
            length: 5,
        },
        selector: "clarify".to_owned(),
        encoder_version: Some("v1".to_owned()),
        created_at_unix_secs: 10.0,
        expires_at_unix_secs: None,
    })?;
    store.record_answer(&NewAnswer {
        query,
        operator: "bob".to_owned(),
        answer: Answer::CantTell,
        answered_at_unix_secs: 12.5,
        response_secs: 2.5,
    })?;
    let path = temp_path("labels-export.jsonl");

    let records: Vec<LabelRecord> = store
        .answered_queries()?
        .iter()
        .map(LabelRecord::from)
        .collect();
    write_label_file(&path, &records)?;
    let read_back = read_label_file(&path)?;

    assert_eq!(read_back, records);
    assert_eq!(read_back[0].query_id, query);
    assert_eq!(read_back[0].left.start, 1);
    assert_eq!(read_back[0].answer, Answer::CantTell);
    assert_eq!(read_back[0].operator, "bob");
    Ok(())
}

#[test]
fn failed_write_keeps_existing_file() -> anyhow::Result<()> {
    let path = temp_path("labels-failed-write.jsonl");
    let saved: Vec<LabelRecord> = [Answer::Left, Answer::Right, Answer::Skip]
        .into_iter()
        .zip(1..)
        .map(|(answer, query)| record(query, answer))
        .collect();
    write_label_file(&path, &saved)?;
    let mut invalid = record(5, Answer::Left);
    invalid.response_secs = f64::NAN;

    let error = write_label_file(&path, &[record(4, Answer::Right), invalid]).unwrap_err();

    assert!(
        matches!(
            error.error,
            LabelError::Field {
                line: 2,
                field: "response_secs",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(read_label_file(&path)?, saved);
    Ok(())
}

#[test]
fn segment_end_past_usize_max_rejected() {
    let text = line(1, "left").replace("\"start\":10", &format!("\"start\":{}", usize::MAX - 2));

    let error = read_text(&text).unwrap_err();

    assert!(
        matches!(
            error,
            LabelError::Field {
                line: 1,
                field: "left.start",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&(usize::MAX - 2).to_string()),
        "{error}"
    );
}

#[test]
fn overlapping_sides_in_same_episode_rejected() {
    // Steps 10..60 and 40..90 of episode 1 share steps 40..60.
    let text = line(1, "left").replace("\"episode\":2,\"start\":0", "\"episode\":1,\"start\":40");
    let mut overlapping = record(2, Answer::Right);
    overlapping.right = overlapping.left;
    let mut output = Vec::new();

    let read_error = read_text(&text).unwrap_err();
    let write_error = write_labels(&mut output, &[overlapping]).unwrap_err();

    assert!(
        matches!(read_error, LabelError::OverlappingSegments { line: 1, .. }),
        "{read_error:?}"
    );
    let message = read_error.to_string();
    assert!(
        message.contains("steps 10..60 of episode 1")
            && message.contains("steps 40..90 of episode 1"),
        "{message}"
    );
    assert!(
        matches!(write_error, LabelError::OverlappingSegments { line: 1, .. }),
        "{write_error:?}"
    );
}

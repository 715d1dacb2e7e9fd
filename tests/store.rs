//! The segment store: schema versions, dataset and episode round trips, queries and
//! answers, and what a second connection sees.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use clarify::store::{
    ContentHash, DatasetMeta, NewAnswer, NewQuery, SCHEMA_VERSION, SegmentRef, StoreError,
};
use clarify::{Answer, Dataset, DatasetId, EpisodeEnd, EpisodeId, QueryId, Store};
use common::{NpzFixture, temp_path};
use ndarray::{Array1, Array2};
use rusqlite::Connection;

const TABLES: [&str; 8] = [
    "answers",
    "camera_frames",
    "datasets",
    "episodes",
    "models",
    "queries",
    "steps",
    "training_runs",
];

/// Returns a database path in the test folder with no file, WAL or shared-memory file left
/// from an earlier run.
fn fresh_database(name: &str) -> PathBuf {
    let path = temp_path(name);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = fs::remove_file(file);
    }
    path
}

/// Observations with values that a lossy encoding would change: negative zero,
/// subnormals, the extremes of f32 and values that need all 24 mantissa bits.
fn awkward_observations(step_count: usize) -> Array2<f32> {
    let specials = [
        -0.0_f32,
        f32::MIN_POSITIVE / 8.0,
        f32::MAX,
        f32::MIN,
        1.0 + f32::EPSILON,
        -1.0e-38,
        std::f32::consts::PI,
    ];
    Array2::from_shape_fn((step_count, 3), |(step, column)| {
        specials[(step * 3 + column) % specials.len()] * if step % 2 == 0 { 1.0 } else { -1.0 }
    })
}

struct StoredFixture {
    store: Store,
    dataset: DatasetId,
    episodes: Vec<EpisodeId>,
}

/// Writes a dataset of episodes with the given lengths, loads it and inserts it into a
/// fresh store.
fn store_with_dataset(name: &str, lengths: &[usize]) -> anyhow::Result<StoredFixture> {
    let step_count: usize = lengths.iter().sum();
    let rewards: Vec<f32> = (0..step_count).map(|step| step as f32 * 0.25).collect();
    let npz = NpzFixture::valid(lengths, &rewards).write(&format!("{name}.npz"))?;
    let dataset = Dataset::load(&npz)?;

    let mut store = Store::open(fresh_database(&format!("{name}.sqlite")))?;
    let id = store.insert_dataset(&meta_for(&npz)?, &dataset)?;
    let episodes = store
        .episodes(id)?
        .iter()
        .map(|episode| episode.id)
        .collect();
    Ok(StoredFixture {
        store,
        dataset: id,
        episodes,
    })
}

fn meta_for(path: &Path) -> anyhow::Result<DatasetMeta> {
    Ok(DatasetMeta {
        name: "fixture".to_owned(),
        source_path: path.to_owned(),
        content_hash: ContentHash::of_file(path)?,
        sidecar_json: None,
        imported_at_unix_secs: 1_767_225_600.5,
    })
}

fn segment(episode: EpisodeId, start: usize, length: usize) -> SegmentRef {
    SegmentRef {
        episode,
        start,
        length,
    }
}

fn query(left: SegmentRef, right: SegmentRef) -> NewQuery {
    NewQuery {
        left,
        right,
        selector: "random".to_owned(),
        encoder_version: None,
        created_at_unix_secs: 1_000.0,
        expires_at_unix_secs: None,
    }
}

fn answer(query: QueryId, answer: Answer) -> NewAnswer {
    NewAnswer {
        query,
        operator: "alice".to_owned(),
        answer,
        answered_at_unix_secs: 1_010.25,
        response_secs: 3.5,
    }
}

#[test]
fn empty_file_migrates_to_current_version() -> anyhow::Result<()> {
    let path = fresh_database("store-empty-file.sqlite");
    fs::write(&path, b"")?;

    let store = Store::open(&path)?;

    assert_eq!(store.schema_version()?, SCHEMA_VERSION);
    let raw = Connection::open(&path)?;
    let mut statement =
        raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(tables, TABLES);
    Ok(())
}

#[test]
fn reopen_keeps_version_and_rows() -> anyhow::Result<()> {
    let fixture = store_with_dataset("store-reopen", &[4, 3])?;
    let path = fixture.store.path().to_owned();
    drop(fixture.store);

    let reopened = Store::open(&path)?;
    let reopened_again = Store::open(&path)?;

    assert_eq!(reopened.schema_version()?, SCHEMA_VERSION);
    assert_eq!(reopened.datasets()?.len(), 1);
    assert_eq!(reopened_again.episodes(fixture.dataset)?.len(), 2);
    Ok(())
}

#[test]
fn newer_schema_version_rejected() -> anyhow::Result<()> {
    let path = fresh_database("store-newer-version.sqlite");
    let newer = SCHEMA_VERSION + 1;
    Connection::open(&path)?.pragma_update(None, "user_version", newer)?;
    let before = fs::read(&path)?;

    let error = Store::open(&path).unwrap_err();

    match &error {
        StoreError::UnsupportedSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, newer);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("schema version {newer}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("versions 0 to {SCHEMA_VERSION}")),
        "{message}"
    );
    assert!(fs::read(&path)? == before, "the rejected file was changed");
    for suffix in ["-wal", "-shm"] {
        let mut side_file = path.clone().into_os_string();
        side_file.push(suffix);
        assert!(
            !Path::new(&side_file).exists(),
            "opening the rejected file left {}",
            Path::new(&side_file).display()
        );
    }
    Ok(())
}

#[test]
fn non_database_file_rejected() -> anyhow::Result<()> {
    let path = fresh_database("store-not-sqlite.sqlite");
    fs::write(&path, "observations,actions\n1,2\n".repeat(100))?;

    let error = Store::open(&path).unwrap_err();

    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(
        error.to_string().contains("store-not-sqlite.sqlite"),
        "{error}"
    );
    Ok(())
}

#[test]
fn episode_arrays_round_trip_bit_identical() -> anyhow::Result<()> {
    let lengths = [5, 1, 8];
    let rewards: Vec<f32> = (0..14).map(|step| (step as f32 - 6.5) / 3.0).collect();
    let mut fixture = NpzFixture::valid(&lengths, &rewards);
    let observations = awkward_observations(14);
    fixture.set("observations", observations.clone());
    let npz = fixture.write("store-round-trip.npz")?;
    let dataset = Dataset::load(&npz)?;
    let mut store = Store::open(fresh_database("store-round-trip.sqlite"))?;

    let id = store.insert_dataset(&meta_for(&npz)?, &dataset)?;
    let episodes = store.episodes(id)?;

    let actions = fixture.f32_matrix("actions");
    let next_observations = fixture.f32_matrix("next_observations");
    let bits = |values: Vec<f32>| values.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
    let rows = |matrix: &Array2<f32>, start: usize, len: usize| {
        bits(
            matrix
                .rows()
                .into_iter()
                .skip(start)
                .take(len)
                .flatten()
                .copied()
                .collect(),
        )
    };
    assert_eq!(episodes.len(), lengths.len());
    for (index, episode) in episodes.iter().enumerate() {
        let arrays = store.episode_arrays(episode.id)?;
        let (start, len) = (episode.first_step, episode.step_count);

        assert_eq!(episode.index, index);
        assert_eq!(len, lengths[index]);
        assert_eq!(arrays.observations.dim(), (len, 3));
        assert_eq!(arrays.actions.dim(), (len, 2));
        assert_eq!(
            bits(arrays.observations.iter().copied().collect()),
            rows(&observations, start, len)
        );
        assert_eq!(
            bits(arrays.actions.iter().copied().collect()),
            rows(&actions, start, len)
        );
        assert_eq!(
            bits(arrays.next_observations.iter().copied().collect()),
            rows(&next_observations, start, len)
        );
        assert_eq!(
            bits(arrays.rewards.to_vec()),
            bits(rewards[start..start + len].to_vec())
        );
    }
    Ok(())
}

#[test]
fn dataset_row_round_trips() -> anyhow::Result<()> {
    let npz = NpzFixture::valid(&[3, 3], &[0.0; 6]).write("store-dataset-row.npz")?;
    let dataset = Dataset::load(&npz)?;
    let mut store = Store::open(fresh_database("store-dataset-row.sqlite"))?;
    let mut meta = meta_for(&npz)?;
    meta.sidecar_json = Some("{\"task\": \"dial-turn-v3\"}".to_owned());

    let id = store.insert_dataset(&meta, &dataset)?;
    let record = store.dataset(id)?;

    assert_eq!(record.id, id);
    assert_eq!(record.meta, meta);
    assert_eq!(record.observation_dim, 3);
    assert_eq!(record.action_dim, 2);
    assert_eq!(store.dataset_by_hash(&meta.content_hash)?, Some(record));
    assert_eq!(
        store.dataset_by_hash(&ContentHash::of_bytes(b"other"))?,
        None
    );
    Ok(())
}

#[test]
fn episode_ends_and_success_stored() -> anyhow::Result<()> {
    let mut fixture = NpzFixture::valid(&[3, 2, 2], &[0.0; 7]);
    let mut terminals = fixture.bool_field("terminals");
    let mut timeouts = fixture.bool_field("timeouts");
    let mut success = fixture.bool_field("success");
    terminals[4] = true;
    timeouts[4] = false;
    timeouts[6] = false;
    success[1] = true;
    fixture
        .set("terminals", terminals)
        .set("timeouts", timeouts)
        .set("success", success);
    let with_success = fixture.write("store-ends-success.npz")?;
    fixture.remove("success");
    let without_success = fixture.write("store-ends-no-success.npz")?;
    let mut store = Store::open(fresh_database("store-ends.sqlite"))?;

    let first = store.insert_dataset(&meta_for(&with_success)?, &Dataset::load(&with_success)?)?;
    let second = store.insert_dataset(
        &meta_for(&without_success)?,
        &Dataset::load(&without_success)?,
    )?;

    let episodes = store.episodes(first)?;
    let ends: Vec<EpisodeEnd> = episodes.iter().map(|episode| episode.end).collect();
    let success: Vec<Option<bool>> = episodes.iter().map(|e| e.success_any).collect();
    let first_steps: Vec<usize> = episodes.iter().map(|e| e.first_step).collect();
    assert_eq!(
        ends,
        [
            EpisodeEnd::TimedOut,
            EpisodeEnd::Terminated,
            EpisodeEnd::Unmarked
        ]
    );
    assert_eq!(success, [Some(true), Some(false), Some(false)]);
    assert_eq!(first_steps, [0, 3, 5]);
    assert!(
        store
            .episodes(second)?
            .iter()
            .all(|e| e.success_any.is_none())
    );

    let raw = Connection::open(store.path())?;
    let mut statement =
        raw.prepare("SELECT end_kind FROM episodes WHERE dataset_id = ?1 ORDER BY episode_index")?;
    let words: Vec<String> = statement
        .query_map([first.get()], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(words, ["time_limit", "task_end", "unknown"]);
    Ok(())
}

#[test]
fn same_content_hash_rejected() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-duplicate-hash", &[2, 2])?;
    let npz = temp_path("store-duplicate-hash.npz");
    let dataset = Dataset::load(&npz)?;

    let error = fixture
        .store
        .insert_dataset(&meta_for(&npz)?, &dataset)
        .unwrap_err();

    match error {
        StoreError::DuplicateDataset { existing, .. } => assert_eq!(existing, fixture.dataset),
        other => panic!("expected DuplicateDataset, got {other:?}"),
    }
    assert_eq!(fixture.store.datasets()?.len(), 1);
    Ok(())
}

#[test]
fn unknown_ids_rejected() -> anyhow::Result<()> {
    let fixture = store_with_dataset("store-unknown-ids", &[2])?;

    let dataset = fixture.store.episodes(DatasetId(999)).unwrap_err();
    let episode = fixture.store.episode_arrays(EpisodeId(999)).unwrap_err();
    let query = fixture.store.query(QueryId(999)).unwrap_err();

    assert!(
        matches!(dataset, StoreError::DatasetNotFound(DatasetId(999))),
        "{dataset:?}"
    );
    assert!(
        matches!(episode, StoreError::EpisodeNotFound(EpisodeId(999))),
        "{episode:?}"
    );
    assert!(
        matches!(query, StoreError::QueryNotFound(QueryId(999))),
        "{query:?}"
    );
    assert_eq!(
        dataset.to_string(),
        "dataset 999 not found in the segment store"
    );
    Ok(())
}

#[test]
fn query_and_answer_round_trip_for_each_kind() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-answer-kinds", &[60, 55])?;
    let [first, second] = fixture.episodes[..] else {
        anyhow::bail!("expected 2 episodes");
    };

    for (offset, kind) in Answer::ALL.into_iter().enumerate() {
        let mut new_query = query(segment(first, offset, 50), segment(second, 5, 50));
        new_query.encoder_version = Some("v3".to_owned());
        new_query.expires_at_unix_secs = Some(2_000.0);
        let id = fixture.store.insert_query(&new_query)?;
        let new_answer = answer(id, kind);

        fixture.store.record_answer(&new_answer)?;

        let stored = fixture.store.query(id)?;
        assert_eq!(stored.id, id);
        assert_eq!(stored.query, new_query);
        assert_eq!(fixture.store.answer(id)?, Some(new_answer));
    }

    let counts = fixture.store.answer_counts()?;
    for kind in Answer::ALL {
        assert_eq!(counts.get(kind), 1, "{kind}");
    }
    assert_eq!(counts.total(), 4);
    assert_eq!(fixture.store.answered_queries()?.len(), 4);
    assert!(fixture.store.unanswered_queries(0.0)?.is_empty());
    Ok(())
}

#[test]
fn second_answer_rejected_and_first_kept() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-second-answer", &[4, 4])?;
    let id = fixture.store.insert_query(&query(
        segment(fixture.episodes[0], 0, 4),
        segment(fixture.episodes[1], 0, 4),
    ))?;
    fixture.store.record_answer(&answer(id, Answer::CantTell))?;

    let error = fixture
        .store
        .record_answer(&answer(id, Answer::Left))
        .unwrap_err();

    match &error {
        StoreError::AlreadyAnswered {
            query,
            existing,
            rejected,
        } => {
            assert_eq!(*query, id);
            assert_eq!(*existing, Answer::CantTell);
            assert_eq!(*rejected, Answer::Left);
        }
        other => panic!("expected AlreadyAnswered, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("query {}", id.get())),
        "{message}"
    );
    assert!(message.contains("cant_tell"), "{message}");
    assert_eq!(
        fixture.store.answer(id)?.map(|stored| stored.answer),
        Some(Answer::CantTell)
    );
    assert_eq!(fixture.store.answer_counts()?.total(), 1);
    Ok(())
}

#[test]
fn answer_for_unknown_query_rejected() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-unknown-query", &[4])?;

    let error = fixture
        .store
        .record_answer(&answer(QueryId(42), Answer::Right))
        .unwrap_err();

    assert!(
        matches!(error, StoreError::QueryNotFound(QueryId(42))),
        "{error:?}"
    );
    assert!(error.to_string().contains("query 42"), "{error}");
    assert_eq!(fixture.store.answer_counts()?.total(), 0);
    Ok(())
}

#[test]
fn invalid_answer_times_rejected() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-answer-times", &[4, 4])?;
    let id = fixture.store.insert_query(&query(
        segment(fixture.episodes[0], 0, 4),
        segment(fixture.episodes[1], 0, 4),
    ))?;
    let mut negative = answer(id, Answer::Left);
    negative.response_secs = -1.0;
    let mut not_a_number = answer(id, Answer::Left);
    not_a_number.answered_at_unix_secs = f64::NAN;

    let negative_error = fixture.store.record_answer(&negative).unwrap_err();
    let nan_error = fixture.store.record_answer(&not_a_number).unwrap_err();

    assert!(
        negative_error
            .to_string()
            .contains("invalid response_secs -1"),
        "{negative_error}"
    );
    assert!(
        nan_error
            .to_string()
            .contains("invalid answered_at_unix_secs NaN"),
        "{nan_error}"
    );
    assert_eq!(fixture.store.answer(id)?, None);
    Ok(())
}

#[test]
fn invalid_segments_rejected() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-invalid-segments", &[10, 6])?;
    let [first, second] = fixture.episodes[..] else {
        anyhow::bail!("expected 2 episodes");
    };
    let valid = segment(first, 0, 5);

    let past_end = fixture
        .store
        .insert_query(&query(valid, segment(second, 2, 5)))
        .unwrap_err();
    let empty = fixture
        .store
        .insert_query(&query(valid, segment(second, 0, 0)))
        .unwrap_err();
    let unknown = fixture
        .store
        .insert_query(&query(valid, segment(EpisodeId(77), 0, 5)))
        .unwrap_err();
    let same = fixture
        .store
        .insert_query(&query(valid, valid))
        .unwrap_err();
    let last_fit = fixture
        .store
        .insert_query(&query(valid, segment(second, 1, 5)));

    assert!(
        matches!(past_end, StoreError::SegmentOutOfRange { steps: 6, .. }),
        "{past_end:?}"
    );
    assert!(past_end.to_string().contains("steps 2..7"), "{past_end}");
    assert!(matches!(empty, StoreError::EmptySegment(_)), "{empty:?}");
    assert!(
        matches!(unknown, StoreError::EpisodeNotFound(EpisodeId(77))),
        "{unknown:?}"
    );
    assert!(matches!(same, StoreError::SameSegment(_)), "{same:?}");
    assert!(last_fit.is_ok(), "{last_fit:?}");
    assert_eq!(fixture.store.unanswered_queries(0.0)?.len(), 1);
    Ok(())
}

#[test]
fn segment_end_past_usize_max_rejected() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-segment-overflow", &[10, 6])?;
    let [first, second] = fixture.episodes[..] else {
        anyhow::bail!("expected 2 episodes");
    };
    let start = usize::MAX - 2;

    let error = fixture
        .store
        .insert_query(&query(segment(first, 0, 5), segment(second, start, 5)))
        .unwrap_err();

    assert!(
        matches!(error, StoreError::SegmentEndOverflow(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains(&start.to_string()), "{error}");
    assert!(fixture.store.unanswered_queries(0.0)?.is_empty());
    Ok(())
}

#[test]
fn overlapping_sides_in_same_episode_rejected() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-overlapping-sides", &[10, 6])?;
    let [first, second] = fixture.episodes[..] else {
        anyhow::bail!("expected 2 episodes");
    };

    let overlap = fixture
        .store
        .insert_query(&query(segment(first, 0, 5), segment(first, 4, 5)))
        .unwrap_err();
    let adjacent = fixture
        .store
        .insert_query(&query(segment(first, 0, 5), segment(first, 5, 5)));
    let other_episode = fixture
        .store
        .insert_query(&query(segment(first, 0, 5), segment(second, 0, 5)));

    assert!(
        matches!(overlap, StoreError::OverlappingSegments { .. }),
        "{overlap:?}"
    );
    let message = overlap.to_string();
    assert!(
        message.contains(&format!("steps 0..5 of {first}"))
            && message.contains(&format!("steps 4..9 of {first}")),
        "{message}"
    );
    assert!(adjacent.is_ok(), "{adjacent:?}");
    assert!(other_episode.is_ok(), "{other_episode:?}");
    assert_eq!(fixture.store.unanswered_queries(0.0)?.len(), 2);
    Ok(())
}

#[test]
fn unanswered_list_skips_answered_and_expired() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-unanswered", &[8, 8])?;
    let left = segment(fixture.episodes[0], 0, 4);
    let mut ids = Vec::new();
    for (start, expires) in [(0, None), (1, Some(1_500.0)), (2, Some(3_000.0)), (3, None)] {
        let mut new_query = query(left, segment(fixture.episodes[1], start, 4));
        new_query.expires_at_unix_secs = expires;
        ids.push(fixture.store.insert_query(&new_query)?);
    }
    fixture.store.record_answer(&answer(ids[3], Answer::Skip))?;

    let before_expiry: Vec<QueryId> = fixture
        .store
        .unanswered_queries(1_400.0)?
        .iter()
        .map(|query| query.id)
        .collect();
    let after_first_expiry: Vec<QueryId> = fixture
        .store
        .unanswered_queries(1_500.0)?
        .iter()
        .map(|query| query.id)
        .collect();

    assert_eq!(before_expiry, ids[..3]);
    assert_eq!(after_first_expiry, [ids[0], ids[2]]);
    Ok(())
}

#[test]
fn expired_query_still_takes_answer() -> anyhow::Result<()> {
    let mut fixture = store_with_dataset("store-expired-answer", &[8, 8])?;
    let mut new_query = query(
        segment(fixture.episodes[0], 0, 4),
        segment(fixture.episodes[1], 0, 4),
    );
    new_query.expires_at_unix_secs = Some(1_001.0);
    let id = fixture.store.insert_query(&new_query)?;

    fixture.store.record_answer(&answer(id, Answer::Right))?;

    assert_eq!(fixture.store.answer_counts()?.right, 1);
    Ok(())
}

#[test]
fn foreign_keys_declared_in_schema() -> anyhow::Result<()> {
    let fixture = store_with_dataset("store-foreign-keys", &[4])?;
    let raw = Connection::open(fixture.store.path())?;
    raw.pragma_update(None, "foreign_keys", "ON")?;

    let orphan_answer = raw.execute(
        "INSERT INTO answers (query_id, operator, answer, answered_at_unix_secs, response_secs) \
         VALUES (999, 'alice', 'left', 0.0, 1.0)",
        [],
    );
    let orphan_episode = raw.execute(
        "INSERT INTO episodes (dataset_id, episode_index, first_step, step_count, end_kind) \
         VALUES (999, 0, 0, 1, 'unknown')",
        [],
    );
    let orphan_steps = raw.execute(
        "INSERT INTO steps (episode_id, observations, actions, next_observations, rewards) \
         VALUES (999, x'', x'', x'', x'')",
        [],
    );
    let orphan_run = raw.execute(
        "INSERT INTO training_runs (started_at_unix_secs, status, model_version, answers_used) \
         VALUES (0.0, 'running', 'v9', 0)",
        [],
    );

    for (table, result) in [
        ("answers", orphan_answer),
        ("episodes", orphan_episode),
        ("steps", orphan_steps),
        ("training_runs", orphan_run),
    ] {
        let error = result.expect_err(table).to_string();
        assert!(error.contains("FOREIGN KEY"), "{table}: {error}");
    }
    Ok(())
}

#[test]
fn answer_visible_to_second_connection_at_return() -> anyhow::Result<()> {
    let mut writer = store_with_dataset("store-second-connection", &[4, 4])?;
    let reader = Store::open(writer.store.path())?;
    let id = writer.store.insert_query(&query(
        segment(writer.episodes[0], 0, 4),
        segment(writer.episodes[1], 0, 4),
    ))?;
    assert_eq!(reader.answer(id)?, None);

    writer.store.record_answer(&answer(id, Answer::Left))?;

    assert_eq!(
        reader.answer(id)?.map(|stored| stored.answer),
        Some(Answer::Left)
    );
    let raw = Connection::open(writer.store.path())?;
    let count: i64 = raw.query_row("SELECT COUNT(*) FROM answers", [], |row| row.get(0))?;
    assert_eq!(count, 1);
    Ok(())
}

#[test]
fn reader_sees_dataset_while_writer_open() -> anyhow::Result<()> {
    let writer = store_with_dataset("store-reader-dataset", &[3, 5])?;

    let reader = Store::open(writer.store.path())?;
    let arrays = reader.episode_arrays(writer.episodes[1])?;

    assert_eq!(
        arrays.rewards,
        Array1::from(vec![0.75_f32, 1.0, 1.25, 1.5, 1.75])
    );
    assert_eq!(reader.datasets()?.len(), 1);
    Ok(())
}

//! Importing dataset NPZ files into the segment store, through the library and through
//! `clarify import`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clarify::store::{ImportError, ImportOptions, ImportOutcome, import_npz};
use clarify::{DatasetError, EpisodeEnd, Store};
use common::{NpzFixture, temp_path};
use rusqlite::Connection;

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

/// Writes a generator-layout file of three episodes (60, 30 and 55 steps) without a sidecar.
fn write_generated(name: &str) -> anyhow::Result<PathBuf> {
    let rewards: Vec<f32> = (0..145).map(|step| (step % 11) as f32 * 0.1).collect();
    let path = NpzFixture::valid(&[60, 30, 55], &rewards).write(name)?;
    let _ = fs::remove_file(path.with_extension("json"));
    Ok(path)
}

/// Counts the rows of every table that an import writes.
fn row_counts(path: &Path) -> anyhow::Result<[i64; 3]> {
    let raw = Connection::open(path)?;
    let mut counts = [0; 3];
    for (count, table) in counts.iter_mut().zip(["datasets", "episodes", "steps"]) {
        *count = raw.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })?;
    }
    Ok(counts)
}

fn clarify(args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(env!("CARGO_BIN_EXE_clarify"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()?;
    Ok(output)
}

#[test]
fn generated_file_imports_with_counts() -> anyhow::Result<()> {
    let npz = write_generated("import-generated.npz")?;
    let mut store = Store::open(fresh_database("import-generated.sqlite"))?;

    let outcome = import_npz(&mut store, &npz, &ImportOptions::default())?;

    let ImportOutcome::Imported(summary) = outcome else {
        anyhow::bail!("expected a new import, got {outcome:?}");
    };
    assert_eq!(summary.episodes, 3);
    assert_eq!(summary.steps, 145);
    assert_eq!(summary.segment_length, 50);
    assert_eq!(summary.short_episodes, 1);
    // Episodes of 60 and 55 steps give 11 and 6 segments of 50 steps.
    assert_eq!(summary.segments, 17);
    assert_eq!(summary.dataset.meta.name, "import-generated");
    assert_eq!(summary.dataset.meta.source_path, npz);
    assert_eq!(summary.dataset.meta.sidecar_json, None);

    let episodes = store.episodes(summary.dataset.id)?;
    let lengths: Vec<usize> = episodes.iter().map(|e| e.step_count).collect();
    assert_eq!(lengths, [60, 30, 55]);
    let arrays = store.episode_arrays(episodes[2].id)?;
    // The fixture's observation at global step s, column d, is s * 10 + d.
    assert_eq!(arrays.observations[[0, 1]], 901.0);
    assert_eq!(arrays.rewards[0], (90 % 11) as f32 * 0.1);
    Ok(())
}

#[test]
fn sidecar_text_stored_with_dataset() -> anyhow::Result<()> {
    let npz = write_generated("import-sidecar.npz")?;
    let sidecar = "{\n  \"task\": \"dial-turn-v3\",\n  \"seed\": 7\n}\n";
    fs::write(npz.with_extension("json"), sidecar)?;
    let mut store = Store::open(fresh_database("import-sidecar.sqlite"))?;

    let outcome = import_npz(&mut store, &npz, &ImportOptions::default())?;

    assert_eq!(
        outcome.summary().dataset.meta.sidecar_json.as_deref(),
        Some(sidecar)
    );
    Ok(())
}

#[test]
fn invalid_sidecar_rejected_and_nothing_stored() -> anyhow::Result<()> {
    let npz = write_generated("import-bad-sidecar.npz")?;
    fs::write(npz.with_extension("json"), "{\"task\": ")?;
    let database = fresh_database("import-bad-sidecar.sqlite");
    let mut store = Store::open(&database)?;

    let error = import_npz(&mut store, &npz, &ImportOptions::default()).unwrap_err();

    assert!(
        matches!(error, ImportError::SidecarJson { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("import-bad-sidecar.json"),
        "{error}"
    );
    assert_eq!(row_counts(&database)?, [0, 0, 0]);
    Ok(())
}

#[test]
fn d4rl_file_without_episode_ids_imports() -> anyhow::Result<()> {
    let mut fixture = NpzFixture::valid(&[6, 4, 5], &[1.0; 15]);
    let mut terminals = fixture.bool_field("terminals");
    let mut timeouts = fixture.bool_field("timeouts");
    terminals[9] = true;
    timeouts[9] = false;
    timeouts[14] = false;
    fixture
        .set("terminals", terminals)
        .set("timeouts", timeouts)
        .remove("episode_ids")
        .remove("timesteps")
        .remove("success");
    let npz = fixture.write("import-d4rl.npz")?;
    let _ = fs::remove_file(npz.with_extension("json"));
    let mut store = Store::open(fresh_database("import-d4rl.sqlite"))?;
    let options = ImportOptions {
        name: Some("hopper-medium".to_owned()),
        segment_length: 5,
    };

    let outcome = import_npz(&mut store, &npz, &options)?;

    let summary = outcome.summary();
    assert_eq!(summary.dataset.meta.name, "hopper-medium");
    assert_eq!(summary.short_episodes, 1);
    assert_eq!(summary.segments, 3);
    let episodes = store.episodes(summary.dataset.id)?;
    let ends: Vec<EpisodeEnd> = episodes.iter().map(|e| e.end).collect();
    assert_eq!(
        ends,
        [
            EpisodeEnd::TimedOut,
            EpisodeEnd::Terminated,
            EpisodeEnd::Unmarked
        ]
    );
    assert!(episodes.iter().all(|e| e.success_any.is_none()));
    Ok(())
}

#[test]
fn same_bytes_imported_twice_stored_once() -> anyhow::Result<()> {
    let npz = write_generated("import-twice.npz")?;
    let copy = temp_path("import-twice-copy.npz");
    fs::copy(&npz, &copy)?;
    let database = fresh_database("import-twice.sqlite");
    let mut store = Store::open(&database)?;

    let first = import_npz(&mut store, &npz, &ImportOptions::default())?;
    let again = import_npz(&mut store, &npz, &ImportOptions::default())?;
    let copied = import_npz(&mut store, &copy, &ImportOptions::default())?;

    let first_id = first.summary().dataset.id;
    assert!(matches!(first, ImportOutcome::Imported(_)));
    for outcome in [&again, &copied] {
        assert!(
            matches!(outcome, ImportOutcome::AlreadyImported(_)),
            "{outcome:?}"
        );
        assert_eq!(outcome.summary().dataset.id, first_id);
        assert_eq!(outcome.summary().steps, 145);
    }
    assert_eq!(row_counts(&database)?, [1, 3, 3]);
    Ok(())
}

#[test]
fn invalid_file_rejected_with_field_and_store_unchanged() -> anyhow::Result<()> {
    let database = fresh_database("import-invalid.sqlite");
    let mut store = Store::open(&database)?;
    import_npz(
        &mut store,
        &write_generated("import-invalid-good.npz")?,
        &ImportOptions::default(),
    )?;
    let mut fixture = NpzFixture::valid(&[3, 3], &[0.0; 6]);
    let mut observations = fixture.f32_matrix("observations");
    observations[[4, 1]] = f32::NAN;
    fixture.set("observations", observations);
    let bad = fixture.write("import-invalid-nan.npz")?;

    let error = import_npz(&mut store, &bad, &ImportOptions::default()).unwrap_err();

    let ImportError::Dataset(dataset_error) = &error else {
        anyhow::bail!("expected a dataset error, got {error:?}");
    };
    assert!(
        matches!(dataset_error, DatasetError::NonFinite { .. }),
        "{dataset_error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("observations contains NaN at step 4, column 1"),
        "{message}"
    );
    assert_eq!(row_counts(&database)?, [1, 3, 3]);
    Ok(())
}

#[test]
fn failure_mid_import_rolls_back_every_row() -> anyhow::Result<()> {
    let database = fresh_database("import-rollback.sqlite");
    let mut store = Store::open(&database)?;
    // A trigger that fails the third episode's step insert, after the dataset row and two
    // episodes have been written inside the import transaction.
    Connection::open(&database)?.execute_batch(
        "CREATE TRIGGER fail_third_episode BEFORE INSERT ON steps \
         WHEN (SELECT COUNT(*) FROM steps) >= 2 \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )?;
    let npz = write_generated("import-rollback.npz")?;

    let error = import_npz(&mut store, &npz, &ImportOptions::default()).unwrap_err();

    assert!(matches!(error, ImportError::Store(_)), "{error:?}");
    assert_eq!(row_counts(&database)?, [0, 0, 0]);
    Ok(())
}

#[test]
fn cli_import_prints_summary() -> anyhow::Result<()> {
    let npz = write_generated("import-cli.npz")?;
    let database = fresh_database("import-cli.sqlite");

    let output = clarify(&[
        "import",
        &npz.display().to_string(),
        "--store",
        &database.display().to_string(),
    ])?;

    let stdout = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("imported "), "{stdout}");
    assert!(stdout.contains("as dataset 1"), "{stdout}");
    assert!(stdout.contains("dataset id        1\n"), "{stdout}");
    assert!(stdout.contains("episodes          3\n"), "{stdout}");
    assert!(
        stdout.contains("steps             145 (observation dim 3, action dim 2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "segments          17 of 50 steps (1 episodes shorter than 50 steps skipped)"
        ),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn cli_second_import_reports_duplicate() -> anyhow::Result<()> {
    let npz = write_generated("import-cli-twice.npz")?;
    let database = fresh_database("import-cli-twice.sqlite");
    let args = [
        "import",
        &npz.display().to_string(),
        "--store",
        &database.display().to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let first = clarify(&args)?;
    let second = clarify(&args)?;

    let stdout = String::from_utf8(second.stdout)?;
    assert!(first.status.success());
    assert!(second.status.success());
    assert!(stdout.starts_with("already imported:"), "{stdout}");
    assert!(stdout.contains("same content as dataset 1"), "{stdout}");
    assert!(stdout.contains("nothing written"), "{stdout}");
    assert_eq!(row_counts(&database)?, [1, 3, 3]);
    Ok(())
}

#[test]
fn cli_invalid_file_exits_2_and_names_field() -> anyhow::Result<()> {
    let mut fixture = NpzFixture::valid(&[3, 3], &[0.0; 6]);
    fixture.remove("rewards");
    let bad = fixture.write("import-cli-missing.npz")?;
    let database = fresh_database("import-cli-missing.sqlite");

    let output = clarify(&[
        "import",
        &bad.display().to_string(),
        "--store",
        &database.display().to_string(),
    ])?;

    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no field `rewards`"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        !database.exists(),
        "a failed import created {}",
        database.display()
    );
    Ok(())
}

#[test]
fn cli_import_help_describes_options() -> anyhow::Result<()> {
    let output = clarify(&["import", "--help"])?;
    let stdout = String::from_utf8(output.stdout)?;

    assert!(output.status.success());
    assert!(stdout.contains("--store <DB>"), "{stdout}");
    assert!(stdout.contains("created when missing"), "{stdout}");
    assert!(stdout.contains("--name <NAME>"), "{stdout}");
    assert!(stdout.contains("--segment-length <STEPS>"), "{stdout}");
    assert!(stdout.contains("[default: 50]"), "{stdout}");
    Ok(())
}

/// Runs `clarify import FILE --store DB` and returns the exit status and stderr.
fn cli_import(file: &Path, database: &Path) -> anyhow::Result<(Option<i32>, String)> {
    let output = clarify(&[
        "import",
        &file.display().to_string(),
        "--store",
        &database.display().to_string(),
    ])?;
    assert!(output.stdout.is_empty());
    Ok((output.status.code(), String::from_utf8(output.stderr)?))
}

#[test]
fn cli_invalid_sidecar_exits_2() -> anyhow::Result<()> {
    let npz = write_generated("import-cli-bad-sidecar.npz")?;
    fs::write(npz.with_extension("json"), "{\"robot\": ")?;
    let database = fresh_database("import-cli-bad-sidecar.sqlite");

    let (status, stderr) = cli_import(&npz, &database)?;

    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("is not valid JSON"), "{stderr}");
    Ok(())
}

#[test]
fn cli_unreadable_sidecar_exits_1() -> anyhow::Result<()> {
    let npz = write_generated("import-cli-sidecar-folder.npz")?;
    let sidecar = npz.with_extension("json");
    let _ = fs::remove_dir(&sidecar);
    // A folder in the sidecar's place fails to read, an I/O failure, not bad input.
    fs::create_dir(&sidecar)?;
    let database = fresh_database("import-cli-sidecar-folder.sqlite");

    let (status, stderr) = cli_import(&npz, &database)?;
    fs::remove_dir(&sidecar)?;

    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to read the JSON sidecar"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn cli_store_not_sqlite_exits_2() -> anyhow::Result<()> {
    let npz = write_generated("import-cli-not-sqlite.npz")?;
    let database = fresh_database("import-cli-not-sqlite.sqlite");
    let text = "episode,steps\n0,60\n".repeat(100);
    fs::write(&database, &text)?;

    let (status, stderr) = cli_import(&npz, &database)?;

    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("import-cli-not-sqlite.sqlite"), "{stderr}");
    assert_eq!(fs::read_to_string(&database)?, text);
    Ok(())
}

#[test]
fn cli_store_with_newer_schema_exits_2() -> anyhow::Result<()> {
    let npz = write_generated("import-cli-newer-schema.npz")?;
    let database = fresh_database("import-cli-newer-schema.sqlite");
    let newer = clarify::store::SCHEMA_VERSION + 1;
    Connection::open(&database)?.pragma_update(None, "user_version", newer)?;

    let (status, stderr) = cli_import(&npz, &database)?;

    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("schema version {newer}")),
        "{stderr}"
    );
    Ok(())
}

//! Loading dataset NPZ files: valid layouts load with the right episode split, and each
//! kind of invalid file is rejected with a message that names the file and the field.

mod common;

use std::fs;

use clarify::{Dataset, DatasetError, EpisodeEnd};
use common::{Field, NpzFixture, empty_f32, temp_path};
use ndarray::{Array1, Array2, array};

const LENGTHS: [usize; 3] = [4, 3, 5];

fn rewards() -> Vec<f32> {
    (0..12).map(|step| step as f32 * 0.5).collect()
}

fn valid_fixture() -> NpzFixture {
    NpzFixture::valid(&LENGTHS, &rewards())
}

/// Writes the fixture, loads it and returns the error message.
fn load_error(fixture: &NpzFixture, name: &str) -> anyhow::Result<String> {
    let path = fixture.write(name)?;
    match Dataset::load(&path) {
        Ok(_) => anyhow::bail!("{name}: the invalid file loaded"),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "message does not name the file: {message}"
            );
            Ok(message)
        }
    }
}

#[test]
fn valid_file_loads_with_episode_split() -> anyhow::Result<()> {
    let path = valid_fixture().write("loading-valid.npz")?;

    let dataset = Dataset::load(&path)?;

    assert_eq!(dataset.step_count(), 12);
    assert_eq!(dataset.observation_dim(), 3);
    assert_eq!(dataset.action_dim(), 2);
    let starts: Vec<usize> = dataset.episodes().iter().map(|e| e.start).collect();
    let lens: Vec<usize> = dataset.episodes().iter().map(|e| e.len).collect();
    assert_eq!(starts, [0, 4, 7]);
    assert_eq!(lens, LENGTHS);
    assert!(
        dataset
            .episodes()
            .iter()
            .all(|e| e.end == EpisodeEnd::TimedOut)
    );
    assert_eq!(dataset.rewards()[11], 5.5);
    assert_eq!(dataset.observations()[[5, 2]], 52.0);
    assert!(dataset.success().is_some());
    Ok(())
}

#[test]
fn minimal_file_splits_episodes_by_flags() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture
        .remove("episode_ids")
        .remove("timesteps")
        .remove("success");
    let mut terminals = fixture.bool_field("terminals");
    let mut timeouts = fixture.bool_field("timeouts");
    terminals[3] = true;
    timeouts[3] = false;
    timeouts[11] = false;
    fixture
        .set("terminals", terminals)
        .set("timeouts", timeouts);
    let path = fixture.write("loading-minimal.npz")?;

    let dataset = Dataset::load(&path)?;

    let ends: Vec<EpisodeEnd> = dataset.episodes().iter().map(|e| e.end).collect();
    let lens: Vec<usize> = dataset.episodes().iter().map(|e| e.len).collect();
    assert_eq!(
        ends,
        [
            EpisodeEnd::Terminated,
            EpisodeEnd::TimedOut,
            EpisodeEnd::Unmarked
        ]
    );
    assert_eq!(lens, LENGTHS);
    assert!(dataset.success().is_none());
    Ok(())
}

#[test]
fn simulator_state_fields_are_accepted() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture
        .set("rand_vecs", Array2::<f64>::zeros((3, 6)))
        .set("qpos", Array2::<f64>::zeros((12, 9)))
        .set("qvel", Array2::<f64>::zeros((12, 9)))
        .set(
            "mocap_pos",
            Field::F64(ndarray::ArrayD::zeros(vec![12, 1, 3])),
        )
        .set(
            "mocap_quat",
            Field::F64(ndarray::ArrayD::zeros(vec![12, 1, 4])),
        );
    let path = fixture.write("loading-sim-state.npz")?;

    let dataset = Dataset::load(&path)?;

    assert_eq!(dataset.episodes().len(), 3);
    Ok(())
}

#[test]
fn missing_required_field_is_named() -> anyhow::Result<()> {
    let required = [
        "observations",
        "actions",
        "next_observations",
        "rewards",
        "terminals",
        "timeouts",
    ];
    for field in required {
        let mut fixture = valid_fixture();
        fixture.remove(field);

        let message = load_error(&fixture, &format!("loading-missing-{field}.npz"))?;

        assert!(
            message.contains(&format!("no field `{field}`")),
            "{message}"
        );
        assert!(message.contains("fields present: "), "{message}");
    }
    Ok(())
}

#[test]
fn short_rewards_report_shape_found_and_expected() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set("rewards", Array1::from(rewards()[..11].to_vec()));

    let message = load_error(&fixture, "loading-short-rewards.npz")?;

    assert!(
        message.contains("rewards has shape [11], expected [12] (one per step)"),
        "{message}"
    );
    Ok(())
}

#[test]
fn optional_field_with_wrong_length_rejected() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set("success", Array1::from_elem(13, false));

    let message = load_error(&fixture, "loading-long-success.npz")?;

    assert!(
        message.contains("success has shape [13], expected [12]"),
        "{message}"
    );
    Ok(())
}

#[test]
fn next_observations_must_match_observations() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set("next_observations", Array2::<f32>::zeros((12, 4)));

    let message = load_error(&fixture, "loading-next-obs-shape.npz")?;

    assert!(
        message.contains("next_observations has shape [12, 4], expected [12, 3]"),
        "{message}"
    );
    Ok(())
}

#[test]
fn one_dimensional_observations_rejected() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set("observations", Array1::<f32>::zeros(12));

    let message = load_error(&fixture, "loading-1d-observations.npz")?;

    assert!(
        message.contains("observations has shape [12], expected [N, dim]"),
        "{message}"
    );
    Ok(())
}

#[test]
fn wrong_dtype_names_found_and_expected() -> anyhow::Result<()> {
    let cases: [(&str, Field, &str); 3] = [
        (
            "rewards",
            Array1::<f64>::zeros(12).into(),
            "rewards has dtype float64, expected float32",
        ),
        (
            "terminals",
            Array1::<i64>::zeros(12).into(),
            "terminals has dtype int64, expected bool",
        ),
        (
            "episode_ids",
            Array1::<f32>::zeros(12).into(),
            "episode_ids has dtype float32, expected int64",
        ),
    ];
    for (field, array, expected) in cases {
        let mut fixture = valid_fixture();
        fixture.set(field, array);

        let message = load_error(&fixture, &format!("loading-dtype-{field}.npz"))?;

        assert!(message.contains(expected), "{message}");
    }
    Ok(())
}

#[test]
fn nan_observation_reports_step_and_column() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    let mut observations = fixture.f32_matrix("observations");
    observations[[7, 1]] = f32::NAN;
    fixture.set("observations", observations);

    let message = load_error(&fixture, "loading-nan-observation.npz")?;

    assert!(
        message.contains("observations contains NaN at step 7, column 1"),
        "{message}"
    );
    Ok(())
}

#[test]
fn infinite_reward_rejected() -> anyhow::Result<()> {
    let mut values = rewards();
    values[2] = f32::NEG_INFINITY;
    let fixture = NpzFixture::valid(&LENGTHS, &values);

    let message = load_error(&fixture, "loading-inf-reward.npz")?;

    assert!(
        message.contains("rewards contains -inf at step 2"),
        "{message}"
    );
    Ok(())
}

#[test]
fn non_contiguous_episode_ids_rejected() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set(
        "episode_ids",
        array![0_i64, 0, 0, 0, 2, 2, 2, 3, 3, 3, 3, 3],
    );

    let message = load_error(&fixture, "loading-gap-episode-ids.npz")?;

    assert!(
        message.contains("episode_ids is 2 at step 4 after 0 at the step before, expected 0 or 1"),
        "{message}"
    );
    Ok(())
}

#[test]
fn decreasing_episode_ids_rejected() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set(
        "episode_ids",
        array![0_i64, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0],
    );

    let message = load_error(&fixture, "loading-decreasing-episode-ids.npz")?;

    assert!(
        message.contains("episode_ids is 0 at step 7 after 1"),
        "{message}"
    );
    Ok(())
}

#[test]
fn episode_ids_must_start_at_zero() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set(
        "episode_ids",
        array![1_i64, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    );

    let message = load_error(&fixture, "loading-episode-ids-start.npz")?;

    assert!(
        message.contains("episode_ids starts at 1, expected 0"),
        "{message}"
    );
    Ok(())
}

#[test]
fn timeout_inside_episode_rejected() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    let mut timeouts = fixture.bool_field("timeouts");
    timeouts[1] = true;
    fixture.set("timeouts", timeouts);

    let message = load_error(&fixture, "loading-timeout-inside.npz")?;

    assert!(
        message.contains("timeouts is true at step 1, but episode_ids continues episode 0"),
        "{message}"
    );
    Ok(())
}

#[test]
fn timesteps_must_count_within_episode() -> anyhow::Result<()> {
    let mut fixture = valid_fixture();
    fixture.set("timesteps", Array1::from((0..12_i64).collect::<Vec<_>>()));

    let message = load_error(&fixture, "loading-timesteps.npz")?;

    assert!(
        message.contains("timesteps is 4 at step 4, expected 0 (step 0 of episode 1)"),
        "{message}"
    );
    Ok(())
}

#[test]
fn zero_step_file_rejected() -> anyhow::Result<()> {
    let mut fixture = NpzFixture::default();
    fixture
        .set("observations", Field::F32(empty_f32(&[0, 3])))
        .set("actions", Field::F32(empty_f32(&[0, 2])))
        .set("next_observations", Field::F32(empty_f32(&[0, 3])))
        .set("rewards", Field::F32(empty_f32(&[0])))
        .set("terminals", Array1::<bool>::from_elem(0, false))
        .set("timeouts", Array1::<bool>::from_elem(0, false));

    let message = load_error(&fixture, "loading-zero-steps.npz")?;

    assert!(message.contains("contains no steps"), "{message}");
    Ok(())
}

#[test]
fn file_that_is_not_npz_rejected() -> anyhow::Result<()> {
    let path = temp_path("loading-not-npz.npz");
    fs::write(&path, "observations,actions\n1,2\n")?;

    let error = Dataset::load(&path).expect_err("a text file is not a dataset");

    assert!(matches!(error, DatasetError::Archive { .. }), "{error:?}");
    assert!(
        error.to_string().contains("is not a valid NPZ archive"),
        "{error}"
    );
    Ok(())
}

#[test]
fn missing_file_error_names_path() {
    let path = temp_path("loading-does-not-exist.npz");

    let error = Dataset::load(&path).expect_err("the file does not exist");

    assert!(matches!(error, DatasetError::Open { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn folder_as_dataset_is_rejected() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;

    let error = Dataset::load(folder.path()).expect_err("a folder is not a dataset");

    assert!(matches!(error, DatasetError::Open { .. }), "{error:?}");
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("is a directory"));
    Ok(())
}

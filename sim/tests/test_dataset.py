"""Tests of dataset loading, validation, episode splitting and segments."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_arrays

from clarify_sim.dataset import enumerate_segments, load_dataset, validate_arrays
from clarify_sim.env import make_env
from clarify_sim.errors import DatasetError


def save(tmp_path, arrays, name="data.npz"):
    path = tmp_path / name
    np.savez_compressed(path, **arrays)
    return path


def test_valid_arrays_split_by_episode_ids():
    dataset = validate_arrays(make_arrays([4, 2, 5]), "memory")

    assert dataset.steps == 11
    assert dataset.episode_count == 3
    assert dataset.episode_bounds.tolist() == [0, 4, 6, 11]
    assert dataset.episode_lengths().tolist() == [4, 2, 5]
    assert list(dataset.episode_steps(1)) == [4, 5]
    assert dataset.episode_of_step(5) == 1
    assert dataset.episode_of_step(6) == 2
    assert not dataset.has_state


def test_big_endian_fields_are_accepted(tmp_path):
    arrays = make_arrays([4, 2, 5])
    expected = arrays["rewards"].copy()
    arrays["rewards"] = arrays["rewards"].astype(">f4")
    arrays["episode_ids"] = arrays["episode_ids"].astype(">i8")

    dataset = load_dataset(save(tmp_path, arrays))

    assert dataset.episode_count == 3
    assert dataset.rewards.dtype == np.dtype(np.float32)
    assert np.array_equal(dataset.rewards, expected)


def test_split_by_flags_without_episode_ids():
    arrays = make_arrays([3, 3, 2])
    del arrays["episode_ids"], arrays["timesteps"]
    arrays["timeouts"][:] = False
    arrays["terminals"][2] = True  # ends the first episode
    arrays["timeouts"][4] = True  # cuts the second after 2 steps
    dataset = validate_arrays(arrays, "memory")

    # The rest of the file, without a flag at its end, is the last episode.
    assert dataset.episode_bounds.tolist() == [0, 3, 5, 8]


def test_missing_field_is_named():
    arrays = make_arrays([3])
    del arrays["rewards"]
    with pytest.raises(DatasetError, match="has no field rewards") as raised:
        validate_arrays(arrays, "data.npz")
    assert "fields present: actions" in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "rewards",
            np.zeros(3, np.float64),
            "rewards has dtype float64, expected float32",
        ),
        (
            "terminals",
            np.zeros(3, np.float32),
            "terminals has dtype float32, expected bool",
        ),
        (
            "episode_ids",
            np.zeros(3, np.int32),
            "episode_ids has dtype int32, expected int64",
        ),
        (
            "actions",
            np.zeros(3, np.float32),
            r"actions has shape \(3,\), expected 2 dim",
        ),
        (
            "rewards",
            np.zeros(4, np.float32),
            r"rewards has shape \(4,\), expected 3 rows",
        ),
        (
            "next_observations",
            np.zeros((3, 5), np.float32),
            r"next_observations has shape \(3, 5\), expected \(3, 3\)",
        ),
    ],
)
def test_wrong_dtype_or_shape_is_named(field, value, message):
    arrays = make_arrays([3])
    arrays[field] = value
    with pytest.raises(DatasetError, match=message):
        validate_arrays(arrays, "data.npz")


@pytest.mark.parametrize(
    ("field", "index", "bad", "location"),
    [
        ("rewards", (2,), np.nan, "rewards contains nan at step 2"),
        (
            "observations",
            (1, 2),
            np.inf,
            "observations contains inf at step 1, column 2",
        ),
        ("actions", (0, 1), -np.inf, "actions contains -inf at step 0, column 1"),
    ],
)
def test_non_finite_values_are_named(field, index, bad, location):
    arrays = make_arrays([4])
    arrays[field][index] = bad
    with pytest.raises(DatasetError, match=location):
        validate_arrays(arrays, "data.npz")


def test_episode_id_errors():
    arrays = make_arrays([2, 2])
    arrays["episode_ids"] += 1
    with pytest.raises(DatasetError, match="episode_ids starts at 1, expected 0"):
        validate_arrays(arrays, "data.npz")

    arrays = make_arrays([2, 2])
    arrays["episode_ids"][2:] = 2
    with pytest.raises(DatasetError, match="goes from 0 to 2 at step 2"):
        validate_arrays(arrays, "data.npz")


def test_flag_inside_episode_is_rejected():
    arrays = make_arrays([3, 3])
    arrays["terminals"][1] = True
    with pytest.raises(
        DatasetError, match="terminals is true at step 1 inside episode 0"
    ):
        validate_arrays(arrays, "data.npz")


def test_timesteps_must_count_within_episode():
    arrays = make_arrays([3, 3])
    arrays["timesteps"][4] = 7
    with pytest.raises(DatasetError, match="timesteps is 7 at step 4, expected 1"):
        validate_arrays(arrays, "data.npz")


def test_partial_state_fields_are_rejected():
    arrays = make_arrays([3])
    arrays["qpos"] = np.zeros((3, 10))
    with pytest.raises(DatasetError, match="has simulator state fields qpos but not"):
        validate_arrays(arrays, "data.npz")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset(tmp_path / "missing.npz")

    text_file = tmp_path / "notes.npz"
    text_file.write_text("not an archive")
    with pytest.raises(DatasetError, match="is not an NPZ archive") as raised:
        load_dataset(text_file)
    assert "pickle" not in str(raised.value)

    single_array = tmp_path / "single.npy"
    np.save(single_array, np.zeros(3))
    with pytest.raises(DatasetError, match="is not an NPZ archive"):
        load_dataset(single_array)

    arrays = make_arrays([2])
    arrays["rewards"] = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(DatasetError, match="failed to read field rewards"):
        load_dataset(save(tmp_path, arrays, "objects.npz"))


def test_load_ignores_unknown_fields(tmp_path):
    arrays = make_arrays([2, 3])
    arrays["infos/qpos"] = np.zeros((5, 2))
    dataset = load_dataset(save(tmp_path, arrays))

    assert dataset.episode_count == 2
    assert "infos/qpos" not in dataset.arrays


@pytest.mark.parametrize(
    ("lengths", "starts", "short"),
    [
        ([4], [0], 0),  # exactly H steps give one segment
        ([3], [], 1),  # shorter episodes give none
        ([6], [0, 1, 2], 0),
        ([4, 3, 5], [0, 7, 8], 1),
    ],
)
def test_enumerate_segments(lengths, starts, short):
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    segments = enumerate_segments(bounds, segment_length=4)

    assert segments.starts.tolist() == starts
    assert len(segments) == len(starts)
    assert segments.short_episodes == short


def test_enumerate_segments_rejects_zero_length():
    with pytest.raises(DatasetError, match="invalid segment length 0"):
        enumerate_segments(np.array([0, 5]), segment_length=0)


def test_sim_state_reproduces_stored_observation(small_dataset):
    dataset = load_dataset(small_dataset)
    env = make_env("dial-turn")

    for step in (0, 1, 59, 60, 131):
        observation = env.set_state(dataset.sim_state(step))
        stored = dataset.arrays["observations"][step]
        assert np.array_equal(observation.astype(np.float32), stored), f"step {step}"
    assert dataset.sim_state(131).elapsed_steps == 11


def test_sim_state_requires_state_fields():
    dataset = validate_arrays(make_arrays([3]), "plain.npz")
    with pytest.raises(DatasetError, match=r"plain\.npz has no simulator state fields"):
        dataset.sim_state(0)

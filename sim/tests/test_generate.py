"""Tests of the dataset generator: layout, determinism, outcomes, atomic writes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import MIXED_SCHEDULE

from clarify_sim.dataset import load_dataset
from clarify_sim.env import make_env, scripted_policy
from clarify_sim.errors import InputError
from clarify_sim.fingerprint import compute_fingerprint
from clarify_sim.generate import (
    BehaviourSchedule,
    GeneratorConfig,
    generate_arrays,
    generate_episode,
    write_dataset,
)

EXPECTED_FIELDS = {
    "observations": (np.float32, (39,)),
    "actions": (np.float32, (4,)),
    "next_observations": (np.float32, (39,)),
    "rewards": (np.float32, ()),
    "terminals": (np.bool_, ()),
    "timeouts": (np.bool_, ()),
    "success": (np.bool_, ()),
    "episode_ids": (np.int64, ()),
    "timesteps": (np.int64, ()),
    "qpos": (np.float64, (10,)),
    "qvel": (np.float64, (10,)),
    "mocap_pos": (np.float64, (1, 3)),
    "mocap_quat": (np.float64, (1, 4)),
}

FIELD_ORDER = [
    "observations",
    "actions",
    "next_observations",
    "rewards",
    "terminals",
    "timeouts",
    "success",
    "episode_ids",
    "timesteps",
    "rand_vecs",
    "qpos",
    "qvel",
    "mocap_pos",
    "mocap_quat",
]


@pytest.mark.parametrize("task", ["dial-turn", "drawer-open", "handle-pull-side"])
def test_generated_layout_and_outcomes(task):
    episodes, steps = 3, 120
    config = GeneratorConfig(
        task, episodes=episodes, seed=0, episode_steps=steps, schedule=MIXED_SCHEDULE
    )
    arrays, behaviours = generate_arrays(config, log_every=0)
    total = episodes * steps

    assert list(arrays) == FIELD_ORDER
    for name, (dtype, row_shape) in EXPECTED_FIELDS.items():
        assert arrays[name].dtype == dtype, name
        assert arrays[name].shape == (total, *row_shape), name
    assert arrays["rand_vecs"].dtype == np.float64
    assert arrays["rand_vecs"].shape == (episodes, 3)

    assert np.array_equal(arrays["episode_ids"], np.repeat(np.arange(episodes), steps))
    assert np.array_equal(arrays["timesteps"], np.tile(np.arange(steps), episodes))
    timeouts = arrays["timeouts"].reshape(episodes, steps)
    assert timeouts[:, -1].all()
    assert not timeouts[:, :-1].any()
    assert not arrays["terminals"].any()
    assert np.all(np.abs(arrays["actions"]) <= 1.0)
    assert np.all((arrays["rewards"] >= 0.0) & (arrays["rewards"] <= 10.0))

    # Within an episode, each step starts where the previous one ended.
    next_rows = arrays["next_observations"].reshape(episodes, steps, 39)[:, :-1]
    rows = arrays["observations"].reshape(episodes, steps, 39)[:, 1:]
    assert np.array_equal(next_rows, rows)

    # The schedule makes episode 0 random (a failure) and later ones near-expert.
    assert behaviours[0].random_episode
    assert not behaviours[2].random_episode
    success = arrays["success"].reshape(episodes, steps).any(axis=1)
    assert not success.all(), f"{task}: expected a failed episode"
    assert success.any(), f"{task}: expected a successful episode"


def test_generator_is_deterministic():
    config = GeneratorConfig("dial-turn", episodes=3, seed=4, episode_steps=40)
    first, _ = generate_arrays(config, log_every=0)
    second, _ = generate_arrays(config, log_every=0)

    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name


def test_seed_changes_data():
    first, _ = generate_arrays(
        GeneratorConfig("dial-turn", episodes=2, seed=0, episode_steps=20), log_every=0
    )
    second, _ = generate_arrays(
        GeneratorConfig("dial-turn", episodes=2, seed=1, episode_steps=20), log_every=0
    )
    assert not np.array_equal(first["rand_vecs"], second["rand_vecs"])
    assert not np.array_equal(first["actions"], second["actions"])


def test_episode_regenerates_alone():
    config = GeneratorConfig("dial-turn", episodes=4, seed=2, episode_steps=50)
    arrays, _ = generate_arrays(config, log_every=0)

    env = make_env("dial-turn", seed=123, max_episode_steps=50)
    alone, _ = generate_episode(env, scripted_policy("dial-turn"), config, 2)

    steps = slice(100, 150)
    assert np.array_equal(alone["rand_vec"], arrays["rand_vecs"][2])
    for name in ("observations", "actions", "rewards", "success", "qpos", "qvel"):
        assert np.array_equal(alone[name], arrays[name][steps]), name


def test_distractor_replaces_scripted_episodes():
    plain_schedule = dataclasses.replace(MIXED_SCHEDULE, random_episode_start=0.0)
    plain = GeneratorConfig(
        "dial-turn", episodes=3, seed=1, episode_steps=40, schedule=plain_schedule
    )
    mixed = dataclasses.replace(
        plain,
        schedule=dataclasses.replace(
            plain_schedule, distractor_task="window-open", distractor_probability=1.0
        ),
    )
    plain_arrays, plain_behaviours = generate_arrays(plain, log_every=0)
    mixed_arrays, mixed_behaviours = generate_arrays(mixed, log_every=0)

    assert not any(behaviour.distractor for behaviour in plain_behaviours)
    assert all(behaviour.distractor for behaviour in mixed_behaviours)
    # Same object and goal positions, other actions.
    assert np.array_equal(plain_arrays["rand_vecs"], mixed_arrays["rand_vecs"])
    assert not np.allclose(plain_arrays["actions"], mixed_arrays["actions"])


def test_unused_distractor_keeps_data():
    plain = GeneratorConfig("dial-turn", episodes=2, seed=5, episode_steps=30)
    unused = dataclasses.replace(
        plain,
        schedule=dataclasses.replace(
            plain.schedule, distractor_task="window-open", distractor_probability=0.0
        ),
    )
    first, _ = generate_arrays(plain, log_every=0)
    second, _ = generate_arrays(unused, log_every=0)

    for name in first:
        assert np.array_equal(first[name], second[name]), name


def test_distractor_needs_its_policy():
    schedule = BehaviourSchedule(
        random_episode_start=0.0,
        distractor_task="window-open",
        distractor_probability=1.0,
    )
    config = GeneratorConfig(
        "dial-turn", episodes=1, episode_steps=5, schedule=schedule
    )
    env = make_env("dial-turn", max_episode_steps=5)

    with pytest.raises(ValueError, match="no distractor policy"):
        generate_episode(env, scripted_policy("dial-turn"), config, 0)


def test_schedule_follows_progress():
    schedule = BehaviourSchedule()

    assert schedule.progress(0, 300) == 0.0
    assert schedule.progress(150, 300) == 0.5
    assert schedule.progress(100, 300) == 0.0  # the second pretend run starts
    assert schedule.random_episode_probability(0.0) == schedule.random_episode_start
    assert schedule.random_episode_probability(schedule.random_episode_until) == 0.0
    assert schedule.random_episode_probability(0.9) == 0.0
    assert schedule.noise_std(0.0) == schedule.noise_std_start
    assert schedule.noise_std(1.0) == pytest.approx(schedule.noise_std_end)
    assert schedule.random_step_probability(0.0) == schedule.random_step_start


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"episodes": 0}, "invalid episode count 0"),
        ({"seed": -1}, "invalid seed -1"),
        ({"episode_steps": 0}, "invalid episode length 0"),
        ({"task": "no-such-task"}, "unknown task 'no-such-task'"),
        ({"schedule": BehaviourSchedule(runs=0)}, "invalid schedule runs 0"),
        (
            {"schedule": BehaviourSchedule(noise_std_start=-1.0)},
            "invalid schedule noise_std_start -1.0",
        ),
        (
            {"schedule": BehaviourSchedule(random_step_start=1.5)},
            "invalid schedule random_step_start 1.5",
        ),
        (
            {"schedule": BehaviourSchedule(distractor_probability=0.5)},
            "invalid schedule distractor_probability 0.5 without a distractor task",
        ),
        (
            {
                "schedule": BehaviourSchedule(
                    distractor_task="window-open", distractor_probability=2.0
                )
            },
            "invalid schedule distractor_probability 2.0",
        ),
        (
            {"schedule": BehaviourSchedule(distractor_task="no-such-task")},
            "unknown task 'no-such-task'",
        ),
    ],
)
def test_config_validation(changes, message):
    settings = {"task": "dial-turn", **changes}
    with pytest.raises(InputError, match=message):
        GeneratorConfig(**settings).validate()


def test_write_dataset_files_and_sidecar(tmp_path):
    path = tmp_path / "drawer-open.npz"
    config = GeneratorConfig("drawer-open", episodes=2, seed=3, episode_steps=60)
    result = write_dataset(config, path, log_every=0)

    assert result.path == path
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [
        "drawer-open.json",
        "drawer-open.npz",
    ]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["task"] == "drawer-open"
    assert sidecar["generator"]["seed"] == 3
    assert sidecar["generator"]["episodes"] == 2
    assert sidecar["generator"]["schedule"]["runs"] == config.schedule.runs
    assert len(sidecar["generator"]["episode_behaviour"]) == 2
    assert set(sidecar["versions"]) >= {"metaworld", "mujoco", "numpy"}

    with np.load(path) as archive:
        assert set(archive.files) == {*EXPECTED_FIELDS, "rand_vecs"}
    dataset = load_dataset(path)
    assert dataset.steps == 120
    assert sidecar["fingerprint"] == compute_fingerprint(dataset)


def test_interrupted_write_keeps_old_files(tmp_path):
    path = tmp_path / "dial-turn.npz"
    path.write_bytes(b"previous dataset")
    path.with_suffix(".json").write_text("previous sidecar")

    def interrupt(episode):
        if episode == 1:
            raise KeyboardInterrupt

    config = GeneratorConfig("dial-turn", episodes=3, seed=0, episode_steps=20)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(config, path, log_every=0, on_episode=interrupt)

    assert sorted(entry.name for entry in tmp_path.iterdir()) == [
        "dial-turn.json",
        "dial-turn.npz",
    ]
    assert path.read_bytes() == b"previous dataset"
    assert path.with_suffix(".json").read_text() == "previous sidecar"


def test_failed_archive_write_leaves_nothing(tmp_path, monkeypatch):
    def failing_savez(file, **arrays):
        file.write(b"partial archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", failing_savez)
    path = tmp_path / "dial-turn.npz"
    config = GeneratorConfig("dial-turn", episodes=1, seed=0, episode_steps=60)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(config, path, log_every=0)

    assert list(tmp_path.iterdir()) == []


def test_write_dataset_rejects_bad_path(tmp_path):
    config = GeneratorConfig("dial-turn", episodes=1, episode_steps=10)
    with pytest.raises(InputError, match=r"must end in \.npz"):
        write_dataset(config, tmp_path / "data.npy")
    with pytest.raises(InputError, match="does not exist"):
        write_dataset(config, tmp_path / "missing" / "data.npz")

"""Tests of the Meta-World environment wrapper: determinism, time limit, state."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from clarify_sim.env import (
    ACTION_DIM,
    OBSERVATION_DIM,
    make_env,
    policy_class_name,
    scripted_policy,
    task_names,
)
from clarify_sim.errors import InputError, UnknownTaskError


def noisy_actions(seed: int, steps: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(steps, ACTION_DIM)).astype(np.float32)


def test_same_seed_same_actions_identical():
    first = make_env("dial-turn", seed=3)
    second = make_env("dial-turn", seed=3)
    observation_a, info_a = first.reset(seed=11)
    observation_b, info_b = second.reset(seed=11)
    assert np.array_equal(observation_a, observation_b)
    assert np.array_equal(info_a["rand_vec"], info_b["rand_vec"])

    for step, action in enumerate(noisy_actions(0, 80)):
        result_a = first.step(action)
        result_b = second.step(action)
        assert np.array_equal(result_a[0], result_b[0]), f"observation at step {step}"
        assert result_a[1] == result_b[1], f"reward at step {step}"
        assert result_a[4]["success"] == result_b[4]["success"], f"step {step}"


def test_reset_seed_sets_rand_vec():
    env = make_env("drawer-open")
    _, first = env.reset(seed=5)
    _, other = env.reset(seed=6)
    _, again = env.reset(seed=5)

    assert np.array_equal(first["rand_vec"], again["rand_vec"])
    assert not np.array_equal(first["rand_vec"], other["rand_vec"])


def test_reset_to_given_rand_vec():
    env = make_env("dial-turn")
    rand_vec = np.array([0.05, 0.75, 0.0])
    observation, info = env.reset(options={"rand_vec": rand_vec})

    assert np.array_equal(info["rand_vec"], rand_vec)
    # The goal (entries 36-38) lies 0.03 m above and behind the dial.
    assert np.allclose(observation[36:39], rand_vec + np.array([0.0, 0.03, 0.03]))


def test_spaces_and_step_types():
    env = make_env("handle-pull-side", seed=0)
    observation, _ = env.reset(seed=0)
    result = env.step(np.zeros(ACTION_DIM, dtype=np.float32))

    assert env.observation_space.shape == (OBSERVATION_DIM,)
    assert env.action_space.shape == (ACTION_DIM,)
    assert observation.shape == (OBSERVATION_DIM,)
    assert observation.dtype == np.float64
    assert isinstance(result[1], float)
    assert 0.0 <= result[1] <= 10.0
    assert result[2] is False
    assert result[3] is False
    assert isinstance(result[4]["success"], bool)


def test_truncated_at_limit_then_step_raises():
    env = make_env("dial-turn", seed=0, max_episode_steps=5)
    env.reset(seed=1)
    flags = [env.step(action)[3] for action in noisy_actions(1, 5)]

    assert flags == [False, False, False, False, True]
    with pytest.raises(RuntimeError, match="time limit of 5 steps"):
        env.step(np.zeros(ACTION_DIM, dtype=np.float32))

    env.reset(seed=1)
    assert env.elapsed_steps == 0


def test_step_before_reset_raises():
    env = make_env("dial-turn")
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(ACTION_DIM, dtype=np.float32))


def test_step_rejects_wrong_action_shape():
    env = make_env("dial-turn")
    env.reset(seed=0)
    with pytest.raises(InputError, match=r"action has shape \(3,\), expected \(4,\)"):
        env.step(np.zeros(3, dtype=np.float32))


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError) as raised:
        make_env("dial-tunr")
    message = str(raised.value)
    assert "unknown task 'dial-tunr'" in message
    assert "dial-turn" in message
    assert "handle-pull-side" in message


@pytest.mark.parametrize("task", ["dial-turn", "drawer-open", "handle-pull-side"])
@pytest.mark.parametrize("restore_step", [0, 40])
def test_state_restore_continues_exactly(task, restore_step):
    policy = scripted_policy(task)
    noise = np.random.default_rng(2).normal(0.0, 0.3, size=(120, ACTION_DIM))
    env = make_env(task, seed=1)
    observation, _ = env.reset(seed=4)
    for step in range(restore_step):
        action = np.clip(policy(observation) + noise[step], -1, 1).astype(np.float32)
        observation, *_ = env.step(action)
    state = env.get_state()
    saved_observation = observation

    expected = []
    actions = []
    for step in range(restore_step, 120):
        action = np.clip(policy(observation) + noise[step], -1, 1).astype(np.float32)
        actions.append(action)
        expected.append(env.step(action))

    restored = make_env(task, seed=99)
    restored.reset(seed=123)
    assert np.array_equal(restored.set_state(state), saved_observation)
    assert restored.elapsed_steps == restore_step
    for offset, (action, result) in enumerate(zip(actions, expected, strict=True)):
        again = restored.step(action)
        step = restore_step + offset
        assert np.array_equal(again[0], result[0]), f"observation at step {step}"
        assert again[1] == result[1], f"reward at step {step}"


def test_set_state_rejects_wrong_shape():
    env = make_env("dial-turn", seed=0)
    env.reset(seed=0)
    state = env.get_state()
    broken = type(state)(**{**vars(state), "qpos": state.qpos[:-1]})

    with pytest.raises(InputError, match=r"qpos has shape \(9,\), expected \(10,\)"):
        env.set_state(broken)


def test_every_task_resets_for_many_seeds():
    # Tasks such as reach reject some random vectors during their reset; each
    # rejection must lead to a new draw, never to an endless loop. The alarm turns
    # such a loop into a failure instead of a hung test run.
    def fail_on_timeout(signum, frame):
        raise TimeoutError("a task reset did not finish within 120 s")

    previous_handler = signal.signal(signal.SIGALRM, fail_on_timeout)
    signal.alarm(120)
    try:
        for task in task_names():
            env = make_env(task)
            for seed in range(5):
                observation, info = env.reset(seed=seed)
                assert observation.shape == (OBSERVATION_DIM,), task
                assert np.array_equal(info["rand_vec"], env.rand_vec), task
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous_handler)


def test_replacement_rand_vec_replays_exactly():
    # For some seeds, reach rejects the first vector drawn and keeps a later one.
    # The reset's generator is numpy's default_rng(seed), so the first draw is known.
    env = make_env("reach")
    rejected = 0
    for seed in range(40):
        first_draw = np.random.default_rng(seed).uniform(
            env.sawyer_env._random_reset_space.low,
            env.sawyer_env._random_reset_space.high,
        )
        observation, info = env.reset(seed=seed)
        if np.array_equal(first_draw, info["rand_vec"]):
            continue
        rejected += 1

        replayed, _ = env.reset(options={"rand_vec": info["rand_vec"]})
        assert np.array_equal(replayed, observation)
    assert rejected > 0


def test_scripted_policy_names_resolve():
    assert policy_class_name("dial-turn") == "SawyerDialTurnV3Policy"
    for task in task_names():
        policy = scripted_policy(task)
        assert callable(policy.policy.get_action), task


def test_scripted_policy_irregular_class_name():
    # Meta-World names this policy SawyerPegInsertionSideV3Policy.
    policy = scripted_policy("peg-insert-side")
    env = make_env("peg-insert-side", seed=0)
    observation, _ = env.reset(seed=0)
    action = policy(observation)

    assert type(policy.policy).__name__ == "SawyerPegInsertionSideV3Policy"
    assert action.shape == (ACTION_DIM,)
    assert action.dtype == np.float32

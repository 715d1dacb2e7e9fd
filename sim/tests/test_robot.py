"""Tests of the robot stand-in's bookkeeping: step messages, action pairing, tallies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clarify_sim.env import make_env, scripted_policy
from clarify_sim.errors import InputError
from clarify_sim.generate import generate_episode
from clarify_sim.robot import (
    ActionPairing,
    EvaluationTally,
    RobotConfig,
    transition_messages,
)


def test_transition_messages_split_reward():
    config = RobotConfig(episode_steps=5, schedule_episodes=4)
    env = make_env(config.task, max_episode_steps=config.episode_steps)
    arrays, _ = generate_episode(
        env, scripted_policy(config.task), config.generator_config(), 2
    )
    for step in range(5):
        recorded, rewarded = transition_messages(arrays, 9, step)
        assert recorded.episode_id == 9
        assert recorded.step == step
        assert not recorded.has_reward
        assert recorded.reward == 0.0
        assert rewarded.has_reward
        assert rewarded.reward == pytest.approx(float(arrays["rewards"][step]))
        assert recorded.observation == rewarded.observation
        expected = arrays["observations"][step].astype(np.float32)
        assert np.array_equal(np.asarray(recorded.observation, np.float32), expected)
        assert recorded.action == arrays["actions"][step].tolist()
        assert recorded.truncated == (step == 4)
        assert not recorded.terminated


def test_collected_episode_repeats_generator():
    # Episode 2 of the robot is episode 2 of the dataset with the same settings.
    config = RobotConfig(episode_steps=20, schedule_episodes=4, seed=3)
    generator = config.generator_config()
    first, _ = generate_episode(
        make_env(config.task, max_episode_steps=20),
        scripted_policy(config.task),
        generator,
        2,
    )
    second, _ = generate_episode(
        make_env(config.task, max_episode_steps=20),
        scripted_policy(config.task),
        generator,
        2,
    )
    assert np.array_equal(first["observations"], second["observations"])
    assert np.array_equal(first["rewards"], second["rewards"])


def test_pairing_skips_first_action():
    pairing = ActionPairing(skip=1)
    stale = np.array([0.1], np.float32)
    fresh = np.array([0.2], np.float32)
    assert pairing.action_received(stale) is None
    pairing.observation_sent()
    assert pairing.action_received(stale) is None
    assert pairing.action_received(fresh) is fresh
    assert pairing.action_received(fresh) is None


def test_pairing_without_skip_takes_first_action():
    pairing = ActionPairing(skip=0)
    pairing.observation_sent()
    action = np.array([0.5], np.float32)
    assert pairing.action_received(action) is action


def test_tally_success_rate_and_report():
    tally = EvaluationTally(version="v1", episodes=3)
    assert math.isnan(tally.success_rate)
    tally.add_episode(True, 40)
    tally.add_episode(False, 500)
    assert not tally.finished
    tally.add_episode(True, 60)
    assert tally.finished
    assert tally.success_rate == pytest.approx(2 / 3)
    report = tally.to_json()
    assert report["version"] == "v1"
    assert report["episodes"] == 3
    assert report["successes"] == 2
    assert report["mean_steps"] == pytest.approx(200.0)
    with pytest.raises(ValueError, match="already has its 3 episodes"):
        tally.add_episode(True, 1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("collect_rate_hz", -1.0, "invalid collect rate -1.0"),
        ("eval_episodes", 0, "invalid eval_episodes 0"),
        ("action_timeout_s", 0.0, "invalid action_timeout_s 0.0"),
        ("swap_timeout_s", 0.0, "invalid swap_timeout_s 0.0"),
        ("skip_actions", -1, "invalid skip_actions -1"),
        ("max_episodes", -2, "invalid max_episodes -2"),
        ("task", "no-such-task", "unknown task 'no-such-task'"),
    ],
)
def test_config_rejects_bad_value(field, value, message):
    config = RobotConfig(**{field: value})
    with pytest.raises(InputError, match=message):
        config.validate()

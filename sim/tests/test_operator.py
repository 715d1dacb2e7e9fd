"""Tests of the simulated operator's segment matching and teacher answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clarify_sim import ros
from clarify_sim.errors import InputError
from clarify_sim.operator import (
    ANSWER_VALUES,
    SegmentNotFoundError,
    StepIndex,
    asked_before,
    decide,
    segment_rows,
)
from clarify_sim.teacher import CANT_TELL, LEFT, RIGHT


def episode_rows(episode: int, steps: int, dim: int = 3) -> np.ndarray:
    """Distinct float32 observation rows of one episode."""
    base = np.arange(steps * dim, dtype=np.float32).reshape(steps, dim)
    return base + np.float32(1000.0 * episode) + np.float32(0.25)


def filled_index(rewards_by_episode: dict[int, list[float]]) -> StepIndex:
    index = StepIndex()
    for episode, rewards in rewards_by_episode.items():
        rows = episode_rows(episode, len(rewards))
        for step, reward in enumerate(rewards):
            assert index.add(episode, step, rows[step], reward)
    return index


def make_query(
    left: np.ndarray, right: np.ndarray, dim: int = 3
) -> ros.PreferenceQuery:
    zero = ros.Time(sec=0, nanosec=0)
    return ros.PreferenceQuery(
        stamp=zero,
        query_id=7,
        left=ros.SegmentRef(episode_id=11, start_step=0, length_steps=len(left)),
        right=ros.SegmentRef(episode_id=12, start_step=0, length_steps=len(right)),
        observation_dim=dim,
        action_dim=1,
        observation_names=[],
        action_names=[],
        step_period_sec=0.0,
        left_observations=left.reshape(-1).tolist(),
        left_actions=[0.0] * len(left),
        right_observations=right.reshape(-1).tolist(),
        right_actions=[0.0] * len(right),
        selector="random",
        encoder_version="",
        expires_at=zero,
    )


def test_match_finds_segment_in_later_episode():
    index = filled_index({0: [1.0] * 10, 5: [float(s) for s in range(10)]})
    match = index.match(episode_rows(5, 10)[3:7])
    assert match.episode_id == 5
    assert match.start == 3
    assert match.rewards.tolist() == [3.0, 4.0, 5.0, 6.0]
    assert match.segment_return == 18.0
    assert match.candidates == 1


def test_match_rejects_rows_across_episodes():
    index = filled_index({0: [0.0] * 4, 1: [0.0] * 4})
    rows = np.concatenate([episode_rows(0, 4)[2:], episode_rows(1, 4)[:2]])
    with pytest.raises(SegmentNotFoundError, match="4 consecutive robot steps"):
        index.match(rows)


def test_match_rejects_changed_row():
    index = filled_index({0: [0.0] * 6})
    rows = episode_rows(0, 6)[1:5].copy()
    rows[2, 1] = np.nextafter(rows[2, 1], np.float32(np.inf))
    with pytest.raises(SegmentNotFoundError):
        index.match(rows)


def test_match_counts_repeated_rows():
    index = StepIndex()
    repeated = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    for episode in (0, 1):
        for step in range(3):
            index.add(episode, step, repeated, float(episode))
    match = index.match(np.stack([repeated, repeated]))
    assert match.candidates == 4
    assert (match.episode_id, match.start) == (0, 0)


def test_index_drops_out_of_order_steps():
    index = StepIndex()
    rows = episode_rows(0, 3)
    assert index.add(0, 0, rows[0], 1.0)
    assert not index.add(0, 2, rows[2], 5.0)
    assert not index.add(0, 1, rows[1][:2], 5.0)
    assert index.dropped == 2
    assert index.steps == 1
    assert index.mean_reward == 1.0


def test_mean_reward_over_all_steps():
    index = filled_index({0: [1.0, 3.0], 1: [2.0, 6.0]})
    assert index.mean_reward == 3.0
    assert math.isnan(StepIndex().mean_reward)


def test_segment_rows_rejects_wrong_size():
    with pytest.raises(InputError, match="expected 2 steps of 3 values"):
        segment_rows([0.0] * 5, 2, 3)


def test_decide_answers_clear_pair():
    # Mean reward 1.0 over 20 steps, H = 4, epsilon 0.5: threshold 2.0.
    rewards = [0.0] * 10 + [2.0] * 10
    index = filled_index({0: rewards})
    rows = episode_rows(0, 20)
    decision = decide(index, make_query(rows[0:4], rows[12:16]), epsilon=0.5)
    assert decision.threshold == 2.0
    assert decision.return_left == 0.0
    assert decision.return_right == 8.0
    assert decision.answer == RIGHT
    swapped = decide(index, make_query(rows[12:16], rows[0:4]), epsilon=0.5)
    assert swapped.answer == LEFT


def test_decide_cant_tell_within_threshold():
    # Returns 4.0 and 6.0 differ by exactly the threshold 2.0.
    rewards = [1.0] * 8 + [1.5] * 4 + [0.5] * 4
    index = filled_index({0: rewards})
    rows = episode_rows(0, 16)
    decision = decide(index, make_query(rows[0:4], rows[8:12]), epsilon=0.5)
    assert index.mean_reward == 1.0
    assert decision.return_right - decision.return_left == 2.0
    assert decision.answer == CANT_TELL
    clear = decide(index, make_query(rows[0:4], rows[8:12]), epsilon=0.4)
    assert clear.answer == RIGHT


def test_decide_raises_for_unknown_segment():
    index = filled_index({0: [1.0] * 8})
    rows = episode_rows(0, 8)
    unknown = episode_rows(3, 4)
    with pytest.raises(SegmentNotFoundError):
        decide(index, make_query(rows[0:4], unknown), epsilon=0.5)


def test_answer_values_match_message_constants():
    assert ANSWER_VALUES[LEFT] == 1
    assert ANSWER_VALUES[RIGHT] == 2
    assert ANSWER_VALUES[CANT_TELL] == 3


def test_asked_before_compares_query_stamp():
    rows = episode_rows(0, 4)
    query = make_query(rows[0:2], rows[2:4])
    query.stamp = ros.Time(sec=100, nanosec=500_000_000)
    assert asked_before(query, 100.6)
    assert not asked_before(query, 100.5)
    assert not asked_before(query, 0.0)


def test_index_counts_finished_episodes():
    index = StepIndex()
    rows = episode_rows(0, 3)
    for step in range(3):
        assert index.add(0, step, rows[step], 0.0, last=step == 2)
    assert index.finished_episodes == 1
    assert not index.add(0, 5, rows[0], 0.0, last=True)
    assert index.finished_episodes == 1

"""Tests of the dataset fingerprint and the ε-skip teacher."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import make_arrays

from clarify_sim.dataset import validate_arrays
from clarify_sim.errors import InputError
from clarify_sim.fingerprint import (
    SplitMix64,
    compute_fingerprint,
    histogram,
    return_statistics,
    sample_pairs,
)
from clarify_sim.teacher import SkipTeacher


def test_splitmix64_reference_vector():
    # Outputs of Vigna's splitmix64.c for the seed 1234567.
    generator = SplitMix64(1234567)
    outputs = [generator.next() for _ in range(3)]
    assert outputs == [6457827717110365317, 3203168211198807973, 9817491932198370423]


def test_sample_pairs_follow_draw_order():
    generator = SplitMix64(7)
    expected = []
    for _ in range(50):
        a = generator.next() % 3
        b = generator.next() % 3
        while b == a:
            b = generator.next() % 3
        expected.append((a, b))

    assert sample_pairs(3, 50, 7) == expected


def test_sample_pairs_never_repeat_a_segment():
    pairs = sample_pairs(2, 500, 0)
    assert len(pairs) == 500
    assert all(a != b for a, b in pairs)
    assert set(pairs) == {(0, 1), (1, 0)}


def hand_dataset():
    # H = 4. Episode 0 has exactly 4 steps (1 segment), episode 1 has 3 (too short),
    # episode 2 has 6 (3 segments).
    rewards = [1, 1, 1, 1, 0, 0, 0, 2, 2, 2, 2, 0, 0]
    arrays = make_arrays([4, 3, 6], rewards=rewards)
    arrays["success"][2] = True  # episode 0 succeeds mid-episode
    arrays["success"][12] = True  # episode 2 succeeds at its last step
    return validate_arrays(arrays, "hand")


def test_hand_computed_fingerprint(tmp_path):
    pairs_path = tmp_path / "pairs.jsonl"
    fingerprint = compute_fingerprint(
        hand_dataset(), segment_length=4, pairs=200, pair_seed=3, pairs_out=pairs_path
    )

    assert fingerprint["episodes"] == 3
    assert fingerprint["steps"] == 13
    assert fingerprint["segment_length"] == 4
    assert fingerprint["segments"] == 4
    assert fingerprint["short_episodes"] == 1
    assert fingerprint["success_rate_any"] == 2 / 3
    assert fingerprint["success_rate_final"] == 1 / 3
    assert fingerprint["mean_step_reward"] == 12 / 13
    assert fingerprint["pairs"] == 200
    assert fingerprint["pair_seed"] == 3

    returns = fingerprint["episode_return"]
    assert returns["min"] == 0.0
    assert returns["max"] == 8.0
    assert returns["mean"] == 4.0
    assert returns["std"] == math.sqrt(32 / 3)
    assert returns["histogram"]["counts"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert returns["histogram"]["edges"] == np.linspace(0.0, 8.0, 11).tolist()

    # Segment returns: steps 0-3 give 4, 7-10 give 8, 8-11 give 6, 9-12 give 4.
    segment_returns = [4.0, 8.0, 6.0, 4.0]
    thresholds = {"0.5": 0.5 * 4 * (12 / 13), "0.7": 0.7 * 4 * (12 / 13)}
    lines = pairs_path.read_text().splitlines()
    assert len(lines) == 200
    clear = {"0.5": 0, "0.7": 0}
    for line, (a, b) in zip(lines, sample_pairs(4, 200, 3), strict=True):
        pair = json.loads(line)
        assert (pair["a"], pair["b"]) == (a, b)
        assert pair["return_a"] == segment_returns[a]
        assert pair["return_b"] == segment_returns[b]
        for key, threshold in thresholds.items():
            gap = segment_returns[a] - segment_returns[b]
            if abs(gap) <= threshold:
                expected = "cant_tell"
            else:
                expected = "left" if gap > 0 else "right"
            assert pair["answers"][key] == expected, (pair, key)
            clear[key] += expected != "cant_tell"
    assert fingerprint["clear_share"] == {key: n / 200 for key, n in clear.items()}
    # A gap of 2 is clear at ε = 0.5 (T = 1.85) but not at ε = 0.7 (T = 2.58).
    assert fingerprint["clear_share"]["0.5"] > fingerprint["clear_share"]["0.7"] > 0


def test_gap_equal_to_threshold_is_cant_tell():
    # r̄ = 8 / 8 = 1, so T = 0.5 * 4 * 1 = 2 equals the gap between 5 and 3.
    arrays = make_arrays([4, 4], rewards=[2, 1, 1, 1, 0, 1, 1, 1])
    fingerprint = compute_fingerprint(
        validate_arrays(arrays, "boundary"), segment_length=4, pairs=10
    )

    assert fingerprint["mean_step_reward"] == 1.0
    assert fingerprint["clear_share"] == {"0.5": 0.0, "0.7": 0.0}


def test_success_rates_unknown_without_field():
    arrays = make_arrays([4, 4])
    del arrays["success"]
    fingerprint = compute_fingerprint(validate_arrays(arrays, "plain"), 4, pairs=5)

    assert fingerprint["success_rate_any"] is None
    assert fingerprint["success_rate_final"] is None
    json.dumps(fingerprint)  # null in JSON


def test_fingerprint_input_errors():
    dataset = validate_arrays(make_arrays([4, 5]), "two")
    with pytest.raises(InputError, match="invalid pair count 0"):
        compute_fingerprint(dataset, segment_length=4, pairs=0)
    with pytest.raises(InputError, match=r"two has 1 segment\(s\) of 5 steps"):
        compute_fingerprint(dataset, segment_length=5)


def test_return_statistics_population_std():
    statistics = return_statistics([1.0, 2.0, 4.0])
    mean = 7 / 3
    variance = ((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 3

    assert statistics["mean"] == mean
    assert statistics["std"] == pytest.approx(math.sqrt(variance), rel=1e-15)


def test_histogram_bins_and_flat_case():
    spread = histogram([0.0, 0.95, 1.0, 10.0], 0.0, 10.0)
    flat = histogram([3.0, 3.0], 3.0, 3.0)

    assert spread["counts"] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert flat["counts"] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert flat["edges"] == [3.0] * 11


def test_skip_teacher_threshold_boundary():
    teacher = SkipTeacher(epsilon=0.5, segment_length=4, mean_step_reward=1.0)

    assert teacher.threshold == 2.0
    assert teacher.answer(10.0, 8.0) == "cant_tell"
    assert teacher.answer(8.0, 10.0) == "cant_tell"
    assert teacher.answer(10.0, 7.75) == "left"
    assert teacher.answer(7.75, 10.0) == "right"


def test_skip_teacher_negative_threshold():
    teacher = SkipTeacher(epsilon=0.5, segment_length=10, mean_step_reward=-1.0)

    assert teacher.threshold < 0.0
    assert teacher.answer(-3.0, -3.0) == "cant_tell"
    assert teacher.answer(-3.0, -3.5) == "left"


def test_skip_teacher_multiplies_left_to_right():
    # (0.7 * 3) * 0.1 and 0.7 * (3 * 0.1) differ in the last bit.
    left_to_right = (0.7 * 3.0) * 0.1
    assert left_to_right != 0.7 * (3.0 * 0.1)
    assert SkipTeacher(0.7, 3, 0.1).threshold == left_to_right

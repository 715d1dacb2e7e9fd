"""The dataset fingerprint: summary statistics that identify a dataset and show how hard
its preference queries are.

The Rust side computes the same fingerprint, and the two must agree exactly, so the
arithmetic order is fixed (docs/DATASETS.md):

- returns come from the float64 prefix sum in step order, c[0] = 0 and
  c[i + 1] = c[i] + rewards[i]; a segment or episode over the steps g..e-1 has return
  c[e] - c[g];
- the mean step reward r̄ is c[N] / N;
- the mean and population std of the episode returns add one episode at a time, in
  episode order (numpy's `sum`, `mean` and `std` add pairwise and can differ in the
  last bits);
- histogram edges are `numpy.linspace(min, max, 11)`, and the bin of a return R is
  floor((R - min) / (max - min) * 10) clamped to 0..9, or bin 0 when max equals min;
- query pairs come from SplitMix64 seeded with the pair seed: a = next() mod S, then
  b = next() mod S, drawn again while b equals a, with S the number of segments;
- each pair is answered by the ε-skip teacher for every ε in `CLEAR_SHARE_EPSILONS`.

JSON keys for ε values are Python's `str(float)` ("0.5").
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clarify_sim.dataset import DEFAULT_SEGMENT_LENGTH, Dataset, enumerate_segments
from clarify_sim.errors import InputError
from clarify_sim.teacher import CANT_TELL, SkipTeacher

#: The ε values of the skip teachers whose clear-answer share the fingerprint reports.
CLEAR_SHARE_EPSILONS = (0.5, 0.7)

#: Default number of random segment pairs.
DEFAULT_PAIR_COUNT = 2000

#: Default seed of the pair generator.
DEFAULT_PAIR_SEED = 0

#: Number of equal-width bins of the episode return histogram.
HISTOGRAM_BINS = 10

_MASK64 = (1 << 64) - 1


class SplitMix64:
    """Sebastiano Vigna's SplitMix64 generator (splitmix64.c, public domain reference).

    The state starts at the seed, and each output adds the golden-ratio increment and
    mixes the result with two xor-shift-multiply rounds.
    """

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK64

    def next(self) -> int:
        """Return the next 64-bit output as an int in 0..2**64 - 1."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)


def sample_pairs(segment_count: int, count: int, seed: int) -> list[tuple[int, int]]:
    """Draw `count` pairs of distinct segment indices in 0..segment_count - 1.

    Pairs may repeat. Raises `InputError` when fewer than 2 segments exist.
    """
    if segment_count < 2:
        raise InputError(
            f"pair sampling needs at least 2 segments, found {segment_count}: use a "
            "shorter segment length or a larger dataset"
        )
    generator = SplitMix64(seed)
    pairs = []
    for _ in range(count):
        a = generator.next() % segment_count
        b = generator.next() % segment_count
        while b == a:
            b = generator.next() % segment_count
        pairs.append((a, b))
    return pairs


def reward_prefix_sum(rewards: np.ndarray) -> np.ndarray:
    """Return c with c[0] = 0 and c[i + 1] = c[i] + rewards[i], in float64, in order.

    `numpy.cumsum` adds sequentially, unlike `numpy.sum`.
    """
    prefix = np.zeros(rewards.size + 1, dtype=np.float64)
    np.cumsum(rewards.astype(np.float64), out=prefix[1:])
    return prefix


def epsilon_key(epsilon: float) -> str:
    """Return the JSON key of a teacher's ε: Python's `str(float)`, such as "0.5"."""
    return str(float(epsilon))


def compute_fingerprint(
    dataset: Dataset,
    segment_length: int = DEFAULT_SEGMENT_LENGTH,
    pairs: int = DEFAULT_PAIR_COUNT,
    pair_seed: int = DEFAULT_PAIR_SEED,
    pairs_out: str | Path | None = None,
) -> dict[str, Any]:
    """Compute the fingerprint of `dataset` as a JSON-serialisable dict.

    With `pairs_out`, also write every sampled pair as one JSON line:
    `{"a", "b", "return_a", "return_b", "answers": {"0.5": ..., "0.7": ...}}`.
    Raises `InputError` when `pairs` is below 1 or the dataset has under 2 segments.
    """
    if pairs < 1:
        raise InputError(
            f"invalid pair count {pairs}: the clear share needs at least 1 pair"
        )
    if not 0 <= pair_seed <= _MASK64:
        raise InputError(
            f"invalid pair seed {pair_seed}: use an integer in 0..2**64 - 1"
        )
    if pairs_out is not None and not Path(pairs_out).parent.is_dir():
        raise InputError(
            f"folder {Path(pairs_out).parent} does not exist: create it or choose "
            "another path for the pairs"
        )
    segments = enumerate_segments(dataset.episode_bounds, segment_length)
    if len(segments) < 2:
        raise InputError(
            f"{dataset.source} has {len(segments)} segment(s) of {segment_length} "
            "steps, but pair sampling needs at least 2: use a shorter segment length"
        )

    prefix = reward_prefix_sum(dataset.rewards)
    mean_step_reward = float(prefix[-1]) / dataset.steps
    bounds = dataset.episode_bounds
    episode_returns = (prefix[bounds[1:]] - prefix[bounds[:-1]]).tolist()
    segment_returns = prefix[segments.starts + segment_length] - prefix[segments.starts]

    teachers = [
        SkipTeacher(epsilon, segment_length, mean_step_reward)
        for epsilon in CLEAR_SHARE_EPSILONS
    ]
    sampled = list(
        _answer_pairs(
            sample_pairs(len(segments), pairs, pair_seed), segment_returns, teachers
        )
    )
    if pairs_out is not None:
        _write_pairs(Path(pairs_out), sampled)

    clear_share = {}
    for teacher in teachers:
        key = epsilon_key(teacher.epsilon)
        clear = sum(1 for pair in sampled if pair["answers"][key] != CANT_TELL)
        clear_share[key] = clear / pairs

    success_any, success_final = _success_rates(dataset)
    return {
        "episodes": dataset.episode_count,
        "steps": dataset.steps,
        "segment_length": segment_length,
        "segments": len(segments),
        "short_episodes": segments.short_episodes,
        "success_rate_any": success_any,
        "success_rate_final": success_final,
        "mean_step_reward": mean_step_reward,
        "episode_return": return_statistics(episode_returns),
        "clear_share": clear_share,
        "pairs": pairs,
        "pair_seed": pair_seed,
    }


def _answer_pairs(
    pairs: Sequence[tuple[int, int]],
    segment_returns: np.ndarray,
    teachers: Sequence[SkipTeacher],
) -> Iterator[dict[str, Any]]:
    for a, b in pairs:
        return_a = float(segment_returns[a])
        return_b = float(segment_returns[b])
        answers = {
            epsilon_key(teacher.epsilon): teacher.answer(return_a, return_b)
            for teacher in teachers
        }
        yield {
            "a": a,
            "b": b,
            "return_a": return_a,
            "return_b": return_b,
            "answers": answers,
        }


def _write_pairs(path: Path, pairs: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as file:
        for pair in pairs:
            file.write(json.dumps(pair, separators=(",", ":")) + "\n")


def _success_rates(dataset: Dataset) -> tuple[float | None, float | None]:
    success = dataset.success
    if success is None:
        return None, None
    bounds = dataset.episode_bounds
    any_count = 0
    final_count = 0
    for first, end in itertools.pairwise(bounds):
        if success[first:end].any():
            any_count += 1
        if success[end - 1]:
            final_count += 1
    episodes = dataset.episode_count
    return any_count / episodes, final_count / episodes


def return_statistics(returns: Sequence[float]) -> dict[str, Any]:
    """Return min, max, mean, population std and the histogram of `returns`.

    Sums add one value at a time, in order, to match the Rust side to the bit.
    """
    count = len(returns)
    minimum = min(returns)
    maximum = max(returns)

    total = 0.0
    for value in returns:
        total += value
    mean = total / count

    squared_deviations = 0.0
    for value in returns:
        deviation = value - mean
        squared_deviations += deviation * deviation
    std = math.sqrt(squared_deviations / count)

    return {
        "min": minimum,
        "max": maximum,
        "mean": mean,
        "std": std,
        "histogram": histogram(returns, minimum, maximum),
    }


def histogram(values: Sequence[float], minimum: float, maximum: float) -> dict:
    """Return `HISTOGRAM_BINS` equal-width bins from `minimum` to `maximum`.

    The bin of a value R is floor((R - min) / (max - min) * bins), clamped to the last
    bin, so the maximum falls in the last bin. All values fall in bin 0 when max equals
    min.
    """
    width = maximum - minimum
    counts = [0] * HISTOGRAM_BINS
    for value in values:
        if maximum == minimum:
            index = 0
        else:
            position = math.floor((value - minimum) / width * HISTOGRAM_BINS)
            index = min(max(position, 0), HISTOGRAM_BINS - 1)
        counts[index] += 1
    edges = np.linspace(minimum, maximum, HISTOGRAM_BINS + 1).tolist()
    return {"edges": edges, "counts": counts}


def format_fingerprint(fingerprint: dict[str, Any]) -> str:
    """Format a fingerprint as a few readable lines."""
    returns = fingerprint["episode_return"]
    success_any = fingerprint["success_rate_any"]
    success_final = fingerprint["success_rate_final"]
    if success_any is None:
        success = "unknown (no success field)"
    else:
        success = f"{success_any:.1%} at any step, {success_final:.1%} at the last step"
    clear = ", ".join(
        f"ε={key}: {share:.1%}" for key, share in fingerprint["clear_share"].items()
    )
    lines = [
        f"episodes            {fingerprint['episodes']}",
        f"steps               {fingerprint['steps']}",
        f"segments            {fingerprint['segments']} of "
        f"{fingerprint['segment_length']} steps "
        f"({fingerprint['short_episodes']} episodes too short)",
        f"success             {success}",
        f"mean step reward    {fingerprint['mean_step_reward']:.4f}",
        f"episode return      min {returns['min']:.1f}, max {returns['max']:.1f}, "
        f"mean {returns['mean']:.1f}, std {returns['std']:.1f}",
        f"return histogram    {returns['histogram']['counts']}",
        f"clear answer share  {clear} "
        f"({fingerprint['pairs']} random pairs, seed {fingerprint['pair_seed']})",
    ]
    return "\n".join(lines)

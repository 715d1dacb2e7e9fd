"""Simulated teachers: scripted operators that answer preference queries from
ground-truth segment returns, for datasets, benchmarks and tests.

Each teacher's rule lives here and nowhere else in the Python code, so the dataset
fingerprint and every simulated operator give the same answer to the same query; the
Rust side implements the same rules. A teacher answers "left", "right" or "cant_tell".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

#: A teacher's answer: the left (first) segment is better, the right one, or the
#: teacher cannot tell them apart.
Answer = Literal["left", "right", "cant_tell"]

LEFT: Answer = "left"
RIGHT: Answer = "right"
CANT_TELL: Answer = "cant_tell"


class Teacher(Protocol):
    """A simulated operator that compares two segments by their returns."""

    def answer(self, return_left: float, return_right: float) -> Answer:
        """Answer a query from the returns of its left and right segments."""
        ...


@dataclass(frozen=True)
class SkipTeacher:
    """The ε-skip teacher of CLARIFY (Mu et al., ICML 2025).

    It cannot tell two segments apart when their returns differ by at most the
    threshold T = ε · H · r̄, with H the segment length in steps and r̄ the dataset's
    mean step reward, so T is ε times the mean return of a segment.
    """

    epsilon: float
    segment_length: int
    mean_step_reward: float

    @property
    def threshold(self) -> float:
        """T = ε · H · r̄, multiplied left to right in float64 as the Rust side does."""
        return self.epsilon * float(self.segment_length) * self.mean_step_reward

    def answer(self, return_left: float, return_right: float) -> Answer:
        """Answer "cant_tell" when abs(R0 - R1) <= T or R0 == R1, else the larger side.

        The equality test matters when T is negative (a negative mean step reward):
        equal returns are still "cant_tell".
        """
        difference = abs(return_left - return_right)
        if difference <= self.threshold or return_left == return_right:
            return CANT_TELL
        if return_left > return_right:
            return LEFT
        return RIGHT

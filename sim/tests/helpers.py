"""Helpers for tests: hand-built dataset fields and a schedule with mixed outcomes."""

from __future__ import annotations

import numpy as np

from clarify_sim.generate import BehaviourSchedule

#: A schedule that makes the first episode random and the episodes in the second half
#: follow the scripted policy with little noise, so even short datasets contain
#: failures and successes.
MIXED_SCHEDULE = BehaviourSchedule(
    runs=1,
    random_episode_start=1.0,
    random_episode_until=0.5,
    noise_std_start=0.1,
    noise_std_end=0.1,
    random_step_start=0.0,
    random_step_end=0.0,
)


def make_arrays(
    episode_lengths: list[int],
    rewards: list[float] | None = None,
    observation_dim: int = 3,
    action_dim: int = 2,
) -> dict[str, np.ndarray]:
    """Build valid dataset fields (without state) for episodes of the given lengths."""
    steps = sum(episode_lengths)
    episode_ids = np.repeat(np.arange(len(episode_lengths)), episode_lengths)
    timesteps = np.concatenate([np.arange(length) for length in episode_lengths])
    timeouts = np.zeros(steps, dtype=bool)
    timeouts[np.cumsum(episode_lengths) - 1] = True
    if rewards is None:
        rewards = np.linspace(0.0, 1.0, steps)
    observations = np.arange(steps * observation_dim, dtype=np.float32)
    return {
        "observations": observations.reshape(steps, observation_dim),
        "actions": np.zeros((steps, action_dim), dtype=np.float32),
        "next_observations": observations.reshape(steps, observation_dim) + 1.0,
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terminals": np.zeros(steps, dtype=bool),
        "timeouts": timeouts,
        "success": np.zeros(steps, dtype=bool),
        "episode_ids": episode_ids.astype(np.int64),
        "timesteps": timesteps.astype(np.int64),
    }

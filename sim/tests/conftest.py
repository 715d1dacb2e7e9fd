"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarify_sim.generate import GeneratorConfig, write_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dial-turn dataset of 3 episodes of 60 steps, written by the generator."""
    path = tmp_path_factory.mktemp("data") / "dial-turn.npz"
    config = GeneratorConfig("dial-turn", episodes=3, seed=7, episode_steps=60)
    write_dataset(config, path, log_every=0)
    return path

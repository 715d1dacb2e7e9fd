"""Tests of headless rendering: live frames, re-rendered frames, WebP clips."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from helpers import make_arrays
from PIL import Image

from clarify_sim.dataset import load_dataset, validate_arrays
from clarify_sim.env import make_env
from clarify_sim.errors import InputError
from clarify_sim.generate import GeneratorConfig, write_dataset
from clarify_sim.render import FrameRenderer, render_dataset_steps, render_segment

WIDTH, HEIGHT = 160, 120


@pytest.mark.parametrize("camera", ["corner", "topview"])
def test_live_frames_match_rerendered_frames(tmp_path, camera):
    captured = {(0, 0): None, (0, 1): None, (0, 33): None, (1, 0): None, (1, 39): None}
    renderers = []

    def capture(env, episode, step):
        if not renderers:
            renderers.append(FrameRenderer(env, camera, WIDTH, HEIGHT))
        if (episode, step) in captured:
            captured[(episode, step)] = renderers[0].render_current()

    path = tmp_path / "dial-turn.npz"
    config = GeneratorConfig("dial-turn", episodes=2, seed=1, episode_steps=40)
    try:
        write_dataset(config, path, log_every=0, before_step=capture)
    finally:
        renderers[0].close()

    dataset = load_dataset(path)
    steps = [episode * 40 + step for episode, step in captured]
    frames = render_dataset_steps(dataset, "dial-turn", steps, camera, WIDTH, HEIGHT)
    for (key, live), again in zip(captured.items(), frames, strict=True):
        assert live.shape == (HEIGHT, WIDTH, 3)
        assert again.dtype == np.uint8
        assert np.array_equal(live, again), f"episode, step {key}"
    assert not np.array_equal(frames[0], frames[2]), "the arm moved between steps"


def test_corner_camera_is_turned_upright():
    env = make_env("drawer-open", seed=0)
    env.reset(seed=0)
    # A step ends with a kinematics update, so the raw renderer draws current poses.
    env.step(np.zeros(4, dtype=np.float32))
    with mujoco.Renderer(env.model, HEIGHT, WIDTH) as raw:
        for camera, turned in [("corner", True), ("topview", False)]:
            with FrameRenderer(env, camera, WIDTH, HEIGHT) as renderer:
                frame = renderer.render_current()
            for flag in (
                mujoco.mjtRndFlag.mjRND_SHADOW,
                mujoco.mjtRndFlag.mjRND_REFLECTION,
                mujoco.mjtRndFlag.mjRND_SKYBOX,
            ):
                raw.scene.flags[flag] = False
            raw.update_scene(env.data, camera=camera)
            expected = raw.render()
            if turned:
                expected = expected[::-1, ::-1]
            assert np.array_equal(frame, expected), camera


def test_render_segment_writes_animated_webp(small_dataset, tmp_path):
    out = tmp_path / "clip.webp"
    path = render_segment(
        small_dataset, episode=1, start=5, length=6, out_path=out, width=96, height=64
    )

    assert path == out
    assert [entry.name for entry in tmp_path.iterdir()] == ["clip.webp"]
    with Image.open(out) as clip:
        assert clip.format == "WEBP"
        assert clip.is_animated
        assert clip.n_frames == 6
        assert clip.size == (96, 64)
        clip.seek(1)
        clip.load()
        assert clip.info["duration"] == 40  # 25 frames per second


def test_render_rejects_bad_requests(small_dataset, tmp_path):
    out = tmp_path / "clip.webp"
    with pytest.raises(InputError, match="steps 55 to 64 are outside episode 0"):
        render_segment(small_dataset, episode=0, start=55, length=10, out_path=out)
    with pytest.raises(InputError, match="episode 3 is out of range"):
        render_segment(small_dataset, episode=3, start=0, length=1, out_path=out)
    with pytest.raises(InputError, match="invalid frame rate 0"):
        render_segment(small_dataset, 0, 0, 2, out, fps=0)
    with pytest.raises(InputError, match=r"folder .*missing does not exist"):
        render_segment(small_dataset, 0, 0, 2, tmp_path / "missing" / "clip.webp")
    with pytest.raises(
        InputError, match=r"unknown camera 'side': use one of topview, corner, corner2"
    ):
        render_segment(small_dataset, 0, 0, 2, out, camera="side")
    with pytest.raises(InputError, match=r"clip\.gif: clips are animated WebP"):
        render_segment(small_dataset, 0, 0, 2, tmp_path / "clip.gif")
    with pytest.raises(
        InputError, match="task drawer-open does not match the task dial-turn"
    ):
        render_segment(small_dataset, 0, 0, 2, out, task="drawer-open")
    assert list(tmp_path.iterdir()) == []


def test_render_requires_state_fields():
    dataset = validate_arrays(make_arrays([3]), "plain.npz")
    with pytest.raises(InputError, match=r"plain\.npz has no simulator state fields"):
        render_dataset_steps(dataset, "dial-turn", [0])

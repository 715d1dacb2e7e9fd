"""Headless rendering of stored segments and live rollouts to images and animated WebP.

Rendering uses MuJoCo's offscreen renderer. `clarify_sim` sets `MUJOCO_GL=egl` unless
the variable is already set, so frames render without a display (on Debian, with
Mesa's software EGL). Shadows, reflections and the skybox are turned off, which cuts
the CPU time of a 480x480 frame from about 150 ms to about 40 ms with Mesa's software
renderer.

Meta-World's `corner` cameras are defined with their image up vector pointing down, so
MuJoCo renders them upside down. Frames from a camera whose up vector points below the
horizon are therefore rotated by 180 degrees. Flipping only the rows would mirror the
scene left to right.

A stored step is re-rendered from the dataset's simulator state: the episode's
`rand_vec` places the objects and goal, and the step's qpos and mocap pose place the
arm. The frame is pixel-identical to one rendered live at that step.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import mujoco
import numpy as np
from PIL import Image

from clarify_sim.dataset import Dataset, load_dataset
from clarify_sim.env import DEFAULT_EPISODE_STEPS, MetaWorldTaskEnv, SimState, make_env
from clarify_sim.errors import InputError

logger = logging.getLogger(__name__)

#: Default camera: Meta-World's view from the front left corner of the table.
DEFAULT_CAMERA = "corner"
#: Camera name for MuJoCo's default free camera, which looks at the whole model.
FREE_CAMERA = "free"
DEFAULT_WIDTH = 320
DEFAULT_HEIGHT = 240
#: Default playback rate of clips in frames per second. A step lasts 0.0125 s, so
#: real time is 80 frames per second; 25 plays a 50-step segment in 2 s.
DEFAULT_FPS = 25.0
#: Default WebP quality, 0 to 100.
DEFAULT_QUALITY = 80

_DISABLED_FLAGS = (
    mujoco.mjtRndFlag.mjRND_SHADOW,
    mujoco.mjtRndFlag.mjRND_REFLECTION,
    mujoco.mjtRndFlag.mjRND_SKYBOX,
)


def camera_names(model: mujoco.MjModel) -> list[str]:
    """Return the camera names `FrameRenderer` accepts, "free" included."""
    return [model.camera(index).name for index in range(model.ncam)] + [FREE_CAMERA]


class FrameRenderer:
    """Offscreen renderer of one environment's model from one camera.

    Use it as a context manager, or call `close`, so the GL context is freed while the
    interpreter is still running.
    """

    def __init__(
        self,
        env: MetaWorldTaskEnv,
        camera: str = DEFAULT_CAMERA,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
    ) -> None:
        model = env.model
        names = camera_names(model)
        if camera not in names:
            raise InputError(
                f"unknown camera {camera!r}: use one of {', '.join(names)}"
            )
        if width < 1 or height < 1:
            raise InputError(
                f"invalid frame size {width}x{height}: use a width and height of at "
                "least 1 pixel"
            )
        self.env = env
        self.camera = camera
        self.camera_id = -1 if camera == FREE_CAMERA else names.index(camera)

        # The offscreen buffer must be at least as large as the frame.
        visual = model.vis.global_
        visual.offwidth = max(visual.offwidth, width)
        visual.offheight = max(visual.offheight, height)
        try:
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as error:
            raise RuntimeError(
                f"failed to create an offscreen renderer with MUJOCO_GL="
                f"{os.environ.get('MUJOCO_GL', '')!r}: {error}. On Debian, headless "
                "rendering needs the packages libegl1, libegl-mesa0, libgl1-mesa-dri "
                "and libopengl0"
            ) from error
        for flag in _DISABLED_FLAGS:
            self._renderer.scene.flags[flag] = False

    def __enter__(self) -> FrameRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the GL context."""
        self._renderer.close()

    def render_current(self) -> np.ndarray:
        """Render the environment's current state; return uint8 [height, width, 3].

        The live simulation data is copied first and only the copy has its kinematics
        recomputed, so rendering never changes the rollout.
        """
        scratch = copy.copy(self.env.data)
        mujoco.mj_forward(self.env.model, scratch)
        return self._render(scratch)

    def render_state(self, state: SimState) -> np.ndarray:
        """Restore `state` in the environment and render it."""
        self.env.set_state(state)
        return self.render_current()

    def _render(self, data: mujoco.MjData) -> np.ndarray:
        self._renderer.update_scene(data, camera=self.camera_id)
        frame = self._renderer.render()
        if self.camera_id >= 0 and _is_upside_down(data, self.camera_id):
            frame = frame[::-1, ::-1]
        return np.ascontiguousarray(frame)


def _is_upside_down(data: mujoco.MjData, camera_id: int) -> bool:
    # Column 1 of the camera's orientation matrix is its image up vector in the world.
    up_vector_z = data.cam_xmat[camera_id].reshape(3, 3)[2, 1]
    return bool(up_vector_z < 0.0)


def render_dataset_steps(
    dataset: Dataset,
    task: str,
    steps: Sequence[int],
    camera: str = DEFAULT_CAMERA,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
) -> list[np.ndarray]:
    """Render global steps of `dataset`, recorded in `task`, from their stored state.

    Each frame shows the state before the step's action.
    """
    if not dataset.has_state:
        raise InputError(
            f"{dataset.source} has no simulator state fields, so its steps cannot be "
            "rendered: regenerate it with `python -m clarify_sim generate`"
        )
    longest_episode = int(dataset.episode_lengths().max())
    env = make_env(task, max_episode_steps=max(DEFAULT_EPISODE_STEPS, longest_episode))
    if dataset.arrays["qpos"].shape[1] != env.model.nq:
        raise InputError(
            f"{dataset.source} stores qpos of size {dataset.arrays['qpos'].shape[1]}, "
            f"but task {task} has nq = {env.model.nq}: pass the task the dataset was "
            "generated with"
        )
    with FrameRenderer(env, camera, width, height) as renderer:
        return [renderer.render_state(dataset.sim_state(step)) for step in steps]


def check_clip_settings(path: Path, fps: float, quality: int) -> None:
    """Raise `InputError` unless a clip can be written to `path` with these settings."""
    if not path.parent.is_dir():
        raise InputError(
            f"folder {path.parent} does not exist: create it or choose another path"
        )
    if path.suffix.lower() != ".webp":
        raise InputError(
            f"invalid clip path {path}: clips are animated WebP, so the file name must "
            "end in .webp"
        )
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"invalid frame rate {fps}: use a positive number of frames/s")
    if not 0 <= quality <= 100:
        raise InputError(f"invalid WebP quality {quality}: use 0 to 100")


def write_webp(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float = DEFAULT_FPS,
    quality: int = DEFAULT_QUALITY,
) -> Path:
    """Write `frames` as an animated WebP that loops forever, and return its path.

    The file is written under a temporary name in the same folder and renamed, so a
    failed write leaves no partial clip.
    """
    path = Path(path)
    check_clip_settings(path, fps, quality)
    images = [Image.fromarray(frame) for frame in frames]
    if not images:
        raise InputError("no frames to write: render at least one step")
    duration_ms = max(1, round(1000.0 / fps))

    descriptor, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            images[0].save(
                file,
                format="WEBP",
                save_all=True,
                append_images=images[1:],
                duration=duration_ms,
                loop=0,
                quality=quality,
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def render_segment(
    dataset_path: str | Path,
    episode: int,
    start: int,
    length: int,
    out_path: str | Path,
    task: str | None = None,
    camera: str = DEFAULT_CAMERA,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    fps: float = DEFAULT_FPS,
    quality: int = DEFAULT_QUALITY,
) -> Path:
    """Render `length` steps of `episode` from step `start` within it to a WebP clip.

    `task` defaults to the task named in the dataset's JSON sidecar.
    """
    check_clip_settings(Path(out_path), fps, quality)
    dataset = load_dataset(dataset_path)
    sidecar_path = Path(dataset_path).with_suffix(".json")
    if task is None:
        task = task_from_sidecar(Path(dataset_path))
    elif sidecar_path.exists():
        recorded_task = task_from_sidecar(Path(dataset_path))
        if task != recorded_task:
            raise InputError(
                f"task {task} does not match the task {recorded_task} recorded in "
                f"{sidecar_path}: omit the task or pass {recorded_task}"
            )
    episode_steps = dataset.episode_steps(episode)
    if length < 1:
        raise InputError(f"invalid segment length {length}: use 1 or more steps")
    if start < 0 or start + length > len(episode_steps):
        raise InputError(
            f"steps {start} to {start + length - 1} are outside episode {episode}, "
            f"which has steps 0 to {len(episode_steps) - 1}"
        )
    steps = episode_steps[start : start + length]
    logger.info(
        "rendering %d steps of episode %d from camera %s at %dx%d",
        length,
        episode,
        camera,
        width,
        height,
    )
    frames = render_dataset_steps(dataset, task, steps, camera, width, height)
    return write_webp(frames, out_path, fps=fps, quality=quality)


def task_from_sidecar(dataset_path: Path) -> str:
    """Return the task named in the JSON sidecar beside `dataset_path`."""
    sidecar_path = dataset_path.with_suffix(".json")
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"sidecar {sidecar_path} not found, so the dataset's task is unknown: "
            "pass the task explicitly"
        ) from None
    except json.JSONDecodeError as error:
        raise InputError(f"sidecar {sidecar_path} is not valid JSON: {error}") from None
    task = sidecar.get("task") if isinstance(sidecar, dict) else None
    if not isinstance(task, str):
        raise InputError(
            f"sidecar {sidecar_path} has no task name: pass the task explicitly"
        )
    return task

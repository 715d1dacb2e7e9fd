"""Seeded generator of offline datasets of mixed quality from Meta-World's scripted
policies.

The data imitates the replay buffer of an agent early in learning: many failures and a
growing share of successes. The episode list is split into `runs` equal parts, each a
pretend training run, and within a run the progress u goes from 0 to 1. An episode at
progress u is

- with probability p_random(u), fully random: uniform actions in [-1, 1] at every
  step, the way an agent explores before it has learned anything;
- otherwise, the scripted policy with Gaussian noise of standard deviation sigma(u)
  added to each action, which is then clipped to [-1, 1]; each step's action is also
  replaced by a uniform random one with probability p_step(u).

With a distractor task set, each scripted episode is, with probability
`distractor_probability`, run by the distractor task's scripted policy instead: the same
noise, a purposeful motion, and the wrong goal. The data then mixes two purposeful
behaviours, and a policy has to learn from rewards which one to follow. The draw comes
from `default_rng([seed, i, 1])`, so datasets without a distractor are unchanged.

p_random falls linearly to 0 at progress `random_episode_until`; sigma and p_step fall
linearly from their start to their end values over the run.

Episode i draws all its randomness (object and goal positions, behaviour, noise) from
`numpy.random.default_rng([seed, i])`, so any episode can be regenerated alone.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from clarify_sim.dataset import (
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    STATE_FIELDS,
    validate_arrays,
)
from clarify_sim.env import (
    DEFAULT_EPISODE_STEPS,
    MetaWorldTaskEnv,
    ScriptedPolicy,
    check_task_name,
    make_env,
    policy_class_name,
)
from clarify_sim.errors import InputError
from clarify_sim.fingerprint import compute_fingerprint

logger = logging.getLogger(__name__)

#: Version of the sidecar's layout.
SIDECAR_FORMAT_VERSION = 1

#: Callback run before each generated step, with the environment, the episode index
#: and the step index within the episode.
StepHook = Callable[[MetaWorldTaskEnv, int, int], None]


@dataclass(frozen=True)
class BehaviourSchedule:
    """Schedule of episode behaviour over a pretend training run.

    Probabilities are per episode or per step as named. Standard deviations are in
    action units, where actions lie in [-1, 1]. With the defaults, 300 episodes with
    seed 0 succeed at some step in 43.7 % of the episodes on dial-turn, 77.7 % on
    drawer-open and 66.0 % on handle-pull-side (metaworld 3.1.1, mujoco 3.3.0).
    """

    #: Number of pretend training runs the episode list is split into.
    runs: int = 3
    #: Probability of a fully random episode at progress 0.
    random_episode_start: float = 0.6
    #: Progress at which the probability of a random episode reaches 0.
    random_episode_until: float = 0.5
    #: Standard deviation of the Gaussian action noise at progress 0.
    noise_std_start: float = 1.75
    #: Standard deviation of the Gaussian action noise at progress 1.
    noise_std_end: float = 0.1
    #: Per-step probability of a uniform random action at progress 0.
    random_step_start: float = 0.35
    #: Per-step probability of a uniform random action at progress 1.
    random_step_end: float = 0.0
    #: Meta-World task whose scripted policy runs some scripted episodes instead of
    #: the dataset task's own, or None for no distractor.
    distractor_task: str | None = None
    #: Probability that a scripted episode follows the distractor task's policy.
    distractor_probability: float = 0.0

    def validate(self) -> None:
        """Raise `InputError` naming the first setting out of range."""
        if self.runs < 1:
            raise InputError(f"invalid schedule runs {self.runs}: use 1 or more")
        for name in (
            "random_episode_start",
            "random_step_start",
            "random_step_end",
            "distractor_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(
                    f"invalid schedule {name} {value}: use a probability in [0, 1]"
                )
        if not 0.0 < self.random_episode_until <= 1.0:
            raise InputError(
                f"invalid schedule random_episode_until {self.random_episode_until}: "
                "use a progress in (0, 1]"
            )
        for name in ("noise_std_start", "noise_std_end"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise InputError(
                    f"invalid schedule {name} {value}: use a standard deviation >= 0"
                )
        if self.distractor_task is not None:
            check_task_name(self.distractor_task)
        elif self.distractor_probability > 0.0:
            probability = self.distractor_probability
            raise InputError(
                f"invalid schedule distractor_probability {probability} without a "
                "distractor task: set distractor_task or use 0"
            )

    def progress(self, episode: int, episodes: int) -> float:
        """Return the progress u in [0, 1) of `episode` within its pretend run."""
        position = episode * self.runs / episodes
        return position - math.floor(position)

    def random_episode_probability(self, progress: float) -> float:
        """Return p_random(u), the probability of a fully random episode."""
        remaining = 1.0 - progress / self.random_episode_until
        return self.random_episode_start * max(0.0, remaining)

    def noise_std(self, progress: float) -> float:
        """Return sigma(u), the standard deviation of the action noise."""
        return _interpolate(self.noise_std_start, self.noise_std_end, progress)

    def random_step_probability(self, progress: float) -> float:
        """Return p_step(u), the per-step probability of a random action."""
        return _interpolate(self.random_step_start, self.random_step_end, progress)


def _interpolate(start: float, end: float, progress: float) -> float:
    return start + (end - start) * progress


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings of one generated dataset."""

    #: Meta-World v3 task name, such as "dial-turn".
    task: str
    #: Number of episodes.
    episodes: int = 300
    #: Dataset seed; episode i draws from `numpy.random.default_rng([seed, i])`.
    seed: int = 0
    #: Steps per episode; the time limit cuts every episode here.
    episode_steps: int = DEFAULT_EPISODE_STEPS
    #: How episode quality improves over the dataset.
    schedule: BehaviourSchedule = field(default_factory=BehaviourSchedule)

    def validate(self) -> None:
        """Raise `InputError` naming the first setting out of range."""
        check_task_name(self.task)
        if self.episodes < 1:
            raise InputError(f"invalid episode count {self.episodes}: use 1 or more")
        if self.seed < 0:
            raise InputError(f"invalid seed {self.seed}: use an integer >= 0")
        if self.episode_steps < 1:
            raise InputError(
                f"invalid episode length {self.episode_steps}: use 1 or more steps"
            )
        self.schedule.validate()


@dataclass(frozen=True)
class EpisodeBehaviour:
    """Behaviour settings one episode was generated with."""

    #: Progress u within the pretend training run.
    progress: float
    #: Whether every action was uniform random.
    random_episode: bool
    #: Standard deviation of the Gaussian noise added to the scripted actions.
    noise_std: float
    #: Per-step probability of replacing the action with a random one.
    random_step_probability: float
    #: Whether the distractor task's scripted policy chose the actions.
    distractor: bool = False


@dataclass
class GenerationResult:
    """A written dataset: its files, fingerprint and generation time."""

    path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    seconds: float

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The dataset fingerprint stored in the sidecar, or None without one."""
        return self.sidecar["fingerprint"]


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    """Return the generator of all randomness of `episode` in a dataset of `seed`."""
    return np.random.default_rng([seed, episode])


def distractor_policy(schedule: BehaviourSchedule) -> ScriptedPolicy | None:
    """Return the scripted policy of the schedule's distractor task, if it has one."""
    if schedule.distractor_task is None or schedule.distractor_probability <= 0.0:
        return None
    return ScriptedPolicy(schedule.distractor_task)


def generate_episode(
    env: MetaWorldTaskEnv,
    policy: ScriptedPolicy,
    config: GeneratorConfig,
    episode: int,
    before_step: StepHook | None = None,
    distractor: ScriptedPolicy | None = None,
) -> tuple[dict[str, np.ndarray], EpisodeBehaviour]:
    """Run episode `episode` of the dataset `config` in `env`.

    Returns the episode's per-step arrays (the dataset fields, without `episode_ids`)
    with its `rand_vec`, and how it behaved. `env` must have been made with
    `max_episode_steps=config.episode_steps`. `before_step(env, episode, step)`, when
    given, runs before each step's action, for example to render the live state.
    `distractor` is `distractor_policy(config.schedule)`, needed when the schedule
    has a distractor.
    """
    if env.max_episode_steps != config.episode_steps:
        raise ValueError(
            f"env has max_episode_steps {env.max_episode_steps}, but the dataset's "
            f"episodes have {config.episode_steps} steps: make the env with "
            "max_episode_steps=config.episode_steps"
        )
    rng = episode_rng(config.seed, episode)
    schedule = config.schedule
    progress = schedule.progress(episode, config.episodes)
    behaviour = EpisodeBehaviour(
        progress=progress,
        random_episode=bool(
            rng.random() < schedule.random_episode_probability(progress)
        ),
        noise_std=schedule.noise_std(progress),
        random_step_probability=schedule.random_step_probability(progress),
    )
    env_seed = int(rng.integers(0, 2**63))
    steps = config.episode_steps
    noise = rng.normal(0.0, 1.0, size=(steps, 4)) * behaviour.noise_std
    random_steps = rng.random(steps) < behaviour.random_step_probability
    random_actions = rng.uniform(-1.0, 1.0, size=(steps, 4)).astype(np.float32)
    if schedule.distractor_probability > 0.0 and not behaviour.random_episode:
        if distractor is None:
            raise ValueError(
                "the schedule has a distractor task but no distractor policy was "
                "given: pass distractor_policy(config.schedule)"
            )
        draw = np.random.default_rng([config.seed, episode, 1]).random()
        if draw < schedule.distractor_probability:
            behaviour = dataclasses.replace(behaviour, distractor=True)
            policy = distractor

    model = env.model
    arrays = _allocate_episode(steps, env.observation_space.shape[0], model)
    observation, _ = env.reset(seed=env_seed)
    arrays["rand_vec"] = env.rand_vec
    data = env.data
    for step in range(steps):
        if before_step is not None:
            before_step(env, episode, step)
        if behaviour.random_episode or random_steps[step]:
            action = random_actions[step]
        else:
            action = np.clip(policy(observation) + noise[step], -1.0, 1.0)
        # Store exactly the float32 action the environment applies.
        action = action.astype(np.float32)

        arrays["qpos"][step] = data.qpos
        arrays["qvel"][step] = data.qvel
        arrays["mocap_pos"][step] = data.mocap_pos
        arrays["mocap_quat"][step] = data.mocap_quat
        arrays["observations"][step] = observation
        arrays["actions"][step] = action

        observation, reward, terminated, truncated, info = env.step(action)
        arrays["next_observations"][step] = observation
        arrays["rewards"][step] = reward
        arrays["terminals"][step] = terminated
        arrays["timeouts"][step] = truncated
        arrays["success"][step] = info["success"]
    return arrays, behaviour


def _allocate_episode(
    steps: int, observation_dim: int, model: mujoco.MjModel
) -> dict[str, np.ndarray]:
    return {
        "observations": np.zeros((steps, observation_dim), np.float32),
        "actions": np.zeros((steps, 4), np.float32),
        "next_observations": np.zeros((steps, observation_dim), np.float32),
        "rewards": np.zeros(steps, np.float32),
        "terminals": np.zeros(steps, np.bool_),
        "timeouts": np.zeros(steps, np.bool_),
        "success": np.zeros(steps, np.bool_),
        "timesteps": np.arange(steps, dtype=np.int64),
        "qpos": np.zeros((steps, model.nq), np.float64),
        "qvel": np.zeros((steps, model.nv), np.float64),
        "mocap_pos": np.zeros((steps, model.nmocap, 3), np.float64),
        "mocap_quat": np.zeros((steps, model.nmocap, 4), np.float64),
    }


def generate_arrays(
    config: GeneratorConfig,
    log_every: int = 25,
    on_episode: Callable[[int], None] | None = None,
    before_step: StepHook | None = None,
) -> tuple[dict[str, np.ndarray], list[EpisodeBehaviour]]:
    """Generate all episodes of `config` and return the dataset fields.

    Logs progress every `log_every` episodes (0 turns it off). `on_episode`, when
    given, is called with each finished episode's index, and `before_step` as in
    `generate_episode`.
    """
    config.validate()
    env = make_env(
        config.task, seed=config.seed, max_episode_steps=config.episode_steps
    )
    policy = ScriptedPolicy(config.task)
    distractor = distractor_policy(config.schedule)

    episodes = []
    behaviours = []
    started = time.monotonic()
    for index in range(config.episodes):
        arrays, behaviour = generate_episode(
            env, policy, config, index, before_step, distractor
        )
        episodes.append(arrays)
        behaviours.append(behaviour)
        if on_episode is not None:
            on_episode(index)
        done = index + 1
        if log_every and (done % log_every == 0 or done == config.episodes):
            elapsed = time.monotonic() - started
            logger.info(
                "%s: generated %d/%d episodes (%.2f episodes/s)",
                config.task,
                done,
                config.episodes,
                done / elapsed if elapsed > 0 else float("inf"),
            )

    fields = {
        name: np.concatenate([episode[name] for episode in episodes])
        for name in episodes[0]
        if name != "rand_vec"
    }
    fields["episode_ids"] = np.repeat(
        np.arange(config.episodes, dtype=np.int64), config.episode_steps
    )
    fields["rand_vecs"] = np.stack([episode["rand_vec"] for episode in episodes])
    ordered = REQUIRED_FIELDS + OPTIONAL_FIELDS + STATE_FIELDS
    return {name: fields[name] for name in ordered}, behaviours


def library_versions() -> dict[str, str]:
    """Return the versions of the libraries that determine the generated data."""
    return {
        "clarify_sim": _package_version("clarify-sim"),
        "metaworld": _package_version("metaworld"),
        "mujoco": mujoco.__version__,
        "gymnasium": _package_version("gymnasium"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_sidecar(
    config: GeneratorConfig,
    dataset_name: str,
    arrays: dict[str, np.ndarray],
    behaviours: list[EpisodeBehaviour],
    fingerprint: dict[str, Any] | None,
) -> dict[str, Any]:
    """Return the JSON sidecar of a generated dataset.

    `fingerprint` is None when the dataset has fewer than two segments.
    """
    random_episodes = sum(behaviour.random_episode for behaviour in behaviours)
    return {
        "format_version": SIDECAR_FORMAT_VERSION,
        "dataset": dataset_name,
        "task": config.task,
        "observation_dim": int(arrays["observations"].shape[1]),
        "action_dim": int(arrays["actions"].shape[1]),
        "generator": {
            "seed": config.seed,
            "episodes": config.episodes,
            "episode_steps": config.episode_steps,
            "episode_seeding": (
                "episode i draws from numpy.random.default_rng([seed, i])"
            ),
            "policy": f"metaworld.policies.{policy_class_name(config.task)}",
            "schedule": dataclasses.asdict(config.schedule),
            "random_episodes": random_episodes,
            "episode_behaviour": [dataclasses.asdict(b) for b in behaviours],
        },
        "versions": library_versions(),
        "fingerprint": fingerprint,
    }


def write_dataset(
    config: GeneratorConfig,
    path: str | Path,
    log_every: int = 25,
    on_episode: Callable[[int], None] | None = None,
    before_step: StepHook | None = None,
) -> GenerationResult:
    """Generate the dataset `config` and write `path` (.npz) and its JSON sidecar.

    `log_every`, `on_episode` and `before_step` work as in `generate_arrays`.

    Both files are written to temporary files in the destination folder and renamed
    into place at the end, so an interrupted run leaves the previous files, the new
    dataset without a sidecar, or none, and never a half-written dataset.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"invalid dataset path {path}: the file name must end in .npz")
    if not path.parent.is_dir():
        raise InputError(
            f"folder {path.parent} does not exist: create it or choose another path"
        )
    config.validate()
    sidecar_path = path.with_suffix(".json")

    started = time.monotonic()
    arrays, behaviours = generate_arrays(config, log_every, on_episode, before_step)
    dataset = validate_arrays(arrays, str(path))
    try:
        fingerprint = compute_fingerprint(dataset)
    except InputError as error:
        # Episodes shorter than two segments: the dataset is still usable.
        logger.warning("%s: no fingerprint: %s", path, error)
        fingerprint = None
    sidecar = build_sidecar(config, path.name, arrays, behaviours, fingerprint)

    npz_temporary = _write_temporary(
        path, lambda file: np.savez_compressed(file, **arrays)
    )
    try:
        sidecar_text = json.dumps(sidecar, indent=2) + "\n"
        json_temporary = _write_temporary(
            sidecar_path, lambda file: file.write(sidecar_text.encode("utf-8"))
        )
    except BaseException:
        npz_temporary.unlink(missing_ok=True)
        raise
    # The old sidecar goes first: a crash between the renames then leaves a dataset
    # without a sidecar, which reads as unfinished, never one with a stale sidecar.
    sidecar_path.unlink(missing_ok=True)
    os.replace(npz_temporary, path)
    os.replace(json_temporary, sidecar_path)
    seconds = time.monotonic() - started
    logger.info("wrote %s and %s in %.1f s", path, sidecar_path, seconds)
    return GenerationResult(path, sidecar_path, sidecar, seconds)


def _write_temporary(path: Path, write: Callable[[Any], Any]) -> Path:
    """Write a temporary file beside `path` with `write(file)`; return its path."""
    descriptor, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    temporary = Path(name)
    try:
        # mkstemp creates the file readable by its owner only; give the dataset the
        # permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary

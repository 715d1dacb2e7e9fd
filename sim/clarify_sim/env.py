"""Meta-World v3 tasks as Gymnasium environments whose state can be saved and restored.

`make_env` builds any Meta-World v3 task by name, with the goal observable and object
and goal positions drawn anew at every reset. `scripted_policy` returns the task's
hand-written expert policy. `SimState` captures everything needed to restore a step, so
a stored step can be re-rendered, and a saved state continued, exactly.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import gymnasium as gym
import metaworld
import metaworld.policies
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from clarify_sim.errors import InputError, UnknownTaskError

#: Suffix of Meta-World's registry keys for the fully observable v3 tasks.
ENV_KEY_SUFFIX = "-v3-goal-observable"

#: Random vectors drawn for one reset before giving up. Tasks reject a few per cent of
#: uniformly drawn vectors (an estimate from reach, about 6.5 %).
MAX_RAND_VEC_DRAWS = 1000


class RandVecRejectedError(InputError):
    """The task rejected a random object and goal vector during its reset."""


#: Steps per episode in Meta-World v3 (the environment's `max_path_length`).
DEFAULT_EPISODE_STEPS = 500

#: Observation and action sizes shared by all Meta-World v3 tasks.
OBSERVATION_DIM = 39
ACTION_DIM = 4

#: Number of observation entries that describe the current step (hand, gripper,
#: objects). The observation repeats them for the previous step, then adds the goal.
FRAME_DIM = 18


def task_names() -> list[str]:
    """Return the names of all Meta-World v3 tasks, sorted (`dial-turn`, ...)."""
    keys = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
    return sorted(key.removesuffix(ENV_KEY_SUFFIX) for key in keys)


def check_task_name(task: str) -> str:
    """Return `task` if Meta-World v3 defines it, else raise `UnknownTaskError`."""
    names = task_names()
    if task not in names:
        raise UnknownTaskError(
            f"unknown task {task!r}: use one of the Meta-World v3 task names "
            f"({', '.join(names)})"
        )
    return task


@dataclass(frozen=True)
class SimState:
    """Simulator state at a step boundary, enough to restore the step exactly.

    Positions (`qpos`, `mocap_pos`, `mocap_quat`) together with `rand_vec` fix what a
    camera shows. Continuing the simulation bit for bit also needs `qacc_warmstart`,
    because MuJoCo's constraint solver starts from it. Without it, continued
    observations differed from the original by up to 2e-13 and rewards by up to
    2e-11 (dial-turn, drawer-open and handle-pull-side, 100 steps after a restore,
    mujoco 3.3.0).
    """

    #: The episode's random object and goal vector (Meta-World `_last_rand_vec`).
    rand_vec: np.ndarray
    #: MuJoCo joint positions, float64 [nq].
    qpos: np.ndarray
    #: MuJoCo joint velocities, float64 [nv].
    qvel: np.ndarray
    #: Mocap body positions in metres, float64 [nmocap, 3].
    mocap_pos: np.ndarray
    #: Mocap body orientations as quaternions (w, x, y, z), float64 [nmocap, 4].
    mocap_quat: np.ndarray
    #: MuJoCo's constraint solver warm start, float64 [nv], or None when unknown.
    qacc_warmstart: np.ndarray | None = None
    #: Simulation time in seconds, or None to keep the time that the reset left.
    time: float | None = None
    #: Observation entries 0-17 of the previous step, which the observation repeats
    #: in entries 18-35. None means the current step's entries, as after a reset.
    previous_frame: np.ndarray | None = None
    #: Steps taken in the episode so far, 0 after a reset.
    elapsed_steps: int = 0


class MetaWorldTaskEnv(gym.Env):
    """A Meta-World v3 manipulation task for a Sawyer arm, with the goal observable.

    ## Observation

    `Box(float64, (39,))`. Positions are in metres in the world frame.

    | index | content |
    |-------|---------|
    | 0-2   | end-effector (hand) position x, y, z |
    | 3     | gripper opening: finger distance / 0.1 m, clipped to [0, 1] |
    | 4-17  | positions and orientation quaternions (w, x, y, z) of up to two |
    |       | objects, 7 entries each; unused entries are 0 |
    | 18-35 | entries 0-17 of the previous step (equal to 0-17 right after a reset) |
    | 36-38 | goal position x, y, z |

    Observations are clipped to the observation space, whose hand bounds are
    x in [-0.525, 0.525], y in [0.348, 1.025], z in [-0.0525, 0.7].

    ## Action

    `Box(-1, 1, (4,), float32)`, clipped to [-1, 1] before use.

    | index | content |
    |-------|---------|
    | 0-2   | target displacement of the hand in x, y, z: 1.0 moves the mocap target |
    |       | by 0.01 m in one step |
    | 3     | gripper effort: -1 opens, +1 closes |

    One step lasts 0.0125 s of simulated time (5 MuJoCo steps of 2.5 ms).

    ## Reward

    Meta-World's dense shaped reward (version "v2" of its reward functions), in
    [0, 10] per step, for progress towards the task's goal. It is not tied to the
    success flag: dial-turn, for one, pays 0 while the gripper is open, even at a
    successful step.

    ## Starting state

    The arm starts at the task's home position. The object and goal positions come
    from `rand_vec`, drawn uniformly from the task's reset space by the generator that
    `reset(seed=...)` seeds. `reset(options={"rand_vec": v})` uses the given vector.

    ## Episode end

    `terminated` is always False: Meta-World tasks have no terminal states, and success
    does not end an episode. `truncated` is True at step `max_episode_steps` (500 by
    default). Calling `step` after that raises `RuntimeError` until `reset` is called.
    `info["success"]` is True at every step where the task's success condition holds.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        max_episode_steps: int = DEFAULT_EPISODE_STEPS,
    ) -> None:
        check_task_name(task)
        if max_episode_steps < 1:
            raise InputError(
                f"invalid max_episode_steps {max_episode_steps}: use 1 or more steps"
            )
        env_class = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[task + ENV_KEY_SUFFIX]
        self.task = task
        self.max_episode_steps = max_episode_steps
        self.sawyer_env = env_class(seed=seed)
        self.sawyer_env.max_path_length = max_episode_steps
        self.sawyer_env._freeze_rand_vec = False

        # The wrapped env's own `observation_space` was cached while the goal was
        # still hidden (goal bounds 0), so take the space its `step` clips to.
        self.observation_space = self.sawyer_env.sawyer_observation_space
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)
        self._reset_space = self.sawyer_env._random_reset_space

        self._np_random, _ = seeding.np_random(seed)
        self._elapsed_steps: int | None = None
        self._last_observation: np.ndarray | None = None

    @property
    def model(self) -> mujoco.MjModel:
        """The MuJoCo model; `reset` moves its object and goal bodies to `rand_vec`."""
        return self.sawyer_env.model

    @property
    def data(self) -> mujoco.MjData:
        """The MuJoCo simulation data."""
        return self.sawyer_env.data

    @property
    def rand_vec(self) -> np.ndarray:
        """The current episode's random object and goal vector."""
        return np.array(self.sawyer_env._last_rand_vec, dtype=np.float64)

    @property
    def elapsed_steps(self) -> int:
        """Steps taken since the last reset; raises `RuntimeError` before the first."""
        if self._elapsed_steps is None:
            raise RuntimeError("the environment has not been reset: call reset()")
        return self._elapsed_steps

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode and return `(observation, info)`.

        `seed` reseeds the generator that draws `rand_vec`. `options["rand_vec"]`
        sets the vector directly, for replaying a stored episode.
        """
        super().reset(seed=seed)
        rand_vec = None if options is None else options.get("rand_vec")
        if rand_vec is not None:
            observation = self._reset_to(rand_vec)
            return observation, {"rand_vec": self.rand_vec}

        # Many tasks reject vectors that put the goal too close to the hand or the
        # object. As in Meta-World, the next draw replaces a rejected vector.
        for _ in range(MAX_RAND_VEC_DRAWS):
            rand_vec = self.np_random.uniform(
                self._reset_space.low,
                self._reset_space.high,
                size=self._reset_space.low.size,
            )
            try:
                observation = self._reset_to(rand_vec)
            except RandVecRejectedError:
                continue
            return observation, {"rand_vec": self.rand_vec}
        raise RuntimeError(
            f"task {self.task} rejected {MAX_RAND_VEC_DRAWS} random vectors in a row"
        )

    def _reset_to(self, rand_vec: np.ndarray) -> np.ndarray:
        rand_vec = np.array(rand_vec, dtype=np.float64)
        expected_shape = self._reset_space.low.shape
        if rand_vec.shape != expected_shape:
            raise InputError(
                f"rand_vec has shape {rand_vec.shape}, expected {expected_shape} "
                f"for task {self.task}"
            )

        # Meta-World's reset runs the task's reset_model twice. With an unfrozen
        # vector each run draws a new one, and some tasks keep values computed from
        # the first (dial-turn's reward reference point), so an episode would depend
        # on a vector that is never stored. Serving the same vector to both runs
        # makes the episode a function of `rand_vec` alone.
        #
        # Tasks that reject a vector ask for another from inside the same
        # reset_model call, in a loop that would never end on a fixed vector. A
        # second request from one call therefore raises RandVecRejectedError.
        sawyer_env = self.sawyer_env
        requesting_frames: list[FrameType] = []

        def fixed_rand_vec() -> np.ndarray:
            caller = sys._getframe(1)
            if any(frame is caller for frame in requesting_frames):
                raise RandVecRejectedError(f"task {self.task} rejected {rand_vec}")
            requesting_frames.append(caller)
            sawyer_env._last_rand_vec = rand_vec
            return rand_vec.copy()

        sawyer_env._last_rand_vec = rand_vec
        sawyer_env._get_state_rand_vec = fixed_rand_vec
        try:
            observation, _ = sawyer_env.reset()
        finally:
            del sawyer_env._get_state_rand_vec
            requesting_frames.clear()

        self._elapsed_steps = 0
        self._last_observation = np.array(observation, dtype=np.float64)
        return self._last_observation.copy()

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply `action` for one step; return Gymnasium's 5-tuple."""
        elapsed_steps = self.elapsed_steps
        if elapsed_steps >= self.max_episode_steps:
            raise RuntimeError(
                f"the episode reached its time limit of {self.max_episode_steps} "
                "steps: call reset() before step()"
            )
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (ACTION_DIM,):
            raise InputError(
                f"action has shape {action.shape}, expected ({ACTION_DIM},)"
            )
        action = np.clip(action, -1.0, 1.0)

        observation, reward, _, _, info = self.sawyer_env.step(action)
        self._elapsed_steps = elapsed_steps + 1
        self._last_observation = np.array(observation, dtype=np.float64)
        info = dict(info)
        info["success"] = bool(info["success"])
        truncated = self._elapsed_steps >= self.max_episode_steps
        return self._last_observation.copy(), float(reward), False, truncated, info

    def get_state(self) -> SimState:
        """Return the simulator state at the current step boundary."""
        elapsed_steps = self.elapsed_steps
        assert self._last_observation is not None
        data = self.data
        return SimState(
            rand_vec=self.rand_vec,
            qpos=data.qpos.copy(),
            qvel=data.qvel.copy(),
            mocap_pos=data.mocap_pos.copy(),
            mocap_quat=data.mocap_quat.copy(),
            qacc_warmstart=data.qacc_warmstart.copy(),
            time=float(data.time),
            previous_frame=self._last_observation[FRAME_DIM : 2 * FRAME_DIM].copy(),
            elapsed_steps=elapsed_steps,
        )

    def set_state(self, state: SimState) -> np.ndarray:
        """Restore `state` and return the observation at that step.

        The observation equals the one the episode produced at that step when the
        state carries `previous_frame`, or is the state right after a reset.
        """
        if not 0 <= state.elapsed_steps <= self.max_episode_steps:
            raise InputError(
                f"state has elapsed_steps {state.elapsed_steps}, expected 0 to "
                f"{self.max_episode_steps}"
            )
        # Task-specific values of an episode (target positions, reward reference
        # points) are set at reset and depend only on the vector, so a reset is
        # needed only when the vector changes, or to restore the reset itself.
        if (
            state.elapsed_steps == 0
            or self._elapsed_steps is None
            or not np.array_equal(state.rand_vec, self.sawyer_env._last_rand_vec)
        ):
            self._reset_to(state.rand_vec)
        # Meta-World computes the reset observation before the final kinematics
        # update, so its hand and object entries lag the joint positions slightly.
        # Only the reset itself reproduces that observation and the frame that the
        # first step repeats from it.
        if state.elapsed_steps == 0 and self._physics_equal(state):
            assert self._last_observation is not None
            return self._last_observation.copy()

        self._set_physics(state)
        sawyer_env = self.sawyer_env
        sawyer_env.curr_path_length = state.elapsed_steps
        sawyer_env._did_see_sim_exception = False

        # The next step's observation repeats the current frame as its previous one.
        current_frame = sawyer_env._get_curr_obs_combined_no_goal()
        sawyer_env._prev_obs = current_frame
        previous_frame = current_frame
        if state.previous_frame is not None:
            previous_frame = np.asarray(state.previous_frame, dtype=np.float64)

        observation = np.hstack(
            (current_frame, previous_frame, sawyer_env._get_pos_goal())
        )
        bounds = sawyer_env.sawyer_observation_space
        observation = np.clip(observation, bounds.low, bounds.high)
        self._elapsed_steps = state.elapsed_steps
        self._last_observation = observation
        return observation.copy()

    def _physics_equal(self, state: SimState) -> bool:
        data = self.data
        return (
            np.array_equal(state.qpos, data.qpos)
            and np.array_equal(state.qvel, data.qvel)
            and np.array_equal(state.mocap_pos, data.mocap_pos)
            and np.array_equal(state.mocap_quat, data.mocap_quat)
        )

    def _set_physics(self, state: SimState) -> None:
        model, data = self.model, self.data
        expected = {
            "qpos": (model.nq,),
            "qvel": (model.nv,),
            "mocap_pos": (model.nmocap, 3),
            "mocap_quat": (model.nmocap, 4),
        }
        for field, shape in expected.items():
            found = np.shape(getattr(state, field))
            if found != shape:
                raise InputError(
                    f"state field {field} has shape {found}, expected {shape} "
                    f"for task {self.task}"
                )

        data.qpos[:] = state.qpos
        data.qvel[:] = state.qvel
        data.mocap_pos[:] = state.mocap_pos
        data.mocap_quat[:] = state.mocap_quat
        if state.time is not None:
            data.time = state.time
        mujoco.mj_forward(model, data)
        # mj_forward overwrites the warm start, so restore it afterwards.
        if state.qacc_warmstart is not None:
            data.qacc_warmstart[:] = state.qacc_warmstart


def make_env(
    task: str,
    seed: int | None = None,
    max_episode_steps: int = DEFAULT_EPISODE_STEPS,
) -> MetaWorldTaskEnv:
    """Build the Meta-World v3 task `task` (for example `dial-turn`).

    Raises `UnknownTaskError`, listing the valid names, when `task` is not a task.
    """
    return MetaWorldTaskEnv(task, seed=seed, max_episode_steps=max_episode_steps)


def policy_class_name(task: str) -> str:
    """Return the scripted policy's class name (`SawyerDialTurnV3Policy`)."""
    words = "".join(word.capitalize() for word in task.split("-"))
    return f"Sawyer{words}V3Policy"


class ScriptedPolicy:
    """Meta-World's hand-written policy for one task, as a function of the observation.

    Calling it returns the action as float32 [4]. The policies warn whenever a
    proportional gain saturates an action, which happens on most steps; those warnings
    are suppressed.
    """

    def __init__(self, task: str) -> None:
        check_task_name(task)
        policy_class = getattr(metaworld.policies, policy_class_name(task), None)
        if policy_class is None:
            # Meta-World names a few classes differently from their task
            # (peg-insert-side has SawyerPegInsertionSideV3Policy); its own map has
            # every task.
            policy_class = metaworld.policies.ENV_POLICY_MAP[f"{task}-v3"]
        self.task = task
        self.policy = policy_class()

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            action = self.policy.get_action(observation)
        return np.asarray(action, dtype=np.float32)


def scripted_policy(task: str) -> ScriptedPolicy:
    """Return the scripted expert policy of `task`.

    Raises `UnknownTaskError`, listing the valid names, when `task` is not a task.
    """
    return ScriptedPolicy(task)

"""A Meta-World robot on ROS 2 topics: collects data and evaluates deployed policies.

The robot alternates between two activities:

- Collection. It runs episodes with the behaviour mix of the dataset generator
  (`clarify_sim.generate`: scripted policy, action noise, random actions, random
  episodes). Each step goes out as a clarify_msgs/Transition without its reward
  (``has_reward`` false), the way a robot without a reward signal would send it. The
  same step with its true reward goes to a second topic that only the simulated
  operator reads.
- Evaluation. After each clarify_msgs/ModelUpdate it runs a fixed number of episodes
  driven by the policy runner (`clarify policy run`): it publishes each observation as a
  std_msgs/Float32MultiArray, applies the action the runner returns, and reports the
  success rate, counting an episode as a success when the task succeeded at any step.

Nothing runs in real time: collection steps the simulator as fast as the loop sustains,
or at ``collect_rate_hz`` steps per second when that is set.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clarify_sim import ros
from clarify_sim.env import (
    DEFAULT_EPISODE_STEPS,
    make_env,
    scripted_policy,
)
from clarify_sim.errors import InputError
from clarify_sim.generate import (
    BehaviourSchedule,
    GeneratorConfig,
    distractor_policy,
    generate_episode,
)
from clarify_sim.lifecycle import EventLog, StopFlag

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RobotTopics:
    """ROS 2 names the robot uses."""

    #: clarify_msgs/Transition without rewards, for the node's recorder.
    transitions: str = "transitions"
    #: clarify_msgs/Transition with the true rewards, for the simulated operator.
    true_rewards: str = "demo/true_rewards"
    #: clarify_msgs/ModelUpdate announcements of the node.
    model_update: str = "model_update"
    #: std_msgs/Float32MultiArray observations for the policy runner.
    observation: str = "observation"
    #: std_msgs/Float32MultiArray actions of the policy runner.
    action: str = "action"
    #: std_msgs/String JSON reports of each evaluation.
    evaluation: str = "demo/evaluation"
    #: diagnostic_msgs/DiagnosticArray of the policy runner, which names the model set
    #: it drives with.
    diagnostics: str = "/diagnostics"


@dataclass(frozen=True)
class RobotConfig:
    """Settings of the robot stand-in."""

    #: Meta-World v3 task name.
    task: str = "dial-turn"
    #: Seed of the collected episodes: episode i draws from default_rng([seed, i]).
    seed: int = 0
    #: Steps per collected episode, where the time limit cuts it.
    episode_steps: int = DEFAULT_EPISODE_STEPS
    #: Episodes of one pass through the behaviour schedule. Later episodes repeat the
    #: schedule with new random draws.
    schedule_episodes: int = 300
    #: Behaviour mix of the collected episodes.
    schedule: BehaviourSchedule = field(default_factory=BehaviourSchedule)
    #: Collected steps per second; 0 publishes as fast as the loop runs.
    collect_rate_hz: float = 0.0
    #: Episodes per evaluation.
    eval_episodes: int = 10
    #: Seed of evaluation episode i is eval_seed + i, the same for every model set.
    eval_seed: int = 1_000_000
    #: Step limit of an evaluation episode.
    eval_max_steps: int = DEFAULT_EPISODE_STEPS
    #: Seconds to wait for the runner's action to one observation.
    action_timeout_s: float = 1.0
    #: Seconds to keep resending the first observation while the runner starts.
    runner_start_timeout_s: float = 300.0
    #: Seconds to wait after a ModelUpdate for the policy runner's diagnostics to
    #: report the announced set. After that the evaluation is skipped.
    swap_timeout_s: float = 120.0
    #: Actions to let pass after publishing an observation before one is applied.
    skip_actions: int = 1
    #: Collection stops after this many episodes (0: never); evaluation goes on.
    max_episodes: int = 0
    #: DDS domain id.
    domain_id: int = 0
    topics: RobotTopics = field(default_factory=RobotTopics)

    def validate(self) -> None:
        """Raise `InputError` naming the first setting out of range."""
        GeneratorConfig(
            task=self.task,
            episodes=self.schedule_episodes,
            seed=self.seed,
            episode_steps=self.episode_steps,
            schedule=self.schedule,
        ).validate()
        if not (math.isfinite(self.collect_rate_hz) and self.collect_rate_hz >= 0):
            raise InputError(
                f"invalid collect rate {self.collect_rate_hz}: use steps per second "
                ">= 0 (0 for as fast as possible)"
            )
        for name in ("eval_episodes", "eval_max_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"invalid {name} {getattr(self, name)}: use 1 or more")
        for name in ("action_timeout_s", "runner_start_timeout_s", "swap_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"invalid {name} {value}: use seconds > 0")
        if self.skip_actions < 0:
            raise InputError(f"invalid skip_actions {self.skip_actions}: use 0 or more")
        if self.max_episodes < 0:
            raise InputError(f"invalid max_episodes {self.max_episodes}: use 0 or more")
        if self.eval_seed < 0:
            raise InputError(f"invalid eval_seed {self.eval_seed}: use 0 or more")

    def generator_config(self) -> GeneratorConfig:
        """Return the dataset generator settings of the collected episodes."""
        return GeneratorConfig(
            task=self.task,
            episodes=self.schedule_episodes,
            seed=self.seed,
            episode_steps=self.episode_steps,
            schedule=self.schedule,
        )


class ActionPairing:
    """Pairs the runner's actions with the observations they respond to.

    The runner acts at its own control rate on the newest observation it holds, so the
    first action that arrives after an observation was sent may still come from the
    previous one. The pairing lets `skip` actions pass after each sent observation and
    applies the next one. With a runner period well above the loopback latency, one
    skipped action is enough.
    """

    def __init__(self, skip: int) -> None:
        self.skip = skip
        self._seen = 0
        self._waiting = False

    def observation_sent(self) -> None:
        """Start waiting for the action to a newly sent observation."""
        self._seen = 0
        self._waiting = True

    def action_received(self, action: np.ndarray) -> np.ndarray | None:
        """Return `action` when it is the one to apply, else None."""
        if not self._waiting:
            return None
        self._seen += 1
        if self._seen <= self.skip:
            return None
        self._waiting = False
        return action


@dataclass
class EvaluationTally:
    """Outcomes of the episodes of one evaluation."""

    version: str
    episodes: int
    #: Per finished episode: whether the task succeeded at any step.
    successes: list[bool] = field(default_factory=list)
    #: Per finished episode: steps run (an episode stops at its first success).
    steps: list[int] = field(default_factory=list)
    #: Actions that did not arrive in time, over all episodes.
    action_timeouts: int = 0
    started: float = field(default_factory=time.monotonic)

    def add_episode(self, success: bool, steps: int) -> None:
        """Record one finished episode."""
        if self.finished:
            raise ValueError(
                f"evaluation of {self.version} already has its {self.episodes} episodes"
            )
        self.successes.append(success)
        self.steps.append(steps)

    @property
    def finished(self) -> bool:
        """Whether every episode has run."""
        return len(self.successes) >= self.episodes

    @property
    def success_rate(self) -> float:
        """Share of finished episodes with a success at any step (NaN before one)."""
        if not self.successes:
            return math.nan
        return sum(self.successes) / len(self.successes)

    def to_json(self) -> dict[str, Any]:
        """Return the report published on the evaluation topic."""
        return {
            "version": self.version,
            "episodes": len(self.successes),
            "successes": sum(self.successes),
            "success_rate": self.success_rate,
            "mean_steps": float(np.mean(self.steps)) if self.steps else math.nan,
            "action_timeouts": self.action_timeouts,
            "seconds": time.monotonic() - self.started,
        }


class RunnerTimeoutError(RuntimeError):
    """The policy runner sent no action in time."""


class Robot:
    """The robot stand-in: one DDS participant, one simulator."""

    def __init__(
        self, config: RobotConfig, events: EventLog, stop: StopFlag | None = None
    ) -> None:
        config.validate()
        self.config = config
        self.events = events
        self.stop = stop or StopFlag()
        topics = config.topics
        self.participant = ros.Participant(config.domain_id)
        # Writes never block, and a reader may fall up to `depth` steps (20 episodes)
        # behind before it loses a step.
        depth = 20 * config.episode_steps
        self.transitions = self.participant.writer(
            topics.transitions, ros.Transition, ros.reliable_qos(depth)
        )
        self.true_rewards = self.participant.writer(
            topics.true_rewards, ros.Transition, ros.reliable_qos(depth)
        )
        self.observations = self.participant.writer(
            topics.observation, ros.Float32MultiArray, ros.reliable_qos(1)
        )
        self.evaluations = self.participant.writer(
            topics.evaluation, ros.String, ros.latched_qos(16)
        )
        self.actions = self.participant.reader(
            topics.action, ros.Float32MultiArray, ros.reliable_qos(DEFAULT_ACTION_DEPTH)
        )
        self.model_updates = self.participant.reader(
            # Volatile matches both volatile and transient-local publishers.
            topics.model_update,
            ros.ModelUpdate,
            ros.reliable_qos(8),
        )
        self.action_waiter = self.participant.waiter(self.actions)
        self.diagnostics = self.participant.reader(
            topics.diagnostics, ros.DiagnosticArray, ros.reliable_qos(16)
        )
        #: Version the policy runner last reported driving with.
        self.runner_version: str | None = None

        self.collect_env = make_env(
            config.task, seed=config.seed, max_episode_steps=config.episode_steps
        )
        self.policy = scripted_policy(config.task)
        self.distractor = distractor_policy(config.schedule)
        self.eval_env = make_env(
            config.task, seed=config.eval_seed, max_episode_steps=config.eval_max_steps
        )
        self.episode = 0
        self.evaluated: set[str] = set()
        self.pending: list[ros.ModelUpdate] = []

    # Collection

    def collect_episode(self) -> None:
        """Run and publish one collected episode."""
        config = self.config
        arrays, behaviour = generate_episode(
            self.collect_env,
            self.policy,
            config.generator_config(),
            self.episode,
            distractor=self.distractor,
        )
        period = 1.0 / config.collect_rate_hz if config.collect_rate_hz > 0 else 0.0
        started = time.monotonic()
        steps = len(arrays["rewards"])
        for step in range(steps):
            if period > 0:
                delay = started + step * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.publish_step(arrays, step)
        self.events.write(
            "episode",
            episode=self.episode,
            steps=steps,
            success=bool(arrays["success"].any()),
            random_episode=behaviour.random_episode,
            noise_std=behaviour.noise_std,
            distractor=behaviour.distractor,
            reward_sum=float(arrays["rewards"].sum()),
        )
        self.episode += 1

    def publish_step(self, arrays: dict[str, np.ndarray], step: int) -> None:
        """Publish step `step` of a collected episode on both transition topics."""
        recorded, rewarded = transition_messages(arrays, self.episode, step)
        self.transitions.write(recorded)
        self.true_rewards.write(rewarded)

    # Evaluation

    def poll_model_updates(self) -> None:
        """Queue announced model sets that were not evaluated yet."""
        for update in ros.take_all(self.model_updates):
            if update.version in self.evaluated or any(
                queued.version == update.version for queued in self.pending
            ):
                continue
            logger.info(
                "model update: version %s (reason %d, %d answers)",
                update.version,
                update.reason,
                update.answers_used,
            )
            self.events.write(
                "model_update",
                version=update.version,
                previous_version=update.previous_version,
                reason=int(update.reason),
                answers_used=int(update.answers_used),
                reward_accuracy=float(update.reward_accuracy),
            )
            self.pending.append(update)

    def evaluate(self, update: ros.ModelUpdate) -> EvaluationTally | None:
        """Evaluate the announced set; return None when a newer set superseded it."""
        config = self.config
        version = update.version
        self.evaluated.add(version)
        logger.info(
            "evaluating %s over %d episodes once the runner drives with it",
            version,
            config.eval_episodes,
        )
        if not self.wait_for_runner(version):
            return None
        tally = EvaluationTally(version=version, episodes=config.eval_episodes)
        for index in range(config.eval_episodes):
            if self.stop.stopped:
                return None
            self.poll_model_updates()
            if self.pending:
                logger.warning(
                    "evaluation of %s superseded by %s after %d episodes",
                    version,
                    self.pending[-1].version,
                    index,
                )
                self.events.write(
                    "evaluation_superseded",
                    version=version,
                    by=self.pending[-1].version,
                    episodes=index,
                )
                return None
            success, steps = self.run_eval_episode(config.eval_seed + index, tally)
            tally.add_episode(success, steps)
        report = tally.to_json()
        logger.info(
            "evaluation of %s: success rate %.2f over %d episodes (%.1f s)",
            version,
            tally.success_rate,
            len(tally.successes),
            report["seconds"],
        )
        self.events.write("evaluation", **report)
        self.evaluations.write(ros.String(data=json.dumps(report)))
        return tally

    def wait_for_runner(self, version: str) -> bool:
        """Wait until the runner reports driving with `version`.

        Returns False, after an `evaluation_skipped` event, when a newer set was
        announced, the robot was stopped or `swap_timeout_s` passed first.
        """
        deadline = time.monotonic() + self.config.swap_timeout_s
        reason = None
        while reason is None:
            self.read_runner_version()
            if self.runner_version == version:
                return True
            self.poll_model_updates()
            if self.stop.stopped:
                return False
            if self.pending:
                reason = f"superseded by {self.pending[-1].version}"
            elif time.monotonic() > deadline:
                reason = (
                    f"the runner reported {self.runner_version or 'no version'} for "
                    f"{self.config.swap_timeout_s:.0f} s"
                )
            else:
                time.sleep(0.05)
        logger.warning("evaluation of %s skipped: %s", version, reason)
        self.events.write("evaluation_skipped", version=version, reason=reason)
        return False

    def read_runner_version(self) -> None:
        """Update `runner_version` from the runner's newest diagnostics."""
        for array in ros.take_all(self.diagnostics):
            for status in array.status:
                if not status.name.endswith(": policy"):
                    continue
                for entry in status.values:
                    if entry.key == "version":
                        self.runner_version = entry.value

    def run_eval_episode(self, seed: int, tally: EvaluationTally) -> tuple[bool, int]:
        """Run one runner-driven episode; return (success at any step, steps run)."""
        env = self.eval_env
        observation, _ = env.reset(seed=seed)
        for step in range(self.config.eval_max_steps):
            action = self.request_action(observation, tally, first=step == 0)
            observation, _, _, truncated, info = env.step(action)
            if info["success"]:
                return True, step + 1
            if truncated:
                return False, step + 1
        return False, self.config.eval_max_steps

    def request_action(
        self, observation: np.ndarray, tally: EvaluationTally, first: bool
    ) -> np.ndarray:
        """Send `observation` to the runner and return its action.

        A missing action counts as a timeout and the observation is sent again. The
        very first observation is resent until `runner_start_timeout_s`, because the
        runner may still be starting.
        """
        config = self.config
        pairing = ActionPairing(config.skip_actions)
        limit = config.runner_start_timeout_s if first else 10 * config.action_timeout_s
        deadline = time.monotonic() + limit
        message = ros.float32_array(observation.astype(np.float32))
        while not self.stop.stopped:
            ros.take_all(self.actions)
            self.observations.write(message)
            pairing.observation_sent()
            action = self._wait_for_action(pairing, config.action_timeout_s)
            if action is not None:
                return action
            tally.action_timeouts += 1
            if time.monotonic() > deadline:
                raise RunnerTimeoutError(
                    f"the policy runner sent no action on {config.topics.action} "
                    f"within {limit} s; check that it runs, is enabled and listens "
                    f"on {config.topics.observation}"
                )
        raise RunnerTimeoutError("stopped while waiting for an action")

    def _wait_for_action(
        self, pairing: ActionPairing, timeout: float
    ) -> np.ndarray | None:
        deadline = time.monotonic() + timeout
        while True:
            for sample in ros.take_all(self.actions):
                action = pairing.action_received(np.asarray(sample.data, np.float32))
                if action is not None:
                    return action
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.action_waiter.wait(remaining)

    # Main loop

    def run(self, on_evaluation: Callable[[EvaluationTally], None] | None = None):
        """Collect and evaluate until stopped.

        After `max_episodes` collected episodes (when set) the robot stops collecting
        and only evaluates announced model sets.
        """
        config = self.config
        logger.info(
            "robot started: task %s, collecting on %s, evaluating %d episodes per "
            "model set",
            config.task,
            config.topics.transitions,
            config.eval_episodes,
        )
        self.events.write("start", task=config.task)
        if not ros.wait_publication_matched(self.transitions, 60.0):
            logger.warning(
                "no recorder subscribed to %s within 60 s; publishing anyway",
                config.topics.transitions,
            )
        update_waiter = self.participant.waiter(self.model_updates)
        while not self.stop.stopped:
            self.poll_model_updates()
            while self.pending and not self.stop.stopped:
                update = self.pending.pop(0)
                if self.pending:
                    # Only the newest set is still deployed, so the older ones are
                    # not evaluated.
                    self.events.write(
                        "evaluation_superseded",
                        version=update.version,
                        by=self.pending[-1].version,
                        episodes=0,
                    )
                    self.evaluated.add(update.version)
                    continue
                tally = self.evaluate(update)
                if tally is not None and on_evaluation is not None:
                    on_evaluation(tally)
            if self.collection_done:
                update_waiter.wait(0.5)
                continue
            self.collect_episode()
            if self.collection_done:
                logger.info("collected %d episodes; collection stops", self.episode)
                self.events.write("collection_done", episodes=self.episode)
        self.events.write("stop", episodes=self.episode)
        logger.info("robot stopped after %d collected episodes", self.episode)

    @property
    def collection_done(self) -> bool:
        """Whether `max_episodes` episodes were collected (never when it is 0)."""
        return 0 < self.config.max_episodes <= self.episode


def transition_messages(
    arrays: dict[str, np.ndarray], episode: int, step: int
) -> tuple[ros.Transition, ros.Transition]:
    """Return step `step` of an episode's arrays as the recorder's Transition, without
    the reward, and the operator's, with the true reward."""
    stamp = ros.now()

    def message(reward: float, has_reward: bool) -> ros.Transition:
        return ros.Transition(
            header=ros.Header(stamp=stamp, frame_id=""),
            episode_id=episode,
            step=step,
            observation=arrays["observations"][step].astype(np.float32).tolist(),
            action=arrays["actions"][step].astype(np.float32).tolist(),
            reward=reward,
            has_reward=has_reward,
            terminated=bool(arrays["terminals"][step]),
            truncated=bool(arrays["timeouts"][step]),
        )

    return message(0.0, False), message(float(arrays["rewards"][step]), True)


#: History depth of the action reader: enough for the actions of a few seconds at the
#: runner's usual rates.
DEFAULT_ACTION_DEPTH = 64

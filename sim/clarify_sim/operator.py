"""A simulated operator that answers the node's preference queries over ROS 2.

It reads every step the robot publishes with its true reward, answers each
clarify_msgs/PreferenceQuery with the ε-skip teacher (`clarify_sim.teacher.SkipTeacher`)
and submits the answer through the node's SubmitAnswer service.

Segment matching: a query carries both segments' observations as the node's store holds
them, and the store's episode ids differ from the robot's. The operator therefore finds
each segment among the robot's steps by its observation rows, which the recorder stores
bit for bit as float32: the first row's bytes look up candidate (episode, step) starts,
and a candidate matches when every following row equals the robot's next steps in the
same episode. Meta-World observations contain continuous object and hand positions, so
two different steps with the same rows are very unlikely. When they occur anyway, the
first matching start is used and the answer records how many starts matched.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from clarify_sim import ros
from clarify_sim.errors import InputError
from clarify_sim.lifecycle import EventLog, StopFlag
from clarify_sim.teacher import CANT_TELL, LEFT, RIGHT, Answer, SkipTeacher

logger = logging.getLogger(__name__)

#: PreferenceAnswer values of the teacher's answers.
ANSWER_VALUES: dict[Answer, int] = {
    LEFT: ros.ANSWER_LEFT,
    RIGHT: ros.ANSWER_RIGHT,
    CANT_TELL: ros.ANSWER_CANT_TELL,
}


class SegmentNotFoundError(LookupError):
    """No run of the robot's steps has a segment's observation rows."""


@dataclass(frozen=True)
class SegmentMatch:
    """Location of a query segment among the robot's steps."""

    #: The robot's episode id.
    episode_id: int
    #: Index of the segment's first step within the episode.
    start: int
    #: True rewards of the segment's steps.
    rewards: np.ndarray
    #: Number of (episode, start) pairs whose steps have the segment's rows; 1 unless
    #: two runs of steps repeat the same observations.
    candidates: int

    @property
    def segment_return(self) -> float:
        """Sum of the true rewards, in float64."""
        return float(np.sum(self.rewards, dtype=np.float64))


class StepIndex:
    """The robot's steps with their true rewards, looked up by observation rows."""

    def __init__(self) -> None:
        self._rows: dict[int, list[bytes]] = defaultdict(list)
        self._rewards: dict[int, list[float]] = defaultdict(list)
        self._starts: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        self.observation_dim: int | None = None
        self.reward_sum = 0.0
        self.steps = 0
        #: Episodes whose last step (terminated or truncated) was added.
        self.finished_episodes = 0
        #: Steps that arrived out of order within their episode and were dropped.
        self.dropped = 0

    @property
    def mean_reward(self) -> float:
        """Mean true reward per step of all steps seen so far; NaN before the first."""
        return self.reward_sum / self.steps if self.steps else math.nan

    def add(
        self,
        episode_id: int,
        step: int,
        observation: np.ndarray,
        reward: float,
        last: bool = False,
    ) -> bool:
        """Add one step; return False, dropping it, unless it continues its episode.

        Steps of an episode must arrive in order from step 0, as the robot publishes
        them over a reliable topic.
        """
        row = np.asarray(observation, dtype=np.float32)
        if self.observation_dim is None:
            self.observation_dim = row.size
        if row.size != self.observation_dim or step != len(self._rows[episode_id]):
            self.dropped += 1
            return False
        key = row.tobytes()
        self._starts[key].append((episode_id, step))
        self._rows[episode_id].append(key)
        self._rewards[episode_id].append(float(reward))
        self.reward_sum += float(reward)
        self.steps += 1
        if last:
            self.finished_episodes += 1
        return True

    def match(self, observations: np.ndarray) -> SegmentMatch:
        """Find the segment whose observation rows are `observations` [H, dim].

        Raises `SegmentNotFoundError` when no run of steps has these rows.
        """
        rows = np.asarray(observations, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise SegmentNotFoundError(
                f"invalid segment of shape {rows.shape}: expected [steps, dim]"
            )
        keys = [row.tobytes() for row in rows]
        found: list[tuple[int, int]] = []
        for episode_id, start in self._starts.get(keys[0], []):
            stored = self._rows[episode_id][start : start + len(keys)]
            if stored == keys:
                found.append((episode_id, start))
        if not found:
            raise SegmentNotFoundError(
                f"no {len(keys)} consecutive robot steps have the segment's "
                f"observations ({self.steps} steps indexed)"
            )
        episode_id, start = found[0]
        rewards = self._rewards[episode_id][start : start + len(keys)]
        return SegmentMatch(
            episode_id=episode_id,
            start=start,
            rewards=np.asarray(rewards, dtype=np.float32),
            candidates=len(found),
        )


def segment_rows(values: list[float], length: int, dim: int) -> np.ndarray:
    """Reshape a query's row-major step data into [length, dim]; raise `InputError`."""
    array = np.asarray(values, dtype=np.float32)
    if dim == 0 or array.size != length * dim:
        raise InputError(
            f"invalid segment data of {array.size} values: expected {length} steps "
            f"of {dim} values"
        )
    return array.reshape(length, dim)


@dataclass
class Decision:
    """The teacher's answer to one query, with what it was based on."""

    answer: Answer
    return_left: float
    return_right: float
    threshold: float
    candidates_left: int
    candidates_right: int


def decide(index: StepIndex, query: ros.PreferenceQuery, epsilon: float) -> Decision:
    """Answer `query` with the ε-skip teacher; raise `SegmentNotFoundError`.

    The threshold is ε · H · r̄ with H the left segment's length and r̄ the mean true
    reward of all steps seen so far.
    """
    dim = int(query.observation_dim)
    left = index.match(
        segment_rows(query.left_observations, query.left.length_steps, dim)
    )
    right = index.match(
        segment_rows(query.right_observations, query.right.length_steps, dim)
    )
    teacher = SkipTeacher(
        epsilon=epsilon,
        segment_length=int(query.left.length_steps),
        mean_step_reward=index.mean_reward,
    )
    return Decision(
        answer=teacher.answer(left.segment_return, right.segment_return),
        return_left=left.segment_return,
        return_right=right.segment_return,
        threshold=teacher.threshold,
        candidates_left=left.candidates,
        candidates_right=right.candidates,
    )


@dataclass(frozen=True)
class OperatorTopics:
    """ROS 2 names the operator uses."""

    #: clarify_msgs/PreferenceQuery from the node.
    query: str = "preference_query"
    #: clarify_msgs/SubmitAnswer service of the node.
    submit_answer: str = "submit_answer"
    #: clarify_msgs/Transition with the true rewards, from the robot.
    true_rewards: str = "demo/true_rewards"
    #: clarify_msgs/ModelUpdate announcements of the node.
    model_update: str = "model_update"
    #: clarify_msgs/TrainingStatus reports of the node.
    training_status: str = "clarify/training_status"


@dataclass(frozen=True)
class OperatorConfig:
    """Settings of the simulated operator."""

    #: ε of the ε-skip teacher.
    epsilon: float = 0.5
    #: Seconds to wait for a query's segments to show up among the robot's steps
    #: before the query is skipped.
    match_timeout_s: float = 10.0
    #: Seconds the operator takes per answer.
    answer_delay_s: float = 0.0
    #: Accepted answers per deployed model set (0: no limit). After that many the
    #: operator waits for the next ModelUpdate, like an operator with a fixed query
    #: budget per policy. A failed training run (TrainingStatus STATE_FAILED, which
    #: includes a rejected set) opens a new budget for the same set. With a budget,
    #: queries created before the newest ModelUpdate are left to expire, so each
    #: budget goes to the queries that the deployed set's selector chose.
    answers_per_model: int = 0
    #: Finished robot episodes to see before the first answer (0: answer at once).
    min_episodes: int = 0
    #: Seconds to wait for one SubmitAnswer response.
    service_timeout_s: float = 10.0
    #: How the node's transport maps services onto DDS topics.
    service_mapping: ros.ServiceMapping = "enhanced"
    #: Name stored with each answer.
    operator_id: str = "sim:epsilon-skip"
    #: DDS domain id.
    domain_id: int = 0
    topics: OperatorTopics = field(default_factory=OperatorTopics)

    def validate(self) -> None:
        """Raise `InputError` naming the first setting out of range."""
        if not (math.isfinite(self.epsilon) and self.epsilon >= 0):
            raise InputError(f"invalid epsilon {self.epsilon}: use a value >= 0")
        for name in ("match_timeout_s", "service_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"invalid {name} {value}: use seconds > 0")
        if not (math.isfinite(self.answer_delay_s) and self.answer_delay_s >= 0):
            raise InputError(
                f"invalid answer_delay_s {self.answer_delay_s}: use seconds >= 0"
            )
        if self.min_episodes < 0:
            raise InputError(f"invalid min_episodes {self.min_episodes}: use 0 or more")
        if self.answers_per_model < 0:
            raise InputError(
                f"invalid answers_per_model {self.answers_per_model}: use 0 or more"
            )
        if self.service_mapping not in ros.SERVICE_MAPPINGS:
            raise InputError(
                f"invalid service mapping {self.service_mapping!r}: use one of "
                f"{', '.join(ros.SERVICE_MAPPINGS)}"
            )


@dataclass
class PendingQuery:
    query: ros.PreferenceQuery
    received: float


class Operator:
    """The simulated operator: one DDS participant answering queries."""

    def __init__(
        self, config: OperatorConfig, events: EventLog, stop: StopFlag | None = None
    ) -> None:
        config.validate()
        self.config = config
        self.events = events
        self.stop = stop or StopFlag()
        topics = config.topics
        self.participant = ros.Participant(config.domain_id)
        # Every step is needed for matching, so the robot waits rather than lose one.
        self.steps = self.participant.reader(
            topics.true_rewards, ros.Transition, ros.lossless_qos()
        )
        self.queries = self.participant.reader(
            topics.query, ros.PreferenceQuery, ros.latched_qos(256)
        )
        self.model_updates = self.participant.reader(
            # Volatile matches both volatile and transient-local publishers.
            topics.model_update,
            ros.ModelUpdate,
            ros.reliable_qos(8),
        )
        self.training = self.participant.reader(
            topics.training_status, ros.TrainingStatus, ros.reliable_qos(8)
        )
        self.service = ros.ServiceClient(
            self.participant, topics.submit_answer, config.service_mapping
        )
        self.waiter = self.participant.waiter(
            self.steps, self.queries, self.model_updates, self.training
        )
        self.index = StepIndex()
        self.pending: dict[int, PendingQuery] = {}
        self.handled: set[int] = set()
        self.deployed_version = ""
        #: Stamp of the newest ModelUpdate in Unix seconds, 0 before the first.
        self.deployed_at = 0.0
        self.answers = 0
        #: Accepted answers since the deployed version last changed.
        self.answers_for_model = 0
        #: Run ids of the failed training runs seen.
        self.failed_runs: set[int] = set()

    def run(self) -> None:
        """Answer queries until stopped."""
        config = self.config
        logger.info(
            "operator started: epsilon %.2f, queries on %s, answers through %s (%s)",
            config.epsilon,
            config.topics.query,
            config.topics.submit_answer,
            config.service_mapping,
        )
        self.events.write("start", epsilon=config.epsilon)
        server_found = False
        while not self.stop.stopped:
            self.waiter.wait(0.2)
            self.ingest()
            if not self.pending or self.budget_spent:
                continue
            if self.index.finished_episodes < config.min_episodes:
                continue
            if not server_found:
                server_found = self.service.wait_for_server(1.0)
                if not server_found:
                    continue
            self.answer_pending()
        self.events.write("stop", answers=self.answers)
        logger.info("operator stopped after %d answers", self.answers)

    @property
    def budget_spent(self) -> bool:
        """Whether the answers for the deployed model set are used up."""
        budget = self.config.answers_per_model
        return budget > 0 and self.answers_for_model >= budget

    def ingest(self) -> None:
        """Take the robot's steps, model updates and new queries."""
        for sample in ros.take_all(self.steps, batch=1024):
            self.index.add(
                int(sample.episode_id),
                int(sample.step),
                np.asarray(sample.observation, dtype=np.float32),
                float(sample.reward),
                last=bool(sample.terminated or sample.truncated),
            )
        for update in ros.take_all(self.model_updates):
            if update.version != self.deployed_version:
                self.deployed_version = update.version
                self.deployed_at = ros.time_seconds(update.stamp)
                self.answers_for_model = 0
        for status in ros.take_all(self.training):
            self.note_training_status(status)
        now = time.monotonic()
        for query in ros.take_all(self.queries):
            query_id = int(query.query_id)
            if query_id in self.handled or query_id in self.pending:
                continue
            self.pending[query_id] = PendingQuery(query=query, received=now)

    def note_training_status(self, status: ros.TrainingStatus) -> None:
        """Open a new answer budget when a training run failed or was rejected."""
        run_id = int(status.run_id)
        if status.state != ros.STATE_FAILED or run_id in self.failed_runs:
            return
        self.failed_runs.add(run_id)
        logger.warning(
            "training run %d failed (%s); answering again for %s",
            run_id,
            status.message,
            self.deployed_version or "no model set",
        )
        self.events.write(
            "training_failed",
            run_id=run_id,
            message=status.message,
            deployed_version=self.deployed_version,
        )
        self.answers_for_model = 0

    def answer_pending(self) -> None:
        """Answer every pending query whose segments are known, oldest first."""
        for query_id in sorted(self.pending):
            if self.stop.stopped or self.budget_spent:
                return
            pending = self.pending[query_id]
            query = pending.query
            if _expired(query):
                self._finish(query_id, "expired", selector=query.selector)
                continue
            if self.config.answers_per_model > 0 and asked_before(
                query, self.deployed_at
            ):
                # Asked before the deployed set existed; it stays open until it expires.
                continue
            try:
                decision = decide(self.index, query, self.config.epsilon)
            except SegmentNotFoundError as error:
                waited = time.monotonic() - pending.received
                if waited < self.config.match_timeout_s:
                    continue
                logger.warning("query %d skipped: %s", query_id, error)
                self.submit(pending, ros.ANSWER_SKIP, None, str(error))
                continue
            except InputError as error:
                logger.warning("query %d skipped: %s", query_id, error)
                self.submit(pending, ros.ANSWER_SKIP, None, str(error))
                continue
            if self.config.answer_delay_s > 0:
                time.sleep(self.config.answer_delay_s)
            self.submit(pending, ANSWER_VALUES[decision.answer], decision, "")

    def submit(
        self,
        pending: PendingQuery,
        value: int,
        decision: Decision | None,
        skip_reason: str,
    ) -> None:
        """Send one answer through the service and record the outcome."""
        query = pending.query
        query_id = int(query.query_id)
        answer = ros.PreferenceAnswer(
            stamp=ros.now(),
            query_id=query_id,
            answer=value,
            operator_id=self.config.operator_id,
            response_time_sec=time.monotonic() - pending.received,
        )
        try:
            response = self.service.call(answer, self.config.service_timeout_s)
        except ros.ServiceError as error:
            logger.error("answer to query %d not delivered: %s", query_id, error)
            self._finish(query_id, "not_delivered", selector=query.selector)
            return
        if not response.accepted:
            logger.warning(
                "answer to query %d rejected: %s", query_id, response.message
            )
        else:
            self.answers += 1
            self.answers_for_model += 1
            if self.budget_spent:
                logger.info(
                    "gave %d answers while %s was deployed; waiting for the next set",
                    self.answers_for_model,
                    self.deployed_version or "no model set",
                )
        details: dict[str, object] = {
            "selector": query.selector,
            "encoder_version": query.encoder_version,
            "deployed_version": self.deployed_version,
            "answer": value,
            "accepted": bool(response.accepted),
            "message": response.message,
            "mean_reward": self.index.mean_reward,
        }
        if decision is not None:
            details.update(
                return_left=decision.return_left,
                return_right=decision.return_right,
                threshold=decision.threshold,
                candidates_left=decision.candidates_left,
                candidates_right=decision.candidates_right,
            )
        else:
            details["skip_reason"] = skip_reason
        self._finish(query_id, "answer", **details)

    def _finish(self, query_id: int, event: str, **details: object) -> None:
        self.pending.pop(query_id, None)
        self.handled.add(query_id)
        self.events.write(event, query_id=query_id, **details)


def asked_before(query: ros.PreferenceQuery, deployed_at: float) -> bool:
    """Return whether the node created `query` before `deployed_at` (Unix seconds)."""
    return ros.time_seconds(query.stamp) < deployed_at


def _expired(query: ros.PreferenceQuery) -> bool:
    """Return whether the query's expiry time, when set, has passed."""
    stamp = query.expires_at
    if stamp.sec == 0 and stamp.nanosec == 0:
        return False
    return ros.time_seconds(stamp) < time.time()

"""Tests of the demo's robot and operator over DDS on loopback.

They open sockets, so they run only inside the private network namespace of .ci/test
(CLARIFY_IN_NETNS=1), for example:
``.ci/netns-run env CLARIFY_IN_NETNS=1 .venv/bin/python -m pytest sim/tests``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clarify_sim import ros
from clarify_sim.env import scripted_policy
from clarify_sim.lifecycle import EventLog, StopFlag
from clarify_sim.operator import Operator, OperatorConfig, OperatorTopics
from clarify_sim.robot import EvaluationTally, Robot, RobotConfig, RobotTopics

pytestmark = pytest.mark.skipif(
    os.environ.get("CLARIFY_IN_NETNS") != "1",
    reason="opens DDS sockets: runs only inside .ci/netns-run with CLARIFY_IN_NETNS=1",
)

#: Domain ids apart from other tests' default domain 0.
DOMAIN_ID = 41


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class FakeRunner:
    """Publishes the scripted policy's action for the newest observation every tick,
    like `clarify policy run` does with a model set, and diagnostics that name
    `version` as the set it drives with."""

    def __init__(self, topics: RobotTopics, period: float, version: str) -> None:
        self.participant = ros.Participant(DOMAIN_ID)
        self.reader = self.participant.reader(
            topics.observation, ros.Float32MultiArray, ros.reliable_qos(1)
        )
        self.writer = self.participant.writer(
            topics.action, ros.Float32MultiArray, ros.reliable_qos(10)
        )
        self.diagnostics = self.participant.writer(
            topics.diagnostics, ros.DiagnosticArray, ros.reliable_qos(10)
        )
        self.version = version
        self.policy = scripted_policy("dial-turn")
        self.period = period
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        latest = None
        while not self.stopped.is_set():
            samples = ros.take_all(self.reader)
            if samples:
                latest = np.asarray(samples[-1].data, dtype=np.float64)
            if latest is not None:
                self.writer.write(ros.float32_array(self.policy(latest)))
            self.diagnostics.write(self.diagnostic_array())
            time.sleep(self.period)

    def diagnostic_array(self) -> ros.DiagnosticArray:
        values = [ros.KeyValue(key="version", value=self.version)]
        status = ros.DiagnosticStatus(
            level=0,
            name="clarify_policy: policy",
            message=f"model set {self.version} drives",
            hardware_id="",
            values=values,
        )
        header = ros.Header(stamp=ros.now(), frame_id="")
        return ros.DiagnosticArray(header=header, status=[status])


def test_robot_publishes_steps_with_and_without_reward():
    topics = RobotTopics(transitions="t/transitions", true_rewards="t/true")
    config = RobotConfig(
        episode_steps=30,
        schedule_episodes=2,
        max_episodes=2,
        domain_id=DOMAIN_ID,
        topics=topics,
    )
    listener = ros.Participant(DOMAIN_ID)
    recorded_reader = listener.reader(
        topics.transitions, ros.Transition, ros.reliable_qos(1000)
    )
    rewarded_reader = listener.reader(
        topics.true_rewards, ros.Transition, ros.reliable_qos(1000)
    )
    stream = io.StringIO()
    stop = StopFlag()
    robot = Robot(config, EventLog(stream), stop)
    thread = threading.Thread(target=robot.run, daemon=True)
    thread.start()
    recorded: list[ros.Transition] = []
    rewarded: list[ros.Transition] = []

    def received_all() -> bool:
        recorded.extend(ros.take_all(recorded_reader))
        rewarded.extend(ros.take_all(rewarded_reader))
        return len(recorded) >= 60 and len(rewarded) >= 60

    assert wait_until(received_all, 30.0), (len(recorded), len(rewarded))
    stop.stopped = True
    thread.join(10.0)
    assert not thread.is_alive()
    assert [(m.episode_id, m.step) for m in recorded] == [
        (e, s) for e in range(2) for s in range(30)
    ]
    assert not any(m.has_reward for m in recorded)
    assert all(m.has_reward for m in rewarded)
    assert [m.observation for m in recorded] == [m.observation for m in rewarded]
    assert sum(m.truncated for m in recorded) == 2
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    episodes = [e for e in events if e["event"] == "episode"]
    assert [e["episode"] for e in episodes] == [0, 1]
    assert any(e["event"] == "collection_done" for e in events)


def evaluation_topics(prefix: str) -> RobotTopics:
    """Return the robot's evaluation topics under `prefix`, one prefix per test."""
    return RobotTopics(
        observation=f"{prefix}/observation",
        action=f"{prefix}/action",
        model_update=f"{prefix}/model_update",
        evaluation=f"{prefix}/evaluation",
        diagnostics=f"{prefix}/diagnostics",
    )


def trained_update(version: str, previous_version: str = "") -> ros.ModelUpdate:
    """Return the node's announcement of a newly trained set `version`."""
    return ros.ModelUpdate(
        stamp=ros.now(),
        version=version,
        previous_version=previous_version,
        reason=ros.REASON_TRAINED,
        path="",
        answers_used=5,
        reward_accuracy=0.5,
    )


def evaluate_with_runner(
    config: RobotConfig, period: float, runner_version: str, update: ros.ModelUpdate
) -> tuple[EvaluationTally | None, Robot, list[dict]]:
    """Evaluate `update` with a fake runner that drives with `runner_version`.

    Returns the tally, the robot and the robot's events.
    """
    runner = FakeRunner(config.topics, period=period, version=runner_version)
    runner.thread.start()
    stream = io.StringIO()
    robot = Robot(config, EventLog(stream))
    try:
        tally = robot.evaluate(update)
    finally:
        runner.stopped.set()
        runner.thread.join(5.0)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    return tally, robot, events


def test_robot_evaluates_with_runner_actions():
    topics = evaluation_topics("t")
    config = RobotConfig(
        episode_steps=10,
        schedule_episodes=2,
        eval_episodes=2,
        eval_max_steps=300,
        runner_start_timeout_s=20.0,
        domain_id=DOMAIN_ID,
        topics=topics,
    )
    listener = ros.Participant(DOMAIN_ID)
    reports = listener.reader(topics.evaluation, ros.String, ros.latched_qos(4))
    tally, _, events = evaluate_with_runner(
        config, 0.004, "v-test", trained_update("v-test")
    )
    assert tally is not None
    assert tally.finished
    # The scripted policy turns the dial within the step limit.
    assert tally.successes == [True, True]
    assert all(steps < 300 for steps in tally.steps)
    received: list[ros.String] = []
    assert wait_until(
        lambda: bool(received.extend(ros.take_all(reports)) or received), 10
    )
    report = json.loads(received[-1].data)
    assert report["version"] == "v-test"
    assert report["success_rate"] == 1.0
    assert events[-1]["event"] == "evaluation"
    assert events[-1]["successes"] == 2


class FakeAnswerServer:
    """Serves SubmitAnswer like the node: accepts query 7 once, rejects the rest."""

    def __init__(self, name: str, mapping: ros.ServiceMapping) -> None:
        self.participant = ros.Participant(DOMAIN_ID)
        domain = self.participant.domain
        cyclone = mapping == "cyclone"
        self.cyclone = cyclone
        request_type = (
            ros.CycloneSubmitAnswerRequest if cyclone else ros.SubmitAnswerRequest
        )
        response_type = (
            ros.CycloneSubmitAnswerResponse if cyclone else ros.SubmitAnswerResponse
        )
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.requests = DataReader(
            domain, Topic(domain, f"rq/{name}Request", request_type), ros.reliable_qos()
        )
        self.responses = DataWriter(
            domain, Topic(domain, f"rr/{name}Reply", response_type), ros.reliable_qos()
        )
        self.answers: list[ros.PreferenceAnswer] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopped.is_set():
            for request in ros.take_all(self.requests):
                first = request.answer.query_id == 7 and not self.answers
                self.answers.append(request.answer)
                message = "" if first else "duplicate answer"
                if self.cyclone:
                    response = ros.CycloneSubmitAnswerResponse(
                        client_id=request.client_id,
                        sequence_high=request.sequence_high,
                        sequence_low=request.sequence_low,
                        accepted=first,
                        message=message,
                    )
                else:
                    response = ros.SubmitAnswerResponse(accepted=first, message=message)
                self.responses.write(response)
            time.sleep(0.005)


@pytest.mark.parametrize("mapping", ["enhanced", "cyclone"])
def test_operator_answers_query_through_service(mapping):
    topics = OperatorTopics(
        query=f"t/{mapping}/query",
        submit_answer=f"t/{mapping}/submit_answer",
        true_rewards=f"t/{mapping}/true",
        model_update=f"t/{mapping}/model_update",
    )
    server = FakeAnswerServer(topics.submit_answer, mapping)
    server.thread.start()
    publisher = ros.Participant(DOMAIN_ID)
    steps = publisher.writer(topics.true_rewards, ros.Transition, ros.latched_qos(100))
    queries = publisher.writer(topics.query, ros.PreferenceQuery, ros.latched_qos(8))

    stream = io.StringIO()
    stop = StopFlag()
    operator = Operator(
        OperatorConfig(service_mapping=mapping, domain_id=DOMAIN_ID, topics=topics),
        EventLog(stream),
        stop,
    )
    thread = threading.Thread(target=operator.run, daemon=True)
    thread.start()
    try:
        assert ros.wait_publication_matched(steps, 10.0)
        rows = np.arange(20 * 2, dtype=np.float32).reshape(20, 2) + np.float32(0.5)
        rewards = [0.0] * 10 + [3.0] * 10
        for step in range(20):
            steps.write(
                ros.Transition(
                    header=ros.Header(stamp=ros.now(), frame_id=""),
                    episode_id=4,
                    step=step,
                    observation=rows[step].tolist(),
                    action=[0.0],
                    reward=rewards[step],
                    has_reward=True,
                    terminated=False,
                    truncated=step == 19,
                )
            )
        zero = ros.Time(sec=0, nanosec=0)
        query = ros.PreferenceQuery(
            stamp=ros.now(),
            query_id=7,
            left=ros.SegmentRef(episode_id=1, start_step=12, length_steps=5),
            right=ros.SegmentRef(episode_id=1, start_step=2, length_steps=5),
            observation_dim=2,
            action_dim=1,
            observation_names=[],
            action_names=[],
            step_period_sec=0.0,
            left_observations=rows[12:17].reshape(-1).tolist(),
            left_actions=[0.0] * 5,
            right_observations=rows[2:7].reshape(-1).tolist(),
            right_actions=[0.0] * 5,
            selector="random",
            encoder_version="",
            expires_at=zero,
        )
        queries.write(query)
        assert wait_until(lambda: operator.handled == {7}, 20.0)
    finally:
        stop.stopped = True
        thread.join(10.0)
        server.stopped.set()
        server.thread.join(5.0)
    assert [a.query_id for a in server.answers] == [7]
    assert server.answers[0].answer == ros.ANSWER_LEFT
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    answers = [e for e in events if e["event"] == "answer"]
    assert len(answers) == 1
    assert answers[0]["accepted"]
    assert answers[0]["selector"] == "random"
    assert answers[0]["return_left"] == 15.0
    assert answers[0]["return_right"] == 0.0
    assert answers[0]["mean_reward"] == 1.5


WRITE_AND_WAIT = """
import sys
from clarify_sim import ros
participant = ros.Participant(int(sys.argv[1]))
writer = participant.writer("t/departure", ros.String, ros.latched_qos(4))
assert ros.wait_publication_matched(writer, 10.0)
writer.write(ros.String(data="first"))
print("written", flush=True)
sys.stdin.read()
"""


def test_take_all_leaves_out_writer_departure():
    participant = ros.Participant(DOMAIN_ID)
    reader = participant.reader("t/departure", ros.String, ros.latched_qos(4))
    environment = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE_AND_WAIT, str(DOMAIN_ID)],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline() == "written\n"
        received: list[ros.String] = []
        assert wait_until(
            lambda: bool(received.extend(ros.take_all(reader)) or received), 10.0
        )
        assert [sample.data for sample in received] == ["first"]
    finally:
        writer.stdin.close()
        writer.wait(30)
    # The writer's departure leaves a data-less sample in the reader.
    assert wait_until(
        lambda: reader.get_subscription_matched_status().current_count == 0, 10.0
    )
    time.sleep(0.2)
    assert ros.take_all(reader) == []


def test_operator_budget_reopens_after_failed_run():
    stream = io.StringIO()
    operator = Operator(
        OperatorConfig(answers_per_model=2, domain_id=DOMAIN_ID),
        EventLog(stream),
    )
    operator.answers_for_model = 2
    assert operator.budget_spent
    status = ros.TrainingStatus(
        stamp=ros.now(),
        run_id=3,
        state=ros.STATE_FAILED,
        stage="validate",
        stage_progress=0.0,
        answers_used=2,
        elapsed_sec=1.0,
        message="model set rejected: reward accuracy fell",
    )
    operator.note_training_status(status)
    assert not operator.budget_spent
    operator.answers_for_model = 2
    # The same run reported again opens no second budget.
    operator.note_training_status(status)
    assert operator.budget_spent
    status.state = ros.STATE_SUCCEEDED
    status.run_id = 4
    operator.note_training_status(status)
    assert operator.budget_spent
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["training_failed"]
    assert events[0]["run_id"] == 3


def test_robot_skips_unloaded_set():
    topics = evaluation_topics("t2")
    config = RobotConfig(
        episode_steps=10,
        schedule_episodes=2,
        eval_episodes=2,
        swap_timeout_s=2.0,
        domain_id=DOMAIN_ID,
        topics=topics,
    )
    update = trained_update("v-new", previous_version="v-old")
    tally, robot, events = evaluate_with_runner(config, 0.01, "v-old", update)
    assert tally is None
    assert robot.runner_version == "v-old"
    assert events[-1]["event"] == "evaluation_skipped"
    assert events[-1]["version"] == "v-new"
    assert "the runner reported v-old" in events[-1]["reason"]

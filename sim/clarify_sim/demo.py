"""The closed-loop demo: robot, node, policy runner and operator over ROS 2 topics.

`Demo.run` starts four processes that talk only over DDS:

- the Meta-World robot (`clarify-sim robot`), which collects data for the node's
  recorder and evaluates each deployed model set with the policy runner;
- `clarify node`, which records, selects preference queries, retrains and deploys;
- `clarify policy run`, which drives the robot's evaluation episodes with the active
  set. It starts once the node has deployed the first set, because it needs one to load;
- the simulated operator (`clarify-sim operator`), which answers the queries with the
  ε-skip teacher from the robot's true rewards. It answers once the robot has collected
  its episodes, so the first training sees all of them.

The demo runs until `cycles` retrain-and-redeploy cycles have been evaluated. Then it
prints one table row per cycle and stops every process. It must itself run inside a
private network namespace (``.ci/netns-run``), as ``.ci/demo`` arranges, so that DDS
traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from clarify_sim.errors import InputError

logger = logging.getLogger("clarify_sim.demo")

#: File that marks a folder as a demo work folder, which a new run may clear.
MARKER = ".clarify-demo"

#: Order in which the processes stop: consumers of actions and answers first.
STOP_ORDER = ("runner", "robot", "operator", "node")

#: Seconds a process gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run. `PRESETS` contains the documented sets."""

    #: Meta-World v3 task.
    task: str = "dial-turn"
    #: Retrain-and-redeploy cycles to evaluate before the demo stops.
    cycles: int = 2
    #: Episodes the robot collects before it only evaluates (0: no limit). They follow
    #: one pass of the dataset generator's behaviour schedule (300 episodes with no
    #: limit).
    collect_episodes: int = 150
    #: Task whose scripted policy runs some collected episodes instead of the task's
    #: own (None: no distractor). The deployed policy then has to learn from the reward
    #: model which of the two behaviours to follow.
    distractor_task: str | None = "window-open"
    #: Probability that a scripted collected episode follows the distractor task.
    distractor_probability: float = 0.25
    #: Steps per second the robot collects at (0: as fast as it can).
    collect_rate_hz: float = 1000.0
    #: Evaluation episodes per deployed model set.
    eval_episodes: int = 20
    #: Control rate of the policy runner in Hz.
    runner_rate_hz: float = 200.0
    #: ε of the simulated operator's teacher.
    epsilon: float = 0.5
    #: Answers the operator gives per deployed model set; the node retrains after as
    #: many new answers.
    answers_per_cycle: int = 20
    #: Seconds the operator takes per answer.
    answer_delay_s: float = 0.0
    #: Segment length H in steps.
    segment_length: int = 50
    #: Queries per selection round (M).
    queries_per_round: int = 10
    #: Candidate pairs per query that CLARIFY's rejection sampling draws from.
    pool_factor: int = 10
    #: Seconds a query stays open. The operator leaves queries from before the newest
    #: deployment to expire, and they count against `max_open_queries` until then.
    query_lifetime_s: float = 60.0
    #: Open queries at which the node stops selecting new rounds.
    max_open_queries: int = 20
    #: Extra `clarify train` arguments; none trains with the `cpu` preset.
    train_args: tuple[str, ...] = ()
    #: Wall-clock limit of the whole run in seconds.
    timeout_s: float = 1800.0

    def validate(self) -> None:
        """Raise `InputError` naming the first setting out of range."""
        for name in (
            "cycles",
            "eval_episodes",
            "answers_per_cycle",
            "segment_length",
            "queries_per_round",
            "pool_factor",
            "max_open_queries",
        ):
            if getattr(self, name) < 1:
                raise InputError(f"invalid {name} {getattr(self, name)}: use 1 or more")
        if self.collect_episodes < 0:
            raise InputError(
                f"invalid collect_episodes {self.collect_episodes}: use 0 or more"
            )
        for name in ("runner_rate_hz", "query_lifetime_s", "timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"invalid {name} {value}: use a value > 0")
        if not 0.0 <= self.distractor_probability <= 1.0:
            raise InputError(
                f"invalid distractor_probability {self.distractor_probability}: use a "
                "probability in [0, 1]"
            )
        for name in ("collect_rate_hz", "epsilon", "answer_delay_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"invalid {name} {value}: use a value >= 0")


#: Named settings. `cpu` is sized to finish within 30 minutes on two cores. `paper`
#: uses `clarify train --preset paper`, 2,100 episodes (the size of the CLARIFY paper's
#: dial-turn data) and 500 answers per cycle in rounds of 50, the budget of
#: `clarify bench clarity`; it takes hours to days on two cores.
PRESETS: dict[str, DemoSettings] = {
    "cpu": DemoSettings(),
    "paper": DemoSettings(
        collect_episodes=2100,
        eval_episodes=50,
        answers_per_cycle=500,
        queries_per_round=50,
        train_args=("--preset", "paper"),
        timeout_s=7 * 24 * 3600.0,
    ),
}


@dataclass
class Layout:
    """Paths of one demo run, all inside the work folder."""

    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def events(self, name: str) -> Path:
        return self.logs / f"{name}.events.jsonl"


# Parameter file


def _yaml_value(value: Any) -> str:
    """Format a scalar or a list of scalars as YAML flow text (JSON is valid YAML)."""
    return json.dumps(value)


def _yaml_block(values: dict[str, Any], indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.extend(_yaml_block(value, indent + 2))
        else:
            lines.append(f"{pad}{key}: {_yaml_value(value)}")
    return lines


def parameter_file(settings: DemoSettings, layout: Layout) -> str:
    """Return the ROS 2 parameter YAML of the node and the runner for `settings`."""
    sections = {
        "clarify_node": node_parameters(settings, layout),
        "clarify_policy": runner_parameters(settings, layout),
    }
    lines = [
        "# Parameters of a clarify demo run, written by clarify_sim.demo.",
    ]
    for node, parameters in sections.items():
        lines.append(f"{node}:")
        lines.append("  ros__parameters:")
        lines.extend(_yaml_block(parameters, 4))
    return "\n".join(lines) + "\n"


#: ROS 2 names shared by the parameter file and the robot's and operator's options.
TOPICS = {
    "transitions": "clarify/transitions",
    "true_rewards": "demo/true_rewards",
    "queries": "clarify/preference_query",
    "submit_answer": "clarify/submit_answer",
    "model_update": "clarify/model_update",
    "training_status": "clarify/training_status",
    "observation": "demo/observation",
    "action": "demo/action",
    "evaluation": "demo/evaluation",
}


def node_parameters(settings: DemoSettings, layout: Layout) -> dict[str, Any]:
    """Return the parameters of `clarify node` for a demo run."""
    return {
        "store_path": str(layout.store),
        "models_dir": str(layout.models),
        "recorder": {
            "dataset_name": f"demo-{settings.task}",
            "transition": {
                "topic": TOPICS["transitions"],
                "observation_size": 39,
                "action_size": 4,
            },
        },
        "segment_length": settings.segment_length,
        "queries_per_round": settings.queries_per_round,
        "pool_factor": settings.pool_factor,
        "query_lifetime_secs": settings.query_lifetime_s,
        "max_open_queries": settings.max_open_queries,
        # The first round waits for the whole collection, so its random pairs come
        # from every behaviour of the mix, not only from the first episodes.
        "min_selection_episodes": settings.collect_episodes,
        "topics": {
            "queries": TOPICS["queries"],
            "submit_answer": TOPICS["submit_answer"],
            "model_update": TOPICS["model_update"],
            "training_status": TOPICS["training_status"],
        },
        "infer": {"execution_providers": ["cpu"], "intra_op_threads": 1},
        "retrain": {
            "train_args": list(settings.train_args),
            "retrain_after_answers": settings.answers_per_cycle,
        },
    }


def runner_parameters(settings: DemoSettings, layout: Layout) -> dict[str, Any]:
    """Return the parameters of `clarify policy run` for a demo run."""
    return {
        "models_dir": str(layout.models),
        "control_rate_hz": settings.runner_rate_hz,
        # The robot waits for each action, so an observation may be a few runner
        # periods old when the runner acts on it.
        "max_observation_age_s": 0.5,
        "observation_type": "float32_multi_array",
        "observation_topic": TOPICS["observation"],
        "action_topic": TOPICS["action"],
        "start_enabled": True,
        "model_update_topic": TOPICS["model_update"],
        "infer": {"execution_providers": ["cpu"], "intra_op_threads": 1},
    }


# Per-cycle table


@dataclass
class SelectorCount:
    """Answers of one selector: clear (left or right), can't tell, skipped."""

    clear: int = 0
    cant_tell: int = 0
    skipped: int = 0

    @property
    def asked(self) -> int:
        return self.clear + self.cant_tell + self.skipped

    @property
    def clarity(self) -> float:
        """Share of clear answers among answered (not skipped) queries; NaN for none."""
        answered = self.clear + self.cant_tell
        return self.clear / answered if answered else math.nan


@dataclass
class Cycle:
    """One retrain-and-redeploy cycle as the robot and the operator saw it."""

    index: int
    version: str
    answers_used: int
    reward_accuracy: float
    #: Queries answered while the previous set (or none) was deployed, by selector.
    selectors: dict[str, SelectorCount] = field(default_factory=dict)
    success_rate: float = math.nan
    eval_episodes: int = 0
    deployed_at: float = math.nan
    #: Reason the robot gave for skipping the evaluation, or empty.
    skip_reason: str = ""


def read_events(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines event file; a partly written last line is ignored."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def build_cycles(
    robot_events: list[dict[str, Any]], operator_events: list[dict[str, Any]]
) -> list[Cycle]:
    """Combine the robot's and the operator's events into cycles, in deployment order.

    A cycle is a model set the node deployed after training. Its queries are the ones
    the operator answered while the set before it (or none, for the first) was
    deployed, which is what its training could use.
    """
    cycles: list[Cycle] = []
    by_version: dict[str, Cycle] = {}
    for event in robot_events:
        if event["event"] == "model_update" and event["reason"] == 1:
            if event["version"] in by_version:
                continue
            cycle = Cycle(
                index=len(cycles) + 1,
                version=event["version"],
                answers_used=event["answers_used"],
                reward_accuracy=event["reward_accuracy"],
                deployed_at=event["time"],
            )
            cycles.append(cycle)
            by_version[cycle.version] = cycle
        elif event["event"] == "evaluation" and event["version"] in by_version:
            cycle = by_version[event["version"]]
            cycle.success_rate = event["success_rate"]
            cycle.eval_episodes = event["episodes"]
        elif event["event"] == "evaluation_skipped" and event["version"] in by_version:
            by_version[event["version"]].skip_reason = event["reason"]

    previous = {"": cycles[0] if cycles else None}
    for earlier, later in itertools.pairwise(cycles):
        previous[earlier.version] = later
    for event in operator_events:
        if event["event"] != "answer":
            continue
        cycle = previous.get(event["deployed_version"])
        if cycle is None:
            continue
        count = cycle.selectors.setdefault(event["selector"] or "?", SelectorCount())
        if event["answer"] in (1, 2):
            count.clear += 1
        elif event["answer"] == 3:
            count.cant_tell += 1
        else:
            count.skipped += 1
    return cycles


def runner_versions(log_text: str) -> set[str]:
    """Return the model set versions that the policy runner's log reports it ran.

    The runner logs ``policy runner started version="V"`` at start and ``switched to
    the new model set version=V`` after a swap.
    """
    versions = set()
    for line in log_text.splitlines():
        if "policy runner started" in line or "switched to the new model set" in line:
            match = re.search(r'\bversion="?([^"\s]+)"?', line)
            if match:
                versions.add(match.group(1))
    return versions


def format_table(cycles: Sequence[Cycle]) -> str:
    """Return the per-cycle table printed at the end of a run."""
    if not cycles:
        return "no model set was deployed"
    header = (
        f"{'cycle':>5}  {'version':<20} {'answers used':>12}  "
        f"{'queries asked before the deployment (clear share)':<52} "
        f"{'success rate':>14}"
    )
    lines = [header, "-" * len(header)]
    for cycle in cycles:
        parts = []
        for selector in sorted(cycle.selectors):
            count = cycle.selectors[selector]
            clarity = (
                "n/a" if math.isnan(count.clarity) else f"{count.clarity * 100:.1f} %"
            )
            skipped = f", {count.skipped} skipped" if count.skipped else ""
            parts.append(f"{selector} {count.asked} ({clarity}{skipped})")
        asked = "; ".join(parts) or "none"
        if cycle.eval_episodes:
            success = f"{cycle.success_rate * 100:.1f} % of {cycle.eval_episodes}"
        elif cycle.skip_reason:
            success = "skipped"
        else:
            success = "not evaluated"
        lines.append(
            f"{cycle.index:>5}  {cycle.version:<20} {cycle.answers_used:>12}  "
            f"{asked:<52} {success:>14}"
        )
    return "\n".join(lines)


def format_outcome(cycles: Sequence[Cycle]) -> list[str]:
    """Return the lines that compare the last evaluated cycle with the first, and the
    clear share of CLARIFY's queries with that of the random first round."""
    lines = []
    evaluated = [cycle for cycle in cycles if cycle.eval_episodes]
    if len(evaluated) >= 2:
        first, last = evaluated[0], evaluated[-1]
        verdict = "better" if last.success_rate > first.success_rate else "not better"
        lines.append(
            f"policy: cycle {last.index} succeeded in {last.success_rate * 100:.1f} % "
            f"of its episodes, cycle {first.index} in {first.success_rate * 100:.1f} % "
            f"({verdict})"
        )
    random_round = cycles[0].selectors.get("random") if cycles else None
    chosen = SelectorCount()
    for cycle in cycles:
        count = cycle.selectors.get("clarify")
        if count is not None:
            chosen.clear += count.clear
            chosen.cant_tell += count.cant_tell
    if random_round is not None and not (
        math.isnan(random_round.clarity) or math.isnan(chosen.clarity)
    ):
        verdict = "higher" if chosen.clarity > random_round.clarity else "not higher"
        lines.append(
            f"clarity: {chosen.clarity * 100:.1f} % of CLARIFY's answered queries were "
            f"clear, {random_round.clarity * 100:.1f} % of the random first round's "
            f"({verdict})"
        )
    return lines


def format_training_failures(
    operator_events: Sequence[dict[str, Any]], stopped_at: float
) -> list[str]:
    """Return a line per failed training run in the operator's events. A run that
    failed after the demo began stopping (`stopped_at`, wall-clock seconds) was
    stopped by it."""
    lines = []
    for event in operator_events:
        if event["event"] != "training_failed":
            continue
        if event["time"] >= stopped_at:
            lines.append(f"training run {event['run_id']} was stopped by the demo")
        else:
            lines.append(
                f"training run {event['run_id']} failed or its set was rejected: "
                f"{event['message']}"
            )
    return lines


# Processes


@dataclass
class Child:
    """A started process with its log file."""

    name: str
    process: subprocess.Popen
    log: Path
    log_file: TextIO


def tail(path: Path, lines: int = 40) -> str:
    """Return the last `lines` lines of a text file, or a note when it is missing."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _signal_group(process: subprocess.Popen, signal_number: int) -> None:
    """Send a signal to the process group that `process` leads, if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal_number)


class Demo:
    """One demo run in a work folder."""

    def __init__(
        self,
        settings: DemoSettings,
        root: Path,
        clarify: Path,
        python: Path,
        sim_dir: Path,
    ) -> None:
        settings.validate()
        self.settings = settings
        self.layout = Layout(root.resolve())
        self.clarify = clarify.resolve()
        self.python = python
        self.sim_dir = sim_dir.resolve()
        self.children: dict[str, Child] = {}
        #: Wall-clock time at which the demo began stopping its processes.
        self.stopped_at = math.inf

    def prepare(self) -> None:
        """Create a clean work folder and write the parameter file."""
        root = self.layout.root
        if root.exists() and any(root.iterdir()):
            if not (root / MARKER).exists():
                raise InputError(
                    f"work folder {root} is not empty and was not made by the demo: "
                    "choose another --dir or empty it"
                )
            shutil.rmtree(root)
        self.layout.logs.mkdir(parents=True)
        (root / MARKER).write_text("clarify demo work folder\n", encoding="utf-8")
        self.layout.params.write_text(
            parameter_file(self.settings, self.layout), encoding="utf-8"
        )
        settings_path = root / "settings.json"
        settings_path.write_text(
            json.dumps(asdict(self.settings), indent=2) + "\n", encoding="utf-8"
        )

    def start(self, name: str, command: list[str]) -> None:
        """Start one process with its output in logs/NAME.log."""
        log = self.layout.log(name)
        log_file = log.open("w", encoding="utf-8")
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(self.sim_dir), *filter(None, [environment.get("PYTHONPATH")])]
        )
        # rustdds logs every discovery change at info level.
        environment.setdefault("RUST_LOG", "info,rustdds=error")
        logger.info("starting %s: %s", name, " ".join(command))
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.layout.root,
            env=environment,
            # A process group of its own, so that stopping it also stops its children,
            # such as the node's training process.
            start_new_session=True,
        )
        self.children[name] = Child(name, process, log, log_file)

    def start_node(self) -> None:
        self.start(
            "node", [str(self.clarify), "node", "--params", str(self.layout.params)]
        )

    def start_runner(self) -> None:
        self.start(
            "runner",
            [str(self.clarify), "policy", "run", "--params", str(self.layout.params)],
        )

    def start_robot(self) -> None:
        settings = self.settings
        schedule_args = []
        if settings.collect_episodes > 0:
            schedule_args = ["--schedule-episodes", str(settings.collect_episodes)]
        if settings.distractor_task is not None:
            schedule_args += [
                "--distractor-task",
                settings.distractor_task,
                "--distractor-probability",
                str(settings.distractor_probability),
            ]
        self.start(
            "robot",
            [
                str(self.python),
                "-m",
                "clarify_sim",
                "robot",
                "--task",
                settings.task,
                *schedule_args,
                "--max-episodes",
                str(settings.collect_episodes),
                "--collect-rate",
                str(settings.collect_rate_hz),
                "--eval-episodes",
                str(settings.eval_episodes),
                "--transitions-topic",
                TOPICS["transitions"],
                "--true-rewards-topic",
                TOPICS["true_rewards"],
                "--model-update-topic",
                TOPICS["model_update"],
                "--observation-topic",
                TOPICS["observation"],
                "--action-topic",
                TOPICS["action"],
                "--evaluation-topic",
                TOPICS["evaluation"],
                "--events",
                str(self.layout.events("robot")),
            ],
        )

    def start_operator(self) -> None:
        settings = self.settings
        self.start(
            "operator",
            [
                str(self.python),
                "-m",
                "clarify_sim",
                "operator",
                "--epsilon",
                str(settings.epsilon),
                "--answer-delay",
                str(settings.answer_delay_s),
                "--answers-per-model",
                str(settings.answers_per_cycle),
                "--min-episodes",
                str(settings.collect_episodes),
                "--query-topic",
                TOPICS["queries"],
                "--submit-answer-service",
                TOPICS["submit_answer"],
                "--true-rewards-topic",
                TOPICS["true_rewards"],
                "--model-update-topic",
                TOPICS["model_update"],
                "--training-status-topic",
                TOPICS["training_status"],
                "--events",
                str(self.layout.events("operator")),
            ],
        )

    def failed_child(self) -> Child | None:
        """Return a process that exited, if any."""
        for child in self.children.values():
            if child.process.poll() is not None:
                return child
        return None

    def stop_all(self) -> None:
        """Stop every process: SIGTERM, then SIGKILL after `STOP_TIMEOUT_S`."""
        self.stopped_at = min(self.stopped_at, time.time())
        names = [n for n in STOP_ORDER if n in self.children]
        for name in names:
            _signal_group(self.children[name].process, signal.SIGTERM)
        for name in names:
            child = self.children[name]
            try:
                child.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s did not stop in %.0f s; killing it", name, STOP_TIMEOUT_S
                )
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
            # Children of the process, such as a training run, may outlive it.
            _signal_group(child.process, signal.SIGKILL)
            child.log_file.close()

    def cycles(self) -> list[Cycle]:
        return build_cycles(
            read_events(self.layout.events("robot")),
            read_events(self.layout.events("operator")),
        )

    def run(self) -> int:
        """Run the demo; return the exit status (0 when every cycle was evaluated)."""
        settings = self.settings
        started = time.monotonic()
        self.prepare()
        print(f"demo work folder: {self.layout.root}", flush=True)
        self.start_node()
        self.start_robot()
        self.start_operator()
        reported = 0
        status = 1
        failure = ""
        failed: Child | None = None
        try:
            while True:
                time.sleep(1.0)
                failed = self.failed_child()
                if failed is not None:
                    failure = (
                        f"{failed.name} exited with status {failed.process.returncode}"
                    )
                    break
                current = self.layout.models / "current"
                if "runner" not in self.children and current.exists():
                    self.start_runner()
                evaluated = [c for c in self.cycles() if c.eval_episodes]
                for cycle in evaluated[reported:]:
                    print(
                        f"cycle {cycle.index}: model set {cycle.version} trained on "
                        f"{cycle.answers_used} answers, success rate "
                        f"{cycle.success_rate * 100:.1f} % over {cycle.eval_episodes} "
                        f"episodes ({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )
                reported = len(evaluated)
                if reported >= settings.cycles:
                    status = 0
                    break
                if time.monotonic() - started > settings.timeout_s:
                    failure = (
                        f"timed out after {settings.timeout_s:.0f} s with "
                        f"{reported} of {settings.cycles} cycles evaluated"
                    )
                    break
        except KeyboardInterrupt:
            failure = "interrupted"
        finally:
            self.stop_all()
        self.report(time.monotonic() - started, status, failure, failed)
        return status

    def report(
        self, elapsed: float, status: int, failure: str, failed: Child | None
    ) -> None:
        """Print the per-cycle table, then on failure the error and the log tails."""
        print()
        cycles = self.cycles()
        print(format_table(cycles))
        for line in format_outcome(cycles):
            print(line)
        for cycle in cycles:
            if cycle.skip_reason:
                print(
                    f"cycle {cycle.index}: evaluation of {cycle.version} skipped: "
                    f"{cycle.skip_reason}"
                )
        runner_log = self.layout.log("runner")
        ran: set[str] = set()
        if runner_log.exists():
            ran = runner_versions(runner_log.read_text("utf-8", "replace"))
        for cycle in cycles:
            if cycle.eval_episodes and cycle.version not in ran:
                print(
                    f"warning: {runner_log} does not show the runner running "
                    f"{cycle.version}, so its evaluation may have used an older set"
                )
        operator = read_events(self.layout.events("operator"))
        for line in format_training_failures(operator, self.stopped_at):
            print(line)
        print(f"\nwall time: {elapsed:.0f} s; logs in {self.layout.logs}")
        if status == 0:
            return
        print(f"\nerror: {failure}", file=sys.stderr)
        names = [failed.name] if failed is not None else list(self.children)
        for name in names:
            print(f"\n--- last lines of {self.layout.log(name)} ---", file=sys.stderr)
            print(tail(self.layout.log(name)), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the demo command."""
    defaults = PRESETS["cpu"]
    parser = argparse.ArgumentParser(
        prog=".ci/demo",
        description=(
            "Run the closed-loop demo: the Meta-World robot, clarify node, the policy "
            "runner and a simulated operator, talking over ROS 2 topics on loopback, "
            "until the given number of retrain-and-redeploy cycles were evaluated. "
            "Prints one row per cycle: answers used, the clear share of the asked "
            "queries per selector, and the deployed policy's success rate."
        ),
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("demo-run"),
        help="work folder for the store, the model sets and the logs; a previous "
        "demo run there is deleted (demo-run)",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="cpu",
        help="cpu: sized to finish within 30 minutes on two cores; paper: the paper "
        "training preset, 2,100 episodes and 500 answers per cycle, hours to days "
        "on a CPU (cpu)",
    )
    parser.add_argument(
        "--clarify",
        type=Path,
        default=Path("target/release/clarify"),
        help="the clarify binary (target/release/clarify)",
    )
    parser.add_argument("--task", help=f"Meta-World v3 task ({defaults.task})")
    parser.add_argument(
        "--cycles", type=int, help=f"cycles to evaluate ({defaults.cycles})"
    )
    parser.add_argument(
        "--collect-episodes",
        type=int,
        help="episodes the robot collects, 0 for no limit "
        f"({defaults.collect_episodes})",
    )
    parser.add_argument(
        "--distractor-task",
        help="task whose scripted policy runs some collected episodes instead of the "
        f"task's own, or none ({defaults.distractor_task})",
    )
    parser.add_argument(
        "--distractor-probability",
        type=float,
        help="probability that a scripted collected episode follows the distractor "
        f"task ({defaults.distractor_probability})",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        help=f"evaluation episodes per model set ({defaults.eval_episodes})",
    )
    parser.add_argument(
        "--answers-per-cycle",
        type=int,
        help=f"answers per model set ({defaults.answers_per_cycle})",
    )
    parser.add_argument(
        "--queries-per-round",
        type=int,
        help=f"queries per selection round ({defaults.queries_per_round})",
    )
    parser.add_argument(
        "--epsilon", type=float, help=f"operator's epsilon ({defaults.epsilon})"
    )
    parser.add_argument(
        "--train-args",
        help="extra clarify train arguments in one string, replacing the preset's "
        f"({' '.join(defaults.train_args) or 'none: the cpu preset'})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help=f"wall-clock limit in seconds ({defaults.timeout_s:.0f} for cpu)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """Return the preset's settings with the options given on the command line."""
    settings = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    for option, name in (
        ("task", "task"),
        ("cycles", "cycles"),
        ("collect_episodes", "collect_episodes"),
        ("distractor_probability", "distractor_probability"),
        ("eval_episodes", "eval_episodes"),
        ("answers_per_cycle", "answers_per_cycle"),
        ("queries_per_round", "queries_per_round"),
        ("epsilon", "epsilon"),
        ("timeout", "timeout_s"),
    ):
        value = getattr(args, option)
        if value is not None:
            changes[name] = value
    if args.distractor_task is not None:
        none = args.distractor_task.lower() == "none"
        changes["distractor_task"] = None if none else args.distractor_task
    if args.train_args is not None:
        changes["train_args"] = tuple(args.train_args.split())
    settings = replace(settings, **changes)
    settings.validate()
    return settings


def _interrupt(signal_number: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal_number}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo command line; return the exit status."""
    args = build_parser().parse_args(argv)
    # SIGTERM stops the processes cleanly, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = settings_from_args(args)
        if not args.clarify.is_file():
            raise InputError(
                f"clarify binary {args.clarify} not found: build it with "
                "cargo build --release, or pass --clarify"
            )
        sim_dir = Path(__file__).resolve().parents[1]
        demo = Demo(settings, args.dir, args.clarify, Path(sys.executable), sim_dir)
        return demo.run()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

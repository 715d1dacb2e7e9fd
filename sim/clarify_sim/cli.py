"""The `clarify-sim` command: generate, fingerprint, evaluate, render, and the demo's
robot and operator.

Invalid input (a bad task name, file, setting or model) prints one line starting with
"error:" and exits with status 2. A file that cannot be read or written for another
reason, such as a missing permission, exits with status 1. Progress goes to the log on
standard error, and results go to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from clarify_sim import __version__
from clarify_sim.dataset import load_dataset
from clarify_sim.errors import InputError
from clarify_sim.evaluate import evaluate_policy
from clarify_sim.fingerprint import compute_fingerprint, format_fingerprint
from clarify_sim.generate import BehaviourSchedule, GeneratorConfig, write_dataset
from clarify_sim.lifecycle import EventLog, StopFlag
from clarify_sim.render import (
    DEFAULT_CAMERA,
    DEFAULT_FPS,
    DEFAULT_HEIGHT,
    DEFAULT_QUALITY,
    DEFAULT_WIDTH,
    render_segment,
)

logger = logging.getLogger("clarify_sim")

DESCRIPTION = """\
Simulated robot for clarify: generate offline Meta-World datasets of mixed quality,
compute their fingerprint, evaluate ONNX policies in the simulator, render stored
segments to animated WebP clips, and run the robot and the simulated operator of the
closed-loop demo over ROS 2 topics (DDS)."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in its help, unless the default is None or False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # `0 in (None, False)` is true in Python, so compare by identity.
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="clarify-sim",
        description=DESCRIPTION,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="minimum level of the log messages printed on standard error",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(commands, BehaviourSchedule())
    _add_fingerprint(commands)
    _add_evaluate(commands)
    _add_render(commands)
    _add_robot(commands)
    _add_operator(commands)
    return parser


def _add_generate(commands, schedule: BehaviourSchedule) -> None:
    parser = commands.add_parser(
        "generate",
        help="generate a dataset with a scripted policy",
        description=(
            "Generate an offline dataset of a Meta-World v3 task: the scripted policy "
            "under a schedule of Gaussian action noise, per-step random actions and "
            "fully random episodes. Writes DATASET.npz and the sidecar DATASET.json "
            "and prints the fingerprint."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--task", required=True, help="Meta-World v3 task name, such as dial-turn"
    )
    parser.add_argument("--episodes", type=int, default=300, help="number of episodes")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="dataset seed; episode i draws from numpy.random.default_rng([seed, i])",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="dataset file to write, ending in .npz (default: data/TASK.npz); the "
        "sidecar gets the same name ending in .json",
    )
    parser.add_argument(
        "--episode-steps",
        type=int,
        default=500,
        help="steps per episode, where the time limit cuts it",
    )
    parser.add_argument(
        "--log-every",
        type=int,
        default=25,
        help="log progress every this many episodes (0: never)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of text"
    )

    group = parser.add_argument_group(
        "behaviour schedule",
        "The episode list is split into RUNS equal pretend training runs; within a "
        "run the progress u goes from 0 to 1, and the settings below change linearly "
        "with u.",
    )
    group.add_argument(
        "--runs", type=int, default=schedule.runs, help="number of pretend runs"
    )
    group.add_argument(
        "--random-episode-start",
        type=float,
        default=schedule.random_episode_start,
        help="probability of a fully random episode at u = 0",
    )
    group.add_argument(
        "--random-episode-until",
        type=float,
        default=schedule.random_episode_until,
        help="progress u at which the probability of a random episode reaches 0",
    )
    group.add_argument(
        "--noise-std-start",
        type=float,
        default=schedule.noise_std_start,
        help="standard deviation of the Gaussian action noise at u = 0, in action "
        "units (actions lie in [-1, 1])",
    )
    group.add_argument(
        "--noise-std-end",
        type=float,
        default=schedule.noise_std_end,
        help="standard deviation of the Gaussian action noise at u = 1, in action "
        "units",
    )
    group.add_argument(
        "--random-step-start",
        type=float,
        default=schedule.random_step_start,
        help="per-step probability of a uniform random action at u = 0",
    )
    group.add_argument(
        "--random-step-end",
        type=float,
        default=schedule.random_step_end,
        help="per-step probability of a uniform random action at u = 1",
    )
    _add_distractor_arguments(group, schedule)
    parser.set_defaults(handler=_run_generate)


def _add_distractor_arguments(parser, schedule: BehaviourSchedule) -> None:
    parser.add_argument(
        "--distractor-task",
        default=schedule.distractor_task,
        help="Meta-World task whose scripted policy runs some scripted episodes "
        "instead of the task's own, a purposeful but wrong behaviour (default: none)",
    )
    parser.add_argument(
        "--distractor-probability",
        type=float,
        default=schedule.distractor_probability,
        help="probability that a scripted episode follows the distractor task's policy",
    )


def _add_fingerprint(commands) -> None:
    parser = commands.add_parser(
        "fingerprint",
        help="compute a dataset's fingerprint",
        description=(
            "Compute the fingerprint of a dataset: sizes, success rates, mean step "
            "reward, episode return statistics and the share of random segment pairs "
            "that the ε-skip teacher answers clearly, for ε = 0.5 and 0.7."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("dataset", type=Path, help="dataset .npz file")
    parser.add_argument(
        "--segment-length", type=int, default=50, help="segment length H in steps"
    )
    parser.add_argument(
        "--pairs", type=int, default=2000, help="number of random segment pairs"
    )
    parser.add_argument(
        "--pair-seed", type=int, default=0, help="seed of the SplitMix64 pair generator"
    )
    parser.add_argument(
        "--pairs-out",
        type=Path,
        help="also write every sampled pair with its returns and answers to this "
        "file, one JSON object per line",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the fingerprint as JSON"
    )
    parser.set_defaults(handler=_run_fingerprint)


def _add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="evaluate an ONNX policy in the simulator",
        description=(
            "Run an ONNX policy for a number of episodes and report its success rate "
            "and return. Episode i resets the task with seed SEED + i, so runs are "
            "repeatable."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "model",
        type=Path,
        help="policy .onnx file, or a model set folder (manifest format version 2)",
    )
    parser.add_argument(
        "--task", required=True, help="Meta-World v3 task name, such as dial-turn"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        help="policy manifest JSON (default: manifest.json in the model's folder)",
    )
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes")
    parser.add_argument(
        "--seed", type=int, default=0, help="base seed; episode i uses SEED + i"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads for inference",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=500,
        help="steps per episode, where the time limit cuts it",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_run_evaluate)


def _add_render(commands) -> None:
    parser = commands.add_parser(
        "render",
        help="render a stored segment to an animated WebP",
        description=(
            "Render steps of one dataset episode from their stored simulator state "
            "to an animated WebP clip, headless. Each frame shows the state before "
            "the step's action."
        ),
        formatter_class=_HelpFormatter,
    )

    parser.add_argument(
        "dataset", type=Path, help="dataset .npz file with state fields"
    )
    parser.add_argument(
        "--episode", type=int, required=True, help="episode index, 0-based"
    )
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help="first step to render, counted within the episode from 0",
    )
    parser.add_argument(
        "--length", type=int, default=50, help="number of steps to render"
    )
    parser.add_argument(
        "--task",
        help="task the dataset was generated with (default: the task in the "
        "dataset's JSON sidecar)",
    )

    parser.add_argument("--out", type=Path, required=True, help="WebP file to write")
    parser.add_argument(
        "--camera",
        default=DEFAULT_CAMERA,
        help="camera name: topview, corner, corner2, corner3, corner4, "
        "behindGripper, gripperPOV, or free for MuJoCo's default view",
    )
    parser.add_argument(
        "--width", type=int, default=DEFAULT_WIDTH, help="frame width in pixels"
    )
    parser.add_argument(
        "--height", type=int, default=DEFAULT_HEIGHT, help="frame height in pixels"
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=DEFAULT_FPS,
        help="playback rate in frames per second (80 is real time)",
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=DEFAULT_QUALITY,
        help="WebP quality, 0 (smallest) to 100 (best)",
    )

    parser.set_defaults(handler=_run_render)


def _add_robot(commands) -> None:
    from clarify_sim.robot import RobotConfig, RobotTopics

    config = RobotConfig()
    topics = RobotTopics()
    parser = commands.add_parser(
        "robot",
        help="run the Meta-World robot of the demo over ROS 2 topics",
        description=(
            "Collect episodes with the dataset generator's behaviour mix and publish "
            "each step as clarify_msgs/Transition without its reward, and with its "
            "true reward on a second topic. After each clarify_msgs/ModelUpdate, run "
            "evaluation episodes driven by the policy runner and report the success "
            "rate. Runs until SIGTERM or SIGINT."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--task", default=config.task, help="Meta-World v3 task name")
    parser.add_argument(
        "--seed",
        type=int,
        default=config.seed,
        help="seed of the collected episodes; episode i draws from "
        "numpy.random.default_rng([seed, i])",
    )
    parser.add_argument(
        "--episode-steps",
        type=int,
        default=config.episode_steps,
        help="steps per collected episode, where the time limit cuts it",
    )
    parser.add_argument(
        "--schedule-episodes",
        type=int,
        default=config.schedule_episodes,
        help="episodes of one pass through the generator's behaviour schedule",
    )
    _add_distractor_arguments(parser, config.schedule)
    parser.add_argument(
        "--collect-rate",
        type=float,
        default=config.collect_rate_hz,
        help="collected steps per second (0: as fast as the loop runs)",
    )
    parser.add_argument(
        "--max-episodes",
        type=int,
        default=config.max_episodes,
        help="stop collecting after this many episodes and only evaluate (0: never)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=config.eval_episodes,
        help="evaluation episodes per model set",
    )
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=config.eval_seed,
        help="evaluation episode i resets the task with seed EVAL_SEED + i",
    )
    parser.add_argument(
        "--eval-max-steps",
        type=int,
        default=config.eval_max_steps,
        help="step limit of an evaluation episode; an episode also ends at its "
        "first success",
    )
    parser.add_argument(
        "--action-timeout",
        type=float,
        default=config.action_timeout_s,
        help="seconds to wait for the runner's action before sending the "
        "observation again",
    )
    parser.add_argument(
        "--runner-start-timeout",
        type=float,
        default=config.runner_start_timeout_s,
        help="seconds to wait for the runner's first action of an evaluation",
    )
    parser.add_argument(
        "--swap-timeout",
        type=float,
        default=config.swap_timeout_s,
        help="seconds to wait after a model update for the runner's diagnostics to "
        "report the new set, after which the evaluation is skipped",
    )
    parser.add_argument(
        "--skip-actions",
        type=int,
        default=config.skip_actions,
        help="runner actions to let pass after each observation before one is "
        "applied, because the first may answer the previous observation",
    )
    _add_common_ros_arguments(parser)
    group = parser.add_argument_group("topics")
    group.add_argument(
        "--transitions-topic",
        default=topics.transitions,
        help="clarify_msgs/Transition topic without rewards, for the recorder",
    )
    group.add_argument(
        "--true-rewards-topic",
        default=topics.true_rewards,
        help="clarify_msgs/Transition topic with the true rewards, for the operator",
    )
    group.add_argument(
        "--model-update-topic",
        default=topics.model_update,
        help="clarify_msgs/ModelUpdate topic",
    )
    group.add_argument(
        "--observation-topic",
        default=topics.observation,
        help="std_msgs/Float32MultiArray observation topic of the policy runner",
    )
    group.add_argument(
        "--action-topic",
        default=topics.action,
        help="std_msgs/Float32MultiArray action topic of the policy runner",
    )
    group.add_argument(
        "--evaluation-topic",
        default=topics.evaluation,
        help="std_msgs/String topic of the JSON evaluation reports",
    )
    group.add_argument(
        "--diagnostics-topic",
        default=topics.diagnostics,
        help="diagnostic_msgs/DiagnosticArray topic of the policy runner",
    )
    parser.set_defaults(handler=_run_robot)


def _add_operator(commands) -> None:
    from clarify_sim.operator import OperatorConfig, OperatorTopics
    from clarify_sim.ros import SERVICE_MAPPINGS

    config = OperatorConfig()
    topics = OperatorTopics()
    parser = commands.add_parser(
        "operator",
        help="run the simulated operator of the demo over ROS 2 topics",
        description=(
            "Answer each clarify_msgs/PreferenceQuery with the epsilon-skip teacher "
            "through the SubmitAnswer service. Segment returns come from the robot's "
            "true-reward topic; segments are found by their observation rows. Runs "
            "until SIGTERM or SIGINT."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--epsilon",
        type=float,
        default=config.epsilon,
        help="epsilon of the teacher: it cannot tell segments apart when their "
        "returns differ by at most epsilon * H * (mean step reward so far)",
    )
    parser.add_argument(
        "--match-timeout",
        type=float,
        default=config.match_timeout_s,
        help="seconds to wait for a query's segments among the robot's steps "
        "before skipping the query",
    )
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=config.answer_delay_s,
        help="seconds the operator takes per answer",
    )
    parser.add_argument(
        "--min-episodes",
        type=int,
        default=config.min_episodes,
        help="finished robot episodes to see before the first answer",
    )
    parser.add_argument(
        "--answers-per-model",
        type=int,
        default=config.answers_per_model,
        help="accepted answers per deployed model set, after which the operator "
        "waits for the next clarify_msgs/ModelUpdate (0: no limit)",
    )
    parser.add_argument(
        "--service-timeout",
        type=float,
        default=config.service_timeout_s,
        help="seconds to wait for a SubmitAnswer response",
    )
    parser.add_argument(
        "--service-mapping",
        default=config.service_mapping,
        choices=SERVICE_MAPPINGS,
        help="how the node maps services onto DDS topics (ros2-client's Enhanced "
        "or Cyclone mapping)",
    )
    parser.add_argument(
        "--operator-id", default=config.operator_id, help="name stored with answers"
    )
    _add_common_ros_arguments(parser)
    group = parser.add_argument_group("topics")
    group.add_argument(
        "--query-topic",
        default=topics.query,
        help="clarify_msgs/PreferenceQuery topic",
    )
    group.add_argument(
        "--submit-answer-service",
        default=topics.submit_answer,
        help="clarify_msgs/SubmitAnswer service",
    )
    group.add_argument(
        "--true-rewards-topic",
        default=topics.true_rewards,
        help="clarify_msgs/Transition topic with the true rewards",
    )
    group.add_argument(
        "--model-update-topic",
        default=topics.model_update,
        help="clarify_msgs/ModelUpdate topic",
    )
    group.add_argument(
        "--training-status-topic",
        default=topics.training_status,
        help="clarify_msgs/TrainingStatus topic",
    )
    parser.set_defaults(handler=_run_operator)


def _add_common_ros_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain-id", type=int, default=0, help="DDS domain id")
    parser.add_argument(
        "--events",
        type=Path,
        help="append one JSON object per event (episode, answer, evaluation) to "
        "this file",
    )


def _run_generate(args: argparse.Namespace) -> None:
    schedule = BehaviourSchedule(
        runs=args.runs,
        random_episode_start=args.random_episode_start,
        random_episode_until=args.random_episode_until,
        noise_std_start=args.noise_std_start,
        noise_std_end=args.noise_std_end,
        random_step_start=args.random_step_start,
        random_step_end=args.random_step_end,
        distractor_task=args.distractor_task,
        distractor_probability=args.distractor_probability,
    )
    config = GeneratorConfig(
        task=args.task,
        episodes=args.episodes,
        seed=args.seed,
        episode_steps=args.episode_steps,
        schedule=schedule,
    )
    config.validate()
    out = args.out if args.out is not None else Path("data") / f"{args.task}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.log_every < 0:
        raise InputError(f"invalid --log-every {args.log_every}: use 0 or more")

    result = write_dataset(config, out, log_every=args.log_every)
    if args.json:
        _print_json(
            {
                "dataset": str(result.path.resolve()),
                "sidecar": str(result.sidecar_path.resolve()),
                "seconds": result.seconds,
                "fingerprint": result.fingerprint,
            }
        )
        return
    print(f"dataset   {result.path.resolve()}")
    print(f"sidecar   {result.sidecar_path.resolve()}")
    print(f"generated in {result.seconds:.1f} s")
    if result.fingerprint is None:
        print("no fingerprint: the episodes give fewer than 2 segments of 50 steps")
    else:
        print(format_fingerprint(result.fingerprint))


def _run_fingerprint(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset)
    fingerprint = compute_fingerprint(
        dataset,
        segment_length=args.segment_length,
        pairs=args.pairs,
        pair_seed=args.pair_seed,
        pairs_out=args.pairs_out,
    )
    if args.json:
        _print_json(fingerprint)
    else:
        print(f"dataset   {args.dataset.resolve()}")
        print(format_fingerprint(fingerprint))


def _run_evaluate(args: argparse.Namespace) -> None:
    result = evaluate_policy(
        args.model,
        args.task,
        episodes=args.episodes,
        seed=args.seed,
        manifest_path=args.manifest,
        intra_op_threads=args.threads,
        max_episode_steps=args.max_steps,
    )
    if args.json:
        _print_json(result.to_json())
        return
    print(f"model     {result.model}")
    print(f"task      {result.task}")
    print(
        f"episodes  {result.episodes} (seeds {result.seeds[0]} to {result.seeds[-1]})"
    )
    print(
        f"success   {result.success_rate_any:.1%} at any step, "
        f"{result.success_rate_final:.1%} at the last step"
    )
    print(f"return    {result.return_mean:.1f} ± {result.return_std:.1f}")
    print(f"time      {result.seconds:.1f} s")


def _run_render(args: argparse.Namespace) -> None:
    path = render_segment(
        args.dataset,
        episode=args.episode,
        start=args.start,
        length=args.length,
        out_path=args.out,
        task=args.task,
        camera=args.camera,
        width=args.width,
        height=args.height,
        fps=args.fps,
        quality=args.quality,
    )
    print(path.resolve())


def _run_robot(args: argparse.Namespace) -> None:
    from clarify_sim.robot import Robot, RobotConfig, RobotTopics

    config = RobotConfig(
        task=args.task,
        seed=args.seed,
        episode_steps=args.episode_steps,
        schedule_episodes=args.schedule_episodes,
        schedule=BehaviourSchedule(
            distractor_task=args.distractor_task,
            distractor_probability=args.distractor_probability,
        ),
        collect_rate_hz=args.collect_rate,
        eval_episodes=args.eval_episodes,
        eval_seed=args.eval_seed,
        eval_max_steps=args.eval_max_steps,
        action_timeout_s=args.action_timeout,
        runner_start_timeout_s=args.runner_start_timeout,
        swap_timeout_s=args.swap_timeout,
        skip_actions=args.skip_actions,
        max_episodes=args.max_episodes,
        domain_id=args.domain_id,
        topics=RobotTopics(
            transitions=args.transitions_topic,
            true_rewards=args.true_rewards_topic,
            model_update=args.model_update_topic,
            observation=args.observation_topic,
            action=args.action_topic,
            evaluation=args.evaluation_topic,
            diagnostics=args.diagnostics_topic,
        ),
    )
    config.validate()
    stop = StopFlag()
    stop.install()
    with _open_events(args.events) as stream:
        Robot(config, EventLog(stream), stop).run()


def _run_operator(args: argparse.Namespace) -> None:
    from clarify_sim.operator import Operator, OperatorConfig, OperatorTopics

    config = OperatorConfig(
        epsilon=args.epsilon,
        match_timeout_s=args.match_timeout,
        answer_delay_s=args.answer_delay,
        answers_per_model=args.answers_per_model,
        min_episodes=args.min_episodes,
        service_timeout_s=args.service_timeout,
        service_mapping=args.service_mapping,
        operator_id=args.operator_id,
        domain_id=args.domain_id,
        topics=OperatorTopics(
            query=args.query_topic,
            submit_answer=args.submit_answer_service,
            true_rewards=args.true_rewards_topic,
            model_update=args.model_update_topic,
            training_status=args.training_status_topic,
        ),
    )
    config.validate()
    stop = StopFlag()
    stop.install()
    with _open_events(args.events) as stream:
        Operator(config, EventLog(stream), stop).run()


def _open_events(path: Path | None) -> contextlib.AbstractContextManager:
    if path is None:
        return contextlib.nullcontext(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.handler(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # A file that cannot be read or written: a missing permission, a full disk.
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0

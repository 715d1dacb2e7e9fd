"""Tests of the demo orchestrator's bookkeeping: cycles, table and parameter file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clarify_sim.demo import (
    PRESETS,
    Cycle,
    DemoSettings,
    Layout,
    SelectorCount,
    build_cycles,
    build_parser,
    format_outcome,
    format_table,
    format_training_failures,
    parameter_file,
    read_events,
    runner_versions,
    settings_from_args,
)
from clarify_sim.errors import InputError


def update(version: str, answers: int, time: float, reason: int = 1) -> dict:
    return {
        "event": "model_update",
        "time": time,
        "version": version,
        "previous_version": "",
        "reason": reason,
        "answers_used": answers,
        "reward_accuracy": 0.8,
    }


def answer(deployed: str, selector: str, value: int) -> dict:
    return {
        "event": "answer",
        "time": 0.0,
        "query_id": 1,
        "selector": selector,
        "deployed_version": deployed,
        "answer": value,
        "accepted": True,
    }


def test_cycles_group_answers_by_deployed_version():
    robot = [
        update("v1", 50, 10.0),
        {"event": "evaluation", "version": "v1", "success_rate": 0.2, "episodes": 10},
        update("v1", 50, 11.0),
        update("v0", 0, 12.0, reason=3),
        update("v2", 100, 20.0),
        {"event": "evaluation", "version": "v2", "success_rate": 0.5, "episodes": 10},
    ]
    operator = [
        answer("", "random", 1),
        answer("", "random", 3),
        answer("", "random", 2),
        answer("", "random", 4),
        answer("v1", "clarify", 1),
        answer("v1", "clarify", 2),
        answer("v1", "random", 3),
        answer("v2", "clarify", 1),
    ]
    cycles = build_cycles(robot, operator)
    assert [c.version for c in cycles] == ["v1", "v2"]
    first, second = cycles
    assert first.answers_used == 50
    assert first.success_rate == 0.2
    assert set(first.selectors) == {"random"}
    assert first.selectors["random"].clear == 2
    assert first.selectors["random"].cant_tell == 1
    assert first.selectors["random"].skipped == 1
    assert first.selectors["random"].clarity == pytest.approx(2 / 3)
    assert second.selectors["clarify"].clear == 2
    assert second.selectors["random"].clarity == 0.0
    assert second.success_rate == 0.5


def evaluated_cycle(index: int, success: float, **selectors: SelectorCount) -> Cycle:
    return Cycle(
        index=index,
        version=f"v{index}",
        answers_used=20 * index,
        reward_accuracy=1.0,
        selectors=dict(selectors),
        success_rate=success,
        eval_episodes=20,
    )


def test_outcome_compares_last_cycle_with_first():
    cycles = [
        evaluated_cycle(1, 0.5, random=SelectorCount(clear=6, cant_tell=4)),
        evaluated_cycle(2, 0.4, clarify=SelectorCount(clear=7, cant_tell=1)),
        evaluated_cycle(3, 0.9, clarify=SelectorCount(clear=8, cant_tell=2, skipped=5)),
    ]
    policy, clarity = format_outcome(cycles)
    assert policy == (
        "policy: cycle 3 succeeded in 90.0 % of its episodes, cycle 1 in 50.0 % "
        "(better)"
    )
    # CLARIFY's answered queries are pooled over cycles 2 and 3: 15 clear of 18.
    assert clarity == (
        "clarity: 83.3 % of CLARIFY's answered queries were clear, 60.0 % of the "
        "random first round's (higher)"
    )
    policy, clarity = format_outcome(cycles[:2])
    assert policy.endswith("cycle 1 in 50.0 % (not better)")
    assert clarity.endswith("(higher)")


def test_outcome_without_gain_or_cycles():
    only = evaluated_cycle(1, 0.5, random=SelectorCount(clear=1))
    assert format_outcome([]) == []
    assert format_outcome([only]) == []
    same = [only, evaluated_cycle(2, 0.5, clarify=SelectorCount(clear=1))]
    assert format_outcome(same) == [
        "policy: cycle 2 succeeded in 50.0 % of its episodes, cycle 1 in 50.0 % "
        "(not better)",
        "clarity: 100.0 % of CLARIFY's answered queries were clear, 100.0 % of the "
        "random first round's (not higher)",
    ]


def test_failures_after_stop_not_errors():
    def failed(run_id: int, time: float) -> dict:
        return {
            "event": "training_failed",
            "time": time,
            "run_id": run_id,
            "message": "clarify train failed (signal: 15 (SIGTERM))",
        }

    events = [failed(1, 10.0), answer("", "random", 1), failed(2, 20.0)]
    assert format_training_failures(events, stopped_at=15.0) == [
        "training run 1 failed or its set was rejected: "
        "clarify train failed (signal: 15 (SIGTERM))",
        "training run 2 was stopped by the demo",
    ]
    assert len(format_training_failures(events, math.inf)) == 2
    assert all(
        "rejected" in line for line in format_training_failures(events, math.inf)
    )


def test_unevaluated_cycle_has_no_success_rate():
    cycles = build_cycles([update("v1", 50, 1.0)], [])
    assert len(cycles) == 1
    assert math.isnan(cycles[0].success_rate)
    assert cycles[0].eval_episodes == 0
    assert "not evaluated" in format_table(cycles)


def test_skipped_evaluation_keeps_its_reason():
    skipped = {
        "event": "evaluation_skipped",
        "version": "v1",
        "reason": "the runner reported v0 for 120 s",
    }
    cycles = build_cycles([update("v1", 50, 1.0), skipped], [])

    assert cycles[0].skip_reason == "the runner reported v0 for 120 s"
    assert cycles[0].eval_episodes == 0
    assert "skipped" in format_table(cycles)


def test_table_lists_selectors_and_success():
    robot = [
        update("v1", 50, 1.0),
        {"event": "evaluation", "version": "v1", "success_rate": 0.3, "episodes": 10},
    ]
    table = format_table(build_cycles(robot, [answer("", "random", 1)]))
    lines = table.splitlines()
    assert len(lines) == 3
    assert "random 1 (100.0 %)" in lines[2]
    assert "30.0 % of 10" in lines[2]


def test_table_without_cycles():
    assert format_table([]) == "no model set was deployed"


def test_read_events_ignores_partial_line(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event": "start"}) + '\n{"event": "sto', "utf-8")
    assert read_events(path) == [{"event": "start"}]
    assert read_events(tmp_path / "missing.jsonl") == []


def test_parameter_file_names_work_folder(tmp_path: Path):
    layout = Layout(tmp_path)
    text = parameter_file(PRESETS["cpu"], layout)
    assert text.count("ros__parameters:") == 2
    assert f"models_dir: {json.dumps(str(tmp_path / 'models'))}" in text
    assert "start_enabled: true" in text
    assert "train_args: []" in text
    assert "min_selection_episodes: 150" in text
    paper = parameter_file(PRESETS["paper"], layout)
    assert 'train_args: ["--preset", "paper"]' in paper


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cycles", 0, "invalid cycles 0"),
        ("timeout_s", math.inf, "invalid timeout_s inf"),
        ("epsilon", -0.1, "invalid epsilon -0.1"),
        ("collect_episodes", -1, "invalid collect_episodes -1"),
        ("distractor_probability", 1.5, "invalid distractor_probability 1.5"),
    ],
)
def test_settings_reject_bad_value(field, value, message):
    with pytest.raises(InputError, match=message):
        DemoSettings(**{field: value}).validate()


def test_runner_versions_from_log():
    log = "\n".join(
        [
            "2026-12-04T23:08:36Z  INFO clarify::runner::node: policy runner started "
            'version="20261204-230454" rate_hz=200.0',
            "2026-12-04T23:11:47Z  INFO clarify::runner::node: switched to the new "
            "model set version=20261204-230838 previous=20261204-230454",
            "2026-12-04T23:11:50Z  INFO clarify::runner::node: policy drives again",
        ]
    )
    assert runner_versions(log) == {"20261204-230454", "20261204-230838"}
    assert runner_versions("") == set()


def test_distractor_options():
    parser = build_parser()

    assert settings_from_args(parser.parse_args([])).distractor_task == "window-open"
    off = settings_from_args(parser.parse_args(["--distractor-task", "none"]))
    assert off.distractor_task is None
    other = settings_from_args(
        parser.parse_args(
            ["--distractor-task", "door-lock", "--distractor-probability", "0.3"]
        )
    )
    assert other.distractor_task == "door-lock"
    assert other.distractor_probability == 0.3

"""Tests of the command line: help, exit codes, messages and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clarify_sim.cli import main

SIM_ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m clarify_sim` in a subprocess, importable without installing."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SIM_ROOT), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", "clarify_sim", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_module_help_lists_commands():
    result = run_module("--help")

    assert result.returncode == 0, result.stderr
    for command in ("generate", "fingerprint", "evaluate", "render"):
        assert command in result.stdout


def test_bad_task_exits_2_with_one_line():
    result = run_module("generate", "--task", "no-such-task", "--episodes", "1")

    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown task 'no-such-task'")
    assert "dial-turn" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_shows_zero_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    seed_help = capsys.readouterr().out.split("--seed SEED", 2)[2]

    assert "(default: 0)" in " ".join(seed_help.split()[:20])


def test_missing_required_option_exits_2(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["evaluate", "policy.onnx"])

    assert raised.value.code == 2
    assert "--task" in capsys.readouterr().err


def test_generate_then_fingerprint_json(tmp_path, capsys):
    out = tmp_path / "sets" / "drawer-open.npz"
    status = main(
        [
            "--log-level",
            "WARNING",
            "generate",
            "--task",
            "drawer-open",
            "--episodes",
            "2",
            "--episode-steps",
            "60",
            "--out",
            str(out),
            "--json",
        ]
    )
    generated = json.loads(capsys.readouterr().out)

    assert status == 0
    assert generated["dataset"] == str(out.resolve())
    assert generated["fingerprint"]["episodes"] == 2

    pairs_out = tmp_path / "pairs.jsonl"
    status = main(["fingerprint", str(out), "--json", "--pairs-out", str(pairs_out)])
    fingerprint = json.loads(capsys.readouterr().out)

    assert status == 0
    assert fingerprint == generated["fingerprint"]
    assert len(pairs_out.read_text().splitlines()) == fingerprint["pairs"]


def test_generate_text_summary(tmp_path, capsys):
    out = tmp_path / "dial-turn.npz"
    args = ["generate", "--task", "dial-turn", "--episodes", "1", "--out", str(out)]
    status = main([*args, "--episode-steps", "120", "--log-every", "0"])
    printed = capsys.readouterr().out

    assert status == 0
    assert f"dataset   {out.resolve()}" in printed
    assert "success" in printed
    assert "clear answer share  ε=0.5:" in printed


def test_fingerprint_missing_file_exits_2(tmp_path, capsys):
    status = main(["fingerprint", str(tmp_path / "missing.npz")])

    assert status == 2
    assert capsys.readouterr().err.startswith("error: dataset not found")


def test_bad_schedule_value_exits_2(tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    status = main(
        ["generate", "--task", "dial-turn", "--out", out, "--noise-std-end", "-1"]
    )

    assert status == 2
    assert "invalid schedule noise_std_end -1.0" in capsys.readouterr().err


def test_evaluate_without_manifest_exits_2(tmp_path, capsys):
    model = tmp_path / "policy.onnx"
    model.write_bytes(b"")
    status = main(["evaluate", str(model), "--task", "dial-turn", "--episodes", "1"])

    assert status == 2
    assert "policy manifest not found" in capsys.readouterr().err


def test_render_writes_clip(small_dataset, tmp_path, capsys):
    out = tmp_path / "clip.webp"
    args = ["render", str(small_dataset), "--episode", "0", "--length", "3"]
    status = main([*args, "--out", str(out), "--width", "64", "--height", "48"])

    assert status == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert out.stat().st_size > 0

"""Timing, thread and version set-up shared by the PyTorch reference workloads.

Each reference script trains the same network as one of clarify's Rust examples, in
eager mode on the CPU, and prints one JSON object on its last output line. bench/speed
reads it.
"""

import argparse
import json
import platform
import statistics
import sys
import time

import numpy
import torch


def parse_arguments(description, *, warmup, measured, add_arguments=None):
    """Parse the options of every reference script and those `add_arguments` adds."""
    parser = argparse.ArgumentParser(description=description)

    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op CPU threads (default 2)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of torch and numpy (default 0)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=warmup,
        help=f"untimed calls before the measured ones (default {warmup})",
    )
    parser.add_argument(
        "--measured",
        type=int,
        default=measured,
        help=f"timed calls (default {measured})",
    )
    if add_arguments is not None:
        add_arguments(parser)

    arguments = parser.parse_args()
    if arguments.threads < 1:
        parser.error(f"--threads must be at least 1, got {arguments.threads}")
    if arguments.measured < 1:
        parser.error(f"--measured must be at least 1, got {arguments.measured}")
    if arguments.warmup < 0:
        parser.error(f"--warmup must be at least 0, got {arguments.warmup}")
    return arguments


def configure(threads, seed):
    """Fix the thread counts and seed torch and numpy."""
    torch.set_num_threads(threads)
    # Inter-op threads serve only torch.jit forks, which eager training never starts.
    torch.set_num_interop_threads(1)
    torch.manual_seed(seed)
    # The legacy global seed, the one numpy.random's module functions draw from.
    numpy.random.seed(seed)  # noqa: NPY002


def measure(call, *, warmup, measured, units_per_call=1):
    """Run `call` `warmup` times untimed, then `measured` times timed.

    Returns the seconds per unit of each timed call, where one call runs
    `units_per_call` units (epochs, iterations or gradient steps).
    """
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(measured):
        start = time.perf_counter()
        call()
        seconds.append((time.perf_counter() - start) / units_per_call)
    return seconds


def versions():
    """Return the versions and CPU settings that the timings depend on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }


def report(workload, unit, config, seconds, *, warmup):
    """Print the result as one JSON line on standard output."""
    result = {
        "workload": workload,
        "implementation": "pytorch-eager",
        "unit": unit,
        "config": config,
        "warmup": warmup,
        "seconds_per_unit": seconds,
        "median_seconds_per_unit": statistics.median(seconds),
        "versions": versions(),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")

"""Simulated robot for clarify: Meta-World v3 datasets, simulated teachers, policy
evaluation and segment rendering.

Modules: `env` (tasks, scripted policies, simulator state), `generate` (dataset
generator), `dataset` (loading, validation, episodes, segments), `teacher` (simulated
operators), `fingerprint` (dataset fingerprint), `evaluate` (ONNX policy evaluation),
`render` (segment clips), `cli` (the `clarify-sim` command).
"""

import os

# MuJoCo picks its OpenGL backend when it is first imported. EGL renders without a
# display; a backend chosen by the caller is kept.
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

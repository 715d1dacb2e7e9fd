"""Evaluation of an ONNX policy in the simulator.

The policy runs with ONNX Runtime on the CPU for a fixed number of episodes. Episode i
resets the task with seed `seed + i`, so two runs with the same settings see the same
object and goal positions and, because inference is deterministic on the CPU, give the
same results.

A JSON manifest beside the model (`manifest.json` by default) describes it. These
fields are read; later format versions add fields, and fields not listed here are
ignored:

| field | content |
|-------|---------|
| `format_version` | integer, 1 |
| `observation_dim`, `action_dim` | sizes the policy expects and produces |
| `observation_normalization` | `mean`, `std` (one number per observation entry) and |
|       | `in_graph`: when false, the evaluator feeds (obs - mean) / std to the model; |
|       | when true, the graph standardises the raw observation itself |
| `action_bounds` | `low`, `high` (one number per action entry): actions are clamped |
|       | to them |
| `inputs`, `outputs` | lists of `{"name", "shape"}`; shape entries are integers or |
|       | "batch" for a dimension of any size. The first input is the observation and |
|       | the first output the action |

Format version 2 (a model set of the registry) adds `networks.policy`: `file` (the
policy's file name in the manifest's folder), `sha256` (of that file) and `inputs`,
`outputs` (equal to the top-level ones). With version 2 the model argument may be the
set's folder, and the policy file must match the listed SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from clarify_sim.env import DEFAULT_EPISODE_STEPS, MetaWorldTaskEnv, make_env
from clarify_sim.errors import InputError, ManifestError

logger = logging.getLogger(__name__)

#: Newest manifest format version this evaluator reads (it reads 1 and 2).
MANIFEST_FORMAT_VERSION = 2
#: Name of the manifest file looked up in the model's folder.
MANIFEST_NAME = "manifest.json"
#: Dimension entry of a manifest shape that accepts any size.
BATCH_DIM = "batch"


class PolicyError(InputError):
    """A policy that produced an output the evaluator cannot use."""


@dataclass(frozen=True)
class TensorSpec:
    """Name and shape of a model input or output, as the manifest lists it."""

    name: str
    #: Dimensions: an int for a fixed size, "batch" for any size.
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class PolicyManifest:
    """The manifest fields the evaluator uses."""

    format_version: int
    observation_dim: int
    action_dim: int
    observation_mean: np.ndarray
    observation_std: np.ndarray
    normalization_in_graph: bool
    action_low: np.ndarray
    action_high: np.ndarray
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: Policy file name and its SHA-256 (format version 2); None in version 1.
    policy_file: str | None = None
    policy_sha256: str | None = None


@dataclass
class EpisodeResult:
    """Outcome of one evaluation episode."""

    seed: int
    episode_return: float
    success_any: bool
    success_final: bool


@dataclass
class EvaluationResult:
    """Outcome of an evaluation run."""

    task: str
    model: str
    episodes: int
    seeds: list[int]
    success_rate_any: float
    success_rate_final: float
    return_mean: float
    return_std: float
    seconds: float
    episode_results: list[EpisodeResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict."""
        return {
            "task": self.task,
            "model": self.model,
            "episodes": self.episodes,
            "seeds": self.seeds,
            "success_rate_any": self.success_rate_any,
            "success_rate_final": self.success_rate_final,
            "return_mean": self.return_mean,
            "return_std": self.return_std,
            "seconds": self.seconds,
            "episode_results": [vars(result) for result in self.episode_results],
        }


def load_manifest(path: str | Path) -> PolicyManifest:
    """Read and check a policy manifest on its own (without the model).

    Raises `ManifestError` naming the field, the value found and what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"policy manifest not found: {path}: write {MANIFEST_NAME} beside the "
            "model or pass its path"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"manifest {path} is not valid JSON: {error}") from None
    return parse_manifest(document, str(path))


def parse_manifest(document: Any, source: str) -> PolicyManifest:
    """Check a decoded manifest document and return its fields."""
    if not isinstance(document, dict):
        raise ManifestError(
            f"manifest {source} is a JSON {type(document).__name__}, expected an object"
        )
    reader = _FieldReader(document, source)

    format_version = reader.integer("format_version", minimum=1)
    reader.format_version = min(format_version, MANIFEST_FORMAT_VERSION)
    if format_version > MANIFEST_FORMAT_VERSION:
        logger.warning(
            "manifest %s has format_version %d, newer than %d: reading the "
            "version %d fields",
            source,
            format_version,
            MANIFEST_FORMAT_VERSION,
            MANIFEST_FORMAT_VERSION,
        )
    observation_dim = reader.integer("observation_dim", minimum=1)
    action_dim = reader.integer("action_dim", minimum=1)

    normalization = reader.object("observation_normalization")
    mean = reader.numbers(
        normalization,
        "observation_normalization.mean",
        observation_dim,
        "observation_dim",
    )
    std = reader.numbers(
        normalization,
        "observation_normalization.std",
        observation_dim,
        "observation_dim",
    )
    if np.any(std <= 0.0):
        index = int(np.flatnonzero(std <= 0.0)[0])
        raise ManifestError(
            f"manifest {source}: observation_normalization.std[{index}] is "
            f"{std[index]}, expected a positive number"
        )
    in_graph = reader.boolean(normalization, "observation_normalization.in_graph")

    bounds = reader.object("action_bounds")
    low = reader.numbers(bounds, "action_bounds.low", action_dim, "action_dim")
    high = reader.numbers(bounds, "action_bounds.high", action_dim, "action_dim")
    if np.any(low > high):
        index = int(np.flatnonzero(low > high)[0])
        raise ManifestError(
            f"manifest {source}: action_bounds.low[{index}] is {low[index]}, above "
            f"action_bounds.high[{index}] = {high[index]}"
        )

    inputs = reader.tensor_specs("inputs")
    outputs = reader.tensor_specs("outputs")
    policy_file = policy_sha256 = None
    if format_version >= 2:
        policy_file, policy_sha256 = _policy_network(reader, inputs, outputs)

    return PolicyManifest(
        format_version=format_version,
        observation_dim=observation_dim,
        action_dim=action_dim,
        observation_mean=mean,
        observation_std=std,
        normalization_in_graph=in_graph,
        action_low=low,
        action_high=high,
        inputs=inputs,
        outputs=outputs,
        policy_file=policy_file,
        policy_sha256=policy_sha256,
    )


def _policy_network(
    reader: _FieldReader,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
) -> tuple[str, str]:
    """Read `networks.policy` of a version 2 manifest: its file name and SHA-256."""
    networks = reader.object("networks")
    policy = reader.member_object(networks, "networks.policy")
    file_name = reader.string(policy, "networks.policy.file")
    if "/" in file_name or "\\" in file_name or file_name.startswith("."):
        raise reader.fail(
            "networks.policy.file", file_name, "a file name inside the set's folder"
        )
    sha256 = reader.string(policy, "networks.policy.sha256")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise reader.fail("networks.policy.sha256", sha256, "64 lower-case hex digits")
    for name, top_level in (("inputs", inputs), ("outputs", outputs)):
        listed = reader.tensor_specs(f"networks.policy.{name}", policy)
        if listed != top_level:
            raise ManifestError(
                f"manifest {reader.source}: networks.policy.{name} differs from "
                f"{name}, but the two must list the same tensors"
            )
    return file_name, sha256


class _FieldReader:
    """Reads typed manifest fields, raising `ManifestError` that names the field."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self.document = document
        self.source = source
        #: Format version named in errors about missing fields, once it is known.
        self.format_version = 1

    def fail(self, name: str, value: Any, expected: str) -> ManifestError:
        """Return the error for field `name` holding `value`."""
        return self._fail(name, value, expected)

    def member_object(self, container: dict[str, Any], name: str) -> dict[str, Any]:
        value = self._get(container, name)
        if not isinstance(value, dict):
            raise self._fail(name, value, "an object")
        return value

    def string(self, container: dict[str, Any], name: str) -> str:
        value = self._get(container, name)
        if not isinstance(value, str) or not value:
            raise self._fail(name, value, "a non-empty string")
        return value

    def _fail(self, name: str, value: Any, expected: str) -> ManifestError:
        found = json.dumps(value)
        return ManifestError(
            f"manifest {self.source}: {name} is {found}, expected {expected}"
        )

    def _get(self, container: dict[str, Any], name: str) -> Any:
        key = name.rsplit(".", 1)[-1]
        if key not in container:
            raise ManifestError(
                f"manifest {self.source} has no field {name}: add it (format version "
                f"{self.format_version} requires it)"
            )
        return container[key]

    def integer(self, name: str, minimum: int) -> int:
        value = self._get(self.document, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(name, value, f"an integer >= {minimum}")
        return value

    def object(self, name: str) -> dict[str, Any]:
        value = self._get(self.document, name)
        if not isinstance(value, dict):
            raise self._fail(name, value, "an object")
        return value

    def boolean(self, container: dict[str, Any], name: str) -> bool:
        value = self._get(container, name)
        if not isinstance(value, bool):
            raise self._fail(name, value, "true or false")
        return value

    def numbers(
        self, container: dict[str, Any], name: str, length: int, length_name: str
    ) -> np.ndarray:
        value = self._get(container, name)
        if not isinstance(value, list):
            raise self._fail(name, value, f"a list of {length} finite numbers")
        if len(value) != length:
            raise ManifestError(
                f"manifest {self.source}: {name} has {len(value)} entries, expected "
                f"{length_name} = {length}"
            )
        for index, item in enumerate(value):
            is_number = isinstance(item, int | float) and not isinstance(item, bool)
            if not is_number or not math.isfinite(item):
                raise self._fail(f"{name}[{index}]", item, "a finite number")
        return np.array(value, dtype=np.float64)

    def tensor_specs(
        self, name: str, container: dict[str, Any] | None = None
    ) -> tuple[TensorSpec, ...]:
        value = self._get(self.document if container is None else container, name)
        if not isinstance(value, list) or not value:
            raise self._fail(name, value, "a non-empty list of {name, shape} objects")
        specs = []
        for index, item in enumerate(value):
            item_name = f"{name}[{index}]"
            if not isinstance(item, dict):
                raise self._fail(item_name, item, "an object with name and shape")
            tensor_name = self._get(item, f"{item_name}.name")
            if not isinstance(tensor_name, str) or not tensor_name:
                raise self._fail(f"{item_name}.name", tensor_name, "a non-empty string")
            shape = self._get(item, f"{item_name}.shape")
            if not isinstance(shape, list) or not shape:
                raise self._fail(
                    f"{item_name}.shape",
                    shape,
                    'a non-empty list of integers or "batch"',
                )
            for dim_index, dim in enumerate(shape):
                valid_int = (
                    isinstance(dim, int) and not isinstance(dim, bool) and dim > 0
                )
                if not (valid_int or dim == BATCH_DIM):
                    raise self._fail(
                        f"{item_name}.shape[{dim_index}]",
                        dim,
                        'a positive integer or "batch"',
                    )
            specs.append(TensorSpec(tensor_name, tuple(shape)))
        return tuple(specs)


def check_manifest_against_model(
    manifest: PolicyManifest,
    model: onnx.ModelProto,
    env: MetaWorldTaskEnv,
    source: str,
) -> None:
    """Check that the manifest matches the ONNX graph and the task's spaces.

    Raises `ManifestError` naming the field and both values.
    """
    observation_dim = env.observation_space.shape[0]
    action_dim = env.action_space.shape[0]
    if manifest.observation_dim != observation_dim:
        raise ManifestError(
            f"manifest {source}: observation_dim is {manifest.observation_dim}, but "
            f"task {env.task} has {observation_dim}-dimensional observations"
        )
    if manifest.action_dim != action_dim:
        raise ManifestError(
            f"manifest {source}: action_dim is {manifest.action_dim}, but task "
            f"{env.task} has {action_dim}-dimensional actions"
        )

    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    graph_inputs = {
        value.name: value for value in graph.input if value.name not in initializers
    }
    graph_outputs = {value.name: value for value in graph.output}
    listed_inputs = {spec.name for spec in manifest.inputs}
    for name in graph_inputs:
        if name not in listed_inputs:
            raise ManifestError(
                f"manifest {source}: the model has graph input {name!r}, which the "
                f"manifest's inputs ({sorted(listed_inputs)}) do not list"
            )
    _check_specs(manifest.inputs, graph_inputs, "inputs", source)
    _check_specs(manifest.outputs, graph_outputs, "outputs", source)
    # The evaluator feeds the observation and nothing else.
    if len(graph_inputs) != 1:
        raise ManifestError(
            f"manifest {source}: the model has {len(graph_inputs)} graph inputs "
            f"({sorted(graph_inputs)}), expected one: the observation"
        )

    observation_spec = manifest.inputs[0]
    if observation_spec.shape[-1] != manifest.observation_dim:
        raise ManifestError(
            f"manifest {source}: inputs[0].shape ends in {observation_spec.shape[-1]}, "
            f"but observation_dim is {manifest.observation_dim}"
        )
    action_spec = manifest.outputs[0]
    if action_spec.shape[-1] != manifest.action_dim:
        raise ManifestError(
            f"manifest {source}: outputs[0].shape ends in {action_spec.shape[-1]}, but "
            f"action_dim is {manifest.action_dim}"
        )
    fixed = [dim for dim in observation_spec.shape if dim != BATCH_DIM]
    if math.prod(fixed) != manifest.observation_dim:
        raise ManifestError(
            f"manifest {source}: inputs[0].shape {list(observation_spec.shape)} has "
            f"{math.prod(fixed)} values per observation, expected observation_dim = "
            f"{manifest.observation_dim}"
        )


def _check_specs(
    specs: tuple[TensorSpec, ...],
    graph_values: dict[str, onnx.ValueInfoProto],
    field_name: str,
    source: str,
) -> None:
    for index, spec in enumerate(specs):
        value = graph_values.get(spec.name)
        if value is None:
            raise ManifestError(
                f"manifest {source}: {field_name}[{index}].name is {spec.name!r}, but "
                f"the model's graph {field_name} are {sorted(graph_values)}"
            )
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type != onnx.TensorProto.FLOAT:
            type_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
            raise ManifestError(
                f"manifest {source}: graph {field_name[:-1]} {spec.name!r} has element "
                f"type {type_name}, expected FLOAT (float32)"
            )
        graph_shape = [_graph_dim(dim) for dim in tensor_type.shape.dim]
        if len(graph_shape) != len(spec.shape) or any(
            not _dims_match(manifest_dim, graph_dim)
            for manifest_dim, graph_dim in zip(spec.shape, graph_shape, strict=False)
        ):
            raise ManifestError(
                f"manifest {source}: {field_name}[{index}].shape is "
                f"{list(spec.shape)}, but the model's {spec.name!r} has shape "
                f"{graph_shape}"
            )


def _graph_dim(dim: onnx.TensorShapeProto.Dimension) -> int | str:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param or "?"


def _dims_match(manifest_dim: int | str, graph_dim: int | str) -> bool:
    if manifest_dim == BATCH_DIM:
        # Any symbolic or unknown dimension accepts a batch of any size.
        return isinstance(graph_dim, str)
    return manifest_dim == graph_dim


class OnnxPolicy:
    """An ONNX policy with its manifest: maps one raw observation to one action."""

    def __init__(
        self,
        model_path: str | Path,
        manifest: PolicyManifest,
        intra_op_threads: int = 1,
    ) -> None:
        if intra_op_threads < 1:
            raise InputError(
                f"invalid thread count {intra_op_threads}: use 1 or more threads"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self.manifest = manifest
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        observation_spec = manifest.inputs[0]
        self._input_name = observation_spec.name
        self._input_shape = tuple(
            1 if dim == BATCH_DIM else dim for dim in observation_spec.shape
        )
        self._output_name = manifest.outputs[0].name

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        manifest = self.manifest
        model_input = np.asarray(observation, dtype=np.float64)
        if not manifest.normalization_in_graph:
            model_input = (
                model_input - manifest.observation_mean
            ) / manifest.observation_std
        model_input = model_input.astype(np.float32).reshape(self._input_shape)
        (output,) = self.session.run(
            [self._output_name], {self._input_name: model_input}
        )
        action = np.asarray(output, dtype=np.float64).reshape(-1)
        if action.size != manifest.action_dim:
            raise PolicyError(
                f"policy output {self._output_name!r} has {action.size} values for one "
                f"observation, expected action_dim = {manifest.action_dim}"
            )
        if not np.all(np.isfinite(action)):
            raise PolicyError(
                f"policy output {self._output_name!r} contains non-finite values "
                f"{action.tolist()}"
            )
        return np.clip(action, manifest.action_low, manifest.action_high).astype(
            np.float32
        )


def load_policy(
    model_path: str | Path,
    env: MetaWorldTaskEnv,
    manifest_path: str | Path | None = None,
    intra_op_threads: int = 1,
) -> OnnxPolicy:
    """Load an ONNX policy and its manifest, checked against each other and `env`.

    `model_path` is the policy's ONNX file, or the folder of a model set whose manifest
    (format version 2) names the policy file.
    """
    model_path = Path(model_path)
    if manifest_path is None:
        folder = model_path if model_path.is_dir() else model_path.parent
        manifest_path = folder / MANIFEST_NAME
    manifest = load_manifest(manifest_path)
    if model_path.is_dir():
        if manifest.policy_file is None:
            raise ManifestError(
                f"manifest {manifest_path} has format_version "
                f"{manifest.format_version}, which names no policy file: pass the "
                "policy's .onnx file instead of the folder"
            )
        model_path = model_path / manifest.policy_file
    if manifest.policy_sha256 is not None and model_path.is_file():
        found = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if found != manifest.policy_sha256:
            raise ManifestError(
                f"manifest {manifest_path}: networks.policy.sha256 is "
                f"{manifest.policy_sha256}, but {model_path} has SHA-256 {found}"
            )
    try:
        model = onnx.load(str(model_path))
    except FileNotFoundError:
        raise InputError(
            f"policy model not found: {model_path}: check the path"
        ) from None
    except Exception as error:
        # onnx raises protobuf's DecodeError or a plain exception for a bad file.
        raise InputError(
            f"failed to read ONNX model {model_path}: {error}: pass an ONNX file"
        ) from None
    check_manifest_against_model(manifest, model, env, str(manifest_path))
    return OnnxPolicy(model_path, manifest, intra_op_threads)


def evaluate_policy(
    model_path: str | Path,
    task: str,
    episodes: int = 10,
    seed: int = 0,
    manifest_path: str | Path | None = None,
    intra_op_threads: int = 1,
    max_episode_steps: int = DEFAULT_EPISODE_STEPS,
) -> EvaluationResult:
    """Run the policy for `episodes` episodes of `task`.

    Episode i resets the task with seed `seed + i`.
    """
    if episodes < 1:
        raise InputError(f"invalid episode count {episodes}: use 1 or more")
    if seed < 0:
        raise InputError(f"invalid seed {seed}: use an integer >= 0")
    env = make_env(task, seed=seed, max_episode_steps=max_episode_steps)
    policy = load_policy(model_path, env, manifest_path, intra_op_threads)

    started = time.monotonic()
    results = []
    for index in range(episodes):
        results.append(run_episode(env, policy, seed + index))
        logger.debug("episode %d: %s", index, results[-1])
    seconds = time.monotonic() - started

    returns = [result.episode_return for result in results]
    return_mean = sum(returns) / episodes
    return_std = math.sqrt(
        sum((value - return_mean) ** 2 for value in returns) / episodes
    )
    return EvaluationResult(
        task=task,
        model=str(model_path),
        episodes=episodes,
        seeds=[result.seed for result in results],
        success_rate_any=sum(result.success_any for result in results) / episodes,
        success_rate_final=sum(result.success_final for result in results) / episodes,
        return_mean=return_mean,
        return_std=return_std,
        seconds=seconds,
        episode_results=results,
    )


def run_episode(env: MetaWorldTaskEnv, policy: OnnxPolicy, seed: int) -> EpisodeResult:
    """Run one episode to the time limit and return its outcome."""
    observation, _ = env.reset(seed=seed)
    episode_return = 0.0
    success_any = False
    success = False
    truncated = False
    while not truncated:
        action = policy(observation)
        observation, reward, _, truncated, info = env.step(action)
        episode_return += reward
        success = info["success"]
        success_any = success_any or success
    return EpisodeResult(seed, episode_return, success_any, success)

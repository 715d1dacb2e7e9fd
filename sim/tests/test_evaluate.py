"""Tests of the ONNX policy evaluator with small policies built from ONNX nodes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from clarify_sim.env import make_env
from clarify_sim.errors import ManifestError
from clarify_sim.evaluate import (
    PolicyError,
    evaluate_policy,
    load_manifest,
    load_policy,
)

OBSERVATION_DIM = 39
ACTION_DIM = 4


def write_policy(
    folder,
    weights,
    bias,
    input_name="observation",
    output_name="action",
    normalize=None,
    tanh=True,
    batch_dim="batch",
):
    """Write action = tanh(((obs - mean) / std) @ weights + bias) as policy.onnx.

    `normalize` is (mean, std) to standardise inside the graph, or None.
    """
    initializers = [
        numpy_helper.from_array(np.asarray(weights, np.float32), "weights"),
        numpy_helper.from_array(np.asarray(bias, np.float32), "bias"),
    ]
    nodes = []
    features = input_name
    if normalize is not None:
        mean, std = normalize
        initializers += [
            numpy_helper.from_array(np.asarray(mean, np.float32), "mean"),
            numpy_helper.from_array(np.asarray(std, np.float32), "std"),
        ]
        nodes += [
            helper.make_node("Sub", [input_name, "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "std"], ["standardised"]),
        ]
        features = "standardised"
    nodes.append(helper.make_node("MatMul", [features, "weights"], ["linear"]))
    last = output_name if not tanh else "pre_activation"
    nodes.append(helper.make_node("Add", ["linear", "bias"], [last]))
    if tanh:
        nodes.append(helper.make_node("Tanh", [last], [output_name]))

    graph = helper.make_graph(
        nodes,
        "policy",
        [
            helper.make_tensor_value_info(
                input_name, TensorProto.FLOAT, [batch_dim, OBSERVATION_DIM]
            )
        ],
        [
            helper.make_tensor_value_info(
                output_name, TensorProto.FLOAT, [batch_dim, ACTION_DIM]
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    path = folder / "policy.onnx"
    onnx.save(model, path)
    return path


def manifest_document(**changes):
    document = {
        "format_version": 1,
        "observation_dim": OBSERVATION_DIM,
        "action_dim": ACTION_DIM,
        "observation_normalization": {
            "mean": [0.0] * OBSERVATION_DIM,
            "std": [1.0] * OBSERVATION_DIM,
            "in_graph": False,
        },
        "action_bounds": {"low": [-1.0] * ACTION_DIM, "high": [1.0] * ACTION_DIM},
        "inputs": [{"name": "observation", "shape": ["batch", OBSERVATION_DIM]}],
        "outputs": [{"name": "action", "shape": ["batch", ACTION_DIM]}],
    }
    document.update(changes)
    return document


def write_manifest(folder, document):
    path = folder / "manifest.json"
    path.write_text(json.dumps(document))
    return path


def random_linear(seed):
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 0.5, size=(OBSERVATION_DIM, ACTION_DIM))
    bias = rng.normal(0.0, 0.1, size=ACTION_DIM)
    return weights, bias


def test_zero_policy_matches_manual_rollout(tmp_path):
    model = write_policy(
        tmp_path, np.zeros((OBSERVATION_DIM, ACTION_DIM)), np.zeros(ACTION_DIM)
    )
    write_manifest(tmp_path, manifest_document())
    result = evaluate_policy(
        model, "drawer-open", episodes=2, seed=5, max_episode_steps=30
    )

    assert result.episodes == 2
    assert result.seeds == [5, 6]
    for episode in result.episode_results:
        env = make_env("drawer-open", max_episode_steps=30)
        env.reset(seed=episode.seed)
        rewards = [env.step(np.zeros(ACTION_DIM))[1] for _ in range(30)]
        assert episode.episode_return > 0.0
        assert episode.episode_return == sum(rewards)
    returns = [episode.episode_return for episode in result.episode_results]
    assert result.return_mean == pytest.approx(np.mean(returns))
    assert result.return_std == pytest.approx(np.std(returns))
    assert result.success_rate_any == 0.0


def test_same_seeds_same_results(tmp_path):
    model = write_policy(tmp_path, *random_linear(0))
    write_manifest(tmp_path, manifest_document())
    first = evaluate_policy(model, "drawer-open", episodes=2, max_episode_steps=40)
    second = evaluate_policy(model, "drawer-open", episodes=2, max_episode_steps=40)

    first_json, second_json = first.to_json(), second.to_json()
    del first_json["seconds"], second_json["seconds"]
    assert first_json == second_json
    returns = [episode.episode_return for episode in first.episode_results]
    assert returns[0] != returns[1]  # the two seeds place the drawer differently


def test_normalization_outside_and_inside_graph_agree(tmp_path):
    weights, bias = random_linear(1)
    mean = np.zeros(OBSERVATION_DIM)
    std = np.full(OBSERVATION_DIM, 2.0)  # a power of two divides exactly in float32
    outside = tmp_path / "outside"
    inside = tmp_path / "inside"
    unscaled = tmp_path / "unscaled"
    for folder in (outside, inside, unscaled):
        folder.mkdir()
    normalization = {"mean": mean.tolist(), "std": std.tolist(), "in_graph": False}

    write_policy(outside, weights, bias)
    write_manifest(outside, manifest_document(observation_normalization=normalization))
    write_policy(inside, weights, bias, normalize=(mean, std))
    write_manifest(
        inside,
        manifest_document(
            observation_normalization={**normalization, "in_graph": True}
        ),
    )
    write_policy(unscaled, weights, bias)
    write_manifest(unscaled, manifest_document())

    results = {
        folder.name: evaluate_policy(
            folder / "policy.onnx", "drawer-open", episodes=1, max_episode_steps=30
        ).return_mean
        for folder in (outside, inside, unscaled)
    }
    assert results["outside"] > 0.0
    assert results["outside"] == results["inside"]
    assert results["outside"] != results["unscaled"]


def test_policy_standardises_and_clamps(tmp_path):
    # Action i is the standardised observation entry i, without tanh.
    weights = np.zeros((OBSERVATION_DIM, ACTION_DIM))
    weights[np.arange(ACTION_DIM), np.arange(ACTION_DIM)] = 1.0
    write_policy(tmp_path, weights, np.zeros(ACTION_DIM), tanh=False)
    mean = np.full(OBSERVATION_DIM, 1.0)
    std = np.full(OBSERVATION_DIM, 4.0)
    document = manifest_document(
        observation_normalization={
            "mean": mean.tolist(),
            "std": std.tolist(),
            "in_graph": False,
        },
        action_bounds={"low": [-0.5] * ACTION_DIM, "high": [0.5] * ACTION_DIM},
    )
    write_manifest(tmp_path, document)
    policy = load_policy(tmp_path / "policy.onnx", make_env("dial-turn"))

    observation = np.zeros(OBSERVATION_DIM)
    observation[:4] = [1.0, 2.0, 10.0, -10.0]
    assert policy(observation).tolist() == [0.0, 0.25, 0.5, -0.5]


def test_non_finite_output_is_rejected(tmp_path):
    bias = np.array([np.nan, 0.0, 0.0, 0.0])
    write_policy(tmp_path, np.zeros((OBSERVATION_DIM, ACTION_DIM)), bias)
    write_manifest(tmp_path, manifest_document())
    policy = load_policy(tmp_path / "policy.onnx", make_env("dial-turn"))

    with pytest.raises(PolicyError, match="non-finite values"):
        policy(np.zeros(OBSERVATION_DIM))


def test_input_name_mismatch_is_rejected(tmp_path):
    write_policy(tmp_path, *random_linear(2), input_name="obs")
    write_manifest(tmp_path, manifest_document())

    with pytest.raises(ManifestError) as raised:
        load_policy(tmp_path / "policy.onnx", make_env("dial-turn"))
    message = str(raised.value)
    assert "model has graph input 'obs'" in message
    assert "['observation']" in message


def test_second_graph_input_is_rejected(tmp_path):
    shape = ["batch", OBSERVATION_DIM]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["observation", "offset"], ["shifted"]),
            helper.make_node(
                "Slice", ["shifted", "starts", "ends", "axes"], ["action"]
            ),
        ],
        "policy",
        [
            helper.make_tensor_value_info("observation", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("offset", TensorProto.FLOAT, shape),
        ],
        [
            helper.make_tensor_value_info(
                "action", TensorProto.FLOAT, ["batch", ACTION_DIM]
            )
        ],
        [
            numpy_helper.from_array(np.array([0], np.int64), "starts"),
            numpy_helper.from_array(np.array([ACTION_DIM], np.int64), "ends"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "policy.onnx")
    inputs = [
        {"name": "observation", "shape": shape},
        {"name": "offset", "shape": shape},
    ]
    write_manifest(tmp_path, manifest_document(inputs=inputs))

    with pytest.raises(ManifestError) as raised:
        load_policy(tmp_path / "policy.onnx", make_env("dial-turn"))
    message = str(raised.value)
    assert "2 graph inputs" in message
    assert "'offset'" in message


def test_fixed_batch_dim_is_rejected(tmp_path):
    write_policy(tmp_path, *random_linear(2), batch_dim=1)
    write_manifest(tmp_path, manifest_document())

    with pytest.raises(
        ManifestError,
        match=r"inputs\[0\].shape is \['batch', 39\], but the model's 'observation' "
        r"has shape \[1, 39\]",
    ):
        load_policy(tmp_path / "policy.onnx", make_env("dial-turn"))


def without(document, *path):
    *parents, key = path
    container = document
    for parent in parents:
        container = container[parent]
    del container[key]
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            without(manifest_document(), "observation_dim"),
            "has no field observation_dim",
        ),
        (
            without(manifest_document(), "observation_normalization", "in_graph"),
            "has no field observation_normalization.in_graph",
        ),
        (
            manifest_document(format_version="1"),
            r'format_version is "1", expected an integer >= 1',
        ),
        (
            manifest_document(
                observation_normalization={
                    "mean": [0.0] * 39,
                    "std": [1.0] * 38,
                    "in_graph": False,
                }
            ),
            "observation_normalization.std has 38 entries, expected "
            "observation_dim = 39",
        ),
        (
            manifest_document(
                observation_normalization={
                    "mean": [0.0] * 39,
                    "std": [1.0] * 5 + [0.0] + [1.0] * 33,
                    "in_graph": False,
                }
            ),
            r"observation_normalization.std\[5\] is 0.0, expected a positive number",
        ),
        (
            manifest_document(
                action_bounds={"low": [1.0, -1, -1, -1], "high": [0.0, 1, 1, 1]}
            ),
            r"action_bounds.low\[0\] is 1.0, above action_bounds.high\[0\] = 0.0",
        ),
        (
            manifest_document(inputs=[{"name": "observation", "shape": ["batch", 0]}]),
            r'inputs\[0\].shape\[1\] is 0, expected a positive integer or "batch"',
        ),
        (manifest_document(outputs=[]), "outputs is \\[\\], expected a non-empty list"),
    ],
)
def test_manifest_field_errors(tmp_path, document, message):
    path = write_manifest(tmp_path, document)
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "observation_dim": 17,
                "observation_normalization": {
                    "mean": [0.0] * 17,
                    "std": [1.0] * 17,
                    "in_graph": False,
                },
                "inputs": [{"name": "observation", "shape": ["batch", 17]}],
            },
            "observation_dim is 17, but task dial-turn has 39-dimensional observations",
        ),
        (
            {"outputs": [{"name": "action", "shape": ["batch", 3]}]},
            r"outputs\[0\].shape is \['batch', 3\], but the model's 'action' has shape "
            r"\['batch', 4\]",
        ),
        (
            {"outputs": [{"name": "actions", "shape": ["batch", 4]}]},
            r"outputs\[0\].name is 'actions', but the model's graph outputs are "
            r"\['action'\]",
        ),
    ],
)
def test_manifest_model_mismatch(tmp_path, changes, message):
    write_policy(tmp_path, *random_linear(3))
    write_manifest(tmp_path, manifest_document(**changes))
    with pytest.raises(ManifestError, match=message):
        load_policy(tmp_path / "policy.onnx", make_env("dial-turn"))


def test_manifest_ignores_unknown_fields(tmp_path):
    document = manifest_document(metrics={"reward_accuracy": 0.9}, task="dial-turn")
    document["observation_normalization"]["clip"] = 5.0
    manifest = load_manifest(write_manifest(tmp_path, document))

    assert manifest.observation_dim == OBSERVATION_DIM
    assert manifest.inputs[0].shape == ("batch", OBSERVATION_DIM)


def test_missing_manifest_is_named(tmp_path):
    model = write_policy(tmp_path, *random_linear(4))
    with pytest.raises(ManifestError, match="policy manifest not found"):
        evaluate_policy(model, "dial-turn", episodes=1, max_episode_steps=5)

    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ManifestError, match="is not valid JSON"):
        evaluate_policy(model, "dial-turn", episodes=1, max_episode_steps=5)


def version_2_document(model_path, **changes):
    """A format version 2 manifest for the policy file at `model_path`."""
    import hashlib

    document = manifest_document(format_version=2, **changes)
    document["networks"] = {
        "policy": {
            "file": model_path.name,
            "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
            "inputs": json.loads(json.dumps(document["inputs"])),
            "outputs": json.loads(json.dumps(document["outputs"])),
        }
    }
    document.update(
        version="v1",
        segment_length=25,
        versions={"encoder": "e1", "reward": "r1", "policy": "p1"},
        data={
            "dataset_sha256": "0" * 64,
            "answers_sha256": "1" * 64,
            "answers_used": 3,
        },
    )
    return document


def test_version_2_set_folder_is_evaluated_like_its_file(tmp_path):
    model = write_policy(tmp_path, *random_linear(5))
    write_manifest(tmp_path, version_2_document(model))

    from_folder = evaluate_policy(
        tmp_path, "drawer-open", episodes=1, max_episode_steps=20
    )
    from_file = evaluate_policy(model, "drawer-open", episodes=1, max_episode_steps=20)

    assert from_folder.return_mean == from_file.return_mean
    manifest = load_manifest(tmp_path / "manifest.json")
    assert manifest.policy_file == "policy.onnx"


def test_version_2_hash_mismatch_is_rejected(tmp_path):
    model = write_policy(tmp_path, *random_linear(6))
    document = version_2_document(model)
    document["networks"]["policy"]["sha256"] = "a" * 64
    write_manifest(tmp_path, document)

    with pytest.raises(ManifestError, match=r"networks.policy.sha256 is a{64}, but"):
        load_policy(tmp_path, make_env("drawer-open", max_episode_steps=5))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["networks"]["policy"].pop("file"),
            r"has no field networks.policy.file: add it \(format version 2",
        ),
        (
            lambda d: d["networks"]["policy"].update(file="../policy.onnx"),
            "networks.policy.file is",
        ),
        (
            lambda d: d["networks"]["policy"]["outputs"][0].update(name="act"),
            "networks.policy.outputs differs from outputs",
        ),
    ],
)
def test_version_2_policy_network_errors(tmp_path, change, message):
    model = write_policy(tmp_path, *random_linear(7))
    document = version_2_document(model)
    change(document)
    path = write_manifest(tmp_path, document)

    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_version_1_folder_needs_the_file(tmp_path):
    write_policy(tmp_path, *random_linear(8))
    write_manifest(tmp_path, manifest_document())

    with pytest.raises(ManifestError, match="names no policy file"):
        load_policy(tmp_path, make_env("drawer-open", max_episode_steps=5))

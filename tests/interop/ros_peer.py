"""A ROS 2 peer on Eclipse Cyclone DDS for the transport interoperability test.

It plays the part of a robot and an operator interface written against another DDS
implementation, with ROS 2 naming (topic ``rt/<name>``, type ``<pkg>::msg::dds_::<Type>_``):

1. publishes the sensor_msgs/JointState, geometry_msgs/Twist and clarify_msgs/Transition
   messages listed in the fixture file;
2. waits for a clarify_msgs/PreferenceQuery, checks it field by field against the
   fixture and publishes it back unchanged on the echo topic;
3. looks for the expected node name in ``ros_discovery_info``.

It reports on stdout, one JSON object per line with an ``event`` key, and exits 0 when every
step succeeded. It stays alive after the last step until its standard input closes, so the
other side can finish receiving, and gives up after ``--timeout`` seconds per step.

Usage: ros_peer.py FIXTURE_JSON [--timeout SECONDS] [--domain-id ID]
"""

import argparse
import json
import signal
import struct
import sys
import time
from dataclasses import fields, is_dataclass
from pathlib import Path

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

# The checkout's simulator package, ahead of any installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sim"))

from clarify_sim.ros import (  # noqa: E402
    JointState,
    ParticipantEntitiesInfo,
    PreferenceQuery,
    Transition,
    Twist,
)

POLL_INTERVAL_SECS = 0.05


def report(event: str, **details: object) -> None:
    print(json.dumps({"event": event, **details}), flush=True)


def from_json(cls: type, value: object) -> object:
    """Builds an instance of IDL dataclass ``cls`` from the JSON object of a Rust message."""
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {value!r}")
    arguments = {}
    for field in fields(cls):
        item = value[field.name]
        nested = cls.__annotations__[field.name]
        if isinstance(nested, type) and is_dataclass(nested):
            item = from_json(nested, item)
        arguments[field.name] = item
    return cls(**arguments)


def as_float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def compare(
    expected: object, received: object, path: str, float32_fields: set[str]
) -> list[str]:
    """Lists the fields where ``received`` differs from the JSON value ``expected``."""
    if is_dataclass(received):
        mismatches = []
        for field in fields(received):
            mismatches += compare(
                expected[field.name],
                getattr(received, field.name),
                f"{path}.{field.name}",
                float32_fields,
            )
        return mismatches
    if path.rsplit(".", 1)[-1] in float32_fields:
        expected = (
            [as_float32(v) for v in expected]
            if isinstance(expected, list)
            else as_float32(expected)
        )
    if isinstance(expected, list):
        received = list(received)
    if expected != received:
        return [f"{path}: expected {expected!r}, received {received!r}"]
    return []


def wait_matched(writer: DataWriter, name: str, timeout_secs: float) -> bool:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        if writer.get_publication_matched_status().current_count > 0:
            return True
        time.sleep(POLL_INTERVAL_SECS)
    report(
        "error",
        step="discovery",
        detail=f"no subscription matched {name} in {timeout_secs} s",
    )
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "fixture", help="JSON file with the messages to send and expect"
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per step")
    parser.add_argument("--domain-id", type=int, default=0, help="DDS domain id")
    arguments = parser.parse_args()

    # A hard stop, in case the other side never closes standard input.
    signal.alarm(int(arguments.timeout * 4) + 10)
    with open(arguments.fixture, encoding="utf-8") as file:
        fixture = json.load(file)

    participant = DomainParticipant(arguments.domain_id)
    latched = Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(16),
    )
    discovery_qos = Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(1),
    )

    outgoing = [
        ("rt/joint_states", JointState, fixture["joint_states"]),
        ("rt/cmd_vel", Twist, fixture["twists"]),
        ("rt/clarify/transitions", Transition, fixture["transitions"]),
    ]
    writers = []
    for topic_name, message_type, messages in outgoing:
        writer = DataWriter(
            participant, Topic(participant, topic_name, message_type), qos=latched
        )
        writers.append(
            (topic_name, writer, [from_json(message_type, m) for m in messages])
        )

    query_reader = DataReader(
        participant,
        Topic(participant, "rt/clarify/preference_query", PreferenceQuery),
        qos=latched,
    )
    echo_writer = DataWriter(
        participant,
        Topic(participant, "rt/interop/query_echo", PreferenceQuery),
        qos=latched,
    )
    discovery_reader = DataReader(
        participant,
        Topic(participant, "ros_discovery_info", ParticipantEntitiesInfo),
        qos=discovery_qos,
    )

    ok = True
    for topic_name, writer, messages in writers:
        if not wait_matched(writer, topic_name, arguments.timeout):
            return 2
        for message in messages:
            writer.write(message)
        report("published", topic=topic_name, count=len(messages))

    query = None
    deadline = time.monotonic() + arguments.timeout
    while query is None and time.monotonic() < deadline:
        samples = query_reader.take()
        query = samples[0] if samples else None
        if query is None:
            time.sleep(POLL_INTERVAL_SECS)
    if query is None:
        report(
            "error",
            step="query",
            detail=f"no PreferenceQuery within {arguments.timeout} s",
        )
        return 3

    float32_fields = {
        "step_period_sec",
        "left_observations",
        "left_actions",
        "right_observations",
        "right_actions",
    }
    mismatches = compare(fixture["query"], query, "query", float32_fields)
    report("query_received", query_id=query.query_id, mismatches=mismatches)
    ok = ok and not mismatches
    if not wait_matched(echo_writer, "rt/interop/query_echo", arguments.timeout):
        return 2
    echo_writer.write(query)
    report("published", topic="rt/interop/query_echo", count=1)

    expected_node = fixture["node_name"]
    nodes: set[str] = set()
    deadline = time.monotonic() + arguments.timeout
    while expected_node not in nodes and time.monotonic() < deadline:
        for info in discovery_reader.take(N=64):
            for node in info.node_entities_info_seq:
                namespace = node.node_namespace.rstrip("/")
                nodes.add(f"{namespace}/{node.node_name}")
        if expected_node not in nodes:
            time.sleep(POLL_INTERVAL_SECS)
    report(
        "discovery",
        expected=expected_node,
        found=expected_node in nodes,
        nodes=sorted(nodes),
    )
    ok = ok and expected_node in nodes

    # The other side closes standard input once it has received everything.
    sys.stdin.read()
    report("done", ok=ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""ROS 2 messages and services on Eclipse Cyclone DDS, without a ROS 2 installation.

The types follow ROS 2's DDS naming: a topic ``<name>`` travels as ``rt/<name>`` with
the type ``<package>::msg::dds_::<Type>_``, and a service ``<name>`` as the request
topic ``rq/<name>Request`` and the response topic ``rr/<name>Reply`` with the types
``<package>::srv::dds_::<Service>_Request_`` and ``..._Response_``. Fields are listed
in wire order, which is the order of the ``.msg`` and ``.srv`` files in ``msg/`` and of
the ROS 2 Jazzy message packages.

Services follow one of two mappings of the Rust DDS transport (ros2-client 0.12).
``enhanced``, its default, sends the request fields alone and pairs a response with its
request through DDS inline QoS. ``cyclone`` puts a 16-byte request id in front of the
fields. Python's Cyclone DDS API cannot read inline QoS, so `ServiceClient` pairs
responses with requests by the request id under ``cyclone`` and by order under
``enhanced``.
"""

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from cyclonedds.core import (
    InstanceState,
    Policy,
    Qos,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import (
    array,
    float32,
    float64,
    int32,
    int64,
    sequence,
    uint8,
    uint32,
    uint64,
)
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader, InvalidSample
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from clarify_sim.errors import InputError

# builtin_interfaces and std_msgs


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str


@dataclass
class MultiArrayDimension(
    IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"
):
    label: str
    size: uint32
    stride: uint32


@dataclass
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: sequence[MultiArrayDimension]
    data_offset: uint32


@dataclass
class Float32MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float32MultiArray_"):
    layout: MultiArrayLayout
    data: sequence[float32]


# sensor_msgs and geometry_msgs


@dataclass
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header
    name: sequence[str]
    position: sequence[float64]
    velocity: sequence[float64]
    effort: sequence[float64]


@dataclass
class Vector3(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64
    y: float64
    z: float64


@dataclass
class Twist(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    linear: Vector3
    angular: Vector3


# clarify_msgs


@dataclass
class Transition(IdlStruct, typename="clarify_msgs::msg::dds_::Transition_"):
    header: Header
    episode_id: uint64
    step: uint32
    observation: sequence[float32]
    action: sequence[float32]
    reward: float32
    has_reward: bool
    terminated: bool
    truncated: bool


@dataclass
class SegmentRef(IdlStruct, typename="clarify_msgs::msg::dds_::SegmentRef_"):
    episode_id: int64
    start_step: uint32
    length_steps: uint32


@dataclass
class PreferenceQuery(IdlStruct, typename="clarify_msgs::msg::dds_::PreferenceQuery_"):
    stamp: Time
    query_id: int64
    left: SegmentRef
    right: SegmentRef
    observation_dim: uint32
    action_dim: uint32
    observation_names: sequence[str]
    action_names: sequence[str]
    step_period_sec: float32
    left_observations: sequence[float32]
    left_actions: sequence[float32]
    right_observations: sequence[float32]
    right_actions: sequence[float32]
    selector: str
    encoder_version: str
    expires_at: Time


@dataclass
class PreferenceAnswer(
    IdlStruct, typename="clarify_msgs::msg::dds_::PreferenceAnswer_"
):
    stamp: Time
    query_id: int64
    answer: uint8
    operator_id: str
    response_time_sec: float32


#: Values of PreferenceAnswer.answer.
ANSWER_LEFT = 1
ANSWER_RIGHT = 2
ANSWER_CANT_TELL = 3
ANSWER_SKIP = 4


@dataclass
class ModelUpdate(IdlStruct, typename="clarify_msgs::msg::dds_::ModelUpdate_"):
    stamp: Time
    version: str
    previous_version: str
    reason: uint8
    path: str
    answers_used: uint32
    reward_accuracy: float32


#: Values of ModelUpdate.reason.
REASON_TRAINED = 1
REASON_ROLLBACK = 2
REASON_MANUAL = 3


@dataclass
class TrainingStatus(IdlStruct, typename="clarify_msgs::msg::dds_::TrainingStatus_"):
    stamp: Time
    run_id: int64
    state: uint8
    stage: str
    stage_progress: float32
    answers_used: uint32
    elapsed_sec: float32
    message: str


#: Values of TrainingStatus.state.
STATE_IDLE = 0
STATE_RUNNING = 1
STATE_SUCCEEDED = 2
STATE_FAILED = 3


# diagnostic_msgs


@dataclass
class KeyValue(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str
    value: str


@dataclass
class DiagnosticStatus(
    IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"
):
    level: uint8
    name: str
    message: str
    hardware_id: str
    values: sequence[KeyValue]


@dataclass
class DiagnosticArray(
    IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"
):
    header: Header
    status: sequence[DiagnosticStatus]


@dataclass
class SubmitAnswerRequest(
    IdlStruct, typename="clarify_msgs::srv::dds_::SubmitAnswer_Request_"
):
    answer: PreferenceAnswer


@dataclass
class SubmitAnswerResponse(
    IdlStruct, typename="clarify_msgs::srv::dds_::SubmitAnswer_Response_"
):
    accepted: bool
    message: str


@dataclass
class CycloneSubmitAnswerRequest(
    IdlStruct, typename="clarify_msgs::srv::dds_::SubmitAnswer_Request_"
):
    """SubmitAnswer request under the ``cyclone`` service mapping."""

    client_id: array[uint8, 8]
    sequence_high: int32
    sequence_low: uint32
    answer: PreferenceAnswer


@dataclass
class CycloneSubmitAnswerResponse(
    IdlStruct, typename="clarify_msgs::srv::dds_::SubmitAnswer_Response_"
):
    """SubmitAnswer response under the ``cyclone`` service mapping."""

    client_id: array[uint8, 8]
    sequence_high: int32
    sequence_low: uint32
    accepted: bool
    message: str


# rmw_dds_common: the ROS 2 graph topic ros_discovery_info.


# rmw_dds_common/msg/Gid has 16 bytes from ROS 2 Iron on (24 before).
@dataclass
class Gid(IdlStruct, typename="rmw_dds_common::msg::dds_::Gid_"):
    data: array[uint8, 16]


@dataclass
class NodeEntitiesInfo(
    IdlStruct, typename="rmw_dds_common::msg::dds_::NodeEntitiesInfo_"
):
    node_namespace: str
    node_name: str
    reader_gid_seq: sequence[Gid]
    writer_gid_seq: sequence[Gid]


@dataclass
class ParticipantEntitiesInfo(
    IdlStruct, typename="rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_"
):
    gid: Gid
    node_entities_info_seq: sequence[NodeEntitiesInfo]


# QoS profiles and helpers

#: Reliable, volatile, keep last 10: the ROS 2 default profile.
DEFAULT_DEPTH = 10

ServiceMapping = Literal["enhanced", "cyclone"]
SERVICE_MAPPINGS: tuple[ServiceMapping, ...] = ("enhanced", "cyclone")


def reliable_qos(depth: int = DEFAULT_DEPTH) -> Qos:
    """Return the ROS 2 default profile with history depth `depth`."""
    return Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.Volatile,
        Policy.History.KeepLast(depth),
    )


def lossless_qos() -> Qos:
    """Return a reliable, volatile, keep-all profile. A reader with it never drops an
    unread sample, so a fast writer waits for it instead."""
    return Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.Volatile,
        Policy.History.KeepAll,
    )


def latched_qos(depth: int = 1) -> Qos:
    """Return a reliable, transient-local profile: late readers receive its history."""
    return Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(depth),
    )


def topic_name(name: str) -> str:
    """Return the DDS topic of the ROS 2 topic `name`, such as ``rt/clarify/query``."""
    return "rt/" + name.lstrip("/")


def now() -> Time:
    """Return the current wall-clock time as a ROS 2 Time."""
    nanos = time.time_ns()
    return Time(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)


def time_seconds(stamp: Time) -> float:
    """Return `stamp` in seconds since the Unix epoch."""
    return stamp.sec + stamp.nanosec * 1e-9


def float32_array(values: Any) -> Float32MultiArray:
    """Wrap a flat sequence of numbers as a Float32MultiArray with an empty layout."""
    return Float32MultiArray(
        layout=MultiArrayLayout(dim=[], data_offset=0), data=[float(v) for v in values]
    )


class Waiter:
    """Blocks until one of a set of readers has unread samples."""

    def __init__(self, domain: DomainParticipant, readers: tuple[DataReader, ...]):
        self._waitset = WaitSet(domain)
        # The conditions must stay referenced while attached.
        self._conditions = [
            ReadCondition(
                reader, SampleState.NotRead | ViewState.Any | InstanceState.Any
            )
            for reader in readers
        ]
        for condition in self._conditions:
            self._waitset.attach(condition)

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; return whether a reader has unread samples."""
        nanos = max(0, int(seconds * 1e9))
        return self._waitset.wait(nanos) > 0


class Participant:
    """A DDS domain participant with writers and readers named by ROS 2 topic."""

    def __init__(self, domain_id: int = 0) -> None:
        if not 0 <= domain_id <= 232:
            raise InputError(f"invalid DDS domain id {domain_id}: use 0 to 232")
        self.domain = DomainParticipant(domain_id)

    def writer(self, name: str, message_type: type, qos: Qos) -> DataWriter:
        """Create a writer on the ROS 2 topic `name`."""
        topic = Topic(self.domain, topic_name(name), message_type)
        return DataWriter(self.domain, topic, qos=qos)

    def reader(self, name: str, message_type: type, qos: Qos) -> DataReader:
        """Create a reader of the ROS 2 topic `name`."""
        topic = Topic(self.domain, topic_name(name), message_type)
        return DataReader(self.domain, topic, qos=qos)

    def waiter(self, *readers: DataReader) -> Waiter:
        """Return a `Waiter` that wakes when any of `readers` has unread data."""
        return Waiter(self.domain, readers)


def take_all(reader: DataReader, batch: int = 256) -> list[Any]:
    """Take every sample `reader` has now, leaving out the data-less samples that
    announce a writer's disposal or departure."""
    samples: list[Any] = []
    while True:
        taken = reader.take(N=batch)
        samples.extend(s for s in taken if not isinstance(s, InvalidSample))
        if len(taken) < batch:
            return samples


def wait_publication_matched(writer: DataWriter, timeout: float) -> bool:
    """Wait until a reader matched `writer`; return False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if writer.get_publication_matched_status().current_count > 0:
            return True
        time.sleep(0.02)
    return False


def wait_subscription_matched(reader: DataReader, timeout: float) -> bool:
    """Wait until a writer matched `reader`; return False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reader.get_subscription_matched_status().current_count > 0:
            return True
        time.sleep(0.02)
    return False


class ServiceError(RuntimeError):
    """A service call failed: no server, or no response in time."""


class ServiceClient:
    """A client of the clarify_msgs/SubmitAnswer service.

    Calls are sequential. Under the ``enhanced`` mapping a response carries no request
    id in its fields, so a call first drops responses left over from earlier timed-out
    calls and then takes the first response that arrives.
    NOTE: under ``enhanced``, a second client of the same service would receive this
    client's responses too, and this client theirs.
    """

    def __init__(
        self, participant: Participant, name: str, mapping: ServiceMapping
    ) -> None:
        if mapping not in SERVICE_MAPPINGS:
            raise InputError(
                f"invalid service mapping {mapping!r}: use one of "
                f"{', '.join(SERVICE_MAPPINGS)}"
            )
        self.name = name
        self.mapping = mapping
        if mapping == "cyclone":
            request_type, response_type = (
                CycloneSubmitAnswerRequest,
                CycloneSubmitAnswerResponse,
            )
        else:
            request_type, response_type = SubmitAnswerRequest, SubmitAnswerResponse
        domain = participant.domain
        base = name.lstrip("/")
        self._writer = DataWriter(
            domain,
            Topic(domain, f"rq/{base}Request", request_type),
            qos=reliable_qos(),
        )
        self._reader = DataReader(
            domain, Topic(domain, f"rr/{base}Reply", response_type), qos=reliable_qos()
        )
        self._waiter = Waiter(domain, (self._reader,))
        self._client_id = list(os.urandom(8))
        self._sequence = 0

    def wait_for_server(self, timeout: float) -> bool:
        """Wait until both service topics have matched the server's endpoints."""
        deadline = time.monotonic() + timeout
        matched = wait_publication_matched(self._writer, timeout)
        remaining = max(0.0, deadline - time.monotonic())
        return matched and wait_subscription_matched(self._reader, remaining)

    def call(self, answer: PreferenceAnswer, timeout: float) -> SubmitAnswerResponse:
        """Send `answer` and return the server's response; raise `ServiceError`."""
        take_all(self._reader)
        self._sequence += 1
        if self.mapping == "cyclone":
            request: Any = CycloneSubmitAnswerRequest(
                client_id=self._client_id,
                sequence_high=self._sequence >> 32,
                sequence_low=self._sequence & 0xFFFF_FFFF,
                answer=answer,
            )
        else:
            request = SubmitAnswerRequest(answer=answer)
        self._writer.write(request)

        deadline = time.monotonic() + timeout
        while True:
            for response in take_all(self._reader):
                if self.mapping == "enhanced":
                    return response
                if (
                    list(response.client_id) == self._client_id
                    and (response.sequence_high << 32) + response.sequence_low
                    == self._sequence
                ):
                    return SubmitAnswerResponse(
                        accepted=response.accepted, message=response.message
                    )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceError(
                    f"service {self.name} sent no response to query "
                    f"{answer.query_id} within {timeout} s"
                )
            self._waiter.wait(remaining)

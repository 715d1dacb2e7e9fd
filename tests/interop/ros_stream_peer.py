"""A robot on Eclipse Cyclone DDS for the recorder interoperability test.

With ROS 2 naming, like ros_peer.py, it publishes what a robot sends while clarify records:

1. an episode start on ``rt/rec/episode`` (std_msgs/String);
2. ``--count`` sensor_msgs/JointState messages on ``rt/rec/joint_states`` and as many
   geometry_msgs/Twist messages on ``rt/rec/cmd_vel``, at ``--rate`` Hz, stamped with the
   current time; message k has joint positions (k, -k) and linear x = k;
3. a task end on ``rt/rec/episode``;
4. two episodes of clarify_msgs/Transition on ``rt/rec/transitions``, 5 steps each: the
   first ends with ``terminated``, the second with ``truncated``; step s of episode e has
   observation (e, s) and action (s / 10).

It reports on stdout, one JSON object per line with an ``event`` key, and stays alive until
its standard input closes.

Usage: ros_stream_peer.py [--count N] [--rate HZ] [--timeout SECONDS] [--domain-id ID]
"""

import argparse
import signal
import sys
import time

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic
from cyclonedds.util import duration
# Importing ros_peer also puts the checkout's sim/ package on sys.path.
from ros_peer import report, wait_matched

from clarify_sim.ros import (
    Header,
    JointState,
    String,
    Transition,
    Twist,
    Vector3,
    now,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=100, help="joint states and twists"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per step")
    parser.add_argument("--domain-id", type=int, default=0, help="DDS domain id")
    arguments = parser.parse_args()
    signal.alarm(int(arguments.timeout * 4 + arguments.count / arguments.rate) + 10)

    participant = DomainParticipant(arguments.domain_id)
    reliable = Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.Volatile,
        Policy.History.KeepLast(1000),
    )

    def writer(name: str, message_type: type) -> DataWriter:
        return DataWriter(
            participant, Topic(participant, name, message_type), qos=reliable
        )

    episode = writer("rt/rec/episode", String)
    joints = writer("rt/rec/joint_states", JointState)
    twists = writer("rt/rec/cmd_vel", Twist)
    transitions = writer("rt/rec/transitions", Transition)
    for name, item in [
        ("rt/rec/episode", episode),
        ("rt/rec/joint_states", joints),
        ("rt/rec/cmd_vel", twists),
        ("rt/rec/transitions", transitions),
    ]:
        if not wait_matched(item, name, arguments.timeout):
            return 2
    # Matching on this side can complete before the other side has matched this writer.
    time.sleep(0.5)

    episode.write(String(data="start"))
    period = 1.0 / arguments.rate
    started = time.monotonic()
    for k in range(arguments.count):
        delay = started + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        header = Header(stamp=now(), frame_id="")
        joints.write(
            JointState(
                header=header,
                name=["elbow", "shoulder"],
                position=[-float(k), float(k)],
                velocity=[],
                effort=[],
            )
        )
        twists.write(
            Twist(
                linear=Vector3(x=float(k), y=0.0, z=0.0),
                angular=Vector3(x=0.0, y=0.0, z=0.0),
            )
        )
    time.sleep(period)
    episode.write(String(data="task_end"))
    report("published", topic="rt/rec/joint_states", count=arguments.count)

    for episode_id in range(2):
        for step in range(5):
            transitions.write(
                Transition(
                    header=Header(stamp=now(), frame_id=""),
                    episode_id=episode_id,
                    step=step,
                    observation=[float(episode_id), float(step)],
                    action=[step / 10],
                    reward=1.0,
                    has_reward=True,
                    terminated=episode_id == 0 and step == 4,
                    truncated=episode_id == 1 and step == 4,
                )
            )
    report("published", topic="rt/rec/transitions", count=10)
    report("stream_done")

    sys.stdin.read()
    report("done", ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

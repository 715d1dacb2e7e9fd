"""Starts the clarify node and the policy runner with one parameter file.

Usage: ros2 launch clarify clarify.launch.py [params_file:=PATH] [namespace:=NS]

Both nodes run the `clarify` program and read their `ros__parameters` sections from
the parameter file (default: clarify.yaml installed beside this file).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    default_params = PathJoinSubstitution(
        [FindPackageShare("clarify"), "launch", "clarify.yaml"]
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=default_params,
                description="Parameter file in the ROS 2 layout for both nodes",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="Namespace of both nodes"
            ),
            Node(
                package="clarify",
                executable="clarify",
                name="clarify_node",
                namespace=namespace,
                arguments=["node"],
                parameters=[params_file],
                output="screen",
            ),
            Node(
                package="clarify",
                executable="clarify",
                name="clarify_policy",
                namespace=namespace,
                arguments=["policy", "run"],
                parameters=[params_file],
                output="screen",
            ),
        ]
    )

"""Launch perception nodes on a robot (system ROS 2, colcon-built perception_pkg).

    ros2 launch perception_pkg perception.launch.py
    ros2 launch perception_pkg perception.launch.py params_file:=/path/my.yaml nodes:=cloud_filter
    ros2 launch perception_pkg perception.launch.py nodes:=detection   # camera detection only
    ros2 launch perception_pkg perception.launch.py nodes:=pose   # set pose.detections_topic or detector_card
    ros2 launch perception_pkg perception.launch.py container:=false   # one process per node

By default all nodes share one process (`perception run`), the Python
equivalent of a composable container (one executor thread for the callbacks, a worker thread per node).
Our Fast DDS profile for large messages (config/dds/fastdds_large_messages.xml) is set unless the
environment already names one; for best-effort camera or LiDAR drivers with frames of several MB, also
raise the kernel's socket buffer limit (README, "Pub/sub across processes").
"""

import os

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def _per_node(context, *args, **kwargs):
    names = [n.strip() for n in LaunchConfiguration("nodes").perform(context).split(",") if n.strip()]
    params = LaunchConfiguration("params_file").perform(context)
    return [
        Node(
            package="perception_pkg",
            executable=name,
            name=name,
            parameters=[params],
            output="screen",
            condition=UnlessCondition(LaunchConfiguration("container")),
        )
        for name in names
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("perception_pkg")
    profile = os.path.join(share, "config", "dds", "fastdds_large_messages.xml")
    actions = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception.yaml")),
        DeclareLaunchArgument(
            "nodes",
            # pose takes its person boxes from detection (/detection/detections_2d) unless configured
            default_value="cloud_filter,detection,pose",
            description="comma-separated node names: cloud_filter, detection, pose, completion, weather",
        ),
        DeclareLaunchArgument(
            "container",
            default_value="true",
            description="true: all nodes in one process; false: one process each",
        ),
    ]
    for var in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        if not os.environ.get(var):
            actions.append(SetEnvironmentVariable(var, profile))
    actions += [
        ExecuteProcess(
            cmd=[
                os.path.join(get_package_prefix("perception_pkg"), "lib", "perception_pkg", "perception"),
                "run",
                "--nodes",
                LaunchConfiguration("nodes"),
                "--params-file",
                LaunchConfiguration("params_file"),
            ],
            output="screen",
            condition=IfCondition(LaunchConfiguration("container")),
        ),
        OpaqueFunction(function=_per_node),
    ]
    return LaunchDescription(actions)

"""Offline evaluation: replay a rosbag2 through the pipelines, as fast as the CPU allows.

Uses the same conversion code and pipeline cores as the live nodes, on rosbags message objects.
"""

from perception_pkg.replay.runner import ReplayResult, replay_bag

__all__ = ["ReplayResult", "replay_bag"]

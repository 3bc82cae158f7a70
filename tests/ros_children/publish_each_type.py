"""Child process: publish every sample message at 20 Hz until killed (or 60 s pass)."""

import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sample_messages import build

from perception_pkg.ros.dds import use_large_message_profile

use_large_message_profile()
rclpy.init()
node = rclpy.create_node("publish_each_type")
msgs = build()
qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
pubs = {topic: node.create_publisher(type(msg), topic, qos) for topic, msg in msgs.items()}
print("ready", flush=True)
deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:
        for topic, msg in msgs.items():
            pubs[topic].publish(msg)
        rclpy.spin_once(node, timeout_sec=0.05)
except KeyboardInterrupt:
    pass
finally:
    node.destroy_node()
    rclpy.try_shutdown()

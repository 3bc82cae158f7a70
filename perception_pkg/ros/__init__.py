"""The thin ROS layer: nodes, QoS, parameters, diagnostics, message conversion.

Importing this package does not import rclpy; ``perception_pkg.msgs`` works on rclpy and rosbags
message objects alike (same field names) and is used by bag replay without a ROS install.
"""

"""perception_pkg: ROS 2 perception with a pure-numpy core and a thin ROS layer.

The core (pipelines, decoders, engines, metrics, sim, bag replay) never imports rclpy; ``perception_pkg.ros``
holds the nodes. See DESIGN.md in the repository for the architecture.
"""

__version__ = "0.1.0"

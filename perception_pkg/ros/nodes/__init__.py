"""Node registry: name used in config files and on the command line -> 'module:Class'."""

NODES: dict[str, str] = {
    "cloud_filter": "perception_pkg.ros.nodes.cloud_filter:CloudFilterNode",
    "detection": "perception_pkg.ros.nodes.detection:DetectionNode",
    "pose": "perception_pkg.ros.nodes.pose:PoseNode",
    "completion": "perception_pkg.ros.nodes.completion:CompletionNode",
    "weather": "perception_pkg.ros.nodes.weather:WeatherNode",
}

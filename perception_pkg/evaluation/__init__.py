"""Evaluation of the stack's capabilities against simulator ground truth (datasets and rosbag2).

- ``sources``: frames from a ``perception sim`` dataset folder or a bag (images, camera, ground truth);
- ``detect``: detection scoring (COCO box AP, TIDE breakdown, KITTI AP3D/AP_BEV);
- ``run``: a detector over sources with timings, and ``run_detect_eval`` (``perception eval detect``);
- ``report`` and ``plots``: the detection report's table, JSON and figures;
- ``pose`` and ``pose_plots``: keypoint AP and PCK of a pose model.

The cores are numpy only, no rclpy, so the same code scores a dataset folder, a bag or a replay output.
"""

"""Evaluation of the stack's capabilities against simulator ground truth (datasets and rosbag2).

Each capability has its own module (``detect``: COCO box AP, TIDE breakdown, KITTI AP3D/AP_BEV);
the cores are numpy only, no rclpy, so the same code scores a dataset folder, a bag or a replay output.
"""

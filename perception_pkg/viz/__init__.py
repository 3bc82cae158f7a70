"""Drawing results onto images (numpy + OpenCV, no ROS): debug images for nodes, replay and reports."""

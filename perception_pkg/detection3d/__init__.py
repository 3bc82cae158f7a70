"""RTM3D 3D-box recovery from keypoints (pure numpy/scipy): Multi-Bin decode and the LM solver."""

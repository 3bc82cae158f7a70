"""Training and export code (needs torch): ONNX export with parity checks, small reference networks.

Runtime code never imports this package; import its modules explicitly (``perception_pkg.training.export``).
"""

"""The fuzz run over the wire: seeded malformed Image, CompressedImage, CameraInfo and PointCloud2 from a
publisher on Fast DDS defaults to the nodes (`perception run`, our profile), every kind to the node
that reads it (detection: images, compressed images, CameraInfo; cloud_filter: clouds).

Per kind: how many were sent (by intent: valid, field faults, corrupt CDR), what the node counted
(received, processed, dropped by the latest-frame slot, malformed, errors), whether every message
ended in exactly one counter, and whether the node survived (up at the end, exit 0 on SIGINT, no
traceback or error line). Exits 1 on any failure. The generator: perception_pkg/ros/fuzz.py.

    python benchmarks/fuzz_wire.py [--count 2000] [--seed 0] [--kinds image,compressed,camera_info,cloud]
"""

import sys

from perception_pkg.ros.fuzz import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))

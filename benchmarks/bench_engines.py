"""Engine benchmark: preprocess / infer / decode, ONNX Runtime vs torch eager (and torch CUDA on a GPU).

The same as ``perception bench``; see ``perception bench --help``. Examples:

    python benchmarks/bench_engines.py                     # models/*/card.yaml, else the built-in network
    python benchmarks/bench_engines.py --card models/x/card.yaml --runs 50 --json out/bench_x.json
"""

from __future__ import annotations

import sys

from perception_pkg.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

#!/usr/bin/env bash
# The test command (README, .ci/run): set up .venv if needed, then lint and run the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k pointcloud
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/bootstrap.sh" test
# shellcheck disable=SC1091
source "$here/.venv/bin/activate"
cd "$here"
ruff check perception_pkg tests benchmarks
exec python -m pytest "$@"

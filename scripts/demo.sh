#!/usr/bin/env bash
# The main job on the embedded default: set up .venv if needed, then replay the bundled sample bag
# through the perception pipelines and write a report to out/demo. Extra arguments go to
# `perception replay`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/bootstrap.sh" run
# shellcheck disable=SC1091
source "$here/.venv/bin/activate"
cd "$here"
exec perception demo --out "$here/out/demo" "$@"

#!/usr/bin/env bash
# Creates or reuses .venv in the repository and installs what a profile needs, then builds the ROS 2
# interface packages into it. Idempotent: a second run only re-checks stamps (a few seconds).
#   scripts/bootstrap.sh run    runtime + ROS 2 wheels + simulator
#   scripts/bootstrap.sh test   the above + test tools + torch (CPU, pinned) for export/parity tests
set -euo pipefail
profile="${1:-run}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$here/.venv"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

pick_python() {
  local c
  for c in "${PYTHON:-}" python3.12 python3.11 python3.10 python3; do
    [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
      echo "$c"; return
    fi
  done
  return 1
}

# --- system packages: only what pip cannot provide --------------------------------------------
py="$(pick_python)" || { log "need Python 3.10-3.12 (set PYTHON=/path/to/python3.x)"; exit 1; }
missing=()
"$py" -c 'import venv, ensurepip' 2>/dev/null || missing+=("python3-venv")
[[ -f "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]] || missing+=("python3-dev")
command -v cmake >/dev/null || missing+=("cmake")
command -v c++ >/dev/null || missing+=("g++")
command -v make >/dev/null || missing+=("make")
# open3d (simulator ray casting) links against libusb at import time
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || missing+=("libusb-1.0-0")
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing system packages: ${missing[*]}"
    log "run: sudo apt-get install -y ${missing[*]}   (then run this command again)"
    exit 1
  fi
fi

# --- virtual environment ---------------------------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating $venv with $py"
  "$py" -m venv "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp_of() { cat "$here/pyproject.toml" "$here"/requirements/*.txt | sha256sum | cut -c1-16; echo "$1"; }
stamp="$venv/.perception_pkg_$profile"
want="$(stamp_of "$profile")"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  log "python packages up to date ($profile)"
else
  log "installing python packages ($profile); the first time takes a few minutes"
  pip install -q --upgrade pip setuptools wheel
  extras="sim"
  [[ "$profile" == "test" ]] && extras="sim,test,train"
  pip install -q -r "$here/requirements/ros-pip.txt" -r "$here/requirements/extra-deps.txt" -e "$here[$extras]"
  pip install -q --no-deps -r "$here/requirements/no-deps.txt"
  # Something may still have pulled the GUI OpenCV build; it shadows the headless one and needs libGL.
  if pip show -q opencv-python 2>/dev/null; then
    pip uninstall -q -y opencv-python
    pip install -q --force-reinstall --no-deps opencv-python-headless
  fi
  echo "$want" >"$stamp"
fi

bash "$here/scripts/build_interfaces.sh"

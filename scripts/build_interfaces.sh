#!/usr/bin/env bash
# Builds the interface packages in ros2_ws/src into the active virtual environment with plain cmake
# (the pip ROS wheels ship no colcon workspace). Skips vision_msgs and tf2_msgs when real ones are importable, and
# skips a package whose sources have not changed since its last build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VIRTUAL_ENV:?activate the virtual environment first}"
py="$venv/bin/python"
build_root="$here/build/ros2_ws"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"

build_pkg() {  # build_pkg <source dir> <package name>
  local src="$1" name="$2" stamp hash
  stamp="$venv/share/$name/.perception_pkg_build_hash"
  hash=$(cd "$src" && find . ../cmake -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    echo "[interfaces] $name is up to date"
    return
  fi
  echo "[interfaces] building $name"
  cmake -S "$src" -B "$build_root/$name" -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$py" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -Wno-dev >"$build_root/$name.log" 2>&1 \
    || { tail -40 "$build_root/$name.log"; exit 1; }
  cmake --build "$build_root/$name" -j"$(nproc)" >>"$build_root/$name.log" 2>&1 \
    || { tail -40 "$build_root/$name.log"; exit 1; }
  cmake --install "$build_root/$name" >>"$build_root/$name.log" 2>&1 \
    || { tail -40 "$build_root/$name.log"; exit 1; }
  echo "$hash" >"$stamp"
}

mkdir -p "$build_root"
if "$py" -c "import vision_msgs.msg" 2>/dev/null && [[ ! -f "$venv/share/vision_msgs/.perception_pkg_build_hash" ]]; then
  echo "[interfaces] using the installed vision_msgs"
else
  build_pkg "$here/ros2_ws/src/vision_msgs_subset" vision_msgs
fi
if "$py" -c "import tf2_msgs.msg" 2>/dev/null && [[ ! -f "$venv/share/tf2_msgs/.perception_pkg_build_hash" ]]; then
  echo "[interfaces] using the installed tf2_msgs"
else
  build_pkg "$here/ros2_ws/src/tf2_msgs_subset" tf2_msgs
fi
build_pkg "$here/ros2_ws/src/perception_msgs" perception_msgs

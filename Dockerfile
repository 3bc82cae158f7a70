# syntax=docker/dockerfile:1.7
# (BuildKit syntax: the Jetson target writes its entrypoint with a heredoc COPY)
# perception_pkg images. Two targets, both colcon-built on a system ROS 2:
#
#   Jetson (L4T r36 / JetPack 6, ROS 2 Humble, TensorRT and CUDA from the base image):
#     docker build --target jetson -t perception_pkg:jetson .
#     docker run --runtime nvidia --network host --ipc host perception_pkg:jetson
#   x86-64 (ROS 2 Jazzy, ONNX Runtime on the CPU):
#     docker build --target x86 -t perception_pkg:x86 .
#     docker run --network host --ipc host perception_pkg:x86
#
# --ipc host lets Fast DDS shared memory reach nodes outside the container; without it, large
# messages to other containers fall back to UDP.
# Not built in this repository's CI (no Docker, no Jetson there); keep it minimal.

# ---------------------------------------------------------------------------------------------
# The sources both targets build: a colcon workspace with our messages and perception_pkg, whose
# config/, launch/, models/ and rviz/ sit beside it as in the repository (setup.py installs them).
FROM scratch AS sources
COPY ros2_ws/src/perception_msgs /ws/src/perception_msgs
COPY ros2_ws/src/cmake /ws/src/cmake
COPY pyproject.toml README.md /ws/perception_pkg_src/
COPY perception_pkg /ws/perception_pkg_src/perception_pkg
COPY config /ws/perception_pkg_src/config
COPY launch /ws/perception_pkg_src/launch
COPY models /ws/perception_pkg_src/models
COPY rviz /ws/perception_pkg_src/rviz

# ---------------------------------------------------------------------------------------------
# Jetson: dustynv's l4t-ros images carry JetPack 6 (CUDA 12.2, TensorRT 10, cuDNN) plus ROS 2 Humble
# built from source in /opt/ros/humble. tensorrt is importable from the base image's python3.
FROM dustynv/ros:humble-ros-base-l4t-r36.2.0 AS jetson
ENV ROS_DISTRO=humble
# vision_msgs is not part of ros-base in these images: build the real one from source.
WORKDIR /ws/src
RUN git clone --depth 1 -b ros2 https://github.com/ros-perception/vision_msgs.git
COPY --from=sources /ws /ws
RUN ln -s /ws/perception_pkg_src/perception_pkg perception_pkg
# pycuda builds against the image's CUDA; onnxruntime-gpu for JetPack 6 comes from NVIDIA's index.
RUN python3 -m pip install --no-cache-dir "numpy<2" opencv-python-headless pyyaml scipy rosbags mcap \
        mcap-ros2-support tqdm pycocotools scikit-image simplejpeg pycuda \
    && python3 -m pip install --no-cache-dir onnxruntime-gpu \
        --extra-index-url https://pypi.jetson-ai-lab.dev/jp6/cu122
WORKDIR /ws
RUN . /opt/ros/humble/install/setup.sh \
    && colcon build --merge-install --cmake-args -DBUILD_TESTING=OFF
COPY <<'ENTRY' /ros_entrypoint_perception.sh
#!/bin/bash
set -e
source /opt/ros/humble/install/setup.bash
source /ws/install/setup.bash
exec "$@"
ENTRY
RUN chmod +x /ros_entrypoint_perception.sh
ENTRYPOINT ["/ros_entrypoint_perception.sh"]
CMD ["ros2", "launch", "perception_pkg", "perception.launch.py"]

# ---------------------------------------------------------------------------------------------
# x86-64: official ROS 2 Jazzy image; vision_msgs from apt, so our subset package is not built.
FROM ros:jazzy-ros-base AS x86
RUN apt-get update && apt-get install -y --no-install-recommends \
        ros-jazzy-vision-msgs ros-jazzy-visualization-msgs ros-jazzy-diagnostic-msgs \
        python3-pip python3-opencv python3-yaml python3-scipy \
    && rm -rf /var/lib/apt/lists/*
COPY --from=sources /ws /ws
WORKDIR /ws/src
RUN ln -s /ws/perception_pkg_src/perception_pkg perception_pkg
# Ubuntu 24.04 marks the system Python as externally managed; these wheels do not clash with apt's.
RUN python3 -m pip install --no-cache-dir --break-system-packages onnxruntime rosbags mcap \
        mcap-ros2-support tqdm pycocotools scikit-image simplejpeg
WORKDIR /ws
RUN . /opt/ros/jazzy/setup.sh && colcon build --cmake-args -DBUILD_TESTING=OFF
RUN sed -i 's|exec "\$@"|source /ws/install/setup.bash\nexec "$@"|' /ros_entrypoint.sh
CMD ["ros2", "launch", "perception_pkg", "perception.launch.py"]

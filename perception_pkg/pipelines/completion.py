"""completion: the objects of each LiDAR scan completed by SoftPoolNet (models/sim_completion).

Inputs   ``cloud``  sensor_msgs/PointCloud2 with x, y, z (``cloud_topic``)
         ``boxes``  vision_msgs/Detection3DArray (``boxes_topic``): the detection node's boxes (camera
                    optical frame) or ground-truth boxes (LiDAR frame), paired with the scan by exact
                    header stamp with a bounded wait (``match_max_wait_s``, ``match_buffer``). With
                    ``boxes_topic: ''`` there is no such input and the boxes come from the scan itself
                    (ground plane, DBSCAN, minimum-area rectangle: ``completion/cluster.py``).
         ``tf``     tf2_msgs/TFMessage (``tf_topic``, normally /tf_static): boxes whose frame is not the
                    scan's are brought into it through this transform tree (``extrinsics: tf``) or with
                    ``boxes_to_lidar`` (``extrinsics: config``). Not an input where tf2_msgs is not
                    installed (the pip environment), nor with ``extrinsics: config``.
Outputs  ``completed``  PointCloud2 in the scan's frame (its header), fields x, y, z (float32) and
                        object_id (uint32: the box's id when it is a number, else its row): every
                        completed object of the scan, 2,048 points each
         ``markers``    MarkerArray: the completed points and the boxes (``viz/completion.py``)

Per scan: the boxes of ``classes`` (score >= ``min_score``, the ``max_objects`` nearest), their points
(grown by ``box_grow``, above ``ground_margin``), the PCN object frame, one batched engine call for all
objects, the exact inverse transform (``completion/scan.py``). Counted in diagnostics: objects
completed, skipped with too few points (and by class / score / size / max_objects), empty scans (no
finite point), NaN points dropped, box arrays with no transform to the scan's frame, and the matcher's
counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_pkg.completion.cluster import ClusterParams, cluster_boxes
from perception_pkg.completion.completer import Completer
from perception_pkg.completion.frame import Boxes
from perception_pkg.completion.scan import ScanCompletion, ScanParams, complete_scan
from perception_pkg.completion.transforms import StaticTransforms
from perception_pkg.engines.select import BACKENDS
from perception_pkg.msgs import pointcloud_to_xyz, structured_to_pointcloud
from perception_pkg.msgs.boxes3d import detection3d_array_to_boxes, pose_to_matrix, tf_message_to_transforms
from perception_pkg.msgs.factory import MessageFactory
from perception_pkg.pipelines.base import Job, Pipeline, Port, Wanted, matched_jobs
from perception_pkg.pose.matcher import StampMatcher
from perception_pkg.runtime.settings import ConfigError, setting
from perception_pkg.viz.completion import completion_markers

log = logging.getLogger("perception_pkg.pipelines.completion")

NODE_NAME = "completion"
CLOUD = "sensor_msgs/msg/PointCloud2"
DETECTIONS_3D = "vision_msgs/msg/Detection3DArray"
TF = "tf2_msgs/msg/TFMessage"
MARKERS = "visualization_msgs/msg/MarkerArray"
CLOUD_DTYPE = np.dtype({"names": ["x", "y", "z", "object_id"], "formats": ["<f4", "<f4", "<f4", "<u4"]})


@dataclass(frozen=True)
class CompletionSettings:
    cloud_topic: str = setting("/lidar/points", "sensor_msgs/PointCloud2 scan (x, y, z fields)")
    boxes_topic: str = setting(
        "/detection/detections_3d",
        "vision_msgs/Detection3DArray paired with the scan by exact stamp; '' = boxes from clustering",
    )
    tf_topic: str = setting("/tf_static", "tf2_msgs/TFMessage giving the boxes' frame -> LiDAR; '' = none")
    extrinsics: str = setting(
        "tf",
        "boxes in another frame than the scan: 'tf' (from tf_topic) or 'config' (boxes_to_lidar)",
        choices=("tf", "config"),
    )
    boxes_to_lidar: tuple = setting(
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
        "extrinsics: config: boxes' frame -> LiDAR frame as x, y, z (m), qx, qy, qz, qw",
        length=7,
    )
    classes: tuple = setting(("car",), "class names of the boxes to complete")
    min_score: float = setting(0.0, "ignore boxes below this score", minimum=0.0, maximum=1.0)
    model_card: str = setting("", "completion card.yaml; empty: models/sim_completion/card.yaml")
    backend: str = setting("auto", "inference backend", choices=BACKENDS)
    threads: int = setting(0, "CPU threads for the engine (0 = the backend's default)", minimum=0)
    min_points: int = setting(10, "skip (and count) objects with fewer points inside their box", minimum=1)
    box_grow: float = setting(0.1, "grow each box by this on every side but the bottom (m)", minimum=0.0)
    ground_margin: float = setting(
        0.15, "ignore points lower than this above the box's bottom face (the road; m)", minimum=0.0
    )
    max_objects: int = setting(32, "most objects completed per scan (nearest first)", minimum=1)
    seed: int = setting(0, "seed of the resampling to the network's input size", minimum=0)
    output_topic: str = setting("~/completed", "PointCloud2 (x, y, z, object_id) in the scan's frame")
    markers_topic: str = setting("~/markers", "MarkerArray of the completed objects")
    marker_lifetime_s: float = setting(0.5, "RViz marker lifetime (s)", minimum=0.0)
    marker_point_size: float = setting(0.05, "RViz point size (m)", minimum=1e-4)
    match_max_wait_s: float = setting(0.5, "longest wait for the boxes of a scan (s)", minimum=1e-3)
    match_buffer: int = setting(10, "scans (and box arrays) kept waiting", minimum=1)
    cluster_ground_distance: float = setting(
        0.2, "clustering: RANSAC ground plane inlier distance (m)", minimum=0.01
    )
    cluster_eps: float = setting(0.6, "clustering: DBSCAN neighbourhood radius (m)", minimum=0.05)
    cluster_min_points: int = setting(15, "clustering: DBSCAN core points / smallest cluster", minimum=2)
    cluster_range: float = setting(40.0, "clustering: only points within this range (m)", minimum=1.0)
    cluster_length: tuple = setting((2.5, 6.5), "clustering: car-like box length range (m)", length=2)
    cluster_width: tuple = setting((1.2, 2.6), "clustering: car-like box width range (m)", length=2)
    cluster_height: tuple = setting((0.8, 2.4), "clustering: car-like cluster height range (m)", length=2)


class CompletionPipeline(Pipeline):
    name = NODE_NAME

    def __init__(self, settings: CompletionSettings, types: MessageFactory, completer: Completer) -> None:
        super().__init__(types)
        self.settings = s = settings
        self.completer = completer
        self.params = ScanParams(
            classes=tuple(s.classes), min_score=s.min_score, min_points=s.min_points, grow=s.box_grow,
            ground_margin=s.ground_margin, max_objects=s.max_objects,
        )  # fmt: skip
        self.cluster_params = ClusterParams(
            ground_distance=s.cluster_ground_distance, eps=s.cluster_eps, min_points=s.cluster_min_points,
            max_range=s.cluster_range, length=tuple(s.cluster_length), width=tuple(s.cluster_width),
            height=tuple(s.cluster_height), label=s.classes[0] if s.classes else "car",
        )  # fmt: skip
        self.inputs = [Port("cloud", s.cloud_topic, CLOUD)]
        self.matcher: StampMatcher[Any, Any] | None = None
        self.tf_status = "not needed"
        if s.boxes_topic:
            self.inputs.append(Port("boxes", s.boxes_topic, DETECTIONS_3D, depth=s.match_buffer))
            self.matcher = StampMatcher(s.match_max_wait_s, s.match_buffer)
            if s.extrinsics == "config":
                self.tf_status = "boxes_to_lidar (config)"
            elif s.tf_topic:
                try:
                    types.cls(TF)
                except (ImportError, KeyError, AttributeError) as exc:
                    self.tf_status = (
                        f"no TF: {TF} unavailable ({type(exc).__name__}); boxes must be in the scan's frame"
                    )
                    log.warning("completion: %s", self.tf_status)
                else:
                    # tf2's convention: /tf_static is transient local (sent once, kept for late joiners),
                    # /tf volatile; a transient-local reader of a volatile writer would get nothing
                    latched = s.tf_topic.rstrip("/").endswith("tf_static")
                    self.inputs.append(Port("tf", s.tf_topic, TF, depth=10, latched=latched))
                    self.tf_status = f"from {s.tf_topic}"
        self.outputs = [
            Port("completed", s.output_topic, CLOUD),
            Port("markers", s.markers_topic, MARKERS, on_demand=True),
        ]
        self.transforms = StaticTransforms()
        self.config_transform = pose_to_matrix(s.boxes_to_lidar[:3], s.boxes_to_lidar[3:])
        self.boxes_source = "detections" if self.matcher is not None else "clustering"
        self._markers_sent = 0
        self.counts = {
            "scans": 0, "empty_scans": 0, "nan_points": 0, "completed": 0, "skipped_few_points": 0,
            "skipped_class": 0, "skipped_score": 0, "skipped_degenerate": 0, "skipped_max_objects": 0,
            "no_transform": 0,
        }  # fmt: skip
        self.last_timings: dict[str, float] = {}
        self.last_objects = 0

    # --- the two steps --------------------------------------------------------------------------
    def inputs_available(self, keys: set[str]) -> None:
        if self.matcher is not None and "boxes" not in keys:
            log.warning(
                "completion: the recording has no %s: boxes from clustering the scan instead",
                self.settings.boxes_topic,
            )
            self.matcher = None
            self.boxes_source = f"clustering (no {self.settings.boxes_topic} in the recording)"

    def accept(self, key: str, msg: Any, now_s: float) -> list[Job]:
        if key == "tf":
            for parent, child, t in tf_message_to_transforms(msg):
                self.transforms.add(parent, child, t)
            return []
        if self.matcher is None:
            return [Job(msg, arrived=now_s)] if key == "cloud" else []
        return matched_jobs(self.matcher, key == "cloud", msg, now_s)

    def run(self, job: Job, wanted: Wanted | None = None) -> list[tuple[str, Any]]:
        msg = job.msg
        header = msg.header
        xyz = pointcloud_to_xyz(msg, skip_nans=False)  # MessageFormatError without x, y, z
        n_bad = 0
        if not np.isfinite(xyz).all():  # one flat pass settles the usual all-finite scan
            finite = np.isfinite(xyz[:, 0]) & np.isfinite(xyz[:, 1]) & np.isfinite(xyz[:, 2])
            n_bad = int(len(xyz) - finite.sum())
            xyz = xyz[finite]
        self.counts["scans"] += 1
        self.counts["nan_points"] += n_bad
        boxes, scores = self._boxes(job.partner, header.frame_id, xyz)
        if len(xyz) == 0:
            self.counts["empty_scans"] += 1
            result = ScanCompletion(
                Boxes.empty(), np.zeros((0, 0, 3), np.float32), [], np.zeros(0, np.uint32)
            )
        else:
            result = complete_scan(xyz, boxes, self.completer, self.params, scores)
            for k in self.counts:
                if k in result.counts and k != "boxes":
                    self.counts[k] += result.counts[k]
        self.last_objects = len(result)
        self.last_timings = result.timings
        out: list[tuple[str, Any]] = [("completed", self.cloud(result, header))]
        if wanted is None or wanted("markers"):
            s = self.settings
            markers = completion_markers(
                header, self.types, result.points, result.boxes.corners(), result.object_ids,
                previous_count=self._markers_sent, lifetime_s=s.marker_lifetime_s,
                point_size=s.marker_point_size,
            )  # fmt: skip
            self._markers_sent = len(result)
            out.append(("markers", markers))
        return out

    # --- helpers ----------------------------------------------------------------------------------
    def _boxes(self, det_msg: Any, frame_id: str, xyz: np.ndarray) -> tuple[Boxes, np.ndarray | None]:
        """The scan's boxes in its own frame (from the paired array, or clustering) and their scores."""
        if det_msg is None:
            if self.matcher is not None or len(xyz) == 0:
                return Boxes.empty(), None
            boxes, _ = cluster_boxes(xyz, self.cluster_params, seed=self.settings.seed)
            return boxes, None
        arr = detection3d_array_to_boxes(det_msg)
        boxes = Boxes(arr.centres, arr.sizes, arr.rotations, arr.labels, arr.ids)
        if len(boxes) == 0 or arr.frame_id.lstrip("/") == frame_id.lstrip("/"):
            return boxes, arr.scores
        if self.settings.extrinsics == "config":
            t = self.config_transform
        else:
            t = self.transforms.lookup(frame_id, arr.frame_id)
        if t is None:
            self.counts["no_transform"] += 1
            return Boxes.empty(), None
        return boxes.transformed(t), arr.scores

    def cloud(self, result: ScanCompletion, header: Any) -> Any:
        k, p = result.points.shape[:2] if len(result) else (0, 0)
        arr = np.zeros(k * p, dtype=CLOUD_DTYPE)
        if k:
            flat = result.points.reshape(-1, 3)
            arr["x"], arr["y"], arr["z"] = flat[:, 0], flat[:, 1], flat[:, 2]
            arr["object_id"] = np.repeat(result.object_ids, p)
        return structured_to_pointcloud(arr, header, self.types, is_dense=True)

    def describe(self) -> str:
        return f"{self.completer.describe()}, boxes from {self.boxes_source}"

    def diagnostics(self, now_s: float | None = None) -> list[tuple[str, str]]:
        timings = " ".join(f"{k}={v * 1e3:.2f}" for k, v in self.last_timings.items())
        pairs = [(k, str(v)) for k, v in self.counts.items()]
        pairs += [
            ("boxes_source", self.boxes_source),
            ("tf", self.tf_status),
            ("last_objects", str(self.last_objects)),
            ("last_timings_ms", timings),
        ]
        if self.matcher is not None:
            if now_s is not None:
                self.matcher.expire(now_s)
            c = self.matcher.counts
            waiting = self.matcher.pending()
            pairs += [
                ("matched", str(c.matched)),
                ("unmatched", str(c.unmatched)),
                ("expired", str(c.expired)),
                ("waiting_scans", str(waiting[0])),
                ("waiting_boxes", str(waiting[1])),
            ]
        return pairs


def create(
    settings: CompletionSettings, types: MessageFactory, *, live: bool, completer: Completer | None = None
) -> CompletionPipeline:
    """The pipeline of these settings; ``completer`` replaces the card-built one (tests, benchmarks). A
    card that cannot be loaded is a ConfigError naming the parameter."""
    del live  # pairing by stamp works the same on a live graph and on a bag
    s = settings
    if completer is None:
        try:
            completer = Completer.from_card(s.model_card or None, s.backend, s.threads, s.seed)
        except (OSError, ValueError) as exc:  # CardError is a ValueError
            raise ConfigError(f"node '{NODE_NAME}': parameter '{NODE_NAME}.model_card': {exc}") from exc
    return CompletionPipeline(s, types, completer)

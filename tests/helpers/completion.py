"""Completion test helpers: a planted "identity" completion model whose output is exactly predictable,
and message builders for scans, 3D boxes and static transforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml


def planted_identity_card(folder: Path, n_in: int = 1024, max_batch: int = 32) -> Path:
    """A completion card whose ONNX graph returns its input twice over as ``fine`` (B, 2 n_in, 3) and
    the first n_in / 4 rows as ``coarse``: the node's output must then be exactly the object's own points
    (mapped out of and back into the object frame). Built with onnx.helper, no torch."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    pts = helper.make_tensor_value_info("points", TensorProto.FLOAT, ["batch", n_in, 3])
    fine = helper.make_tensor_value_info("fine", TensorProto.FLOAT, ["batch", 2 * n_in, 3])
    coarse = helper.make_tensor_value_info("coarse", TensorProto.FLOAT, ["batch", n_in // 4, 3])
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [n_in // 4]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node("Concat", ["points", "points"], ["fine"], axis=1),
        helper.make_node("Slice", ["points", "starts", "ends", "axes"], ["coarse"]),
    ]
    graph = helper.make_graph(nodes, "identity_completion", [pts], [coarse, fine], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    card = {
        "name": "planted_identity_completion",
        "task": "completion",
        "model": "model.onnx",
        "inputs": [{"name": "points", "kind": "tensor", "shape": ["batch", n_in, 3],
                    "dynamic": {"batch": [1, 4, max_batch]}}],
        "outputs": [{"name": "coarse", "shape": ["batch", n_in // 4, 3]},
                    {"name": "fine", "shape": ["batch", 2 * n_in, 3]}],
        "decoder": {"type": "completion", "outputs": {"points": "fine", "coarse": "coarse"}},
        "classes": ["car"],
    }  # fmt: skip
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def quat_z(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)))


def box_points(rng: np.random.Generator, centre, size, yaw: float, n: int) -> np.ndarray:
    """``n`` points on the visible-ish surface of a box (its +y side and top), well inside the box."""
    local = rng.uniform(-0.45, 0.45, (n, 3)) * np.asarray(size)
    local[: n // 2, 1] = size[1] * 0.45
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return local @ rot.T + np.asarray(centre)


def detections3d(types: Any, header: Any, boxes: list[dict]) -> Any:
    """A Detection3DArray; each box a dict: centre, size (l, w, h), quat (x, y, z, w), label, id, score."""
    dets = []
    for b in boxes:
        pose = types.Pose(
            position=types.Point(x=float(b["centre"][0]), y=float(b["centre"][1]), z=float(b["centre"][2])),
            orientation=types.Quaternion(**dict(zip("xyzw", (float(v) for v in b["quat"]), strict=True))),
        )
        hyp = types(
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=types(
                "vision_msgs/msg/ObjectHypothesis", class_id=b.get("label", "car"), score=b.get("score", 1.0)
            ),
        )
        size = types.Vector3(x=float(b["size"][0]), y=float(b["size"][1]), z=float(b["size"][2]))
        dets.append(
            types("vision_msgs/msg/Detection3D", header=header, results=[hyp],
                  bbox=types.BoundingBox3D(center=pose, size=size), id=str(b.get("id", "")))
        )  # fmt: skip
    return types.Detection3DArray(header=header, detections=dets)


def tf_static(types: Any, stamp_ns: int, parent: str, child: str, t: np.ndarray) -> Any:
    """A TFMessage with one transform parent -> child (T maps child coordinates into the parent)."""
    from scipy.spatial.transform import Rotation

    from perception_pkg.msgs import make_header

    qx, qy, qz, qw = Rotation.from_matrix(t[:3, :3]).as_quat()
    ts = types(
        "geometry_msgs/msg/TransformStamped",
        header=make_header(types, stamp_ns, parent),
        child_frame_id=child,
        transform=types(
            "geometry_msgs/msg/Transform",
            translation=types.Vector3(x=float(t[0, 3]), y=float(t[1, 3]), z=float(t[2, 3])),
            rotation=types.Quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
        ),
    )
    return types("tf2_msgs/msg/TFMessage", transforms=[ts])

"""pipelines/pose.py in replay, on the sample simulator bag: images paired with the bag's person boxes by
stamp, planted heatmaps decoded to exactly-known keypoints, PersonArray + markers in the output bag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.pose import expected_keypoints, planted_topdown

pytest.importorskip("torch")


def test_replay_pose_pipeline_writes_people_for_every_frame(tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    from perception_pkg.bag import get_typestore
    from perception_pkg.msgs import detections_to_person_boxes, person_array_to_arrays, stamp_to_ns
    from perception_pkg.replay.runner import replay_bag
    from perception_pkg.sim.generate import ensure_sample_bag

    card, crop_xy = planted_topdown(tmp_path / "model")
    params = tmp_path / "params.yaml"
    params.write_text(
        "pose:\n  ros__parameters:\n"
        f"    pose_card: {card}\n    backend: onnxruntime\n"
        "    detections_topic: /ground_truth/detections_2d\n"
    )
    bag = ensure_sample_bag()
    res = replay_bag(bag, tmp_path / "out", ["pose"], params_file=params, copy_inputs=False, progress=False)
    store = get_typestore()
    got: dict[str, dict[int, object]] = {}
    with AnyReader([bag], default_typestore=store) as reader:
        conns = [c for c in reader.connections if c.topic == "/ground_truth/detections_2d"]
        dets = {
            stamp_to_ns(m.header): m
            for m in (reader.deserialize(r, c.msgtype) for c, _, r in reader.messages(conns))
        }
    with AnyReader([res.output_bag], default_typestore=store) as reader:
        for c, _, raw in reader.messages():
            msg = reader.deserialize(raw, c.msgtype)
            key = stamp_to_ns(msg.header) if hasattr(msg, "header") else stamp_to_ns(msg.markers[0].header)
            got.setdefault(c.topic, {})[key] = msg
    assert res.summary["pipelines"]["pose"]["messages"] > 0
    assert set(got["/pose/people"]) == set(dets) == set(got["/pose/markers"])
    n_people = 0
    for stamp, people_msg in got["/pose/people"].items():
        people = person_array_to_arrays(people_msg)
        boxes, _ = detections_to_person_boxes(dets[stamp])
        keep = (boxes[:, 2:] - boxes[:, :2] >= 4.0).all(1)  # the node's min_box_size
        assert len(people) == int(keep.sum())
        if len(people):
            assert np.abs(people.keypoints - expected_keypoints(boxes[keep], crop_xy)).max() < 2e-3
        n_people += len(people)
    assert n_people > 0

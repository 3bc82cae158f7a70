"""Detector training data: the render cache is composed of scene blocks, so growing the training set
renders only the new scenes, and the composed arrays equal one render of all scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the training extra; the data module itself needs only numpy and cv2


def test_render_cache_blocks_compose_to_the_single_render_and_are_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perception_pkg.training import detector_data as dd

    spec = dd.RenderSpec(seeds=(0, 1, 2), frames_per_scene=1, step=1, net_hw=(48, 64))
    whole = dd.render_dataset(spec, tmp_path / "one", workers=1)

    monkeypatch.setattr(dd, "CACHE_BLOCK_SCENES", 2)
    blocks = dd.render_dataset(spec, tmp_path / "blocks", workers=1)
    assert sorted(p.name for p in (tmp_path / "blocks").iterdir()) == [
        "detector_s0-1n2_f1x1_64x48.npz",
        "detector_s2-2n1_f1x1_64x48.npz",
    ]
    assert set(blocks) == set(whole)
    for k, v in whole.items():
        np.testing.assert_array_equal(blocks[k], v, err_msg=k)
    assert blocks["frame"].max() == 2 and len(blocks["images"]) == 3

    # a cached block is loaded, not rendered again
    def no_render(*_a: object, **_k: object) -> None:
        raise AssertionError("rendered a cached block")

    monkeypatch.setattr(dd.mp, "get_context", no_render)
    again = dd.render_dataset(spec, tmp_path / "blocks", workers=1)
    np.testing.assert_array_equal(again["images"], whole["images"])

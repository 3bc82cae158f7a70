"""The example cards in models/examples are valid cards whose decoders accept them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from perception_pkg.cards import parse_card
from perception_pkg.decoders import build_decoder
from perception_pkg.paths import repo_root

ROOT = repo_root()
EXAMPLES = sorted((ROOT / "models" / "examples").glob("*.yaml")) if ROOT else []


def test_examples_cover_every_format() -> None:
    if ROOT is None:
        pytest.skip("not a source checkout")
    types = {yaml.safe_load(p.read_text())["decoder"]["type"] for p in EXAMPLES}
    assert types == {
        "yolox", "yolov8", "yolov8_pose", "heatmap_argmax", "centernet", "image", "simcc", "detr"
    }  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_card_parses_and_builds_its_decoder(path: Path) -> None:
    card = parse_card(yaml.safe_load(path.read_text()), base_dir=path.parent, source=path)
    decoder = build_decoder(card)
    assert decoder.result in ("detections", "keypoints", "image")
    if card.classes:
        assert len(card.classes) in (1, 80)

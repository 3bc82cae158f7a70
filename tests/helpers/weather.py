"""Planted weather models with exactly known behaviour, exported to real ONNX files with real cards.

- classifier: logits over (clear, fog, rain, snow, night) = k * (m - 0.3) for clear, -k * (m - 0.3) for
  night and -inf-like for the rest, m = the thumbnail's mean in [0, 1]: a dark frame is night, a bright
  one clear, confidently.
- restorer: out = -x in the tanh range, so pixel' = 255 - pixel (the negative), exactly.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CONDITIONS = ("clear", "fog", "rain", "snow", "night")


def planted_weather_cards(root: Path, hw: tuple[int, int] = (48, 64)) -> tuple[Path, Path]:
    """(restorer card, classifier card) under ``root``; the restorer's input is ``hw`` (an image of that size
    comes back exactly negated); needs torch."""
    import torch

    from perception_pkg.training.export import export_onnx

    class Negative(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return -x

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = ((x + 1.0) * 0.5).mean(dim=(1, 2, 3))[:, None]  # (N, 1) in [0, 1]
            d = 40.0 * (m - 0.3)
            rest = torch.full_like(d, -20.0)
            return torch.cat([d, rest, rest, rest, -d], dim=1)

    root.mkdir(parents=True, exist_ok=True)
    export_onnx(
        Negative(), torch.zeros(1, 3, *hw), root / "model.onnx", ["image"], ["restored"], dynamo=False
    )
    export_onnx(
        Brightness(), torch.zeros(1, 3, 24, 32), root / "classifier.onnx", ["image"], ["logits"], dynamo=False
    )
    norm = {"color": "RGB", "scale": "1/255", "mean": [0.5], "std": [0.5], "resize": {"policy": "stretch"}}
    restorer = {
        "name": "planted_negative",
        "task": "weather",
        "model": "model.onnx",
        "inputs": [{"name": "image", "shape": [1, 3, *hw], **norm}],
        "outputs": [{"name": "restored", "shape": [1, 3, *hw]}],
        "decoder": {"type": "image"},
    }
    classifier = {
        "name": "planted_brightness",
        "task": "weather",
        "model": "classifier.onnx",
        "inputs": [{"name": "image", "shape": [1, 3, 24, 32], **norm}],
        "outputs": [{"name": "logits", "shape": [1, 5]}],
        "decoder": {"type": "raw"},
        "classes": list(CONDITIONS),
    }
    (root / "card.yaml").write_text(yaml.safe_dump(restorer, sort_keys=False))
    (root / "classifier_card.yaml").write_text(yaml.safe_dump(classifier, sort_keys=False))
    return root / "card.yaml", root / "classifier_card.yaml"

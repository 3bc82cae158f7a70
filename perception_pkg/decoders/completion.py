"""Completion outputs (point sets in the normalised object frame) -> (B, P, 3) float32 arrays.

Roles: ``points`` (the completed cloud, e.g. SoftPoolNet's fine output) and optionally ``coarse``.
The decoder checks the shape (B, P, 3) and finiteness per object; mapping back to the sensor frame is
the completion core's job (``perception_pkg.completion``), since it needs each object's box.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from perception_pkg.decoders.base import Decoder


class CompletionDecoder(Decoder):
    roles = ("points",)
    optional_roles = ("coarse",)
    params: ClassVar[Mapping[str, Any]] = {}
    result = "points"

    def __init__(self, card) -> None:
        super().__init__(card)
        shape = self.output_shape("points")
        if shape is not None and (len(shape) != 3 or shape[-1] != 3):
            raise self.fail(
                "points", f"output {self.tensors['points']!r} must be (batch, P, 3), card says {shape}"
            )

    def __call__(self, outputs: Mapping[str, NDArray]) -> NDArray[np.float32]:
        pts = self.output(outputs, "points", 3)
        if pts.shape[-1] != 3:
            raise ValueError(
                f"completion output {self.tensors['points']!r} should be (B, P, 3), got {pts.shape}"
            )
        return np.asarray(pts, dtype=np.float32)

    def coarse(self, outputs: Mapping[str, NDArray]) -> NDArray[np.float32] | None:
        if "coarse" not in self.tensors:
            return None
        return np.asarray(self.output(outputs, "coarse", 3), dtype=np.float32)

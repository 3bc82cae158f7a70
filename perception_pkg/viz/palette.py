"""Per-class colours shared by the annotated images and the RViz markers, so a box has one colour in
the debug image and in 3D."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Well-separated RGB colours (Tableau 10); class id i takes entry i mod 10.
_PALETTE_RGB = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ],
    dtype=np.uint8,
)


def class_colours(class_ids: NDArray[np.integer]) -> NDArray[np.uint8]:
    """(N, 3) RGB uint8 colours for class ids (negative ids wrap like any other)."""
    return _PALETTE_RGB[np.asarray(class_ids, dtype=np.int64) % len(_PALETTE_RGB)]


def class_colour(class_id: int) -> tuple[float, float, float]:
    """RGB in [0, 1] for one class id (what std_msgs/ColorRGBA wants)."""
    r, g, b = _PALETTE_RGB[int(class_id) % len(_PALETTE_RGB)] / 255.0
    return float(r), float(g), float(b)

"""The COCO-17 keypoint tables, in one place: names, skeleton, left/right flip pairs, OKS sigmas.

Plain constants with no project imports, so every floor (decoders, messages, viz, metrics, the
simulator, training) can use them without pulling in the pose core. Index order is COCO's: nose,
eyes, ears, shoulders, elbows, wrists, hips, knees, ankles, left before right.
"""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# COCO's skeleton (1-based in the annotation json; 0-based here): 19 limbs for drawing and the json
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# (left, right) index pairs that swap under a horizontal flip
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
)  # fmt: skip

# per-keypoint OKS constants k_i (COCO's sigmas / 10; pycocotools' COCOeval uses the same)
OKS_SIGMAS: np.ndarray = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)
OKS_SIGMAS.setflags(write=False)


def flip_permutation() -> np.ndarray:
    """Index array ``perm`` with ``flipped[..., perm[i], :]`` the mirror partner of keypoint i."""
    perm = np.arange(NUM_KEYPOINTS)
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm

"""Multi-Bin orientation decode (Mousavian et al., as used by RTM3D and CenterNet's 3D head).

The head has 8 channels per object, in CenterNet's layout::

    [0:2] bin 0 logits (outside, inside)   [2:4] bin 0 (sin, cos) of the residual
    [4:6] bin 1 logits (outside, inside)   [6:8] bin 1 (sin, cos) of the residual

Bin 0 is centred at -pi/2, bin 1 at +pi/2; each covers a bit more than half the circle so an angle
near a boundary is learnt by both. The winning bin is the one with the larger "inside" logit
(channel 1 vs 5), and the angle is that bin's atan2(sin, cos) plus its centre.

What it predicts is the **observation angle** alpha (KITTI label field 4): the object's yaw relative
to the viewing ray. Appearance depends on alpha, not on rotation_y, which is why the network learns
alpha; the yaw in the camera frame is ``rotation_y = alpha + atan2(x, z)`` for the object at (x, z).
"""

from __future__ import annotations

import numpy as np

BIN_CENTRES = np.array([-0.5 * np.pi, 0.5 * np.pi])


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def decode_multibin(rot: np.ndarray) -> np.ndarray:
    """``(..., 8)`` head output -> observation angle alpha ``(...)`` in [-pi, pi)."""
    rot = np.asarray(rot, dtype=np.float64)
    alpha0 = np.arctan2(rot[..., 2], rot[..., 3]) + BIN_CENTRES[0]
    alpha1 = np.arctan2(rot[..., 6], rot[..., 7]) + BIN_CENTRES[1]
    return _wrap(np.where(rot[..., 1] > rot[..., 5], alpha0, alpha1))


def encode_multibin(alpha: np.ndarray, logit: float = 5.0) -> np.ndarray:
    """Inverse of :func:`decode_multibin` for tests and training targets: ``(...)`` -> ``(..., 8)``.

    Puts the angle in the bin whose centre is nearer (the decode picks that bin) with +-``logit``.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    out = np.zeros((*alpha.shape, 8))
    in1 = np.cos(alpha - BIN_CENTRES[1]) > np.cos(alpha - BIN_CENTRES[0])
    for b, inside in ((0, ~in1), (1, in1)):
        r = alpha - BIN_CENTRES[b]
        out[..., 4 * b] = np.where(inside, -logit, logit)
        out[..., 4 * b + 1] = np.where(inside, logit, -logit)
        out[..., 4 * b + 2] = np.sin(r)
        out[..., 4 * b + 3] = np.cos(r)
    return out


def alpha_to_rotation_y(
    alpha: np.ndarray | float, x: np.ndarray | float, z: np.ndarray | float
) -> np.ndarray:
    """rotation_y = alpha + atan2(x, z), wrapped to [-pi, pi); (x, z) the object's camera-frame position.

    With only a pixel column u known, atan2(x, z) = atan2(u - cx, fx) (CenterNet's form).
    """
    return _wrap(np.asarray(alpha, dtype=np.float64) + np.arctan2(x, z))


def rotation_y_to_alpha(
    rotation_y: np.ndarray | float, x: np.ndarray | float, z: np.ndarray | float
) -> np.ndarray:
    """Inverse of :func:`alpha_to_rotation_y`."""
    return _wrap(np.asarray(rotation_y, dtype=np.float64) - np.arctan2(x, z))

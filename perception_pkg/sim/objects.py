"""Cars and clutter assembled from boxes and cylinders, in their own frame.

Object frame: origin on the ground at the centre of the footprint, x forward (the heading), y left,
z up. A car's length runs along x.
"""

from __future__ import annotations

import numpy as np

from perception_pkg.sim.geometry import Part

GLASS = (0.12, 0.16, 0.2)
TYRE = (0.06, 0.06, 0.06)
RIM = (0.55, 0.55, 0.58)

CAR_PALETTE = np.array(
    [
        [0.75, 0.1, 0.1],
        [0.9, 0.9, 0.92],
        [0.1, 0.1, 0.12],
        [0.15, 0.3, 0.7],
        [0.55, 0.57, 0.6],
        [0.8, 0.6, 0.1],
        [0.1, 0.45, 0.25],
        [0.35, 0.2, 0.1],
        [0.6, 0.75, 0.9],
        [0.45, 0.05, 0.3],
    ]
)


def car_parts(rng: np.random.Generator) -> list[Part]:
    """A car of length 3.5-5 m: body and cabin boxes, four tyre cylinders, lights."""
    length = rng.uniform(3.5, 5.0)
    # wider and taller with length, with some spread (vans are tall, coupes low)
    width = np.clip(1.45 + 0.1 * length + rng.normal(0, 0.05), 1.55, 1.95)
    height = np.clip(1.2 + 0.07 * length + rng.normal(0, 0.08), 1.35, 1.75)
    colour = np.clip(CAR_PALETTE[rng.integers(len(CAR_PALETTE))] + rng.normal(0, 0.04, 3), 0, 1)
    clearance = rng.uniform(0.18, 0.3)
    belt = clearance + rng.uniform(0.5, 0.6) * (height - clearance)  # top of the body box
    wheel_r = rng.uniform(0.29, 0.35)
    wheel_w = 0.21
    half_l, half_w = length / 2, width / 2
    cabin_front = half_l - rng.uniform(0.28, 0.36) * length  # bonnet in front of the cabin
    cabin_back = -half_l + rng.uniform(0.08, 0.2) * length
    parts = [
        Part.box_from_bounds([-half_l, -half_w, clearance], [half_l, half_w, belt], colour, 0.6),
        Part.box_from_bounds(
            [cabin_back, -half_w * 0.9, belt], [cabin_front, half_w * 0.9, height], GLASS, 0.2
        ),
        # roof plate in body colour so the car reads as a car from above and from the LiDAR
        Part.box_from_bounds(
            [cabin_back + 0.1, -half_w * 0.88, height - 0.06],
            [cabin_front - 0.15, half_w * 0.88, height + 0.0],
            colour,
            0.6,
        ),
    ]
    axle_x = half_l - max(0.7, 0.19 * length)
    for x in (axle_x, -axle_x):
        for side in (1.0, -1.0):
            # tyres stay inside the body's width so the body defines the box width
            y_out = side * (half_w - 0.02)
            y_in = side * (half_w - 0.02 - wheel_w)
            parts.append(Part.cylinder([x, y_in, wheel_r], [x, y_out, wheel_r], wheel_r, TYRE, 0.1))
    # head lights (front, +x) and tail lights
    for side in (1.0, -1.0):
        y0 = side * (half_w - 0.3)
        parts.append(Part.box([half_l, y0, belt - 0.15], [0.02, 0.16, 0.06], (1.0, 0.97, 0.85), 0.9))
        parts.append(Part.box([-half_l, y0, belt - 0.12], [0.02, 0.16, 0.06], (0.8, 0.05, 0.05), 0.9))
    return parts


def pole_parts(rng: np.random.Generator) -> list[Part]:
    """Street light or sign post: a thin cylinder, sometimes with a lamp or sign box on top."""
    h = rng.uniform(2.8, 6.0)
    r = rng.uniform(0.05, 0.11)
    grey = (0.35, 0.36, 0.38)
    parts = [Part.cylinder([0, 0, 0], [0, 0, h], r, grey, 0.5)]
    if h > 4.0:
        parts.append(Part.box([0.0, 0.3, h], [0.15, 0.35, 0.07], (0.9, 0.9, 0.8), 0.7))
    else:
        parts.append(Part.box([0.0, 0.0, h - 0.3], [0.03, 0.3, 0.3], (0.1, 0.3, 0.75), 0.9))
    return parts


def crate_parts(rng: np.random.Generator) -> list[Part]:
    size = rng.uniform(0.4, 1.2, 3)
    size[2] = min(size[2], 1.0)
    colour = rng.uniform(0.3, 0.8, 3) * np.array([1.0, 0.8, 0.55])
    return [Part.box([0, 0, size[2] / 2], size / 2, colour, 0.5)]


def bin_parts(rng: np.random.Generator) -> list[Part]:
    r = rng.uniform(0.25, 0.35)
    h = rng.uniform(0.8, 1.1)
    colour = (0.1, rng.uniform(0.3, 0.5), 0.15)
    return [Part.cylinder([0, 0, 0], [0, 0, h], r, colour, 0.4)]


def tree_parts(rng: np.random.Generator) -> list[Part]:
    trunk_h = rng.uniform(1.8, 3.0)
    crown_r = rng.uniform(1.0, 1.8)
    return [
        Part.cylinder(
            [0, 0, 0], [0, 0, trunk_h + crown_r * 0.5], rng.uniform(0.1, 0.18), (0.3, 0.2, 0.1), 0.3
        ),
        Part.capsule(
            [0, 0, trunk_h + crown_r],
            [0, 0, trunk_h + crown_r * 1.6],
            crown_r,
            (0.15, rng.uniform(0.35, 0.5), 0.12),
            0.3,
        ),
    ]


def building_parts(rng: np.random.Generator, length: float) -> list[Part]:
    """A facade block; windows as slightly protruding dark boxes on the street side (-y face)."""
    depth = rng.uniform(8.0, 14.0)
    height = rng.uniform(6.0, 18.0)
    colour = rng.uniform(0.45, 0.8) * np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.65, 0.9)])
    parts = [Part.box([0, 0, height / 2], [length / 2, depth / 2, height / 2], colour, 0.5)]
    floors = int(height // 3.2)
    cols = max(1, int(length // 3.0))
    for f in range(floors):
        for c in range(cols):
            x = -length / 2 + (c + 0.5) * length / cols
            z = 1.6 + 3.2 * f
            parts.append(Part.box([x, -depth / 2, z], [0.55, 0.05, 0.7], (0.15, 0.2, 0.28), 0.15))
    return parts


def stool_parts(top_z: float, x0: float) -> list[Part]:
    """Seat for a sitting pedestrian (object frame shared with the person)."""
    return [Part.box_from_bounds([x0 - 0.22, -0.25, 0.0], [x0 + 0.25, 0.25, top_z], (0.45, 0.3, 0.2), 0.4)]

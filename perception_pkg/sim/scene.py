"""Seeded street scenes: a road with lanes and sidewalks, parked and moving cars, pedestrians in
several poses, poles, trees, bins, crates and buildings, and an ego car driving down the road.

Everything random is drawn from one ``numpy.random.Generator`` seeded with the scene seed, in a fixed
order, so a seed (plus the config) fully determines the scene and therefore every output byte.

Layout in ``map`` (see sensors.py): the ego drives along y = 0 towards +x. Road y in [-4.5, 5.25]:
ego lane |y| < 1.75, oncoming lane centred on y = 3.5, parking lane centred on y = -3.1. Sidewalks
y in [-9, -4.5] and [5.25, 9.5], then verges, then buildings beyond |y| = 14.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from perception_pkg.sim import objects as obj_lib
from perception_pkg.sim.geometry import Part, make_transform, merge_parts, rot_z
from perception_pkg.sim.people import (
    POSES,
    Articulation,
    PersonShape,
    articulate,
    person_parts,
    radii,
)
from perception_pkg.sim.sensors import CameraSpec, LidarSpec, Rig

DETECTION_CLASSES: tuple[str, ...] = ("person", "car")

SKIN_TONES = np.array([[0.95, 0.8, 0.69], [0.87, 0.68, 0.53], [0.72, 0.52, 0.38], [0.45, 0.31, 0.22]])


@dataclass(frozen=True)
class SceneConfig:
    """What a scene contains. Densities are per 100 m of road (both sides together)."""

    frames: int = 10
    fps: float = 10.0
    ego_speed: float = 6.0  # m/s
    parked_car_occupancy: float = 0.7
    oncoming_cars_per_100m: float = 3.0
    lead_car_probability: float = 0.5
    people_per_100m: float = 22.0
    people_in_first_view: int = 5  # extra pedestrians placed 6-35 m ahead of the start pose
    occluded_people_per_100m: float = 4.0  # in gaps between parked cars, partly hidden
    crossing_people_per_100m: float = 2.0
    poles_per_100m: float = 12.0
    trees_per_100m: float = 10.0
    small_clutter_per_100m: float = 10.0
    buildings: bool = True
    pose_weights: tuple[float, float, float, float] = (0.3, 0.4, 0.12, 0.18)  # POSES order
    rig: Rig = field(default_factory=Rig)
    start_stamp_ns: int = 1_700_000_000_000_000_000

    @staticmethod
    def with_sensors(
        width: int = 640, height: int = 480, azimuth_steps: int = 2000, range_noise: float = 0.02, **kw
    ) -> SceneConfig:
        rig = Rig(
            camera=CameraSpec(width=width, height=height),
            lidar=LidarSpec(azimuth_steps=azimuth_steps, range_noise=range_noise),
        )
        return SceneConfig(rig=rig, **kw)


@dataclass
class SimObject:
    """One object. ``position``/``yaw`` are at t = 0; it moves with ``speed`` along its ``heading``.

    ``cls`` is the detection class (``person``, ``car``) or ``clutter``; ``kind`` says what it is.
    """

    oid: int
    cls: str
    kind: str
    position: np.ndarray  # (2,) map x, y at t = 0
    yaw: float  # rad, heading of the object's +x axis in map, about +z
    speed: float = 0.0  # m/s
    heading: float | None = None  # direction of motion (rad); None = along yaw
    parts: list[Part] | None = None  # static shape; persons build theirs per time
    person: PersonShape | None = None
    _mesh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _mesh_t: tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = field(default=None, repr=False)
    _art: tuple[float, Articulation] | None = field(default=None, repr=False)

    @property
    def dynamic_shape(self) -> bool:
        return self.person is not None and self.person.pose == "walking"

    def xy_at(self, t: float) -> np.ndarray:
        heading = self.yaw if self.heading is None else self.heading
        return self.position + self.speed * t * np.array([np.cos(heading), np.sin(heading)])

    def pose(self, t: float) -> np.ndarray:
        """4x4 transform object -> map at time t."""
        xy = self.xy_at(t)
        return make_transform(rot_z(self.yaw), np.array([xy[0], xy[1], 0.0]))

    def articulation(self, t: float) -> Articulation:
        """Skeleton at time t (cached: only walking changes it, and a frame asks several times)."""
        assert self.person is not None
        key = t if self.dynamic_shape else 0.0
        if self._art is None or self._art[0] != key:
            self._art = (key, articulate(self.person, key))
        return self._art[1]

    def parts_at(self, t: float) -> list[Part]:
        if self.person is not None:
            return person_parts(self.person, self.articulation(t))
        assert self.parts is not None
        return self.parts

    def mesh_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Object-frame vertices, triangles and part index per triangle (cached when rigid)."""
        if self.dynamic_shape:
            # several consumers ask for the same time within a frame; keep the last one
            if self._mesh_t is None or self._mesh_t[0] != t:
                self._mesh_t = (t, merge_parts(self.parts_at(t)))
            return self._mesh_t[1]
        if self._mesh is None:
            self._mesh = merge_parts(self.parts_at(0.0))
        return self._mesh

    def shape_key(self, t: float) -> tuple:
        """Identifies the object-frame shape at time t (for caching surface samples)."""
        return (self.oid, round(t, 6)) if self.dynamic_shape else (self.oid,)


@dataclass
class Scene:
    seed: int
    config: SceneConfig
    objects: list[SimObject]
    sun: np.ndarray  # unit vector towards the sun, map frame
    ground_noise: np.ndarray  # (256, 256) float32 in [0, 1], tiled over the ground

    @property
    def rig(self) -> Rig:
        return self.config.rig

    @property
    def frames(self) -> int:
        return self.config.frames

    def time(self, index: int) -> float:
        return index / self.config.fps

    def stamp_ns(self, index: int) -> int:
        return self.config.start_stamp_ns + round(index * 1e9 / self.config.fps)

    def ego_pose(self, t: float) -> np.ndarray:
        """4x4 base_link -> map."""
        return make_transform(np.eye(3), np.array([self.config.ego_speed * t, 0.0, 0.0]))

    @cached_property
    def by_id(self) -> dict[int, SimObject]:
        return {o.oid: o for o in self.objects}


# -- layout ---------------------------------------------------------------------------------------


def _segment_distance(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> float:
    """Closest distance between 2D segments (sampled finely; objects are few, precision is cm)."""
    s = np.linspace(0.0, 1.0, 21)[:, None]
    pa = a0 + s * (a1 - a0)
    pb = b0 + s * (b1 - b0)
    return float(np.min(np.linalg.norm(pa[:, None] - pb[None], axis=-1)))


class _Layout:
    """Rejection sampler over swept circular footprints (start -> end position over the sequence)."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.items: list[tuple[np.ndarray, np.ndarray, float]] = []

    def fits(self, xy: np.ndarray, radius: float, velocity: np.ndarray | None = None) -> bool:
        end = xy + (velocity if velocity is not None else 0.0) * self.duration
        return all(_segment_distance(xy, end, a, b) > radius + r + 0.3 for a, b, r in self.items)

    def add(self, xy: np.ndarray, radius: float, velocity: np.ndarray | None = None) -> None:
        end = xy + (velocity if velocity is not None else 0.0) * self.duration
        self.items.append((np.asarray(xy, float), np.asarray(end, float), radius))


def _footprint_radius(parts: list[Part]) -> float:
    verts, _, _ = merge_parts(parts)
    return float(np.max(np.linalg.norm(verts[:, :2], axis=1)))


def _person_shape(rng: np.random.Generator, pose: str) -> PersonShape:
    return PersonShape(
        height=float(rng.uniform(1.5, 1.95)),
        build=float(rng.uniform(0.9, 1.15)),
        pose=pose,
        shirt=tuple(float(c) for c in rng.uniform(0.05, 0.95, 3)),
        trousers=tuple(float(c) for c in rng.uniform(0.05, 0.6, 3) * np.array([0.8, 0.8, 1.0])),
        skin=tuple(float(c) for c in SKIN_TONES[rng.integers(len(SKIN_TONES))]),
        shoes=tuple(float(c) for c in rng.uniform(0.02, 0.3, 3)),
        arm_variant=int(rng.integers(3)),
        phase0=float(rng.uniform(0, 2 * np.pi)),
        cadence=float(rng.uniform(5.0, 6.2)),
    )


def generate_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Build the scene for ``seed``: same seed and config, same scene."""
    cfg = config or SceneConfig()
    rng = np.random.default_rng(seed)
    duration = max(cfg.frames - 1, 0) / cfg.fps
    ego_end = cfg.ego_speed * duration
    x_lo, x_hi = -25.0, ego_end + 75.0  # LiDAR sees behind; the camera sees ~70 m ahead
    span = x_hi - x_lo
    layout = _Layout(duration)
    objs: list[SimObject] = []
    # the ego's own swept lane is kept clear (lead car aside, which keeps its distance)
    layout.add(np.array([-3.0, 0.0]), 1.2, np.array([cfg.ego_speed, 0.0]))

    def add(
        cls: str,
        kind: str,
        xy,
        yaw: float,
        parts=None,
        person=None,
        speed=0.0,
        heading=None,
        radius: float | None = None,
        check: bool = True,
    ) -> SimObject | None:
        xy = np.asarray(xy, float)
        if radius is None:
            radius = _footprint_radius(parts) if parts is not None else 0.5
        head = yaw if heading is None else heading
        vel = speed * np.array([np.cos(head), np.sin(head)])
        if check and not layout.fits(xy, radius, vel):
            return None
        layout.add(xy, radius, vel)
        o = SimObject(len(objs) + 1, cls, kind, xy, float(yaw), float(speed), heading, parts, person)
        objs.append(o)
        return o

    def count(per_100m: float) -> int:
        # Poisson keeps counts natural while the expected density follows the config
        return int(rng.poisson(per_100m * span / 100.0))

    # buildings first: they are big and fixed
    if cfg.buildings:
        for side in (1.0, -1.0):
            x = x_lo - 10.0
            while x < x_hi + 20.0:
                length = float(rng.uniform(10.0, 25.0))
                parts = obj_lib.building_parts(rng, length)
                depth = float(parts[0].half[1] * 2)
                yaw = 0.0 if side > 0 else np.pi  # windows (-y face) turned to the street
                add(
                    "clutter",
                    "building",
                    [x + length / 2, side * (14.0 + depth / 2)],
                    yaw,
                    parts,
                    check=False,
                )
                x += length + float(rng.uniform(1.0, 6.0))

    # parked cars along the right parking lane
    x = x_lo + float(rng.uniform(0, 5))
    while x < x_hi:
        parts = obj_lib.car_parts(rng)
        length = float(parts[0].half[0] * 2)
        if rng.random() < cfg.parked_car_occupancy:
            yaw = float((0.0 if rng.random() < 0.85 else np.pi) + rng.normal(0, 0.04))
            add("car", "car", [x + length / 2, -3.1 + rng.normal(0, 0.1)], yaw, parts)
        x += length + float(rng.uniform(1.0, 6.0))

    # oncoming traffic, all at one speed so nobody overtakes inside the sequence
    v_on = float(rng.uniform(6.0, 11.0))
    for _ in range(count(cfg.oncoming_cars_per_100m)):
        parts = obj_lib.car_parts(rng)
        add(
            "car",
            "car",
            [rng.uniform(x_lo, x_hi + v_on * duration), 3.5 + rng.normal(0, 0.1)],
            np.pi,
            parts,
            speed=v_on,
        )
    if rng.random() < cfg.lead_car_probability:
        parts = obj_lib.car_parts(rng)
        add("car", "car", [rng.uniform(12.0, 30.0), 0.0], 0.0, parts, speed=cfg.ego_speed, check=False)

    # pedestrians: where on the sidewalks, which pose, which way they walk
    def place_person(x_range, y_range, pose=None, heading=None, speed=None) -> None:
        for _ in range(20):  # a few tries to find free space; give up quietly in crowded spots
            pose_i = pose or POSES[int(rng.choice(len(POSES), p=np.asarray(cfg.pose_weights)))]
            shape = _person_shape(rng, pose_i)
            xy = np.array([rng.uniform(*x_range), rng.uniform(*y_range)])
            side = np.sign(xy[1]) or 1.0
            if pose_i == "walking":
                head = heading if heading is not None else float(rng.choice([0.0, np.pi]))
                yaw, spd = head, speed if speed is not None else float(rng.uniform(1.0, 1.6))
            else:
                # mostly facing the road, sometimes any direction
                toward_road = -np.pi / 2 if side > 0 else np.pi / 2
                yaw = (
                    toward_road + float(rng.normal(0, 0.6))
                    if rng.random() < 0.7
                    else float(rng.uniform(-np.pi, np.pi))
                )
                spd, head = 0.0, None
            extra: list[Part] = []
            if pose_i == "sitting":
                art = articulate(shape, 0.0)
                top = art.mid_hip[2] - radii(shape)["hips"]
                extra = obj_lib.stool_parts(top, art.mid_hip[0])
            rad = 0.55 if pose_i != "sitting" else 0.75
            vel = spd * np.array([np.cos(yaw), np.sin(yaw)])
            if not layout.fits(xy, rad, vel):
                continue
            person = add(
                "person", "person", xy, yaw, person=shape, speed=spd, heading=head, radius=rad, check=False
            )
            if extra and person is not None:
                # the stool shares the person's pose; it is clutter in the ground truth
                objs.append(SimObject(len(objs) + 1, "clutter", "stool", xy.copy(), yaw, 0.0, None, extra))
            return

    sidewalks = ((-8.7, -4.9), (5.6, 9.2))
    for _ in range(cfg.people_in_first_view):
        place_person((6.0, 35.0), sidewalks[int(rng.integers(2))])
    for _ in range(count(cfg.people_per_100m)):
        place_person((x_lo, x_hi), sidewalks[int(rng.integers(2))])
    for _ in range(count(cfg.occluded_people_per_100m)):
        # in the parking lane between parked cars, or right behind them: partly hidden from the ego
        place_person((x_lo, x_hi), (-4.2, -2.2) if rng.random() < 0.5 else (-5.6, -4.6))
    for _ in range(count(cfg.crossing_people_per_100m)):
        # crossings only beyond where the ego stops, so it never drives through anyone
        place_person(
            (ego_end + 12.0, x_hi),
            (-4.0, 5.0),
            pose="walking",
            heading=float(rng.choice([np.pi / 2, -np.pi / 2])),
            speed=float(rng.uniform(0.8, 1.4)),
        )

    # street furniture
    for _ in range(count(cfg.poles_per_100m)):
        side = float(rng.choice([-1.0, 1.0]))
        y = -5.0 if side < 0 else 5.7
        add(
            "clutter",
            "pole",
            [rng.uniform(x_lo, x_hi), y + rng.normal(0, 0.1)],
            0.0,
            obj_lib.pole_parts(rng),
            radius=0.2,
        )
    for _ in range(count(cfg.trees_per_100m)):
        side = float(rng.choice([-1.0, 1.0]))
        add(
            "clutter",
            "tree",
            [rng.uniform(x_lo, x_hi), side * rng.uniform(10.0, 12.0)],
            0.0,
            obj_lib.tree_parts(rng),
            radius=0.5,
        )
    for _ in range(count(cfg.small_clutter_per_100m)):
        side = float(rng.choice([-1.0, 1.0]))
        y_range = (-8.8, -4.8) if side < 0 else (5.5, 9.3)
        maker = obj_lib.crate_parts if rng.random() < 0.5 else obj_lib.bin_parts
        kind = "crate" if maker is obj_lib.crate_parts else "bin"
        add(
            "clutter",
            kind,
            [rng.uniform(x_lo, x_hi), rng.uniform(*y_range)],
            float(rng.uniform(-np.pi, np.pi)),
            maker(rng),
        )

    # sun roughly along the street (ahead or behind): from the side, the facades would put the
    # whole street in their shadow and hide the cars' and people's own shadows
    elev = np.radians(rng.uniform(40.0, 65.0))
    azim = rng.uniform(-0.6, 0.6) + (0.0 if rng.random() < 0.5 else np.pi)
    sun = np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    noise = _value_noise(rng, 256)
    return Scene(seed, cfg, objs, sun, noise)


def _value_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Tileable multi-octave value noise for the ground texture (periodic so tiles join)."""
    out = np.zeros((size, size), np.float32)
    amp_total = 0.0
    for octave, amp in ((8, 0.5), (32, 0.3), (128, 0.2)):
        coarse = rng.random((octave, octave)).astype(np.float32)
        # periodic bilinear upsampling: wrap the last row/col so the texture tiles seamlessly
        wrapped = np.pad(coarse, ((0, 1), (0, 1)), mode="wrap")
        idx = np.arange(size) * octave / size
        i0 = idx.astype(int)
        f = (idx - i0).astype(np.float32)
        rows = wrapped[i0] * (1 - f)[:, None] + wrapped[i0 + 1] * f[:, None]
        out += amp * (rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :])
        amp_total += amp
    return out / amp_total


# -- hand-made scenes (tests, demos) ------------------------------------------------------------------


def make_person(
    oid: int,
    xy,
    yaw: float,
    pose: str = "standing",
    *,
    height: float = 1.75,
    seed: int = 0,
    speed: float = 0.0,
) -> SimObject:
    """A pedestrian at map ``xy`` facing ``yaw``; clothing drawn from ``seed``."""
    shape = replace(_person_shape(np.random.default_rng(seed), pose), height=float(height))
    return SimObject(
        oid, "person", "person", np.asarray(xy, float), float(yaw), float(speed), None, None, shape
    )


def make_car(oid: int, xy, yaw: float, *, seed: int = 0, speed: float = 0.0) -> SimObject:
    """A car (size and colour drawn from ``seed``) centred at map ``xy`` heading ``yaw``."""
    parts = obj_lib.car_parts(np.random.default_rng(seed))
    return SimObject(oid, "car", "car", np.asarray(xy, float), float(yaw), float(speed), None, parts)


def scene_from_objects(
    objects: list[SimObject], *, seed: int = 0, config: SceneConfig | None = None, sun=(0.3, -0.4, 0.87)
) -> Scene:
    """A scene with exactly ``objects`` (ids must be 1..n, unique) on the textured ground."""
    sun_v = np.asarray(sun, float)
    noise = _value_noise(np.random.default_rng(seed), 256)
    return Scene(seed, config or SceneConfig(), list(objects), sun_v / np.linalg.norm(sun_v), noise)

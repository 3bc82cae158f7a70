"""Ray-cast rendering of camera images, depth, instance masks and LiDAR sweeps, plus their labels.

All geometry of a frame (ground quad and every object within sensor range) goes into one open3d
RaycastingScene as a single triangle soup. One ray per pixel gives the depth buffer, the triangle
hit (-> object id, part colour) and its normal (-> Lambert shading, sun shadows by an occlusion test
towards the sun). The LiDAR casts its 64 x N beams into the same scene, so every LiDAR return lies on
exactly the surface the camera sees, and labels (visibility, masks) agree with the pixels by
construction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from perception_pkg.sim.geometry import invert_transform, transform_points
from perception_pkg.sim.people import keypoint_radii
from perception_pkg.sim.scene import DETECTION_CLASSES, Scene
from perception_pkg.sim.truth import Box3D, ObjectGT, surface_samples

SKY_HORIZON = np.array([0.86, 0.89, 0.93], np.float32)
SKY_ZENITH = np.array([0.42, 0.6, 0.85], np.float32)
AMBIENT, DIFFUSE = 0.38, 0.72
GROUND_HALF = 400.0  # the ground quad reaches past the LiDAR's range in every direction
SCENE_RADIUS = 140.0  # objects further than this from the ego are not built into the frame


# Ground layout across the road (y band edges) with albedo and LiDAR reflectivity per band:
# verge, sidewalk, road, sidewalk, verge. Lane paint and slab joints on top, see below.
_BAND_EDGES = np.array([-9.0, -4.5, 5.25, 9.5])
_BAND_RGB = np.array(
    [[0.33, 0.42, 0.2], [0.62, 0.6, 0.56], [0.27, 0.27, 0.29], [0.62, 0.6, 0.56], [0.33, 0.42, 0.2]],
    np.float32,
)
_BAND_REFL = np.array([0.25, 0.3, 0.12, 0.3, 0.25], np.float32)
PAINT_RGB, PAINT_REFL = (0.88, 0.88, 0.86), 0.7
# texels per metre; period along x = LCM of the 6 m dashes and 1 m slabs (and of the 16 m noise
# tile); the band across the road it covers (beyond it, its edge texels: verge)
GROUND_TEXELS = 32
GROUND_PERIOD_X = 48.0
GROUND_Y = (-20.0, 20.0)


@lru_cache(maxsize=1)
def ground_layout_texture() -> tuple[np.ndarray, np.ndarray, int, int]:
    """The ground's layout sampled at texel centres: albedo (H*W, 3), reflectivity (H*W,), W, H.

    Every feature is a function of x or of y alone, so the texture is built by broadcasting 1-D
    profiles (tens of ms once per process) and a frame pays one gather per hit point.
    """
    xs = (np.arange(int(GROUND_PERIOD_X * GROUND_TEXELS)) + 0.5) / GROUND_TEXELS
    ys = GROUND_Y[0] + (np.arange(int((GROUND_Y[1] - GROUND_Y[0]) * GROUND_TEXELS)) + 0.5) / GROUND_TEXELS
    band = np.digitize(ys, _BAND_EDGES)
    shape = (len(ys), len(xs))
    rgb = np.broadcast_to(_BAND_RGB[band][:, None, :], (*shape, 3)).copy()
    refl = np.broadcast_to(_BAND_REFL[band][:, None], shape).copy()
    # 1 m paving slabs with darker joints on the sidewalks
    walk = (band == 1) | (band == 3)
    joints = walk[:, None] & (
        (np.abs(xs - np.round(xs)) < 0.03)[None, :] | (np.abs(ys - np.round(ys)) < 0.03)[:, None]
    )
    rgb[joints] *= 0.75
    # lane markings: dashed centre line, solid lines at the ego lane's right and at the kerbs
    dashed = (np.abs(ys - 1.75) < 0.07)[:, None] & (np.mod(xs, 6.0) < 3.0)[None, :]
    solid = (np.abs(ys + 1.75) < 0.07) | (np.abs(ys - 5.1) < 0.1) | (np.abs(ys + 4.35) < 0.1)
    paint = dashed | solid[:, None]
    rgb[paint] = PAINT_RGB
    refl[paint] = PAINT_REFL
    for a in (rgb, refl):
        a.flags.writeable = False
    return rgb.reshape(-1, 3), refl.reshape(-1), len(xs), len(ys)


@dataclass
class Frame:
    """One rendered time step. Images are RGB, the LiDAR cloud is in the LiDAR frame."""

    index: int
    t: float
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 camera Z in metres, inf where the sky is seen
    instance: np.ndarray  # (H, W) int32 object id, 0 for ground and sky
    points: np.ndarray  # (N, 4) float32 x, y, z, intensity in [0, 1]
    point_ids: np.ndarray  # (N,) int32 object id per point, 0 = ground
    point_rings: np.ndarray  # (N,) uint16 beam index, 0 = top beam
    objects: list[ObjectGT]  # persons and cars seen by the camera or the LiDAR
    T_map_base: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def gt(self) -> list[ObjectGT]:
        return self.objects

    def object(self, oid: int) -> ObjectGT:
        return next(o for o in self.objects if o.oid == oid)


@dataclass
class _Geometry:
    """Triangles of a set of objects in one ray-casting scene, with per-triangle attributes."""

    rc: object  # open3d.t.geometry.RaycastingScene
    tri_obj: np.ndarray  # (T,) object id, 0 = ground
    tri_rgb: np.ndarray  # (T, 3) albedo
    tri_refl: np.ndarray  # (T,) LiDAR reflectivity
    obj_verts: dict[int, np.ndarray]  # map-frame vertices per object (for amodal boxes)
    obj_box: dict[int, tuple[np.ndarray, np.ndarray]]  # object-frame (lo, hi) of the mesh


class Renderer:
    """Renders frames of one scene.

    Geometry is split in two ray-casting scenes: everything that never moves (buildings, parked
    cars, clutter, standing people, the ground) is built once per 50 m of ego travel, and only the
    movers (walking people, driving cars) are rebuilt every frame. Each ray is cast into both and the
    nearer hit wins, which is exact and keeps the per-frame BVH build small.
    """

    REBUILD_DISTANCE = 50.0

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        rig = scene.rig
        self.cam = rig.camera
        self.lidar = rig.lidar
        self.cam_rays = self.cam.pixel_rays().astype(np.float32)
        self.lidar_dirs = self.lidar.directions().astype(np.float32)
        self._samples: dict[tuple, np.ndarray] = {}
        self._static: _Geometry | None = None
        self._static_anchor = np.full(2, np.inf)
        self._part_attrs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._dir_cache: dict[tuple, np.ndarray] = {}

    # -- geometry ------------------------------------------------------------------------------------
    def _attrs(self, obj) -> tuple[np.ndarray, np.ndarray]:
        """Colour and reflectivity per part; a person's parts keep their order and colours."""
        if obj.oid not in self._part_attrs:
            parts = obj.parts_at(0.0)
            self._part_attrs[obj.oid] = (
                np.array([p.rgb for p in parts], np.float32),
                np.array([p.reflectivity for p in parts], np.float32),
            )
        return self._part_attrs[obj.oid]

    def _geometry(self, objs, t: float, ground_xy: np.ndarray | None) -> _Geometry | None:
        import open3d as o3d

        verts, tris, tri_obj, tri_rgb, tri_refl = [], [], [], [], []
        obj_verts, obj_box = {}, {}
        offset = 0
        for obj in objs:
            v, f, owner = obj.mesh_at(t)
            vw = transform_points(obj.pose(t), v)
            rgb, refl = self._attrs(obj)
            verts.append(vw)
            tris.append(f + offset)
            tri_obj.append(np.full(len(f), obj.oid, np.int32))
            tri_rgb.append(rgb[owner])
            tri_refl.append(refl[owner])
            obj_verts[obj.oid] = vw
            obj_box[obj.oid] = (v.min(axis=0), v.max(axis=0))
            offset += len(vw)
        if ground_xy is not None:
            # one quad, textured procedurally at the hit point
            g = GROUND_HALF
            quad = np.array([[-g, -g, 0], [g, -g, 0], [g, g, 0], [-g, g, 0]], float)
            quad[:, :2] += ground_xy
            verts.append(quad)
            tris.append(np.array([[0, 1, 2], [0, 2, 3]]) + offset)
            tri_obj.append(np.zeros(2, np.int32))
            tri_rgb.append(np.zeros((2, 3), np.float32))
            tri_refl.append(np.zeros(2, np.float32))
        if not verts:
            return None
        rc = o3d.t.geometry.RaycastingScene()
        rc.add_triangles(
            o3d.core.Tensor(np.concatenate(verts).astype(np.float32)),
            o3d.core.Tensor(np.concatenate(tris).astype(np.uint32)),
        )
        return _Geometry(
            rc, np.concatenate(tri_obj), np.concatenate(tri_rgb), np.concatenate(tri_refl), obj_verts, obj_box
        )

    def _near(self, obj, t: float, xy: np.ndarray, reach: float) -> bool:
        v, _, _ = obj.mesh_at(t)
        radius = float(np.max(np.linalg.norm(v[:, :2], axis=1)))
        return bool(np.linalg.norm(obj.xy_at(t) - xy) - radius <= reach)

    def _geometries(self, t: float, ego_xy: np.ndarray) -> list[_Geometry]:
        if np.linalg.norm(ego_xy - self._static_anchor) > self.REBUILD_DISTANCE:
            reach = SCENE_RADIUS + self.REBUILD_DISTANCE
            static = [
                o for o in self.scene.objects
                if o.speed == 0 and not o.dynamic_shape and self._near(o, 0.0, ego_xy, reach)
            ]  # fmt: skip
            self._static = self._geometry(static, 0.0, ego_xy)
            self._static_anchor = ego_xy.copy()
        movers = [
            o for o in self.scene.objects
            if (o.speed != 0 or o.dynamic_shape) and self._near(o, t, ego_xy, SCENE_RADIUS)
        ]  # fmt: skip
        dynamic = self._geometry(movers, t, None)
        return [g for g in (self._static, dynamic) if g is not None]

    def _camera_subset(self, geom: _Geometry, T_cam_map: np.ndarray) -> np.ndarray | None:
        """Pixels whose rays can hit ``geom``: the union of its objects' projected vertex boxes.

        For objects wholly in front of the camera, the projection of a convex part lies inside the
        box of its projected vertices, so no hit is lost. An object straddling the camera plane
        (a car passing alongside) has no finite projection: then every ray is cast (None).
        """
        cam = self.cam
        mask = np.zeros((cam.height, cam.width), bool)
        for verts in geom.obj_verts.values():
            vc = transform_points(T_cam_map, verts)
            if np.all(vc[:, 2] <= 0.0):
                continue  # wholly behind the camera
            if np.any(vc[:, 2] <= 1e-3):
                return None
            uv = cam.project(vc)
            c0, r0 = np.floor(uv.min(axis=0)).astype(int) - 1
            c1, r1 = np.ceil(uv.max(axis=0)).astype(int) + 1
            if c1 < 0 or r1 < 0 or c0 >= cam.width or r0 >= cam.height:
                continue
            mask[max(r0, 0) : r1 + 1, max(c0, 0) : c1 + 1] = True
        return np.flatnonzero(mask)

    def _lidar_subset(self, geom: _Geometry, T_lidar_map: np.ndarray) -> np.ndarray:
        """Beams whose rays can hit ``geom``, from each object's bounding cylinder as seen from the
        LiDAR: azimuth within the circle's angular radius, elevation between the extremes that
        the nearest and farthest horizontal distances allow (conservative, so exact)."""
        lid = self.lidar
        n_az = lid.azimuth_steps
        step = 2 * np.pi / n_az
        el = np.radians(lid.elevations())
        pad = np.radians(0.05)
        mask = np.zeros((lid.beams, n_az), bool)
        for verts in geom.obj_verts.values():
            vl = transform_points(T_lidar_map, verts)
            c = (vl[:, :2].min(axis=0) + vl[:, :2].max(axis=0)) / 2
            radius = float(np.max(np.linalg.norm(vl[:, :2] - c, axis=1)))
            d = float(np.hypot(*c))
            if d - radius > lid.max_range:
                continue
            z_lo, z_hi = float(vl[:, 2].min()), float(vl[:, 2].max())
            r_min, r_max = max(d - radius, 1e-3), d + radius
            el_hi = np.arctan2(z_hi, r_min if z_hi > 0 else r_max)
            el_lo = np.arctan2(z_lo, r_min if z_lo < 0 else r_max)
            rows = np.flatnonzero((el >= el_lo - pad) & (el <= el_hi + pad))
            if len(rows) == 0:
                continue
            if d <= radius:
                cols = np.arange(n_az)  # around the sensor
            else:
                half = np.arcsin(radius / d)
                az_c = np.arctan2(c[1], c[0])
                j0 = int(np.floor((az_c - half + np.pi) / step)) - 1
                j1 = int(np.ceil((az_c + half + np.pi) / step)) + 1
                cols = np.arange(j0, j1 + 1) % n_az
            mask[np.ix_(rows, cols)] = True
        return np.flatnonzero(mask)

    @staticmethod
    def _tables(geoms: list[_Geometry]) -> dict[str, np.ndarray]:
        """Per-triangle attributes of all geometries end to end, plus each geometry's offset."""
        return {
            "offset": np.cumsum([0] + [len(g.tri_obj) for g in geoms[:-1]]).astype(np.int64),
            "obj": np.concatenate([g.tri_obj for g in geoms]),
            "rgb": np.concatenate([g.tri_rgb for g in geoms]),
            "refl": np.concatenate([g.tri_refl for g in geoms]),
        }

    @staticmethod
    def _cast(
        geoms: list[_Geometry],
        tables: dict[str, np.ndarray],
        rays: np.ndarray,
        subsets: list[np.ndarray | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Nearest hit over all geometries: t (inf = miss), triangle index into ``tables``, object id,
        normal, valid. ``subsets[i]`` (ray indices, None = all) limits the rays cast into geometry
        i > 0 to those that can reach it. Row gathers use np.take (several times faster here)."""
        import open3d as o3d

        rays = np.ascontiguousarray(rays, np.float32)
        best_t = normal = tri = None
        for gi, g in enumerate(geoms):
            if best_t is None:
                hit = g.rc.cast_rays(o3d.core.Tensor.from_numpy(rays))  # from_numpy: no copy
                th = hit["t_hit"].numpy()
                best_t = th.copy()
                # misses carry INVALID_ID; the mask below keeps them out of every lookup
                tri = np.where(np.isfinite(th), hit["primitive_ids"].numpy(), 0).astype(np.int64)
                normal = hit["primitive_normals"].numpy().copy()
                continue
            subset = None if subsets is None else subsets[gi]
            if subset is not None and len(subset) == 0:
                continue
            sub_rays = rays if subset is None else np.take(rays, subset, axis=0)
            hit = g.rc.cast_rays(o3d.core.Tensor.from_numpy(sub_rays))
            th = hit["t_hit"].numpy()
            ray_idx = np.arange(len(rays)) if subset is None else subset
            # later geometries (the movers) win few rays: update only those
            closer = np.flatnonzero(th < np.take(best_t, ray_idx))
            idx = np.take(ray_idx, closer)
            best_t[idx] = np.take(th, closer)
            tri[idx] = np.take(hit["primitive_ids"].numpy(), closer).astype(np.int64) + tables["offset"][gi]
            normal[idx] = np.take(hit["primitive_normals"].numpy(), closer, axis=0)
        valid = np.isfinite(best_t)
        obj = np.take(tables["obj"], tri)
        obj[~valid] = 0
        return {"t": best_t, "tri": tri, "obj": obj, "normal": normal, "valid": valid}

    def _rotated(self, name: str, dirs: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """``dirs`` rotated into map; cached because a straight drive keeps the rotation fixed."""
        key = (name, rotation.astype(np.float32).tobytes())
        if key not in self._dir_cache:
            if len(self._dir_cache) > 8:
                self._dir_cache.clear()
            self._dir_cache[key] = np.einsum("ij,kj->ik", dirs, rotation.astype(np.float32))
        return self._dir_cache[key]

    def _camera_dirs(self, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map-frame pixel rays and the sky colour behind each pixel."""
        dirs = self._rotated("camera", self.cam_rays, rotation)
        key = ("sky", rotation.astype(np.float32).tobytes())
        if key not in self._dir_cache:
            elevation = np.clip(dirs[:, 2] / np.linalg.norm(dirs, axis=1), 0.0, None)
            sky = np.clip(elevation * 3.0, 0.0, 1.0)[:, None]
            self._dir_cache[key] = (SKY_HORIZON * (1 - sky) + SKY_ZENITH * sky).astype(np.float32)
        return dirs, self._dir_cache[key]

    def _ground(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Albedo (N, 3) and LiDAR reflectivity (N,) of the ground at map points (N, 2).

        Two texture lookups: the layout (bands, slabs, paint; see ``ground_layout_texture``) and
        the scene's value noise (16 texels per metre, tiling every 16 m).
        """
        rgb, refl, nx, ny = ground_layout_texture()
        ix = np.floor(xy[:, 0] * GROUND_TEXELS).astype(np.int64) % nx
        iy = np.clip(np.floor((xy[:, 1] - GROUND_Y[0]) * GROUND_TEXELS).astype(np.int64), 0, ny - 1)
        idx = iy * nx + ix
        noise = self.scene.ground_noise
        n = noise.shape[0]
        jx = np.floor(xy[:, 0] * 16.0).astype(np.int64) % n
        jy = np.floor(xy[:, 1] * 16.0).astype(np.int64) % n
        shade = 0.75 + 0.5 * np.take(noise.ravel(), jy * n + jx)
        return np.take(rgb, idx, axis=0) * shade[:, None], np.take(refl, idx)

    # -- one frame -----------------------------------------------------------------------------------
    def render(self, index: int, *, shadows: bool = True) -> Frame:
        import open3d as o3d

        scene = self.scene
        rig = scene.rig
        t = scene.time(index)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        T_map_base = scene.ego_pose(t)
        T_map_cam = T_map_base @ rig.T_base_camera
        T_map_lidar = T_map_base @ rig.T_base_lidar
        geoms = self._geometries(t, T_map_base[:2, 3])
        timings["build"] = time.perf_counter() - t0

        # camera -------------------------------------------------------------------------------
        t0 = time.perf_counter()
        h, w = self.cam.height, self.cam.width
        dirs, sky_rgb = self._camera_dirs(T_map_cam[:3, :3])
        origin = T_map_cam[:3, 3].astype(np.float32)
        tables = self._tables(geoms)
        T_cam_map = invert_transform(T_map_cam)
        subsets = [None] + [self._camera_subset(g, T_cam_map) for g in geoms[1:]]
        rays = np.concatenate([np.broadcast_to(origin, dirs.shape), dirs], axis=1)
        hit = self._cast(geoms, tables, rays, subsets)
        depth = hit["t"]  # Z-depth: the directions have unit Z in the camera frame
        valid = hit["valid"]
        instance = hit["obj"]
        timings["camera"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        pts = origin + dirs * np.where(valid, depth, 0.0)[:, None]
        rgb = np.take(tables["rgb"], hit["tri"], axis=0)
        on_ground = np.flatnonzero(valid & (instance == 0))
        rgb[on_ground] = self._ground(np.take(pts[:, :2], on_ground, axis=0))[0]
        n = hit["normal"]
        # face the viewer: open3d's normal follows the winding; backfaces are shaded like fronts
        n *= np.where(_rowdot(n, dirs) > 0, np.float32(-1.0), np.float32(1.0))[:, None]
        sun = scene.sun.astype(np.float32)
        lambert = np.maximum(n[:, 0] * sun[0] + n[:, 1] * sun[1] + n[:, 2] * sun[2], 0.0)
        lambert[~valid] = 0.0
        if shadows:
            lit = np.flatnonzero(lambert > 0)
            # offset along the normal so a surface does not shadow itself
            shadow_rays = o3d.core.Tensor.from_numpy(
                np.concatenate(
                    [
                        np.take(pts, lit, axis=0) + np.take(n, lit, axis=0) * 2e-3,
                        np.broadcast_to(sun, (len(lit), 3)),
                    ],
                    axis=1,
                )
            )
            occluded = np.zeros(len(lit), bool)
            for g in geoms:
                # (culling the movers' shadow rays by footprint was tried: no gain at ~6% hits)
                occluded |= g.rc.test_occlusions(shadow_rays).numpy().astype(bool)
            lambert[lit[occluded]] = 0.0
        # a little sky light from above so vertical faces in shadow keep some shape
        light = AMBIENT + 0.12 * n[:, 2] + DIFFUSE * lambert
        rgb *= light[:, None]
        sky_px = np.flatnonzero(~valid)
        rgb[sky_px] = sky_rgb[sky_px]
        # one saturating pass instead of clip, scale, round and cast (values are never negative)
        image = cv2.convertScaleAbs(rgb.reshape(h, w, 3), alpha=255.0)
        depth_img = depth.reshape(h, w)
        instance = instance.reshape(h, w)
        timings["shade"] = time.perf_counter() - t0

        # LiDAR --------------------------------------------------------------------------------
        t0 = time.perf_counter()
        ldirs = self._rotated("lidar", self.lidar_dirs, T_map_lidar[:3, :3])
        lorigin = T_map_lidar[:3, 3].astype(np.float32)
        lhit = self._cast(
            geoms, tables, np.concatenate([np.broadcast_to(lorigin, ldirs.shape), ldirs], axis=1)
        )
        rng = np.random.default_rng([scene.seed, index, 1])
        true_range = lhit["t"]
        # noise for every beam (not only hits) so the draw does not depend on what was hit
        noise = rng.normal(0.0, self.lidar.range_noise, len(true_range)).astype(np.float32)
        ok = np.flatnonzero((true_range >= self.lidar.min_range) & (true_range <= self.lidar.max_range))
        r_true = np.take(true_range, ok)
        r = r_true + np.take(noise, ok)
        point_ids = np.take(lhit["obj"], ok)
        ok_dirs = np.take(ldirs, ok, axis=0)
        xyz = np.take(self.lidar_dirs, ok, axis=0) * r[:, None]
        # intensity: reflectivity times the cosine of incidence (Lambertian return)
        cos_inc = np.abs(_rowdot(np.take(lhit["normal"], ok, axis=0), ok_dirs))
        refl = np.take(tables["refl"], np.take(lhit["tri"], ok))
        g = np.flatnonzero(point_ids == 0)
        hit_map = lorigin + np.take(ok_dirs, g, axis=0) * np.take(r_true, g)[:, None]
        refl[g] = self._ground(hit_map[:, :2])[1]
        intensity = np.clip(refl * cos_inc, 0.0, 1.0)
        points = np.concatenate([xyz, intensity[:, None]], axis=1).astype(np.float32)
        rings = (ok // self.lidar.azimuth_steps).astype(np.uint16)
        timings["lidar"] = time.perf_counter() - t0

        # ground truth -------------------------------------------------------------------------------
        t0 = time.perf_counter()
        objects = self._truth(t, instance, depth_img, point_ids, geoms, T_map_cam, T_map_lidar)
        timings["gt"] = time.perf_counter() - t0
        return Frame(
            index, t, scene.stamp_ns(index), image, depth_img, instance, points, point_ids, rings, objects,
            T_map_base, timings,
        )  # fmt: skip

    def _truth(self, t, instance, depth, point_ids, geoms, T_map_cam, T_map_lidar) -> list[ObjectGT]:
        from scipy import ndimage

        scene = self.scene
        cam = self.cam
        h, w = instance.shape
        obj_verts: dict[int, np.ndarray] = {}
        obj_box: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for g in geoms:
            obj_verts.update(g.obj_verts)
            obj_box.update(g.obj_box)
        T_cam_map = invert_transform(T_map_cam)
        T_lidar_map = invert_transform(T_map_lidar)
        max_id = max(o.oid for o in scene.objects) if scene.objects else 0
        pixel_count = np.bincount(instance.ravel(), minlength=max_id + 1)
        slices = ndimage.find_objects(instance, max_label=max_id)
        # LiDAR returns grouped by object id (stable sort keeps the cloud's ring/azimuth order)
        order = np.argsort(point_ids, kind="stable")
        bounds = np.searchsorted(point_ids[order], np.arange(max_id + 2))
        out: list[ObjectGT] = []
        for obj in scene.objects:
            if obj.cls not in DETECTION_CLASSES or obj.oid not in obj_verts:
                continue
            npx = int(pixel_count[obj.oid])
            lidx = order[bounds[obj.oid] : bounds[obj.oid + 1]]
            if npx == 0 and len(lidx) == 0:
                continue
            box2d = None
            sl = slices[obj.oid - 1]
            if npx > 0 and sl is not None:
                box2d = np.array([sl[1].start - 0.5, sl[0].start - 0.5, sl[1].stop - 0.5, sl[0].stop - 0.5])
            vcam = transform_points(T_cam_map, obj_verts[obj.oid])
            front = vcam[:, 2] > 0.1
            amodal = None
            truncated = not bool(front.all())
            if front.any():
                uv = cam.project(vcam[front])
                amodal = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
                truncated |= bool(
                    amodal[0] < -0.5 or amodal[1] < -0.5 or amodal[2] > w - 0.5 or amodal[3] > h - 0.5
                )
            T_map_obj = obj.pose(t)
            lo, hi = obj_box[obj.oid]
            box_obj = Box3D((lo + hi) / 2, hi - lo, np.eye(3))
            gt = ObjectGT(
                oid=obj.oid,
                cls=obj.cls,
                visible_pixels=npx,
                box2d=box2d,
                box2d_amodal=amodal,
                truncated=truncated,
                box3d_camera=box_obj.transformed(T_cam_map @ T_map_obj),
                box3d_lidar=box_obj.transformed(T_lidar_map @ T_map_obj),
                T_lidar_object=T_lidar_map @ T_map_obj,
                lidar_index=lidx,
            )
            if obj.person is not None:
                kp_map = transform_points(T_map_obj, obj.articulation(t).keypoints)
                kp_cam = transform_points(T_cam_map, kp_map)
                radii = keypoint_radii(obj.person)
                gt.keypoints = keypoint_visibility(
                    kp_cam, radii, cam.project(kp_cam), instance, depth, obj.oid
                )
                gt.keypoints_camera = kp_cam
                gt.keypoint_radii = radii
            out.append(gt)
        return out

    def complete_points(self, oid: int, t: float, n: int) -> np.ndarray:
        """(n, 3) object-frame samples of the object's complete surface (cached per shape)."""
        obj = self.scene.by_id[oid]
        key = (*obj.shape_key(t), n)
        if key not in self._samples:
            self._samples[key] = surface_samples(obj, t, n, self.scene.seed)
        return self._samples[key]


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N, 3) arrays (einsum and BLAS are slower for this shape)."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def keypoint_visibility(
    kp_cam: np.ndarray, radii: np.ndarray, uv: np.ndarray, instance: np.ndarray, depth: np.ndarray, oid: int
) -> np.ndarray:
    """COCO (x, y, v) per keypoint from the depth buffer; see truth.py for the rule."""
    h, w = instance.shape
    out = np.zeros((len(kp_cam), 3))
    out[:, :2] = uv
    inside = (
        (kp_cam[:, 2] > 0)
        & (uv[:, 0] >= -0.5) & (uv[:, 0] < w - 0.5)
        & (uv[:, 1] >= -0.5) & (uv[:, 1] < h - 0.5)
    )  # fmt: skip
    col = np.clip(np.floor(np.nan_to_num(uv[:, 0]) + 0.5).astype(int), 0, w - 1)
    row = np.clip(np.floor(np.nan_to_num(uv[:, 1]) + 0.5).astype(int), 0, h - 1)
    own = (instance[row, col] == oid) & (depth[row, col] >= kp_cam[:, 2] - radii)
    out[:, 2] = np.where(inside, np.where(own, 2, 1), 0)
    return out


def render_frame(scene: Scene, index: int, *, shadows: bool = True) -> Frame:
    """Render frame ``index`` (t = index / fps) of ``scene``. Reuses one Renderer per scene."""
    renderer = getattr(scene, "_renderer", None)
    if renderer is None:
        renderer = Renderer(scene)
        scene._renderer = renderer  # type: ignore[attr-defined]
    return renderer.render(index, shadows=shadows)

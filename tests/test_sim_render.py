"""Simulator rendering and ground truth: exact geometric checks on small frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("open3d")
import open3d as o3d

from perception_pkg.pose.coco17 import KEYPOINT_NAMES
from perception_pkg.sim import (
    Renderer,
    SceneConfig,
    generate_scene,
    render_frame,
)
from perception_pkg.sim.geometry import Part, merge_parts, transform_points
from perception_pkg.sim.render import keypoint_visibility
from perception_pkg.sim.scene import make_car, make_person, scene_from_objects

SMALL = {"width": 320, "height": 240, "azimuth_steps": 600}


@pytest.fixture(scope="module")
def street():
    """A random street scene (seed 11) at 320x240 and its second frame."""
    scene = generate_scene(11, SceneConfig.with_sensors(**SMALL, frames=3))
    return scene, render_frame(scene, 1)


@pytest.fixture(scope="module")
def lone_person():
    """One standing person facing the camera 6 m ahead of the ego, nothing else."""
    cfg = SceneConfig.with_sensors(**SMALL, frames=1)
    person = make_person(1, (6.27, 0.0), np.pi, "standing", height=1.75, seed=3)
    scene = scene_from_objects([person], config=cfg)
    return scene, render_frame(scene, 0)


def _object_mesh_in_lidar(scene, frame, oid):
    obj = scene.by_id[oid]
    verts, tris, _ = obj.mesh_at(frame.t)
    t_lidar_map = np.linalg.inv(frame.T_map_base @ scene.rig.T_base_lidar)
    return transform_points(t_lidar_map @ obj.pose(frame.t), verts), tris


def _distance_to_mesh(verts, tris, pts):
    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(tris.astype(np.uint32)))
    return rc.compute_distance(o3d.core.Tensor(pts.astype(np.float32))).numpy()


# -- geometry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        Part.box([0.1, 0.2, 0.3], [0.5, 0.2, 0.7], (1, 0, 0)),
        Part.cylinder([0, 0, 0], [0.3, -0.2, 1.0], 0.25, (1, 0, 0)),
        Part.capsule([0, 0, 0], [0.0, 0.5, 0.5], 0.1, (1, 0, 0)),
        Part.capsule([1, 1, 1], [1, 1, 1], 0.2, (1, 0, 0)),
    ],
    ids=["box", "cylinder", "capsule", "sphere"],
)
def test_part_mesh_is_closed_and_wound_outward(part):
    verts, tris, _ = merge_parts([part])
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    normals = np.cross(b - a, c - a)
    centre = verts.mean(axis=0)
    # convex part: every face normal points away from the interior
    assert np.all(np.einsum("ij,ij->i", normals, (a + b + c) / 3 - centre) > 0)
    # closed: every edge is shared by exactly two triangles, once in each direction
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    fwd = {tuple(e) for e in edges}
    assert len(fwd) == len(edges) and all((e[1], e[0]) in fwd for e in fwd)
    # points on the facets are not "inside" their own part at the sampling margin
    pts = (a + b + c) / 3
    assert not part.contains(pts, margin=part.sagitta() + 1e-3).any()


# -- camera ----------------------------------------------------------------------------------------------


def test_depth_buffer_is_camera_z_on_the_ground(lone_person):
    scene, frame = lone_person
    cam = scene.rig.camera
    h = scene.rig.camera_xyz[2]
    rows = np.arange(cam.height)
    # a level camera h metres above flat ground sees it at Z = fy h / (v - cy) below the horizon
    ground = (frame.instance == 0) & np.isfinite(frame.depth) & (rows[:, None] > cam.cy + 2)
    r, c = np.nonzero(ground)
    expected = cam.fy * h / (r - cam.cy)
    assert np.allclose(frame.depth[r, c], expected, rtol=1e-5, atol=1e-4)


def test_keypoints_project_onto_their_rendered_limb(lone_person):
    scene, frame = lone_person
    cam = scene.rig.camera
    (gt,) = frame.objects
    assert gt.cls == "person" and gt.keypoints is not None
    # independent projection (OpenCV) of the camera-frame joints
    uv, _ = cv2.projectPoints(gt.keypoints_camera, np.zeros(3), np.zeros(3), cam.K, np.zeros(5))
    assert np.allclose(uv.reshape(-1, 2), gt.keypoints[:, :2], atol=1e-6)
    col = np.floor(gt.keypoints[:, 0] + 0.5).astype(int)
    row = np.floor(gt.keypoints[:, 1] + 0.5).astype(int)
    # facing the camera, unoccluded: every keypoint is on this person's pixels and visible
    assert (frame.instance[row, col] == gt.oid).all(), [
        KEYPOINT_NAMES[i] for i in np.flatnonzero(frame.instance[row, col] != gt.oid)
    ]
    assert (gt.keypoints[:, 2] == 2).all()
    # the surface seen there lies in front of the joint by at most the limb's radius
    gap = gt.keypoints_camera[:, 2] - frame.depth[row, col]
    assert np.all(gap > -1e-3) and np.all(gap <= gt.keypoint_radii)
    # left/right as in COCO: the person's left is on the image right when facing the camera
    assert (
        gt.keypoints[KEYPOINT_NAMES.index("left_shoulder"), 0]
        > gt.keypoints[KEYPOINT_NAMES.index("right_shoulder"), 0]
    )


def test_person_behind_a_car_has_occluded_legs_and_visible_face():
    cfg = SceneConfig.with_sensors(**SMALL, frames=1)
    car = make_car(1, (9.0, 0.0), np.pi / 2, seed=6)  # broadside across the view, 1.35 m high
    assert car.mesh_at(0.0)[0][:, 2].max() < 1.4
    person = make_person(2, (12.0, 0.0), np.pi, "standing", height=1.9, seed=2)
    scene = scene_from_objects([car, person], config=cfg)
    frame = render_frame(scene, 0)
    gt = frame.object(2)
    assert gt.keypoints is not None
    assert (gt.keypoints[:, 2] > 0).all()  # all in the image
    legs = [KEYPOINT_NAMES.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    face = [KEYPOINT_NAMES.index(n) for n in ("nose", "left_eye", "right_eye")]
    assert (gt.keypoints[legs, 2] == 1).all()  # below the car's roof line: hidden
    assert (gt.keypoints[face, 2] == 2).all()  # above it: seen


def test_visibility_flags_agree_with_depth_buffer(street):
    scene, frame = street
    cam = scene.rig.camera
    people = [o for o in frame.objects if o.keypoints is not None]
    assert people
    counts = np.zeros(3, int)
    for o in people:
        kp, z = o.keypoints, o.keypoints_camera[:, 2]
        inside = (z > 0) & (kp[:, 0] >= -0.5) & (kp[:, 0] < cam.width - 0.5)
        inside &= (kp[:, 1] >= -0.5) & (kp[:, 1] < cam.height - 0.5)
        col = np.clip(np.floor(np.nan_to_num(kp[:, 0]) + 0.5), 0, cam.width - 1).astype(int)
        row = np.clip(np.floor(np.nan_to_num(kp[:, 1]) + 0.5), 0, cam.height - 1).astype(int)
        own_surface = (frame.instance[row, col] == o.oid) & (frame.depth[row, col] >= z - o.keypoint_radii)
        expected = np.where(inside, np.where(own_surface, 2, 1), 0)
        assert np.array_equal(kp[:, 2], expected), o.oid
        counts += np.bincount(expected.astype(int), minlength=3)
    assert counts[1] > 0 and counts[2] > 0  # the scene exercises both visible and occluded joints


def test_keypoint_visibility_rule_on_a_synthetic_buffer():
    instance = np.zeros((4, 4), np.int32)
    depth = np.full((4, 4), 10.0, np.float32)
    instance[1, 1], depth[1, 1] = 5, 9.95  # own skin 5 cm in front of the joint: visible
    instance[2, 2], depth[2, 2] = 5, 9.0  # own body 1 m in front (other arm): occluded
    instance[3, 3], depth[3, 3] = 6, 9.99  # someone else: occluded
    kp_cam = np.array([[0, 0, 10.0]] * 4 + [[0, 0, -1.0]])
    uv = np.array([[1.2, 0.9], [2.0, 2.3], [3.0, 3.0], [9.0, 1.0], [1.0, 1.0]])
    out = keypoint_visibility(kp_cam, np.full(5, 0.1), uv, instance, depth, 5)
    assert out[:, 2].tolist() == [2, 1, 1, 0, 0]


def test_modal_boxes_bound_the_instance_mask(street):
    _, frame = street
    for o in frame.objects:
        if o.box2d is None:
            assert o.visible_pixels == 0
            continue
        rows, cols = np.nonzero(frame.instance == o.oid)
        assert o.visible_pixels == len(rows)
        assert o.box2d.tolist() == [cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5]
        if not o.truncated:
            a = o.box2d_amodal  # the occlusion-free extent contains the visible one
            assert a[0] <= o.box2d[0] + 0.5 and a[1] <= o.box2d[1] + 0.5
            assert a[2] >= o.box2d[2] - 0.5 and a[3] >= o.box2d[3] - 0.5


def test_3d_boxes_follow_the_kitti_convention(street):
    scene, frame = street
    assert frame.objects
    for o in frame.objects:
        k = o.box3d_camera.kitti()
        # everything stands on the ground, which is camera_height below a level camera (+y down);
        # tyres touch it with a vertex, a tilted foot capsule's lowest vertex can be a mm above
        tol = 1e-6 if o.cls == "car" else 3e-3
        assert k["location"][1] == pytest.approx(scene.rig.camera_xyz[2], abs=tol)
        h, w, length = k["dimensions"]
        assert [length, w, h] == pytest.approx(o.box3d_lidar.size.tolist())
        ry_from_lidar = (-o.box3d_lidar.yaw_about_z() - np.pi / 2 + np.pi) % (2 * np.pi) - np.pi
        assert np.cos(k["rotation_y"] - ry_from_lidar) == pytest.approx(1.0, abs=1e-9)
        if o.cls == "car":
            assert 3.5 <= length <= 5.05


# -- LiDAR -----------------------------------------------------------------------------------------------


def test_lidar_points_lie_on_their_object_surface(street):
    scene, frame = street
    sigma = scene.rig.lidar.range_noise
    checked = 0
    for o in frame.objects:
        if o.num_lidar_points == 0:
            continue
        verts, tris = _object_mesh_in_lidar(scene, frame, o.oid)
        d = _distance_to_mesh(verts, tris, frame.points[o.lidar_index, :3])
        assert d.max() < 5 * sigma, (o.oid, d.max())
        # and inside the object's 3D box, up to the noise
        b = o.box3d_lidar
        local = (frame.points[o.lidar_index, :3] - b.centre) @ b.rotation
        assert np.all(np.abs(local) <= b.size / 2 + 5 * sigma)
        checked += len(d)
    assert checked > 500


def test_noise_free_lidar_is_exact_and_noise_has_the_configured_sigma():
    clean_cfg = SceneConfig.with_sensors(**SMALL, frames=1, range_noise=0.0)
    noisy_cfg = SceneConfig.with_sensors(**SMALL, frames=1)
    clean = render_frame(generate_scene(5, clean_cfg), 0)
    noisy = render_frame(generate_scene(5, noisy_cfg), 0)
    scene = generate_scene(5, clean_cfg)
    for o in clean.objects:
        if o.num_lidar_points:
            verts, tris = _object_mesh_in_lidar(scene, clean, o.oid)
            assert _distance_to_mesh(verts, tris, clean.points[o.lidar_index, :3]).max() < 2e-3
    # same beams hit (validity depends on the true range), so residuals are the range noise
    assert np.array_equal(clean.point_rings, noisy.point_rings)
    resid = np.linalg.norm(noisy.points[:, :3], axis=1) - np.linalg.norm(clean.points[:, :3], axis=1)
    assert abs(resid.mean()) < 1e-3
    assert resid.std() == pytest.approx(noisy_cfg.rig.lidar.range_noise, rel=0.05)


def test_lidar_beams_span_hdl64_elevations(street):
    _scene, frame = street
    xyz = frame.points[:, :3]
    elev = np.degrees(np.arctan2(xyz[:, 2], np.linalg.norm(xyz[:, :2], axis=1)))
    assert elev.max() <= 2.0 + 0.1 and elev.min() >= -24.8 - 0.1
    assert set(np.unique(frame.point_rings)) <= set(range(64))
    assert frame.points.dtype == np.float32 and np.all((frame.points[:, 3] >= 0) & (frame.points[:, 3] <= 1))


# -- complete shapes ---------------------------------------------------------------------------------------


def test_complete_samples_cover_only_the_outer_surface(street):
    scene, frame = street
    renderer: Renderer = scene._renderer
    car = next(o for o in frame.objects if o.cls == "car")
    obj = scene.by_id[car.oid]
    pts = renderer.complete_points(car.oid, frame.t, 2048)
    assert pts.shape == (2048, 3) and pts.dtype == np.float32
    verts, tris, _ = obj.mesh_at(frame.t)
    assert _distance_to_mesh(verts, tris, pts).max() < 1e-4  # on the mesh
    parts = obj.parts_at(frame.t)
    buried = np.zeros(len(pts), bool)
    for p in parts:
        buried |= p.contains(pts, margin=p.sagitta() + 1e-3)
    assert not buried.any()
    # the cache returns the same array; a fresh sampler with the same seed the same points
    assert renderer.complete_points(car.oid, frame.t, 2048) is pts
    assert np.array_equal(Renderer(scene).complete_points(car.oid, frame.t, 2048), pts)


def test_same_seed_same_frame_bytes():
    cfg = SceneConfig.with_sensors(**SMALL, frames=2)
    a = render_frame(generate_scene(3, cfg), 1)
    b = render_frame(generate_scene(3, cfg), 1)
    c = render_frame(generate_scene(4, cfg), 1)
    for name in ("image", "depth", "instance", "points", "point_ids"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.image.tobytes() != c.image.tobytes()


def test_ray_culling_for_moving_objects_is_exact(street):
    """Rays into the movers' scene are limited to their screen / beam boxes: same frame as casting all."""
    scene, frame = street
    full = Renderer(scene)
    full._camera_subset = lambda geom, t_cam_map: None
    full._lidar_subset = lambda geom, t_lidar_map: None
    ref = full.render(frame.index)
    assert any(o.speed or o.dynamic_shape for o in scene.objects)
    for name in ("image", "depth", "instance", "points", "point_ids"):
        assert np.array_equal(getattr(frame, name), getattr(ref, name)), name

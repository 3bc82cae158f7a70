"""Articulated pedestrians: a COCO-17 skeleton driven by a few joint angles, limbs as capsules.

Person frame: origin on the ground below the pelvis, x forward (the way the person faces), y to the
person's left, z up; metres. Segment lengths are fixed fractions of body height (Drillis-Contini
anthropometry), so one number scales the whole body.

The 17 keypoints are the COCO ones in COCO order (names and skeleton: :mod:`perception_pkg.pose.coco17`).
Limb keypoints (shoulders, elbows, wrists, hips, knees, ankles) are joint centres, i.e. on the axis of
the capsules that meet there, inside the body.
Face keypoints lie inside the head sphere (0.9 of its radius, so inside its polygon mesh too) on the
face, so their projection falls on the head's silhouette.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_pkg.sim.geometry import Part, rot_x, rot_y

POSES: tuple[str, ...] = ("standing", "walking", "arms_up", "sitting")

# Fractions of body height H
_SHOULDER_Z, _HIP_Z, _ANKLE_Z = 0.818, 0.530, 0.039
_SHOULDER_HALF, _HIP_HALF = 0.110, 0.060
_UPPER_ARM, _FOREARM, _THIGH, _SHANK = 0.186, 0.146, 0.245, 0.246
_HEAD_R = 0.062
_SEAT_Z = _ANKLE_Z + _SHANK  # sitting: thighs horizontal at knee height


@dataclass(frozen=True)
class PersonShape:
    """Everything about a pedestrian that does not change over time."""

    height: float
    build: float  # radius multiplier (0.9 slim .. 1.15 broad)
    pose: str
    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    skin: tuple[float, float, float]
    shoes: tuple[float, float, float]
    arm_variant: int = 0  # arms_up: 0 both, 1 left only, 2 right only
    phase0: float = 0.0  # walking phase at t = 0 (rad)
    cadence: float = 5.5  # walking phase rate (rad/s), about 0.9 strides per second


@dataclass
class Articulation:
    """Joint positions (17, 3) plus the few extra points the body parts need, in the person frame."""

    keypoints: np.ndarray
    neck: np.ndarray
    head_centre: np.ndarray
    mid_hip: np.ndarray
    toes: np.ndarray  # (2, 3): left, right


def _leg(hip: np.ndarray, flex: float, knee_flex: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle of a leg with hip flexion ``flex`` (forward +) and knee flexion (back +)."""
    thigh = np.array([np.sin(flex), 0.0, -np.cos(flex)]) * _THIGH * height
    shank_angle = flex - knee_flex
    shank = np.array([np.sin(shank_angle), 0.0, -np.cos(shank_angle)]) * _SHANK * height
    knee = hip + thigh
    return knee, knee + shank


def _arm(
    shoulder: np.ndarray, flex: float, abduct: float, elbow_flex: float, side: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist. ``flex`` raises the arm forward (pi = overhead), ``abduct`` sideways out."""
    down = np.array([0.0, 0.0, -1.0])
    # abduction turns the arm outward: towards +y for the left arm (side = +1)
    out = rot_x(side * abduct) @ down
    upper = rot_y(-flex) @ out
    fore = rot_y(-(flex + elbow_flex)) @ out
    elbow = shoulder + upper * _UPPER_ARM * height
    return elbow, elbow + fore * _FOREARM * height


def articulate(shape: PersonShape, t: float) -> Articulation:
    """Pose the skeleton at time ``t`` (only walking changes with time)."""
    h = shape.height
    rng_free = shape.pose
    # joint angles: (hip flex L, R), (knee flex L, R), (shoulder flex L, R), abduction, elbow flex
    if rng_free == "walking":
        p = shape.phase0 + shape.cadence * t
        hip = (0.35 * np.sin(p), -0.35 * np.sin(p))
        # the swinging leg (hip flexing forward) bends its knee
        knee = (0.08 + 0.55 * max(0.0, np.cos(p)), 0.08 + 0.55 * max(0.0, -np.cos(p)))
        sh = (-0.35 * np.sin(p), 0.35 * np.sin(p))
        abduct, elbow = (0.12, 0.12), (0.35, 0.35)
    elif rng_free == "arms_up":
        hip, knee = (0.0, 0.0), (0.03, 0.03)
        up_l = shape.arm_variant in (0, 1)
        up_r = shape.arm_variant in (0, 2)
        sh = (2.9 if up_l else 0.05, 2.9 if up_r else 0.05)
        abduct = (0.35 if up_l else 0.1, 0.35 if up_r else 0.1)
        elbow = (0.15, 0.15)
    elif rng_free == "sitting":
        hip, knee = (np.pi / 2, np.pi / 2), (np.pi / 2, np.pi / 2)
        sh, abduct, elbow = (0.35, 0.35), (0.12, 0.12), (0.9, 0.9)
    else:  # standing
        hip, knee = (0.0, 0.0), (0.05, 0.05)
        sh, abduct, elbow = (0.06, 0.06), (0.14, 0.14), (0.15, 0.15)

    # pelvis height: the lower ankle rests at ankle height (stance leg on the ground)
    def vertical(flex: float, kf: float) -> float:
        return _THIGH * h * np.cos(flex) + _SHANK * h * np.cos(flex - kf)

    if rng_free == "sitting":
        hip_z = _SEAT_Z * h
    else:
        hip_z = _ANKLE_Z * h + max(vertical(hip[0], knee[0]), vertical(hip[1], knee[1]))
    torso = (_SHOULDER_Z - _HIP_Z) * h
    # sitting: pelvis back so the knees (thigh forward) end up near the origin
    x0 = -0.5 * _THIGH * h if rng_free == "sitting" else 0.0
    mid_hip = np.array([x0, 0.0, hip_z])
    neck = mid_hip + np.array([0.0, 0.0, torso])
    kp = np.zeros((17, 3))
    for side, i_sh, i_el, i_wr, i_hip, i_kn, i_an, k in (
        (1.0, 5, 7, 9, 11, 13, 15, 0),
        (-1.0, 6, 8, 10, 12, 14, 16, 1),
    ):
        kp[i_sh] = neck + np.array([0.0, side * _SHOULDER_HALF * h, -0.02 * h])
        kp[i_hip] = mid_hip + np.array([0.0, side * _HIP_HALF * h, 0.0])
        kp[i_el], kp[i_wr] = _arm(kp[i_sh], sh[k], abduct[k], elbow[k], side, h)
        kp[i_kn], kp[i_an] = _leg(kp[i_hip], hip[k], knee[k], h)
    r_head = _HEAD_R * h
    head = neck + np.array([0.0, 0.0, 0.04 * h + r_head])
    # face points on directions from the head centre, 10% inside the sphere: the faceted mesh dips
    # up to 7% of the radius inside it, and the keypoint must stay inside what is rendered
    face_dirs = np.array(
        [[1.0, 0.0, -0.15], [0.85, 0.35, 0.2], [0.85, -0.35, 0.2], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]
    )
    face_dirs /= np.linalg.norm(face_dirs, axis=1, keepdims=True)
    kp[:5] = head + 0.9 * r_head * face_dirs
    # feet point forward from the ankle, along the shank's forward direction when sitting
    toes = np.stack([kp[15], kp[16]]) + np.array([0.11 * h, 0.0, -0.02 * h])
    return Articulation(kp, neck, head, mid_hip, toes)


def radii(shape: PersonShape) -> dict[str, float]:
    """Capsule radii in metres (scale with height and build)."""
    s = shape.height / 1.7 * shape.build
    return {
        "head": _HEAD_R * shape.height,
        "neck": 0.05 * s,
        "torso_side": 0.085 * s,
        "spine": 0.11 * s,
        "shoulders": 0.06 * s,
        "hips": 0.09 * s,
        "upper_arm": 0.045 * s,
        "forearm": 0.037 * s,
        "thigh": 0.07 * s,
        "shank": 0.05 * s,
        "foot": 0.035 * s,
    }


def person_parts(shape: PersonShape, art: Articulation) -> list[Part]:
    """Capsules around the skeleton's limbs, coloured by clothing."""
    r = radii(shape)
    kp = art.keypoints
    cap = Part.capsule
    shirt, trousers, skin, shoes = shape.shirt, shape.trousers, shape.skin, shape.shoes
    parts = [
        cap(art.head_centre, art.head_centre, r["head"], skin, 0.35),
        cap(art.neck, art.head_centre, r["neck"], skin, 0.35),
        cap(art.mid_hip, art.neck - [0, 0, 0.03], r["spine"], shirt, 0.4),
        cap(kp[5], kp[6], r["shoulders"], shirt, 0.4),
        cap(kp[11], kp[12], r["hips"], trousers, 0.4),
        cap(kp[5], kp[11], r["torso_side"], shirt, 0.4),
        cap(kp[6], kp[12], r["torso_side"], shirt, 0.4),
    ]
    for sh, el, wr in ((5, 7, 9), (6, 8, 10)):
        parts.append(cap(kp[sh], kp[el], r["upper_arm"], shirt, 0.4))
        parts.append(cap(kp[el], kp[wr], r["forearm"], skin, 0.35))
    for i, (hp, kn, an) in enumerate(((11, 13, 15), (12, 14, 16))):
        parts.append(cap(kp[hp], kp[kn], r["thigh"], trousers, 0.4))
        parts.append(cap(kp[kn], kp[an], r["shank"], trousers, 0.4))
        foot_end = art.toes[i].copy()
        foot_end[2] = max(foot_end[2], r["foot"])  # soles rest on the ground, never below it
        ankle = kp[an].copy()
        parts.append(cap(ankle, foot_end, r["foot"], shoes, 0.3))
    return parts


def keypoint_radii(shape: PersonShape) -> np.ndarray:
    """Per keypoint, how far in front of it the body surface may be while it still counts as visible.

    For a joint this is the thickest capsule that ends there (the front of that limb), plus 2 cm;
    an ankle also owns the foot in front of it (seen from ahead and above, the instep covers it);
    a face point gets 0.5 head radius (so frontal ears count as visible, the nose of a person facing
    away does not).
    """
    r = radii(shape)
    out = np.empty(17)
    out[:5] = 0.5 * r["head"]
    out[5:7] = max(r["torso_side"], r["shoulders"], r["upper_arm"])
    out[7:9] = max(r["upper_arm"], r["forearm"])
    out[9:11] = r["forearm"]
    out[11:13] = max(r["hips"], r["thigh"], r["torso_side"])
    out[13:15] = max(r["thigh"], r["shank"])
    out[15:17] = r["shank"] + 2 * r["foot"]
    return out + 0.02

"""The anatomy and intensities of a synthetic case (data/synthetic.py writes them as an nnU-Net raw dataset).

An anatomy map (air, body, organ_a, organ_b, bone rod, distractor blobs; wobbly borders, random pose), then one
intensity mapping per channel (MRI-like sequences or CT Hounsfield-like units) with textures, bias field,
partial-volume blur and noise. All vectorised numpy, deterministic given the seed and the case index.
"""

from __future__ import annotations

import numpy as np

LABELS: dict[str, int] = {"background": 0, "organ_a": 1, "organ_b": 2}

# tissue indices of the anatomy map
_AIR, _BODY, _ORGAN_A, _ORGAN_B, _BONE, _DISTRACTOR = range(6)


# mean intensity per tissue for the first MRI "sequences" (T1-, T2-, FLAIR-, PD-like); more channels are drawn
# from the dataset-level random generator. Keys: body, organ_a, organ_b, bone
_MRI_PROFILES = (
    {"body": 100.0, "organ_a": 155.0, "organ_b": 60.0, "bone": 30.0},
    {"body": 80.0, "organ_a": 55.0, "organ_b": 170.0, "bone": 20.0},
    {"body": 90.0, "organ_a": 135.0, "organ_b": 145.0, "bone": 25.0},
    {"body": 110.0, "organ_a": 130.0, "organ_b": 85.0, "bone": 40.0},
)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ~sigma voxels (periodic, via FFT)."""
    white = rng.standard_normal(shape)
    freqs = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    f2 = sum(g ** 2 for g in grids)
    axes = tuple(range(len(shape)))
    field = np.fft.irfftn(np.fft.rfftn(white, axes=axes) * np.exp(-2.0 * (np.pi * sigma) ** 2 * f2), s=shape, axes=axes)
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with a small kernel and edge padding (partial-volume effect)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    for ax in range(x.ndim):
        pad = [(0, 0)] * x.ndim
        pad[ax] = (radius, radius)
        xp = np.pad(x, pad, mode="edge")
        n = x.shape[ax]
        out = np.zeros_like(x)
        for i, w in enumerate(k):
            sl = [slice(None)] * x.ndim
            sl[ax] = slice(i, i + n)
            out += w * xp[tuple(sl)]
        x = out
    return x


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _small_rotation(rng: np.random.Generator, d: int, scale: float) -> np.ndarray:
    """A rotation near the identity: the exponential of a random skew-symmetric matrix of size ~scale."""
    m = rng.standard_normal((d, d)) * scale
    w, v = np.linalg.eig(m - m.T)
    return np.real(v @ np.diag(np.exp(w)) @ np.linalg.inv(v))


def _ellipsoid_q(coords: np.ndarray, center: np.ndarray, radii: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Quadratic form of an ellipsoid: < 1 inside. coords (..., d), rot's columns are the principal axes."""
    local = (coords - center) @ rot
    return np.sum((local / radii) ** 2, axis=-1)


def _extent_along(direction: np.ndarray, radii: np.ndarray, rot: np.ndarray) -> float:
    """Distance from an ellipsoid's centre to its surface along a unit direction."""
    return float(1.0 / np.sqrt(np.sum(((direction @ rot) / radii) ** 2)))


def _anatomy(rng: np.random.Generator, shape: tuple[int, ...], layout: str = "random") -> dict:
    """Label map, tissue map and texture fields of one case (native 2D or 3D). The draws from `rng` happen in a
    fixed order (organs, body, bone, distractors, textures): the same seed gives the same case."""
    d = len(shape)
    coords = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij"), axis=-1)
    voxel = 2.0 / (np.asarray(shape, dtype=float) - 1.0)  # one voxel in normalised units, per axis
    vmax = float(voxel.max())
    label, wobble = _place_organs(rng, coords, shape, vmax, layout)
    tissue = np.full(shape, _AIR, dtype=np.uint8)
    body_q = _ellipsoid_q(coords, rng.uniform(-0.03, 0.03, d), rng.uniform(0.86, 0.98, d), np.eye(d))
    in_body = body_q + 0.1 * wobble < 1.0
    tissue[in_body] = _BODY
    cortex = _add_bone(rng, coords, tissue, vmax)
    distractor_of = _add_distractors(rng, coords, label, tissue, in_body, wobble, vmax)
    tissue[label == LABELS["organ_a"]] = _ORGAN_A
    tissue[label == LABELS["organ_b"]] = _ORGAN_B
    return {"label": label, "tissue": tissue, "distractor_of": distractor_of, "cortex": cortex,
            **_textures(rng, coords / voxel, shape)}


def _place_organs(rng: np.random.Generator, coords: np.ndarray, shape: tuple[int, ...], vmax: float,
                  layout: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Label map (organ_a, and organ_b against its surface) and the border wobble field; redrawn until both organs
    have a few voxels."""
    d = len(shape)
    min_count = max(4, int(np.prod(shape)) // 2000)
    draw_pose = _POSES[layout]
    for _attempt in range(100):
        wobble = 0.15 * _smooth_noise(rng, shape, sigma=max(2.0, 0.12 * min(shape)))
        rot_a, rad_a, cen_a, rot_b, rad_b, direction = draw_pose(rng, d, vmax)
        in_a = _ellipsoid_q(coords, cen_a, rad_a, rot_a) + wobble < 1.0
        direction /= np.linalg.norm(direction)
        dist = _extent_along(direction, rad_a, rot_a) + 0.7 * _extent_along(direction, rad_b, rot_b)
        cen_b = np.clip(cen_a + dist * direction, -0.55, 0.55)
        in_b = _ellipsoid_q(coords, cen_b, rad_b, rot_b) + 0.5 * wobble < 1.0
        label = np.zeros(shape, dtype=np.uint8)
        label[in_a] = LABELS["organ_a"]
        label[in_b] = LABELS["organ_b"]
        if (np.count_nonzero(label == 1) >= min_count and np.count_nonzero(label == 2) >= min_count):
            return label, wobble
    raise RuntimeError(f"could not place both organs in shape {shape}; use a larger shape")  # pragma: no cover


def _random_pose(rng: np.random.Generator, d: int, vmax: float) -> tuple:
    """organ_a: any orientation, somewhere in the middle; organ_b: smaller, on a random side of it."""
    rot_a = _random_rotation(rng, d)
    rad_a = np.maximum(rng.uniform(0.28, 0.45, d), 2.0 * vmax)
    cen_a = rng.uniform(-0.25, 0.25, d)
    rot_b = _random_rotation(rng, d)
    rad_b = np.maximum(rng.uniform(0.17, 0.27, d), 1.5 * vmax)
    return rot_a, rad_a, cen_a, rot_b, rad_b, rng.standard_normal(d)


def _consistent_pose(rng: np.random.Generator, d: int, vmax: float) -> tuple:
    """organ_a near the same place, size and orientation in every case and organ_b on the same side of it (jitter:
    centre +-0.08 of the half field of view, radii +-15%, rotations of ~0.15 rad)."""
    rot_a = _small_rotation(rng, d, 0.15)
    rad_a = np.maximum(np.array([0.36, 0.30, 0.40][:d]) * rng.uniform(0.85, 1.15, d), 2.0 * vmax)
    cen_a = np.array([0.0, -0.15, -0.1][:d]) + rng.uniform(-0.08, 0.08, d)
    rot_b = _small_rotation(rng, d, 0.15)
    rad_b = np.maximum(np.array([0.22, 0.18, 0.2][:d]) * rng.uniform(0.85, 1.15, d), 1.5 * vmax)
    return rot_a, rad_a, cen_a, rot_b, rad_b, np.array([0.3, 0.5, 0.8][:d]) + rng.normal(0, 0.15, d)


# where the organs are: "random" (any pose, any side), "consistent" (the same place in every case, small jitter,
# as anatomy sits in aligned scans)
_POSES = {"random": _random_pose, "consistent": _consistent_pose}
LAYOUTS: tuple[str, ...] = tuple(_POSES)


def _add_bone(rng: np.random.Generator, coords: np.ndarray, tissue: np.ndarray, vmax: float) -> np.ndarray:
    """A rod along the first array axis (a disc in 2D) in the posterior part of the body; returns its cortex mask."""
    d = coords.shape[-1]
    bone_center = np.zeros(d)
    bone_center[-2] = rng.uniform(0.55, 0.7)
    bone_center[-1] = rng.uniform(-0.2, 0.2)
    bone_radii = np.full(d, max(rng.uniform(0.09, 0.13), 1.5 * vmax))
    if d == 3:
        bone_radii[0] = 10.0  # through all slices
    bone_q = _ellipsoid_q(coords, bone_center, bone_radii, np.eye(d))
    tissue[bone_q < 1.0] = _BONE
    return bone_q > 0.45


def _add_distractors(rng: np.random.Generator, coords: np.ndarray, label: np.ndarray, tissue: np.ndarray,
                     in_body: np.ndarray, wobble: np.ndarray, vmax: float) -> np.ndarray:
    """1-3 organ-like blobs, not labelled, placed away from the organs; returns which organ (0: a, 1: b) each
    distractor voxel mimics (-1 elsewhere)."""
    d = coords.shape[-1]
    organ_coords = coords[label > 0]
    distractor_of = np.full(label.shape, -1, dtype=np.int8)
    for _ in range(int(rng.integers(1, 4))):
        mimic = int(rng.integers(0, 2))
        lo, hi = ((0.22, 0.36) if mimic == 0 else (0.13, 0.22))
        rad = np.maximum(rng.uniform(lo, hi, d), 1.5 * vmax)
        rot = _random_rotation(rng, d)
        best, best_margin = None, -np.inf
        for _try in range(20):
            cen = rng.uniform(-0.6, 0.6, d)
            margin = float(_ellipsoid_q(organ_coords, cen, rad, rot).min())
            if margin > best_margin:
                best, best_margin = cen, margin
            if margin > 1.5:
                break
        in_d = (_ellipsoid_q(coords, best, rad, rot) + 0.5 * wobble < 1.0) & (label == 0) & in_body
        tissue[in_d] = _DISTRACTOR
        distractor_of[in_d] = mimic
    return distractor_of


def _textures(rng: np.random.Generator, vox_coords: np.ndarray, shape: tuple[int, ...]) -> dict:
    """Unit-std texture fields; each structure has its own kind."""
    d = len(shape)
    stripe_dir = rng.standard_normal(d)
    stripe_dir /= np.linalg.norm(stripe_dir)
    stripes = np.sqrt(2.0) * np.sin(2 * np.pi * (vox_coords @ stripe_dir) / rng.uniform(3.0, 4.5)
                                    + rng.uniform(0, 2 * np.pi))
    return {
        "fine": _smooth_noise(rng, shape, sigma=0.8),        # granular texture of organ_a
        "stripes": stripes,                                  # oriented texture of organ_b
        "coarse": _smooth_noise(rng, shape, sigma=2.5),      # blotchy texture of the distractors
        "tissue_field": _smooth_noise(rng, shape, sigma=max(3.0, 0.15 * min(shape))),
        "bias": _smooth_noise(rng, shape, sigma=max(4.0, 0.35 * min(shape))),
    }


def channel_profiles(seed: int, num_channels: int, modality: str) -> list[dict]:
    """Per-channel tissue means shared by all cases of a dataset (the "sequences" / contrast phases)."""
    rng = np.random.default_rng([seed, 7])
    profiles = []
    for c in range(num_channels):
        if modality == "MRI":
            if c < len(_MRI_PROFILES):
                profiles.append(dict(_MRI_PROFILES[c]))
            else:
                profiles.append({"body": rng.uniform(70, 130), "organ_a": rng.uniform(40, 200),
                                 "organ_b": rng.uniform(40, 200), "bone": rng.uniform(10, 50)})
        else:  # CT: channel 0 portal-venous-like, further channels other contrast phases
            if c == 0:
                profiles.append({"body": 40.0, "organ_a": 105.0, "organ_b": 170.0, "bone": 0.0})
            else:
                profiles.append({"body": 40.0, "organ_a": rng.uniform(50, 150), "organ_b": rng.uniform(60, 195),
                                 "bone": 0.0})
    return profiles


def _render_channel(rng: np.random.Generator, anat: dict, profile: dict, modality: str,
                    difficulty: float) -> np.ndarray:
    tissue = anat["tissue"]
    similarity = 0.35 + 0.65 * difficulty  # 1: distractors as bright as the organ they mimic
    if modality == "MRI":
        body = profile["body"]
        means = {"organ_a": profile["organ_a"] * rng.uniform(0.92, 1.08),
                 "organ_b": profile["organ_b"] * rng.uniform(0.92, 1.08)}
        tex = 0.12 * body
        img = np.zeros(tissue.shape)
        img += (tissue == _BODY) * (body + 0.15 * body * anat["tissue_field"])
        img += (tissue == _BONE) * (profile["bone"] + np.where(anat["cortex"], 0.0, 0.5 * profile["bone"]))
    else:
        body = profile["body"]
        means = {"organ_a": float(np.clip(profile["organ_a"] + rng.uniform(-12, 12), 40, 200)),
                 "organ_b": float(np.clip(profile["organ_b"] + rng.uniform(-12, 12), 40, 200))}
        tex = 10.0
        img = np.full(tissue.shape, -1000.0)
        img[tissue != _AIR] = 0.0
        img += (tissue == _BODY) * (body + 18.0 * anat["tissue_field"])
        cortex_hu, trabecular_hu = rng.uniform(700, 1000), rng.uniform(300, 420)
        img += (tissue == _BONE) * np.where(anat["cortex"], cortex_hu, trabecular_hu + 30.0 * anat["fine"])

    img += (tissue == _ORGAN_A) * (means["organ_a"] + tex * anat["fine"])
    img += (tissue == _ORGAN_B) * (means["organ_b"] + 0.5 * tex * anat["fine"] + tex * anat["stripes"])
    mimic_mean = np.where(anat["distractor_of"] == 0, means["organ_a"], means["organ_b"])
    img += (tissue == _DISTRACTOR) * (body + similarity * (mimic_mean - body) + 1.6 * tex * anat["coarse"])

    img = _blur(img, 0.6)  # partial volume
    if modality == "MRI":
        img *= np.exp(0.15 * anat["bias"]) * rng.uniform(0.7, 1.4)  # bias field, arbitrary scanner scale
        sigma = (0.03 + 0.22 * difficulty) * float(np.mean(img[tissue == _BODY]) if np.any(tissue == _BODY) else body)
        real, imag = sigma * rng.standard_normal(img.shape), sigma * rng.standard_normal(img.shape)
        img = np.sqrt((img + real) ** 2 + imag ** 2)  # Rician magnitude noise
        return img.astype(np.float32)
    img += (5.0 + 35.0 * difficulty) * rng.standard_normal(img.shape)
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)


def generate_case(seed: int, stream: int, index: int, shape: tuple[int, ...], profiles: list[dict],
                   modality: str, difficulty: float, layout: str = "random") -> tuple[list[np.ndarray], np.ndarray]:
    """Channels and label of one case in native dimensionality (2D or 3D)."""
    rng = np.random.default_rng([seed, stream, index])
    anat = _anatomy(rng, shape, layout)
    channels = [_render_channel(rng, anat, p, modality, difficulty) for p in profiles]
    return channels, anat["label"]


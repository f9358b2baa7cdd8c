"""Small synthetic segmentation datasets in nnU-Net v2 *raw* layout, for tests, the demo and benchmarks.

`write_synthetic_dataset` writes::

    raw_root/DatasetXXX_Name/
        dataset.json
        imagesTr/case_000_0000.nii.gz   (one file per channel: _0000, _0001, ...)
        labelsTr/case_000.nii.gz        (uint8: 0 background, 1 organ_a, 2 organ_b)
        imagesTs/case_012_0000.nii.gz   (always created; cases only with num_test_cases > 0, numbered after training)
        labelsTs/case_012.nii.gz        (reference labels of the test cases, for benchmarks; nnU-Net ignores it)

Content of each case (all vectorised numpy, deterministic given `seed` and the case index):

* a "body" ellipsoid filling most of the field of view, surrounded by air, with a smooth intensity field
  (tissue heterogeneity; for MRI also a multiplicative bias field);
* ``organ_a`` (label 1): a randomly placed, sized and oriented ellipsoid with a wobbly border and a fine,
  granular texture;
* ``organ_b`` (label 2): a smaller ellipsoid that sits against organ_a (touching, slightly overlapping; label 2
  wins in the overlap) with an oriented, striped texture;
* 1-3 unlabelled *distractor* blobs of organ-like size and intensity but a coarse, blotchy texture, so that
  intensity alone does not identify the organs (context and texture do);
* a bright "bone" rod (a cylinder running along the first array axis; a disc in 2D) with a cortex;
* partial-volume blur and noise (Rician for MRI, Gaussian for CT).

`difficulty` in [0, 1] scales the noise level and how close the distractors' mean intensity is to that of the
organ they mimic (identical at 1). Each channel is a different intensity mapping of the same anatomy (like MRI
sequences, or contrast phases for CT). MRI intensities are arbitrary positive units with a random per-case scale
(nnU-Net picks ZScoreNormalization); CT intensities are Hounsfield-like (air -1000, soft tissue 0..80,
organs 40..200, bone > 300) and stored as int16, with channel name "CT" so nnU-Net picks CTNormalization.

2D shapes ``(X, Y)`` are written the way nnU-Net represents 2D data internally: as 3D NIfTI volumes of array
shape ``(1, X, Y)`` with spacing ``(999, sx, sy)`` (array axis order). nnU-Net then plans only the ``2d``
configuration (the planner skips 3D when the median shape along the first transposed axis is 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

__all__ = ["write_synthetic_dataset", "LABELS", "MODALITIES"]

LABELS: dict[str, int] = {"background": 0, "organ_a": 1, "organ_b": 2}
MODALITIES: tuple[str, ...] = ("MRI", "CT")
MIN_AXIS_SIZE = 8
OUT_OF_PLANE_SPACING_2D = 999.0
FILE_ENDING = ".nii.gz"

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


# ----------------------------------------------------------------------------------------------------------------------
# argument checking


def _check_arguments(raw_root, dataset_id, name, num_cases, shape, spacing, num_channels, modality, num_test_cases,
                     seed, difficulty) -> tuple[tuple[int, ...], tuple[float, ...], str]:
    """Returns (shape, spacing in numpy order with len(shape) entries, canonical modality)."""
    if raw_root is None or str(raw_root) == "":
        raise ValueError(f"raw_root={raw_root!r} must be a folder path; pass the nnU-Net raw folder "
                         f"(e.g. os.environ['nnUNet_raw']) or a temporary directory.")
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, (int, np.integer)) or not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id={dataset_id!r} must be an integer in [1, 999] (nnU-Net names datasets "
                         f"DatasetXXX_Name with a three-digit id); pick an unused id such as 990.")
    if not isinstance(name, str) or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name) is None:
        raise ValueError(f"name={name!r} must be a non-empty name of letters, digits, '_' or '-' starting with a "
                         f"letter or digit (it becomes the folder Dataset{int(dataset_id):03d}_<name>); "
                         f"use e.g. name='Synthetic'.")
    if isinstance(num_cases, bool) or not isinstance(num_cases, (int, np.integer)) or num_cases < 2:
        raise ValueError(f"num_cases={num_cases!r} must be an integer >= 2 (nnU-Net needs at least two training "
                         f"cases to split into training and validation); pass num_cases=12 or more.")
    if isinstance(num_test_cases, bool) or not isinstance(num_test_cases, (int, np.integer)) or num_test_cases < 0:
        raise ValueError(f"num_test_cases={num_test_cases!r} must be an integer >= 0; pass 0 for no imagesTs cases.")
    if isinstance(num_channels, bool) or not isinstance(num_channels, (int, np.integer)) or num_channels < 1:
        raise ValueError(f"num_channels={num_channels!r} must be an integer >= 1; pass 1 for a single image, "
                         f"or e.g. 4 for a BraTS-like multi-sequence MRI dataset.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer; pass e.g. seed=0.")
    try:
        difficulty_ok = 0.0 <= float(difficulty) <= 1.0
    except (TypeError, ValueError):
        difficulty_ok = False
    if not difficulty_ok:
        raise ValueError(f"difficulty={difficulty!r} must be a number in [0, 1] (0: little noise, clearly different "
                         f"distractors; 1: heavy noise, distractors as bright as the organs); use e.g. 0.5.")
    if not isinstance(modality, str) or modality.upper() not in MODALITIES:
        raise ValueError(f"modality={modality!r} is unknown: it must be one of {MODALITIES} (case-insensitive); "
                         f"use 'CT' for Hounsfield-unit images (nnU-Net CTNormalization) or 'MRI' for arbitrary "
                         f"intensities (ZScoreNormalization).")
    modality = modality.upper()

    try:
        shape_t = tuple(int(s) for s in shape)
        shape_is_int = all(float(s) == int(s) for s in shape)
    except (TypeError, ValueError):
        shape_t, shape_is_int = (), False
    if not shape_is_int or len(shape_t) not in (2, 3):
        raise ValueError(f"shape={shape!r} must be a tuple of 2 (2D) or 3 (3D) integers in numpy axis order; "
                         f"use e.g. shape=(32, 40, 32) or shape=(64, 64).")
    small = [(i, s) for i, s in enumerate(shape_t) if s < MIN_AXIS_SIZE]
    if small:
        raise ValueError(f"shape={shape!r}: every axis must have at least {MIN_AXIS_SIZE} voxels, but axis "
                         f"{small[0][0]} has {small[0][1]}; enlarge it, e.g. shape=(32, 40, 32).")

    try:
        spacing_t = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        spacing_t = ()
    if len(shape_t) == 2 and len(spacing_t) == 3:
        # the documented default (1, 1, 1) also serves 2D shapes: the out-of-plane entry is replaced by 999
        spacing_t = spacing_t[1:]
    if len(spacing_t) != len(shape_t):
        raise ValueError(f"spacing={spacing!r} must have one entry per axis of shape={shape!r} (numpy axis "
                         f"order; for a 2D shape also 3 entries are accepted, the first is then ignored); "
                         f"use e.g. spacing={(1.0,) * len(shape_t)}.")
    upper = OUT_OF_PLANE_SPACING_2D if len(shape_t) == 2 else np.inf
    if not all(np.isfinite(s) and 0.0 < s < upper for s in spacing_t):
        rule = f"in (0, {OUT_OF_PLANE_SPACING_2D:g})" if len(shape_t) == 2 else "finite and > 0"
        raise ValueError(f"spacing={spacing!r}: every in-image spacing must be {rule} (for 2D, nnU-Net marks the "
                         f"out-of-plane axis with spacing {OUT_OF_PLANE_SPACING_2D:g}, which must be the largest); "
                         f"use e.g. spacing={(1.0,) * len(shape_t)}.")
    return shape_t, spacing_t, modality


# ----------------------------------------------------------------------------------------------------------------------
# random fields and geometry (all vectorised)


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


def _ellipsoid_q(coords: np.ndarray, center: np.ndarray, radii: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Quadratic form of an ellipsoid: < 1 inside. coords (..., d), rot's columns are the principal axes."""
    local = (coords - center) @ rot
    return np.sum((local / radii) ** 2, axis=-1)


def _extent_along(direction: np.ndarray, radii: np.ndarray, rot: np.ndarray) -> float:
    """Distance from an ellipsoid's centre to its surface along a unit direction."""
    return float(1.0 / np.sqrt(np.sum(((direction @ rot) / radii) ** 2)))


# ----------------------------------------------------------------------------------------------------------------------
# anatomy and intensities


def _anatomy(rng: np.random.Generator, shape: tuple[int, ...]) -> dict:
    """Label map, tissue map and texture fields of one case (native 2D or 3D)."""
    d = len(shape)
    coords = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij"), axis=-1)
    voxel = 2.0 / (np.asarray(shape, dtype=float) - 1.0)  # one voxel in normalised units, per axis
    vmax = float(voxel.max())
    n_vox = int(np.prod(shape))
    min_count = max(4, n_vox // 2000)

    for _attempt in range(100):
        wobble = 0.15 * _smooth_noise(rng, shape, sigma=max(2.0, 0.12 * min(shape)))
        # organ_a: textured ellipsoid somewhere in the middle
        rot_a = _random_rotation(rng, d)
        rad_a = np.maximum(rng.uniform(0.28, 0.45, d), 2.0 * vmax)
        cen_a = rng.uniform(-0.25, 0.25, d)
        in_a = _ellipsoid_q(coords, cen_a, rad_a, rot_a) + wobble < 1.0
        # organ_b: smaller ellipsoid against organ_a's surface, in a random direction
        rot_b = _random_rotation(rng, d)
        rad_b = np.maximum(rng.uniform(0.17, 0.27, d), 1.5 * vmax)
        direction = rng.standard_normal(d)
        direction /= np.linalg.norm(direction)
        dist = _extent_along(direction, rad_a, rot_a) + 0.7 * _extent_along(direction, rad_b, rot_b)
        cen_b = np.clip(cen_a + dist * direction, -0.55, 0.55)
        in_b = _ellipsoid_q(coords, cen_b, rad_b, rot_b) + 0.5 * wobble < 1.0
        label = np.zeros(shape, dtype=np.uint8)
        label[in_a] = LABELS["organ_a"]
        label[in_b] = LABELS["organ_b"]
        if (np.count_nonzero(label == 1) >= min_count and np.count_nonzero(label == 2) >= min_count):
            break
    else:  # pragma: no cover - practically unreachable with shapes >= 8
        raise RuntimeError(f"could not place both organs in shape {shape}; use a larger shape")

    tissue = np.full(shape, _AIR, dtype=np.uint8)
    body_q = _ellipsoid_q(coords, rng.uniform(-0.03, 0.03, d), rng.uniform(0.86, 0.98, d), np.eye(d))
    in_body = body_q + 0.1 * wobble < 1.0
    tissue[in_body] = _BODY

    # bone: a rod along the first array axis (a disc in 2D) in the posterior part of the body, with a cortex
    bone_center = np.zeros(d)
    bone_center[-2] = rng.uniform(0.55, 0.7)
    bone_center[-1] = rng.uniform(-0.2, 0.2)
    bone_radii = np.full(d, max(rng.uniform(0.09, 0.13), 1.5 * vmax))
    if d == 3:
        bone_radii[0] = 10.0  # through all slices
    bone_q = _ellipsoid_q(coords, bone_center, bone_radii, np.eye(d))
    tissue[bone_q < 1.0] = _BONE
    cortex = bone_q > 0.45

    # distractors: organ-like blobs that are not labelled, placed away from the organs
    organ_coords = coords[label > 0]
    distractor_of = np.full(shape, -1, dtype=np.int8)  # which organ (0: a, 1: b) a distractor voxel mimics
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

    tissue[label == LABELS["organ_a"]] = _ORGAN_A
    tissue[label == LABELS["organ_b"]] = _ORGAN_B

    # textures (unit-std fields); each structure has its own kind
    vox_coords = coords / voxel
    stripe_dir = rng.standard_normal(d)
    stripe_dir /= np.linalg.norm(stripe_dir)
    stripes = np.sqrt(2.0) * np.sin(2 * np.pi * (vox_coords @ stripe_dir) / rng.uniform(3.0, 4.5)
                                    + rng.uniform(0, 2 * np.pi))
    return {
        "label": label,
        "tissue": tissue,
        "distractor_of": distractor_of,
        "cortex": cortex,
        "fine": _smooth_noise(rng, shape, sigma=0.8),        # granular texture of organ_a
        "stripes": stripes,                                  # oriented texture of organ_b
        "coarse": _smooth_noise(rng, shape, sigma=2.5),      # blotchy texture of the distractors
        "tissue_field": _smooth_noise(rng, shape, sigma=max(3.0, 0.15 * min(shape))),
        "bias": _smooth_noise(rng, shape, sigma=max(4.0, 0.35 * min(shape))),
    }


def _channel_profiles(seed: int, num_channels: int, modality: str) -> list[dict]:
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


def _generate_case(seed: int, stream: int, index: int, shape: tuple[int, ...], profiles: list[dict],
                   modality: str, difficulty: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Channels and label of one case in native dimensionality (2D or 3D)."""
    rng = np.random.default_rng([seed, stream, index])
    anat = _anatomy(rng, shape)
    channels = [_render_channel(rng, anat, p, modality, difficulty) for p in profiles]
    return channels, anat["label"]


# ----------------------------------------------------------------------------------------------------------------------
# writing


def _write_nifti(array: np.ndarray, spacing_numpy_order: tuple[float, ...], path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_numpy_order)))  # SimpleITK uses x, y, z order
    sitk.WriteImage(image, str(path), True)


def _clear_generated_files(folder: Path) -> None:
    """Remove files of a previous run (only the generator's own `case_*` names), so a rewrite stays consistent."""
    if folder.is_dir():
        for f in folder.glob(f"case_*{FILE_ENDING}"):
            if re.fullmatch(r"case_\d+(_\d{4})?" + re.escape(FILE_ENDING), f.name):
                f.unlink()


def write_synthetic_dataset(raw_root: str | Path, *, dataset_id: int = 990, name: str = "Synthetic",
                            num_cases: int = 12, shape: tuple[int, ...] = (32, 40, 32),
                            spacing: tuple[float, ...] = (1.0, 1.0, 1.0), num_channels: int = 1,
                            modality: str = "MRI", num_test_cases: int = 0, seed: int = 0,
                            difficulty: float = 0.5) -> Path:
    """Write a synthetic two-organ segmentation dataset in nnU-Net v2 raw layout and return its folder.

    Args:
        raw_root: the nnU-Net raw folder (``nnUNet_raw``); ``Dataset{dataset_id:03d}_{name}`` is created inside.
        dataset_id, name: nnU-Net dataset id (1..999) and name.
        num_cases: training cases (>= 2) in imagesTr/labelsTr, named ``case_000`` ...
        shape: array shape in numpy axis order, 3D ``(Z, Y, X)``-style or 2D ``(X, Y)``; every axis >= 8.
            2D cases are written as 3D volumes of array shape ``(1, X, Y)`` with spacing ``(999, sx, sy)``.
        spacing: voxel spacing in numpy axis order, as nnU-Net reads it back (``properties['spacing']``). For a 2D
            shape give 2 values, or 3 values whose first (out-of-plane) one is replaced by 999.
        num_channels: image channels per case (``_0000``, ``_0001``, ...), each a different intensity mapping.
        modality: ``"MRI"`` or ``"CT"`` (case-insensitive); becomes every entry of ``channel_names``.
        num_test_cases: extra cases in imagesTs (with reference labels in labelsTs), numbered after the training
            cases.
        seed: random seed; the same arguments always give identical files. Case ``i`` depends only on
            ``(seed, i)``, not on ``num_cases``.
        difficulty: in [0, 1]; scales the noise and how similar the unlabelled distractor blobs are to the organs.

    Raises:
        ValueError: for invalid arguments, or if ``raw_root`` already holds another dataset with the same id.
    """
    shape_t, spacing_t, modality = _check_arguments(raw_root, dataset_id, name, num_cases, shape, spacing,
                                                    num_channels, modality, num_test_cases, seed, difficulty)
    dataset_id, num_cases, num_channels = int(dataset_id), int(num_cases), int(num_channels)
    num_test_cases, seed, difficulty = int(num_test_cases), int(seed), float(difficulty)
    is_2d = len(shape_t) == 2
    spacing_3d = (OUT_OF_PLANE_SPACING_2D, *spacing_t) if is_2d else spacing_t

    raw_root = Path(raw_root)
    folder_name = f"Dataset{dataset_id:03d}_{name}"
    if raw_root.is_dir():
        clashes = sorted(p.name for p in raw_root.glob(f"Dataset{dataset_id:03d}_*")
                         if p.is_dir() and p.name != folder_name)
        if clashes:
            raise ValueError(f"dataset_id={dataset_id} is already used by {clashes} in {raw_root}; nnU-Net requires "
                             f"unique dataset ids, so pick another dataset_id or remove that folder.")
    out = raw_root / folder_name
    dirs = {k: out / k for k in ("imagesTr", "labelsTr", "imagesTs", "labelsTs")}
    for key in ("imagesTr", "labelsTr", "imagesTs"):
        dirs[key].mkdir(parents=True, exist_ok=True)
    for folder in dirs.values():
        _clear_generated_files(folder)
    if num_test_cases > 0:
        dirs["labelsTs"].mkdir(exist_ok=True)

    profiles = _channel_profiles(seed, num_channels, modality)
    jobs = [(0, i, "imagesTr", "labelsTr") for i in range(num_cases)]
    jobs += [(1, i, "imagesTs", "labelsTs") for i in range(num_test_cases)]
    for stream, i, img_dir, lbl_dir in jobs:
        channels, label = _generate_case(seed, stream, i, shape_t, profiles, modality, difficulty)
        case = f"case_{i + (num_cases if stream else 0):03d}"
        if is_2d:
            channels, label = [c[None] for c in channels], label[None]
        for c, arr in enumerate(channels):
            _write_nifti(arr, spacing_3d, dirs[img_dir] / f"{case}_{c:04d}{FILE_ENDING}")
        _write_nifti(label, spacing_3d, dirs[lbl_dir] / f"{case}{FILE_ENDING}")

    dataset_json = {
        "channel_names": {str(c): modality for c in range(num_channels)},
        "labels": dict(LABELS),
        "numTraining": num_cases,
        "file_ending": FILE_ENDING,
        "overwrite_image_reader_writer": "SimpleITKIO",
        "name": folder_name,
        "description": "Synthetic two-organ dataset (textured ellipsoids, unlabelled look-alike distractors) written "
                       "by nnunet_mae.data.synthetic.write_synthetic_dataset; no patient data.",
        "reference": "nnunet_mae.data.synthetic",
        "licence": "synthetic data, no restrictions",
        "generator": {"seed": seed, "difficulty": difficulty, "shape": list(shape_t),
                      "spacing": [float(s) for s in spacing_3d], "modality": modality,
                      "num_channels": num_channels, "num_test_cases": num_test_cases, "is_2d": is_2d},
    }
    with open(out / "dataset.json", "w") as f:
        json.dump(dataset_json, f, indent=4)
    return out

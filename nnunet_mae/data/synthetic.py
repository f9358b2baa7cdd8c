"""Small synthetic segmentation datasets in nnU-Net v2 *raw* layout, for tests, the demo and benchmarks.

`write_synthetic_dataset` writes::

    raw_root/DatasetXXX_Name/
        dataset.json
        imagesTr/case_000_0000.nii.gz   (one file per channel: _0000, _0001, ...)
        labelsTr/case_000.nii.gz        (uint8: 0 background, 1 organ_a, 2 organ_b)
        imagesTs/case_012_0000.nii.gz   (always created; cases only with num_test_cases > 0, numbered after training)
        labelsTs/case_012.nii.gz        (reference labels of the test cases, for benchmarks; nnU-Net ignores it)

Content of each case (all vectorised numpy, deterministic given `seed` and the case index; drawn by
`data/synthetic_anatomy.py`):

* a "body" ellipsoid filling most of the field of view, surrounded by air, with a smooth intensity field
  (tissue heterogeneity; for MRI also a multiplicative bias field);
* ``organ_a`` (label 1): a randomly placed, sized and oriented ellipsoid with a wobbly border and a fine,
  granular texture (``layout="consistent"``: at the same place, size and orientation in every case, small jitter);
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

from nnunet_mae.data.synthetic_anatomy import LABELS, LAYOUTS, channel_profiles, generate_case

__all__ = ["write_synthetic_dataset", "LABELS", "LAYOUTS", "MODALITIES"]

MODALITIES: tuple[str, ...] = ("MRI", "CT")
MIN_AXIS_SIZE = 8
OUT_OF_PLANE_SPACING_2D = 999.0
FILE_ENDING = ".nii.gz"


# ----------------------------------------------------------------------------------------------------------------------
# argument checking


def _check_arguments(raw_root, dataset_id, name, num_cases, shape, spacing, num_channels, modality, num_test_cases,
                     seed, difficulty, layout="random") -> tuple[tuple[int, ...], tuple[float, ...], str]:
    """Returns (shape, spacing in numpy order with len(shape) entries, canonical modality)."""
    _check_identity(raw_root, dataset_id, name)
    _check_counts(num_cases, num_test_cases, num_channels, seed)
    _check_difficulty(difficulty)
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is unknown: it must be one of {LAYOUTS} ('random': organs anywhere, in "
                         f"any orientation; 'consistent': at the same place in every case, as in aligned scans).")
    if not isinstance(modality, str) or modality.upper() not in MODALITIES:
        raise ValueError(f"modality={modality!r} is unknown: it must be one of {MODALITIES} (case-insensitive); "
                         f"use 'CT' for Hounsfield-unit images (nnU-Net CTNormalization) or 'MRI' for arbitrary "
                         f"intensities (ZScoreNormalization).")
    shape_t = _check_shape(shape)
    return shape_t, _check_spacing(spacing, shape, shape_t), modality.upper()


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _check_identity(raw_root, dataset_id, name) -> None:
    if raw_root is None or str(raw_root) == "":
        raise ValueError(f"raw_root={raw_root!r} must be a folder path; pass the nnU-Net raw folder "
                         f"(e.g. os.environ['nnUNet_raw']) or a temporary directory.")
    if not _is_int(dataset_id) or not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id={dataset_id!r} must be an integer in [1, 999] (nnU-Net names datasets "
                         f"DatasetXXX_Name with a three-digit id); pick an unused id such as 990.")
    if not isinstance(name, str) or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name) is None:
        raise ValueError(f"name={name!r} must be a non-empty name of letters, digits, '_' or '-' starting with a "
                         f"letter or digit (it becomes the folder Dataset{int(dataset_id):03d}_<name>); "
                         f"use e.g. name='Synthetic'.")


def _check_counts(num_cases, num_test_cases, num_channels, seed) -> None:
    if not _is_int(num_cases) or num_cases < 2:
        raise ValueError(f"num_cases={num_cases!r} must be an integer >= 2 (nnU-Net needs at least two training "
                         f"cases to split into training and validation); pass num_cases=12 or more.")
    if not _is_int(num_test_cases) or num_test_cases < 0:
        raise ValueError(f"num_test_cases={num_test_cases!r} must be an integer >= 0; pass 0 for no imagesTs cases.")
    if not _is_int(num_channels) or num_channels < 1:
        raise ValueError(f"num_channels={num_channels!r} must be an integer >= 1; pass 1 for a single image, "
                         f"or e.g. 4 for a BraTS-like multi-sequence MRI dataset.")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer; pass e.g. seed=0.")


def _check_difficulty(difficulty) -> None:
    try:
        difficulty_ok = 0.0 <= float(difficulty) <= 1.0
    except (TypeError, ValueError):
        difficulty_ok = False
    if not difficulty_ok:
        raise ValueError(f"difficulty={difficulty!r} must be a number in [0, 1] (0: little noise, clearly different "
                         f"distractors; 1: heavy noise, distractors as bright as the organs); use e.g. 0.5.")


def _check_shape(shape) -> tuple[int, ...]:
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
    return shape_t


def _check_spacing(spacing, shape, shape_t: tuple[int, ...]) -> tuple[float, ...]:
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
    return spacing_t


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
                            difficulty: float = 0.5, layout: str = "random") -> Path:
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
        layout: ``"random"``: organ_a anywhere near the centre in any orientation, organ_b against it on a random
            side; ``"consistent"``: both at the same place, size and orientation in every case with a small jitter,
            as anatomy sits in aligned scans (distractors stay random).

    Raises:
        ValueError: for invalid arguments, or if ``raw_root`` already holds another dataset with the same id.
    """
    shape_t, spacing_t, modality = _check_arguments(raw_root, dataset_id, name, num_cases, shape, spacing,
                                                    num_channels, modality, num_test_cases, seed, difficulty, layout)
    dataset_id, num_cases, num_channels = int(dataset_id), int(num_cases), int(num_channels)
    num_test_cases, seed, difficulty = int(num_test_cases), int(seed), float(difficulty)
    is_2d = len(shape_t) == 2
    spacing_3d = (OUT_OF_PLANE_SPACING_2D, *spacing_t) if is_2d else spacing_t
    out, dirs = _prepare_folders(Path(raw_root), f"Dataset{dataset_id:03d}_{name}", dataset_id, num_test_cases)

    profiles = channel_profiles(seed, num_channels, modality)
    jobs = [(0, i, "imagesTr", "labelsTr") for i in range(num_cases)]
    jobs += [(1, i, "imagesTs", "labelsTs") for i in range(num_test_cases)]
    for stream, i, img_dir, lbl_dir in jobs:
        channels, label = generate_case(seed, stream, i, shape_t, profiles, modality, difficulty, layout)
        case = f"case_{i + (num_cases if stream else 0):03d}"
        if is_2d:
            channels, label = [c[None] for c in channels], label[None]
        for c, arr in enumerate(channels):
            _write_nifti(arr, spacing_3d, dirs[img_dir] / f"{case}_{c:04d}{FILE_ENDING}")
        _write_nifti(label, spacing_3d, dirs[lbl_dir] / f"{case}{FILE_ENDING}")

    generator = {"seed": seed, "difficulty": difficulty, "shape": list(shape_t),
                 "spacing": [float(s) for s in spacing_3d], "modality": modality,
                 "num_channels": num_channels, "num_test_cases": num_test_cases, "is_2d": is_2d, "layout": layout}
    with open(out / "dataset.json", "w") as f:
        json.dump(_dataset_json(out.name, modality, num_channels, num_cases, generator), f, indent=4)
    return out


def _prepare_folders(raw_root: Path, folder_name: str, dataset_id: int, num_test_cases: int
                     ) -> tuple[Path, dict[str, Path]]:
    """The dataset folder and its image/label folders, emptied of a previous run's cases; refuses a clashing id."""
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
    return out, dirs


def _dataset_json(folder_name: str, modality: str, num_channels: int, num_cases: int, generator: dict) -> dict:
    return {
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
        "generator": generator,
    }

"""Fixed labelled crops for the probe: the same crops every time for a seed, whatever else the run does.

Crops come from nnU-Net's preprocessed cases (its dataset classes read them), at the training patch size. Crop k of a
case is centred on a voxel drawn with a generator seeded by (seed, case, k): a labelled (foreground) voxel for even
k, any voxel for odd k, as nnU-Net's loader oversamples foreground. For a 2D configuration (a 2D patch of 3D cases,
as nnU-Net's 2d loader) the crop is taken from the slice through that voxel. Parts of a crop outside the case are zero
in the image and IGNORE in the labels. Labels become class indices 0..K-1 in the order of `label_values`; nnU-Net's -1
(outside the normalisation mask) counts as background, its ignore label as IGNORE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nnunet_mae.probing.fit import IGNORE


@dataclass
class LabelledCrops:
    images: np.ndarray  # (N, C, *patch) float32
    labels: np.ndarray  # (N, *patch) int16 class indices, IGNORE outside the case
    cases: list[str]  # the case of each crop


def _class_lookup(label_values: Sequence[int], ignore_label: int | None) -> dict[int, int]:
    lookup = {int(v): i for i, v in enumerate(label_values)}
    lookup.setdefault(-1, 0)
    if ignore_label is not None:
        lookup[int(ignore_label)] = IGNORE
    return lookup


def _centre(seg: np.ndarray, rng: np.random.Generator, foreground: bool) -> np.ndarray:
    if foreground:
        fg = np.argwhere(seg > 0)
        if len(fg):
            return fg[rng.integers(len(fg))]
    return np.array([rng.integers(s) for s in seg.shape])


def crop_case(data: np.ndarray, seg: np.ndarray, centre: Sequence[int], patch: Sequence[int]
              ) -> tuple[np.ndarray, np.ndarray]:
    """(C, *shape), (*shape) -> crop of `patch` voxels centred on `centre`; outside the case: image 0, label -2."""
    image = np.zeros((data.shape[0], *patch), dtype=np.float32)
    label = np.full(tuple(patch), -2, dtype=np.int16)
    src, dst = [], []
    for c, p, size in zip(centre, patch, seg.shape):
        lo = int(c) - p // 2
        a, b = max(lo, 0), min(lo + p, size)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    image[(slice(None), *dst)] = np.asarray(data[(slice(None), *src)], dtype=np.float32)
    label[tuple(dst)] = np.asarray(seg[tuple(src)], dtype=np.int16)
    return image, label


def labelled_crops(dataset, identifiers: Sequence[str], patch: Sequence[int], *, crops_per_case: int = 1,
                   seed: int = 0, label_values: Sequence[int], ignore_label: int | None = None) -> LabelledCrops:
    """Crops of `identifiers` from an nnU-Net dataset object (`dataset.load_case(identifier)`)."""
    lookup = _class_lookup(label_values, ignore_label)
    images, labels, cases = [], [], []
    for case_index, identifier in enumerate(sorted(identifiers)):
        data, seg, _, _ = dataset.load_case(identifier)
        seg = np.asarray(seg[0])
        for k in range(crops_per_case):
            rng = np.random.default_rng([seed, case_index, k])
            centre = _centre(seg, rng, foreground=k % 2 == 0)
            if len(patch) == seg.ndim - 1:  # 2d configuration: the slice through the centre
                image, label = crop_case(data[:, centre[0]], seg[centre[0]], centre[1:], patch)
            else:
                image, label = crop_case(data, seg, centre, patch)
            classes = np.full(label.shape, IGNORE, dtype=np.int16)
            for value in np.unique(label):
                if value != -2:
                    if int(value) not in lookup:
                        raise ValueError(f"Case {identifier} has label {int(value)}, which dataset.json does not "
                                         f"list ({sorted(v for v in lookup if v >= 0)}); fix the labels or "
                                         f"dataset.json and preprocess again.")
                    classes[label == value] = lookup[int(value)]
            images.append(image)
            labels.append(classes)
            cases.append(identifier)
    return LabelledCrops(np.stack(images), np.stack(labels), cases)

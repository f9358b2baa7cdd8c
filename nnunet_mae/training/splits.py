"""nnU-Net's 5-fold split file, written atomically and read with an error that names it.

nnU-Net writes `splits_final.json` with a plain `save_json`: a kill at that moment left a 0-byte file, after
which every fold died with a bare JSONDecodeError. Here the same split (nnU-Net's `generate_crossval_split`
with nnU-Net's seed) is written to a temporary file and renamed; nnU-Net's own `do_split` then reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.utilities.crossval_split import generate_crossval_split

from nnunet_mae.transfer.checkpoint_io import atomic_target

NNUNET_SPLIT_SEED, NNUNET_FOLDS = 12345, 5  # nnUNetTrainer.do_split's arguments to generate_crossval_split


def write_default_split(splits_file: str | os.PathLike, identifiers) -> list[dict]:
    """Write nnU-Net's default split of `identifiers` to `splits_file` atomically; returns it."""
    splits = generate_crossval_split(sorted(identifiers), seed=NNUNET_SPLIT_SEED, n_splits=NNUNET_FOLDS)
    with atomic_target(splits_file) as tmp:
        save_json(splits, tmp)  # nnU-Net's own writer and format
    return splits


def check_split_file(splits_file: str | os.PathLike) -> None:
    """Raise a ValueError naming the file when it cannot be read as nnU-Net's list of {train, val} folds."""
    path = Path(splits_file)
    try:
        splits = json.loads(path.read_text())
        valid = isinstance(splits, list) and all(isinstance(s, dict) and {"train", "val"} <= set(s) for s in splits)
        problem = "" if valid else "it is not a list of {\"train\": [...], \"val\": [...]} folds"
    except (OSError, ValueError) as e:
        size = path.stat().st_size if path.exists() else 0
        problem = f"it is empty ({size} bytes)" if size == 0 else f"it is not readable JSON ({e})"
    if problem:
        raise ValueError(f"The split file {path} cannot be used: {problem}. If you did not write it yourself, delete "
                         f"it and nnU-Net's default 5-fold split is created again (the same cases per fold, it is "
                         f"seeded); otherwise fix the file.")

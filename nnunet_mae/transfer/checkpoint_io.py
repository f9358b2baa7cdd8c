"""Checkpoint files: atomic writes, clear errors on reading, and the `nnunet_mae` metadata block.

Every checkpoint written by the package's trainers is nnU-Net's checkpoint dict plus one key,
`nnunet_mae`, holding what weight transfer needs (see `transfer_metadata` in the trainers).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

METADATA_KEY = "nnunet_mae"


@contextmanager
def atomic_target(filename: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to `filename`; on success it replaces `filename` in one rename.

    A crash while writing leaves the previous file intact (and at most a stray `.tmp` file).
    """
    filename = os.fspath(filename)
    tmp = f"{filename}.tmp-{os.getpid()}"
    try:
        yield tmp
        if os.path.exists(tmp):
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, filename)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with an error that says what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise RuntimeError(f"Checkpoint {path} could not be read ({type(e).__name__}: {e}). The file is corrupt or "
                           f"not a PyTorch checkpoint; re-run the training that produced it (resume with --c) "
                           f"or point to another checkpoint.") from e
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise RuntimeError(f"Checkpoint {path} is not an nnU-Net checkpoint (no 'network_weights' entry).")
    return checkpoint

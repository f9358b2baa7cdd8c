"""Checkpoint files: atomic writes, safe reading with clear errors, and the `nnunet_mae` metadata block.

Every checkpoint written by the package's trainers is nnU-Net's checkpoint dict plus one key,
`nnunet_mae`, holding what weight transfer needs (see `transfer_metadata` in the trainers).

Reading never runs code hidden in a file: `torch.load(weights_only=True)` with an allow-list of the few
numpy types that nnU-Net's checkpoints hold (numpy scalars in the training log). A file that needs more
is refused with the name of the type and the way to convert a file one trusts.
"""

from __future__ import annotations

import os
import contextlib
import pickle
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

METADATA_KEY = "nnunet_mae"
TMP_MARKER = ".tmp-"  # atomic_target writes <file>.tmp-<pid>


def _numpy_scalar_reconstructor():
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core to numpy._core
    return core.multiarray.scalar


# what nnU-Net's and this package's checkpoints hold besides tensors and plain Python types
SAFE_GLOBALS = [_numpy_scalar_reconstructor(), np.dtype] + sorted(
    {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                                 np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)}, key=lambda c: c.__name__)


class UnsafeCheckpointError(RuntimeError):
    """The file holds objects beyond tensors, plain Python types and numpy scalars: loading it could run code."""
    clear_refusal = True  # printed as one message by the trainers (training/clean_exit.py)


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """`torch.load` that runs no code from the file: weights only, plus the numpy types of SAFE_GLOBALS."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = re.search(r"GLOBAL ([\w.]+)", str(e))  # torch's words for a type outside the allow-list
        if blocked is None:
            raise  # not a pickle of unknown objects: corrupt or foreign, reported as such by the callers
        blocked = f"the object {blocked.group(1)}"
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds {blocked}, which loading could use to run code (a pickle). "
            f"nnunet_mae loads only tensors, plain Python values and numpy scalars. If you trust the file (you or a "
            f"colleague made it), convert it once to a weights-only copy and use that:\n"
            f"  python -c \"import torch; c = torch.load({os.fspath(path)!r}, weights_only=False); "
            f"torch.save({{k: c[k] for k in ('network_weights', '{METADATA_KEY}') if k in c}}, 'converted.pth')\""
        ) from e


@contextmanager
def atomic_target(filename: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to `filename`; on success it replaces `filename` in one rename.

    A crash while writing leaves the previous file intact and a stray temporary file, which the next successful
    write of the same file (or `remove_stray_temporaries` at the start of a run) removes.
    """
    filename = os.fspath(filename)
    tmp = f"{filename}{TMP_MARKER}{os.getpid()}"
    try:
        yield tmp
        if os.path.exists(tmp):
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, filename)
            remove_stray_temporaries(os.path.dirname(filename) or ".", os.path.basename(filename))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stray_temporaries(folder: str | os.PathLike, name: str = "*") -> list[Path]:
    """Delete `<name>.tmp-<pid>` files left in `folder` by writes that were killed; returns what was removed.
    Only call where no other process writes into `folder` (the run lock guarantees it for an output folder)."""
    removed = []
    for path in Path(folder).glob(f"{name}{TMP_MARKER}*"):
        pid = path.name.rsplit(TMP_MARKER, 1)[1]
        if pid.isdigit() and int(pid) != os.getpid():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with an error that says what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    try:
        checkpoint = safe_torch_load(path, map_location=map_location)
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise RuntimeError(f"Checkpoint {path} could not be read ({type(e).__name__}: {e}). The file is corrupt or "
                           f"not a PyTorch checkpoint; re-run the training that produced it (resume with --c) "
                           f"or point to another checkpoint.") from e
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise RuntimeError(f"Checkpoint {path} is not an nnU-Net checkpoint (no 'network_weights' entry).")
    return checkpoint

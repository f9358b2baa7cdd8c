"""Where this package reaches into nnU-Net 2.8.1 beyond the trainer methods nnU-Net means to be overridden.

Each deviation is scoped: it is active only inside one call, or only between a trainer's `initialize()` and the start
of its training, and it is undone afterwards (documentation/architecture.md lists them with their reasons).

- `torch_seen_by(module, load=..., save=...)`: inside one call of an nnU-Net method, the name `torch` of that
  nnU-Net module answers `torch.load` / `torch.save` with the given functions (everything else is torch's own).
  Used to hand nnU-Net's `load_checkpoint` and `load_pretrained_weights` a checkpoint this package has already read
  with `weights_only=True` (so a file is read once, and never unpickled), and to let nnU-Net's `save_checkpoint`
  write its dict plus this package's entries once, atomically.
- `guard_pretrained_weights(trainer, on_loaded)`: `nnUNetv2_train -pretrained_weights FILE` calls
  `nnunetv2.run.run_training.load_pretrained_weights(trainer.network, FILE)` right after `trainer.initialize()`, with
  no trainer hook in between; between `initialize()` and the start of training (or the trainer's end), that name
  points at a guard that reads FILE weights-only first and hands the dict to nnU-Net's own loader.
"""

from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator

import nnunetv2.run.load_pretrained_weights as pretrained_module
import nnunetv2.run.run_training as run_training
import torch

from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.transfer.checkpoint_io import safe_torch_load

NNUNET_LOAD_PRETRAINED = pretrained_module.load_pretrained_weights


class _TorchWith:
    """The torch module, with some of its functions replaced."""

    def __init__(self, **overrides: Callable) -> None:
        self.__dict__.update(overrides)

    def __getattr__(self, name: str):
        return getattr(torch, name)


@contextmanager
def torch_seen_by(module, **overrides: Callable) -> Iterator[None]:
    """Inside the block, `module.torch.<name>` is `overrides[name]` (e.g. load, save); restored afterwards."""
    original = module.torch
    module.torch = _TorchWith(**overrides)
    try:
        yield
    finally:
        module.torch = original


def serve(checkpoint: dict) -> Callable:
    """A `torch.load` stand-in that returns the checkpoint already read (whatever file or options it is given)."""
    return lambda *args, **kwargs: checkpoint


def guard_pretrained_weights(trainer, on_loaded: Callable[[str], None]) -> Callable:
    """Until `release_pretrained_weights_guard()` (or the trainer's end), `nnUNetv2_train -pretrained_weights FILE`
    reads FILE weights-only, hands the dict to nnU-Net's own strict loader, and calls `on_loaded(FILE)`. Other
    networks get nnU-Net's loader unchanged. The trainer is held weakly (a DDP network kept alive until interpreter
    shutdown made gloo ranks abort)."""
    trainer_ref, callback_ref = weakref.ref(trainer), weakref.WeakMethod(on_loaded)

    def guarded(network, fname, verbose=False):
        owner, callback = trainer_ref(), callback_ref()
        if owner is None or callback is None or unwrap_network(network) is not unwrap_network(owner.network):
            return NNUNET_LOAD_PRETRAINED(network, fname, verbose)
        checkpoint = safe_torch_load(os.fspath(fname))  # raises UnsafeCheckpointError; nothing in the file has run
        with torch_seen_by(pretrained_module, load=serve(checkpoint)):
            NNUNET_LOAD_PRETRAINED(network, fname, verbose)
        callback(os.fspath(fname))

    run_training.load_pretrained_weights = guarded
    weakref.finalize(trainer, release_pretrained_weights_guard, guarded)
    return guarded


def release_pretrained_weights_guard(guard: Callable) -> None:
    """nnU-Net's own loader again, where `guard` is still the one installed."""
    if run_training.load_pretrained_weights is guard:
        run_training.load_pretrained_weights = NNUNET_LOAD_PRETRAINED

"""`nnUNetv2_train ... -pretrained_weights FILE` for this package's trainers: safe, and on record.

nnU-Net reads FILE in `nnunetv2.run.load_pretrained_weights.load_pretrained_weights` with
`torch.load(weights_only=False)`, which runs any code pickled into the file. `nnUNetv2_train` calls that
function through the name `load_pretrained_weights` of `nnunetv2.run.run_training`, right after
`trainer.initialize()`. A trainer of this package points that name at a guard which first reads FILE with
the package's weights-only loader (an unsafe file is refused before nnU-Net touches it), then lets nnU-Net's
own loader do its strict load, and tells the trainer which file was loaded (so that the fine-tuning trainers'
automatic search does not overwrite it). nnU-Net's own trainers are not changed: with them, nnU-Net reads
the file as it always does.
"""

from __future__ import annotations

import os
import weakref
from typing import Callable

import nnunetv2.run.run_training as run_training
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights as nnunet_load_pretrained_weights

from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.transfer.checkpoint_io import safe_torch_load


def route_pretrained_weights_through(trainer, on_loaded: Callable[[str], None]) -> None:
    """Make `nnUNetv2_train -pretrained_weights FILE` load FILE safely into `trainer`'s network, then call
    `on_loaded(FILE)`. Other networks (another trainer in the same process) get nnU-Net's loader unchanged.

    The module-level function holds the trainer only weakly: a strong reference kept the DDP-wrapped network alive
    until interpreter shutdown, where its destruction after the process group's made gloo ranks abort."""
    trainer_ref, callback_ref = weakref.ref(trainer), weakref.WeakMethod(on_loaded)

    def guarded(network, fname, verbose=False):
        owner, callback = trainer_ref(), callback_ref()
        if owner is None or callback is None or unwrap_network(network) is not unwrap_network(owner.network):
            return nnunet_load_pretrained_weights(network, fname, verbose)
        safe_torch_load(os.fspath(fname))  # raises UnsafeCheckpointError; nothing in the file has run
        nnunet_load_pretrained_weights(network, fname, verbose)
        callback(os.fspath(fname))

    run_training.load_pretrained_weights = guarded

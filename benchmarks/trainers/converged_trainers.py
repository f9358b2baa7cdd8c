"""Trainers of benchmarks/converged.py: the scouts, which write nnU-Net's EMA pseudo Dice after every epoch so that
the benchmark can stop them where they converge, and the pre-trainings, with a snapshot of the network at every
probe, so that fine-tuning can start from the encoder at the probe's plateau (and early and late, to check the
stopping signal).

Budget and seed come from the benchmark's budget file, as for label_efficiency.py's trainers (`EqualTime`:
`epochs_per_trainer`, `iterations_per_epoch`, `attributes`: the probe's interval and fold, `save_every`); the
scratch and fine-tuning arms are label_efficiency.py's own `_le` trainers, with converged.py's budget file, but for
the CNN pair's scratch arm: nnU-Net's `nnUNetTrainer` in the precision of its MAE arm (`AutocastSteps`).
"""

from __future__ import annotations

import contextlib
import json
import os

from label_efficiency_trainers import EqualTime  # this folder: on sys.path while nnU-Net looks up a trainer
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from snapshots import Snapshots

from nnunet_mae.training.precision import choose_precision
from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_CNN, nnUNetTrainerViT
from nnunet_mae.transfer.checkpoint_io import atomic_target

SCOUT_FILE = "scout_progress.json"


class WritesProgress:
    """Mixin: after every epoch, `scout_progress.json` in the output folder: the EMA pseudo Dice per epoch and each
    epoch's seconds (training and validation), written atomically."""

    def on_epoch_end(self):
        super().on_epoch_end()
        if self.local_rank == 0:
            starts, ends, ema = (self.logger.get_value(key, step=None) for key in
                                 ("epoch_start_timestamps", "epoch_end_timestamps", "ema_fg_dice"))
            seconds = [end - start for start, end in zip(starts, ends)]
            with atomic_target(os.path.join(self.output_folder, SCOUT_FILE)) as tmp, open(tmp, "w") as f:
                json.dump({"ema_fg_dice": [float(x) for x in ema], "epoch_seconds": seconds,
                           "iterations_per_epoch": self.num_iterations_per_epoch}, f)


class AutocastSteps:
    """Mixin for nnU-Net's own trainer: its training and validation steps under the package's `auto` precision on
    a CPU (bf16 where the CPU computes bf16 natively, else fp32: training/precision.py), as the package's trainers
    run; nnU-Net itself autocasts on CUDA only. Everything else is nnU-Net's recipe. On CUDA nnU-Net's own autocast
    applies."""

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"nnU-Net's steps on the CPU: {self.cpu_precision().describe()}")

    def cpu_precision(self):
        if getattr(self, "_cpu_precision", None) is None:  # once: it reads the CPU's flags
            self._cpu_precision = choose_precision("auto", "cpu")
        return self._cpu_precision

    def autocast(self):
        return self.cpu_precision().autocast("cpu") if self.device.type == "cpu" else contextlib.nullcontext()

    def train_step(self, batch: dict) -> dict:
        with self.autocast():
            return super().train_step(batch)

    def validation_step(self, batch: dict) -> dict:
        with self.autocast():
            return super().validation_step(batch)


class nnUNetTrainerAutocast_le(EqualTime, AutocastSteps, nnUNetTrainer):
    """The CNN pair's scratch arm: nnU-Net's CNN and recipe in the precision of the CNN MAE fine-tuning."""


class nnUNetTrainerAutocast_scout(WritesProgress, nnUNetTrainerAutocast_le):
    pass


class nnUNetTrainerViT_scout(WritesProgress, EqualTime, nnUNetTrainerViT):
    pass


class SnapshotAtProbes(Snapshots):
    def snapshot_now(self, epoch: int) -> bool:
        return self.is_probe_epoch(epoch)


class nnUNetTrainerMAEPretrain_cv(SnapshotAtProbes, EqualTime, nnUNetTrainerMAEPretrain):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_le"


class nnUNetTrainerMAEPretrain_CNN_cv(SnapshotAtProbes, EqualTime, nnUNetTrainerMAEPretrain_CNN):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_CNN_le"

"""Mixin of the benchmarks' pre-training trainers: the network's weights, with what the probe and fine-tuning read
(the transfer metadata, the probe history), saved as `snapshots/epoch_XXXX.pth` at the epochs `snapshot_now`
chooses, so that later probes and fine-tunings start from the encoder as it was then. Written atomically."""

from __future__ import annotations

import os

import torch

from nnunet_mae.transfer.checkpoint_io import atomic_target


class Snapshots:
    def snapshot_now(self, epoch: int) -> bool:
        raise NotImplementedError

    def on_epoch_end(self):
        epoch = self.current_epoch
        super().on_epoch_end()  # the probe of this epoch, if any, is in checkpoint_extras() from here on
        if self.local_rank == 0 and self.snapshot_now(epoch):
            folder = os.path.join(self.output_folder, "snapshots")
            os.makedirs(folder, exist_ok=True)
            with atomic_target(os.path.join(folder, f"epoch_{epoch + 1:04d}.pth")) as tmp:
                torch.save({"network_weights": self.network.state_dict(), "epoch": epoch,
                            "iterations": (epoch + 1) * self.num_iterations_per_epoch,
                            "train_seconds": self.training_seconds(), **self.checkpoint_extras()}, tmp)

"""Probe the encoder of a checkpoint file (and a random one of the same shape): `nnunet_mae probe`, benchmarks.

The checkpoint's `nnunet_mae` metadata names the trainer that wrote it; its fine-tuning trainer (the trainer itself
for a fine-tuning checkpoint, `finetune_trainer_name` for a pre-training one) builds the network the encoder is
copied into, exactly as during pre-training's own probe.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_mae.probing.fit import mean_dice
from nnunet_mae.training.encoder_probe import ProbeSetup, label_names
from nnunet_mae.training.precision import choose_precision
from nnunet_mae.transfer.checkpoint_io import load_checkpoint_file
from nnunet_mae.transfer.encoder_transfer import TransferError, transfer_encoder_weights
from nnunet_mae.transfer.metadata import TransferMetadata


def finetuning_class_of(trainer_name: str):
    trainer_class = recursive_find_trainer_class_by_name(trainer_name)
    if trainer_class is None:
        raise TransferError(f"The checkpoint was written by {trainer_name}, which nnU-Net cannot find here: install "
                            f"the package (or the extTrainer folder) that holds it.")
    name = getattr(trainer_class, "finetune_trainer_name", None)
    return recursive_find_trainer_class_by_name(name) if name else trainer_class


class CheckpointProbe:
    """A checkpoint's encoder in its fine-tuning network, the crops of one dataset, and the reader of its features.

    `network(None)` is the checkpoint's encoder (the rest of the network freshly initialised), `network(seed)` a
    randomly initialised network of the same shape."""

    def __init__(self, path: str | os.PathLike, *, plans: dict, dataset_json: dict, configuration: str,
                 preprocessed_base: str | os.PathLike, folds: Sequence[int] = (0,), head: str = "linear",
                 device: torch.device = torch.device("cpu")) -> None:
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        self.path, self.device, self.dataset_json, self.folds = Path(path), device, dataset_json, list(folds)
        self.checkpoint = load_checkpoint_file(path)
        self.metadata = TransferMetadata.from_checkpoint(self.checkpoint, path, "a pre-training trainer of nnunet_mae")
        pm = PlansManager(plans)
        if self.metadata.dataset_name != pm.dataset_name:
            raise TransferError(f"{path} was trained on {self.metadata.dataset_name}; the probe reads labels of "
                                f"{pm.dataset_name}. Probe it on its own dataset (-d {self.metadata.dataset_name}).")
        cm = pm.get_configuration(configuration)
        if self.metadata.spatial_dims != len(cm.patch_size):
            raise TransferError(f"{path} holds a {self.metadata.spatial_dims}D encoder (configuration "
                                f"{self.metadata.configuration!r}); {configuration!r} is {len(cm.patch_size)}D. Probe "
                                f"it with -c {self.metadata.configuration}.")
        self.finetune_class = finetuning_class_of(self.metadata.trainer_name)
        self.label_manager = lm = pm.get_label_manager(dataset_json)
        channels = determine_num_input_channels(pm, cm, dataset_json)
        kwargs = self.finetune_class.network_kwargs(cm, channels, lm.num_segmentation_heads)
        self._build = lambda: self.finetune_class.build_network_architecture(  # noqa: E731
            pm, cm, channels, lm.num_segmentation_heads, False).to(device)
        self.target_grid = TransferMetadata.token_grid_of(kwargs)
        folder = str(Path(preprocessed_base) / cm.data_identifier)
        self.setup = ProbeSetup(dataset_folder=folder, dataset_class=infer_dataset_class(folder),
                                splits_file=str(Path(preprocessed_base) / "splits_final.json"),
                                patch_size=tuple(kwargs["input_shape"]), label_values=list(lm.all_labels),
                                ignore_label=lm.ignore_label, fold=self.folds[0], head=head)
        self.read = self.finetune_class.backbone_family().probe_features
        self.precision = choose_precision("auto", device)

    def network(self, random_seed: int | None = None) -> torch.nn.Module:
        if random_seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(random_seed)
                return self._build()
        network = self._build()
        report = transfer_encoder_weights(self.checkpoint["network_weights"], network,
                                          source_grid=self.metadata.token_grid, target_grid=self.target_grid)
        report.raise_if_incomplete(str(self.path))
        return network

    def probe(self, network: torch.nn.Module, seed: int, with_train_dice: bool = False):
        return self.setup.probe(network, self.read, seed=seed, device=self.device, with_train_dice=with_train_dice,
                                autocast=self.autocast)

    def autocast(self):
        return self.precision.autocast(self.device.type)

    def rows(self, seeds: int = 3, random: bool = False) -> list[dict]:
        """One row per encoder (the checkpoint's, then the random one): Dice per label averaged over seeds,
        per-seed values and mean Dice, mean, spread (max - min of the per-seed mean) and seconds per seed. With
        several folds, each seed's Dice is cross-validated over them (ProbeSetup.probe_folds)."""
        rows = []
        for title, random_init in [(f"{self.metadata.trainer_name} ({self.path.name})", False)] + (
                [("random init, same shape", True)] if random else []):
            per_seed, seconds = [], []
            for seed in range(seeds):
                start = time.perf_counter()
                per_seed.append(self.setup.probe_folds(
                    self.folds, self.network(seed if random_init else None), self.read, seed=seed, device=self.device,
                    autocast=self.autocast).dice)
                seconds.append(time.perf_counter() - start)
            means = [mean_dice(d) for d in per_seed]
            rows.append({"encoder": title, "labels": label_names(self.dataset_json, self.label_manager.all_labels),
                         "dice_mean": [sum(col) / len(col) for col in zip(*per_seed)], "seeds": per_seed,
                         "seed_means": means, "mean": sum(means) / len(means), "spread": max(means) - min(means),
                         "seconds": sum(seconds) / len(seconds), "folds": self.folds})
        return rows

"""The probe during pre-training (and for `nnunet_mae probe`): what an encoder has learnt, and the stopping signal.

A probe: the encoder is copied into the fine-tuning trainer's segmentation network (the weights fine-tuning starts
from; frozen), its features (what that network's decoder reads: the backbone's `probe_features`) are computed for
fixed labelled crops of nnU-Net's fold-0 training cases, a linear per-voxel head is fitted on them
(probing/fit.py) and scored by Dice per label on fixed crops of the fold-0 validation cases. Labels reach only the
head; the encoder never sees them, and the validation cases never fit the head.

`ProbeDuringPretraining` (a mixin of `PretrainingTrainer`) probes every `probe_every` epochs and once before the
first step (the random-init baseline, with `probe_noise_seeds` crop seeds: their spread is the probe's noise). Its
settings are instance attributes:
- probe_every (epochs; 0 = never), probe_fold (0), probe_train_cases (32) x probe_crops_per_case (2),
  probe_val_cases (40, one crop each), probe_seed (crops), probe_noise_seeds (3), probe_head ("linear" or "mlp"),
  probe_patience (K = 5 probes for the stopping signal);
- best_checkpoint_by: "reconstruction" (the moving-average validation loss, default) or "probe" (the highest
  mean probe Dice: uses the fold-0 validation cases' labels to choose the checkpoint).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from torch import nn

from nnunet_mae.probing.crops import LabelledCrops, labelled_crops
from nnunet_mae.probing.features import FeatureReader, feature_batches
from nnunet_mae.probing.fit import ProbeResult, run_probe, weighted_mean
from nnunet_mae.probing.history import ProbeHistory, ProbeRecord
from nnunet_mae.training.splits import NNUNET_FOLDS, check_split_file, write_default_split

STOP_MESSAGE = "pre-training has stopped paying; you can stop it here"


class ProbeUnavailable(ValueError):
    """The dataset cannot be probed (too few labelled cases for nnU-Net's split, no such fold)."""


@dataclass
class ProbeSetup:
    """Where the probe's crops come from and how it reads them: one nnU-Net configuration of one dataset."""

    dataset_folder: str  # nnU-Net's preprocessed configuration folder (the labelled cases)
    dataset_class: type  # nnU-Net's dataset class for that folder
    splits_file: str
    patch_size: tuple[int, ...]
    label_values: list[int]  # nnU-Net's label_manager.all_labels: class k of the probe is label_values[k]
    ignore_label: int | None = None
    fold: int = 0
    train_cases: int = 32
    crops_per_case: int = 2
    val_cases: int = 40
    head: str = "linear"

    def cases(self, seed: int) -> tuple[list[str], list[str]]:
        """(fitting cases, scoring cases) of nnU-Net's fold `fold`, chosen with `seed`. Writes nnU-Net's default
        split (atomically) where there is none yet, as nnU-Net would for fold 0."""
        if os.path.isfile(self.splits_file):
            check_split_file(self.splits_file)
            splits = load_json(self.splits_file)
        else:
            cases = self.dataset_class.get_identifiers(self.dataset_folder)
            if len(cases) < NNUNET_FOLDS:
                raise ProbeUnavailable(f"{len(cases)} labelled case(s): nnU-Net's {NNUNET_FOLDS}-fold split, whose "
                                       f"fold-{self.fold} cases the probe uses, needs at least {NNUNET_FOLDS}")
            splits = write_default_split(self.splits_file, cases)
        if self.fold >= len(splits):
            raise ProbeUnavailable(f"{self.splits_file} has no fold {self.fold}")
        rng = np.random.default_rng(seed)
        train, val = sorted(splits[self.fold]["train"]), sorted(splits[self.fold]["val"])
        if not train or not val:
            raise ProbeUnavailable(f"fold {self.fold} of {self.splits_file} has no training or no validation case")
        return (sorted(rng.choice(train, size=min(self.train_cases, len(train)), replace=False).tolist()),
                sorted(rng.choice(val, size=min(self.val_cases, len(val)), replace=False).tolist()))

    def crops(self, cases: list[str], crops_per_case: int, seed: int) -> LabelledCrops:
        dataset = self.dataset_class(self.dataset_folder, identifiers=list(cases))
        return labelled_crops(dataset, cases, self.patch_size, crops_per_case=crops_per_case, seed=seed,
                              label_values=self.label_values, ignore_label=self.ignore_label)

    def probe(self, network: nn.Module, read: FeatureReader, *, seed: int, device: torch.device,
              autocast: Callable = None, with_train_dice: bool = False) -> ProbeResult:
        """Probe the frozen `network`'s features with the crops of `seed`."""
        train_cases, val_cases = self.cases(seed)
        train = self.crops(train_cases, self.crops_per_case, seed)
        val = self.crops(val_cases, 1, seed)
        common = dict(network=network, device=device)
        if autocast is not None:
            common["autocast"] = autocast
        return run_probe(lambda: feature_batches(read, images=train.images, labels=train.labels, **common),
                         lambda: feature_batches(read, images=val.images, labels=val.labels, **common),
                         len(self.label_values), head=self.head, seed=seed, with_train_dice=with_train_dice)

    def probe_folds(self, folds: Sequence[int], network: nn.Module, read: FeatureReader, *, seed: int,
                    device: torch.device, autocast: Callable = None) -> ProbeResult:
        """The probe of each of nnU-Net's `folds` (fitted on its training cases, scored on its validation cases),
        combined into one Dice per label weighted by each fold's scoring cases: over all five folds every labelled
        case scores once. With few labelled cases (1-2 validation cases per fold) one fold's Dice is mostly the
        luck of its cases; the cross-validated one is the probe's low-noise form (benchmarks.md)."""
        weighted = []
        for fold in folds:
            setup = replace(self, fold=fold)
            weighted.append((len(setup.cases(seed)[1]), setup.probe(network, read, seed=seed, device=device,
                                                                    autocast=autocast)))
        return ProbeResult(dice=[weighted_mean([(n, r.dice[k]) for n, r in weighted])
                                 for k in range(len(self.label_values) - 1)],
                           seconds=sum(r.seconds for _, r in weighted))


def label_names(dataset_json: dict, label_values) -> list[str]:
    """dataset.json's names of the foreground labels, in the probe's order."""
    names = {int(v): k for k, v in dataset_json["labels"].items() if isinstance(v, int)}
    return [names.get(int(v), f"label {v}") for v in label_values[1:]]


class ProbeDuringPretraining:
    def init_probe(self) -> None:
        self.probe_every = 15  # ViT-S on Hippocampus: 4.2% of the pre-training time (benchmarks.md)
        self.probe_fold = 0
        self.probe_train_cases = 32
        self.probe_crops_per_case = 2
        self.probe_val_cases = 40
        self.probe_seed = 0
        self.probe_noise_seeds = 3
        self.probe_head = "linear"
        self.probe_patience = 5
        self.best_checkpoint_by = "reconstruction"
        self.probe_history = ProbeHistory()
        self._probe_network: nn.Module | None = None

    def probe_setup(self) -> ProbeSetup:
        lm = self.label_manager
        return ProbeSetup(dataset_folder=self.preprocessed_dataset_folder, dataset_class=self.dataset_class,
                          splits_file=join(self.preprocessed_dataset_folder_base, "splits_final.json"),
                          patch_size=tuple(self.configuration_manager.patch_size), label_values=list(lm.all_labels),
                          ignore_label=lm.ignore_label, fold=self.probe_fold, train_cases=self.probe_train_cases,
                          crops_per_case=self.probe_crops_per_case, val_cases=self.probe_val_cases,
                          head=self.probe_head)

    def probe_encoder(self, seed: int) -> ProbeResult:
        """The current encoder, copied into the fine-tuning network, probed with the crops of `seed`."""
        return self.probe_setup().probe(self.encoder_in_finetuning_network(), self.backbone_family().probe_features,
                                        seed=seed, device=self.device, autocast=self.autocast)

    def training_seconds(self) -> float:
        starts = self.logger.get_value("epoch_start_timestamps", step=None)
        ends = self.logger.get_value("epoch_end_timestamps", step=None)
        return float(sum(e - s for s, e in zip(starts, ends)))

    def probe_now(self, epoch: int) -> ProbeRecord | None:
        """Probe (epoch -1: the baseline, with the noise seeds), record, log; None where the probe cannot run."""
        if self.local_rank != 0:  # one probe per run; the other ranks wait at their next synchronisation
            return None
        start = time.perf_counter()
        try:
            result = self.probe_encoder(self.probe_seed)
        except ProbeUnavailable as e:
            if epoch < 0:
                self.print_to_log_file(f"Probe skipped: {e}.")
            return None
        record = ProbeRecord(epoch=epoch, iterations=(epoch + 1) * self.num_iterations_per_epoch,
                             train_seconds=self.training_seconds(), dice=result.dice,
                             probe_seconds=time.perf_counter() - start)
        if epoch < 0 and self.probe_noise_seeds > 1:
            means = [record.mean] + [self.probe_encoder(self.probe_seed + k).mean
                                     for k in range(1, self.probe_noise_seeds)]
            self.probe_history.noise_seeds = means
            self.probe_history.noise = float(max(means) - min(means))
        self.probe_history.add(record)
        self.log_probe(record)
        return record

    def log_probe(self, record: ProbeRecord) -> None:
        history = self.probe_history
        what = "random-init baseline, before the first step" if record.epoch < 0 else f"after epoch {record.epoch}"
        labels = ", ".join(f"{name} {d:.3f}" for name, d in
                           zip(label_names(self.dataset_json, self.label_manager.all_labels), record.dice))
        self.print_to_log_file(f"Probe Dice ({what}): {labels}; mean {record.mean:.3f} "
                               f"({record.probe_seconds:.1f} s)")
        if record.epoch < 0 and history.noise is not None:
            self.print_to_log_file(f"Probe noise: mean Dice {', '.join(f'{m:.3f}' for m in history.noise_seeds)} "
                                   f"over {len(history.noise_seeds)} crop seeds, spread {history.noise:.3f}.")
        if record.epoch >= 0 and history.stopped_paying(self.probe_patience):
            if history.stop_epoch is None:
                history.stop_epoch = record.epoch
            best = history.best()
            self.print_to_log_file(
                f"Probe: no gain above the probe's noise ({history.noise:.3f}) over the last {self.probe_patience} "
                f"probes (best mean Dice {best.mean:.3f} after epoch {best.epoch}): {STOP_MESSAGE}.")

    def is_probe_epoch(self, epoch: int) -> bool:
        return self.probe_every > 0 and ((epoch + 1) % self.probe_every == 0 or epoch == self.num_epochs - 1)

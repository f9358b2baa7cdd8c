"""`nnUNetTrainerMAEFinetune`: the ViT segmentation trainer, started from a pre-trained encoder.

It finds the pre-training checkpoint by itself:
`$nnUNet_results/<dataset>/<pretrain_trainer_name>__<plans>__<configuration>/fold_all/checkpoint_final.pth`,
or takes the file named by the environment variable `nnUNet_MAE_pretrained` (another dataset, another
run). Stem + encoder are loaded (position embedding resampled, 1-channel stem repeated over C
channels); decoder and head start fresh. Recipe after SelfMedMAE: layer-wise LR decay 0.75, drop path
0.1, warm-up. Resuming with `--c` restores the fine-tuned weights instead.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import torch
from nnunetv2.paths import nnUNet_results

from nnunet_mae.backbones import finetuning_trainer_names
from nnunet_mae.data.dataset_json import channel_names
from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.vit_trainer import nnUNetTrainerViT
from nnunet_mae.transfer.checkpoint_io import load_checkpoint_file
from nnunet_mae.transfer.locate import PRETRAINED_ENV, locate_pretrained_checkpoint, pretraining_results_folder
from nnunet_mae.transfer.encoder_transfer import transfer_encoder_weights
from nnunet_mae.transfer.metadata import TransferMetadata


class nnUNetTrainerMAEFinetune(nnUNetTrainerViT):
    pretrain_trainer_name: str = "nnUNetTrainerMAEPretrain"
    trainer_kind = "finetuning"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.layer_decay = 0.75

    def pretraining_configuration(self) -> str:
        """The configuration whose pre-training this one starts from: itself, or for a cascade's full-resolution
        stage the configuration it inherits from (same spacing and patch; the segmentation channels start at 0)."""
        if self.configuration_manager.previous_stage_name is None:
            return self.configuration_name
        return self.plans_manager.plans["configurations"][self.configuration_name].get("inherits_from", "3d_fullres")

    def pretraining_folder(self) -> Path:
        return pretraining_results_folder(str(nnUNet_results), self.plans_manager.dataset_name,
                                          self.pretrain_trainer_name, self.plans_manager.plans_name,
                                          self.pretraining_configuration())

    def locate_pretrained(self) -> tuple[Path, str]:
        """(checkpoint, why this one): `nnUNet_MAE_pretrained`, else this dataset's pre-training (locate.py)."""
        return locate_pretrained_checkpoint(self.pretraining_folder(), self.pretraining_command(),
                                            self.__class__.__name__,
                                            f"the {self.pretrain_trainer_name} pre-training of this dataset")

    def load_pretrained_encoder(self) -> None:
        path, why = self.locate_pretrained()
        checkpoint = load_checkpoint_file(path)
        metadata = TransferMetadata.from_checkpoint(checkpoint, path, self.pretrain_trainer_name)
        own = self.transfer_metadata()
        family = self.backbone_family()
        metadata.check_fits(own, family.encoder_settings, path, self.pretraining_command(), family.mismatch_fix,
                            finetuning_trainers=finetuning_trainer_names)
        report = transfer_encoder_weights(checkpoint["network_weights"], unwrap_network(self.network),
                                          source_grid=metadata.token_grid, target_grid=own.token_grid,
                                          image_channels=len(channel_names(self.dataset_json)))
        report.raise_if_incomplete(str(path))
        self.print_to_log_file(f"Pre-trained encoder loaded from {path} ({why}; "
                               f"{metadata.describe()}).\n{report.format()}")

    def pretraining_command(self) -> str:
        return shlex.join(["nnUNetv2_train", self.plans_manager.dataset_name, self.pretraining_configuration(), "all",
                           "-tr", self.pretrain_trainer_name]
                          + ([] if self.plans_manager.plans_name == "nnUNetPlans" else
                             ["-p", self.plans_manager.plans_name]))

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        if self.current_epoch == 0:  # not when resuming with --c
            self.start_from_pretrained_encoder()
        super().on_train_start()

    def start_from_pretrained_encoder(self) -> None:
        """An explicit -pretrained_weights file wins over the automatic search and the environment variable."""
        if self.explicit_pretrained_weights is None:
            self.load_pretrained_encoder()
            return
        ignored = f" and {PRETRAINED_ENV}={os.environ[PRETRAINED_ENV]} is ignored" if os.environ.get(
            PRETRAINED_ENV) else ""
        self.print_to_log_file(f"Starting from -pretrained_weights {self.explicit_pretrained_weights} (given "
                               f"explicitly): the automatic search for a pre-trained encoder is skipped{ignored}.")


class nnUNetTrainerMAEFinetune_patchdec(nnUNetTrainerMAEFinetune):
    """The pre-trained encoder with the light patch decoder (as nnUNetTrainerViT_patchdec) instead of UNETR's."""

    decoder = "patch"

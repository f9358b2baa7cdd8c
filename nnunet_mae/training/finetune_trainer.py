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
from pathlib import Path

import torch
from nnunetv2.paths import nnUNet_results

from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.schedules import Epochs5, Epochs50, Epochs250, Smoke
from nnunet_mae.training.vit_trainer import nnUNetTrainerViT
from nnunet_mae.transfer.checkpoint_io import METADATA_KEY, load_checkpoint_file
from nnunet_mae.transfer.encoder_transfer import TransferError, transfer_encoder_weights

PRETRAINED_ENV = "nnUNet_MAE_pretrained"


class nnUNetTrainerMAEFinetune(nnUNetTrainerViT):
    pretrain_trainer_name: str = "nnUNetTrainerMAEPretrain"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.layer_decay = 0.75

    def pretraining_folder(self) -> Path:
        return Path(str(nnUNet_results), self.plans_manager.dataset_name,
                    f"{self.pretrain_trainer_name}__{self.plans_manager.plans_name}__{self.configuration_name}",
                    "fold_all")

    def find_pretrained_checkpoint(self) -> Path:
        given = os.environ.get(PRETRAINED_ENV)
        if given:
            if not Path(given).is_file():
                raise FileNotFoundError(f"{PRETRAINED_ENV}={given} does not point to a file. Give the path of a "
                                        f"pre-training checkpoint (…/fold_all/checkpoint_final.pth).")
            return Path(given)
        folder = self.pretraining_folder()
        final = folder / "checkpoint_final.pth"
        if final.is_file():
            return final
        dataset_id = self.plans_manager.dataset_name
        command = (f"nnUNetv2_train {dataset_id} {self.configuration_name} all -tr {self.pretrain_trainer_name}"
                   + ("" if self.plans_manager.plans_name == "nnUNetPlans" else f" -p {self.plans_manager.plans_name}"))
        found = sorted(p.name for p in folder.glob("checkpoint_*.pth")) if folder.is_dir() else []
        hint = (f" Found only {', '.join(found)}: the pre-training has not finished; finish it with `{command} --c`."
                if found else f" Run the pre-training first: `{command}`.")
        raise FileNotFoundError(f"No pre-trained encoder for {self.__class__.__name__}: {final} does not exist.{hint} "
                                f"Or name a checkpoint file with `export {PRETRAINED_ENV}=/path/to/checkpoint.pth`.")

    def load_pretrained_encoder(self) -> None:
        path = self.find_pretrained_checkpoint()
        checkpoint = load_checkpoint_file(path)
        metadata = checkpoint.get(METADATA_KEY)
        if metadata is None:
            raise TransferError(f"{path} carries no '{METADATA_KEY}' metadata: it was not written by an nnunet_mae "
                                f"trainer. Pre-train with {self.pretrain_trainer_name}, or load nnU-Net weights with "
                                f"`nnUNetv2_train ... -pretrained_weights FILE` and a trainer whose network matches.")
        network = unwrap_network(self.network)
        report = transfer_encoder_weights(checkpoint["network_weights"], network,
                                          source_grid=metadata["token_grid"], target_grid=network.encoder.grid)
        report.raise_if_incomplete(str(path))
        self.print_to_log_file(f"Pre-trained encoder loaded from {path} (pre-trained by {metadata['trainer_name']} "
                               f"on {metadata['dataset_name']} {metadata['configuration']}, patch "
                               f"{metadata['patch_size']}).\n{report.format()}")

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        if self.current_epoch == 0:  # not when resuming with --c
            self.load_pretrained_encoder()
        super().on_train_start()


class nnUNetTrainerMAEFinetune_smoke(Smoke, nnUNetTrainerMAEFinetune):
    """Starts from the encoder of the matching _smoke pre-training."""

    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_smoke"


class nnUNetTrainerMAEFinetune_5epochs(Epochs5, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_50epochs(Epochs50, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_250epochs(Epochs250, nnUNetTrainerMAEFinetune):
    pass

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

import numpy as np
import torch
from nnunetv2.paths import nnUNet_results

from nnunet_mae.architectures.tokens import token_grid
from nnunet_mae.data.dataset_json import channel_names
from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.backbones import PrimusV3SBackbone
from nnunet_mae.training.schedules import BF16, FP32, Epochs5, Epochs50, Epochs250, Smoke
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

    def pretraining_configuration(self) -> str:
        """The configuration whose pre-training this one starts from: itself, or for a cascade's full-resolution
        stage the configuration it inherits from (same spacing and patch; the segmentation channels start at 0)."""
        if self.configuration_manager.previous_stage_name is None:
            return self.configuration_name
        return self.plans_manager.plans["configurations"][self.configuration_name].get("inherits_from", "3d_fullres")

    def pretraining_folder(self) -> Path:
        return Path(str(nnUNet_results), self.plans_manager.dataset_name,
                    f"{self.pretrain_trainer_name}__{self.plans_manager.plans_name}__"
                    f"{self.pretraining_configuration()}", "fold_all")

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
        command = shlex.join(["nnUNetv2_train", dataset_id, self.pretraining_configuration(), "all", "-tr",
                              self.pretrain_trainer_name]
                             + ([] if self.plans_manager.plans_name == "nnUNetPlans" else
                                ["-p", self.plans_manager.plans_name]))
        found = sorted(p.name for p in folder.glob("checkpoint_*.pth")) if folder.is_dir() else []
        hint = (f" Found only {', '.join(found)}: the pre-training has not finished; finish it with `{command} --c`."
                if found else f" Run the pre-training first: `{command}`.")
        raise FileNotFoundError(f"No pre-trained encoder for {self.__class__.__name__}: {final} does not exist.{hint} "
                                f"Or name a checkpoint file with `export {PRETRAINED_ENV}=/path/to/checkpoint.pth`, "
                                f"or give it to nnUNetv2_train with `-pretrained_weights FILE`.")

    def pretrained_checkpoint_reason(self, path: Path) -> str:
        if os.environ.get(PRETRAINED_ENV):
            return f"named by {PRETRAINED_ENV}"
        return f"found automatically: the {self.pretrain_trainer_name} pre-training of this dataset"

    def load_pretrained_encoder(self) -> None:
        path = self.find_pretrained_checkpoint()
        checkpoint = load_checkpoint_file(path)
        metadata = checkpoint.get(METADATA_KEY)
        if metadata is None:
            raise TransferError(f"{path} carries no '{METADATA_KEY}' metadata: it was not written by an nnunet_mae "
                                f"trainer. Pre-train with {self.pretrain_trainer_name}, or load nnU-Net weights with "
                                f"`nnUNetv2_train ... -pretrained_weights FILE` and a trainer whose network matches.")
        self.check_same_encoder_settings(metadata, path)
        own = self.network_kwargs(self.configuration_manager, self.num_input_channels,
                                  self.label_manager.num_segmentation_heads)
        report = transfer_encoder_weights(checkpoint["network_weights"], unwrap_network(self.network),
                                          source_grid=metadata["token_grid"],
                                          target_grid=token_grid(own["input_shape"], own["token_size"]),
                                          image_channels=len(channel_names(self.dataset_json)))
        report.raise_if_incomplete(str(path))
        self.print_to_log_file(f"Pre-trained encoder loaded from {path} ({self.pretrained_checkpoint_reason(path)}; "
                               f"pre-trained by {metadata['trainer_name']} "
                               f"on {metadata['dataset_name']} {metadata['configuration']}, patch "
                               f"{metadata['patch_size']}).\n{report.format()}")

    def check_same_encoder_settings(self, metadata: dict, path: Path) -> None:
        """Refuse a checkpoint of another dimensionality, backbone, size or token size before touching any weight."""
        pretrained = metadata.get("network_kwargs", {})
        own = self.network_kwargs(self.configuration_manager, self.num_input_channels,
                                  self.label_manager.num_segmentation_heads)
        theirs_ndim, own_ndim = len(np.atleast_1d(pretrained.get("input_shape", own["input_shape"]))), len(
            own["input_shape"])
        if theirs_ndim != own_ndim:
            raise TransferError(
                f"{path} holds a {theirs_ndim}D encoder (pre-trained on configuration "
                f"{metadata.get('configuration')!r} of {metadata.get('dataset_name')}); {self.configuration_name!r} "
                f"needs a {own_ndim}D one. Pre-train on the configuration you fine-tune: `"
                + shlex.join(["nnUNetv2_train", self.plans_manager.dataset_name, self.pretraining_configuration(),
                              "all", "-tr", self.pretrain_trainer_name]) + "`.")
        backbone = metadata.get("backbone", "vit")  # checkpoints before 0.3 hold ViTs only
        if backbone != self.backbone:
            raise TransferError(
                f"{path} holds a {backbone} encoder (pre-trained by {metadata.get('trainer_name')}); "
                f"{self.__class__.__name__} builds a {self.backbone} network. Fine-tune with the fine-tuning trainer "
                f"of the same backbone (e.g. nnUNetTrainerMAEFinetune for a ViT, nnUNetTrainerMAEFinetune_PrimusV3S "
                f"for PrimusV3-S).")
        keys = self.backbone_family().encoder_settings
        differing = [k for k in keys if k in pretrained and tuple(np.atleast_1d(pretrained[k])) != tuple(
            np.atleast_1d(own[k]))]
        if differing:
            theirs = ", ".join(f"{k} {pretrained[k]}" for k in differing)
            ours = ", ".join(f"{k} {own[k]}" for k in differing)
            raise TransferError(
                f"{path} was pre-trained by {metadata.get('trainer_name')} with {theirs}; {self.__class__.__name__} "
                f"builds {ours}. Fine-tune with a trainer of the same size and token size (class attributes "
                f"vit_preset / primus_size / token_size, e.g. a subclass with vit_preset = 'T'), or pre-train again "
                f"with this size.")

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


class nnUNetTrainerMAEFinetune_smoke(Smoke, nnUNetTrainerMAEFinetune):
    """Starts from the encoder of the matching _smoke pre-training."""

    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_smoke"


class nnUNetTrainerMAEFinetune_5epochs(Epochs5, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_50epochs(Epochs50, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_250epochs(Epochs250, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_fp32(FP32, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_bf16(BF16, nnUNetTrainerMAEFinetune):
    pass


class nnUNetTrainerMAEFinetune_patchdec(nnUNetTrainerMAEFinetune):
    """The pre-trained encoder with the light patch decoder (as nnUNetTrainerViT_patchdec) instead of UNETR's."""

    decoder = "patch"


class nnUNetTrainerMAEFinetune_PrimusV3S(PrimusV3SBackbone, nnUNetTrainerMAEFinetune):
    """nnU-Net's PrimusV3-S network (predicts with nnUNet_PrimusV3S_Trainer too), started from the encoder of
    nnUNetTrainerMAEPretrain_PrimusV3S: stem + Eva blocks loaded, layer-wise LR decay over the Eva blocks."""

    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_PrimusV3S"


class nnUNetTrainerMAEFinetune_PrimusV3B(nnUNetTrainerMAEFinetune_PrimusV3S):
    primus_size, pretrain_trainer_name = "B", "nnUNetTrainerMAEPretrain_PrimusV3B"


class nnUNetTrainerMAEFinetune_PrimusV3M(nnUNetTrainerMAEFinetune_PrimusV3S):
    primus_size, pretrain_trainer_name = "M", "nnUNetTrainerMAEPretrain_PrimusV3M"


class nnUNetTrainerMAEFinetune_PrimusV3L(nnUNetTrainerMAEFinetune_PrimusV3S):
    primus_size, pretrain_trainer_name = "L", "nnUNetTrainerMAEPretrain_PrimusV3L"


class nnUNetTrainerMAEFinetune_PrimusV3S_smoke(Smoke, nnUNetTrainerMAEFinetune_PrimusV3S):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_PrimusV3S_smoke"

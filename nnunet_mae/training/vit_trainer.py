"""`nnUNetTrainerViT`: ViT segmentation trained by nnU-Net's pipeline.

Differences from nnUNetTrainer: ViT network (built from class attributes + plans, so
`nnUNetv2_predict` rebuilds it), planned patch rounded to a multiple of the token size (saved in
the results folder's plans.json), AdamW with linear warm-up then poly decay (stepped per iteration),
gradient clipping at 1, no deep supervision, bf16 autocast on CPU and GPU (`mixed_precision = "fp32"`
to switch off), atomic checkpoints carrying the `nnunet_mae` transfer metadata.
"""

from __future__ import annotations

import contextlib
import os

import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_mae.architectures.presets import vit_preset
from nnunet_mae.architectures.segmentation import ViTSegmentationNetwork
from nnunet_mae.architectures.tokens import TOKEN_ORDER, as_spatial_tuple, round_patch_to_tokens, token_grid
from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.lr_schedule import WarmupPolyLRScheduler
from nnunet_mae.training.param_groups import build_param_groups
from nnunet_mae.training.schedules import Epochs5, Epochs50, Epochs250, Smoke
from nnunet_mae.training.seeding import seed_everything
from nnunet_mae.transfer.checkpoint_io import METADATA_KEY, atomic_target

METADATA_FORMAT_VERSION = 1
CROSS_VALIDATION_FOLDS = 5  # nnU-Net's default split


def planned_patch_for_tokens(patch_size, token_size, configuration_name: str = "") -> tuple[int, ...]:
    """Round the planned patch to the token grid, refusing axes smaller than one token."""
    for axis, (s, t) in enumerate(zip(patch_size, token_size)):
        if s < t:
            raise ValueError(
                f"The planned patch {tuple(patch_size)} of configuration {configuration_name!r} has {s} voxels on axis "
                f"{axis}, fewer than the token size {t}. Use a trainer variant with smaller tokens "
                f"(e.g. token_size = 8, or 4 on that axis), or a configuration with a larger patch.")
    return round_patch_to_tokens(patch_size, token_size)


class nnUNetTrainerViT(nnUNetTrainer):
    # Architecture: class attributes only (nnUNetv2_predict builds the network from the class and the plans).
    vit_preset: str = "S"
    token_size: int | tuple[int, ...] = 8
    pos_embed: str = "learned"
    drop_path_rate: float = 0.1
    decoder: str = "unetr"
    decoder_feature_size: int = 16

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 3e-4
        self.weight_decay = 0.05
        self.adam_betas = (0.9, 0.98)
        self.warmup_fraction = 0.05  # of num_epochs (nnssl/Primus: 50 of 1000)
        self.layer_decay: float | None = None
        self.grad_clip = 1.0
        self.mixed_precision = "bf16"  # or "fp32"
        self.enable_deep_supervision = False
        self.grad_scaler = None
        self.seed: int | None = None  # set (e.g. in a subclass) for repeatable runs; see training/seeding.py
        self._epoch_iteration = 0
        self._round_patch_to_tokens()

    # ----- architecture -------------------------------------------------------------------------------------
    @classmethod
    def token_size_for(cls, ndim: int) -> tuple[int, ...]:
        return as_spatial_tuple(cls.token_size, ndim, "token_size")

    @classmethod
    def vit_dimensions(cls) -> dict:
        """embed_dim, depth, num_heads; from the `vit_preset` name unless a subclass overrides this."""
        return vit_preset(cls.vit_preset)

    @classmethod
    def network_kwargs(cls, configuration_manager: ConfigurationManager, num_input_channels: int,
                       num_output_channels: int) -> dict:
        patch = configuration_manager.patch_size
        token = cls.token_size_for(len(patch))
        return dict(input_channels=num_input_channels, num_classes=num_output_channels,
                    input_shape=planned_patch_for_tokens(patch, token), token_size=token, **cls.vit_dimensions(),
                    drop_path_rate=cls.drop_path_rate, pos_embed=cls.pos_embed, decoder=cls.decoder,
                    decoder_feature_size=cls.decoder_feature_size)

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return ViTSegmentationNetwork(**cls.network_kwargs(configuration_manager, num_input_channels,
                                                           num_output_channels))

    def _round_patch_to_tokens(self) -> None:
        planned = list(self.configuration_manager.patch_size)
        adjusted = list(planned_patch_for_tokens(planned, self.token_size_for(len(planned)), self.configuration_name))
        if adjusted != planned:
            self.plans_manager.plans["configurations"][self.configuration_name]["patch_size"] = adjusted
            # a new manager: PlansManager.get_configuration is lru-cached and would return the old patch
            self.configuration_manager = ConfigurationManager({**self.configuration_manager.configuration,
                                                              "patch_size": adjusted})
            self.print_to_log_file(f"Patch size {planned} rounded to {adjusted}, a multiple of the token size "
                                   f"{self.token_size_for(len(planned))}; saved in plans.json of the results folder.")

    def initialize(self):
        if not self.was_initialized and self.seed is not None:
            seed_everything(self.seed)  # before the network is built: same seed, same initial weights
        super().initialize()

    def do_split(self):
        """nnU-Net's split, with a clear error where its 5-fold split cannot exist."""
        splits_file = os.path.join(self.preprocessed_dataset_folder_base, "splits_final.json")
        if self.fold != "all" and not os.path.isfile(splits_file):
            if self.dataset_class is None:
                self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
            cases = len(self.dataset_class.get_identifiers(self.preprocessed_dataset_folder))
            if cases < CROSS_VALIDATION_FOLDS:
                raise ValueError(
                    f"{self.plans_manager.dataset_name} has {cases} training case(s); nnU-Net's default "
                    f"{CROSS_VALIDATION_FOLDS}-fold split needs at least {CROSS_VALIDATION_FOLDS}. Train on fold 'all' "
                    f"(`nnUNetv2_train {self.plans_manager.dataset_name} {self.configuration_name} all ...`), or write "
                    f"your own split to {splits_file}.")
        return super().do_split()

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        pass  # single-resolution output

    # ----- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        network = unwrap_network(self.network)
        groups = build_param_groups(network, weight_decay=self.weight_decay, layer_decay=self.layer_decay,
                                    depth=len(network.encoder.blocks))
        optimizer = torch.optim.AdamW(groups, lr=self.initial_lr, betas=self.adam_betas)
        scheduler = WarmupPolyLRScheduler(optimizer, self.initial_lr, self.num_epochs,
                                          warmup_epochs=self.warmup_fraction * self.num_epochs)
        return optimizer, scheduler

    def autocast(self):
        if self.mixed_precision == "bf16" and self.device.type in ("cpu", "cuda"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.mixed_precision not in ("bf16", "fp32"):
            raise ValueError(f"mixed_precision={self.mixed_precision!r} must be 'bf16' or 'fp32'.")
        return contextlib.nullcontext()

    def on_train_epoch_start(self):
        self._epoch_iteration = 0
        super().on_train_epoch_start()

    def compute_loss(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(self.network(data), target)

    def train_step(self, batch: dict) -> dict:
        self.lr_scheduler.step(self.current_epoch + self._epoch_iteration / self.num_iterations_per_epoch)
        self._epoch_iteration += 1
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = target.to(self.device, non_blocking=True) if isinstance(target, torch.Tensor) else target
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.compute_loss(data, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Loss is {loss.item()} at epoch {self.current_epoch}, iteration {self._epoch_iteration}. Training "
                f"stopped; the last good checkpoints in {self.output_folder} are untouched. Lower initial_lr, use "
                f"mixed_precision = 'fp32', or check the data for NaN/inf values.")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
        self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}

    def validation_step(self, batch: dict) -> dict:
        with self.autocast():
            return super().validation_step(batch)

    # ----- checkpoints ----------------------------------------------------------------------------------------
    def transfer_metadata(self) -> dict:
        """What weight transfer needs to know about this network, stored in every checkpoint."""
        kwargs = self.network_kwargs(self.configuration_manager, self.num_input_channels,
                                     self.label_manager.num_segmentation_heads)
        return {
            "format_version": METADATA_FORMAT_VERSION,
            "trainer_name": self.__class__.__name__,
            "network_kwargs": kwargs,
            "token_grid": token_grid(kwargs["input_shape"], kwargs["token_size"]),
            "token_order": TOKEN_ORDER,
            "patch_size": list(self.configuration_manager.patch_size),
            "spacing": list(self.configuration_manager.spacing),
            "normalization_schemes": list(self.configuration_manager.normalization_schemes),
            "use_mask_for_norm": list(self.configuration_manager.use_mask_for_norm),
            "channel_names": dict(self.dataset_json.get("channel_names", self.dataset_json.get("modality", {}))),
            "input_channels": self.num_input_channels,
            "dataset_name": self.plans_manager.dataset_name,
            "configuration": self.configuration_name,
            "masking": self.masking_metadata(),
        }

    def masking_metadata(self) -> dict | None:
        return None

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus transfer metadata, written to a temporary file and renamed."""
        with atomic_target(filename) as tmp:
            super().save_checkpoint(tmp)
            if self.local_rank == 0 and not self.disable_checkpointing:
                checkpoint = torch.load(tmp, map_location="cpu", weights_only=False)
                checkpoint[METADATA_KEY] = self.transfer_metadata()
                torch.save(checkpoint, tmp)


# ----- variants: attributes only ---------------------------------------------------------------------------------
class nnUNetTrainerViT_5epochs(Epochs5, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_50epochs(Epochs50, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_250epochs(Epochs250, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_smoke(Smoke, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_fp32(nnUNetTrainerViT):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mixed_precision = "fp32"


class nnUNetTrainerViT_patchdec(nnUNetTrainerViT):
    decoder = "patch"


class nnUNetTrainerViT_T(nnUNetTrainerViT):
    vit_preset = "T"


class nnUNetTrainerViT_B(nnUNetTrainerViT):
    vit_preset = "B"


class nnUNetTrainerViT_token16(nnUNetTrainerViT):
    token_size = 16

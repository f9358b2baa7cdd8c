"""`nnUNetTrainerViT`: the package's base trainer (network and optimisation), and ViT segmentation from scratch.

Differences from nnUNetTrainer: the network of the `backbone` family (nnunet_mae/backbones: the ViT by default,
PrimusV3, nnU-Net's own CNN), built from class attributes + plans so that `nnUNetv2_predict` rebuilds it; the planned
patch rounded to a multiple of the token size (saved in the results folder's plans.json); AdamW with linear warm-up
then poly decay stepped per iteration (SGD for the CNN: the family's `training_recipe`), gradient clipping, no deep
supervision for the transformers, mixed precision chosen for the hardware (`mixed_precision = "auto"`:
training/precision.py), the transfer metadata in every checkpoint. Reliability (run lock, safe atomic checkpoints,
splits, the `-pretrained_weights` guard) is the `Reliability` mixin's (training/reliability.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_mae.architectures.presets import vit_preset
from nnunet_mae.architectures.tokens import TOKEN_ORDER, round_patch_to_tokens, token_grid
from nnunet_mae.backbones import backbone_named, backbones_for
from nnunet_mae.data.dataset_json import channel_names
from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.lr_schedule import WarmupPolyLRScheduler
from nnunet_mae.training.param_groups import build_param_groups
from nnunet_mae.training.precision import Precision, choose_precision
from nnunet_mae.training.reliability import Reliability
from nnunet_mae.training.seeding import seed_everything
from nnunet_mae.transfer.checkpoint_io import METADATA_KEY
from nnunet_mae.transfer.metadata import TransferMetadata


def planned_patch_for_tokens(patch_size, token_size, configuration_name: str = "") -> tuple[int, ...]:
    """Round the planned patch to the token grid, refusing axes smaller than one token."""
    for axis, (s, t) in enumerate(zip(patch_size, token_size)):
        if s < t:
            raise ValueError(
                f"The planned patch {tuple(patch_size)} of configuration {configuration_name!r} has {s} voxels on axis "
                f"{axis}, fewer than the token size {t}. Use a trainer variant with smaller tokens "
                f"(e.g. token_size = 8, or 4 on that axis), or a configuration with a larger patch.")
    return round_patch_to_tokens(patch_size, token_size)


class nnUNetTrainerViT(Reliability, nnUNetTrainer):
    # Architecture: class attributes only (nnUNetv2_predict builds the network from the class and the plans).
    backbone: str = "vit"  # a family of nnunet_mae/backbones: "vit", "primusv3", "cnn"
    primus_size: str = "S"  # backbone "primusv3": S, B, M or L
    vit_preset: str = "S"
    token_size: int | tuple[int, ...] = 8
    pos_embed: str = "learned"
    drop_path_rate: float = 0.1
    decoder: str = "unetr"
    decoder_feature_size: int = 16
    trainer_kind: str = "segmentation"  # or "pretraining", "finetuning": which recipe of the family applies

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 3e-4
        self.weight_decay = 0.05
        self.optimizer_type = "adamw"  # or "sgd" (Nesterov, `momentum`)
        self.adam_betas = (0.9, 0.98)
        self.momentum = 0.99
        self.warmup_fraction = 0.05  # of num_epochs (nnssl/Primus: 50 of 1000)
        self.layer_decay: float | None = None
        self.grad_clip = 1.0
        self.mixed_precision = "auto"  # or "bf16", "fp16", "fp32" (training/precision.py)
        self.enable_deep_supervision = False
        self.grad_scaler = None  # set in initialize() where the precision is fp16
        self._precision: Precision | None = None
        self.seed: int | None = None  # set (e.g. in a subclass) for repeatable runs; see training/seeding.py
        self._epoch_iteration = 0
        for name, value in self.backbone_family().training_recipe(self.trainer_kind).items():
            setattr(self, name, value)  # what the family's recipe changes (e.g. the CNN's SGD)
        self._round_patch_to_tokens()

    # ----- architecture -------------------------------------------------------------------------------------
    @classmethod
    def vit_dimensions(cls) -> dict:
        """embed_dim, depth, num_heads; from the `vit_preset` name unless a subclass overrides this."""
        return vit_preset(cls.vit_preset)

    @classmethod
    def backbone_family(cls):
        """The encoder family named by `backbone` (nnunet_mae/backbones)."""
        return backbone_named(cls.backbone)

    @classmethod
    def token_size_for(cls, configuration_manager: ConfigurationManager) -> tuple[int, ...]:
        """The token (masking unit) of this trainer's network on this configuration."""
        return cls.backbone_family().token_size(cls, configuration_manager)

    @classmethod
    def network_kwargs(cls, configuration_manager: ConfigurationManager, num_input_channels: int,
                       num_output_channels: int) -> dict:
        patch = configuration_manager.patch_size
        cls.check_dimensionality(len(patch))
        token = cls.token_size_for(configuration_manager)
        return dict(input_channels=num_input_channels, num_classes=num_output_channels,
                    input_shape=planned_patch_for_tokens(patch, token), token_size=token,
                    **cls.backbone_family().architecture_kwargs(cls, configuration_manager))

    @classmethod
    def check_dimensionality(cls, ndim: int) -> None:
        family = cls.backbone_family()
        if ndim not in family.spatial_dims:
            others = ", ".join(f.name for f in backbones_for(ndim))
            raise ValueError(f"{cls.__name__} builds {family.name} networks, which are "
                             f"{'/'.join(f'{d}D' for d in family.spatial_dims)} only; this configuration is {ndim}D. "
                             f"Use a 3D configuration (3d_fullres), or a trainer of a backbone that trains {ndim}D "
                             f"configurations ({others}: e.g. nnUNetTrainerViT, nnUNetTrainerMAEPretrain, "
                             f"nnUNetTrainerMAEFinetune).")

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return cls.backbone_family().segmentation_network(
            cls.network_kwargs(configuration_manager, num_input_channels, num_output_channels),
            enable_deep_supervision)

    def _round_patch_to_tokens(self) -> None:
        planned = list(self.configuration_manager.patch_size)
        self.check_dimensionality(len(planned))
        token = self.token_size_for(self.configuration_manager)
        adjusted = list(planned_patch_for_tokens(planned, token, self.configuration_name))
        if adjusted != planned:
            self.plans_manager.plans["configurations"][self.configuration_name]["patch_size"] = adjusted
            # a new manager: PlansManager.get_configuration is lru-cached and would return the old patch
            self.configuration_manager = ConfigurationManager({**self.configuration_manager.configuration,
                                                              "patch_size": adjusted})
            self.print_to_log_file(f"Patch size {planned} rounded to {adjusted}, a multiple of the token size "
                                   f"{token}; saved in plans.json of the results folder.")

    def initialize(self):
        if not self.was_initialized:
            if self.seed is not None:
                seed_everything(self.seed)  # before the network is built: same seed, same initial weights
            precision = self.precision()
            # before load_checkpoint (--c), which restores the scaler's state into an existing scaler
            self.grad_scaler = torch.amp.GradScaler(self.device.type) if precision.uses_grad_scaler else None
            self.print_to_log_file(precision.describe())
        super().initialize()

    def precision(self) -> Precision:
        """The precision this trainer runs in (resolved once per setting of `mixed_precision`)."""
        if self._precision is None or self._precision.requested != self.mixed_precision:
            self._precision = choose_precision(self.mixed_precision, self.device)
        return self._precision

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        if self.enable_deep_supervision:  # networks with several outputs (the CNN); the transformers have one
            super().set_deep_supervision_enabled(enabled)

    # ----- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        network = unwrap_network(self.network)
        if self.optimizer_type == "sgd":  # nnU-Net's optimiser (weight decay on every parameter)
            optimizer = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=self.initial_lr,
                                        momentum=self.momentum, nesterov=True, weight_decay=self.weight_decay)
        else:
            groups = build_param_groups(network, weight_decay=self.weight_decay, layer_decay=self.layer_decay)
            optimizer = torch.optim.AdamW(groups, lr=self.initial_lr, betas=self.adam_betas)
        scheduler = WarmupPolyLRScheduler(optimizer, self.initial_lr, self.num_epochs,
                                          warmup_epochs=self.warmup_fraction * self.num_epochs)
        return optimizer, scheduler

    def autocast(self):
        return self.precision().autocast(self.device.type)

    def on_train_epoch_start(self):
        self._epoch_iteration = 0
        super().on_train_epoch_start()

    def compute_loss(self, data: torch.Tensor, target) -> torch.Tensor:
        return self.loss(self.network(data), target)

    def training_losses(self, data: torch.Tensor, target) -> dict[str, torch.Tensor]:
        """"loss" (what the step optimises) and any further terms a method logs; they travel in the step's output
        dict to `on_train_epoch_end(train_outputs)`, nnU-Net's own channel. Here: the loss alone."""
        return {"loss": self.compute_loss(data, target)}

    def train_step(self, batch: dict) -> dict:
        self.lr_scheduler.step(self.current_epoch + self._epoch_iteration / self.num_iterations_per_epoch)
        self._epoch_iteration += 1
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        if isinstance(target, list):  # deep supervision: one target per output resolution
            target = [t.to(self.device, non_blocking=True) for t in target]
        elif isinstance(target, torch.Tensor):
            target = target.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.training_losses(data, target)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(self.non_finite_loss_message(loss, data, batch.get("keys")))
        if self.grad_scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.optimizer.step()
        else:  # fp16: scale the loss, unscale before clipping, skip steps with inf/NaN gradients
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        return {name: value.detach().cpu().numpy() for name, value in losses.items()}

    def validation_step(self, batch: dict) -> dict:
        with self.autocast():
            return super().validation_step(batch)

    def non_finite_loss_message(self, loss: torch.Tensor, data: torch.Tensor, keys) -> str:
        """What happened, in which cases, what is still safe on disk, and what to try first."""
        where = f"Loss is {loss.item()} at epoch {self.current_epoch}, iteration {self._epoch_iteration}"
        cases = [str(k) for k in keys] if keys is not None else []
        bad = [cases[i] if i < len(cases) else f"batch item {i}"
               for i in range(data.shape[0]) if not torch.isfinite(data[i]).all()]
        saved = sorted(p.name for p in Path(self.output_folder).glob("checkpoint_*.pth"))
        kept = (f"the checkpoints in {self.output_folder} ({', '.join(saved)}) are untouched" if saved else
                "no checkpoint had been written yet")
        if bad:
            fix = (f"The input of case(s) {', '.join(bad)} contains NaN or inf after preprocessing: check those raw "
                   f"images (e.g. SimpleITK: numpy.isfinite on the array) and replace or remove them, then run "
                   f"nnUNetv2_plan_and_preprocess again.")
        else:
            fix = (f"The inputs{' (cases ' + ', '.join(cases) + ')' if cases else ''} are finite, so training "
                   f"diverged: resume from a checkpoint with a lower initial_lr, or use mixed_precision = 'fp32' "
                   f"(the _fp32 trainer variants).")
        return f"{where}. Training stopped; {kept}. {fix}"

    # ----- what every checkpoint says about the network ------------------------------------------------------
    def transfer_metadata(self) -> TransferMetadata:
        """What weight transfer needs to know about this network, stored in every checkpoint."""
        kwargs = self.network_kwargs(self.configuration_manager, self.num_input_channels,
                                     self.label_manager.num_segmentation_heads)
        return TransferMetadata(
            trainer_name=self.__class__.__name__, backbone=self.backbone, network_kwargs=kwargs,
            token_grid=token_grid(kwargs["input_shape"], kwargs["token_size"]), token_order=TOKEN_ORDER,
            patch_size=list(self.configuration_manager.patch_size), spacing=list(self.configuration_manager.spacing),
            normalization_schemes=list(self.configuration_manager.normalization_schemes),
            use_mask_for_norm=list(self.configuration_manager.use_mask_for_norm),
            channel_names=channel_names(self.dataset_json), input_channels=self.num_input_channels,
            dataset_name=self.plans_manager.dataset_name, configuration=self.configuration_name,
            masking=self.masking_metadata())

    def masking_metadata(self) -> dict | None:
        return None

    def checkpoint_extras(self) -> dict:
        return {**super().checkpoint_extras(), METADATA_KEY: self.transfer_metadata().to_dict()}

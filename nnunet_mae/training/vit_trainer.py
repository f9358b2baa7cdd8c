"""`nnUNetTrainerViT`: ViT segmentation trained by nnU-Net's pipeline.

Differences from nnUNetTrainer: ViT network (built from class attributes + plans, so
`nnUNetv2_predict` rebuilds it), planned patch rounded to a multiple of the token size (saved in
the results folder's plans.json), AdamW with linear warm-up then poly decay (stepped per iteration),
gradient clipping at 1, no deep supervision, mixed precision chosen for the hardware (`mixed_precision = "auto"`:
see training/precision.py; "bf16", "fp16" or "fp32" to force one), atomic checkpoints carrying the `nnunet_mae`
transfer metadata.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_mae.architectures.presets import vit_preset
from nnunet_mae.architectures.tokens import TOKEN_ORDER, as_spatial_tuple, round_patch_to_tokens, token_grid
from nnunet_mae.data.dataset_json import channel_names
from nnunet_mae.training.backbones import backbone_named
from nnunet_mae.training.clean_exit import install_sigterm_handler
from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.lr_schedule import WarmupPolyLRScheduler
from nnunet_mae.training.param_groups import build_param_groups
from nnunet_mae.training.precision import Precision, choose_precision
from nnunet_mae.training.run_lock import acquire_run_lock
from nnunet_mae.training.schedules import BF16, FP32, Epochs5, Epochs50, Epochs250, Smoke
from nnunet_mae.training.seeding import seed_everything
from nnunet_mae.training.splits import NNUNET_FOLDS, check_split_file, write_default_split
from nnunet_mae.training.stock_pretrained import route_pretrained_weights_through
from nnunet_mae.transfer.checkpoint_io import METADATA_KEY, atomic_target, remove_stray_temporaries, safe_torch_load
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


class nnUNetTrainerViT(nnUNetTrainer):
    # Architecture: class attributes only (nnUNetv2_predict builds the network from the class and the plans).
    backbone: str = "vit"  # or "primusv3" (training/backbones.py)
    primus_size: str = "S"  # backbone "primusv3": S, B, M or L
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
        self.mixed_precision = "auto"  # or "bf16", "fp16", "fp32" (training/precision.py)
        self.enable_deep_supervision = False
        self.grad_scaler = None  # set in initialize() where the precision is fp16
        self._precision: Precision | None = None
        self.explicit_pretrained_weights: str | None = None  # set when nnUNetv2_train got -pretrained_weights
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
    def backbone_family(cls):
        """The encoder family named by `backbone` (training/backbones.py)."""
        return backbone_named(cls.backbone)

    @classmethod
    def network_kwargs(cls, configuration_manager: ConfigurationManager, num_input_channels: int,
                       num_output_channels: int) -> dict:
        patch = configuration_manager.patch_size
        cls.check_dimensionality(len(patch))
        token = cls.token_size_for(len(patch))
        return dict(input_channels=num_input_channels, num_classes=num_output_channels,
                    input_shape=planned_patch_for_tokens(patch, token), token_size=token,
                    drop_path_rate=cls.drop_path_rate, **cls.backbone_family().architecture_kwargs(cls))

    @classmethod
    def check_dimensionality(cls, ndim: int) -> None:
        family = cls.backbone_family()
        if ndim not in family.spatial_dims:
            raise ValueError(f"{cls.__name__} builds {family.name} networks, which are "
                             f"{'/'.join(f'{d}D' for d in family.spatial_dims)} only; this configuration is {ndim}D. "
                             f"Use a 3D configuration (3d_fullres), or the ViT trainers (nnUNetTrainerViT, "
                             f"nnUNetTrainerMAEPretrain, nnUNetTrainerMAEFinetune), which train 2D configurations.")

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return cls.backbone_family().segmentation_network(
            cls.network_kwargs(configuration_manager, num_input_channels, num_output_channels))

    def _round_patch_to_tokens(self) -> None:
        planned = list(self.configuration_manager.patch_size)
        self.check_dimensionality(len(planned))
        adjusted = list(planned_patch_for_tokens(planned, self.token_size_for(len(planned)), self.configuration_name))
        if adjusted != planned:
            self.plans_manager.plans["configurations"][self.configuration_name]["patch_size"] = adjusted
            # a new manager: PlansManager.get_configuration is lru-cached and would return the old patch
            self.configuration_manager = ConfigurationManager({**self.configuration_manager.configuration,
                                                              "patch_size": adjusted})
            self.print_to_log_file(f"Patch size {planned} rounded to {adjusted}, a multiple of the token size "
                                   f"{self.token_size_for(len(planned))}; saved in plans.json of the results folder.")

    def initialize(self):
        if not self.was_initialized:
            self.guard_output_folder()
            if self.seed is not None:
                seed_everything(self.seed)  # before the network is built: same seed, same initial weights
            precision = self.precision()
            # before load_checkpoint (--c), which restores the scaler's state into an existing scaler
            self.grad_scaler = torch.amp.GradScaler(self.device.type) if precision.uses_grad_scaler else None
            self.print_to_log_file(precision.describe())
        super().initialize()
        route_pretrained_weights_through(self, self.on_stock_pretrained_weights)

    def guard_output_folder(self) -> None:
        """One run per output folder; SIGTERM exits cleanly; temporary files of killed writes removed."""
        if self.local_rank != 0:
            return
        install_sigterm_handler()
        _, note = acquire_run_lock(self.output_folder)
        if note:
            self.print_to_log_file(note)
        for path in remove_stray_temporaries(self.output_folder):
            self.print_to_log_file(f"Removed {path.name}, left by a write that was interrupted.")

    def on_stock_pretrained_weights(self, path: str) -> None:
        """Called after nnU-Net's `-pretrained_weights` loader has loaded `path` into this trainer's network."""
        self.explicit_pretrained_weights = path
        self.print_to_log_file(f"Weights loaded from -pretrained_weights {path} by nnU-Net's strict loader "
                               f"(every key but .seg_layers.; read first with weights_only=True).")

    def precision(self) -> Precision:
        """The precision this trainer runs in (resolved once per setting of `mixed_precision`)."""
        if self._precision is None or self._precision.requested != self.mixed_precision:
            self._precision = choose_precision(self.mixed_precision, self.device)
        return self._precision

    def do_split(self):
        """nnU-Net's split, written atomically, with clear errors where it cannot exist or cannot be read."""
        splits_file = os.path.join(self.preprocessed_dataset_folder_base, "splits_final.json")
        if self.fold != "all":
            if os.path.isfile(splits_file):
                check_split_file(splits_file)
            else:
                if self.dataset_class is None:
                    self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
                cases = self.dataset_class.get_identifiers(self.preprocessed_dataset_folder)
                if len(cases) < NNUNET_FOLDS:
                    command = shlex.join(["nnUNetv2_train", self.plans_manager.dataset_name, self.configuration_name,
                                          "all", "-tr", self.__class__.__name__])
                    raise ValueError(
                        f"{self.plans_manager.dataset_name} has {len(cases)} training case(s); nnU-Net's default "
                        f"{NNUNET_FOLDS}-fold split needs at least {NNUNET_FOLDS}. Train on fold "
                        f"'all' (`{command}`), or write your own split to {splits_file}.")
                self.print_to_log_file(f"Creating new {NNUNET_FOLDS}-fold cross-validation split (written "
                                       f"atomically)...")
                write_default_split(splits_file, cases)
        return super().do_split()

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        pass  # single-resolution output

    # ----- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        network = unwrap_network(self.network)
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

    def compute_loss(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
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
        target = target.to(self.device, non_blocking=True) if isinstance(target, torch.Tensor) else target
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

    # ----- checkpoints ----------------------------------------------------------------------------------------
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
        """Entries this package adds to nnU-Net's checkpoint: the transfer metadata (and, in subclasses, more)."""
        return {METADATA_KEY: self.transfer_metadata().to_dict()}

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        """Called after nnU-Net's load_checkpoint with the checkpoint's dict (--c, --val)."""

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus transfer metadata, written to a temporary file and renamed.

        checkpoint_latest carries the best-so-far value *after* this epoch's update: nnU-Net writes it before it
        compares the epoch with the best, so a resumed run (--c) would otherwise compare later epochs with a stale
        best value and could overwrite checkpoint_best with a worse model."""
        stale_best = self._best_ema
        if os.path.basename(filename) == "checkpoint_latest.pth":
            self._best_ema = self.best_value_after_this_epoch()
        try:
            with atomic_target(filename) as tmp:
                super().save_checkpoint(tmp)
                if self.local_rank == 0 and not self.disable_checkpointing:
                    checkpoint = safe_torch_load(tmp)
                    checkpoint.update(self.checkpoint_extras())
                    torch.save(checkpoint, tmp)
        except (OSError, RuntimeError) as e:
            folder = os.path.dirname(os.path.abspath(filename))
            free = shutil.disk_usage(folder).free / 2**30 if os.path.isdir(folder) else float("nan")
            raise OSError(f"Could not write the checkpoint {filename} ({type(e).__name__}: {e}). {free:.2f} GiB are "
                          f"free on the disk of {folder}: if it is full, free space, then resume with `--c`. The "
                          f"previous version of {os.path.basename(filename)} is intact.") from e
        finally:
            self._best_ema = stale_best

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's load (--c, --val), after the file has passed the weights-only reader; says when --c falls
        back to checkpoint_best.pth."""
        is_file = isinstance(filename_or_checkpoint, (str, os.PathLike))
        # raises UnsafeCheckpointError before nnU-Net's torch.load
        checkpoint = safe_torch_load(filename_or_checkpoint) if is_file else filename_or_checkpoint
        super().load_checkpoint(filename_or_checkpoint)
        self.restore_checkpoint_extras(checkpoint)
        if (is_file and os.path.basename(os.fspath(filename_or_checkpoint)) == "checkpoint_best.pth"
                and self.current_epoch < self.num_epochs):
            self.print_to_log_file(
                f"Loaded checkpoint_best.pth (end of epoch {self.current_epoch - 1}). With --c this means that "
                f"neither checkpoint_latest.pth nor checkpoint_final.pth exists: training continues from the best "
                f"epoch, and the epochs after it are trained again.")

    def best_value_after_this_epoch(self):
        """The best-so-far value once this epoch is compared (nnU-Net: the highest EMA pseudo Dice)."""
        ema = self.logger.get_value("ema_fg_dice", step=None)
        if len(ema) < self.current_epoch + 1:
            return self._best_ema
        value = ema[self.current_epoch]
        return value if self._best_ema is None or value > self._best_ema else self._best_ema


# ----- variants: attributes only ---------------------------------------------------------------------------------
class nnUNetTrainerViT_5epochs(Epochs5, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_50epochs(Epochs50, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_250epochs(Epochs250, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_smoke(Smoke, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_fp32(FP32, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_bf16(BF16, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_patchdec(nnUNetTrainerViT):
    decoder = "patch"


class nnUNetTrainerViT_T(nnUNetTrainerViT):
    vit_preset = "T"


class nnUNetTrainerViT_B(nnUNetTrainerViT):
    vit_preset = "B"


class nnUNetTrainerViT_token16(nnUNetTrainerViT):
    token_size = 16
